#!/usr/bin/env bash
# The test command of README.md: installs what is missing, builds the guest images,
# then runs every test (unit tests and the guest-booting integration tests).
# Idempotent; safe to run again. Needs root (apt, network namespaces, /dev/kvm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -e /dev/kvm ]]; then
	echo "tests: /dev/kvm is missing; the tests boot guests and need KVM" >&2
	exit 1
fi

tests/install-deps.sh
tests/install-users.sh
images/build.sh
cargo test --workspace

#!/usr/bin/env bash
# The test command of README.md: installs what is missing, builds the guest images,
# then runs every test (unit tests and the guest-booting integration tests).
# Idempotent; safe to run again. Needs root (apt, network namespaces, /dev/kvm), a
# recent cargo and Debian 12: tests/preflight.sh checks them before anything is done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tests/preflight.sh
preflight tests/run.sh

tests/install-deps.sh
tests/install-users.sh
images/build.sh
echo "tests: cargo test --workspace (builds, then runs the unit tests and the guest-booting tests)"
cargo test --workspace

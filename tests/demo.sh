#!/usr/bin/env bash
# The demo command of README.md: builds what is missing, then boots the Linux guest on
# this terminal's serial console. The guest prints its marker from /init and reboots,
# which ends sandvmm with status 0. Needs root (apt) and /dev/kvm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -e /dev/kvm ]]; then
	echo "demo: /dev/kvm is missing; sandvmm needs KVM" >&2
	exit 1
fi

images/build.sh
cargo build --release --quiet
echo "demo: booting Linux (on emulating hosts this takes 10-15 s; Ctrl-A x quits)"
exec target/release/sandvmm --kernel images/out/vmlinux --initrd images/out/initramfs-init.cpio --cpus 2

#!/usr/bin/env bash
# The demo command of README.md: builds what is missing, then
#  1. boots the Linux guest (2 vCPUs) under the enforcing sandbox on this terminal; its
#     init prints a marker and reboots, which ends sandvmm with status 0;
#  2. shows the filter at work: the test kernel asks sandvmm, through the escape
#     demonstration port, to execve /bin/sh, and the trap-mode report names the call.
# Needs root (apt) and /dev/kvm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -e /dev/kvm ]]; then
	echo "demo: /dev/kvm is missing; sandvmm needs KVM" >&2
	exit 1
fi

tests/install-deps.sh
images/build.sh
cargo build --release --quiet
B=target/release/sandvmm

echo "demo: booting Linux under --sandbox enforce (10-15 s on emulating hosts; Ctrl-A x quits)"
$B --kernel images/out/vmlinux --initrd images/out/initramfs-init.cpio --cpus 2

echo
echo "demo: the guest asks sandvmm to execve /bin/sh; --sandbox trap names the blocked call:"
set +e
$B --kernel images/out/testkernel.elf --demo-escape --sandbox trap \
	--cmdline "scenario=escape escape=execve" </dev/null
echo "demo: sandvmm exited with status $? (100: stopped by the sandbox; enforce mode kills it outright)"

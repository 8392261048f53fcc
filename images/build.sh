#!/usr/bin/env bash
# Builds every guest image into images/out/ (README.md, "Images"):
#   testkernel.elf, testkernel.bzImage   the sandvmm test kernel (seconds)
#   tiny.elf                              the smallest guest, for the bench
#   vmlinux, bzImage, initramfs.cpio     the Linux guest (minutes the first time;
#                                          cached by input hash, see linux/build.sh)
# Idempotent: installs missing Debian packages, skips what is up to date.
#
#   images/build.sh              everything
#   images/build.sh testkernel   only the test kernel
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WHAT=${1:-all}

# gcc, make and binutils build the test kernel; python3 writes its bzImage header.
"$HERE/../tests/install-deps.sh" gcc make binutils python3

echo "images: test kernel"
make -s -C "$HERE/testkernel"

if [[ $WHAT == all ]]; then
	"$HERE/linux/build.sh"
fi

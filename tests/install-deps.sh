#!/usr/bin/env bash
# Installs the Debian packages sandvmm needs to build and test, skipping those present.
# Used by tests/run.sh, tests/demo.sh and CI; images/build.sh passes its own list:
#   tests/install-deps.sh [PACKAGE...]
#   libseccomp-dev, pkg-config  the sandbox's libseccomp (linked statically: libseccomp.a)
#   libc6-dev                   glibc's static libraries (sandvmm is linked statically)
#   iproute2, iputils-ping      network namespaces, taps and ping for the network tests
#   python3                     the image build scripts
#   e2fsprogs                   debugfs, to read what a Linux guest wrote to its disk
# apt's own lines are shown, prefixed, so a slow mirror is not minutes of silence.
set -euo pipefail

PACKAGES=(libseccomp-dev libc6-dev pkg-config iproute2 iputils-ping python3 e2fsprogs)
if (($#)); then
	PACKAGES=("$@")
fi
missing=()
for p in "${PACKAGES[@]}"; do
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0
if ((EUID != 0)); then
	echo "deps: root is needed to install ${missing[*]}: run as root (sudo $0 ${missing[*]})" >&2
	exit 1
fi
indent() { sed -u 's/^/deps:   /'; }
echo "deps: installing ${missing[*]}"
echo "deps: apt-get update (the package lists)"
apt-get -q update </dev/null | indent
echo "deps: apt-get install (downloading, unpacking and setting up)"
DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 \
	install --no-install-recommends "${missing[@]}" </dev/null | indent
echo "deps: installed ${missing[*]}"

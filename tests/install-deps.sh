#!/usr/bin/env bash
# Installs the Debian packages sandvmm needs to build and test, skipping those present.
# Used by tests/run.sh, tests/demo.sh and CI; images/build.sh passes its own list:
#   tests/install-deps.sh [PACKAGE...]
#   libseccomp-dev, pkg-config  the sandbox's libseccomp (the crate links the C library)
#   iproute2, iputils-ping      network namespaces, taps and ping for the network tests
#   python3                     the image build scripts
#   e2fsprogs                   debugfs, to read what a Linux guest wrote to its disk
set -euo pipefail

PACKAGES=(libseccomp-dev pkg-config iproute2 iputils-ping python3 e2fsprogs)
if (($#)); then
	PACKAGES=("$@")
fi
missing=()
for p in "${PACKAGES[@]}"; do
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	apt-get -q update </dev/null >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

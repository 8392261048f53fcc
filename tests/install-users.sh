#!/usr/bin/env bash
# Makes the users the jail and the unprivileged tests need, skipping what exists:
#   sandvmm       a system user with no home and no shell: the identity sandvmm takes
#                 when started as root (--jail-user's default)
#   sandvmm-test  an ordinary user in the kvm group: the tests and the demo run
#                 sandvmm as this user to show it needs no root
# and gives the kvm group read-write access to /dev/kvm, and everyone access to
# /dev/net/tun (a tap still needs its owner's uid or CAP_NET_ADMIN), as udev does on
# most distributions. Needs root. Used by tests/run.sh and tests/demo.sh.
set -euo pipefail

if ((EUID != 0)); then
	echo "users: root is needed to create the sandvmm users; run as root (sudo $0)" >&2
	exit 1
fi
getent group kvm >/dev/null || groupadd --system kvm
if ! getent passwd sandvmm >/dev/null; then
	echo "users: creating system user sandvmm (the jail's identity)"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sandvmm
fi
if ! getent passwd sandvmm-test >/dev/null; then
	echo "users: creating user sandvmm-test (unprivileged runs)"
	useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --groups kvm sandvmm-test
fi
id -nG sandvmm-test | grep -qw kvm || usermod -aG kvm sandvmm-test
if [[ -e /dev/kvm ]] && ! setpriv --reuid=sandvmm-test --regid=sandvmm-test --init-groups test -r /dev/kvm -a -w /dev/kvm; then
	echo "users: giving the kvm group access to /dev/kvm"
	chgrp kvm /dev/kvm
	chmod g+rw /dev/kvm
fi
if [[ -e /dev/net/tun ]] && [[ $(stat -c %a /dev/net/tun) != 666 ]]; then
	echo "users: giving everyone access to /dev/net/tun (mode 0666, as udev does)"
	chmod 0666 /dev/net/tun
fi

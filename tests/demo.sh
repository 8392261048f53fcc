#!/usr/bin/env bash
# The demo command of README.md: builds what is missing, then
#  1. boots the Linux guest (2 vCPUs, virtio-net on a tap inside a network namespace
#     made for the demo and removed after it) under the enforcing sandbox and the
#     jail, and gives you its shell on this terminal; `reboot` in the guest ends it;
#  2. shows the filter at work: the test kernel asks sandvmm, through the escape
#     demonstration port, to execve /bin/sh, and the trap-mode report names the call.
# sandvmm itself runs as the ordinary user sandvmm-test (in the kvm group, owning the
# tap): root only installs packages and makes the namespace and the tap.
# Without a terminal on stdin (CI, a pipe) it types the suggested commands itself.
# Needs root (apt, users, network namespaces), /dev/kvm, a recent cargo and Debian 12:
# tests/preflight.sh checks them before anything is done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tests/preflight.sh
preflight tests/demo.sh

tests/install-deps.sh
tests/install-users.sh
images/build.sh
echo "demo: building sandvmm (cargo build --release)"
cargo build --release
B=$PWD/target/x86_64-unknown-linux-gnu/release/sandvmm

NS=sandvmm-demo-$$
# Who runs sandvmm: an ordinary user, with its groups (kvm).
USER_=sandvmm-test
AS_USER=(setpriv --reuid="$USER_" --regid="$USER_" --init-groups --)
HOST_IP=10.0.2.1
GUEST_IP=10.0.2.2
PROMPT='sandvmm-guest:/# '
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev tap0 mode tap user "$USER_"
ip -n "$NS" addr add "$HOST_IP/24" dev tap0
ip -n "$NS" link set tap0 up

VM=(ip netns exec "$NS" "${AS_USER[@]}" "$B" --kernel images/out/vmlinux --initrd images/out/initramfs.cpio
	--cpus 2 --net tap=tap0 --sandbox enforce
	--cmdline "sandvmm.net=$GUEST_IP/24 sandvmm.host=$HOST_IP")
COMMANDS=("ip addr show eth0" "ping -c 3 $HOST_IP" "grep -c ^processor /proc/cpuinfo" "reboot")

# Types COMMANDS into the guest's shell, one per prompt, showing everything it prints.
scripted_session() {
	local LC_ALL=C buf='' c i=0 rc
	coproc GUEST { "${VM[@]}" 2>&1; }
	# shellcheck disable=SC2153 # coproc GUEST sets GUEST_PID
	local out=${GUEST[0]} in=${GUEST[1]} pid=$GUEST_PID
	while :; do
		# 300 s without a byte from the guest: give up rather than hang.
		IFS= read -r -N 1 -t 300 c <&"$out" || { rc=$? && break; }
		printf '%s' "$c"
		buf+=$c
		if [[ $buf == *"$PROMPT" ]]; then
			buf=
			if ((i < ${#COMMANDS[@]})); then
				printf '%s\n' "${COMMANDS[i]}" >&"$in"
				i=$((i + 1))
			fi
		elif [[ $c == $'\n' ]]; then
			buf=
		fi
	done
	if ((rc > 128)); then
		echo "demo: no output from the guest for 300 s; stopping sandvmm" >&2
		kill "$pid" 2>/dev/null || true
	fi
	wait "$pid"
}

cat <<EOF
demo: booting Linux with 2 vCPUs and virtio-net (tap0, $HOST_IP, in network namespace
      $NS) under --sandbox enforce and the jail, run by the ordinary user $USER_
      (README.md, "On a fresh machine", has the time to the shell that bench measured).
      In the guest's shell try:
        ip addr show eth0
        ping -c 3 $HOST_IP
        cat /proc/cpuinfo
      From another terminal, every sandvmm thread shows "Seccomp: 2", and the
      process has no capability and an empty root:
        grep -E 'Uid|CapEff|Seccomp' /proc/\$(pidof sandvmm)/task/*/status
        sudo ls -A /proc/\$(pidof sandvmm)/root
      'reboot' ends the VM (Ctrl-A x quits at once).
EOF
status=0
if [[ -t 0 ]]; then
	"${VM[@]}" || status=$?
else
	echo "demo: stdin is not a terminal, so the demo types for you:"
	printf '        %s\n' "${COMMANDS[@]}"
	scripted_session || status=$?
fi
echo "demo: sandvmm exited with status $status (0: the guest rebooted)"
echo
echo "demo: the guest asks sandvmm to execve /bin/sh; --sandbox trap names the blocked call:"
escape=0
"${AS_USER[@]}" "$B" --kernel images/out/testkernel.elf --demo-escape --sandbox trap \
	--cmdline "scenario=escape escape=execve" </dev/null || escape=$?
echo "demo: sandvmm exited with status $escape (100: stopped by the sandbox; enforce mode kills it outright)"
# A demo that did not show what it promises fails (CI runs it without a terminal).
[[ $status == 0 && $escape == 100 ]]

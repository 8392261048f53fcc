#!/usr/bin/env bash
# Regenerates x86_64-frequency.toml: profiles sandvmm's threads under real workloads
# with `sandvmm sandbox profile` and merges the counts. Rule priorities come from this
# table, and the test suite checks every rule against it (docs/SANDBOX.md).
#
#   sandbox/policy/measure.sh [OUT]      (default: sandbox/policy/x86_64-frequency.toml)
#
# Needs root (network namespace, tap), /dev/kvm, the images (images/build.sh), python3
# and ping. Workloads: the test kernel's hello, serial flood, echo, SMP, virtio-blk
# reads and writes, UDP echo and ping over virtio-net; and the Linux workload of
# tests/linux.rs with 2 vCPUs, booted from a copy of the ext4 root disk (user loops on
# each CPU, 256 KiB on the console, 16 MiB written to and read from the disk, pings
# both ways, 1 MiB over TCP each way).
# All traffic stays in a private network namespace.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT=${1:-sandbox/policy/x86_64-frequency.toml}
cargo build --release --quiet
B=$ROOT/target/x86_64-unknown-linux-gnu/release/sandvmm
K=images/out/testkernel.elf
NET="guest_ip=10.0.0.2 host_ip=10.0.0.1"
TMP=$(mktemp -d)
NS=sbx-measure-$$
TABLE=$TMP/table.toml
: >"$TABLE"
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# profile [ip netns exec NS] -- RUN-ARGS: one workload, merged into $TABLE.
profile() {
	local prefix=()
	while [[ $1 != -- ]]; do prefix+=("$1"); shift; done
	shift
	"${prefix[@]}" "$B" sandbox profile --merge "$TABLE" --out "$TABLE.new" -- "$@"
	mv "$TABLE.new" "$TABLE"
}

echo "measure: test kernel scenarios"
profile -- --kernel $K --serial none --cmdline scenario=hello </dev/null
profile -- --kernel $K --serial none --cmdline "scenario=serial-flood bytes=200000" </dev/null
printf 'first line\nsecond line\nquit\n' | profile -- --kernel $K --cmdline scenario=echo >/dev/null
profile -- --kernel $K --cpus 2 --serial none --cmdline scenario=smp </dev/null
profile -- --kernel $K --serial none --cmdline scenario=triple-fault </dev/null
truncate -s 4M "$TMP/blk.img"
profile -- --kernel $K --serial none --disk "path=$TMP/blk.img,id=measure" \
	--cmdline "scenario=blk-rw blk_id=measure" </dev/null

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" addr add 10.0.0.1/24 dev tap0
ip -n "$NS" link set tap0 up

# udp_client COUNT: echo COUNT datagrams through the guest, then tell it to quit.
udp_client() {
	ip netns exec "$NS" python3 - "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.1", 0))
s.settimeout(2)
deadline = time.time() + 60
n = int(sys.argv[1])
done = 0
while done < n and time.time() < deadline:
    msg = b"%d" % done + b"x" * (64 + done % 1300)
    s.sendto(msg, ("10.0.0.2", 7))
    try:
        if s.recvfrom(2048)[0] == msg:
            done += 1
    except socket.timeout:
        pass
s.sendto(b"quit", ("10.0.0.2", 7))
PY
}

echo "measure: UDP echo and ping over virtio-net"
profile ip netns exec "$NS" -- --kernel $K --serial none --net tap=tap0 --cmdline "scenario=net-echo $NET" </dev/null &
udp_client 2000
wait $!
profile ip netns exec "$NS" -- --kernel $K --serial none --net tap=tap0 --cmdline "scenario=net-ping $NET" </dev/null &
ip netns exec "$NS" ping -q -c 10 -i 0.2 -w 60 10.0.0.2 >/dev/null
ip netns exec "$NS" python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"quit", ("10.0.0.2", 7))'
wait $!

echo "measure: Linux, 2 vCPUs, from its ext4 disk: the workload of tests/linux.rs"
# The host side of its TCP steps (tests/harness/src/http.rs does the same for the tests).
ip netns exec "$NS" python3 - <<'PY' &
import hashlib, http.server
blob = bytes((i * 2654435761 >> 13) & 255 for i in range(1 << 20))
class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(blob if self.path == "/blob" else hashlib.sha256(blob).hexdigest().encode())
    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(hashlib.sha256(data).hexdigest().encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("10.0.0.1", 8080), Handler).serve_forever()
PY
SERVER=$!
LOG=$TMP/linux.log
cp images/out/rootfs.ext4 "$TMP/rootfs.ext4"
profile ip netns exec "$NS" -- --kernel images/out/vmlinux --disk "path=$TMP/rootfs.ext4" --cpus 2 \
	--net tap=tap0 --serial "file:$LOG" \
	--cmdline "root=/dev/vda rw sandvmm.mode=test sandvmm.net=10.0.0.2/24 sandvmm.host=10.0.0.1 sandvmm.http=8080" </dev/null &
for _ in $(seq 300); do
	grep -q "SANDVMM-LINUX: eth0 up" "$LOG" 2>/dev/null && break
	sleep 0.5
done
ip netns exec "$NS" ping -q -c 3 -w 60 10.0.0.2 >/dev/null
wait $!
kill $SERVER
grep -q "SANDVMM-LINUX: DONE passed=8 failed=0" "$LOG" || {
	grep "SANDVMM-LINUX: FAIL" "$LOG" >&2
	echo "measure: the Linux workload did not pass" >&2
	exit 1
}

{
	echo "# System calls per thread kind after set-up, counted by \`sandvmm sandbox profile\`"
	echo "# over the workloads in sandbox/policy/measure.sh (test kernel scenarios, virtio-blk,"
	echo "# UDP echo, ping, the Linux workload with 2 vCPUs from its disk: SMP, console, disk,"
	echo "# pings, TCP). Rule"
	echo "# priorities come from these counts; the test suite fails if the policy allows a"
	echo "# call that never appears here unless the rule is marked rare. Regenerate with"
	echo "# sandbox/policy/measure.sh."
	grep -v '^#' "$TABLE"
} >"$OUT"
echo "measure: wrote $OUT"

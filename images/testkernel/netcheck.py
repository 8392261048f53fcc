#!/usr/bin/env python3
"""netcheck.py - host side of the test kernel's network scenarios.

The reference for what net-ping, net-echo and net-blast put on the wire
(see netscenarios.c and README.md), and a way to drive them by hand. Run
it on the host end of the guest's link (e.g. inside the network
namespace that holds the tap device), after the guest printed
"SANDVMM-TEST: net ready ..." (blast: start it before the guest).

  netcheck.py quit  [--guest IP] [--port P]
      sends one UDP datagram with payload b"quit" (ends net-ping and
      net-echo).
  netcheck.py echo  [--guest IP] [--port P] [--count N] [--size S]
      net-echo: sends N datagrams one at a time, checks that each comes
      back unchanged from the guest's port P to ours, then sends "quit"
      (unless --no-quit) and expects it echoed too. Prints datagrams/s
      and the RTTs.
  netcheck.py blast [--port P] [--count N] [--size S]
      net-blast: binds UDP port P, receives N datagrams and checks each
      against blast_payload() (in order, source port 9000). Prints
      datagrams/s between the first and the last.
  netcheck.py payload SEQ SIZE
      prints blast_payload(SEQ, SIZE) in hex.

Exit status 0 when every check passed, 1 otherwise.
"""

import argparse
import socket
import sys
import time

BLAST_SRC_PORT = 9000


def blast_payload(seq, size):
    """Datagram seq (0-based) of net-blast: bytes 0..3 = seq as a
    big-endian u32, byte j >= 4 = (seq + j) & 0xff."""
    head = (seq & 0xffffffff).to_bytes(4, "big")
    return head + bytes((seq + j) & 0xff for j in range(4, size))


def echo_payload(i, size):
    """Any payload works for net-echo; this one differs per datagram and
    never equals b"quit"."""
    base = ("echo %08d " % i).encode()
    return (base * (size // len(base) + 1))[:size]


def cmd_quit(args):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"quit", (args.guest, args.port))
    print("netcheck: sent quit to %s:%d" % (args.guest, args.port))
    return 0


def cmd_echo(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(args.timeout)
    dest = (args.guest, args.port)
    rtts = []
    bad = 0
    t0 = time.perf_counter()
    total = args.count + (0 if args.no_quit else 1)
    for i in range(total):
        data = echo_payload(i, args.size) if i < args.count else b"quit"
        sent = time.perf_counter()
        s.sendto(data, dest)
        try:
            back, src = s.recvfrom(65536)
        except socket.timeout:
            print("netcheck: datagram %d: no echo within %.1f s"
                  % (i, args.timeout))
            return 1
        rtts.append(time.perf_counter() - sent)
        if back != data or src != dest:
            bad += 1
            if bad <= 5:
                print("netcheck: datagram %d: got %d bytes from %s, "
                      "expected %d from %s"
                      % (i, len(back), src, len(data), dest))
    elapsed = time.perf_counter() - t0
    rtts.sort()
    print("netcheck: echo %d datagrams of %d bytes%s: %d bad, "
          "%.0f datagrams/s, rtt min/median/max %.2f/%.2f/%.2f ms"
          % (args.count, args.size, "" if args.no_quit else " (+quit)",
             bad, total / elapsed, rtts[0] * 1e3,
             rtts[len(rtts) // 2] * 1e3, rtts[-1] * 1e3))
    return 1 if bad else 0


def cmd_blast(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", args.port))
    s.settimeout(args.timeout)
    expect = 0          # next sequence number due
    got = lost = bad = 0
    first = last = None
    print("netcheck: blast: listening on UDP port %d" % args.port,
          flush=True)
    while expect < args.count:
        try:
            data, src = s.recvfrom(65536)
        except socket.timeout:
            print("netcheck: blast: got %d, then nothing for %.0f s"
                  % (got, args.timeout))
            return 1
        last = time.perf_counter()
        if first is None:
            first = last
        seq = int.from_bytes(data[:4], "big") if len(data) >= 4 else -1
        if not expect <= seq < args.count:
            bad += 1            # duplicate, reordered or garbage
            if bad <= 5:
                print("netcheck: blast: unexpected seq %d (%d bytes) "
                      "while waiting for %d" % (seq, len(data), expect))
            continue
        if seq > expect:
            print("netcheck: blast: lost %d..%d" % (expect, seq - 1))
            lost += seq - expect
        if data != blast_payload(seq, args.size) or src[1] != BLAST_SRC_PORT:
            bad += 1
            if bad <= 5:
                print("netcheck: blast: datagram %d: wrong payload or "
                      "source %s (%d bytes)" % (seq, src, len(data)))
        got += 1
        expect = seq + 1
    span = last - first if got > 1 else 0.0
    rate = (got - 1) / span if span else 0.0
    print("netcheck: blast %d datagrams of %d bytes: got %d, lost %d, "
          "bad %d, %.0f datagrams/s (%.1f KiB/s)"
          % (args.count, args.size, got, lost, bad, rate,
             rate * args.size / 1024))
    return 1 if lost or bad else 0


def cmd_payload(args):
    print(blast_payload(args.seq, args.size).hex())
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("quit")
    q.add_argument("--guest", default="10.0.0.2")
    q.add_argument("--port", type=int, default=7)
    q.set_defaults(fn=cmd_quit)

    e = sub.add_parser("echo")
    e.add_argument("--guest", default="10.0.0.2")
    e.add_argument("--port", type=int, default=7)
    e.add_argument("--count", type=int, default=1000)
    e.add_argument("--size", type=int, default=64)
    e.add_argument("--timeout", type=float, default=5.0)
    e.add_argument("--no-quit", action="store_true",
                   help="do not end the scenario afterwards")
    e.set_defaults(fn=cmd_echo)

    b = sub.add_parser("blast")
    b.add_argument("--port", type=int, default=9000)
    b.add_argument("--count", type=int, default=1000)
    b.add_argument("--size", type=int, default=64)
    b.add_argument("--timeout", type=float, default=60.0,
                   help="longest wait for the next datagram, in seconds")
    b.set_defaults(fn=cmd_blast)

    y = sub.add_parser("payload")
    y.add_argument("seq", type=int)
    y.add_argument("size", type=int)
    y.set_defaults(fn=cmd_payload)

    args = p.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

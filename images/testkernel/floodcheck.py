#!/usr/bin/env python3
"""floodcheck.py - host-side reference for the serial-flood scenario.

Regenerates the payload the test kernel sends (rule documented at the top
of scenarios.c) and either prints its FNV-1a checksum or checks a
captured serial log byte for byte:

    floodcheck.py [--bytes N]              print the expected fnv
    floodcheck.py [--bytes N] LOGFILE      verify a captured log

Payload byte i (0 <= i < N): '\\n' if i % 64 == 63,
otherwise 'a' + ((i // 64) + (i % 64)) % 26.
"""
import argparse
import sys

BEGIN = b"SANDVMM-TEST: flood begin bytes=%d\n"
END = b"\nSANDVMM-TEST: flood end fnv=%08x\n"


def payload(n):
    period = bytes(
        0x0A if i % 64 == 63 else ord("a") + (i // 64 + i % 64) % 26
        for i in range(26 * 64))
    reps = n // len(period) + 1
    return (period * reps)[:n]


def fnv1a(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=1048576)
    ap.add_argument("log", nargs="?", help="captured serial output")
    args = ap.parse_args()
    data = payload(args.bytes)
    h = fnv1a(data)
    if not args.log:
        print(f"bytes={args.bytes} fnv={h:08x}")
        return
    expected = BEGIN % args.bytes + data + END % h
    log = open(args.log, "rb").read()
    start = log.find(BEGIN % args.bytes)
    if start < 0:
        sys.exit("flood begin line not found")
    got = log[start:start + len(expected)]
    if got != expected:
        bad = next((i for i, (a, b) in enumerate(zip(got, expected))
                    if a != b), min(len(got), len(expected)))
        sys.exit(f"mismatch at byte {bad} of the flood block "
                 f"(got {len(got)} bytes, expected {len(expected)})")
    print(f"OK bytes={args.bytes} fnv={h:08x}")


if __name__ == "__main__":
    main()

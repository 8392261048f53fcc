#!/usr/bin/env python3
"""Write an uncompressed "newc" cpio archive (the Linux initramfs format).

Deterministic: entries are written in the order given, with mtime 0,
uid/gid 0 and inode numbers 1, 2, 3...  Device nodes are just header fields,
so neither the cpio tool nor root (mknod) is needed.

Usage: mkcpio.py OUTPUT ENTRY...

ENTRY is one of
  dir:NAME:MODE                   a directory
  file:NAME:MODE:SOURCE           a regular file, contents read from SOURCE
  cdev:NAME:MODE:MAJOR:MINOR      a character device node
  bdev:NAME:MODE:MAJOR:MINOR      a block device node
  symlink:NAME:TARGET             a symbolic link (mode 0777)

NAME is the path inside the archive ("dev/console"; a leading "/" is
dropped); MODE is octal permission bits ("0755").  Parent directories must
come before their contents.  Example:

  mkcpio.py initramfs.cpio dir:dev:0755 cdev:dev/console:0600:5:1 \\
      dir:proc:0555 dir:sys:0555 file:init:0755:build/init

Format (see the kernel's Documentation/driver-api/early-userspace/
buffer-format.rst): per entry the magic "070701", 13 fields of 8 hex digits
(ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
rdevminor, namesize, check), the NUL-terminated name padded to a multiple of
4 bytes, then the data padded to a multiple of 4; the archive ends with the
entry "TRAILER!!!".
"""

import os
import stat
import sys


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


class Cpio:
    def __init__(self) -> None:
        self.out = bytearray()
        self.ino = 0
        self.names: set[str] = set()

    def add(self, name: str, mode: int, data: bytes = b"",
            rdev: tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        if name != "TRAILER!!!":
            name = name.lstrip("/")
            if not name or name in self.names:
                raise ValueError(f"empty or duplicate name {name!r}")
            parent = os.path.dirname(name)
            if parent and parent not in self.names:
                raise ValueError(f"{name!r}: parent {parent!r} not added before it")
            self.names.add(name)
            self.ino += 1
            ino = self.ino
        else:
            ino = 0
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += header + encoded
        self.out += _pad4(len(header) + len(encoded))
        self.out += data + _pad4(len(data))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0, nlink=1)
        return bytes(self.out)


def _perm(text: str) -> int:
    value = int(text, 8)
    if value & ~0o7777:
        raise ValueError(f"mode {text!r} has more than permission bits")
    return value


def build(entries: list[str]) -> bytes:
    archive = Cpio()
    for entry in entries:
        kind, _, rest = entry.partition(":")
        if kind == "dir":
            name, mode = rest.split(":")
            archive.add(name, stat.S_IFDIR | _perm(mode), nlink=2)
        elif kind == "file":
            name, mode, source = rest.split(":", 2)
            with open(source, "rb") as f:
                data = f.read()
            archive.add(name, stat.S_IFREG | _perm(mode), data)
        elif kind in ("cdev", "bdev"):
            name, mode, major, minor = rest.split(":")
            ftype = stat.S_IFCHR if kind == "cdev" else stat.S_IFBLK
            archive.add(name, ftype | _perm(mode), rdev=(int(major), int(minor)))
        elif kind == "symlink":
            name, target = rest.split(":", 1)
            archive.add(name, stat.S_IFLNK | 0o777, target.encode())
        else:
            raise ValueError(f"unknown entry kind in {entry!r}")
    return archive.finish()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    output, entries = argv[1], argv[2:]
    try:
        data = build(entries)
    except (ValueError, OSError) as e:
        print(f"mkcpio.py: {e}", file=sys.stderr)
        return 1
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

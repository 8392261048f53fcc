#!/usr/bin/env python3
"""mkbzimage.py - wraps the test kernel in the Linux bzImage format.

The bzImage is for 64-bit loaders such as rust-vmm linux-loader's
BzImage: they read the setup header at 0x1f1, load everything after the
(setup_sects + 1) * 512 byte setup area at 0x100000 and enter 64-bit
code at load address + 0x200. So the file is:

    [0x000, 0x400)  boot sector + 1 setup sector, holding only the header
    [0x400, ...)    the kernel as a flat binary (objcopy -O binary),
                    linked at 0x100000 with its 64-bit entry at +0x200

There is no real-mode setup code: a 16-bit loader that jumps to 0x200
of the setup area lands on a cli/hlt loop.

Header fields set (offset: field = value; everything else is zero):
    0x1f1 setup_sects        = 1
    0x1f4 syssize            = flat size in 16-byte paragraphs
    0x1fa vid_mode           = 0xffff ("normal")
    0x1fe boot_flag          = 0xaa55
    0x200 jump               = eb 66 (short jump to the hlt stub at 0x268)
    0x202 header             = "HdrS"
    0x206 version            = 0x020c (boot protocol 2.12)
    0x20c start_sys_seg      = 0x1000 (obsolete, the traditional value)
    0x20e kernel_version     = 0x0080 (string at 0x280 of the file)
    0x211 loadflags          = 0x01 LOADED_HIGH (linux-loader requires it)
    0x214 code32_start       = 0x100000
    0x22c initrd_addr_max    = 0x7fffffff
    0x230 kernel_alignment   = 0x200000
    0x234 relocatable_kernel = 0 (must be loaded at exactly 0x100000)
    0x235 min_alignment      = 21 (log2 of kernel_alignment)
    0x236 xloadflags         = 0x0001 XLF_KERNEL_64 (64-bit entry at +0x200)
    0x238 cmdline_size       = 2047 (the kernel copies up to 2047 bytes)
    0x258 pref_address       = 0x100000
    0x260 init_size          = bytes from 0x100000 to the end of .bss
"""
import argparse
import struct
import sys

LOAD_ADDR = 0x100000
ENTRY64_OFFSET = 0x200
SETUP_SECTS = 1
STUB_OFFSET = 0x268       # first byte after the 2.12 header
VERSION_OFFSET = 0x280    # kernel version string


def die(msg):
    sys.exit(f"mkbzimage: {msg}")


def read_elf(path):
    """Returns (entry, [(paddr, filesz, memsz)] of PT_LOAD segments)."""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        die(f"{path}: not a little-endian ELF64 file")
    entry, phoff = struct.unpack_from("<QQ", data, 0x18)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segs = []
    for i in range(phnum):
        p_type, _, _, _, paddr, filesz, memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:   # PT_LOAD
            segs.append((paddr, filesz, memsz))
    if not segs:
        die(f"{path}: no PT_LOAD segments")
    return entry, sorted(segs)


def build(elf_path, bin_path, version):
    entry, segs = read_elf(elf_path)
    flat = open(bin_path, "rb").read()
    if segs[0][0] != LOAD_ADDR:
        die(f"first PT_LOAD at {segs[0][0]:#x}, expected {LOAD_ADDR:#x}")
    if entry != LOAD_ADDR + ENTRY64_OFFSET:
        die(f"ELF entry {entry:#x} is not load address + {ENTRY64_OFFSET:#x}")
    file_end = max(p + f for p, f, _ in segs) - LOAD_ADDR
    if len(flat) != file_end:
        die(f"flat binary is {len(flat)} bytes, ELF says {file_end}")
    init_size = (max(p + m for p, _, m in segs) - LOAD_ADDR + 0xfff) & ~0xfff

    setup = bytearray((SETUP_SECTS + 1) * 512)

    def put(fmt, off, *vals):
        struct.pack_into("<" + fmt, setup, off, *vals)

    put("B", 0x1f1, SETUP_SECTS)
    put("I", 0x1f4, (len(flat) + 15) // 16)
    put("H", 0x1fa, 0xffff)
    put("H", 0x1fe, 0xaa55)
    put("BB", 0x200, 0xeb, STUB_OFFSET - 0x202)
    put("4s", 0x202, b"HdrS")
    put("H", 0x206, 0x020c)
    put("H", 0x20c, 0x1000)
    put("H", 0x20e, VERSION_OFFSET - 0x200)
    put("B", 0x211, 0x01)
    put("I", 0x214, LOAD_ADDR)
    put("I", 0x22c, 0x7fffffff)
    put("I", 0x230, 0x200000)
    put("B", 0x235, 21)
    put("H", 0x236, 0x0001)
    put("I", 0x238, 2047)
    put("Q", 0x258, LOAD_ADDR)
    put("I", 0x260, init_size)
    # 16-bit stub for loaders that run real-mode setup code: cli; hlt; jmp .-1
    put("4B", STUB_OFFSET, 0xfa, 0xf4, 0xeb, 0xfd)
    vs = version.encode() + b"\0"
    setup[VERSION_OFFSET:VERSION_OFFSET + len(vs)] = vs
    return bytes(setup) + flat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elf", required=True, help="linked kernel ELF")
    ap.add_argument("--bin", required=True, help="objcopy -O binary of it")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--version", default="sandvmm-testkernel")
    args = ap.parse_args()
    image = build(args.elf, args.bin, args.version)
    with open(args.output, "wb") as f:
        f.write(image)


if __name__ == "__main__":
    main()

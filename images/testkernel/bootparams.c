/*
 * bootparams.c - reads the Linux zero page or the PVH start_info.
 *
 * The offsets are those of the Linux boot protocol (Documentation/
 * arch/x86/zero-page.rst, boot.rst) and of Xen's arch-x86/hvm/start_info.h.
 * Only what the test kernel uses is read: the command line and the
 * memory map. Everything is copied, because the SMP trampoline and
 * later tests may reuse the low memory the structures live in.
 */
#include "bootparams.h"
#include "boot.h"

/* struct boot_params (the "zero page") */
#define ZP_E820_ENTRIES		0x1e8	/* u8 */
#define ZP_HDR_MAGIC		0x202	/* u32 "HdrS", set by some VMMs */
#define ZP_CMD_LINE_PTR		0x228	/* u32, physical, NUL-terminated */
#define ZP_EXT_CMD_LINE_PTR	0x0c8	/* u32, high half of the above */
#define ZP_E820_TABLE		0x2d0	/* 128 x { u64 addr, size; u32 type } */
#define ZP_E820_ENTRY_SIZE	20

/* struct hvm_start_info */
#define PVH_MAGIC		0x336ec578
#define PVH_OFF_MAGIC		0x00	/* u32 */
#define PVH_OFF_VERSION		0x04	/* u32 */
#define PVH_OFF_CMDLINE		0x18	/* u64 physical */
#define PVH_OFF_MEMMAP		0x28	/* u64 physical, version >= 1 */
#define PVH_OFF_MEMMAP_N	0x30	/* u32 */
#define PVH_MEMMAP_ENTRY_SIZE	24	/* { u64 addr, size; u32 type, pad } */

/* Unaligned-safe little-endian reads from loader memory. */
static u32 rd32(u64 addr)
{
	u32 v;

	memcpy(&v, (const void *)addr, sizeof(v));
	return v;
}

static u64 rd64(u64 addr)
{
	u64 v;

	memcpy(&v, (const void *)addr, sizeof(v));
	return v;
}

static void copy_cmdline(struct boot_info *bi, u64 addr)
{
	if (addr)
		strlcpy(bi->cmdline, (const char *)addr, sizeof(bi->cmdline));
	else
		bi->cmdline[0] = '\0';
}

/* Entries are read as addr, size, type at the start of each record. */
static void add_e820(struct boot_info *bi, u64 rec)
{
	struct e820_entry e = { rd64(rec), rd64(rec + 8), rd32(rec + 16) };

	bi->e820_total++;
	if (e.type == E820_RAM)
		bi->ram_bytes += e.size;
	if (bi->e820_count < BOOT_E820_MAX)
		bi->e820[bi->e820_count++] = e;
}

static void read_linux(u64 zp, struct boot_info *bi)
{
	u32 n = *(const u8 *)(zp + ZP_E820_ENTRIES);
	u64 cmd = rd32(zp + ZP_CMD_LINE_PTR);

	bi->loader = "linux";
	/* ext_cmd_line_ptr is only meaningful with a real setup header. */
	if (rd32(zp + ZP_HDR_MAGIC) == 0x53726448)
		cmd |= (u64)rd32(zp + ZP_EXT_CMD_LINE_PTR) << 32;
	copy_cmdline(bi, cmd);
	if (n > 128)
		n = 128;
	for (u32 i = 0; i < n; i++)
		add_e820(bi, zp + ZP_E820_TABLE + (u64)i * ZP_E820_ENTRY_SIZE);
}

static void read_pvh(u64 si, struct boot_info *bi)
{
	bi->loader = "pvh";
	if (rd32(si + PVH_OFF_MAGIC) != PVH_MAGIC) {
		bi->loader = "pvh(bad magic)";
		bi->cmdline[0] = '\0';
		return;
	}
	copy_cmdline(bi, rd64(si + PVH_OFF_CMDLINE));
	if (rd32(si + PVH_OFF_VERSION) >= 1) {
		u64 map = rd64(si + PVH_OFF_MEMMAP);
		u32 n = rd32(si + PVH_OFF_MEMMAP_N);

		for (u32 i = 0; map && i < n && i < 128; i++)
			add_e820(bi, map + (u64)i * PVH_MEMMAP_ENTRY_SIZE);
	}
}

void bootparams_read(u64 boot_ptr, u32 kind, struct boot_info *bi)
{
	memset(bi, 0, sizeof(*bi));
	bi->boot_ptr = boot_ptr;
	if (!boot_ptr) {
		bi->loader = "none";
		return;
	}
	if (kind == BOOT_PVH)
		read_pvh(boot_ptr, bi);
	else
		read_linux(boot_ptr, bi);
}

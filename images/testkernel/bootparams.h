/*
 * bootparams.h - what the kernel needs from its loader, read from
 * either the Linux zero page (struct boot_params) or, when booted via
 * PVH, from struct hvm_start_info, into one loader-neutral struct.
 */
#ifndef BOOTPARAMS_H
#define BOOTPARAMS_H

#include "lib.h"

#define BOOT_CMDLINE_MAX	2048	/* bzImage header says 2047 + NUL */
#define BOOT_E820_MAX		32	/* more than any test VM will have */

#define E820_RAM		1

struct e820_entry {
	u64 addr;
	u64 size;
	u32 type;
};

struct boot_info {
	const char *loader;		/* "linux" or "pvh", for the log */
	u64 boot_ptr;			/* physical address of the struct */
	char cmdline[BOOT_CMDLINE_MAX];	/* copied: low memory gets reused */
	u32 e820_count;			/* entries stored in e820[] */
	u32 e820_total;			/* entries the loader reported */
	struct e820_entry e820[BOOT_E820_MAX];
	u64 ram_bytes;			/* sum of E820_RAM entries */
};

/* Copies everything out, so the loader's memory may be reused later. */
void bootparams_read(u64 boot_ptr, u32 kind, struct boot_info *bi);
/* What kmain() read at boot (main.c). */
const struct boot_info *boot_info(void);

#endif

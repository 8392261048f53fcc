/*
 * boot.h - constants shared by entry.S and the C code.
 *
 * Plain #defines only, because the assembler includes this file too.
 */
#ifndef BOOT_H
#define BOOT_H

/* Second argument of kmain(): which loader entered us. */
#define BOOT_LINUX	0	/* 64-bit entry, pointer = struct boot_params */
#define BOOT_PVH	1	/* PVH entry, pointer = struct hvm_start_info */

/*
 * Where the AP trampoline is copied. The AP starts in real mode at
 * vector * 0x1000, and 0x1000-0x6fff is the low memory the VMM leaves
 * free (0x7000 and up hold the zero page, boot stack and page tables).
 */
#define TRAMP_BASE	0x6000

#define BSP_STACK_SIZE	16384
#define AP_STACK_SIZE	16384

#endif

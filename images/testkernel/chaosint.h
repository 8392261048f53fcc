/*
 * chaosint.h - what chaos.c shares with chaosblk.c: the memory layout
 * (described in chaos.c), the random generators, and the block rounds.
 */
#ifndef CHAOSINT_H
#define CHAOSINT_H

#include "lib.h"

#define TABLES		0x800000ull
#define TABLES_SIZE	0x10000ull
#define AVAIL		0x880000ull
#define DATA		0x900000ull
#define DATA_SIZE	0x100000ull
#define DATA_SLACK	0x20000ull
#define BLKQ		0x890000ull
#define BLKQ_HDRS	(BLKQ + 0x4000)
#define BLKQ_STATUS	(BLKQ + 0x5000)
#define QMAX		256		/* sandvmm's QueueNumMax; our tables hold this */
#define NOT_RAM_BIT	(1ull << 62)

/* chaos.c: xorshift64* and the generators built on it. */
u64 rnd(void);
u64 below(u64 n);
u64 any_value(void);
u64 not_ram(void);
u64 buffer_addr(void);

/* chaosblk.c: the block rounds. */
bool chaos_blk_find(void);		/* whether there is a virtio-blk device */
void chaos_blk_round(void);		/* one round of random requests */
void chaos_blk_forget(u64 base);	/* the device at base was reset by others */
void chaos_blk_report(void);		/* the "chaos blk" summary line */

#endif

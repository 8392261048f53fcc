/*
 * chaos.c - scenario=chaos: a hostile guest for the VMM's device models.
 *
 * Seeded from seed=N (default 1; xorshift64*), it runs iters=N rounds
 * (default 20000), each one random action:
 *   - serial: a random value to a random COM1 register (0x3f8-0x3ff),
 *     a read, or a rep outsb/insb burst, so DLAB, the divisor, loopback,
 *     FIFO control and interrupt enables all get scrambled;
 *   - i8042: random reads and writes of ports 0x60 and 0x64, except the
 *     reset command 0xfe to port 0x64, which would end the run;
 *   - virtio-mmio, only with virtio_mmio.device= on the command line:
 *     8/16/32/64-bit accesses, aligned or not, anywhere in the window
 *     (config space included); random Status values; queue set-up with
 *     random sizes and ring addresses; random QueueNotify values;
 *     random descriptor chains (random addresses, in RAM and outside it,
 *     random lengths, random flags including WRITE and INDIRECT, next
 *     links that loop or leave the table) made available and kicked;
 *     and now and then a correct bring-up to DRIVER_OK, so the device
 *     really runs those chains (TX sends what they point at; RX fills
 *     them with whatever arrives on the tap);
 *   - virtio-blk, only if one of the virtio_mmio.device= windows is a
 *     block device (1 round in 4, decided before the others): a proper
 *     bring-up of that device with random features and queue size when
 *     needed, then 1-4 random requests made available at once and
 *     kicked: random types (IN, OUT, FLUSH, GET_ID and unknown ones),
 *     sectors (inside the disk, at and past its end, near 2^64),
 *     lengths (whole sectors, none, odd, larger than the disk) cut into
 *     1-4 descriptors, and one in four made hostile (header writable or
 *     of the wrong size, no or a bad status descriptor, data of the
 *     wrong direction, outside RAM or too long, a loop, a link out of
 *     the table, INDIRECT, a head that lies). The round polls the used
 *     ring until every request is back (~20 ms at most; a request not
 *     back by then is "lost" and the device is set up afresh) and sorts
 *     what came back by the status byte the device wrote.
 *     When the block device is also the first window, the generic
 *     virtio rounds above hit it too, and the next block round starts
 *     with a fresh bring-up.
 * Nothing is printed during the rounds (the UART may be in loopback or
 * have DLAB set). Afterwards the UART is put back to 8N1 with FIFOs on
 * and interrupts off, a summary line is printed (and with a block
 * device a second one with what the guest saw of it), and the run
 * passes: the pass condition is that the VMM survived to read it.
 *
 * What the device may write must never be the kernel itself
 * (0x100000-_end), or a chain could overwrite our code and make the run
 * fail for the wrong reason. So every descriptor's buffer (random flags
 * make any of them device-writable) and every used ring is in DATA, in
 * the last 64 KiB of RAM, or outside RAM; descriptor tables and avail
 * rings, which the device only reads, are in TABLES and AVAIL, which
 * hold only such descriptors (or zeros). Indirect descriptors point at
 * 16-byte slots of TABLES. Queue address registers get values from the
 * same generators, even in the "random offset" action.
 *
 *   0x800000  TABLES  64 KiB: descriptor tables (q0 at +0, q1 at +4 KiB)
 *   0x880000  AVAIL   64 KiB: avail rings (q0 at +0, q1 at +4 KiB)
 *   0x890000  BLKQ    64 KiB: the block rounds' queue (virtq_mem at +0;
 *                     a used ring the device thinks has 256 entries
 *                     still ends below +16 KiB), request headers at
 *                     +16 KiB and status bytes at +20 KiB
 *   0x900000  DATA    1 MiB of buffers and used rings, plus 128 KiB of
 *                     slack for a 64 KiB frame written at its end
 * sandvmm's smallest guest has 16 MiB, so all of this is RAM. Block
 * data buffers start in DATA; an IN longer than DATA and its slack
 * (at most the disk's size) runs on into RAM above it, which nothing
 * uses either, never below it.
 */
#include "chaos.h"
#include "chaosint.h"
#include "bootparams.h"
#include "cmdline.h"
#include "cpu.h"
#include "serial.h"
#include "virtio.h"
#include "x86.h"


#define COM1		0x3f8
#define KBD_DATA	0x60
#define KBD_CMD		0x64
#define KBD_RESET	0xfe

extern char _end[];

static u64 rng;
static u64 ram_top;		/* end of the RAM below 4 GiB */
static struct virtio_dev dev;
static bool have_dev;
static u16 avail_idx[2];
static bool have_blk;

static struct {
	u64 serial, kbd, mmio, status, queue, chains, kicks, bringups, active;
} count;


/* xorshift64* (Vigna): plenty for picking registers and values. */
u64 rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

u64 below(u64 n)
{
	return n ? rnd() % n : 0;
}

/* A value of interest for a register: small, a power of two, an edge, or anything. */
u64 any_value(void)
{
	switch (rnd() & 7) {
	case 0: return 0;
	case 1: return below(16);
	case 2: return 1ull << below(64);
	case 3: return ~0ull;
	case 4: return (1ull << below(64)) - 1;
	default: return rnd();
	}
}

/* ---- addresses the device may write ----------------------------------- */

/* Something that is certainly not RAM: the MMIO gap, far above, or the top. */
u64 not_ram(void)
{
	switch (rnd() & 3) {
	case 0: return 0xd0000000ull + below(0x30000000ull);
	case 1: return ram_top + below(0x10000);
	case 2: return ~0ull - below(0x10000);
	/* The low half alone (if the high register half is left 0) is in the gap. */
	default: return rnd() | NOT_RAM_BIT | 0xd0000000ull;
	}
}

/* A buffer address: in DATA mostly, at the end of RAM, or not RAM. */
u64 buffer_addr(void)
{
	switch (rnd() & 7) {
	case 0: return ram_top - 1 - below(0x10000);	/* may run past the end */
	case 1: return not_ram();
	case 2: return DATA + DATA_SIZE - below(64);	/* at the edge of DATA */
	default: return DATA + below(DATA_SIZE);
	}
}

static u32 buffer_len(void)
{
	switch (rnd() & 7) {
	case 0: return 0;
	case 1: return (u32)below(13);			/* around the vnet header */
	case 2: return 2048;
	case 3: return 65562 + 12 + (u32)below(3) - 1;	/* around the largest frame */
	case 4: return ~0u - (u32)below(4);
	case 5: return (u32)rnd();
	default: return (u32)below(4096);
	}
}

/* ---- descriptors -------------------------------------------------------- */

static struct virtq_desc *table(int q)
{
	return (struct virtq_desc *)(TABLES + (u64)q * 0x1000);
}

static struct virtq_avail *avail(int q)
{
	return (struct virtq_avail *)(AVAIL + (u64)q * 0x1000);
}

/* Slot i of queue q's avail ring, for queues of up to QMAX entries (the
 * struct only declares the VIRTQ_MAX_SIZE our drivers use). */
static volatile u16 *avail_slot(int q, u16 i)
{
	return (volatile u16 *)(AVAIL + (u64)q * 0x1000 + 4) + i % QMAX;
}

/* One random descriptor, safe for the kernel whatever its flags. */
static void random_desc(struct virtq_desc *d)
{
	u16 flags = (u16)rnd();

	if (flags & 4) {			/* VIRTQ_DESC_F_INDIRECT */
		u64 slots = TABLES_SIZE / 16;
		u64 first = below(slots);
		u64 n = below(slots - first + 1);

		if (rnd() & 7) {
			d->addr = TABLES + 16 * first;
			d->len = (u32)(16 * n) | (rnd() & 15 ? 0 : (u32)below(16));
		} else {
			d->addr = not_ram();
			d->len = (u32)rnd();
		}
	} else {
		d->addr = buffer_addr();
		d->len = buffer_len();
	}
	d->flags = flags;
	d->next = (u16)(rnd() & 1 ? below(QMAX) : rnd());
}

/* Writes random chains of 1-8 descriptors into queue q's table, makes their
 * heads available and kicks. Links may loop, leave the table or point at
 * random entries. */
static void random_chains(int q)
{
	struct virtq_desc *t = table(q);
	struct virtq_avail *a = avail(q);
	u64 chains = 1 + below(4);

	for (u64 c = 0; c < chains; c++) {
		u16 head = (u16)below(QMAX);
		u64 len = 1 + below(8);

		for (u64 i = 0; i < len; i++) {
			u16 at = (u16)((head + i) % QMAX);

			random_desc(&t[at]);
			if (i + 1 < len && (rnd() & 3)) {	/* mostly well linked */
				t[at].flags |= VIRTQ_DESC_F_NEXT;
				t[at].next = (u16)((at + 1) % QMAX);
			}
		}
		*avail_slot(q, avail_idx[q]) = (rnd() & 7) ? head : (u16)rnd();
		avail_idx[q]++;
	}
	/* Sometimes publish a lie: an index far ahead of what was added. */
	barrier();
	a->idx = (rnd() & 15) ? avail_idx[q] : (u16)rnd();
	a->flags = (u16)(rnd() & 1);
	count.chains += chains;
}

/* RX buffers that work: one device-writable 2 KiB buffer per descriptor. */
static void good_rx_buffers(void)
{
	struct virtq_desc *t = table(0);
	struct virtq_avail *a = avail(0);

	for (u16 i = 0; i < VIRTQ_MAX_SIZE; i++) {
		t[i].addr = DATA + 0x800ull * i;
		t[i].len = 2048;
		t[i].flags = VIRTQ_DESC_F_WRITE;
		t[i].next = 0;
		*avail_slot(0, avail_idx[0]) = i;
		avail_idx[0]++;
	}
	barrier();
	a->idx = avail_idx[0];
}

/* ---- virtio-mmio ------------------------------------------------------- */

static void mmio_write(u64 off, u64 v, int width)
{
	u64 a = dev.base + off;

	switch (width) {
	case 1: *(volatile u8 *)a = (u8)v; break;
	case 2: *(volatile u16 *)a = (u16)v; break;
	case 4: *(volatile u32 *)a = (u32)v; break;
	default: *(volatile u64 *)a = v; break;
	}
}

static u64 mmio_read(u64 off, int width)
{
	u64 a = dev.base + off;

	switch (width) {
	case 1: return *(volatile u8 *)a;
	case 2: return *(volatile u16 *)a;
	case 4: return *(volatile u32 *)a;
	default: return *(volatile u64 *)a;
	}
}

static void wr32(u32 reg, u32 v)
{
	mmio_write(reg, v, 4);
}

/* A ring address for queue register reg (QueueDesc/Driver/Device Low or
 * High) that keeps the device's writes away from the kernel. */
static u32 ring_reg_value(u32 reg, int q)
{
	bool high = reg & 4;
	u64 addr;

	switch (reg & ~4u) {
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		switch (rnd() & 7) {
		case 0: addr = TABLES + 16 * below(TABLES_SIZE / 16 - QMAX); break;
		case 1: addr = TABLES + 1 + below(15); break;	/* misaligned */
		case 2: addr = not_ram(); break;
		default: addr = (u64)table(q & 1); break;
		}
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		switch (rnd() & 7) {
		case 0: addr = AVAIL + below(0x2000); break;	/* maybe misaligned */
		case 1: addr = not_ram(); break;
		default: addr = (u64)avail(q & 1); break;
		}
		break;
	default:					/* QueueDevice: the used ring */
		addr = (rnd() & 3) ? DATA + (below(DATA_SIZE) & ~3ull) : buffer_addr();
		break;
	}
	/* A high half that is not ours (not 0) is never RAM in a small guest. */
	if (high)
		return (rnd() & 7) ? (u32)(addr >> 32) : (u32)rnd() | 0x4000;
	return (u32)addr;
}

static bool is_ring_reg(u64 off)
{
	return off >= VIRTIO_MMIO_QUEUE_DESC_LOW && off < 0xa8 &&
	       (off & 0xc) != 0x8 && (off & 0xc) != 0xc;
}

/* Queue set-up with random size, addresses and readiness. */
static void random_queue_setup(void)
{
	u32 q = (rnd() & 7) ? (u32)below(2) : (u32)any_value();
	static const u32 regs[] = {
		VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
		VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
		VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
	};

	wr32(VIRTIO_MMIO_QUEUE_SEL, q);
	(void)mmio_read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4);
	wr32(VIRTIO_MMIO_QUEUE_NUM, (rnd() & 3) ? 1u << below(9) : (u32)any_value());
	for (u32 i = 0; i < ARRAY_SIZE(regs); i++)
		if (rnd() & 3)
			wr32(regs[i], ring_reg_value(regs[i], (int)q));
	wr32(VIRTIO_MMIO_QUEUE_READY, (rnd() & 3) ? 1 : (u32)any_value());
	count.queue++;
}

/* The driver's part of virtio 1.2 3.1.1, with random but mostly valid
 * choices, so the device really activates on our queues. */
static void bring_up(void)
{
	u64 offered, wanted;
	u32 st;

	wr32(VIRTIO_MMIO_STATUS, 0);
	wr32(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr32(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	offered = mmio_read(VIRTIO_MMIO_DEVICE_FEATURES, 4);
	wr32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	offered |= mmio_read(VIRTIO_MMIO_DEVICE_FEATURES, 4) << 32;
	wanted = (rnd() & 7) ? (offered & rnd()) | VIRTIO_F_VERSION_1 : rnd();
	wr32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr32(VIRTIO_MMIO_DRIVER_FEATURES, (u32)wanted);
	wr32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr32(VIRTIO_MMIO_DRIVER_FEATURES, (u32)(wanted >> 32));
	wr32(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
	for (int q = 0; q < 2; q++) {
		wr32(VIRTIO_MMIO_QUEUE_SEL, (u32)q);
		wr32(VIRTIO_MMIO_QUEUE_NUM, (rnd() & 7) ? 1u << below(9) : (u32)any_value());
		wr32(VIRTIO_MMIO_QUEUE_DESC_LOW, (rnd() & 7) ? (u32)(u64)table(q) :
			ring_reg_value(VIRTIO_MMIO_QUEUE_DESC_LOW, q));
		wr32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		wr32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (rnd() & 7) ? (u32)(u64)avail(q) :
			ring_reg_value(VIRTIO_MMIO_QUEUE_DRIVER_LOW, q));
		wr32(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
		wr32(VIRTIO_MMIO_QUEUE_DEVICE_LOW,
		     ring_reg_value(VIRTIO_MMIO_QUEUE_DEVICE_LOW, q));
		wr32(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
		wr32(VIRTIO_MMIO_QUEUE_READY, 1);
	}
	/* A fresh start for the avail rings, as a driver would after a reset. */
	for (int q = 0; q < 2; q++) {
		avail_idx[q] = 0;
		avail(q)->idx = 0;
	}
	if (rnd() & 1)
		good_rx_buffers();
	st = (u32)mmio_read(VIRTIO_MMIO_STATUS, 4);
	wr32(VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
	st = (u32)mmio_read(VIRTIO_MMIO_STATUS, 4);
	if ((st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET))
		count.active++;
	count.bringups++;
}

static void random_mmio_access(void)
{
	static const int widths[] = { 1, 2, 4, 8 };
	int width = (rnd() & 3) ? 4 : widths[rnd() & 3];
	u64 off;

	switch (rnd() & 3) {
	case 0: off = below(dev.size); break;			/* anywhere, unaligned */
	case 1: off = VIRTIO_MMIO_CONFIG + below(0x20); break;	/* config space */
	default: off = 4 * below(VIRTIO_MMIO_CONFIG / 4); break;/* a register */
	}
	if (off + (u64)width > dev.size)
		off = dev.size - (u64)width;
	if (rnd() & 1) {
		(void)mmio_read(off, width);
	} else if (is_ring_reg(off) && width == 4) {
		wr32((u32)off, ring_reg_value((u32)off, (int)below(2)));
	} else if (off >= VIRTIO_MMIO_QUEUE_DESC_LOW && off < 0xa8) {
		/* A ring address register hit at the wrong width or offset. The
		 * transport ignores such writes, but keep their values safe too. */
		mmio_write(off, DATA, width);
	} else {
		mmio_write(off, any_value(), width);
	}
	count.mmio++;
}

static void kick(void)
{
	u32 q = (rnd() & 7) ? (u32)below(2) : (u32)any_value();

	wr32(VIRTIO_MMIO_QUEUE_NOTIFY, q);
	count.kicks++;
}

static void random_virtio(void)
{
	switch (below(16)) {
	case 0:
		bring_up();
		break;
	case 1:
		wr32(VIRTIO_MMIO_STATUS, (rnd() & 1) ? (u32)any_value() : (u32)below(256));
		count.status++;
		break;
	case 2:
		random_queue_setup();
		break;
	case 3: case 4: case 5:
		random_chains((int)below(2));
		kick();
		break;
	case 6:
		kick();
		break;
	case 7:
		if (mmio_read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) || (rnd() & 1))
			wr32(VIRTIO_MMIO_INTERRUPT_ACK, (u32)any_value());
		break;
	default:
		random_mmio_access();
		break;
	}
}

/* ---- serial and i8042 -------------------------------------------------- */

static inline void insb_n(u16 port, void *buf, u64 n)
{
	__asm__ volatile("rep insb" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static void random_serial(void)
{
	u16 port = (u16)(COM1 + below(8));
	u8 buf[16];

	switch (rnd() & 7) {
	case 0: case 1:
		(void)inb(port);
		break;
	case 2:
		for (u32 i = 0; i < sizeof(buf); i++)
			buf[i] = (u8)rnd();
		outsb(port, buf, 1 + below(sizeof(buf)));
		break;
	case 3:
		insb_n(port, buf, 1 + below(sizeof(buf)));
		break;
	default:
		outb(port, (u8)any_value());
		break;
	}
	count.serial++;
}

static void random_kbd(void)
{
	u16 port = (rnd() & 1) ? KBD_CMD : KBD_DATA;
	u8 v = (u8)any_value();

	if (rnd() & 1) {
		(void)inb(port);
	} else {
		if (port == KBD_CMD && v == KBD_RESET)	/* would end the run */
			v = 0xfd;
		outb(port, v);
	}
	count.kbd++;
}

/* ---- the scenario ------------------------------------------------------ */

const char *run_chaos(void)
{
	const struct boot_info *bi = boot_info();
	u64 seed = cmdline_get_u64("seed", 1);
	u64 iters = cmdline_get_u64("iters", 20000);

	for (u32 i = 0; i < bi->e820_count; i++) {
		u64 end = bi->e820[i].addr + bi->e820[i].size;

		if (bi->e820[i].type == E820_RAM && end <= 0x100000000ull && end > ram_top)
			ram_top = end;
	}
	if ((u64)_end > TABLES || ram_top < DATA + DATA_SIZE + DATA_SLACK + 0x10000)
		return "layout";
	have_dev = !virtio_mmio_from_cmdline(&dev);
	/* Reads only MagicValue, Version and DeviceID of each window. */
	have_blk = chaos_blk_find();
	/* xorshift needs a non-zero state; mix the seed so 1, 2, 3 differ at once. */
	rng = (seed ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
	if (!rng)
		rng = 1;
	kprintf("SANDVMM-TEST: chaos seed=%lu iters=%lu virtio=%s blk=%s\n", seed,
		iters, have_dev ? "yes" : "no", have_blk ? "yes" : "no");
	serial_flush();

	for (u64 i = 0; i < iters; i++) {
		u64 r;

		/* Without a block device the rounds are what they always were. */
		if (have_blk && !below(4)) {
			chaos_blk_round();
			continue;
		}
		r = below(16);
		if (have_dev && r < 10) {
			random_virtio();
			/* The block device's set-up is not ours any more. */
			if (have_blk)
				chaos_blk_forget(dev.base);
		} else if (r < 13) {
			random_serial();
		} else {
			random_kbd();
		}
	}

	/* Back to a UART we can print on: 8N1, 115200, no loopback, FIFOs on
	 * and cleared, interrupts off. */
	serial_init();
	outb(COM1 + 2, 0x07);
	kprintf("\nSANDVMM-TEST: chaos done serial=%lu kbd=%lu mmio=%lu status=%lu "
		"queue=%lu chains=%lu kicks=%lu bringups=%lu active=%lu\n",
		count.serial, count.kbd, count.mmio, count.status, count.queue,
		count.chains, count.kicks, count.bringups, count.active);
	if (have_blk)
		chaos_blk_report();
	return NULL;
}

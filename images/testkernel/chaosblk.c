/*
 * chaosblk.c - the block rounds of scenario=chaos (chaos.c has the plan and
 * the memory layout): random virtio-blk requests, hostile ones among them,
 * on a virtio-blk device the rounds bring up themselves, each sorted by the
 * status byte the device wrote back (virtio 1.2 §5.2.6).
 */

#include "chaosint.h"
#include "cpu.h"
#include "lib.h"
#include "serial.h"
#include "virtio.h"
#include "x86.h"

/* The block device the block rounds drive, and what they saw of it. */
static struct virtio_dev blk;
static struct virtq blkq;
static bool blk_up;
static u64 blk_capacity;
static struct {
	u64 rounds, bringups, requests, hostile, ok, ioerr, unsupp, other;
	u64 dropped, lost, bad_used;
} bc;


/* §5.2.6 request types and statuses; blk.h has them too, but chaos stays
 * independent of the driver it is meant to outlive. */
#define BLK_T_IN	0
#define BLK_T_OUT	1
#define BLK_T_FLUSH	4
#define BLK_T_GET_ID	8
#define BLK_S_OK	0
#define BLK_S_IOERR	1
#define BLK_S_UNSUPP	2
#define BLK_POISON	0xff	/* in a status byte: not written */
#define BLK_MAX_REQS	4
#define BLK_WAIT_MS	20

struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

/* What one round sent, to match the used elements against. */
static struct {
	u16 head;
	bool back;
	volatile u8 *status;	/* NULL: no status byte of ours */
} sent[BLK_MAX_REQS];

/* §3.1.1 with the transport helpers; random features and queue size. */
static bool blk_bring_up(void)
{
	u64 wanted;

	blk_up = false;
	bc.bringups++;
	if (virtio_probe(&blk, VIRTIO_ID_BLOCK))
		return false;
	wanted = (rnd() & 3) ? ~0ull : rnd() | VIRTIO_F_VERSION_1;
	if (virtio_negotiate(&blk, wanted, VIRTIO_F_VERSION_1))
		return false;
	if (virtq_init(&blkq, &blk, 0, (struct virtq_mem *)BLKQ,
		       (u16)(1u << (2 + below(4))), (u16)(rnd() & 1)))
		return false;
	blk_capacity = 0;
	for (u32 i = 8; i--;)
		blk_capacity = (blk_capacity << 8) | virtio_config_read8(&blk, i);
	virtio_driver_ok(&blk);
	blk_up = !(virtio_status(&blk) &
		   (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
	return blk_up;
}

static u32 blk_type(void)
{
	static const u32 unknown[] = { 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15 };

	switch (below(16)) {
	case 0: case 1: case 2: case 3: case 4: return BLK_T_IN;
	case 5: case 6: case 7: case 8: return BLK_T_OUT;
	case 9: case 10: return BLK_T_FLUSH;
	case 11: case 12: return BLK_T_GET_ID;
	case 13: return (u32)any_value();
	default: return unknown[below(ARRAY_SIZE(unknown))];
	}
}

static u64 blk_sector(void)
{
	switch (rnd() & 7) {
	case 0: return blk_capacity - below(4);		/* the end, either side */
	case 1: return blk_capacity + below(1000);
	case 2: return ~0ull - below(1000);		/* sector * 512 wraps */
	case 3: return any_value();
	default: return below(blk_capacity);
	}
}

static u32 blk_len(void)
{
	switch (rnd() & 7) {
	case 0: return 0;
	case 1: return 1 + (u32)below(4096);		/* rarely whole sectors */
	case 2: return (u32)(blk_capacity * 512) + 512;	/* longer than the disk */
	default: return 512 * (1 + (u32)below(128));	/* up to 64 KiB */
	}
}

/* Appends descriptor i of the round; false when the table is full. */
static bool blk_desc(u16 *i, u64 addr, u32 len, u16 flags)
{
	struct virtq_desc *d = blkq.mem->desc;

	if (*i >= blkq.size)
		return false;
	d[*i].addr = addr;
	d[*i].len = len;
	d[*i].flags = flags;
	d[*i].next = (u16)(*i + 1);
	(*i)++;
	return true;
}

/*
 * One request from descriptor *next on: header, data in 1-4 pieces,
 * status; sometimes spoiled in one way. Returns the head, or -1 if the
 * table is full.
 */
static int blk_random_request(u16 *next, u32 n)
{
	struct virtq_desc *d = blkq.mem->desc;
	struct blk_hdr *h = (struct blk_hdr *)BLKQ_HDRS + n;
	volatile u8 *status = (volatile u8 *)BLKQ_STATUS + 64 * n;
	u16 head = *next, last;
	u32 type = blk_type(), len = blk_len();
	u32 pieces = 1 + (u32)below(4);
	u16 dflags = VIRTQ_DESC_F_NEXT |
		(type == BLK_T_IN || type == BLK_T_GET_ID ? VIRTQ_DESC_F_WRITE : 0);
	u64 at = DATA + (below(DATA_SIZE / 2) & ~7ull);
	int spoil = (rnd() & 3) ? -1 : (int)below(12);

	h->type = type;
	h->reserved = (rnd() & 7) ? 0 : (u32)rnd();
	h->sector = blk_sector();
	*status = BLK_POISON;
	if (type == BLK_T_FLUSH && (rnd() & 3))
		len = 0;				/* as FLUSH should be */
	if (!blk_desc(next, (u64)h, sizeof(*h), VIRTQ_DESC_F_NEXT))
		return -1;
	for (u32 p = 0, done = 0; len && p < pieces; p++) {
		u32 part = p + 1 == pieces ? len - done : (u32)below(len - done + 1);

		if (!blk_desc(next, at + done + 16 * p, part, dflags))
			return -1;
		done += part;
	}
	if (!blk_desc(next, (u64)status, 1, VIRTQ_DESC_F_WRITE))
		return -1;
	last = (u16)(*next - 1);
	d[last].next = 0;
	sent[n].status = status;

	if (spoil < 0)
		return head;
	bc.hostile++;
	switch (spoil) {
	case 0: d[head].flags |= VIRTQ_DESC_F_WRITE; break;	/* header writable */
	case 1: d[head].len = (u32)below(32); break;		/* header size */
	case 2: d[last].len = (u32)below(3) * 2; break;		/* status 0 or 2..4 B */
	case 3: d[last].flags &= (u16)~VIRTQ_DESC_F_WRITE; break; /* status read-only */
	case 4: d[head].flags &= (u16)~VIRTQ_DESC_F_NEXT; break; /* header alone */
	case 5:							/* data wrong way */
		if (last > head + 1)
			d[head + 1].flags ^= VIRTQ_DESC_F_WRITE;
		break;
	case 6:							/* data not in RAM */
		if (last > head + 1)
			d[head + 1].addr = not_ram();
		break;
	case 7:							/* data too long */
		if (last > head + 1)
			d[head + 1].len = 0xfffffe00u;
		break;
	case 8:							/* a loop */
		d[last].flags |= VIRTQ_DESC_F_NEXT;
		d[last].next = head;
		break;
	case 9:							/* out of the table */
		d[last].flags |= VIRTQ_DESC_F_NEXT;
		d[last].next = (u16)(blkq.size + below(1000));
		break;
	case 10:						/* INDIRECT, not offered */
		d[head + (last > head + 1)].flags |= 4;
		d[head + (last > head + 1)].addr = TABLES + 16 * below(QMAX);
		break;
	default:						/* status elsewhere */
		d[last].addr = buffer_addr();
		sent[n].status = NULL;
		break;
	}
	return head;
}

/* Sorts a returned request by its status byte. */
static void blk_count(u32 n)
{
	u8 st;

	sent[n].back = true;
	if (!sent[n].status) {		/* the status went somewhere else */
		bc.other++;
		return;
	}
	st = *sent[n].status;
	if (st == BLK_POISON)
		bc.dropped++;		/* returned without a status */
	else if (st == BLK_S_OK)
		bc.ok++;
	else if (st == BLK_S_IOERR)
		bc.ioerr++;
	else if (st == BLK_S_UNSUPP)
		bc.unsupp++;
	else
		bc.other++;
}

void chaos_blk_round(void)
{
	u32 nreq = 1 + (u32)below(BLK_MAX_REQS), n = 0, back = 0;
	u16 next = 0;
	u64 deadline;

	bc.rounds++;
	if (!blk_up && !blk_bring_up())
		return;
	for (; n < nreq; n++) {
		int head = blk_random_request(&next, n);

		if (head < 0)
			break;
		sent[n].head = (u16)head;
		sent[n].back = false;
		/* A head that lies, now and then: never comes back. */
		virtq_add(&blkq, (rnd() & 63) ? (u16)head : (u16)(blkq.size + below(64)));
	}
	if (!n)
		return;
	bc.requests += n;
	virtq_publish(&blkq);
	virtq_notify(&blkq);

	deadline = rdtsc() + tsc_ms_to_cycles(BLK_WAIT_MS);
	while (back < n && rdtsc() < deadline) {
		u32 id, len, i;

		if (!virtq_get_used(&blkq, &id, &len)) {
			cpu_relax();
			continue;
		}
		for (i = 0; i < n; i++)
			if (!sent[i].back && sent[i].head == id)
				break;
		if (i == n) {
			bc.bad_used++;
			continue;
		}
		blk_count(i);
		back++;
	}
	if (back < n) {
		/* Not trusted any more: a late one could land in the next round. */
		bc.lost += n - back;
		blk_up = false;
	}
	if (rnd() & 1)
		virtio_ack_interrupts(&blk);
}

bool chaos_blk_find(void)
{
	/* Reads only MagicValue, Version and DeviceID of each window. */
	return !virtio_find(&blk, VIRTIO_ID_BLOCK, 0);
}

void chaos_blk_forget(u64 base)
{
	if (base == blk.base)
		blk_up = false;
}

/* The second summary line: what the block rounds saw. */
void chaos_blk_report(void)
{
	kprintf("SANDVMM-TEST: chaos blk rounds=%lu bringups=%lu "
		"requests=%lu hostile=%lu ok=%lu ioerr=%lu unsupp=%lu "
		"other=%lu dropped=%lu lost=%lu bad-used=%lu\n",
		bc.rounds, bc.bringups, bc.requests, bc.hostile, bc.ok,
		bc.ioerr, bc.unsupp, bc.other, bc.dropped, bc.lost,
		bc.bad_used);
}

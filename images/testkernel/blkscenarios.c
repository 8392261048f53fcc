/*
 * blkscenarios.c - the block scenarios: blk-rw, blk-ro, blk-bench.
 *
 * Each brings up the blk_index-th (default 0) virtio-blk device among
 * the virtio_mmio.device= words (blk.c, virtio 1.2 §4.2 and §5.2) and
 * prints
 *     blk: virtio-mmio base=... features device=0x... driver=0x... queue=N
 *     SANDVMM-TEST: blk ready index=I capacity=C blk_size=B seg_max=S
 *                   size_max=M ro=0|1 flush=0|1
 * before its own work, and "blk: requests=... ok=... ioerr=..." (the
 * driver's counters) at the end.
 *
 *   blk-rw     writes the pattern below to the extents listed in
 *              rw_extents() (first and last sector, and six runs in
 *              between, as one to sixteen descriptors; 394 sectors),
 *              FLUSHes, reads every extent back into poisoned buffers
 *              and compares; checks GET_ID against blk_id= (default
 *              "diskI", sandvmm's default ID); reads the sector past
 *              the end and a run straddling it, both of which must be
 *              IOERR without data; then reads sector 0 once more.
 *              PASS sectors=C written=N bytes=N*512.
 *   blk-ro     for --disk ...,readonly=on: VIRTIO_BLK_F_RO must be
 *              offered; reads sectors 0-7, writes them (must be IOERR),
 *              reads them again (must be OK and unchanged); GET_ID as
 *              above. PASS sectors=C write=ioerr.
 *   blk-bench  writes bytes= (default 4 MiB) from sector 0 in 64 KiB
 *              requests and FLUSHes, reads it back in 64 KiB requests,
 *              then makes rand_reads= (default 1000) 4 KiB reads at
 *              random 4 KiB-aligned offsets. Times come from the TSC,
 *              whose rate is measured against the PIT (cpu.c). PASS
 *              write_KiB/s=W read_KiB/s=R rand4k_iops=I.
 *
 * The blk-rw pattern (tests/block.rs checks it in the image file): the
 * 512 bytes of sector s are 64 little-endian u64 words, word w being
 *     x  = (seed * 0x9e3779b97f4a7c15) ^ (s * 64 + w)
 *     x ^= x >> 29;  x *= 0xbf58476d1ce4e5b9;  x ^= x >> 32
 * (wrapping 64-bit arithmetic), seed from seed= (default 1). Every
 * sector of the disk gets different bytes, so data that lands at the
 * wrong offset is caught as surely as data that never lands.
 */
#include "blkscenarios.h"
#include "blk.h"
#include "cmdline.h"
#include "cpu.h"
#include "scenarios.h"
#include "x86.h"

#define WORDS_PER_SECTOR	(BLK_SECTOR / 8)
#define STAGE_BYTES		(128 * 1024)	/* the largest extent */
#define SEG_GAP			40		/* between scattered segments */
#define POISON			0xa5
#define BENCH_CHUNK		(64 * 1024)
#define BENCH_RAND_BYTES	4096

/* Pattern or data of one extent, contiguous; 8-byte words need 8-byte
 * alignment. */
static u8 stage[STAGE_BYTES] __attribute__((aligned(4096)));
/* The same, cut into segments with SEG_GAP bytes between them. */
static u8 scatter[STAGE_BYTES + BLK_MAX_SEGS * SEG_GAP]
	__attribute__((aligned(4096)));
static u8 before_ro[4096] __attribute__((aligned(64)));
static char reason[48];

/* ---- common -------------------------------------------------------- */

/* "what-status", e.g. write-ioerr, as a one-word FAIL reason. */
static const char *status_reason(const char *what, int st)
{
	ksnprintf(reason, sizeof(reason), "%s-%s", what, blk_status_name(st));
	return reason;
}

static const char *bringup(u32 *index)
{
	const struct virtio_dev *d;
	const struct blk_info *bi;
	const char *why;

	*index = (u32)cmdline_get_u64("blk_index", 0);
	if ((why = blk_init(*index)))
		return why;
	d = blk_device();
	bi = blk_get_info();
	kprintf("blk: virtio-mmio base=0x%lx size=0x%lx irq=%u features "
		"device=0x%lx driver=0x%lx queue=%u\n",
		d->base, d->size, d->irq, d->device_features,
		d->driver_features, bi->queue_size);
	kprintf("SANDVMM-TEST: blk ready index=%u capacity=%lu blk_size=%u "
		"seg_max=%u size_max=%u ro=%u flush=%u\n",
		*index, bi->capacity, bi->blk_size, bi->seg_max, bi->size_max,
		bi->read_only, bi->flush);
	if (!bi->capacity)
		return "no-capacity";
	return NULL;
}

static void print_stats(void)
{
	const struct blk_stats *s = blk_get_stats();

	kprintf("blk: requests=%lu ok=%lu ioerr=%lu unsupp=%lu "
		"other-status=%lu no-status=%lu timeouts=%lu bad-used=%lu\n",
		s->requests, s->ok, s->ioerr, s->unsupp, s->other_status,
		s->no_status, s->timeouts, s->bad_used);
}

/* GET_ID (§5.2.6) must answer blk_id=, or sandvmm's default "diskI",
 * NUL-padded to 20 bytes. */
static const char *check_id(u32 index)
{
	char want[BLK_ID_BYTES + 1];
	u8 id[BLK_ID_BYTES];
	struct blk_seg seg = { id, sizeof(id) };
	u32 used = 0;
	int st;

	memset(want, 0, sizeof(want));
	if (!cmdline_get("blk_id", want, sizeof(want)))
		ksnprintf(want, sizeof(want), "disk%u", index);
	memset(id, POISON, sizeof(id));
	st = blk_request(VIRTIO_BLK_T_GET_ID, 0, &seg, 1, &used,
			 BLK_TIMEOUT_MS);
	if (st != VIRTIO_BLK_S_OK)
		return status_reason("get-id", st);
	/* Printable up to the first NUL: the ID is ASCII by convention. */
	{
		char shown[BLK_ID_BYTES + 1];
		u32 n = 0;

		while (n < BLK_ID_BYTES && id[n] >= 0x20 && id[n] < 0x7f) {
			shown[n] = (char)id[n];
			n++;
		}
		shown[n] = '\0';
		kprintf("blk: id=\"%s\" want=\"%s\" used-len=%u\n", shown,
			want, used);
	}
	for (u32 i = 0; i < BLK_ID_BYTES; i++)
		if (id[i] != (u8)want[i])
			return "wrong-id";
	/* §2.7.8: the bytes written, the 20 ID bytes and the status. */
	if (used != BLK_ID_BYTES + 1)
		return "get-id-used-len";
	return NULL;
}

/* ---- the pattern ------------------------------------------------------- */

static u64 pattern_word(u64 seed, u64 sector, u32 w)
{
	u64 x = (seed * 0x9e3779b97f4a7c15ull) ^ (sector * WORDS_PER_SECTOR + w);

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return x;
}

static void fill_pattern(u8 *buf, u64 seed, u64 sector, u32 nsect)
{
	u64 *p = (u64 *)buf;

	for (u32 s = 0; s < nsect; s++)
		for (u32 w = 0; w < WORDS_PER_SECTOR; w++)
			*p++ = pattern_word(seed, sector + s, w);
}

/* Compares; on a difference prints where and returns false. */
static bool check_pattern(const u8 *buf, u64 seed, u64 sector, u32 nsect)
{
	const u64 *p = (const u64 *)buf;

	for (u32 s = 0; s < nsect; s++) {
		for (u32 w = 0; w < WORDS_PER_SECTOR; w++, p++) {
			u64 want = pattern_word(seed, sector + s, w);

			if (*p != want) {
				kprintf("blk: sector %lu word %u is 0x%lx, "
					"want 0x%lx\n", sector + s, w, *p,
					want);
				return false;
			}
		}
	}
	return true;
}

/* ---- blk-rw -------------------------------------------------------- */

/*
 * One run of sectors and how it travels: nseg == 0 lets blk_rw() cut it
 * at size_max; otherwise it is cut into nseg descriptors at uneven,
 * mostly odd offsets, each at its own address with SEG_GAP bytes
 * between, so a device that ignored where one buffer ends and the next
 * begins would put data in the wrong place.
 */
struct extent {
	u64 sector;
	u32 nsect;
	u32 nseg;
};

#define RW_EXTENTS	8

/* Spread over the whole disk; see rw_check_extents() for the fit. */
static void rw_extents(u64 c, struct extent e[RW_EXTENTS])
{
	const struct extent list[RW_EXTENTS] = {
		{ 0, 1, 1 },			/* the first sector */
		{ c - 1, 1, 1 },		/* the last one */
		{ c / 8, 16, 16 },		/* sixteen descriptors */
		{ c / 4 + 1, 24, 3 },		/* three, cut unevenly */
		{ c / 2 - 3, 8, 1 },		/* 4 KiB, one descriptor */
		{ 5 * c / 8 + 7, 200, 0 },	/* 100 KiB: two at size_max */
		{ 7 * c / 8 - 64, 128, 1 },	/* 64 KiB, one descriptor */
		{ c - 17, 16, 2 },		/* next to the last sector */
	};

	memcpy(e, list, sizeof(list));
}

/* Every extent inside the disk and none overlapping another. */
static bool rw_check_extents(u64 c, const struct extent *e)
{
	for (u32 i = 0; i < RW_EXTENTS; i++) {
		if (e[i].sector >= c || e[i].nsect > c - e[i].sector)
			return false;
		for (u32 j = 0; j < i; j++)
			if (e[i].sector < e[j].sector + e[j].nsect &&
			    e[j].sector < e[i].sector + e[i].nsect)
				return false;
	}
	return true;
}

/* Start of segment i of n over len bytes: i*len/n, less 3 for odd i. */
static u32 seg_start(u32 i, u32 n, u32 len)
{
	if (i == 0 || i == n)
		return i ? len : 0;
	return (u32)((u64)i * len / n) - (i & 1 ? 3 : 0);
}

/*
 * Carries out an IN or OUT of e. OUT sends the pattern; IN reads into
 * poisoned memory, checks that the gaps between segments are still
 * poison, and leaves the data contiguous in stage.
 */
static int extent_io(u32 type, const struct extent *e, u64 seed, u32 *used)
{
	u32 len = e->nsect * BLK_SECTOR;
	struct blk_seg segs[BLK_MAX_SEGS];
	int st;

	if (type == VIRTIO_BLK_T_OUT)
		fill_pattern(stage, seed, e->sector, e->nsect);
	else
		memset(stage, POISON, len);
	if (!e->nseg)
		return blk_rw(type, e->sector, stage, len, used);

	memset(scatter, POISON, len + e->nseg * SEG_GAP);
	for (u32 i = 0; i < e->nseg; i++) {
		u32 a = seg_start(i, e->nseg, len);
		u32 b = seg_start(i + 1, e->nseg, len);

		segs[i].buf = scatter + a + i * SEG_GAP;
		segs[i].len = b - a;
		if (type == VIRTIO_BLK_T_OUT)
			memcpy(segs[i].buf, stage + a, b - a);
	}
	st = blk_request(type, e->sector, segs, e->nseg, used,
			 BLK_TIMEOUT_MS);
	if (type != VIRTIO_BLK_T_IN)
		return st;
	for (u32 i = 0; i < e->nseg; i++) {
		u32 a = seg_start(i, e->nseg, len);
		u32 b = seg_start(i + 1, e->nseg, len);
		const u8 *gap = scatter + b + i * SEG_GAP;

		memcpy(stage + a, segs[i].buf, b - a);
		for (u32 g = 0; g < SEG_GAP; g++) {
			if (gap[g] != POISON) {
				kprintf("blk: sector %lu: the device wrote "
					"between segments %u and %u\n",
					e->sector, i, i + 1);
				return BLK_BAD_REQUEST;
			}
		}
	}
	return st;
}

/* Reads e back and compares it with the pattern. */
static const char *rw_verify(const struct extent *e, u64 seed)
{
	u32 used = 0;
	int st = extent_io(VIRTIO_BLK_T_IN, e, seed, &used);

	if (st != VIRTIO_BLK_S_OK)
		return status_reason("read", st);
	/* §2.7.8: the data the device wrote, and the status byte. */
	if (used != e->nsect * BLK_SECTOR + 1)
		return "read-used-len";
	if (!check_pattern(stage, seed, e->sector, e->nsect))
		return "mismatch";
	return NULL;
}

/* A read the device must refuse with IOERR, writing nothing (§5.2.6.2). */
static const char *read_past_end(u64 sector, u32 nsect)
{
	struct blk_seg seg = { stage, nsect * BLK_SECTOR };
	u32 used = 0;
	int st;

	memset(stage, POISON, seg.len);
	st = blk_request(VIRTIO_BLK_T_IN, sector, &seg, 1, &used,
			 BLK_TIMEOUT_MS);
	kprintf("blk: read of %u at sector %lu: %s used-len=%u\n", nsect,
		sector, blk_status_name(st), used);
	if (st != VIRTIO_BLK_S_IOERR)
		return status_reason("past-end", st);
	for (u32 i = 0; i < seg.len; i++)
		if (stage[i] != POISON)
			return "past-end-data";
	return NULL;
}

const char *run_blk_rw(void)
{
	u64 seed = cmdline_get_u64("seed", 1);
	struct extent ext[RW_EXTENTS];
	u64 c, written = 0;
	const char *why;
	u32 index, used;
	int st;

	if ((why = bringup(&index)))
		return why;
	c = blk_get_info()->capacity;
	rw_extents(c, ext);
	if (!rw_check_extents(c, ext))
		return "disk-too-small";

	for (u32 i = 0; i < RW_EXTENTS; i++) {
		used = 0;
		st = extent_io(VIRTIO_BLK_T_OUT, &ext[i], seed, &used);
		if (st != VIRTIO_BLK_S_OK) {
			kprintf("blk: write of %u at sector %lu: %s\n",
				ext[i].nsect, ext[i].sector,
				blk_status_name(st));
			return status_reason("write", st);
		}
		if (used != 1)		/* the status byte alone */
			return "write-used-len";
		written += ext[i].nsect;
	}
	/* §5.2.6.2: after FLUSH the writes are on stable storage. */
	if (blk_get_info()->flush) {
		st = blk_request(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &used,
				 BLK_TIMEOUT_MS);
		if (st != VIRTIO_BLK_S_OK)
			return status_reason("flush", st);
	} else {
		kprintf("blk: no VIRTIO_BLK_F_FLUSH; writes are durable "
			"on completion\n");
	}
	for (u32 i = 0; i < RW_EXTENTS; i++)
		if ((why = rw_verify(&ext[i], seed)))
			return why;
	kprintf("blk: wrote, flushed and read back %u extents, %lu sectors "
		"(seed=%lu)\n", RW_EXTENTS, written, seed);

	if ((why = check_id(index)))
		return why;
	/* §5.2.6.1 forbids these; the device must still answer them. */
	if ((why = read_past_end(c, 1)) || (why = read_past_end(c - 1, 2)))
		return why;
	/* The device still works after refusing them. */
	if ((why = rw_verify(&ext[0], seed)))
		return why;

	print_stats();
	scenario_pass_detail("sectors=%lu written=%lu bytes=%lu", c, written,
			     written * BLK_SECTOR);
	return NULL;
}

/* ---- blk-ro -------------------------------------------------------- */

const char *run_blk_ro(void)
{
	const u32 len = sizeof(before_ro);
	const char *why;
	u32 index, used = 0;
	int st;

	if ((why = bringup(&index)))
		return why;
	if (!(blk_device()->device_features & VIRTIO_BLK_F_RO))
		return "not-read-only";
	if (blk_get_info()->capacity < len / BLK_SECTOR)
		return "disk-too-small";

	memset(before_ro, POISON, len);
	st = blk_rw(VIRTIO_BLK_T_IN, 0, before_ro, len, &used);
	if (st != VIRTIO_BLK_S_OK)
		return status_reason("read", st);
	/*
	 * §5.2.6.2: with VIRTIO_BLK_F_RO offered the device must answer a
	 * write IOERR and write nothing. The driver is not supposed to try
	 * (§5.2.6.1); this one does, to see that refusal.
	 */
	fill_pattern(stage, 1, 0, len / BLK_SECTOR);
	st = blk_rw(VIRTIO_BLK_T_OUT, 0, stage, len, &used);
	kprintf("blk: write to the read-only disk: %s used-len=%u\n",
		blk_status_name(st), used);
	if (st != VIRTIO_BLK_S_IOERR)
		return status_reason("write", st);
	memset(stage, POISON, len);
	st = blk_rw(VIRTIO_BLK_T_IN, 0, stage, len, &used);
	if (st != VIRTIO_BLK_S_OK)
		return status_reason("reread", st);
	for (u32 i = 0; i < len; i++)
		if (stage[i] != before_ro[i])
			return "written-anyway";
	if ((why = check_id(index)))
		return why;

	print_stats();
	scenario_pass_detail("sectors=%lu write=ioerr",
			     blk_get_info()->capacity);
	return NULL;
}

/* ---- blk-bench ----------------------------------------------------- */

static u64 bench_rng;

/* xorshift64 (Marsaglia): only picks sectors. */
static u64 bench_rnd(void)
{
	bench_rng ^= bench_rng << 13;
	bench_rng ^= bench_rng >> 7;
	bench_rng ^= bench_rng << 17;
	return bench_rng;
}

static u64 cycles_to_us(u64 cycles, u64 hz)
{
	u64 us = cycles * 1000000 / hz;

	return us ? us : 1;
}

/* Sequential 64 KiB requests over bytes; the first word of each is its
 * offset, so the read pass can see it got the right data. */
static const char *bench_pass(u32 type, u64 bytes)
{
	for (u64 off = 0; off < bytes; off += BENCH_CHUNK) {
		u32 n = (u32)MIN((u64)BENCH_CHUNK, bytes - off);
		u64 *first = (u64 *)stage;
		int st;

		*first = type == VIRTIO_BLK_T_OUT ? off : ~0ull;
		st = blk_rw(type, off / BLK_SECTOR, stage, n, NULL);
		if (st != VIRTIO_BLK_S_OK)
			return status_reason(type == VIRTIO_BLK_T_OUT ?
					     "write" : "read", st);
		if (type == VIRTIO_BLK_T_IN && *first != off)
			return "mismatch";
	}
	return NULL;
}

const char *run_blk_bench(void)
{
	u64 bytes = cmdline_get_u64("bytes", 4 << 20) & ~(u64)(BLK_SECTOR - 1);
	u64 rand_reads = cmdline_get_u64("rand_reads", 1000);
	u64 hz, c, t0, t1, t2, t3, t4;
	u64 write_us, flush_us, read_us, rand_us;
	const char *why, *hz_from = "pit";
	u32 index;
	int st;

	if ((why = bringup(&index)))
		return why;
	c = blk_get_info()->capacity;
	if (!bytes || bytes / BLK_SECTOR > c || c < BENCH_RAND_BYTES / BLK_SECTOR)
		return "disk-too-small";
	if (!(hz = tsc_measure_hz())) {
		hz = TSC_HZ_GUESS;
		hz_from = "guess";
	}
	/* Any bytes will do; these are not all one value. */
	for (u32 i = 0; i < BENCH_CHUNK; i++)
		stage[i] = (u8)(i * 7 + (i >> 9));
	bench_rng = 0x2545f4914f6cdd1dull;

	t0 = rdtsc();
	if ((why = bench_pass(VIRTIO_BLK_T_OUT, bytes)))
		return why;
	t1 = rdtsc();
	if (blk_get_info()->flush) {
		st = blk_request(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL,
				 BLK_TIMEOUT_MS);
		if (st != VIRTIO_BLK_S_OK)
			return status_reason("flush", st);
	}
	t2 = rdtsc();
	if ((why = bench_pass(VIRTIO_BLK_T_IN, bytes)))
		return why;
	t3 = rdtsc();
	for (u64 i = 0; i < rand_reads; i++) {
		u64 slots = c / (BENCH_RAND_BYTES / BLK_SECTOR);
		u64 sector = bench_rnd() % slots *
			     (BENCH_RAND_BYTES / BLK_SECTOR);

		st = blk_rw(VIRTIO_BLK_T_IN, sector, stage, BENCH_RAND_BYTES,
			    NULL);
		if (st != VIRTIO_BLK_S_OK)
			return status_reason("rand-read", st);
	}
	t4 = rdtsc();

	/* The write figure includes the FLUSH: data on disk, not in RAM. */
	write_us = cycles_to_us(t2 - t0, hz);
	flush_us = cycles_to_us(t2 - t1, hz);
	read_us = cycles_to_us(t3 - t2, hz);
	rand_us = cycles_to_us(t4 - t3, hz);
	kprintf("blk-bench: bytes=%lu chunk=%u write_us=%lu (flush_us=%lu) "
		"read_us=%lu rand_reads=%lu rand_us=%lu tsc_hz=%lu (%s)\n",
		bytes, BENCH_CHUNK, write_us, flush_us, read_us, rand_reads,
		rand_us, hz, hz_from);
	print_stats();
	scenario_pass_detail("write_KiB/s=%lu read_KiB/s=%lu rand4k_iops=%lu",
			     bytes / 1024 * 1000000 / write_us,
			     bytes / 1024 * 1000000 / read_us,
			     rand_reads * 1000000 / rand_us);
	return NULL;
}

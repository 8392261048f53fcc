/*
 * blk.c - polled virtio-blk driver (virtio 1.2 §5.2) over virtio-mmio.
 *
 * Bring-up follows §3.1.1 and §5.2.5:
 *   1. find the index-th window with DeviceID 2       (virtio_find)
 *   2. reset, ACKNOWLEDGE, DRIVER                      (virtio_probe)
 *   3. features: VERSION_1 required; SIZE_MAX, SEG_MAX, RO, BLK_SIZE,
 *      FLUSH taken if offered; FEATURES_OK, re-read    (virtio_negotiate)
 *   4. requestq (queue 0, §5.2.2)                      (§4.2.3.2)
 *   5. capacity, size_max, seg_max, blk_size from config space (§5.2.4),
 *      under ConfigGeneration (§2.5.1)
 *   6. DRIVER_OK
 *
 * Requests (§5.2.6) go out one at a time, always as the chain starting
 * at descriptor 0: header, data, status. A used element with another
 * id is counted and ignored rather than trusted. The avail ring asks
 * for no used-buffer interrupts (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7):
 * the driver polls, so an interrupt would only cost the VMM an irqfd
 * write per request.
 *
 * The status byte is set to 0xff before each request: no status the
 * device defines, so a chain the device returns without completing it
 * (a dropped, malformed chain) shows as BLK_NO_STATUS.
 */
#include "blk.h"
#include "cpu.h"
#include "x86.h"

#define STATUS_POISON		0xff

/* struct virtio_blk_req's device-readable part (§5.2.6), little endian. */
struct blk_req_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct virtio_dev dev;
static struct virtq q;
static struct virtq_mem q_mem;
/* Header and status of the one request in flight; the device reads
 * the first and writes the second. */
static struct blk_req_hdr req_hdr __attribute__((aligned(64)));
static volatile u8 req_status __attribute__((aligned(64)));
static bool stopped;		/* a request timed out: queue not ours */

static struct blk_info info;
static struct blk_stats stats;

/* §4.2.2.2: config space read byte by byte, little endian (§2.5). */
static u64 config_le(u32 offset, u32 bytes)
{
	u64 v = 0;

	while (bytes--)
		v = (v << 8) | virtio_config_read8(&dev, offset + bytes);
	return v;
}

/*
 * §5.2.4: capacity at 0, size_max at 8, seg_max at 12, blk_size at 20;
 * the last three only mean something if their feature was negotiated.
 * §2.5.1: retry until ConfigGeneration is the same before and after.
 */
static void read_config(void)
{
	u64 f = dev.driver_features;
	u32 before, after;

	do {
		before = virtio_config_generation(&dev);
		info.capacity = config_le(0, 8);
		info.size_max = f & VIRTIO_BLK_F_SIZE_MAX ? (u32)config_le(8, 4) : 0;
		info.seg_max = f & VIRTIO_BLK_F_SEG_MAX ? (u32)config_le(12, 4) : 0;
		info.blk_size = f & VIRTIO_BLK_F_BLK_SIZE ?
				(u32)config_le(20, 4) : BLK_SECTOR;
		after = virtio_config_generation(&dev);
	} while (before != after);
	info.read_only = f & VIRTIO_BLK_F_RO;
	info.flush = f & VIRTIO_BLK_F_FLUSH;
	info.queue_size = q.size;
}

static const char *bring_up(u32 index)
{
	const u64 wanted = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SIZE_MAX |
			   VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_RO |
			   VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
	const char *why;

	if ((why = virtio_find(&dev, VIRTIO_ID_BLOCK, index)))
		return why;
	if ((why = virtio_probe(&dev, VIRTIO_ID_BLOCK)))
		return why;
	if ((why = virtio_negotiate(&dev, wanted, VIRTIO_F_VERSION_1)))
		return why;
	why = virtq_init(&q, &dev, 0, &q_mem, BLK_QSIZE,
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (why)
		return why;
	/* Header, status and at least one data segment. */
	if (q.size < 3)
		return "queue-too-small";
	if (dev.size < VIRTIO_MMIO_CONFIG + 24)
		return "bad-address";
	read_config();

	virtio_driver_ok(&dev);
	if (virtio_status(&dev) &
	    (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		return "device-error";
	return NULL;
}

const char *blk_init(u32 index)
{
	const char *why;

	memset(&info, 0, sizeof(info));
	memset(&stats, 0, sizeof(stats));
	stopped = false;
	why = bring_up(index);
	/* Tell the device we gave up, unless it was never touched. */
	if (why && dev.device_id == VIRTIO_ID_BLOCK)
		virtio_fail(&dev);
	return why;
}

const struct virtio_dev *blk_device(void)
{
	return &dev;
}

const struct blk_info *blk_get_info(void)
{
	return &info;
}

const struct blk_stats *blk_get_stats(void)
{
	return &stats;
}

static void count_status(int st)
{
	switch (st) {
	case VIRTIO_BLK_S_OK: stats.ok++; break;
	case VIRTIO_BLK_S_IOERR: stats.ioerr++; break;
	case VIRTIO_BLK_S_UNSUPP: stats.unsupp++; break;
	case BLK_NO_STATUS: stats.no_status++; break;
	default: stats.other_status++; break;
	}
}

int blk_request(u32 type, u64 sector, const struct blk_seg *segs, u32 nseg,
		u32 *used_len, u64 timeout_ms)
{
	struct virtq_desc *d = q_mem.desc;
	/* §5.2.6: IN and GET_ID data is written by the device. */
	u16 data_flags = VIRTQ_DESC_F_NEXT |
		(type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID ?
		 VIRTQ_DESC_F_WRITE : 0);
	u16 last = (u16)(nseg + 1);
	u64 deadline;
	u32 id, len;
	int st;

	if (stopped || nseg > BLK_MAX_SEGS || last >= q.size)
		return BLK_BAD_REQUEST;
	req_hdr.type = type;
	req_hdr.reserved = 0;
	req_hdr.sector = sector;
	req_status = STATUS_POISON;

	/* §2.7.13.1: header, data, status, linked by next. */
	d[0].addr = (u64)&req_hdr;
	d[0].len = sizeof(req_hdr);
	d[0].flags = VIRTQ_DESC_F_NEXT;
	d[0].next = 1;
	for (u32 i = 0; i < nseg; i++) {
		d[1 + i].addr = (u64)segs[i].buf;
		d[1 + i].len = segs[i].len;
		d[1 + i].flags = data_flags;
		d[1 + i].next = (u16)(2 + i);
	}
	d[last].addr = (u64)&req_status;
	d[last].len = 1;
	d[last].flags = VIRTQ_DESC_F_WRITE;
	d[last].next = 0;

	virtq_add(&q, 0);
	virtq_publish(&q);
	virtq_notify(&q);
	stats.requests++;

	deadline = rdtsc() + tsc_ms_to_cycles(timeout_ms);
	for (;;) {
		if (virtq_get_used(&q, &id, &len)) {
			if (id == 0)
				break;
			stats.bad_used++;
			continue;
		}
		if (rdtsc() > deadline) {
			stats.timeouts++;
			stopped = true;
			return BLK_TIMEOUT;
		}
		cpu_relax();
	}
	if (used_len)
		*used_len = len;
	barrier();	/* the status byte after the used element (§2.7.14) */
	st = req_status == STATUS_POISON ? BLK_NO_STATUS : req_status;
	count_status(st);
	return st;
}

int blk_rw(u32 type, u64 sector, void *buf, u32 len, u32 *used_len)
{
	struct blk_seg segs[BLK_MAX_SEGS];
	u32 seg = info.size_max ? info.size_max : len;
	u32 max_segs = BLK_MAX_SEGS;
	u32 n = 0;

	if (info.seg_max && info.seg_max < max_segs)
		max_segs = info.seg_max;
	if (max_segs > (u32)q.size - 2)
		max_segs = (u32)q.size - 2;
	/* §5.2.6.1 is the caller's business; size_max and seg_max ours. */
	for (u32 off = 0; off < len; off += seg) {
		if (n == max_segs)
			return BLK_BAD_REQUEST;
		segs[n].buf = (u8 *)buf + off;
		segs[n].len = MIN(seg, len - off);
		n++;
	}
	return blk_request(type, sector, segs, n, used_len, BLK_TIMEOUT_MS);
}

const char *blk_status_name(int status)
{
	switch (status) {
	case VIRTIO_BLK_S_OK: return "ok";
	case VIRTIO_BLK_S_IOERR: return "ioerr";
	case VIRTIO_BLK_S_UNSUPP: return "unsupp";
	case BLK_NO_STATUS: return "nostatus";
	case BLK_TIMEOUT: return "timeout";
	case BLK_BAD_REQUEST: return "badrequest";
	default: return "badstatus";
	}
}

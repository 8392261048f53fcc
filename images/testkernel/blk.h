/*
 * blk.h - polled virtio-blk driver (virtio 1.2 §5.2) on virtio-mmio.
 *
 * One request queue, requestq = queue 0 (§5.2.2). Features: VERSION_1
 * (required), and SIZE_MAX, SEG_MAX, RO, BLK_SIZE and FLUSH when
 * offered (§5.2.3): the driver understands each of them, and nothing
 * else (no multiqueue, discard, write-zeroes, indirect descriptors or
 * event index).
 *
 * One request is in flight at a time. It is a chain of descriptors in
 * the framing every driver uses (§5.2.6): the 16-byte header alone in
 * the first, device-readable; the data buffers in the middle, one
 * descriptor each (device-writable for IN and GET_ID, readable for
 * OUT); the status byte alone in the last, device-writable. The driver
 * makes it available, notifies and polls the used ring.
 */
#ifndef BLK_H
#define BLK_H

#include "lib.h"
#include "virtio.h"

/* §5.2.3 Feature bits. */
#define VIRTIO_BLK_F_SIZE_MAX	(1ull << 1)	/* size_max is valid */
#define VIRTIO_BLK_F_SEG_MAX	(1ull << 2)	/* seg_max is valid */
#define VIRTIO_BLK_F_RO		(1ull << 5)	/* the disk is read-only */
#define VIRTIO_BLK_F_BLK_SIZE	(1ull << 6)	/* blk_size is valid */
#define VIRTIO_BLK_F_FLUSH	(1ull << 9)	/* FLUSH; volatile cache */

/* §5.2.6 request types. */
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8

/* §5.2.6 status byte values. */
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2

/* What blk_request() returns when the device wrote no status byte. */
#define BLK_NO_STATUS		(-1)	/* chain returned, status untouched */
#define BLK_TIMEOUT		(-2)	/* chain not returned in time */
#define BLK_BAD_REQUEST		(-3)	/* refused by the driver, not sent */

/* How long blk_rw() waits; the VMM answers in microseconds. */
#define BLK_TIMEOUT_MS		5000

#define BLK_SECTOR		512	/* §5.2.6: sectors are always 512 B */
#define BLK_ID_BYTES		20	/* §5.2.6: GET_ID answers 20 bytes */
#define BLK_QSIZE		VIRTQ_MAX_SIZE
/* Data descriptors per request: the queue less header and status. */
#define BLK_MAX_SEGS		(BLK_QSIZE - 2)

/* The device configuration (§5.2.4) and what was negotiated. */
struct blk_info {
	u64 capacity;		/* in 512-byte sectors */
	u32 size_max;		/* largest segment; 0: no limit given */
	u32 seg_max;		/* most data segments; 0: no limit given */
	u32 blk_size;		/* 512 unless BLK_SIZE says otherwise */
	bool read_only;		/* VIRTIO_BLK_F_RO negotiated */
	bool flush;		/* VIRTIO_BLK_F_FLUSH negotiated */
	u16 queue_size;
};

struct blk_stats {
	u64 requests;		/* chains made available */
	u64 ok, ioerr, unsupp;	/* by status byte */
	u64 other_status;	/* any other status byte value */
	u64 no_status;		/* returned without a status byte */
	u64 timeouts;
	u64 bad_used;		/* used ids we did not hand out: ignored */
};

/* One data buffer of a request. */
struct blk_seg {
	void *buf;		/* identity mapped, so guest-physical */
	u32 len;
};

/*
 * Finds the index-th block device (0-based, among the virtio_mmio.device=
 * windows whose DeviceID is 2), brings it up to DRIVER_OK and reads its
 * configuration. Reasons: those of virtio_find(), virtio_probe(),
 * virtio_negotiate() and virtq_init() (see virtio.h), and device-error.
 */
const char *blk_init(u32 index);

const struct virtio_dev *blk_device(void);
const struct blk_info *blk_get_info(void);
const struct blk_stats *blk_get_stats(void);

/*
 * Submits one request of type (VIRTIO_BLK_T_*, or any other value) for
 * sector with nseg data buffers, notifies the device and polls for up
 * to timeout_ms for it to come back. Returns the status byte the device
 * wrote (VIRTIO_BLK_S_*, or whatever else it wrote), BLK_NO_STATUS,
 * BLK_TIMEOUT, or BLK_BAD_REQUEST (more than BLK_MAX_SEGS buffers, or
 * the driver is stopped after a timeout). *used_len, if not NULL, gets
 * the length the device put in the used ring (§2.7.8).
 *
 * It checks nothing against capacity, size_max or seg_max: the
 * scenarios send requests the spec forbids (§5.2.6.1) on purpose.
 * After a timeout the request may still complete at any moment, so the
 * queue can no longer be trusted and every later request is refused.
 */
int blk_request(u32 type, u64 sector, const struct blk_seg *segs, u32 nseg,
		u32 *used_len, u64 timeout_ms);

/*
 * IN or OUT of len bytes (a multiple of 512) at sector into or from the
 * contiguous buffer buf, cut into segments of at most size_max bytes.
 * Returns as blk_request(); BLK_BAD_REQUEST if that needs more segments
 * than seg_max or BLK_MAX_SEGS allow.
 */
int blk_rw(u32 type, u64 sector, void *buf, u32 len, u32 *used_len);

/* A short name for a blk_request() result, for messages: ok, ioerr... */
const char *blk_status_name(int status);

#endif

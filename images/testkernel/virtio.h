/*
 * virtio.h - virtio-mmio transport (virtio 1.2 §4.2, version 2 only) and
 * split virtqueues (§2.7), polled, for the test kernel's device tests.
 *
 * The driver side of the spec, kept to what a polled, single-threaded
 * guest needs:
 *   - devices are named on the command line, as for Linux:
 *     virtio_mmio.device=SIZE@ADDR:IRQ[:ID] (§4.2.1 leaves discovery to
 *     the platform), one word per device; a driver takes the first (or
 *     the nth) window whose DeviceID is the type it drives (§5: 1 net,
 *     2 block), so sandvmm's order (net devices, then disks) and QEMU's
 *     do not matter;
 *   - §3.1.1 initialization: reset, ACKNOWLEDGE, DRIVER, features,
 *     FEATURES_OK (re-read), queues (§4.2.3.2), DRIVER_OK;
 *   - buffers are supplied and reclaimed as in §2.7.13 / §2.7.14, by
 *     polling the used ring. Interrupts stay off in the CPU; the driver
 *     still acknowledges InterruptStatus through InterruptACK (§4.2.3.4).
 *
 * All control registers are accessed with 32-bit reads and writes,
 * device configuration space with 8-bit reads (§4.2.2.2).
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "lib.h"

/* §4.2.2 MMIO Device Register Layout (offsets from the base). */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000	/* R: 0x74726976 "virt" */
#define VIRTIO_MMIO_VERSION		0x004	/* R: 2 (1 = legacy) */
#define VIRTIO_MMIO_DEVICE_ID		0x008	/* R: 1 net, 2 block (§5) */
#define VIRTIO_MMIO_VENDOR_ID		0x00c	/* R */
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010	/* R: 32 bits of features */
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL	0x014	/* W: which 32 bits */
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020	/* W */
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL	0x024	/* W */
#define VIRTIO_MMIO_QUEUE_SEL		0x030	/* W */
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034	/* R */
#define VIRTIO_MMIO_QUEUE_NUM		0x038	/* W */
#define VIRTIO_MMIO_QUEUE_READY		0x044	/* RW */
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050	/* W: queue index */
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060	/* R */
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064	/* W */
#define VIRTIO_MMIO_STATUS		0x070	/* RW: device status, §2.1 */
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080	/* W: Descriptor Area */
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090	/* W: Driver Area (avail) */
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0	/* W: Device Area (used) */
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc	/* R */
#define VIRTIO_MMIO_CONFIG		0x100	/* device-specific config */

#define VIRTIO_MMIO_MAGIC		0x74726976
#define VIRTIO_MMIO_MODERN		2

/* §2.1 Device Status Field bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE	1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	64
#define VIRTIO_STATUS_FAILED		128

/* §6 Reserved Feature Bits. */
#define VIRTIO_F_VERSION_1		(1ull << 32)

/* InterruptStatus bits (§4.2.2). */
#define VIRTIO_MMIO_INT_VRING		1	/* used buffer notification */
#define VIRTIO_MMIO_INT_CONFIG		2	/* configuration change */

/* §2.7.5 The Virtqueue Descriptor Table. */
#define VIRTQ_DESC_F_NEXT		1
#define VIRTQ_DESC_F_WRITE		2	/* device writes (RX) */
/* §2.7.6 The Virtqueue Available Ring: flags (§2.7.7). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT	1

/*
 * The largest queue this driver uses. A device may offer more
 * (QueueNumMax); we then use fewer, which §4.2.2.2 allows.
 */
#define VIRTQ_MAX_SIZE			32

struct virtq_desc {			/* 16 bytes, §2.7.5 */
	u64 addr;			/* guest-physical */
	u32 len;
	u16 flags;
	u16 next;
};

struct virtq_avail {			/* Driver Area, §2.7.6 */
	u16 flags;
	u16 idx;
	u16 ring[VIRTQ_MAX_SIZE];	/* only the first qsize are used */
	u16 used_event;			/* unused: no VIRTIO_F_EVENT_IDX */
};

struct virtq_used_elem {
	u32 id;				/* head of the used chain */
	u32 len;			/* bytes the device wrote */
};

struct virtq_used {			/* Device Area, §2.7.8 */
	u16 flags;
	u16 idx;
	struct virtq_used_elem ring[VIRTQ_MAX_SIZE];
	u16 avail_event;
};

/*
 * The three parts of one split virtqueue, each placed with more than
 * the alignment the table in §2.7 asks for (16 / 2 / 4 bytes). Static
 * in .bss, which is identity mapped, so pointers are guest-physical.
 */
struct virtq_mem {
	struct virtq_desc desc[VIRTQ_MAX_SIZE] __attribute__((aligned(4096)));
	struct virtq_avail avail __attribute__((aligned(64)));
	struct virtq_used used __attribute__((aligned(64)));
};

/* One virtio-mmio device, as found on the command line and probed. */
struct virtio_dev {
	u64 base;			/* MMIO base (guest-physical) */
	u64 size;			/* window size from the command line */
	u32 irq;			/* unused (polling), printed only */
	u32 device_id;
	u64 device_features;		/* all 64 bits the device offers */
	u64 driver_features;		/* what we accepted */
};

/* Driver-side state of one split virtqueue. */
struct virtq {
	struct virtio_dev *dev;
	struct virtq_mem *mem;
	u16 index;			/* queue number for QueueSel/Notify */
	u16 size;			/* negotiated Queue Size (power of 2) */
	u16 avail_idx;			/* next avail->idx to publish */
	u16 last_used;			/* used->idx already consumed */
};

/* Device types (§5). */
#define VIRTIO_ID_NET			1
#define VIRTIO_ID_BLOCK			2

/*
 * Parses occurrence nth (0-based) of virtio_mmio.device= on the command
 * line and checks that the window lies in the uncached 3-4 GiB identity
 * map. Returns NULL or a one-word reason: no-device (fewer words),
 * bad-device-arg, bad-address. virtio_mmio_from_cmdline() is nth = 0.
 */
const char *virtio_mmio_nth(struct virtio_dev *d, u32 nth);
const char *virtio_mmio_from_cmdline(struct virtio_dev *d);

/*
 * Finds the index-th (0-based) device of type want_id among all the
 * virtio_mmio.device= windows, reading only MagicValue, Version and
 * DeviceID of each (§4.2.3.1.1 lets a driver read them before it
 * touches Status). Windows that do not parse, are not modern virtio or
 * hold another type are passed over. Returns NULL with d filled in, or
 * the reason the first passed-over window was skipped (bad-device-arg,
 * bad-address, bad-magic, bad-version, not-net / not-blk /
 * wrong-device), or no-device if every window held the type but there
 * were not index + 1 of them, or there were none.
 */
const char *virtio_find(struct virtio_dev *d, u32 want_id, u32 index);

/*
 * §4.2.3.1: checks MagicValue, Version and DeviceID (== want_id), then
 * resets the device and sets ACKNOWLEDGE and DRIVER (§3.1.1 steps 1-3).
 * Reasons: bad-magic, bad-version, no-device (DeviceID 0), not-net /
 * not-blk / wrong-device (another ID), reset-timeout.
 */
const char *virtio_probe(struct virtio_dev *d, u32 want_id);

/*
 * §3.1.1 steps 4-6: reads DeviceFeatures, writes (offered & wanted),
 * sets FEATURES_OK and re-reads it. Every bit in required must be
 * offered. Reason: features. On failure the FAILED bit is set.
 */
const char *virtio_negotiate(struct virtio_dev *d, u64 wanted, u64 required);

/*
 * §4.2.3.2: sets up queue index with at most max_size (<= VIRTQ_MAX_SIZE)
 * entries in mem. avail_flags goes into avail->flags (§2.7.7).
 * Reasons: queue-busy, no-queue.
 */
const char *virtq_init(struct virtq *q, struct virtio_dev *d, u16 index,
		       struct virtq_mem *mem, u16 max_size, u16 avail_flags);

/* §3.1.1 step 8. */
void virtio_driver_ok(struct virtio_dev *d);
/* Sets FAILED (§3.1.1: the driver gives up on the device). */
void virtio_fail(struct virtio_dev *d);
/* Writes 0 to Status and waits for it to read back 0 (§2.4.2). */
bool virtio_reset(struct virtio_dev *d);

u32 virtio_status(struct virtio_dev *d);
/* ConfigGeneration, for the retry loop of §2.5.1. */
u32 virtio_config_generation(struct virtio_dev *d);
/* One byte of the device-specific configuration space. */
u8 virtio_config_read8(struct virtio_dev *d, u32 offset);
/* Reads InterruptStatus and writes any set bits to InterruptACK. */
void virtio_ack_interrupts(struct virtio_dev *d);

/*
 * §2.7.13: puts descriptor head in the next avail ring slot. Nothing is
 * visible to the device until virtq_publish() updates avail->idx.
 */
void virtq_add(struct virtq *q, u16 head);
void virtq_publish(struct virtq *q);
/* §4.2.3.3: writes the queue index to QueueNotify. */
void virtq_notify(struct virtq *q);
/*
 * §2.7.14: takes the next used element, or returns false if the device
 * has not used another buffer since the last call.
 */
bool virtq_get_used(struct virtq *q, u32 *id, u32 *len);

#endif

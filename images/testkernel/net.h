/*
 * net.h - polled virtio-net driver (virtio 1.2 §5.1) on virtio-mmio.
 *
 * One queue pair: receiveq1 = queue 0, transmitq1 = queue 1 (§5.1.2).
 * Features: VIRTIO_F_VERSION_1 (required) and VIRTIO_NET_F_MAC (taken if
 * offered); nothing else, so no checksum or segmentation offloads, no
 * mergeable buffers, no control queue (the "truly minimal driver" of
 * §5.1.5).
 *
 * Every buffer, RX or TX, is one descriptor holding the 12-byte
 * struct virtio_net_hdr (§5.1.6, VERSION_1 layout, num_buffers
 * included) directly followed by the Ethernet frame (no FCS). RX
 * buffers are 2048 bytes (>= the 1526 of §5.1.6.3.1), posted once at
 * start and recycled after each frame. TX buffers come from a small
 * free list and are reclaimed from the used ring when it runs low.
 */
#ifndef NET_H
#define NET_H

#include "lib.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC	(1ull << 5)	/* §5.1.3 */

#define NET_HDR_LEN		12	/* struct virtio_net_hdr, §5.1.6 */
#define NET_BUF_SIZE		2048	/* one RX or TX buffer, header incl. */
#define NET_RX_QSIZE		32	/* at most; QueueNumMax may cut it */
#define NET_TX_QSIZE		16
#define NET_FRAME_MIN		60	/* short frames are zero-padded */
#define NET_FRAME_MAX		1514	/* 14-byte header + 1500 MTU */

struct net_stats {
	u64 rx_frames;		/* frames handed to the RX callback */
	u64 rx_bad_len;		/* used len <= 12 or > buffer: ignored */
	u64 tx_frames;		/* frames made available on transmitq1 */
	u64 bad_used;		/* used ids we did not hand out: ignored */
};

/*
 * Finds, probes and starts the device (see virtio.h for the reasons a
 * bring-up fails), posts the RX buffers and sets DRIVER_OK. If the
 * device does not offer VIRTIO_NET_F_MAC, fallback_mac is used.
 */
const char *net_init(const u8 fallback_mac[6]);

const u8 *net_mac(void);
const struct virtio_dev *net_device(void);
u16 net_rx_queue_size(void);
u16 net_tx_queue_size(void);
const struct net_stats *net_get_stats(void);

/*
 * Hands every frame the device has received since the last call to fn,
 * then returns the buffers to the device and notifies it once. frame
 * points into the RX buffer and is only valid during the call. fn may
 * transmit (net_tx_*), but must not call net_rx_poll(). Returns the
 * number of frames.
 */
typedef void (*net_rx_fn)(const u8 *frame, u32 len);
u32 net_rx_poll(net_rx_fn fn);

/*
 * The frame area (NET_FRAME_MAX bytes) of a free TX buffer, or NULL if
 * all are in flight even after reclaiming used ones. Calling it again
 * before net_tx_send() returns the same buffer.
 */
u8 *net_tx_peek(void);
/* Same, but polls the TX used ring for up to timeout_ms first. */
u8 *net_tx_wait(u64 timeout_ms);
/*
 * Sends the buffer net_tx_peek() returned, with len bytes of frame
 * (padded to NET_FRAME_MIN), and notifies the device.
 */
void net_tx_send(u32 len);
/* Waits until the device has used every TX buffer; false on timeout. */
bool net_tx_flush(u64 timeout_ms);

#endif

/*
 * net.c - polled virtio-net driver (virtio 1.2 §5.1) over virtio-mmio.
 *
 * Bring-up follows §3.1.1 and §5.1.5:
 *   1. reset, ACKNOWLEDGE, DRIVER                      (virtio_probe)
 *   2. features: VERSION_1 required, VIRTIO_NET_F_MAC if offered
 *   3. FEATURES_OK, re-read                            (virtio_negotiate)
 *   4. receiveq1 (queue 0) and transmitq1 (queue 1)    (§4.2.3.2, §5.1.2)
 *   5. every RX descriptor made available
 *   6. MAC from config space offset 0 (§5.1.4), under ConfigGeneration
 *   7. DRIVER_OK, then one QueueNotify for the RX queue
 *
 * Descriptor i of a queue always points at buffer i, so a used id is
 * also the buffer index; ids the driver does not currently own are
 * counted and ignored rather than trusted. The TX queue asks for no
 * used-buffer interrupts (VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7); the RX
 * queue leaves them on, and the driver acks InterruptStatus after each
 * RX batch, although interrupts stay disabled in the CPU.
 */
#include "net.h"
#include "cpu.h"
#include "x86.h"

static struct virtio_dev dev;
static struct virtq rxq, txq;
static struct virtq_mem rx_mem, tx_mem;

static u8 rx_buf[NET_RX_QSIZE][NET_BUF_SIZE] __attribute__((aligned(4096)));
static u8 tx_buf[NET_TX_QSIZE][NET_BUF_SIZE] __attribute__((aligned(4096)));
static bool rx_posted[NET_RX_QSIZE];	/* owned by the device */
static bool tx_busy[NET_TX_QSIZE];	/* owned by the device */
static u16 tx_free[NET_TX_QSIZE];	/* stack of free TX ids */
static u16 tx_nfree;

static u8 mac[6];
static struct net_stats stats;

static void rx_post(u16 id)
{
	struct virtq_desc *d = &rx_mem.desc[id];

	/* §2.7.13.1: one device-writable element, header + frame. */
	d->addr = (u64)rx_buf[id];
	d->len = NET_BUF_SIZE;
	d->flags = VIRTQ_DESC_F_WRITE;
	d->next = 0;
	rx_posted[id] = true;
	virtq_add(&rxq, id);
}

/* §2.5.1: retry until ConfigGeneration is the same before and after. */
static void read_mac(void)
{
	u32 before, after;

	do {
		before = virtio_config_generation(&dev);
		for (u32 i = 0; i < 6; i++)
			mac[i] = virtio_config_read8(&dev, i);
		after = virtio_config_generation(&dev);
	} while (before != after);
}

static const char *bring_up(const u8 fallback_mac[6])
{
	const char *why;

	if ((why = virtio_find(&dev, VIRTIO_ID_NET, 0)))
		return why;
	if ((why = virtio_probe(&dev, VIRTIO_ID_NET)))
		return why;
	why = virtio_negotiate(&dev, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC,
			       VIRTIO_F_VERSION_1);
	if (why)
		return why;
	if ((why = virtq_init(&rxq, &dev, 0, &rx_mem, NET_RX_QSIZE, 0)))
		return why;
	why = virtq_init(&txq, &dev, 1, &tx_mem, NET_TX_QSIZE,
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (why)
		return why;

	for (u16 i = 0; i < rxq.size; i++)
		rx_post(i);
	virtq_publish(&rxq);
	for (u16 i = 0; i < txq.size; i++) {
		tx_busy[i] = false;
		tx_free[i] = (u16)(txq.size - 1 - i);	/* id 0 first */
	}
	tx_nfree = txq.size;

	/* §5.1.4.2: use mac if VIRTIO_NET_F_MAC was negotiated. */
	if ((dev.driver_features & VIRTIO_NET_F_MAC) &&
	    dev.size >= VIRTIO_MMIO_CONFIG + 6)
		read_mac();
	else
		memcpy(mac, fallback_mac, 6);

	virtio_driver_ok(&dev);
	if (virtio_status(&dev) &
	    (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		return "device-error";
	/* §3.1.1: no notification before DRIVER_OK. */
	virtq_notify(&rxq);
	return NULL;
}

const char *net_init(const u8 fallback_mac[6])
{
	const char *why = bring_up(fallback_mac);

	/* Tell the device we gave up, unless it was never touched. */
	if (why && dev.device_id == VIRTIO_ID_NET)
		virtio_fail(&dev);
	return why;
}

const u8 *net_mac(void)
{
	return mac;
}

const struct virtio_dev *net_device(void)
{
	return &dev;
}

u16 net_rx_queue_size(void)
{
	return rxq.size;
}

u16 net_tx_queue_size(void)
{
	return txq.size;
}

const struct net_stats *net_get_stats(void)
{
	return &stats;
}

/* ---- receive (§5.1.6.4) ----------------------------------------------- */

u32 net_rx_poll(net_rx_fn fn)
{
	u32 n = 0, id, len;

	while (virtq_get_used(&rxq, &id, &len)) {
		if (id >= rxq.size || !rx_posted[id]) {
			stats.bad_used++;
			continue;
		}
		rx_posted[id] = false;
		n++;
		/*
		 * The header's flags/gso_type are 0 and num_buffers is 1
		 * without offloads or MRG_RXBUF (§5.1.6.4.1); nothing in
		 * it is needed, so it is skipped unread.
		 */
		if (len > NET_HDR_LEN && len <= NET_BUF_SIZE) {
			stats.rx_frames++;
			fn(rx_buf[id] + NET_HDR_LEN, len - NET_HDR_LEN);
		} else {
			stats.rx_bad_len++;
		}
		rx_post((u16)id);	/* recycle the same buffer */
	}
	if (n) {
		virtq_publish(&rxq);
		virtq_notify(&rxq);
		virtio_ack_interrupts(&dev);
	}
	return n;
}

/* ---- transmit (§5.1.6.2) ---------------------------------------------- */

static void tx_reclaim(void)
{
	u32 id, len;

	/* The used len of a TX buffer means nothing; it is ignored. */
	while (virtq_get_used(&txq, &id, &len)) {
		if (id >= txq.size || !tx_busy[id]) {
			stats.bad_used++;
			continue;
		}
		tx_busy[id] = false;
		tx_free[tx_nfree++] = (u16)id;
	}
}

u8 *net_tx_peek(void)
{
	if (!tx_nfree)
		tx_reclaim();
	if (!tx_nfree)
		return NULL;
	return tx_buf[tx_free[tx_nfree - 1]] + NET_HDR_LEN;
}

u8 *net_tx_wait(u64 timeout_ms)
{
	u64 deadline = rdtsc() + tsc_ms_to_cycles(timeout_ms);
	u8 *p;

	while (!(p = net_tx_peek())) {
		if (rdtsc() > deadline)
			return NULL;
		cpu_relax();
	}
	return p;
}

void net_tx_send(u32 len)
{
	u16 id;
	u8 *buf;
	struct virtq_desc *d;

	if (!tx_nfree)		/* caller did not get a buffer first */
		return;
	id = tx_free[--tx_nfree];
	buf = tx_buf[id];
	if (len > NET_FRAME_MAX)
		len = NET_FRAME_MAX;
	if (len < NET_FRAME_MIN) {
		memset(buf + NET_HDR_LEN + len, 0, NET_FRAME_MIN - len);
		len = NET_FRAME_MIN;
	}
	/*
	 * §5.1.6.2.1: flags 0 (no VIRTIO_NET_F_CSUM), gso_type NONE,
	 * num_buffers 0; the other fields are unused, so all 12 bytes are 0.
	 */
	memset(buf, 0, NET_HDR_LEN);
	d = &tx_mem.desc[id];
	d->addr = (u64)buf;
	d->len = NET_HDR_LEN + len;
	d->flags = 0;		/* device-readable, no chain */
	d->next = 0;
	tx_busy[id] = true;
	stats.tx_frames++;
	virtq_add(&txq, id);
	virtq_publish(&txq);
	virtq_notify(&txq);
}

bool net_tx_flush(u64 timeout_ms)
{
	u64 deadline = rdtsc() + tsc_ms_to_cycles(timeout_ms);

	for (;;) {
		tx_reclaim();
		if (tx_nfree == txq.size)
			return true;
		if (rdtsc() > deadline)
			return false;
		cpu_relax();
	}
}

/*
 * netscenarios.c - the network scenarios: net-ping, net-echo, net-blast.
 *
 * All three bring up the first virtio-net device (DeviceID 1) among the
 * virtio_mmio.device=SIZE@ADDR:IRQ words on the command line (net.c,
 * virtio 1.2 §4.2 and §5.1), print
 *     SANDVMM-TEST: net ready mac=xx:xx:xx:xx:xx:xx ip=A.B.C.D
 * and from then on answer ARP requests for guest_ip and ICMP echo
 * requests to it while they run. Keys: guest_ip= (default 10.0.0.2),
 * host_ip= (default 10.0.0.1), a /24 without a gateway.
 *
 *   net-ping   until a UDP datagram (any port) with payload "quit";
 *              then "SANDVMM-TEST: net-ping answered=N", N = echo
 *              requests answered.
 *   net-echo   sends every UDP datagram back to its sender (addresses
 *              and ports swapped, same payload), the final "quit" one
 *              included; then "SANDVMM-TEST: net-echo echoed=N", N =
 *              datagrams echoed, "quit" included.
 *   net-blast  ARP-resolves host_ip (a request every ~200 ms, FAIL
 *              arp-timeout after ~10 s), then sends count= (1000)
 *              datagrams of size= (64, 8..1472) payload bytes from port
 *              9000 to host_ip:port= (9000). Payload of datagram seq
 *              (0-based): bytes 0..3 = seq as a big-endian u32, byte j
 *              >= 4 = (seq + j) & 0xff. None is dropped: a full TX ring
 *              is polled until buffers come back (FAIL tx-timeout if none
 *              does for ~5 s). Then
 *              "SANDVMM-TEST: net-blast sent=N".
 *
 * Before PASS each scenario waits until the device has used every TX
 * buffer, so the last datagram is out before the machine resets.
 */
#include "netscenarios.h"
#include "cmdline.h"
#include "cpu.h"
#include "net.h"
#include "netstack.h"
#include "x86.h"

#define BLAST_SRC_PORT		9000
#define ARP_RETRY_MS		200
#define ARP_TIMEOUT_MS		10000
#define TX_FLUSH_MS		5000

static u32 guest_ip, host_ip;

static void print_ip_line(const char *prefix, const u8 *m, u32 ip)
{
	kprintf("%s mac=%02x:%02x:%02x:%02x:%02x:%02x ip=%u.%u.%u.%u\n",
		prefix, m[0], m[1], m[2], m[3], m[4], m[5],
		ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

static const char *ip_option(const char *key, u32 def, u32 *out)
{
	char buf[32];

	*out = def;
	if (cmdline_get(key, buf, sizeof(buf)) && !ip_parse(buf, out))
		return "bad-ip";
	return NULL;
}

/* Parses the keys, starts the device and stack, prints "net ready". */
static const char *net_bringup(udp_rx_fn fn)
{
	const struct virtio_dev *d;
	const char *why;
	u8 fallback_mac[6];

	if ((why = ip_option("guest_ip", IP4(10, 0, 0, 2), &guest_ip)) ||
	    (why = ip_option("host_ip", IP4(10, 0, 0, 1), &host_ip)))
		return why;
	/* Locally administered, from the IP, if the device has no MAC. */
	fallback_mac[0] = 0x02;
	fallback_mac[1] = 0x00;
	for (int i = 0; i < 4; i++)
		fallback_mac[2 + i] = (u8)(guest_ip >> (24 - 8 * i));
	if ((why = net_init(fallback_mac)))
		return why;
	netstack_init(guest_ip, fn);

	d = net_device();
	kprintf("net: virtio-mmio base=0x%lx size=0x%lx irq=%u features "
		"device=0x%lx driver=0x%lx queues rx=%u tx=%u\n",
		d->base, d->size, d->irq, d->device_features,
		d->driver_features, net_rx_queue_size(), net_tx_queue_size());
	print_ip_line("SANDVMM-TEST: net ready", net_mac(), guest_ip);
	return NULL;
}

/* Drains the TX ring and prints the driver's counters. */
static const char *net_finish(void)
{
	const struct net_stats *s = net_get_stats();
	bool flushed = net_tx_flush(TX_FLUSH_MS);

	kprintf("net: rx=%lu tx=%lu rx-bad-len=%lu bad-used=%lu\n",
		s->rx_frames, s->tx_frames, s->rx_bad_len, s->bad_used);
	return flushed ? NULL : "tx-timeout";
}

static bool is_quit(const u8 *data, u32 len)
{
	return len == 4 && data[0] == 'q' && data[1] == 'u' &&
	       data[2] == 'i' && data[3] == 't';
}

/* ---------------------------------------------------------------- */

static bool quit_seen;

static void ping_udp(const struct udp_meta *m, const u8 *data, u32 len)
{
	(void)m;
	if (is_quit(data, len))
		quit_seen = true;
}

const char *run_net_ping(void)
{
	const char *why;

	quit_seen = false;
	if ((why = net_bringup(ping_udp)))
		return why;
	while (!quit_seen)
		netstack_poll();
	if ((why = net_finish()))
		return why;
	kprintf("SANDVMM-TEST: net-ping answered=%lu\n",
		netstack_echo_replies());
	return NULL;
}

/* ---------------------------------------------------------------- */

static u64 echoed;

static void echo_udp(const struct udp_meta *m, const u8 *data, u32 len)
{
	if (udp_send(m->src_mac, m->src_ip, m->dst_port, m->src_port,
		     data, len))
		echoed++;
	if (is_quit(data, len))
		quit_seen = true;
}

const char *run_net_echo(void)
{
	const char *why;

	quit_seen = false;
	echoed = 0;
	if ((why = net_bringup(echo_udp)))
		return why;
	while (!quit_seen)
		netstack_poll();
	if ((why = net_finish()))
		return why;
	kprintf("SANDVMM-TEST: net-echo echoed=%lu\n", echoed);
	return NULL;
}

/* ---------------------------------------------------------------- */

/* pattern[i] = i & 0xff, long enough to copy any payload from any phase. */
static u8 pattern[256 + UDP_PAYLOAD_MAX];

static const char *arp_resolve(u32 ip, u8 mac[6])
{
	u64 now = rdtsc();
	u64 deadline = now + tsc_ms_to_cycles(ARP_TIMEOUT_MS);
	u64 next_try = now;

	while (!arp_lookup(ip, mac)) {
		now = rdtsc();
		if (now > deadline)
			return "arp-timeout";
		if (now >= next_try) {
			arp_request(ip);
			next_try = now + tsc_ms_to_cycles(ARP_RETRY_MS);
		}
		netstack_poll();
		cpu_relax();
	}
	return NULL;
}

const char *run_net_blast(void)
{
	u64 count = cmdline_get_u64("count", 1000);
	u64 size = cmdline_get_u64("size", 64);
	u64 port = cmdline_get_u64("port", 9000);
	u8 host_mac[6];
	const char *why;
	u64 t0, ms;

	if (size < 8 || size > UDP_PAYLOAD_MAX)
		return "bad-size";
	if (!port || port > 0xffff)
		return "bad-port";
	for (u32 i = 0; i < sizeof(pattern); i++)
		pattern[i] = (u8)i;
	if ((why = net_bringup(NULL)) || (why = arp_resolve(host_ip, host_mac)))
		return why;
	print_ip_line("net: host", host_mac, host_ip);

	t0 = rdtsc();
	for (u64 seq = 0; seq < count; seq++) {
		u8 *p;

		if (!(p = udp_tx_peek())) {	/* ring full: never drop */
			u64 stall = rdtsc() + tsc_ms_to_cycles(TX_FLUSH_MS);

			while (!(p = udp_tx_peek())) {
				if (rdtsc() > stall)
					return "tx-timeout";
				netstack_poll();
			}
		}
		p[0] = (u8)(seq >> 24);
		p[1] = (u8)(seq >> 16);
		p[2] = (u8)(seq >> 8);
		p[3] = (u8)seq;
		net_copy(p + 4, pattern + ((seq + 4) & 0xff), (u32)size - 4);
		udp_tx_send(host_mac, host_ip, BLAST_SRC_PORT, (u16)port,
			    (u32)size);
		netstack_poll();	/* ARP/ICMP; one memory read if idle */
	}
	if ((why = net_finish()))
		return why;
	ms = (rdtsc() - t0) / tsc_ms_to_cycles(1);
	kprintf("net: net-blast took ~%lu ms (TSC assumed 3 GHz)\n", ms);
	kprintf("SANDVMM-TEST: net-blast sent=%lu\n", count);
	return NULL;
}

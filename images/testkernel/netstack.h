/*
 * netstack.h - a minimal IPv4 stack on top of net.c (the virtio-net
 * driver, virtio 1.2 §5.1): Ethernet II, ARP (request/reply, small
 * cache), IPv4 (no options sent, no fragments), ICMP echo reply and UDP.
 *
 * One local address on a directly attached /24, no gateway. Received
 * frames that are malformed, fragmented, for another address or of an
 * unknown type are dropped silently. Checksums: the IPv4 header and
 * ICMP checksums are checked and generated; UDP checksums are neither
 * checked nor generated (sent as 0, "no checksum" in IPv4).
 */
#ifndef NETSTACK_H
#define NETSTACK_H

#include "lib.h"

#define ETH_HLEN		14
#define IP_HLEN			20	/* sent without options */
#define UDP_HLEN		8
#define UDP_PAYLOAD_MAX		1472	/* 1500 - 20 - 8: one frame */
#define ETHERTYPE_IPV4		0x0800
#define ETHERTYPE_ARP		0x0806

/* Host byte order: 10.0.0.2 is 0x0a000002. */
#define IP4(a, b, c, d)	((u32)(a) << 24 | (u32)(b) << 16 | (u32)(c) << 8 | (d))

/* What a received UDP datagram came with; valid during the callback. */
struct udp_meta {
	const u8 *src_mac;	/* Ethernet source of the frame */
	u32 src_ip;
	u32 dst_ip;
	u16 src_port;
	u16 dst_port;
};

/*
 * Called for every well-formed UDP datagram to our address. data points
 * into the RX buffer. The callback may send (udp_send), not poll.
 */
typedef void (*udp_rx_fn)(const struct udp_meta *m, const u8 *data, u32 len);

/* Our address (net_mac() is the MAC) and the UDP consumer (or NULL). */
void netstack_init(u32 ip, udp_rx_fn fn);

/*
 * Processes every frame received so far: answers ARP requests for our
 * address and ICMP echo requests to it, learns ARP replies, hands UDP
 * to the callback. Returns the number of frames seen.
 */
u32 netstack_poll(void);

/* ICMP echo requests answered since netstack_init(). */
u64 netstack_echo_replies(void);

/* ARP cache lookup; true and mac filled in if ip is known. */
bool arp_lookup(u32 ip, u8 mac[6]);
/* Broadcasts a "who-has ip" request; false if no TX buffer came free. */
bool arp_request(u32 ip);

/*
 * Copies len (<= UDP_PAYLOAD_MAX) bytes into a datagram to dst and
 * sends it, waiting up to 1 s for a TX buffer. False if none came.
 */
bool udp_send(const u8 dst_mac[6], u32 dst_ip, u16 src_port, u16 dst_port,
	      const u8 *data, u32 len);

/*
 * Zero-copy sending: udp_tx_peek() returns where the payload of the
 * next datagram goes (in a free TX buffer), or NULL if the TX ring is
 * full (then poll and try again); udp_tx_send() adds the headers and
 * sends it. Nothing else may transmit in between.
 */
u8 *udp_tx_peek(void);
void udp_tx_send(const u8 dst_mac[6], u32 dst_ip, u16 src_port,
		 u16 dst_port, u32 len);

/* memcpy for packet payloads, faster under instruction emulation. */
void net_copy(void *dst, const void *src, u32 len);

/* Parses dotted-quad "a.b.c.d"; false if malformed. */
bool ip_parse(const char *s, u32 *ip);

#endif

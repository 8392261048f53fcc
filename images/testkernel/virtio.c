/*
 * virtio.c - virtio-mmio transport, version 2 (virtio 1.2 §4.2), and the
 * driver side of split virtqueues (§2.7), for polled use.
 *
 * The device windows come from the command line (§4.2.1 leaves discovery
 * to the platform), one word per device, in the form Linux parses:
 *     virtio_mmio.device=<size>@<baseaddr>:<irq>[:<id>]
 * size is decimal or 0x-hex with an optional K/M/G suffix (4K, 0x1000,
 * 512); baseaddr is 0x-hex (or decimal). sandvmm passes 4K@0xd0000000:5,
 * QEMU microvm 512@0xfeb00e00:12. The window has to lie in 3-4 GiB,
 * which paging_init() identity-maps uncached (PCD|PWT), as MMIO needs.
 * Like Linux, a driver does not rely on the order of the words: it reads
 * the DeviceID of each window and takes the one of its type.
 *
 * Memory ordering: x86 keeps stores in order and loads in order, so a
 * compiler barrier is the "suitable memory barrier" of §2.7.13 between
 * filling ring slots and bumping avail->idx, and between reading
 * used->idx and the used elements it covers (§2.7.14). Notifications
 * are never suppressed by the driver: it does not read used->flags
 * (that would need a full store-load fence, §2.7.13.4); it simply
 * notifies after each batch, which the spec always allows.
 */
#include "virtio.h"
#include "cmdline.h"
#include "cpu.h"
#include "x86.h"

#define MMIO_WINDOW_START	0xc0000000ull	/* uncached, see cpu.c */
#define MMIO_WINDOW_END		0x100000000ull
#define RESET_TIMEOUT_MS	1000

static u32 rd(struct virtio_dev *d, u32 reg)
{
	return mmio_read32(d->base + reg);
}

static void wr(struct virtio_dev *d, u32 reg, u32 v)
{
	mmio_write32(d->base + reg, v);
}

/* ---- command line ---------------------------------------------------- */

/* Decimal or 0x-hex digits at *s; advances *s. False if no digits. */
static bool parse_num(const char **s, u64 *out)
{
	const char *p = *s;
	unsigned base = 10;
	u64 n = 0;
	int digits = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++, digits++) {
		unsigned v;

		if (*p >= '0' && *p <= '9')
			v = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			v = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			v = (unsigned)(*p - 'A' + 10);
		else
			break;
		if (n >> 56)		/* would overflow: nonsense anyway */
			return false;
		n = n * base + v;
	}
	*s = p;
	*out = n;
	return digits > 0;
}

/* Like Linux memparse(): a number with an optional K, M or G suffix. */
static bool parse_size(const char **s, u64 *out)
{
	if (!parse_num(s, out))
		return false;
	switch (**s) {
	case 'k': case 'K': *out <<= 10; (*s)++; break;
	case 'm': case 'M': *out <<= 20; (*s)++; break;
	case 'g': case 'G': *out <<= 30; (*s)++; break;
	}
	return true;
}

const char *virtio_mmio_nth(struct virtio_dev *d, u32 nth)
{
	char arg[96];
	const char *p = arg;
	u64 irq, id;

	memset(d, 0, sizeof(*d));
	if (!cmdline_get_nth("virtio_mmio.device", nth, arg, sizeof(arg)))
		return "no-device";
	if (!parse_size(&p, &d->size) || *p++ != '@' ||
	    !parse_num(&p, &d->base) || *p++ != ':' ||
	    !parse_num(&p, &irq))
		return "bad-device-arg";
	if (*p == ':') {			/* optional :id (Linux) */
		p++;
		if (!parse_num(&p, &id))
			return "bad-device-arg";
	}
	if (*p)
		return "bad-device-arg";
	d->irq = (u32)irq;
	/* Registers up to 0x100, 32-bit aligned, inside the uncached map. */
	if (d->size < VIRTIO_MMIO_CONFIG || (d->base & 3) ||
	    d->base < MMIO_WINDOW_START || d->base >= MMIO_WINDOW_END ||
	    d->size > MMIO_WINDOW_END - d->base)
		return "bad-address";
	return NULL;
}

const char *virtio_mmio_from_cmdline(struct virtio_dev *d)
{
	return virtio_mmio_nth(d, 0);
}

/* The reason a device of another type is refused, for the FAIL line. */
static const char *not_type(u32 want_id)
{
	switch (want_id) {
	case VIRTIO_ID_NET: return "not-net";
	case VIRTIO_ID_BLOCK: return "not-blk";
	default: return "wrong-device";
	}
}

/* §4.2.2.2: a driver ignores a wrong MagicValue or Version, and ID 0. */
static const char *identify(struct virtio_dev *d)
{
	if (rd(d, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC)
		return "bad-magic";
	if (rd(d, VIRTIO_MMIO_VERSION) != VIRTIO_MMIO_MODERN)
		return "bad-version";
	d->device_id = rd(d, VIRTIO_MMIO_DEVICE_ID);
	if (!d->device_id)
		return "no-device";	/* placeholder: touch nothing else */
	return NULL;
}

const char *virtio_find(struct virtio_dev *d, u32 want_id, u32 index)
{
	const char *first_skip = NULL, *why;

	for (u32 nth = 0;; nth++) {
		why = virtio_mmio_nth(d, nth);
		/* no-device from the parser: past the last word. */
		if (why && !strcmp(why, "no-device"))
			break;
		if (!why && !(why = identify(d)) && d->device_id != want_id)
			why = not_type(want_id);
		if (!why && !index--)
			return NULL;
		if (why && !first_skip)
			first_skip = why;
	}
	memset(d, 0, sizeof(*d));
	return first_skip ? first_skip : "no-device";
}

/* ---- device initialization (§3.1.1, §4.2.3.1) ------------------------ */

u32 virtio_status(struct virtio_dev *d)
{
	return rd(d, VIRTIO_MMIO_STATUS);
}

static void set_status(struct virtio_dev *d, u32 bits)
{
	/* §2.1.1: never clear a bit, so always write back what is set. */
	wr(d, VIRTIO_MMIO_STATUS, virtio_status(d) | bits);
}

bool virtio_reset(struct virtio_dev *d)
{
	u64 deadline = rdtsc() + tsc_ms_to_cycles(RESET_TIMEOUT_MS);

	wr(d, VIRTIO_MMIO_STATUS, 0);
	while (virtio_status(d)) {	/* §2.4.2: done when it reads 0 */
		if (rdtsc() > deadline)
			return false;
		cpu_relax();
	}
	return true;
}

void virtio_fail(struct virtio_dev *d)
{
	set_status(d, VIRTIO_STATUS_FAILED);
}

const char *virtio_probe(struct virtio_dev *d, u32 want_id)
{
	const char *why;

	if ((why = identify(d)))
		return why;
	if (d->device_id != want_id)
		return not_type(want_id);
	if (!virtio_reset(d))
		return "reset-timeout";
	set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(d, VIRTIO_STATUS_DRIVER);
	return NULL;
}

const char *virtio_negotiate(struct virtio_dev *d, u64 wanted, u64 required)
{
	u64 offered, accept;

	/* §4.2.2.2: select the 32-bit half before each access. */
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	offered = rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	offered |= (u64)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	d->device_features = offered;
	if ((offered & required) != required) {
		virtio_fail(d);
		return "features";
	}
	accept = offered & wanted;
	d->driver_features = accept;
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)accept);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)(accept >> 32));
	set_status(d, VIRTIO_STATUS_FEATURES_OK);
	/* §3.1.1 step 6: the device may refuse our subset. */
	if (!(virtio_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_fail(d);
		return "features";
	}
	return NULL;
}

const char *virtq_init(struct virtq *q, struct virtio_dev *d, u16 index,
		       struct virtq_mem *mem, u16 max_size, u16 avail_flags)
{
	u32 num_max;
	u16 size;

	/* §4.2.3.2 steps 1-3. */
	wr(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (rd(d, VIRTIO_MMIO_QUEUE_READY))
		return "queue-busy";
	num_max = rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (!num_max)
		return "no-queue";
	/* Queue Size is a power of 2 (§2.7), <= QueueNumMax (§4.2.2.2). */
	if (max_size > VIRTQ_MAX_SIZE)
		max_size = VIRTQ_MAX_SIZE;
	for (size = max_size; size > num_max; size >>= 1)
		;
	/* Step 4: zeroed memory; .bss is physically contiguous. */
	memset(mem, 0, sizeof(*mem));
	mem->avail.flags = avail_flags;
	q->dev = d;
	q->mem = mem;
	q->index = index;
	q->size = size;
	q->avail_idx = 0;
	q->last_used = 0;
	/* Steps 5-7. */
	wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)(u64)mem->desc);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (u32)((u64)mem->desc >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (u32)(u64)&mem->avail);
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (u32)((u64)&mem->avail >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (u32)(u64)&mem->used);
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (u32)((u64)&mem->used >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return NULL;
}

void virtio_driver_ok(struct virtio_dev *d)
{
	set_status(d, VIRTIO_STATUS_DRIVER_OK);
}

u32 virtio_config_generation(struct virtio_dev *d)
{
	return rd(d, VIRTIO_MMIO_CONFIG_GENERATION);
}

u8 virtio_config_read8(struct virtio_dev *d, u32 offset)
{
	return *(volatile u8 *)(d->base + VIRTIO_MMIO_CONFIG + offset);
}

void virtio_ack_interrupts(struct virtio_dev *d)
{
	u32 st = rd(d, VIRTIO_MMIO_INTERRUPT_STATUS) &
		 (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);

	if (st)		/* §4.2.2.2: only defined bits go to InterruptACK */
		wr(d, VIRTIO_MMIO_INTERRUPT_ACK, st);
}

/* ---- split virtqueue operation (§2.7.13, §2.7.14) --------------------- */

void virtq_add(struct virtq *q, u16 head)
{
	/* §2.7.13.2: ring[(idx + added) % size]; idx is the shadow. */
	q->mem->avail.ring[q->avail_idx & (q->size - 1)] = head;
	q->avail_idx++;
}

void virtq_publish(struct virtq *q)
{
	barrier();	/* §2.7.13.3: ring entries before idx */
	*(volatile u16 *)&q->mem->avail.idx = q->avail_idx;
	barrier();
}

void virtq_notify(struct virtq *q)
{
	/* §4.2.3.3, no VIRTIO_F_NOTIFICATION_DATA: the 16-bit queue index. */
	wr(q->dev, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

bool virtq_get_used(struct virtq *q, u32 *id, u32 *len)
{
	u16 used_idx = *(volatile u16 *)&q->mem->used.idx;
	volatile struct virtq_used_elem *e;

	if (used_idx == q->last_used)
		return false;
	barrier();	/* the element is read after idx (§2.7.14) */
	e = &q->mem->used.ring[q->last_used & (q->size - 1)];
	*id = e->id;
	*len = e->len;
	q->last_used++;
	return true;
}

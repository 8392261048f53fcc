/*
 * scenarios.c - the tests the kernel can run, chosen by scenario=NAME.
 *
 * Each scenario prints its own progress lines and returns NULL on
 * success or a short reason (one word, no spaces) on failure; main.c
 * prints the SANDVMM-TEST: PASS/FAIL line and resets the machine.
 *
 * serial-flood payload (a host-side test regenerates it):
 *   byte i (0-based over the whole payload, 0 <= i < N) is
 *     '\n'                                   if i % 64 == 63
 *     'a' + ((i / 64) + (i % 64)) % 26       otherwise
 *   i.e. 64-byte lines of 63 letters and '\n'; line L starts with the
 *   letter 'a' + L % 26 and counts up the alphabet, wrapping z -> a.
 *   The last line is cut short if N % 64 != 0 (no '\n' added).
 *   The checksum is FNV-1a 32-bit over exactly those N bytes
 *   (h = 0x811c9dc5; for each byte: h ^= byte; h *= 0x01000193),
 *   printed as 8 lowercase hex digits. For the default N = 1048576
 *   it is 9a8da0ed; floodcheck.py computes it for any N.
 *
 * Output of serial-flood, byte for byte:
 *   "SANDVMM-TEST: flood begin bytes=N\n" payload
 *   "\nSANDVMM-TEST: flood end fnv=XXXXXXXX\n"
 */
#include "scenarios.h"
#include "blkscenarios.h"
#include "chaos.h"
#include "cmdline.h"
#include "cpu.h"
#include "escape.h"
#include "faults.h"
#include "netscenarios.h"
#include "serial.h"
#include "smp.h"
#include "x86.h"

/* ---------------------------------------------------------------- */

/* For memory and idle-cost measurements: the vCPU halts with interrupts off, so
 * it sleeps in KVM until the VMM ends the run (the bench harness kills it). */
static const char *run_idle(void)
{
	kprintf("SANDVMM-TEST: idle\n");
	halt_forever();
}

static const char *run_hello(void)
{
	kprintf("hello from the sandvmm test kernel\n");
	return NULL;
}

/* ---------------------------------------------------------------- */

#define ECHO_LINE_MAX 256	/* longer lines are echoed cut to 255 */

static const char *run_echo(void)
{
	char line[ECHO_LINE_MAX];
	size_t len = 0;

	kprintf("SANDVMM-TEST: echo ready\n");
	for (;;) {
		int c = serial_getc();

		if (c != '\r' && c != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = (char)c;
			continue;
		}
		if (!len)	/* empty line, or the \n of a \r\n pair */
			continue;
		line[len] = '\0';
		len = 0;
		kprintf("echo: %s\n", line);
		if (!strcmp(line, "quit"))
			return NULL;
	}
}

/*
 * A prompt without a newline, as a shell prints one: the host sees it
 * only if the VMM writes out output that waits for no newline (its
 * serial flush timer). Any input byte answers it.
 */
static const char *run_prompt(void)
{
	kprintf("SANDVMM-TEST: prompt> ");
	serial_getc();
	kprintf("\nSANDVMM-TEST: prompt answered\n");
	return NULL;
}

/* ---------------------------------------------------------------- */

#define FLOOD_LINE	64
#define FLOOD_PERIOD	(26 * FLOOD_LINE)	/* the payload repeats */
#define FNV_OFFSET	0x811c9dc5u
#define FNV_PRIME	0x01000193u

/*
 * The payload only depends on i mod 1664, so one period is built once
 * and bursts are sent straight from it. 1664 is a multiple of 16, so a
 * 16-byte burst never wraps around the end of the buffer.
 */
static u8 flood_pattern[FLOOD_PERIOD];

static void flood_build_pattern(void)
{
	for (u32 i = 0; i < FLOOD_PERIOD; i++) {
		u32 col = i % FLOOD_LINE;

		flood_pattern[i] = col == FLOOD_LINE - 1 ?
			'\n' : (u8)('a' + (i / FLOOD_LINE + col) % 26);
	}
}

static u32 fnv1a(u32 h, const u8 *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * FNV_PRIME;
	return h;
}

/*
 * FNV-1a over one whole period, fast. Hashing byte by byte costs ~3 s
 * per MiB of emulated code, more than a third of the flood, so the
 * hash exploits the payload's period instead (the result is exactly
 * FNV-1a over the bytes sent; floodcheck.py verifies that):
 *
 *   h ^ b == h + d, with d = (low8(h) ^ b) - low8(h): the XOR only
 *   changes the low byte. And the low byte after h = (h + d) * p only
 *   depends on the low byte before. So by induction, over one period
 *   F(h) = P * h + C[low8(h)], with P = p^1664 and C a function of the
 *   starting low byte alone: C[l] = F(l) - P * l.
 *
 * C[l] is computed the first time low byte l starts a period; only a
 * few dozen of the 256 values come up, so 1 MiB costs about 30 KiB of
 * byte-wise hashing instead of 1 MiB.
 */
static u32 period_mul;			/* FNV_PRIME ^ FLOOD_PERIOD */
static u32 period_add[256];		/* C[l] */
static u8 period_known[256];

static u32 fnv1a_period(u32 h)
{
	u32 l = h & 0xff;

	if (!period_mul) {
		period_mul = 1;
		for (u32 i = 0; i < FLOOD_PERIOD; i++)
			period_mul *= FNV_PRIME;
	}
	if (!period_known[l]) {
		period_add[l] = fnv1a(l, flood_pattern, FLOOD_PERIOD) -
				period_mul * l;
		period_known[l] = 1;
	}
	return period_mul * h + period_add[l];
}

/* FNV-1a over the first n payload bytes. */
static u32 flood_fnv(u64 n)
{
	u32 h = FNV_OFFSET;

	for (u64 full = n / FLOOD_PERIOD; full; full--)
		h = fnv1a_period(h);
	return fnv1a(h, flood_pattern, n % FLOOD_PERIOD);
}

static const char *run_serial_flood(void)
{
	u64 total = cmdline_get_u64("bytes", 1048576);
	u64 left = total;
	u32 off = 0;

	flood_build_pattern();
	kprintf("SANDVMM-TEST: flood begin bytes=%lu\n", total);
	/* Only the BSP runs, so bursts go out without the console lock. */
	while (left) {
		size_t n = left < SERIAL_FIFO_DEPTH ? left : SERIAL_FIFO_DEPTH;

		serial_burst(flood_pattern + off, n);
		left -= n;
		off += (u32)n;
		if (off == FLOOD_PERIOD)
			off = 0;
	}
	kprintf("\nSANDVMM-TEST: flood end fnv=%08x\n", flood_fnv(total));
	return NULL;
}

/* ---------------------------------------------------------------- */

static volatile u32 ap_online;

static void __attribute__((noreturn)) ap_main(void)
{
	idt_load();	/* the trampoline left the real-mode IDTR */
	kprintf("SANDVMM-TEST: cpu1 online\n");
	/* Set only after printing, so the BSP's PASS line comes last. */
	__atomic_store_n(&ap_online, 1, __ATOMIC_RELEASE);
	halt_forever();
}

static const char *run_smp(void)
{
	/* Bounded wait so a 1-vCPU VM fails cleanly instead of hanging. */
	u64 timeout_ms = cmdline_get_u64("smp_timeout_ms", 2000);
	u64 deadline;

	kprintf("SANDVMM-TEST: cpu0 online\n");
	smp_start_ap(1, ap_main);
	deadline = rdtsc() + tsc_ms_to_cycles(timeout_ms);
	while (!__atomic_load_n(&ap_online, __ATOMIC_ACQUIRE)) {
		if (rdtsc() > deadline)
			return "ap-timeout";
		cpu_relax();
	}
	return NULL;
}

/* ---------------------------------------------------------------- */

static const struct scenario scenarios[] = {
	{ "hello", run_hello },
	{ "idle", run_idle },
	{ "echo", run_echo },
	{ "prompt", run_prompt },
	{ "serial-flood", run_serial_flood },
	{ "smp", run_smp },
	{ "triple-fault", run_triple_fault },
	{ "emulation-failure", run_emulation_failure },
	{ "escape", run_escape },
	{ "net-ping", run_net_ping },
	{ "net-echo", run_net_echo },
	{ "net-blast", run_net_blast },
	{ "blk-rw", run_blk_rw },
	{ "blk-ro", run_blk_ro },
	{ "blk-bench", run_blk_bench },
	{ "chaos", run_chaos },
};

static char pass_text[192];

void scenario_pass_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kvsnprintf(pass_text, sizeof(pass_text), fmt, ap);
	va_end(ap);
}

const char *scenario_pass_text(void)
{
	return pass_text;
}

const struct scenario *scenario_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}

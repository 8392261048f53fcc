/*
 * cpu.c - page tables, exception handling, delays and reset.
 *
 * The VMM's boot page tables map only the first 1 GiB, but the LAPIC
 * sits at 0xfee00000, so the kernel builds its own 4 GiB identity map
 * in .bss (which is also what the AP trampoline loads into CR3).
 * Exceptions are not expected; if one happens, the handler prints a
 * FAIL line with the vector and RIP instead of letting the CPU triple
 * fault silently, which makes broken VMM state much easier to debug.
 */
#include "cpu.h"
#include "serial.h"
#include "x86.h"

#define PTE_P		0x001	/* present */
#define PTE_W		0x002	/* writable */
#define PTE_PWT		0x008	/* write-through */
#define PTE_PCD		0x010	/* cache disable */
#define PTE_PS		0x080	/* 2 MiB page (in a PD entry) */

#define MMIO_START	0xc0000000ull	/* 3-4 GiB: LAPIC, IOAPIC, virtio */

static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096)));

void paging_init(void)
{
	for (u64 g = 0; g < 4; g++) {
		for (u64 i = 0; i < 512; i++) {
			u64 addr = (g << 30) | (i << 21);
			u64 flags = PTE_P | PTE_W | PTE_PS;

			if (addr >= MMIO_START)
				flags |= PTE_PCD | PTE_PWT;
			pd[g][i] = addr | flags;
		}
		pdpt[g] = (u64)pd[g] | PTE_P | PTE_W;
	}
	pml4[0] = (u64)pdpt | PTE_P | PTE_W;
	write_cr3((u64)pml4);
}

u64 paging_root(void)
{
	return (u64)pml4;
}

struct idt_gate {
	u16 off_lo;
	u16 selector;
	u8 ist;
	u8 type_attr;
	u16 off_mid;
	u32 off_hi;
	u32 reserved;
} __attribute__((packed));

struct idt_ptr {
	u16 limit;
	u64 base;
} __attribute__((packed));

/* What exc_common in entry.S leaves on the stack. */
struct exc_frame {
	u64 vector;
	u64 error;
	u64 rip;
	u64 cs;
	u64 rflags;
	u64 rsp;
	u64 ss;
};

extern const char exc_stubs[];	/* entry.S: 32 stubs, 16 bytes apart */

static struct idt_gate idt[32] __attribute__((aligned(16)));
static const char *fail_tag = "boot";

void idt_load(void)
{
	struct idt_ptr p = { sizeof(idt) - 1, (u64)idt };

	__asm__ volatile("lidt %0" : : "m"(p));
}

void idt_init(void)
{
	for (unsigned v = 0; v < ARRAY_SIZE(idt); v++) {
		u64 h = (u64)(exc_stubs + 16 * v);

		idt[v].off_lo = (u16)h;
		idt[v].selector = 0x08;
		idt[v].ist = 0;
		idt[v].type_attr = 0x8e;	/* present, DPL 0, interrupt gate */
		idt[v].off_mid = (u16)(h >> 16);
		idt[v].off_hi = (u32)(h >> 32);
		idt[v].reserved = 0;
	}
	idt_load();
}

void cpu_set_fail_tag(const char *name)
{
	fail_tag = name;
}

/* Called from exc_common; never returns. */
void __attribute__((noreturn, used)) exception_handler(struct exc_frame *f);
void exception_handler(struct exc_frame *f)
{
	char buf[192];
	u64 cr2;
	int n;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	/* Unlocked: the faulting CPU may hold the console lock. */
	n = ksnprintf(buf, sizeof(buf),
		      "\nSANDVMM-TEST: FAIL %s exception vec=%lu err=0x%lx "
		      "rip=0x%lx cr2=0x%lx\n",
		      fail_tag, f->vector, f->error, f->rip, cr2);
	serial_write_unlocked(buf, (size_t)MIN(n, (int)sizeof(buf) - 1));
	machine_reset();
}

u64 tsc_ms_to_cycles(u64 ms)
{
	return ms * (TSC_HZ_GUESS / 1000);
}

void delay_us(u64 us)
{
	u64 end = rdtsc() + us * (TSC_HZ_GUESS / 1000000);

	while (rdtsc() < end)
		cpu_relax();
}

/* i8254 PIT (channel 2, gated through port 0x61, as Linux calibrates). */
#define PIT_HZ		1193182
#define PIT_CH2		0x42
#define PIT_CMD		0x43
#define PIT_PORT_B	0x61	/* bit 0 gate 2, bit 1 speaker, bit 5 OUT2 */
#define PIT_CAL_DIV	20	/* count for 1/20 s */

u64 tsc_measure_hz(void)
{
	const u32 latch = PIT_HZ / PIT_CAL_DIV;
	u8 port_b = inb(PIT_PORT_B);
	u64 t0, t1, deadline;

	/* Gate high so channel 2 counts, speaker off so nothing beeps. */
	outb(PIT_PORT_B, (u8)((port_b & ~0x02) | 0x01));
	/* Channel 2, lobyte/hibyte, mode 0: OUT2 goes high at count 0. */
	outb(PIT_CMD, 0xb0);
	outb(PIT_CH2, (u8)latch);
	outb(PIT_CH2, (u8)(latch >> 8));
	t0 = rdtsc();
	/* Each inb is a VM exit: the loop runs a few thousand times. */
	deadline = t0 + tsc_ms_to_cycles(1000);
	while (!(inb(PIT_PORT_B) & 0x20)) {
		if (rdtsc() > deadline) {
			outb(PIT_PORT_B, port_b);
			return 0;
		}
	}
	t1 = rdtsc();
	outb(PIT_PORT_B, port_b);
	return (t1 - t0) * PIT_CAL_DIV;
}

void machine_reset(void)
{
	static const struct idt_ptr no_idt = { 0, 0 };
	volatile u32 zero = 0;

	serial_flush();
	outb(0x64, 0xfe);	/* i8042 "pulse reset line": ends the VM */
	/*
	 * Only reached without an i8042 (QEMU microvm has none): force a
	 * triple fault instead, which ends a -no-reboot QEMU and shows up
	 * as KVM_EXIT_SHUTDOWN in a VMM. A divide error with an empty IDT
	 * escalates to #GP, #DF and shutdown; unlike ud2/int3, both div
	 * and exception delivery are emulated on this project's hosts.
	 */
	__asm__ volatile("lidt %0" : : "m"(no_idt));
	__asm__ volatile("divl %0" : : "r"(zero), "a"(1), "d"(0));
	halt_forever();
}

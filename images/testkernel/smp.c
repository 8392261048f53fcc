/*
 * smp.c - local APIC access and AP start-up (INIT-SIPI-SIPI).
 *
 * Follows the Intel SDM "MP initialization" sequence, with the delays
 * shortened: the vCPUs are KVM's, which act on INIT and SIPI at once,
 * and every instruction here is emulated, so long spins only cost time.
 * The LAPIC is used in xAPIC (MMIO) mode, as KVM resets it.
 */
#include "smp.h"
#include "boot.h"
#include "cpu.h"
#include "x86.h"

#define LAPIC_BASE	0xfee00000ull
#define LAPIC_ID	0x020
#define LAPIC_SVR	0x0f0	/* spurious vector / software enable */
#define LAPIC_ICR_LO	0x300
#define LAPIC_ICR_HI	0x310

#define SVR_ENABLE	0x100
#define ICR_INIT	0x500
#define ICR_STARTUP	0x600
#define ICR_LEVEL_ASSERT 0x4000
#define ICR_TRIGGER_LEVEL 0x8000
#define ICR_BUSY	0x1000	/* delivery status: send pending */

/* entry.S: the trampoline blob and its parameter slots. */
extern const char tramp_start[], tramp_end[];
extern u64 tramp_cr3, tramp_stack, tramp_entry;

static u8 ap_stack[AP_STACK_SIZE] __attribute__((aligned(16)));

static u32 lapic_read(u32 reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(u32 reg, u32 v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

u32 lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

/* KVM clears ICR_BUSY immediately; the bound is for odd models. */
static void icr_wait(void)
{
	for (int i = 0; i < 1000 && (lapic_read(LAPIC_ICR_LO) & ICR_BUSY); i++)
		cpu_relax();
}

static void send_ipi(u32 apic_id, u32 icr_lo)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);	/* this write sends it */
	icr_wait();
}

/* Address of a trampoline symbol inside the low-memory copy. */
static u64 *tramp_slot(const void *sym)
{
	return (u64 *)(TRAMP_BASE + ((const char *)sym - tramp_start));
}

void smp_start_ap(u32 apic_id, void (*entry)(void))
{
	size_t len = (size_t)(tramp_end - tramp_start);
	u32 vector = TRAMP_BASE >> 12;	/* AP starts at vector * 0x1000 */

	memcpy((void *)TRAMP_BASE, tramp_start, len);
	*tramp_slot(&tramp_cr3) = paging_root();
	*tramp_slot(&tramp_stack) = (u64)(ap_stack + sizeof(ap_stack));
	*tramp_slot(&tramp_entry) = (u64)entry;
	barrier();

	/* Software-enable our LAPIC, as a real kernel would before IPIs. */
	lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | SVR_ENABLE | 0xff);

	send_ipi(apic_id, ICR_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
	send_ipi(apic_id, ICR_INIT | ICR_TRIGGER_LEVEL);	/* de-assert */
	delay_us(1000);		/* SDM: 10 ms; KVM needs none */
	send_ipi(apic_id, ICR_STARTUP | vector);
	delay_us(200);
	/* The second SIPI is ignored by an AP that already started. */
	send_ipi(apic_id, ICR_STARTUP | vector);
}

/*
 * smp.h - starts an application processor (AP) with INIT-SIPI-SIPI
 * through the local APIC, via the real-mode trampoline in entry.S.
 */
#ifndef SMP_H
#define SMP_H

#include "lib.h"

/* APIC ID of the calling CPU (xAPIC mode, MMIO at 0xfee00000). */
u32 lapic_id(void);

/*
 * Copies the trampoline to TRAMP_BASE and sends INIT, SIPI, SIPI to
 * apic_id. The AP enters long mode on our page tables and calls
 * entry() on its own stack. Returns at once; the caller waits for the
 * AP to report in. entry() must not return.
 */
void smp_start_ap(u32 apic_id, void (*entry)(void));

#endif

/*
 * cpu.h - per-machine CPU setup: our own page tables (so the LAPIC and
 * other MMIO above 1 GiB is reachable), the exception IDT, TSC-based
 * delays and the i8042 reset that ends every run.
 */
#ifndef CPU_H
#define CPU_H

#include "lib.h"

/* Identity map of 0-4 GiB with 2 MiB pages; 3-4 GiB uncached (MMIO). */
void paging_init(void);
/* Physical address of the PML4, for the AP trampoline's CR3. */
u64 paging_root(void);

/* Builds the exception IDT (vectors 0-31) and loads it. */
void idt_init(void);
/* Loads the already built IDT on another CPU. */
void idt_load(void);

/* Name used in the FAIL line if an exception hits; set per scenario. */
void cpu_set_fail_tag(const char *name);

/*
 * Approximate time from the TSC. The TSC rate is not measured: it is
 * assumed to be TSC_HZ_GUESS, so delays are right within about 2x on
 * any 1.5-6 GHz host. That is enough for INIT/SIPI delays and timeouts.
 */
#define TSC_HZ_GUESS 3000000000ull
u64 tsc_ms_to_cycles(u64 ms);
void delay_us(u64 us);

/*
 * Measures the TSC rate against PIT channel 2 (the i8254 the VMM
 * emulates; its count runs on the host's clock) over ~50 ms, for
 * figures that are rates. Returns 0 if channel 2 never fires (no PIT),
 * in which case TSC_HZ_GUESS is all there is.
 */
u64 tsc_measure_hz(void);

/*
 * Prints nothing; flushes the UART, then resets through the i8042. If
 * that returns (no i8042), forces a triple fault (KVM_EXIT_SHUTDOWN).
 */
void __attribute__((noreturn)) machine_reset(void);

#endif

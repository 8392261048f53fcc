/*
 * /init for sandvmm's minimal Linux initramfs.
 *
 * Freestanding x86-64 Linux program: no libc, raw system calls through inline
 * assembly.  build.sh compiles it with
 *   gcc -static -nostdlib -ffreestanding -mgeneral-regs-only -mno-red-zone -O2
 * and checks that the result uses no SSE/AVX register and no POPCNT.
 *
 * What it does:
 *   1. makes sure fds 0, 1 and 2 are the console: the kernel opens
 *      /dev/console for init only if that node exists when init starts, so
 *      open it here too (the initramfs ships /dev/console, 5:1; if that is
 *      missing, mount devtmpfs on /dev and try again);
 *   2. writes "SANDVMM-LINUX: init ok\n" to fd 1;
 *   3. reboot(LINUX_REBOOT_CMD_RESTART).  The VMM boots the kernel with
 *      reboot=k, so the guest resets through the i8042 (0xFE to port 0x64)
 *      and the VMM ends the VM;
 *   4. if reboot() fails, pause() forever (init must never exit: the kernel
 *      would panic).
 */

typedef unsigned long size_t;
typedef long ssize_t;

/* x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define SYS_write	1
#define SYS_open	2
#define SYS_close	3
#define SYS_pause	34
#define SYS_dup2	33
#define SYS_mount	165
#define SYS_reboot	169

#define O_RDWR		02
#define O_NOCTTY	0400

#define LINUX_REBOOT_MAGIC1		0xfee1deadUL
#define LINUX_REBOOT_MAGIC2		672274793UL
#define LINUX_REBOOT_CMD_RESTART	0x01234567UL

/*
 * SYSCALL clobbers RCX (return RIP) and R11 (RFLAGS); the kernel preserves
 * every other register except RAX (result).  The "memory" clobber keeps the
 * compiler from caching memory across the call (buffers passed by address).
 */
static inline long syscall1(long nr, long a1)
{
	long ret;
	__asm__ volatile ("syscall"
			  : "=a" (ret)
			  : "a" (nr), "D" (a1)
			  : "rcx", "r11", "memory");
	return ret;
}

static inline long syscall3(long nr, long a1, long a2, long a3)
{
	long ret;
	__asm__ volatile ("syscall"
			  : "=a" (ret)
			  : "a" (nr), "D" (a1), "S" (a2), "d" (a3)
			  : "rcx", "r11", "memory");
	return ret;
}

static inline long syscall5(long nr, long a1, long a2, long a3, long a4,
			    long a5)
{
	long ret;
	register long r10 __asm__ ("r10") = a4;
	register long r8 __asm__ ("r8") = a5;
	__asm__ volatile ("syscall"
			  : "=a" (ret)
			  : "a" (nr), "D" (a1), "S" (a2), "d" (a3),
			    "r" (r10), "r" (r8)
			  : "rcx", "r11", "memory");
	return ret;
}

static size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Write all of s to fd; give up on an error (there is nobody to tell). */
static void put(int fd, const char *s)
{
	size_t len = str_len(s);
	while (len > 0) {
		ssize_t n = syscall3(SYS_write, fd, (long)s, (long)len);
		if (n == -4 /* -EINTR */)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static long open_console(void)
{
	return syscall3(SYS_open, (long)"/dev/console", O_RDWR | O_NOCTTY, 0);
}

static void setup_console(void)
{
	long fd = open_console();

	if (fd < 0) {
		/* No node in the initramfs: let devtmpfs provide one. */
		syscall5(SYS_mount, (long)"devtmpfs", (long)"/dev",
			 (long)"devtmpfs", 0, 0);
		fd = open_console();
	}
	if (fd < 0)
		return;		/* nowhere to write; still reboot below */
	for (long i = 0; i <= 2; i++)
		if (fd != i)
			syscall3(SYS_dup2, fd, i, 0);
	if (fd > 2)
		syscall1(SYS_close, fd);
}

__attribute__((noreturn, used)) void init_main(void)
{
	setup_console();
	put(1, "SANDVMM-LINUX: init ok\n");

	syscall5(SYS_reboot, (long)LINUX_REBOOT_MAGIC1,
		 (long)LINUX_REBOOT_MAGIC2, (long)LINUX_REBOOT_CMD_RESTART, 0, 0);

	/* reboot() failed (or returned): never exit, pid 1 must not die. */
	put(2, "SANDVMM-LINUX: reboot failed\n");
	for (;;)
		syscall1(SYS_pause, 0);
}

/*
 * Process entry point.  The kernel enters with RSP 16-byte aligned and
 * pointing at argc; there is no return address.  Clear RBP (end of the frame
 * chain), keep the ABI's stack alignment for the call, and never return.
 */
__asm__ (
	".text\n"
	".globl _start\n"
	".type _start, @function\n"
	"_start:\n"
	"	xorl %ebp, %ebp\n"
	"	andq $-16, %rsp\n"
	"	call init_main\n"
	"1:	jmp 1b\n"
	".size _start, . - _start\n"
);

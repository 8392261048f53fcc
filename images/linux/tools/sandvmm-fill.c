/*
 * sandvmm-fill MIB SEED: writes MIB mebibytes of generated data to stdout, for
 * the workload's disk step (images/linux/rootfs/etc/sandvmm/workload).
 *
 * Word i of the output (8 bytes, little-endian) is splitmix64(SEED * 2^32 + i),
 * so every word is different and depends on its place: a block the disk put in
 * the wrong sector changes the sha256. tests/linux.rs makes the same bytes on
 * the host and checks them against the file it reads out of the image.
 *
 * Why not busybox: awk writes a line per system call, and on the emulating test
 * hosts each small write into ext4 costs milliseconds of emulated guest kernel
 * (16 MiB took over 20 minutes). This writes 1 MiB per call and computes in user
 * space, which those hosts run natively.
 *
 * Freestanding (no libc): a static binary of a few KiB, built by
 * images/linux/build.sh with the host's gcc.
 */

typedef unsigned long u64;

#define CHUNK (1UL << 20)
static u64 buf[CHUNK / 8];

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static void leave(int code)
{
	sys3(60 /* exit */, code, 0, 0);
	__builtin_unreachable();
}

static void say(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	sys3(1 /* write */, 2, (long)s, n);
}

/* A decimal number, or -1. */
static long number(const char *s)
{
	long n = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > 1000000)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n;
}

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit output per input. */
static u64 mix(u64 z)
{
	z += 0x9e3779b97f4a7c15UL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
	return z ^ (z >> 31);
}

/* Called from _start below, hence not static. */
void fill(long argc, char **argv);
void fill(long argc, char **argv)
{
	long mib, seed;
	if (argc != 3 || (mib = number(argv[1])) < 0 || (seed = number(argv[2])) < 0) {
		say("usage: sandvmm-fill MIB SEED\n");
		leave(2);
	}
	u64 word = (u64)seed << 32;
	for (long m = 0; m < mib; m++) {
		for (u64 i = 0; i < CHUNK / 8; i++)
			buf[i] = mix(word++);
		for (long done = 0; done < (long)CHUNK;) {
			long n = sys3(1 /* write */, 1, (long)buf + done, CHUNK - done);
			if (n <= 0) {
				say("sandvmm-fill: write failed\n");
				leave(1);
			}
			done += n;
		}
	}
	leave(0);
}

/* The kernel starts us with argc at the stack pointer, argv after it. */
__asm__(".globl _start\n"
	"_start:\n"
	"	mov (%rsp), %rdi\n"
	"	lea 8(%rsp), %rsi\n"
	"	and $-16, %rsp\n"
	"	call fill\n");

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
 *   3. mounts proc on /proc and reads /proc/cmdline.  Dotted parameters such
 *      as sandvmm.net= reach init neither as arguments nor as environment, so
 *      this is the only place to find them.  Without sandvmm.net= it goes
 *      straight on to step 5 and prints nothing more;
 *   4. with sandvmm.net=A.B.C.D/PREFIX (the network test):
 *      - gives eth0 that address and netmask and brings it and lo up
 *        (SIOCSIFADDR, SIOCSIFNETMASK, SIOCGIFFLAGS/SIOCSIFFLAGS), opens a raw
 *        ICMP socket, then prints
 *        "SANDVMM-LINUX: eth0 up ip=A.B.C.D/PREFIX mac=xx:xx:xx:xx:xx:xx";
 *      - waits up to 120 s for an ICMP echo request addressed to A.B.C.D.
 *        The kernel answers it; the raw socket only sees a copy.  Then it
 *        keeps counting requests until none has come for 3 s (at most 30 s),
 *        so that a `ping -c N` gets all its replies before the VM ends, and
 *        prints "SANDVMM-LINUX: net ok echo_requests=N";
 *      - on a timeout or any failed step it prints
 *        "SANDVMM-LINUX: FAIL net <reason>" instead;
 *      and goes on to step 5 either way;
 *   5. reboot(LINUX_REBOOT_CMD_RESTART).  The VMM boots the kernel with
 *      reboot=k, so the guest resets through the i8042 (0xFE to port 0x64)
 *      and the VMM ends the VM;
 *   6. if reboot() fails, pause() forever (init must never exit: the kernel
 *      would panic).
 */

#include "sys.h"

/* How long the network test waits (milliseconds). */
#define NET_FIRST_PING_MS	120000	/* for the first echo request */
#define NET_QUIET_MS		3000	/* then: until none for this long */
#define NET_LINGER_MAX_MS	30000	/* but no longer than this after it */

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
		if (n == -EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

/*
 * A line is built in one buffer and written with one write(), so the VMM
 * sees whole lines.  The appenders truncate silently at the end of the buffer.
 */
struct line {
	char buf[160];
	size_t len;
};

static void add_str(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
	l->buf[l->len] = 0;
}

static void add_dec(struct line *l, unsigned long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0 && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
	l->buf[l->len] = 0;
}

static void add_hex2(struct line *l, u8 v)
{
	static const char digits[] = "0123456789abcdef";
	char s[3] = { digits[v >> 4], digits[v & 15], 0 };

	add_str(l, s);
}

/* The address in network byte order (as in struct sockaddr_in). */
static void add_ip(struct line *l, u32 addr)
{
	const u8 *b = (const u8 *)&addr;

	for (int i = 0; i < 4; i++) {
		if (i)
			add_str(l, ".");
		add_dec(l, b[i]);
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

/*
 * Reads /proc/cmdline (mounting proc first) into buf, NUL-terminated.
 * Returns 0, or a negative errno with *step naming what failed.
 */
static long read_cmdline(char *buf, size_t size, const char **step)
{
	long fd, n, total = 0;

	*step = "mount /proc";
	n = syscall5(SYS_mount, (long)"proc", (long)"/proc", (long)"proc",
		     MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
	if (n < 0)
		return n;
	*step = "open /proc/cmdline";
	fd = syscall3(SYS_open, (long)"/proc/cmdline", O_RDONLY, 0);
	if (fd < 0)
		return fd;
	*step = "read /proc/cmdline";
	while ((size_t)total < size - 1) {
		n = syscall3(SYS_read, fd, (long)(buf + total),
			     (long)(size - 1 - (size_t)total));
		if (n == -EINTR)
			continue;
		if (n < 0) {
			syscall1(SYS_close, fd);
			return n;
		}
		if (n == 0)
			break;
		total += n;
	}
	syscall1(SYS_close, fd);
	buf[total] = 0;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == 0;
}

/*
 * The value of the first "key=" parameter in cmdline, ended by a NUL it
 * writes over the separator, or 0 if the key is absent.
 */
static char *param(char *cmdline, const char *key)
{
	size_t klen = str_len(key);

	for (char *p = cmdline; *p; p++) {
		size_t i;

		if (p != cmdline && !is_space(p[-1]))
			continue;
		for (i = 0; i < klen && p[i] == key[i]; i++)
			;
		if (i < klen || p[klen] != '=')
			continue;
		p += klen + 1;
		for (i = 0; !is_space(p[i]); i++)
			;
		p[i] = 0;
		return p;
	}
	return 0;
}

/* A decimal number of 1-3 digits, at most max; advances *s. */
static int parse_num(const char **s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	int digits = 0;

	while (**s >= '0' && **s <= '9' && digits < 3) {
		v = v * 10 + (unsigned long)(**s - '0');
		(*s)++;
		digits++;
	}
	if (!digits || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "A.B.C.D/PREFIX" -> address (network byte order) and prefix length. */
static int parse_cidr(const char *s, u32 *addr, unsigned long *prefix)
{
	u8 *b = (u8 *)addr;
	unsigned long v;

	for (int i = 0; i < 4; i++) {
		if (parse_num(&s, 255, &v) < 0)
			return -1;
		b[i] = (u8)v;
		if (*s++ != (i < 3 ? '.' : '/'))
			return -1;
	}
	if (parse_num(&s, 32, prefix) < 0 || *s)
		return -1;
	return 0;
}

/* The netmask of a prefix length, in network byte order. */
static u32 netmask(unsigned long prefix)
{
	u32 host = prefix ? 0xffffffffU << (32 - prefix) : 0;

	return (host >> 24) | ((host >> 8) & 0xff00) |
	       ((host << 8) & 0xff0000) | (host << 24);
}

static void ifreq_init(struct ifreq *r, const char *name)
{
	*r = (struct ifreq){ 0 };
	for (int i = 0; name[i] && i < 15; i++)
		r->ifr_name[i] = name[i];
}

/* Sets IFF_UP | IFF_RUNNING on interface name. */
static long if_up(long sock, const char *name)
{
	struct ifreq r;
	long err;

	ifreq_init(&r, name);
	err = syscall3(SYS_ioctl, sock, SIOCGIFFLAGS, (long)&r);
	if (err < 0)
		return err;
	r.ifr_flags |= IFF_UP | IFF_RUNNING;
	return syscall3(SYS_ioctl, sock, SIOCSIFFLAGS, (long)&r);
}

static long if_set_addr(long sock, unsigned long req, u32 addr)
{
	struct ifreq r;

	ifreq_init(&r, "eth0");
	r.ifr_addr.sin_family = AF_INET;
	r.ifr_addr.sin_addr = addr;
	return syscall3(SYS_ioctl, sock, (long)req, (long)&r);
}

static long now_ms(void)
{
	struct timespec ts = { 0, 0 };

	syscall3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads what the raw socket has; 1 if it was an ICMP echo request addressed
 * to addr, 0 if something else, a negative errno if the read failed.
 */
static long read_echo_request(long raw, u32 addr)
{
	static u8 pkt[2048];
	long n = syscall3(SYS_read, raw, (long)pkt, sizeof(pkt));
	long ihl;

	if (n == -EINTR)
		return 0;
	if (n < 0)
		return n;
	/* The IPv4 header comes with the packet on a raw socket. */
	if (n < 20 || (pkt[0] >> 4) != 4)
		return 0;
	ihl = (pkt[0] & 15) * 4;
	if (n < ihl + 8 || pkt[9] != IPPROTO_ICMP)
		return 0;
	if (pkt[16] != ((u8 *)&addr)[0] || pkt[17] != ((u8 *)&addr)[1] ||
	    pkt[18] != ((u8 *)&addr)[2] || pkt[19] != ((u8 *)&addr)[3])
		return 0;
	return pkt[ihl] == ICMP_ECHO;
}

/* One "SANDVMM-LINUX: FAIL net <what>[: errno N]" line. */
static void net_fail(const char *what, long err)
{
	struct line l = { .len = 0 };

	add_str(&l, "SANDVMM-LINUX: FAIL net ");
	add_str(&l, what);
	if (err < 0) {
		add_str(&l, ": errno ");
		add_dec(&l, (unsigned long)-err);
	}
	add_str(&l, "\n");
	put(1, l.buf);
}

/* Step 4 of the header comment; spec is the value of sandvmm.net=. */
static void net_test(const char *spec)
{
	struct line l = { .len = 0 };
	struct ifreq hw;
	struct pollfd pfd;
	unsigned long prefix;
	u32 addr = 0;
	long sock, raw, err, start, first = 0, last = 0, requests = 0;

	if (parse_cidr(spec, &addr, &prefix) < 0) {
		add_str(&l, "bad sandvmm.net=");
		add_str(&l, spec);
		add_str(&l, " (want A.B.C.D/PREFIX)");
		net_fail(l.buf, 0);
		return;
	}
	sock = syscall3(SYS_socket, AF_INET, SOCK_DGRAM, 0);
	if (sock < 0) {
		net_fail("socket(AF_INET, SOCK_DGRAM)", sock);
		return;
	}
	err = if_set_addr(sock, SIOCSIFADDR, addr);
	if (err < 0) {
		net_fail("SIOCSIFADDR eth0", err);
		return;
	}
	err = if_set_addr(sock, SIOCSIFNETMASK, netmask(prefix));
	if (err < 0) {
		net_fail("SIOCSIFNETMASK eth0", err);
		return;
	}
	err = if_up(sock, "eth0");
	if (err < 0) {
		net_fail("SIOCGIFFLAGS/SIOCSIFFLAGS eth0", err);
		return;
	}
	err = if_up(sock, "lo");
	if (err < 0) {
		net_fail("SIOCGIFFLAGS/SIOCSIFFLAGS lo", err);
		return;
	}
	ifreq_init(&hw, "eth0");
	err = syscall3(SYS_ioctl, sock, SIOCGIFHWADDR, (long)&hw);
	if (err < 0) {
		net_fail("SIOCGIFHWADDR eth0", err);
		return;
	}
	syscall1(SYS_close, sock);
	/* Before the "up" line, so that no request can come before it. */
	raw = syscall3(SYS_socket, AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (raw < 0) {
		net_fail("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)", raw);
		return;
	}

	add_str(&l, "SANDVMM-LINUX: eth0 up ip=");
	add_ip(&l, addr);
	add_str(&l, "/");
	add_dec(&l, prefix);
	add_str(&l, " mac=");
	for (int i = 0; i < 6; i++) {
		if (i)
			add_str(&l, ":");
		add_hex2(&l, hw.ifr_hwaddr.sa_data[i]);
	}
	add_str(&l, "\n");
	put(1, l.buf);

	start = now_ms();
	for (;;) {
		long now = now_ms(), wait;

		if (!requests)
			wait = start + NET_FIRST_PING_MS - now;
		else if (last + NET_QUIET_MS < first + NET_LINGER_MAX_MS)
			wait = last + NET_QUIET_MS - now;
		else
			wait = first + NET_LINGER_MAX_MS - now;
		if (wait <= 0)
			break;
		pfd = (struct pollfd){ .fd = (int)raw, .events = POLLIN };
		err = syscall3(SYS_poll, (long)&pfd, 1, wait);
		if (err == -EINTR || err == 0)
			continue;
		if (err < 0) {
			net_fail("poll", err);
			return;
		}
		err = read_echo_request(raw, addr);
		if (err < 0) {
			net_fail("read from the raw ICMP socket", err);
			return;
		}
		if (err) {
			last = now_ms();
			if (!requests++)
				first = last;
		}
	}
	syscall1(SYS_close, raw);
	if (!requests) {
		net_fail("timeout: no ICMP echo request in 120 s", 0);
		return;
	}
	l.len = 0;
	add_str(&l, "SANDVMM-LINUX: net ok echo_requests=");
	add_dec(&l, (unsigned long)requests);
	add_str(&l, "\n");
	put(1, l.buf);
}

__attribute__((noreturn, used)) void init_main(void)
{
	static char cmdline[4096];
	const char *step;
	char *net;
	long err;

	setup_console();
	put(1, "SANDVMM-LINUX: init ok\n");

	err = read_cmdline(cmdline, sizeof(cmdline), &step);
	if (err < 0) {
		struct line l = { .len = 0 };

		add_str(&l, "SANDVMM-LINUX: cannot ");
		add_str(&l, step);
		add_str(&l, ": errno ");
		add_dec(&l, (unsigned long)-err);
		add_str(&l, "\n");
		put(1, l.buf);
	} else if ((net = param(cmdline, "sandvmm.net"))) {
		net_test(net);
	}

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

/*
 * sys.h - the raw x86-64 Linux system call interface of sandvmm's /init:
 * types, system call numbers, the constants and structures it passes to the
 * kernel, and inline SYSCALL wrappers. No libc: init.c is freestanding.
 */
#ifndef SANDVMM_INIT_SYS_H
#define SANDVMM_INIT_SYS_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

/* x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define SYS_read	0
#define SYS_write	1
#define SYS_open	2
#define SYS_close	3
#define SYS_poll	7
#define SYS_ioctl	16
#define SYS_pause	34
#define SYS_dup2	33
#define SYS_socket	41
#define SYS_mount	165
#define SYS_reboot	169
#define SYS_clock_gettime 228

#define O_RDONLY	00
#define O_RDWR		02
#define O_NOCTTY	0400

#define EINTR		4

#define MS_NOSUID	2
#define MS_NODEV	4
#define MS_NOEXEC	8

#define CLOCK_MONOTONIC	1
#define POLLIN		0x001

#define AF_INET		2
#define SOCK_DGRAM	2
#define SOCK_RAW	3
#define IPPROTO_ICMP	1
#define ICMP_ECHO	8

/* Interface ioctls (include/uapi/linux/sockios.h) and flags (if.h). */
#define SIOCGIFFLAGS	0x8913
#define SIOCSIFFLAGS	0x8914
#define SIOCSIFADDR	0x8916
#define SIOCSIFNETMASK	0x891c
#define SIOCGIFHWADDR	0x8927
#define IFF_UP		0x1
#define IFF_RUNNING	0x40

#define LINUX_REBOOT_MAGIC1		0xfee1deadUL
#define LINUX_REBOOT_MAGIC2		672274793UL
#define LINUX_REBOOT_CMD_RESTART	0x01234567UL

/* struct sockaddr_in; addresses and ports in network byte order. */
struct sockaddr_in {
	u16 sin_family;
	u16 sin_port;
	u32 sin_addr;
	u8 sin_zero[8];
};

/* struct ifreq (include/uapi/linux/if.h): 16-byte name, 24-byte union. */
struct ifreq {
	char ifr_name[16];
	union {
		struct sockaddr_in ifr_addr;
		struct {
			u16 sa_family;
			u8 sa_data[14];
		} ifr_hwaddr;
		short ifr_flags;
		u8 ifr_pad[24];
	};
};

struct pollfd {
	int fd;
	short events;
	short revents;
};

struct timespec {
	long tv_sec;
	long tv_nsec;
};

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

#endif

//! The forbidden actions of the escape demonstration, and how each one ended.
//!
//! Each attempt is what a compromised device model would try, made harmless where it
//! can be when nothing stops it: a mapping is unmapped again, a mount detached, a
//! seized process released when sandvmm exits. `execve` really runs a shell command,
//! and `signal-other` really kills the process it is pointed at: that is the escape
//! being shown. Under `--sandbox enforce` a filtered call never returns (SIGSYS); what
//! [`Attack::attempt`] returns is what happened when it did.

use std::io;

use super::Targets;

/// The forbidden actions the guest can ask for, with their port codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    Execve = 1,
    Open,
    Socket,
    Mprotect,
    Mmap,
    Fork,
    Ptrace,
    KvmIoctl,
    Setuid,
    Mount,
    FdWrite,
    SignalOther,
    Helper,
    Int80,
    X32,
    FutexPi,
    MadviseHwpoison,
}

/// How an attempt ended, when it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It did what it set out to do; the text says what.
    Succeeded(String),
    /// A layer refused it with this errno.
    Failed(i32, String),
}

impl Attack {
    pub const ALL: [Attack; 17] = [
        Attack::Execve,
        Attack::Open,
        Attack::Socket,
        Attack::Mprotect,
        Attack::Mmap,
        Attack::Fork,
        Attack::Ptrace,
        Attack::KvmIoctl,
        Attack::Setuid,
        Attack::Mount,
        Attack::FdWrite,
        Attack::SignalOther,
        Attack::Helper,
        Attack::Int80,
        Attack::X32,
        Attack::FutexPi,
        Attack::MadviseHwpoison,
    ];

    /// The attack with port code `code`.
    pub fn from_code(code: u8) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| *a as u8 == code)
    }

    /// Its name in `escape=NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Execve => "execve",
            Attack::Open => "open",
            Attack::Socket => "socket",
            Attack::Mprotect => "mprotect",
            Attack::Mmap => "mmap",
            Attack::Fork => "fork",
            Attack::Ptrace => "ptrace",
            Attack::KvmIoctl => "kvm-ioctl",
            Attack::Setuid => "setuid",
            Attack::Mount => "mount",
            Attack::FdWrite => "fd-write",
            Attack::SignalOther => "signal-other",
            Attack::Helper => "helper",
            Attack::Int80 => "int80",
            Attack::X32 => "x32",
            Attack::FutexPi => "futex-pi",
            Attack::MadviseHwpoison => "madvise-hwpoison",
        }
    }

    /// Makes the attempt. `arg` is the guest's argument: a port for `socket`, a pid
    /// for `ptrace` and `signal-other`, an fd for `fd-write`.
    pub fn attempt(self, arg: u32, targets: &Targets) -> Ending {
        match self {
            Attack::Execve => execve(),
            Attack::Open => {
                // SAFETY: opening a path read-only; the fd is closed below.
                let fd = unsafe {
                    libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
                };
                // SAFETY: closing the fd just opened (close(-1) is harmless).
                ended(fd.into(), "open /etc/passwd", || unsafe { libc::close(fd) })
            }
            Attack::Socket => socket(if arg == 0 { 9 } else { arg as u16 }),
            Attack::Mprotect => {
                let mut page = vec![0u8; 8192];
                let aligned = ((page.as_mut_ptr() as usize + 4095) & !4095) as *mut libc::c_void;
                let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
                // SAFETY: a page inside our own heap buffer, made executable.
                let rc = unsafe { libc::mprotect(aligned, 4096, rwx) };
                // SAFETY: restores the page's usual protection before the Vec frees it.
                ended(rc.into(), "mprotect of a heap page to RWX", || unsafe {
                    libc::mprotect(aligned, 4096, libc::PROT_READ | libc::PROT_WRITE)
                })
            }
            Attack::Mmap => {
                let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                // SAFETY: a fresh anonymous mapping, unmapped below.
                let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, rwx, flags, -1, 0) };
                let rc = if p == libc::MAP_FAILED { -1 } else { 0 };
                // SAFETY: unmapping the mapping made above.
                ended(rc, "mmap of RWX memory", || unsafe {
                    libc::munmap(p, 4096)
                })
            }
            Attack::Fork => {
                // SAFETY: the child leaves at once without touching anything.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: leaving the child.
                    unsafe { libc::_exit(0) };
                }
                ended(pid.into(), "fork", || 0)
            }
            Attack::Ptrace => {
                // Seizing does not stop the process; it is released when sandvmm ends.
                // SAFETY: PTRACE_SEIZE / PTRACE_TRACEME take no memory.
                let (rc, what) = unsafe {
                    match arg {
                        0 => (
                            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0),
                            "PTRACE_TRACEME",
                        ),
                        pid => (libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0), "PTRACE_SEIZE"),
                    }
                };
                ended(rc, what, || 0)
            }
            Attack::KvmIoctl => {
                // Any KVM request but KVM_RUN is what the vCPU filter forbids; this one
                // only asks the VM a question, so the unfiltered case is harmless.
                use kvm_bindings::KVM_CAP_USER_MEMORY;
                use sandbox::consts::KVM_CHECK_EXTENSION;
                let fd = targets.vm_fd();
                // SAFETY: KVM_CHECK_EXTENSION takes its argument by value.
                let rc = unsafe {
                    libc::ioctl(
                        fd,
                        KVM_CHECK_EXTENSION,
                        libc::c_ulong::from(KVM_CAP_USER_MEMORY),
                    )
                };
                ended(rc.into(), "KVM_CHECK_EXTENSION on the VM fd", || 0)
            }
            Attack::Setuid => {
                // The raw call: glibc's setuid() would first signal every thread to
                // change its ids too, and the filter would stop that signal instead.
                // SAFETY: setuid takes no memory (as root it is a no-op to uid 0).
                let rc = unsafe { libc::syscall(libc::SYS_setuid, 0) };
                ended(rc, "setuid(0)", || 0)
            }
            Attack::Mount => mount(),
            Attack::FdWrite => {
                let text = b"sandvmm escape demo: written through an inherited fd\n";
                // SAFETY: writes our own buffer to the fd the guest named.
                let n = unsafe { libc::write(arg as i32, text.as_ptr().cast(), text.len()) };
                ended(n as i64, &format!("write to fd {arg}"), || 0)
            }
            Attack::SignalOther => {
                // The kick signal, the one tgkill is allowed to send: its default
                // action ends the process it hits.
                let sig = crate::vcpu::kick_signal();
                // SAFETY: tgkill takes plain integers.
                let rc = unsafe { libc::syscall(libc::SYS_tgkill, arg, arg, sig) };
                ended(rc, &format!("tgkill of pid {arg}"), || 0)
            }
            Attack::Helper => {
                // A second `up` for the first script: a run of a root-owned script
                // the VMM did not ask for.
                let fd = targets.helper_fd();
                // SAFETY: writes two bytes of ours to the helper's socket.
                let n = unsafe { libc::write(fd, [0u8, 0u8].as_ptr().cast(), 2) };
                ended(
                    n as i64,
                    &format!("request `up` from the helper on fd {fd}"),
                    || 0,
                )
            }
            Attack::Int80 => {
                let rc = int80_getpid();
                ended(rc, "getpid through int 0x80 (the i386 ABI)", || 0)
            }
            Attack::X32 => {
                // SAFETY: x32's getpid takes no argument; without x32 support it is
                // ENOSYS.
                let rc = unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
                ended(rc, "getpid through the x32 ABI", || 0)
            }
            Attack::FutexPi => {
                let word = std::sync::atomic::AtomicU32::new(0);
                let lock_pi = 6 | 128; // FUTEX_LOCK_PI_PRIVATE
                                       // SAFETY: a PI lock on a word of ours, unlocked again below.
                let rc = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), lock_pi, 0, 0) };
                // SAFETY: FUTEX_UNLOCK_PI_PRIVATE on the same word.
                ended(rc, "FUTEX_LOCK_PI", || unsafe {
                    libc::syscall(libc::SYS_futex, word.as_ptr(), 7 | 128, 0, 0) as i32
                })
            }
            Attack::MadviseHwpoison => {
                // An unaligned address: unfiltered, the kernel refuses it before
                // poisoning anything; the filter judges the advice alone.
                // SAFETY: madvise on an invalid range does nothing.
                let rc = unsafe {
                    libc::madvise(
                        std::ptr::dangling_mut::<libc::c_void>(),
                        4096,
                        libc::MADV_HWPOISON,
                    )
                };
                ended(rc.into(), "madvise(MADV_HWPOISON)", || 0)
            }
        }
    }
}

/// The ending of a call that returned `rc`; `undo` cleans up after a success.
fn ended<T>(rc: i64, what: &str, undo: impl FnOnce() -> T) -> Ending {
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Ending::Failed(err.raw_os_error().unwrap_or(0), format!("{what}: {err}"));
    }
    undo();
    Ending::Succeeded(format!("{what} returned {rc}"))
}

fn execve() -> Ending {
    let argv = [
        c"/bin/sh".as_ptr(),
        c"-c".as_ptr(),
        c"echo ESCAPED: a shell ran in place of sandvmm".as_ptr(),
        std::ptr::null(),
    ];
    // SAFETY: NUL-terminated strings and a NULL-terminated argv; on success the process
    // image is replaced, which is the escape being shown.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    ended(-1, "execve /bin/sh", || 0)
}

fn socket(port: u16) -> Ending {
    // SAFETY: a socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return ended(-1, "socket", || 0);
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the size given.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&addr) as u32,
        )
    };
    let ending = ended(rc.into(), &format!("connect to 127.0.0.1:{port}"), || 0);
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    ending
}

fn mount() -> Ending {
    // SAFETY: NUL-terminated strings; a successful mount is detached at once.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    // SAFETY: as above.
    ended(rc.into(), "mount of a tmpfs on /tmp", || unsafe {
        libc::umount2(c"/tmp".as_ptr(), libc::MNT_DETACH)
    })
}

/// i386 getpid (20) through `int 0x80`; -1 with errno set on failure, as libc does.
fn int80_getpid() -> i64 {
    let mut rax: i64 = 20;
    // SAFETY: the i386 system-call gate takes the number in eax and returns in eax;
    // getpid touches no memory. The 32-bit entry preserves every other register but
    // r8-r11, which are declared clobbered.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("rax") rax,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    let rc = rax as i32 as i64;
    if (-4095..0).contains(&rc) {
        // SAFETY: errno is thread-local; setting it mirrors what libc does.
        unsafe { *libc::__errno_location() = -rc as i32 };
        return -1;
    }
    rc
}

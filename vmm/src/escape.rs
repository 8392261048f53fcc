//! The escape demonstration (`--demo-escape`): a debug port through which the guest
//! makes sandvmm attempt a forbidden action, the way a compromised device model
//! would, so the sandbox can be seen stopping it.
//!
//! The guest writes one byte to port 0x5ec (the test kernel's `scenario=escape`): the
//! low 7 bits name the [`Attack`], bit 7 picks the thread. Without bit 7 the vCPU
//! thread that executed the OUT makes the attempt on the spot; with it the device hands
//! the attempt to the VMM thread through an eventfd. Under `--sandbox enforce` the
//! process dies of SIGSYS; under `trap` the report names the call and the thread.
//! An attempt that is not stopped (`--sandbox off`) is said on stderr, and each one is
//! chosen to be harmless then, except execve, which really runs a shell command.
//!
//! Off by default; a demonstration device has no place in a production VM.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use devices::bus::BusDevice;
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The debug port.
pub const ESCAPE_PORT: u64 = 0x5ec;
const ON_VMM_THREAD: u8 = 0x80;

/// The forbidden actions the guest can ask for.
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
}

impl Attack {
    const ALL: [Attack; 10] = [
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
    ];

    /// The attack with code `code` (1 to 10).
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
        }
    }

    /// Makes the attempt; returns what happened if the sandbox let it through.
    pub fn attempt(self) -> String {
        match self {
            Attack::Execve => {
                let argv = [
                    c"/bin/sh".as_ptr(),
                    c"-c".as_ptr(),
                    c"echo ESCAPED: a shell ran in place of sandvmm".as_ptr(),
                    std::ptr::null(),
                ];
                // SAFETY: NUL-terminated strings and a NULL-terminated argv; on success
                // the process image is replaced, which is the escape being shown.
                unsafe { libc::execv(argv[0], argv.as_ptr()) };
                format!("execve failed: {}", std::io::Error::last_os_error())
            }
            Attack::Open => {
                // SAFETY: opening a path read-only; the fd is closed below.
                let fd = unsafe {
                    libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
                };
                if fd >= 0 {
                    // SAFETY: closing the fd just opened.
                    unsafe { libc::close(fd) };
                }
                format!("open /etc/passwd returned {fd}")
            }
            Attack::Socket => {
                // SAFETY: a socket and a connect to loopback's discard port; closed below.
                let fd = unsafe {
                    libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
                };
                let addr = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: 9u16.to_be(),
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
                // SAFETY: closing the socket opened above (close(-1) is harmless).
                unsafe { libc::close(fd) };
                format!("socket returned {fd}, connect {rc}")
            }
            Attack::Mprotect => {
                let mut page = vec![0u8; 8192];
                let aligned = ((page.as_mut_ptr() as usize + 4095) & !4095) as *mut libc::c_void;
                // SAFETY: a page inside our own heap buffer, made executable; put back.
                let rc = unsafe {
                    libc::mprotect(
                        aligned,
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                    )
                };
                // SAFETY: restores the page's usual protection before the Vec frees it.
                unsafe { libc::mprotect(aligned, 4096, libc::PROT_READ | libc::PROT_WRITE) };
                format!("mprotect PROT_EXEC of a heap page returned {rc}")
            }
            Attack::Mmap => {
                // SAFETY: a fresh anonymous executable mapping, unmapped below.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_EXEC,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if p != libc::MAP_FAILED {
                    // SAFETY: unmapping the mapping made above.
                    unsafe { libc::munmap(p, 4096) };
                }
                format!("mmap PROT_EXEC returned {p:?}")
            }
            Attack::Fork => {
                // SAFETY: the child leaves at once without touching anything.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: leaving the child.
                    unsafe { libc::_exit(0) };
                }
                format!("fork returned {pid}")
            }
            Attack::Ptrace => {
                // SAFETY: PTRACE_TRACEME takes no memory.
                let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
                format!("ptrace returned {rc}")
            }
            Attack::KvmIoctl => {
                // KVM_SET_USER_MEMORY_REGION: remapping guest memory is exactly what a
                // compromised thread must not do. The filter judges the request number,
                // so any fd shows it; -1 keeps the unsandboxed case harmless.
                const KVM_SET_USER_MEMORY_REGION: libc::c_ulong = 0x4020_ae46;
                // SAFETY: an ioctl on fd -1 fails without touching memory.
                let rc = unsafe { libc::ioctl(-1, KVM_SET_USER_MEMORY_REGION, 0) };
                format!("KVM_SET_USER_MEMORY_REGION returned {rc}")
            }
            Attack::Setuid => {
                // The raw call: glibc's setuid() would first signal every thread to
                // change its ids too, and the filter would stop that signal instead.
                // SAFETY: setuid takes no memory (as root it is a no-op to uid 0).
                let rc = unsafe { libc::syscall(libc::SYS_setuid, 0) };
                format!("setuid(0) returned {rc}")
            }
            Attack::Mount => {
                // SAFETY: NUL-terminated strings; the target does not exist, so an
                // unsandboxed attempt fails harmlessly.
                let rc = unsafe {
                    libc::mount(
                        c"none".as_ptr(),
                        c"/nonexistent-sandvmm-demo".as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    )
                };
                format!("mount returned {rc}")
            }
        }
    }
}

fn report_not_stopped(attack: Attack, thread: &str) {
    let result = attack.attempt();
    eprintln!(
        "sandvmm: escape demo: {} on the {thread} thread was not stopped ({result})",
        attack.name()
    );
}

/// The debug port on the port-I/O bus.
pub struct EscapePort {
    pending: Arc<AtomicU8>,
    wake: EventFd,
}

/// The VMM thread's side: makes the attempts handed over by the port.
pub struct EscapeHandler {
    pending: Arc<AtomicU8>,
    wake: EventFd,
}

/// Creates the port and its VMM-thread handler.
pub fn escape_device() -> std::io::Result<(EscapePort, EscapeHandler)> {
    let pending = Arc::new(AtomicU8::new(0));
    let wake = EventFd::new(EFD_NONBLOCK)?;
    Ok((
        EscapePort {
            pending: pending.clone(),
            wake: wake.try_clone()?,
        },
        EscapeHandler { pending, wake },
    ))
}

impl BusDevice for EscapePort {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        let Some(&code) = data.first() else { return };
        let Some(attack) = Attack::from_code(code & !ON_VMM_THREAD) else {
            return;
        };
        if code & ON_VMM_THREAD != 0 {
            self.pending.store(attack as u8, Ordering::Release);
            let _ = self.wake.write(1);
        } else {
            let name = std::thread::current().name().unwrap_or("vcpu").to_string();
            report_not_stopped(attack, &name);
        }
    }
}

impl MutEventSubscriber for EscapeHandler {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new_raw(self.wake.as_raw_fd(), EventSet::IN));
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.wake.read();
        if let Some(attack) = Attack::from_code(self.pending.swap(0, Ordering::AcqRel)) {
            report_not_stopped(attack, "VMM");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        for (i, a) in Attack::ALL.iter().enumerate() {
            assert_eq!(Attack::from_code(i as u8 + 1), Some(*a));
        }
        assert_eq!(Attack::from_code(0), None);
        assert_eq!(Attack::from_code(11), None);
        assert_eq!(Attack::KvmIoctl.name(), "kvm-ioctl");
    }

    #[test]
    fn the_port_hands_vmm_thread_attempts_over() {
        let (mut port, mut handler) = escape_device().unwrap();
        port.write(ESCAPE_PORT, 0, &[Attack::Setuid as u8 | ON_VMM_THREAD]);
        assert_eq!(
            handler.pending.load(Ordering::Acquire),
            Attack::Setuid as u8
        );
        assert_eq!(handler.wake.read().unwrap(), 1);
        // Unknown codes do nothing.
        port.write(ESCAPE_PORT, 0, &[0x7f]);
        assert!(handler.wake.read().is_err());
        let _ = &mut handler;
    }
}

//! The escape demonstration (`--demo-escape`): a debug port through which the guest
//! makes sandvmm attempt a forbidden action, the way a compromised device model
//! would, so that each sandbox layer can be seen stopping it.
//!
//! The port is an 8-byte window at 0x5ec. The guest may first write a 32-bit argument
//! at offset 4 (a pid, an fd or a TCP port, depending on the attack), then writes one
//! byte at offset 0: the low 7 bits name the [`Attack`], bit 7 picks the thread.
//! Without bit 7 the vCPU thread that executed the OUT makes the attempt on the spot;
//! with it the device hands the attempt to the VMM thread through an eventfd.
//!
//! Every attempt that returns is reported on stderr with how it ended:
//! `sandvmm: escape demo: open on the vcpu0 thread failed: EMFILE (open /etc/passwd: ...)`
//! or `... succeeded (open /etc/passwd returned 7)`. Under `--sandbox enforce` a
//! filtered attempt never returns: the process dies of SIGSYS; under `trap` the
//! report names the call and the thread.
//!
//! Off by default; a demonstration device has no place in a production VM.

mod attacks;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

use devices::bus::BusDevice;
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

pub use attacks::{Attack, Ending};

/// The debug port.
pub const ESCAPE_PORT: u64 = 0x5ec;
/// Its window: the code at offset 0, the argument at offset 4.
pub const ESCAPE_PORT_LEN: u64 = 8;
const ARG_OFFSET: u64 = 4;
const ON_VMM_THREAD: u8 = 0x80;

/// fds some attacks aim at, known once the VM is built.
#[derive(Debug)]
pub struct Targets {
    vm: AtomicI32,
    helper: AtomicI32,
}

impl Targets {
    fn vm_fd(&self) -> RawFd {
        self.vm.load(Ordering::Acquire)
    }

    fn helper_fd(&self) -> RawFd {
        self.helper.load(Ordering::Acquire)
    }

    /// Records the VM fd.
    pub fn set_vm_fd(&self, fd: RawFd) {
        self.vm.store(fd, Ordering::Release);
    }

    /// Records the helper's socket.
    pub fn set_helper_fd(&self, fd: RawFd) {
        self.helper.store(fd, Ordering::Release);
    }
}

/// The errno's symbolic name, for reports.
fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ESRCH => "ESRCH",
        libc::EFAULT => "EFAULT",
        libc::EMFILE => "EMFILE",
        _ => "another errno",
    }
}

fn attempt_and_report(attack: Attack, arg: u32, targets: &Targets, thread: &str) {
    let line = match attack.attempt(arg, targets) {
        Ending::Succeeded(what) => format!("succeeded ({what})"),
        Ending::Failed(errno, what) => format!("failed: {} ({what})", errno_name(errno)),
    };
    // One write for the whole line: the script helper shares stderr.
    let line = format!(
        "sandvmm: escape demo: {} on the {thread} thread {line}\n",
        attack.name()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// The state shared by the port and its VMM-thread handler.
struct Shared {
    pending: AtomicU8,
    arg: AtomicU32,
    targets: Arc<Targets>,
}

/// The debug port on the port-I/O bus.
pub struct EscapePort {
    shared: Arc<Shared>,
    wake: Arc<EventFd>,
}

/// The VMM thread's side: makes the attempts handed over by the port.
pub struct EscapeHandler {
    shared: Arc<Shared>,
    wake: Arc<EventFd>,
}

impl EscapeHandler {
    /// The eventfd the port signals, for the sandbox's run-time facts.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// The fds the attacks aim at, to be filled in as they become known.
    pub fn targets(&self) -> Arc<Targets> {
        self.shared.targets.clone()
    }
}

/// Creates the port and its VMM-thread handler.
pub fn escape_device() -> std::io::Result<(EscapePort, EscapeHandler)> {
    let shared = Arc::new(Shared {
        pending: AtomicU8::new(0),
        arg: AtomicU32::new(0),
        targets: Arc::new(Targets {
            vm: AtomicI32::new(-1),
            helper: AtomicI32::new(-1),
        }),
    });
    let wake = Arc::new(EventFd::new(devices::EVENTFD_FLAGS)?);
    Ok((
        EscapePort {
            shared: shared.clone(),
            wake: wake.clone(),
        },
        EscapeHandler { shared, wake },
    ))
}

impl BusDevice for EscapePort {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if (ARG_OFFSET..ARG_OFFSET + 4).contains(&offset) {
            // The argument is a 32-bit register on ports base+4 to base+7, one byte
            // lane per port: the port bus delivers the guest's `outl` as four byte
            // writes (devices/src/bus.rs), each of which sets its lane.
            let first_lane = offset - ARG_OFFSET;
            for (lane, &byte) in (first_lane..4).zip(data) {
                let shift = 8 * lane;
                let set = |arg: u32| Some(arg & !(0xff << shift) | u32::from(byte) << shift);
                // Never fails: `set` always returns Some.
                let _ = self
                    .shared
                    .arg
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, set);
            }
            return;
        }
        let (0, Some(&code)) = (offset, data.first()) else {
            return;
        };
        let Some(attack) = Attack::from_code(code & !ON_VMM_THREAD) else {
            return;
        };
        if code & ON_VMM_THREAD != 0 {
            self.shared.pending.store(attack as u8, Ordering::Release);
            let _ = self.wake.write(1);
        } else {
            let name = std::thread::current().name().unwrap_or("vcpu").to_string();
            let arg = self.shared.arg.load(Ordering::Acquire);
            attempt_and_report(attack, arg, &self.shared.targets, &name);
        }
    }
}

impl MutEventSubscriber for EscapeHandler {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new_raw(self.wake.as_raw_fd(), EventSet::IN));
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.wake.read();
        let code = self.shared.pending.swap(0, Ordering::AcqRel);
        if let Some(attack) = Attack::from_code(code) {
            let arg = self.shared.arg.load(Ordering::Acquire);
            attempt_and_report(attack, arg, &self.shared.targets, "VMM");
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
        assert_eq!(Attack::from_code(Attack::ALL.len() as u8 + 1), None);
        assert_eq!(Attack::KvmIoctl.name(), "kvm-ioctl");
        assert_eq!(Attack::MadviseHwpoison.name(), "madvise-hwpoison");
    }

    #[test]
    fn the_port_hands_vmm_thread_attempts_over_with_their_argument() {
        let (mut port, handler) = escape_device().unwrap();
        port.write(ESCAPE_PORT, ARG_OFFSET, &1234u32.to_le_bytes());
        port.write(ESCAPE_PORT, 0, &[Attack::Setuid as u8 | ON_VMM_THREAD]);
        assert_eq!(
            handler.shared.pending.load(Ordering::Acquire),
            Attack::Setuid as u8
        );
        assert_eq!(handler.shared.arg.load(Ordering::Acquire), 1234);
        assert_eq!(handler.wake.read().unwrap(), 1);
        // The guest's `outl` reaches the device as one write per byte lane.
        for (lane, byte) in 0xdead_beefu32.to_le_bytes().into_iter().enumerate() {
            port.write(ESCAPE_PORT, ARG_OFFSET + lane as u64, &[byte]);
        }
        assert_eq!(handler.shared.arg.load(Ordering::Acquire), 0xdead_beef);
        port.write(ESCAPE_PORT, ARG_OFFSET + 1, &[0x00]);
        assert_eq!(handler.shared.arg.load(Ordering::Acquire), 0xdead_00ef);
        // Unknown codes, and bytes elsewhere in the window, do nothing.
        port.write(ESCAPE_PORT, 0, &[0x7f]);
        port.write(ESCAPE_PORT, 2, &[Attack::Open as u8 | ON_VMM_THREAD]);
        assert!(handler.wake.read().is_err());
    }

    #[test]
    fn harmless_attempts_report_their_ending() {
        let (_, handler) = escape_device().unwrap();
        let targets = handler.targets();
        // No VM fd: the KVM ioctl fails with EBADF; an fd write to /dev/null works.
        assert!(matches!(
            Attack::KvmIoctl.attempt(0, &targets),
            Ending::Failed(libc::EBADF, _)
        ));
        let null = std::fs::File::create("/dev/null").unwrap();
        assert!(matches!(
            Attack::FdWrite.attempt(null.as_raw_fd() as u32, &targets),
            Ending::Succeeded(_)
        ));
        assert!(matches!(
            Attack::MadviseHwpoison.attempt(0, &targets),
            Ending::Failed(libc::EINVAL, _)
        ));
        assert!(matches!(
            Attack::FutexPi.attempt(0, &targets),
            Ending::Succeeded(_)
        ));
        // getpid through the i386 gate returns this process's pid (tests run on
        // x86_64 hosts with IA32 emulation, as the escape tests need).
        match Attack::Int80.attempt(0, &targets) {
            Ending::Succeeded(what) => {
                assert!(
                    what.ends_with(&format!("returned {}", std::process::id())),
                    "{what}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

//! The in-kernel PIT's tick re-injection, turned off on a thread of its own.
//!
//! With re-injection on (KVM's default), KVM keeps an IRQ-ack notifier and an IRQ-mask
//! notifier registered for the PIT, and turning it off, which KVM also does when it
//! destroys the VM, unregisters both: two back-to-back `synchronize_srcu` on the VM's
//! IRQ SRCU, the second never on the expedited path. That is many milliseconds on a
//! busy or emulating host; left to the destruction, it is spent in the `close` of the
//! VM fd at exit. Linux guests count lost ticks themselves and use the PIT only to
//! calibrate at boot (QEMU's `lost_tick_policy=discard`), so re-injection buys nothing.
//!
//! [`PitSetup::start`] turns it off (`KVM_REINJECT_CONTROL`) on a short-lived thread
//! right after the PIT is created, so the wait overlaps the rest of the build (guest
//! memory, the image, devices, vCPUs); [`crate::Vmm::run`] joins it before the jail,
//! which needs the process single-threaded. The bench's whole-run part measured the
//! choices (docs/BENCHMARKS.md, "Where the time of a whole run goes").

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_reinject_control;
use kvm_ioctls::{Cap, Kvm, VmFd};

use crate::builder::BuildError;

/// The thread turning re-injection off. It uses the VM fd by number, so it is joined
/// in [`PitSetup::finish`] or on drop, before the VM fd can close: a `Vmm` holds it
/// ahead of its VM fd, and `builder::build` declares it after the VM.
pub struct PitSetup(Option<JoinHandle<io::Result<()>>>);

impl PitSetup {
    /// Starts turning re-injection off for `vm`'s PIT, if KVM can.
    pub fn start(kvm: &Kvm, vm: &VmFd) -> Result<PitSetup, BuildError> {
        if !kvm.check_extension(Cap::ReinjectControl) {
            return Ok(PitSetup(None));
        }
        let fd = vm.as_raw_fd();
        let handle = std::thread::Builder::new()
            .name("pitsetup".into())
            .spawn(move || no_reinjection(fd))
            .map_err(BuildError::PitThread)?;
        Ok(PitSetup(Some(handle)))
    }

    /// Waits for the thread to be gone from the process; its error, if
    /// `KVM_REINJECT_CONTROL` failed.
    pub fn finish(&mut self) -> Result<(), BuildError> {
        let Some(handle) = self.0.take() else {
            return Ok(());
        };
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread panicked")));
        wait_until_reaped();
        result.map_err(BuildError::PitReinjection)
    }
}

impl Drop for PitSetup {
    fn drop(&mut self) {
        // Joined before the VM fd it uses can close; an error no longer matters here.
        let _ = self.finish();
    }
}

/// How long [`wait_until_reaped`] waits at most.
const REAP_WAIT: Duration = Duration::from_millis(100);

/// Waits until the process has one thread again (`/proc/self/task`), or [`REAP_WAIT`].
///
/// `join` returns when the thread has cleared its tid (`CLONE_CHILD_CLEARTID`), which
/// the kernel does before the thread has left the thread group; the jail's
/// `unshare(CLONE_NEWUSER)` that follows refuses a process with a second thread
/// (`EINVAL`), so it must see the thread gone, not just finished.
fn wait_until_reaped() {
    let deadline = Instant::now() + REAP_WAIT;
    while Instant::now() < deadline {
        let tasks = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
        if tasks <= 1 {
            return;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// `KVM_REINJECT_CONTROL` with re-injection off, on VM fd `fd`.
fn no_reinjection(fd: RawFd) -> io::Result<()> {
    let control = kvm_reinject_control {
        pit_reinject: 0,
        ..Default::default()
    };
    // SAFETY: KVM_REINJECT_CONTROL reads a `kvm_reinject_control` (linux/kvm.h), which
    // `control` is, alive for the call; `fd` is the VM's, open until this thread is
    // joined (PitSetup).
    let rc = unsafe {
        libc::ioctl(
            fd,
            sandbox::consts::KVM_REINJECT_CONTROL as _,
            &control as *const kvm_reinject_control,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

//! The in-kernel PIT's tick re-injection, turned off on a thread of its own while the
//! guest starts.
//!
//! With re-injection on (KVM's default), KVM keeps an IRQ-ack notifier and an IRQ-mask
//! notifier registered for the PIT, and turning it off, which KVM also does when it
//! destroys the VM, unregisters both: two back-to-back `synchronize_srcu` on the VM's
//! IRQ SRCU, the second never on the expedited path. That is many milliseconds on a
//! busy or emulating host; left to the destruction, it is spent in the `close` of the
//! VM fd at exit. Linux guests count lost ticks themselves and use the PIT only to
//! calibrate at boot (QEMU's `lost_tick_policy=discard`), so re-injection buys nothing.
//!
//! The wait is kept off both the start and the end of a run: [`PitSetup::start`]
//! starts the `pitsetup` thread once the process is jailed, next to the vCPU threads.
//! Like them it installs its filter first (the VMM thread's, which has the one rule
//! it needs: `KVM_REINJECT_CONTROL` on the VM fd), reports it, and only then makes the
//! call, while the guest already runs. Then it waits to be told to end: alive, it
//! keeps the place the jail's `RLIMIT_NPROC` counted for it, so the limit leaves no
//! room for a task the VMM did not plan (tests/layers.rs forks from a vCPU thread under
//! the jail alone and wants `EAGAIN`). [`PitSetup::finish`] ends and joins it before
//! the VM fd closes. The bench's whole-run part measured the choices (docs/BENCHMARKS.md, "Where
//! the time of a whole run goes").

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use kvm_bindings::kvm_reinject_control;
use kvm_ioctls::{Cap, Kvm};
use sandbox::{CompiledFilter, FilterError};

/// The thread's name, which also tells the sandbox's reports and profiler that it runs
/// under the VMM thread's filter.
pub const THREAD_NAME: &str = "pitsetup";

/// Set when the thread may end.
#[derive(Default)]
struct Release {
    done: Mutex<bool>,
    told: Condvar,
}

/// The thread turning re-injection off. It uses the VM fd by number, so it is joined
/// in [`PitSetup::finish`], or on drop, before the VM fd can close.
pub struct PitSetup {
    thread: Option<JoinHandle<io::Result<()>>>,
    release: Arc<Release>,
}

impl PitSetup {
    /// Starts the thread for VM fd `vm`, if `kvm` can turn re-injection off: it
    /// installs `filter`, sends the outcome on `installed`, and on success makes the
    /// call. Without the capability, nothing starts and nothing is sent.
    pub fn start(
        kvm: &Kvm,
        vm: RawFd,
        filter: Option<CompiledFilter>,
        installed: Sender<Result<(), FilterError>>,
    ) -> io::Result<PitSetup> {
        let release = Arc::new(Release::default());
        if !kvm.check_extension(Cap::ReinjectControl) {
            return Ok(PitSetup {
                thread: None,
                release,
            });
        }
        let held = release.clone();
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                sandbox::report::set_thread_name(THREAD_NAME);
                let result = filter.as_ref().map_or(Ok(()), CompiledFilter::install);
                let ok = result.is_ok();
                let _ = installed.send(result);
                drop(installed);
                if !ok {
                    return Ok(());
                }
                let result = no_reinjection(vm);
                let mut done = held.done.lock().unwrap_or_else(|p| p.into_inner());
                while !*done {
                    done = held.told.wait(done).unwrap_or_else(|p| p.into_inner());
                }
                result
            })?;
        Ok(PitSetup {
            thread: Some(handle),
            release,
        })
    }

    /// Whether a thread was started (and so sent whether its filter is on).
    pub fn started(&self) -> bool {
        self.thread.is_some()
    }

    /// Tells the thread to end and waits for it; its error, if `KVM_REINJECT_CONTROL`
    /// failed.
    pub fn finish(&mut self) -> io::Result<()> {
        *self.release.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.release.told.notify_all();
        match self.thread.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for PitSetup {
    fn drop(&mut self) {
        // Joined before the VM fd it uses can close; an error no longer matters here.
        let _ = self.finish();
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

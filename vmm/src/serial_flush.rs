//! The VMM thread's half of serial output batching: the flush timer, and the flush at
//! exit.
//!
//! The UART buffers guest output and writes it itself on a newline or at
//! [`devices::serial::FLUSH_SIZE`] bytes (devices/src/serial/output.rs). Output without
//! a newline (a shell prompt, the echo of a typed key) is written by this timer: the
//! first byte that waits makes the vCPU thread write the `kick` eventfd (a `write` on
//! an `$event` fd, which its filter already allows); this thread reads it and arms a
//! one-shot timerfd for [`FLUSH_DELAY`]; when that fires, it takes the device's lock
//! and writes what waits, unless output was written since it was armed (the guest is
//! printing lines), when it arms the timer once more instead. So vCPU threads get no
//! new system call, and the VMM thread gets two, pinned to the timerfd (`$timer`):
//! `timerfd_settime` and `read`.
//!
//! A kick arrives at most once per timer period however much the guest prints, and
//! not at all while the guest keeps printing lines: the timer costs a few system
//! calls per 5 ms of output, against one `write` per byte before.
//!
//! [`flush_at_exit`] runs on every way out of [`crate::Vmm::run`], once the vCPU
//! threads are stopped, so that nothing buffered is lost when the VM ends.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::time::Duration;

use devices::serial::SerialDevice;
use devices::EventFdTrigger;
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

/// How long output without a newline may wait. Short enough that typing feels
/// immediate (a frame at 60 Hz is 16 ms); long enough that a flood of output without
/// newlines is written in few, large calls.
pub const FLUSH_DELAY: Duration = Duration::from_millis(5);

/// The flush timer: reads the UART's kicks, arms the timerfd, flushes when it fires.
pub struct SerialFlush {
    serial: Arc<Mutex<SerialDevice>>,
    kick: EventFdTrigger,
    timer: OwnedFd,
}

impl SerialFlush {
    /// A timer for `serial`, whose output was made with `SerialOut::batched(kick)`.
    /// Creates the timerfd: call while building the VM, before any filter.
    pub fn new(serial: Arc<Mutex<SerialDevice>>, kick: EventFdTrigger) -> io::Result<Self> {
        // SAFETY: creates a new fd; the flags are valid for timerfd_create.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let timer = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            serial,
            kick,
            timer,
        })
    }

    /// The timerfd, for the sandbox's `$timer` fact.
    pub fn timer_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// Arms the timer to fire once, [`FLUSH_DELAY`] from now (flags 0: relative time,
    /// the one form the filter allows).
    fn arm(&self) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: FLUSH_DELAY.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(FLUSH_DELAY.subsec_nanos()),
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not wanted.
        let rc = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes the expiry count, so that the timerfd stops being readable.
    fn disarm_read(&self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8; the fd is non-blocking.
        unsafe { libc::read(self.timer.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }

    /// The timer fired: writes what waits, or arms the timer again if the UART asks.
    fn timer_fired(&self) {
        let mut serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        if serial.flush_timer() {
            if let Err(e) = self.arm() {
                log::error!("cannot arm the serial flush timer: {e}");
                serial.flush_untimed();
            }
        }
    }
}

impl MutEventSubscriber for SerialFlush {
    fn init(&mut self, ops: &mut EventOps) {
        for fd in [self.kick.as_raw_fd(), self.timer.as_raw_fd()] {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                log::error!("cannot watch the serial flush timer: {e:?}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.kick.as_raw_fd() {
            let _ = self.kick.read();
            if let Err(e) = self.arm() {
                // Flushing now keeps the output, and lets the next byte kick again.
                log::error!("cannot arm the serial flush timer: {e}");
                let mut serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
                serial.flush_untimed();
            }
        } else if events.fd() == self.timer.as_raw_fd() {
            self.disarm_read();
            self.timer_fired();
        }
    }
}

/// Writes every byte of output still buffered in `serial`. Call once the vCPU threads
/// are stopped, so that nothing can follow. `vcpus_stuck` says that some did not stop:
/// one of them might hold the device's lock for ever (a `write` to a pipe nobody
/// reads), so the lock is only tried, and the output given up if it is held.
pub fn flush_at_exit(serial: &Mutex<SerialDevice>, vcpus_stuck: bool) {
    let mut device = if vcpus_stuck {
        match serial.try_lock() {
            Ok(device) => device,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                log::warn!("a stuck vCPU holds the serial port: its buffered output is lost");
                return;
            }
        }
    } else {
        serial.lock().unwrap_or_else(|p| p.into_inner())
    };
    device.flush_output();
}

/// The device the trap-mode exit hook writes out.
static TRAP_SERIAL: OnceLock<Arc<Mutex<SerialDevice>>> = OnceLock::new();

/// In `--sandbox trap`, has the SIGSYS handler write out `serial`'s buffered output
/// after its report, before the process exits (sandbox::report::set_exit_hook).
pub fn flush_on_trap(serial: Arc<Mutex<SerialDevice>>) -> Result<(), sandbox::report::ReportError> {
    if TRAP_SERIAL.set(serial).is_err() {
        return Err(sandbox::report::ReportError::HookAlreadySet);
    }
    sandbox::report::set_exit_hook(trap_hook)
}

/// Runs in the SIGSYS handler: takes the device's lock only if it comes free within
/// about a millisecond (another vCPU may be mid-access; the trapped thread itself may
/// hold it, and would wait for ever), and writes with `write(2)` alone. Unlocking may
/// `futex(FUTEX_WAKE_PRIVATE)`, which both kinds of thread may call.
fn trap_hook() {
    let Some(serial) = TRAP_SERIAL.get() else {
        return;
    };
    for _ in 0..10_000 {
        match serial.try_lock() {
            Ok(mut device) => return device.flush_output_in_signal_handler(),
            Err(TryLockError::Poisoned(p)) => {
                return p.into_inner().flush_output_in_signal_handler()
            }
            Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
        }
    }
}

/// sandvmm's stdout as a serial sink: each write is one `write(2)` on fd 1.
///
/// `std::io::stdout()` is line-buffered: a batch with a newline in its middle would
/// cost two calls, and its lock a few more instructions per batch. This sink never
/// closes fd 1, which stays open for the whole process.
pub struct StdoutSink;

impl io::Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writes from a buffer we borrow, of its length, to fd 1.
        let n = unsafe { libc::write(libc::STDOUT_FILENO, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

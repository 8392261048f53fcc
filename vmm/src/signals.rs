//! The signals that stop a VM gracefully: SIGTERM, SIGINT, SIGHUP and SIGQUIT, taken
//! by a `signalfd` in the VMM thread's event loop instead of by handlers.
//!
//! A handler would run on whichever thread the kernel picks, under that thread's
//! filter, and anything it did beyond the filter's allowlist (re-arming itself with
//! `rt_sigaction`, re-raising) would kill the process or, in trap mode, be reported as
//! a violation. Blocked in every thread instead, the signals wait in the process's
//! pending set until the event loop reads them from the signalfd, and the shutdown is
//! the same as for a guest reset: vCPUs stopped, serial output written, the helper's
//! `down` scripts run, the terminal restored, one line, exit 0 (as QEMU does).
//!
//! [`StopSignals::block`] runs while the process is single-threaded (before the VM is
//! built), so every thread created later inherits the mask; a signal that arrives
//! during set-up is kept and acted on when the event loop starts. SIGINT is included
//! whether or not stdin is a terminal: with `--serial stdio` on a terminal, raw mode
//! sends Ctrl-C to the guest as a byte and no SIGINT is raised.
//!
//! In a run with `--snapshot-to`, SIGUSR1 comes through the same fd and asks for a
//! snapshot instead of a stop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The signals that stop the VM.
pub const STOP_SIGNALS: [libc::c_int; 4] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// The signalfd the stop signals arrive on.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

fn stop_set(snapshots: bool) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        if snapshots {
            libc::sigaddset(&mut set, libc::SIGUSR1);
        }
    }
    set
}

impl StopSignals {
    /// Blocks the stop signals in the calling thread (and so in every thread it starts
    /// from now on) and opens a non-blocking signalfd for them; with `snapshots`,
    /// SIGUSR1 too.
    pub fn block(snapshots: bool) -> io::Result<StopSignals> {
        let set = stop_set(snapshots);
        // SAFETY: blocks signals in this thread; `set` is valid, the old mask unwanted.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: creates a new fd for the signals in `set`.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StopSignals { fd })
    }

    /// The next pending stop signal, if any.
    pub fn read(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads one record into `info`, which is `size` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
        (n == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}

impl AsRawFd for StopSignals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The conventional name of a stop signal, for the line sandvmm ends with.
pub fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_stop_signal_is_read_from_the_fd() {
        // Tests run on threads of their own: blocking here affects only this thread,
        // and tgkill directs the signal at it.
        let signals = StopSignals::block(false).unwrap();
        assert_eq!(signals.read(), None);
        // SAFETY: sends SIGHUP to this very thread, where it is blocked.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGHUP,
            )
        };
        assert_eq!(signals.read(), Some(libc::SIGHUP));
        assert_eq!(signals.read(), None);
        assert_eq!(name(libc::SIGHUP), "SIGHUP");
    }
}

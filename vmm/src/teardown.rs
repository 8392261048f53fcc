//! The VM's destruction, handed to a process of its own so that sandvmm's exit does
//! not wait for it.
//!
//! KVM destroys a VM when the last reference to its fd goes, and the destruction
//! waits for SRCU grace periods: with the in-kernel PIT's tick re-injection on (KVM's
//! default, and Firecracker's and QEMU's), turning it off and unregistering the PIT's
//! I/O ranges take four, two of which cannot take the expedited path. That is about
//! 20 ms on the project's test hosts (the bench's whole-run part times it), spent in
//! the `close` of the VM fd, which the process's exit does if sandvmm does not; the
//! process that started sandvmm waits for all of it.
//!
//! So [`Reaper::start`] forks, right after `KVM_CREATE_VM`, while the process is
//! single-threaded and holds no guest memory, tap, disk or vCPU, a process that keeps
//! the VM fd (the same open file, so KVM's release waits for it too) and the read end
//! of a pipe whose only write end sandvmm keeps. The reaper:
//! - closes every other fd it inherited (stdin, stdout and stderr too: a pipe reading
//!   sandvmm's output sees its end when sandvmm exits, not later);
//! - starts a session of its own (no terminal, no process-group signal);
//! - names itself `sandvmm-reaper`;
//! - puts itself under its own filter (sandbox/src/reaper.rs: `read` of the pipe,
//!   `close` of the VM fd, `exit_group`, all else kills it);
//! - reads the pipe until end-of-file, which comes when sandvmm's process is gone,
//!   however it ended (exit, a signal, the sandbox's SIGSYS);
//! - closes the VM fd, which destroys the VM, and exits.
//!
//! By then sandvmm's exit has freed guest memory (the VM only borrows it) and closed
//! the taps, disks and terminal: the reaper holds nothing a user could notice but
//! itself, for the length of the destruction. It becomes a child of the nearest
//! subreaper or init, which reaps it. If the fork fails, sandvmm runs as before and
//! its own exit destroys the VM.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use kvm_ioctls::VmFd;

/// The reaper's name (`/proc/PID/comm`, 15 bytes at most).
pub const REAPER_NAME: &std::ffi::CStr = c"sandvmm-reaper";

/// sandvmm's end of the reaper: the pipe's write end. Never closed by sandvmm: the
/// process's exit closes it, after sandvmm closed its own VM and vCPU fds, so that the
/// reaper's `close` is the last reference and the destruction is the reaper's. Kept
/// through the jail (the jail's list of fds to keep has it).
pub struct Reaper {
    wake: RawFd,
}

impl Reaper {
    /// Forks the reaper for `vm` (see the module header). The caller must be
    /// single-threaded. None, with a warning, if the pipe or the fork fails: the
    /// run goes on and its exit destroys the VM itself.
    pub fn start(vm: &VmFd) -> Option<Reaper> {
        match fork_reaper(vm.as_raw_fd()) {
            Ok(reaper) => Some(reaper),
            Err(e) => {
                log::warn!("cannot fork the process that destroys the VM after exit ({e}); the exit will wait for KVM instead");
                None
            }
        }
    }

    /// The pipe's write end, for the jail's list of fds to keep.
    pub fn fd(&self) -> RawFd {
        self.wake
    }
}

fn fork_reaper(vm_fd: RawFd) -> io::Result<Reaper> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nothing else.
    let (wait, wake) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // SAFETY: the caller is single-threaded (Reaper::start), so the child is a whole
    // copy of the process and may run any code, allocation included.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(wake);
            reap(wait.as_raw_fd(), vm_fd)
        }
        _ => Ok(Reaper {
            wake: wake.into_raw_fd(),
        }),
    }
}

/// The reaper's life (module header); never returns.
fn reap(wait_fd: RawFd, vm_fd: RawFd) -> ! {
    let filter = sandbox::reaper::filter(wait_fd, vm_fd);
    let (low, high) = (wait_fd.min(vm_fd), wait_fd.max(vm_fd));
    // SAFETY: plain-integer calls on this freshly forked, single-threaded process; the
    // fds left open are the two it uses, which nothing else in it owns any more.
    unsafe {
        for (first, last) in [
            (0, low - 1),
            (low + 1, high - 1),
            (high + 1, libc::c_int::MAX),
        ] {
            if first <= last {
                libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32);
            }
        }
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, REAPER_NAME.as_ptr(), 0, 0, 0);
    }
    if !filter.is_ok_and(|f| f.install().is_ok()) {
        // No filter, no waiting: give the VM fd back at once (sandvmm still holds it).
        // SAFETY: _exit ends the process without running anything of sandvmm's.
        unsafe { libc::_exit(1) };
    }
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a local.
        let n = unsafe { libc::read(wait_fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
    }
    // SAFETY: the VM fd is this process's own copy; closing it is the point.
    unsafe {
        libc::close(vm_fd);
        libc::_exit(0)
    }
}

//! The fd layer: the jailed process holds its own fds and nothing else.
//!
//! Whatever the launcher left open (a shell's pipes, a secret file, a socket) is
//! closed with `close_range(2)` before anything runs under the filters, except fds
//! 0-2 and those handed in on purpose (`--net fd=N`). Every fd sandvmm creates itself
//! is close-on-exec, so none reaches a program the script helper runs.
//!
//! To tell the two apart, [`inherited`] lists the open fds when the process starts; at
//! jail time every open fd is either kept (it has a role in the sandbox's run-time
//! facts), or was inherited and is closed. An fd that is neither is sandvmm's own fd
//! missing from the facts, a bug that [`close_all_but`] refuses to hide.
//!
//! Closing the launcher's fds leaves free numbers below sandvmm's highest fd, and
//! `RLIMIT_NOFILE` (process.rs) only caps the number: the next `open`, `socket` or
//! `pipe` would take a freed one. [`plug_holes`] fills each with one inert eventfd,
//! so that no call can create an fd at all, whatever the filters allow.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;

use super::JailError;

/// The fds open right now, smallest first.
pub fn open_fds() -> io::Result<BTreeSet<RawFd>> {
    let listed: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing included the directory's own fd, closed by now.
    Ok(listed.into_iter().filter(|fd| is_open(*fd)).collect())
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// The fds above 2 that are open when sandvmm starts: the launcher's.
pub fn inherited() -> BTreeSet<RawFd> {
    open_fds()
        .map(|fds| fds.into_iter().filter(|fd| *fd > 2).collect())
        .unwrap_or_default()
}

/// Closes every fd but `keep` (which should hold 0-2). Each fd closed must be one of
/// `inherited`; otherwise nothing is closed and the fd is reported.
pub fn close_all_but(keep: &BTreeSet<RawFd>, inherited: &BTreeSet<RawFd>) -> Result<(), JailError> {
    let open = open_fds().map_err(|e| JailError::Step("list the open fds", e))?;
    if let Some(fd) = open.difference(keep).find(|fd| !inherited.contains(fd)) {
        return Err(JailError::UnknownFd(*fd));
    }
    let mut first: u32 = 0;
    for &fd in keep {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

/// Fills every free fd number below the highest open fd with one shared, inert
/// eventfd (close-on-exec, no role in the facts, so no filter lets a call use it).
pub fn plug_holes() -> Result<(), JailError> {
    let open = open_fds().map_err(|e| JailError::Step("list the open fds", e))?;
    let Some(&max) = open.last() else {
        return Ok(());
    };
    let holes: Vec<RawFd> = (0..max).filter(|fd| !open.contains(fd)).collect();
    if holes.is_empty() {
        return Ok(());
    }
    let step = |e| JailError::Step("plug the free fd numbers", e);
    // SAFETY: eventfd creates a new fd and touches no memory.
    let plug = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if plug < 0 {
        return Err(step(io::Error::last_os_error()));
    }
    // The kernel hands out the lowest free number: the plug sits in the first hole.
    debug_assert_eq!(plug, holes[0]);
    for &hole in &holes[1..] {
        // SAFETY: dup3 onto a number that is free (listed above, single-threaded).
        if unsafe { libc::dup3(plug, hole, libc::O_CLOEXEC) } < 0 {
            return Err(step(io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn close_range(first: u32, last: u32) -> Result<(), JailError> {
    // SAFETY: close_range only closes fds; none in the range is used by this process
    // (the caller keeps every fd it owns out of the range).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc < 0 {
        return Err(JailError::Step(
            "close the inherited fds",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn open_fds_sees_a_new_fd_and_not_a_closed_one() {
        let before = open_fds().unwrap();
        assert!(before.contains(&0) || before.contains(&1) || before.contains(&2));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        assert!(open_fds().unwrap().contains(&fd));
        drop(file);
        assert!(!open_fds().unwrap().contains(&fd));
    }

    #[test]
    fn an_fd_of_our_own_outside_keep_is_refused() {
        // Forked, so that the test harness's fds stay untouched.
        // SAFETY: the child only makes system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let file = std::fs::File::open("/proc/self/status").unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
            let keep: BTreeSet<RawFd> = [0, 1, 2].into();
            let inherited = inherited().into_iter().filter(|f| *f != fd).collect();
            let code = match close_all_but(&keep, &inherited) {
                Err(JailError::UnknownFd(f)) if f == fd => 0,
                _ => 1,
            };
            // SAFETY: leaving the child without running the harness's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    #[test]
    fn inherited_fds_are_closed_and_kept_ones_stay() {
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            use std::os::fd::IntoRawFd;
            let a = std::fs::File::open("/proc/self/status")
                .unwrap()
                .into_raw_fd();
            let b = std::fs::File::open("/proc/self/status")
                .unwrap()
                .into_raw_fd();
            // Both count as the launcher's.
            let inherited = inherited();
            let keep: BTreeSet<RawFd> = [0, 1, 2, b].into();
            let ok = close_all_but(&keep, &inherited).is_ok() && !is_open(a) && is_open(b);
            // SAFETY: leaving the child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    #[test]
    fn plugged_holes_leave_no_free_number_below_the_highest_fd() {
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            use std::os::fd::IntoRawFd;
            let files: Vec<RawFd> = (0..4)
                .map(|_| File::open("/proc/self/status").unwrap().into_raw_fd())
                .collect();
            // SAFETY: closing fds this child opened.
            unsafe { libc::close(files[0]) };
            // SAFETY: as above.
            unsafe { libc::close(files[2]) };
            let ok = plug_holes().is_ok() && {
                let open = open_fds().unwrap();
                let max = *open.last().unwrap();
                (0..=max).all(|fd| open.contains(&fd)) && max >= files[3]
            };
            // SAFETY: leaving the child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}

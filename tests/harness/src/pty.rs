//! A pseudo-terminal for the console tests: sandvmm with a terminal on stdin.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A new pty: the master, to type and read on, and the slave, to give sandvmm.
pub fn open() -> (File, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty fills in two descriptors; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// The terminal's local modes (ICANON, ECHO, ...).
pub fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data, filled in by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid terminal descriptor and termios.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t.c_lflag
}

/// Reads `master` until `marker` appears; panics with what came after `timeout`.
pub fn read_until(master: &mut File, marker: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(marker) {
        assert!(
            Instant::now() < deadline,
            "no {marker:?} on the terminal; got:\n{}",
            String::from_utf8_lossy(&seen)
        );
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            let mut buf = [0; 4096];
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

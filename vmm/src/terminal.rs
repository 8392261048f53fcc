//! Raw mode for an interactive serial console, restored on every way out.
//!
//! When stdin is a terminal, the guest owns it: every key (Ctrl-C included) goes to the
//! guest, and the host terminal neither echoes nor edits lines. The saved settings come
//! back when the [`RawMode`] guard drops (normal exit, errors, and the stop signals,
//! which end the run through the event loop: signals.rs) and from a panic hook, so a
//! shell is never left raw. Only a kill the process cannot catch (SIGKILL, or the
//! enforcing sandbox's SIGSYS) leaves it raw; `stty sane` mends it.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The settings to restore, readable from the panic hook.
static SAVED: OnceLock<(RawFd, libc::termios)> = OnceLock::new();

/// Keeps a terminal in raw mode while alive.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` into raw mode if it is a terminal; `Ok(None)` when it is not.
    pub fn enter(fd: RawFd) -> io::Result<Option<Self>> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            return Ok(None);
        }
        // SAFETY: termios is plain data; all-zero is a valid value to be overwritten.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid termios to fill in.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = SAVED.set((fd, saved));
        install_restore_hooks();
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` is a valid termios for this terminal.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(Self { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(self.fd, &self.saved);
    }
}

/// Puts back settings read from terminal `fd` earlier, with the one `ioctl(TCSETS)` the
/// VMM thread's filter allows. glibc's `tcsetattr` follows its TCSETS with a TCGETS, to
/// catch a pty that ignored `c_cflag`; settings this terminal gave us need no such check.
/// Async-signal-safe: a single system call.
fn restore(fd: RawFd, saved: &libc::termios) {
    // SAFETY: TCSETS reads the kernel's struct termios (asm-generic/termbits.h: four
    // flag words, c_line, 19 control characters), which is how glibc's termios begins;
    // `saved` is a valid termios that outlives the call.
    unsafe { libc::ioctl(fd, libc::TCSETS, saved as *const libc::termios) };
}

/// Restores the saved settings from the panic hook.
fn restore_saved() {
    if let Some((fd, saved)) = SAVED.get() {
        restore(*fd, saved);
    }
}

fn install_restore_hooks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_saved();
            previous(info);
        }));
    });
}

/// Ctrl-A, the console escape key (as in QEMU): Ctrl-A x quits, Ctrl-A Ctrl-A sends one
/// Ctrl-A to the guest.
pub const ESCAPE_KEY: u8 = 0x01;

/// What the console input filter found in a chunk of keystrokes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Bytes for the guest.
    pub guest: Vec<u8>,
    /// The user typed Ctrl-A x.
    pub quit: bool,
}

/// Strips the escape sequences out of terminal input, keeping state across reads.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    after_escape: bool,
}

impl EscapeFilter {
    /// Filters one chunk of input.
    pub fn filter(&mut self, input: &[u8]) -> Filtered {
        let mut out = Filtered::default();
        for &b in input {
            if self.after_escape {
                self.after_escape = false;
                match b {
                    b'x' | b'X' => {
                        out.quit = true;
                        return out;
                    }
                    ESCAPE_KEY => out.guest.push(ESCAPE_KEY),
                    other => out.guest.extend_from_slice(&[ESCAPE_KEY, other]),
                }
            } else if b == ESCAPE_KEY {
                self.after_escape = true;
            } else {
                out.guest.push(b);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_input_passes_through() {
        let mut f = EscapeFilter::default();
        assert_eq!(f.filter(b"ls -l\r").guest, b"ls -l\r");
    }

    #[test]
    fn ctrl_a_x_quits_even_across_reads() {
        let mut f = EscapeFilter::default();
        let first = f.filter(b"ab\x01");
        assert_eq!(first.guest, b"ab");
        assert!(!first.quit);
        assert!(f.filter(b"x").quit);
    }

    #[test]
    fn other_escapes_are_forwarded() {
        let mut f = EscapeFilter::default();
        assert_eq!(f.filter(b"\x01\x01").guest, b"\x01");
        assert_eq!(f.filter(b"\x01c").guest, b"\x01c");
    }

    #[test]
    fn non_terminals_are_left_alone() {
        let (r, w) = {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe() returns.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            (fds[0], fds[1])
        };
        assert!(RawMode::enter(r).unwrap().is_none());
        // SAFETY: closing descriptors this test opened.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
}

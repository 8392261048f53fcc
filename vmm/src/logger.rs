//! sandvmm's logger: the `log` facade's messages as whole lines on one fd.
//!
//! The fd (stderr, or the `--log-file`) is opened before any filter and is one of the
//! `$stderr` facts the filters pin `write` to, so every thread, vCPU threads included,
//! can log after set-up with nothing but `write(2)`. Each message is formatted in memory
//! first and written with one call, so lines from different threads never interleave
//! (the file is opened `O_APPEND`, which keeps that true for several writers too).
//!
//! No timestamps: reading the clock may be a system call the vCPU filters do not allow
//! (the vDSO falls back to `clock_gettime` on hosts whose clock source it cannot read).
//!
//! Lines look like `sandvmm: warning: net0: dropped a chain ...`; the one line `main`
//! prints about how the run ended is not a log message and always goes to stderr.
//!
//! The rust-vmm crates log too (virtio-queue reports a driver's bad used-ring index at
//! error level), and a guest can make them do so at will. sandvmm's own devices
//! rate-limit what a guest can trigger (`devices::virtio::Warnings`); records from any
//! other crate are rate-limited here the same way, per crate: the 1st, 10th, 100th, ...
//! and logged as warnings at most, since what they report is the guest's doing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The installed logger, kept for its fd.
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("cannot open the log file {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("a logger is already installed")]
    Installed,
}

/// The crates whose messages are logged as they come: they rate-limit their own.
const OWN_CRATES: [&str; 4] = ["vmm", "devices", "sandbox", "sandvmm"];

/// Writes each record as one line on `fd`.
struct Logger {
    fd: RawFd,
    level: LevelFilter,
    /// Records seen so far from each other crate.
    foreign: Mutex<HashMap<String, u64>>,
}

/// Whether `target` (a module path) is in one of sandvmm's own crates.
fn is_own(target: &str) -> bool {
    OWN_CRATES.contains(&target.split("::").next().unwrap_or(target))
}

impl Logger {
    /// How many records `target`'s crate has logged, this one included, if this one
    /// is to be written; `None` when the rate limit holds it back.
    fn admit(&self, target: &str) -> Option<u64> {
        if is_own(target) {
            return Some(1);
        }
        let krate = target.split("::").next().unwrap_or(target);
        let mut seen = self.foreign.lock().unwrap_or_else(|p| p.into_inner());
        let count = seen.entry(krate.to_string()).or_default();
        *count += 1;
        devices::virtio::is_power_of_ten(*count).then_some(*count)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        let level = match is_own(record.target()) {
            true => record.level(),
            false => record.level().max(Level::Warn),
        };
        if level > self.level {
            return;
        }
        match self.admit(record.target()) {
            Some(1) => write_all(self.fd, format_line(level, record.args()).as_bytes()),
            Some(n) => {
                let message = format_args!(
                    "{} ({n} messages from {} so far)",
                    record.args(),
                    record.target()
                );
                write_all(self.fd, format_line(level, &message).as_bytes())
            }
            None => {}
        }
    }

    fn flush(&self) {}
}

/// One log line: `sandvmm: LEVEL: message\n` (info has no level word, like the other
/// lines sandvmm prints).
fn format_line(level: Level, message: &std::fmt::Arguments<'_>) -> String {
    let mut line = String::with_capacity(128);
    line.push_str("sandvmm: ");
    line.push_str(match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
        Level::Debug => "debug: ",
        Level::Trace => "trace: ",
    });
    let _ = write!(line, "{message}");
    // A message never spans lines: a guest-controlled string cannot forge another.
    let line = line.replace('\n', " ");
    line + "\n"
}

/// Writes `bytes` to `fd` in as few calls as the kernel allows; errors are dropped
/// (there is nowhere left to report them).
fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a buffer we hold, of the length given.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Installs the logger: messages up to `level` go to `file` (appended to, created with
/// mode 0600) or, without one, to stderr. Returns the fd it writes to.
pub fn init(level: LevelFilter, file: Option<&Path>) -> Result<RawFd, LoggerError> {
    let fd = match file {
        None => libc::STDERR_FILENO,
        Some(path) => OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| LoggerError::Open {
                path: path.display().to_string(),
                source,
            })?
            // Owned by the logger for the rest of the process.
            .into_raw_fd(),
    };
    let logger = LOGGER.get_or_init(|| Logger {
        fd,
        level,
        foreign: Mutex::new(HashMap::new()),
    });
    if logger.fd != fd {
        return Err(LoggerError::Installed);
    }
    log::set_logger(logger).map_err(|_| LoggerError::Installed)?;
    log::set_max_level(level);
    Ok(fd)
}

/// The fd log lines go to, once [`init`] has run.
pub fn fd() -> Option<RawFd> {
    LOGGER.get().map(|l| l.fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_level_and_never_split() {
        let line = |level, text: &str| format_line(level, &format_args!("{text}"));
        assert_eq!(line(Level::Warn, "net0: x"), "sandvmm: warning: net0: x\n");
        assert_eq!(line(Level::Error, "e"), "sandvmm: error: e\n");
        assert_eq!(line(Level::Info, "i"), "sandvmm: i\n");
        assert_eq!(line(Level::Debug, "d"), "sandvmm: debug: d\n");
        assert_eq!(
            line(Level::Warn, "a\nsandvmm: forged"),
            "sandvmm: warning: a sandvmm: forged\n"
        );
    }

    #[test]
    fn other_crates_are_rate_limited_per_crate() {
        let logger = Logger {
            fd: -1,
            level: LevelFilter::Warn,
            foreign: Mutex::new(HashMap::new()),
        };
        let admitted = (0..100_000)
            .filter_map(|_| logger.admit("virtio_queue::queue"))
            .collect::<Vec<_>>();
        assert_eq!(admitted, [1, 10, 100, 1000, 10_000, 100_000]);
        assert_eq!(logger.admit("vm_memory"), Some(1), "counted per crate");
        assert!((0..100).all(|_| logger.admit("devices::virtio::mmio") == Some(1)));
    }

    #[test]
    fn write_all_writes_everything() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills in two fds.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        write_all(fds[1], b"one line\n");
        let mut buf = [0u8; 32];
        // SAFETY: reads into a buffer we own.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..n as usize], b"one line\n");
        // SAFETY: closing the test's own fds.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

//! The script helper: a process forked before KVM, any fd or any filter exists, that
//! runs the `--net tap=NAME,script=PATH` scripts on the VMM's request (the 2012
//! review's "fork a helper before the sandbox" ask). The sandboxed VMM never calls
//! fork or execve; it writes a two-byte request on a socketpair and reads the exit
//! status back.
//!
//! What the helper can do: anything the user running sandvmm can — it is not filtered,
//! because the scripts it runs (`ip`, `brctl`, ...) need the whole system. What a
//! compromised VMM can make it do: run one of the scripts named on the command line,
//! with the tap name it was given and `up` or `down`, nothing else. It holds no KVM
//! fd, no guest memory and no tap, and exits when the VMM closes the socket.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// When a script runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Up = 0,
    Down = 1,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Up => "up",
            Phase::Down => "down",
        }
    }
}

/// One script: its path and the tap name it gets as `$1`.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub tap: String,
}

/// Errors from the helper.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot start the script helper")]
    Start(#[source] io::Error),
    #[error("the script helper is gone")]
    Gone(#[source] io::Error),
    #[error("script {path} {tap} {phase} exited with status {status}")]
    Failed {
        path: String,
        tap: String,
        phase: &'static str,
        status: i32,
    },
}

/// The VMM's end of the helper.
pub struct Helper {
    /// The socket as a plain file: `read`/`write` are in the VMM thread's filter
    /// already, where UnixStream's `sendto`/`recvfrom` would need rules of their own.
    sock: File,
    scripts: Vec<Script>,
}

impl Helper {
    /// Forks the helper. Call while the process is still single-threaded.
    pub fn spawn(scripts: Vec<Script>) -> Result<Helper, HelperError> {
        let (ours, theirs) = UnixStream::pair().map_err(HelperError::Start)?;
        // SAFETY: the process has one thread here, so the child may use the standard
        // library freely; it never returns into the VMM's code.
        match unsafe { libc::fork() } {
            -1 => Err(HelperError::Start(io::Error::last_os_error())),
            0 => {
                drop(ours);
                serve(theirs, &scripts);
                // SAFETY: leaving the helper without running the VMM's destructors.
                unsafe { libc::_exit(0) }
            }
            _ => Ok(Helper {
                sock: File::from(OwnedFd::from(ours)),
                scripts,
            }),
        }
    }

    /// Runs script `index` for `phase` and waits for it.
    pub fn run(&mut self, index: usize, phase: Phase) -> Result<(), HelperError> {
        self.sock
            .write_all(&[index as u8, phase as u8])
            .map_err(HelperError::Gone)?;
        let mut reply = [0u8; 4];
        self.sock
            .read_exact(&mut reply)
            .map_err(HelperError::Gone)?;
        let status = i32::from_le_bytes(reply);
        if status == 0 {
            return Ok(());
        }
        let (path, tap) = self
            .scripts
            .get(index)
            .map_or((String::from("?"), String::from("?")), |s| {
                (s.path.display().to_string(), s.tap.clone())
            });
        Err(HelperError::Failed {
            path,
            tap,
            phase: phase.word(),
            status,
        })
    }

    /// How many scripts there are.
    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }
}

/// The helper's loop: one request, one script, one status, until the VMM hangs up.
fn serve(mut sock: UnixStream, scripts: &[Script]) {
    let mut request = [0u8; 2];
    while sock.read_exact(&mut request).is_ok() {
        let status = match (scripts.get(usize::from(request[0])), request[1]) {
            (Some(script), phase @ (0 | 1)) => {
                let word = if phase == 0 { "up" } else { "down" };
                // The script's output goes to sandvmm's stderr; its stdin is closed.
                match Command::new(&script.path)
                    .arg(&script.tap)
                    .arg(word)
                    .stdin(Stdio::null())
                    .status()
                {
                    Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                    Err(_) => 127,
                }
            }
            // A request naming no configured script: refuse without running anything.
            _ => -1,
        };
        if sock.write_all(&status.to_le_bytes()).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("s.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn runs_scripts_with_tap_and_phase_and_reports_failures() {
        let dir = std::env::temp_dir().join(format!("sandvmm-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let ok = script(&dir, &format!("echo \"$1 $2\" >> {}", log.display()));
        let mut helper = Helper::spawn(vec![Script {
            path: ok,
            tap: "tap7".into(),
        }])
        .unwrap();
        helper.run(0, Phase::Up).unwrap();
        helper.run(0, Phase::Down).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "tap7 up\ntap7 down\n"
        );
        // An index the helper does not know is refused, not run.
        assert!(matches!(
            helper.run(5, Phase::Up),
            Err(HelperError::Failed { status: -1, .. })
        ));
        let failing = script(&dir, "exit 3");
        let mut helper = Helper::spawn(vec![Script {
            path: failing,
            tap: "t".into(),
        }])
        .unwrap();
        assert!(matches!(
            helper.run(0, Phase::Up),
            Err(HelperError::Failed { status: 3, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

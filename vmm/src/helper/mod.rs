//! The script helper: a process forked before KVM, any fd or any filter exists, that
//! runs the `--net tap=NAME,script=PATH` scripts on the VMM's request (the 2012
//! review's "fork a helper before the sandbox" ask). The sandboxed VMM never calls
//! fork or execve; it writes a two-byte request on a socketpair and reads the exit
//! status back.
//!
//! The helper is not filtered (the scripts run `ip`, `brctl` and the like), so it is
//! made as small as a script allows, right after the fork:
//! - started as root, it keeps CAP_NET_ADMIN and nothing else (bounding, permitted,
//!   effective, inheritable; ambient so the scripts get it), and becomes the jail user
//!   when the jail is on; the secure bits are locked so no exec gives anything back;
//! - it closes every fd but its socket and stderr (where a script's complaints go);
//!   the scripts get /dev/null as stdin and stdout, and a clean environment;
//! - it dies with the VMM (`PR_SET_PDEATHSIG`);
//! - it runs each script exactly once `up` and then once `down`, in that order, and
//!   refuses (and says on stderr) anything else: a compromised VMM can at most take a
//!   tap down early. It holds no KVM fd, no guest memory and no tap.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sandbox::jail::Identity;

mod confine;

use confine::confine;

/// The PATH scripts get.
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The reply to a request the helper refuses.
const REFUSED: i32 = -1;

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
    /// Forks the helper; `user` is who it becomes when sandvmm runs as root (the jail
    /// user, or None to stay root with CAP_NET_ADMIN only). Call while the process is
    /// still single-threaded.
    pub fn spawn(scripts: Vec<Script>, user: Option<Identity>) -> Result<Helper, HelperError> {
        let (ours, theirs) = UnixStream::pair().map_err(HelperError::Start)?;
        // SAFETY: getpid cannot fail; the child compares it with its parent below.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the process has one thread here, so the child may use the standard
        // library freely; it never returns into the VMM's code.
        match unsafe { libc::fork() } {
            -1 => Err(HelperError::Start(io::Error::last_os_error())),
            0 => {
                drop(ours);
                let code = match confine(&theirs, parent, user) {
                    Ok(()) => {
                        serve(theirs, &scripts);
                        0
                    }
                    Err(e) => {
                        log::error!("script helper: cannot {e}");
                        1
                    }
                };
                // SAFETY: leaving the helper without running the VMM's destructors.
                unsafe { libc::_exit(code) }
            }
            _ => Ok(Helper {
                sock: File::from(OwnedFd::from(ours)),
                scripts,
            }),
        }
    }

    /// Runs script `index` for `phase` and waits for it.
    pub fn run(&mut self, index: usize, phase: Phase) -> Result<(), HelperError> {
        let request = [index as u8, phase as u8];
        self.sock.write_all(&request).map_err(HelperError::Gone)?;
        // Replies echo their request; one for a request we did not make is skipped.
        let status = loop {
            let mut reply = [0u8; 6];
            self.sock
                .read_exact(&mut reply)
                .map_err(HelperError::Gone)?;
            if reply[..2] == request {
                break i32::from_le_bytes([reply[2], reply[3], reply[4], reply[5]]);
            }
        };
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

    /// The VMM's end of the socket, for the sandbox's run-time facts.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
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

/// Where each script is in its one `up`, one `down` life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScriptState {
    Idle,
    Up,
    Down,
}

/// The helper's loop: one request, at most one script, one reply, until the VMM
/// hangs up.
fn serve(mut sock: UnixStream, scripts: &[Script]) {
    let mut states = vec![ScriptState::Idle; scripts.len()];
    let mut request = [0u8; 2];
    while sock.read_exact(&mut request).is_ok() {
        let index = usize::from(request[0]);
        let next = match (states.get(index), request[1]) {
            (Some(ScriptState::Idle), 0) => Some((ScriptState::Up, "up")),
            (Some(ScriptState::Up), 1) => Some((ScriptState::Down, "down")),
            _ => None,
        };
        let status = match next {
            Some((state, word)) => {
                states[index] = state;
                run_script(&scripts[index], word)
            }
            None => {
                // One write for the whole line: the VMM shares stderr.
                let line = format!(
                    "sandvmm: script helper: refused request {request:?} (each script runs once up, then once down)\n"
                );
                let _ = io::stderr().write_all(line.as_bytes());
                REFUSED
            }
        };
        let mut reply = [request[0], request[1], 0, 0, 0, 0];
        reply[2..].copy_from_slice(&status.to_le_bytes());
        if sock.write_all(&reply).is_err() {
            break;
        }
    }
}

/// Runs `script TAP word` and returns its exit status (128+N for a signal, 127 if it
/// cannot start).
fn run_script(script: &Script, word: &str) -> i32 {
    match Command::new(&script.path)
        .arg(&script.tap)
        .arg(word)
        .env_clear()
        .env("PATH", SCRIPT_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 127,
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
        let mut helper = Helper::spawn(
            vec![Script {
                path: ok,
                tap: "tap7".into(),
            }],
            None,
        )
        .unwrap();
        // Down before up is refused, and so is a second up or a second down.
        let refused = |r| {
            matches!(
                r,
                Err(HelperError::Failed {
                    status: REFUSED,
                    ..
                })
            )
        };
        assert!(refused(helper.run(0, Phase::Down)));
        helper.run(0, Phase::Up).unwrap();
        assert!(refused(helper.run(0, Phase::Up)));
        helper.run(0, Phase::Down).unwrap();
        assert!(refused(helper.run(0, Phase::Down)));
        assert!(refused(helper.run(0, Phase::Up)));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "tap7 up\ntap7 down\n"
        );
        // An index the helper does not know is refused, not run.
        assert!(refused(helper.run(5, Phase::Up)));
        let failing = script(&dir, "exit 3");
        let mut helper = Helper::spawn(
            vec![Script {
                path: failing,
                tap: "t".into(),
            }],
            None,
        )
        .unwrap();
        assert!(matches!(
            helper.run(0, Phase::Up),
            Err(HelperError::Failed { status: 3, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

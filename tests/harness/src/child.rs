//! Children that never outlive their test: [`Guarded`] processes, a running sandvmm
//! ([`Vm`]: its stdin, its collected output, waits for markers with deadlines) and
//! what a finished run left ([`Finished`]), with the launchers the tests share.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{inherit_fd, sandvmm, testkernel};

/// A child process (sandvmm, or a wrapper around it) that cannot outlive its test: it
/// leads a process group of its own, and the whole group is killed when the guard is
/// dropped before the child has exited (a failed assertion, a timeout), so a shell or
/// `unshare` in between does not leave sandvmm behind.
pub struct Guarded {
    child: Child,
}

impl Guarded {
    /// Spawns `cmd` in a new process group.
    pub fn spawn(cmd: &mut Command) -> Guarded {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Guarded { child }
    }

    /// The process id (and process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("waitpid")
    }

    /// Waits for the child to exit; after `timeout` kills its process group and panics.
    pub fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_deadline(Instant::now() + timeout) {
            Some(status) => status,
            None => {
                self.kill();
                panic!("{:?} still running after {timeout:?}; killed", self.child);
            }
        }
    }

    /// Waits until `deadline` for the child to exit: None if it has not.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child's process group and reaps the child, unless it has exited.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Not reaped, so its pid is still its process group's id.
            let pgid = self.child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals that process group only.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

impl Drop for Guarded {
    /// A test that fails half-way must not leave its VM running.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` (no VM: a subcommand, a shell around sandvmm) with piped output to
/// completion; kills it and panics after `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Finished {
    let mut vm = Vm::start_command(cmd);
    vm.close_stdin();
    vm.wait_exit(timeout)
}

/// A finished sandvmm run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The stderr lines that are not the emulating-host notice.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.contains("host KVM is kvm_pvm"))
            .collect()
    }

    /// Asserts sandvmm exited with `code` after printing exactly one error line that
    /// contains `needle`.
    pub fn assert_one_line_error(&self, code: i32, needle: &str) {
        let lines = self.error_lines();
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit status; stderr: {}",
            self.stderr
        );
        assert_eq!(
            lines.len(),
            1,
            "want one stderr line, got: {:?}",
            self.stderr
        );
        assert!(lines[0].starts_with("sandvmm: "), "stderr: {}", lines[0]);
        assert!(
            lines[0].contains(needle),
            "stderr {:?} lacks {needle:?}",
            lines[0]
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }

    /// Asserts the guest ended itself cleanly and printed `marker`.
    pub fn assert_guest_printed(&self, marker: &str) {
        assert!(
            self.stdout.contains(marker),
            "guest output lacks {marker:?}\nstdout:\n{}\nstderr:\n{}",
            tail(&self.stdout),
            self.stderr
        );
        assert_eq!(self.status.code(), Some(0), "stderr: {}", self.stderr);
    }
}

pub(crate) fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// A running sandvmm (killed, with its process group, when dropped before it exits).
pub struct Vm {
    child: Guarded,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Vm {
    /// Starts `sandvmm ARGS` with piped stdin, stdout and stderr.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vm {
        Self::start_command(Command::new(sandvmm()).args(args))
    }

    /// Starts a prepared command (for wrappers such as `unshare` or `setpriv`).
    pub fn start_command(cmd: &mut Command) -> Vm {
        let mut child = Guarded::spawn(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipes = child.child();
        let readers = vec![
            collect(pipes.stdout.take().unwrap(), stdout.clone()),
            collect(pipes.stderr.take().unwrap(), stderr.clone()),
        ];
        Vm {
            stdin: pipes.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// The guest output so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Types `text` on the guest's serial console.
    pub fn send(&mut self, text: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(text).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the guest's input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until the guest has printed `marker`; panics with the output on timeout
    /// or if sandvmm exits first.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(marker) {
                return;
            }
            if let Some(status) = self.child.try_wait() {
                // The marker may have arrived with the last bytes.
                self.join_readers();
                if self.output().contains(marker) {
                    return;
                }
                panic!(
                    "sandvmm exited ({status}) before printing {marker:?}\nstdout:\n{}\nstderr:\n{}",
                    tail(&self.output()),
                    String::from_utf8_lossy(&self.stderr.lock().unwrap())
                );
            }
            if Instant::now() > deadline {
                let out = self.output();
                self.child.kill();
                panic!(
                    "timed out after {timeout:?} waiting for {marker:?}\nstdout:\n{}",
                    tail(&out)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// The process id, to inspect /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for sandvmm to exit; kills it and panics after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Finished {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let Some(status) = self.child.wait_deadline(deadline) else {
            self.child.kill();
            panic!(
                "sandvmm still running after {timeout:?}; killed\nstdout:\n{}",
                tail(&self.output())
            );
        };
        self.join_readers();
        Finished {
            status,
            stdout: self.output(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
        }
    }
}

/// Starts the test kernel's `echo` scenario with `flags` and waits until it reads input.
pub fn start_echo(flags: &[&str], timeout: Duration) -> Vm {
    let kernel = testkernel();
    let mut args = vec![
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "scenario=echo",
    ];
    args.extend_from_slice(flags);
    let mut vm = Vm::start(&args);
    vm.wait_for("SANDVMM-TEST: echo ready", timeout);
    vm
}

/// Runs `sandvmm ARGS` with no input to completion.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], timeout: Duration) -> Finished {
    let mut vm = Vm::start(args);
    vm.close_stdin();
    vm.wait_exit(timeout)
}

/// Boots the test kernel with `scenario=NAME` plus `extra` command-line text.
pub fn boot_scenario(name: &str, extra: &str, flags: &[&str], timeout: Duration) -> Finished {
    let kernel = testkernel();
    let cmdline = format!("scenario={name} {extra}");
    let mut args: Vec<&str> = vec!["--kernel", kernel.to_str().unwrap(), "--cmdline", &cmdline];
    args.extend_from_slice(flags);
    run(&args, timeout)
}

/// Boots the test kernel's `scenario` with `extra` on its command line and one
/// `--disk SPEC` for each of `disks`.
pub fn boot_with_disks(
    scenario: &str,
    extra: &str,
    disks: &[String],
    timeout: Duration,
) -> Finished {
    let mut flags = Vec::new();
    for d in disks {
        flags.push("--disk");
        flags.push(d.as_str());
    }
    boot_scenario(scenario, extra, &flags, timeout)
}

/// Boots the test kernel with `args` (after `--kernel`) from `cmd` (sandvmm, maybe
/// inside a namespace), with stdin closed, and waits for it to end.
pub fn boot_command(mut cmd: Command, args: &[&str], timeout: Duration) -> Finished {
    let kernel = testkernel();
    cmd.args(["--kernel", kernel.to_str().unwrap()]).args(args);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    vm.wait_exit(timeout)
}

/// Boots the test kernel with `args` and the disk image `file` handed in as fd 5
/// (`--disk fd=5` is for the caller to give), and waits for it to end.
pub fn boot_with_disk_fd(file: &std::fs::File, args: &[&str], timeout: Duration) -> Finished {
    let mut cmd = Command::new(sandvmm());
    inherit_fd(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(file), 5);
    boot_command(cmd, args, timeout)
}

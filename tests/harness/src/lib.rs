//! The harness the guest-booting tests and the bench share: start the `sandvmm` binary
//! as a child process, feed its stdin, collect what the guest printed, and never wait
//! forever (child.rs); network namespaces and taps (netns.rs), an HTTP peer for the
//! Linux guest (http.rs), its workload's protocol (workload.rs), the kernel log's
//! seccomp records (kmsg.rs), pseudo-terminals (pty.rs).
//!
//! Guest code is emulated on the test hosts (docs/ARCHITECTURE.md, "Emulating hosts"),
//! so every wait has a generous timeout and tests check markers, never speed.

mod child;
pub mod flood;
pub mod http;
pub mod kmsg;
pub mod netns;
pub mod pty;
pub mod workload;

pub use child::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binary under test: `sandvmm` in the directory of the running test or bench
/// binary (Cargo puts test binaries one level down, in `deps/`), or `$SANDVMM_BIN`.
pub fn sandvmm() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("SANDVMM_BIN") {
            return path.to_string_lossy().into_owned();
        }
        let exe = std::env::current_exe().expect("the running binary's path");
        let mut dir = exe.parent().expect("a directory").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let path = dir.join("sandvmm");
        assert!(
            path.exists(),
            "{} is missing: build it (cargo build) or set SANDVMM_BIN",
            path.display()
        );
        path.display().to_string()
    })
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A built guest image from images/out/, or a failed test saying how to build it.
pub fn image(name: &str) -> PathBuf {
    let path = root().join("images/out").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the images with images/build.sh (README.md, 'Tests')",
        path.display()
    );
    path
}

/// The sandvmm test kernel (ELF).
pub fn testkernel() -> PathBuf {
    image("testkernel.elf")
}

/// The ordinary user (in the kvm group) that unprivileged runs use; the install step
/// (tests/install-users.sh) creates it.
pub const TEST_USER: &str = "sandvmm-test";
/// The dedicated user sandvmm becomes when started as root.
pub const JAIL_USER: &str = "sandvmm";

/// `user`'s uid, or a failed test saying how to create the user.
pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(
        out.status.success(),
        "no user {user}: run tests/install-users.sh"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A command that runs `program` as [`TEST_USER`] with its groups (kvm among them).
pub fn as_test_user(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={TEST_USER}"),
        &format!("--regid={TEST_USER}"),
        "--init-groups",
        "--",
        program,
    ]);
    cmd
}

/// Makes `cmd`'s child start with `fd` open as fd `at`, inheritable, as a careless
/// launcher would leave it.
pub fn inherit_fd(cmd: &mut Command, fd: std::os::fd::RawFd, at: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: fcntl and dup2 are async-signal-safe; they run in the child between fork
    // and exec. dup2 onto itself would keep close-on-exec, hence the fcntl.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == at {
                libc::fcntl(at, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, at)
            };
            match rc {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For a test that cannot run here (no root, no namespaces): prints `skipped: WHY` so
/// the skip is seen, and the caller then returns. Under CI (the environment variable
/// `CI` set and not empty), which runs as root and must run every test, it fails the
/// test instead.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("cannot run here, and CI is set, so no test may skip: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Whether the host KVM is the emulating kvm_pvm.
pub fn emulating_host() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// The `key=value` counters of the guest's line that starts with `prefix` (such as
/// `SANDVMM-TEST: chaos done `); panics with the output if there is none.
pub fn guest_counters(stdout: &str, prefix: &str) -> std::collections::HashMap<String, u64> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}", child::tail(stdout)));
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} in {line:?}"));
            let v = v
                .parse()
                .unwrap_or_else(|e| panic!("{kv:?} in {line:?}: {e}"));
            (k.to_string(), v)
        })
        .collect()
}

/// A zero-filled disk image of `bytes` in `dir`.
pub fn zero_image(dir: &Scratch, name: &str, bytes: usize) -> PathBuf {
    dir.file(name, &vec![0u8; bytes])
}

/// A field of /proc/PID/status, trimmed; panics if the process or the field is missing.
pub fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// The name and `Seccomp:` field of every thread of process `pid`, sorted by name.
/// Kernel workers KVM attaches to the process (`kvm-nx-lpage-recovery`) are left out:
/// they are not sandvmm's threads.
pub fn thread_seccomp_modes(pid: u32) -> Vec<(String, String)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap();
        let comm = comm.trim().to_string();
        if comm.starts_with("kvm-") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let seccomp = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .expect("no Seccomp: line in /proc/PID/task/TID/status")
            .trim()
            .to_string();
        threads.push((comm, seccomp));
    }
    threads.sort();
    threads
}

/// A scratch directory for one test, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sandvmm-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

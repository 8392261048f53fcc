//! The sandbox on a running VM: every thread filtered while the guest runs, real
//! workloads without violations, each escape attempt of the demonstration port stopped
//! (killed under `enforce`, named under `trap`), policy files and `sandbox show`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);

/// (escape=NAME, the system call the filter stops).
const ATTACKS: [(&str, &str); 10] = [
    ("execve", "execve"),
    ("open", "openat"),
    ("socket", "socket"),
    ("mprotect", "mprotect"),
    ("mmap", "mmap"),
    ("fork", "clone"),
    ("ptrace", "ptrace"),
    ("kvm-ioctl", "ioctl"),
    ("setuid", "setuid"),
    ("mount", "mount"),
];

fn escape(name: &str, thread: &str, mode: &str) -> Finished {
    boot_scenario(
        "escape",
        &format!("escape={name} thread={thread}"),
        &["--demo-escape", "--sandbox", mode],
        BOOT,
    )
}

#[test]
fn every_escape_is_killed_under_enforce() {
    for (name, _) in ATTACKS {
        for thread in ["vcpu", "vmm"] {
            let run = escape(name, thread, "enforce");
            assert!(
                run.stdout
                    .contains(&format!("escape attempt {name} on the {thread} thread")),
                "{}",
                run.stdout
            );
            assert_eq!(
                run.status.signal(),
                Some(libc::SIGSYS),
                "{name} on {thread}: {:?} {}",
                run.status,
                run.stderr
            );
            assert!(!run.stdout.contains("not stopped") && !run.stderr.contains("not stopped"));
        }
    }
}

#[test]
fn every_escape_is_named_under_trap() {
    for (name, syscall) in ATTACKS {
        for (thread, comm) in [("vcpu", "vcpu0"), ("vmm", "sandvmm")] {
            let run = escape(name, thread, "trap");
            assert_eq!(
                run.status.code(),
                Some(100),
                "{name} on {thread}: {}",
                run.stderr
            );
            let want = format!("sandbox: blocked syscall {syscall} (");
            let line = run
                .stderr
                .lines()
                .find(|l| l.starts_with(&want))
                .unwrap_or_else(|| panic!("{name}: {}", run.stderr));
            assert!(
                line.contains(&format!(" in thread {comm}, args [")),
                "{line}"
            );
        }
    }
}

#[test]
fn a_killed_vmm_shows_status_159_in_a_shell() {
    let kernel = testkernel();
    let out = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" --kernel \"$1\" --demo-escape --serial none --cmdline 'scenario=escape escape=execve' </dev/null 2>/dev/null; echo status=$?")
        .arg(sandvmm())
        .arg(&kernel)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "status=159");
}

#[test]
fn without_the_sandbox_the_escape_goes_through() {
    // The control: the same attempt, unfiltered, is not stopped.
    let run = escape("open", "vcpu", "off");
    assert!(
        run.stderr
            .contains("escape demo: open on the vcpu0 thread was not stopped"),
        "{}",
        run.stderr
    );
    run.assert_guest_printed("SANDVMM-TEST: FAIL escape not-stopped");
}

#[test]
fn every_thread_is_filtered_while_the_guest_runs() {
    let kernel = testkernel();
    let mut vm = Vm::start(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--cpus",
        "2",
        "--cmdline",
        "scenario=echo",
    ]);
    vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
    let threads = thread_seccomp_modes(vm.pid());
    let names: Vec<&str> = threads.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["sandvmm", "vcpu0", "vcpu1"]);
    for (name, seccomp) in &threads {
        assert_eq!(seccomp, "2", "thread {name}");
    }
    vm.send(b"quit\n");
    vm.wait_exit(BOOT)
        .assert_guest_printed("SANDVMM-TEST: PASS echo");
}

#[test]
fn real_workloads_run_without_violations_under_trap_and_log() {
    for mode in ["trap", "log"] {
        let kernel = testkernel();
        let mut vm = Vm::start(&[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox",
            mode,
            "--cmdline",
            "scenario=echo",
        ]);
        vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
        vm.send(b"one\ntwo\nquit\n");
        let run = vm.wait_exit(BOOT);
        run.assert_guest_printed("SANDVMM-TEST: PASS echo");
        assert!(!run.stderr.contains("sandbox:"), "{mode}: {}", run.stderr);
        let flood = boot_scenario(
            "serial-flood",
            "bytes=100000",
            &["--sandbox", mode, "--cpus", "2"],
            BOOT,
        );
        flood.assert_guest_printed("SANDVMM-TEST: PASS serial-flood");
        assert!(
            !flood.stderr.contains("sandbox:"),
            "{mode}: {}",
            flood.stderr
        );
    }
}

#[test]
fn a_custom_policy_file_is_used() {
    let dir = Scratch::new("policy");
    let builtin = std::fs::read_to_string(root().join("sandbox/policy/x86_64.toml")).unwrap();
    // Without the vCPU's KVM_RUN rule, the first KVM_RUN is a violation. (The trap
    // report itself needs write and exit_group, so those are not the ones to drop.)
    let stripped = builtin.replacen(
        "args = [\"arg1 == KVM_RUN\"]",
        "args = [\"arg1 == KVM_SET_REGS\"]",
        1,
    );
    assert_ne!(stripped, builtin);
    let path = dir.file("policy.toml", stripped.as_bytes());
    let run = boot_scenario(
        "hello",
        "",
        &[
            "--sandbox",
            "trap",
            "--sandbox-policy",
            path.to_str().unwrap(),
        ],
        BOOT,
    );
    assert_eq!(run.status.code(), Some(100));
    assert!(
        run.stderr
            .contains("sandbox: blocked syscall ioctl (16) in thread vcpu0, args [0x"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(", 0xae80, "),
        "KVM_RUN is the blocked request: {}",
        run.stderr
    );
}

#[test]
fn malformed_policy_files_are_one_line_errors() {
    let dir = Scratch::new("bad-policy");
    let kernel = testkernel();
    let cases = [
        (
            "syntax.toml",
            "version = 1\n[[vmm]]\nsyscall = \"read\"\nreason = \n",
            "syntax.toml: line 4",
        ),
        (
            "field.toml",
            "version = 1\n[[vcpu]]\nsyscall = \"nope\"\nreason = \"x\"\n",
            "[[vcpu]] rule 1 (nope): field `syscall`",
        ),
        (
            "args.toml",
            "version = 1\n[[vmm]]\nsyscall = \"ioctl\"\nreason = \"x\"\nargs = [\"arg1 === 5\"]\n",
            "field `args`",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.file(name, text.as_bytes());
        run(
            &[
                "--kernel",
                kernel.to_str().unwrap(),
                "--sandbox-policy",
                path.to_str().unwrap(),
            ],
            BOOT,
        )
        .assert_one_line_error(1, needle);
    }
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox-policy",
            "/nonexistent.toml",
        ],
        BOOT,
    )
    .assert_one_line_error(1, "cannot read /nonexistent.toml");
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox",
            "paranoid",
        ],
        BOOT,
    )
    .assert_one_line_error(2, "invalid --sandbox");
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox-profile",
            "strict",
            "--net",
            "tap=x",
        ],
        BOOT,
    )
    .assert_one_line_error(2, "strict takes taps only as fds");
}

#[test]
fn sandbox_show_prints_rules_and_programs() {
    let show = |args: &[&str]| {
        let out = Command::new(sandvmm())
            .arg("sandbox")
            .arg("show")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, _) = show(&[]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("vcpu: ") && table.contains("arg1 == KVM_RUN") && table.contains("vmm: "),
        "{table}"
    );
    let (_, pfc, _) = show(&["--thread", "vcpu", "--format", "pfc"]);
    assert!(
        pfc.contains("ioctl") && pfc.contains("action KILL_PROCESS;"),
        "{pfc}"
    );
    let (_, bpf, _) = show(&["--thread", "vmm", "--format", "bpf", "--optimize", "tree"]);
    assert!(
        bpf.starts_with("# vmm: ") && bpf.lines().count() > 10,
        "{bpf}"
    );
    let (code, _, err) = show(&["--thread", "gpu"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid --thread"), "{err}");
}

/// Reads `master` until `marker` appears; panics with what came after `timeout`.
fn read_pty_until(master: &mut std::fs::File, marker: &str, timeout: Duration) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(marker) {
        assert!(
            std::time::Instant::now() < deadline,
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

#[test]
fn a_terminal_console_is_raw_while_the_guest_runs_and_restored_under_enforce() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, slave) = {
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
        unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
    };
    let lflag = |fd: &OwnedFd| {
        use std::os::fd::AsRawFd;
        // SAFETY: termios is plain data, filled in by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid terminal descriptor and termios.
        assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
        t.c_lflag
    };
    let before = lflag(&slave);
    assert_ne!(before & libc::ICANON, 0, "a new pty is canonical");
    let kernel = testkernel();
    let mut child = Command::new(sandvmm())
        .args([
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "scenario=echo",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    read_pty_until(&mut master, "SANDVMM-TEST: echo ready", BOOT);
    assert_eq!(lflag(&slave) & (libc::ICANON | libc::ECHO), 0, "raw mode");
    std::io::Write::write_all(&mut master, b"quit\r").unwrap();
    read_pty_until(&mut master, "SANDVMM-TEST: PASS echo", BOOT);
    let status = child.wait().unwrap();
    // Restoring the terminal is the VMM thread's last system call under its filter.
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(lflag(&slave), before, "terminal settings restored");
}

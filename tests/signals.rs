//! Stop signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT end a run cleanly under every
//! sandbox mode, with and without a terminal: exit status 0, one line naming the
//! signal, no SIGSYS, no violation reported (on stderr in trap mode, in the kernel log
//! in log mode), the terminal restored and the helper's `down` scripts run.

use sandvmm_harness as common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::netns::{NetNs, TAP};
use common::*;

const BOOT: Duration = Duration::from_secs(60);
const MODES: [&str; 3] = ["enforce", "trap", "log"];
const SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
];

fn send(pid: u32, signal: libc::c_int) {
    // SAFETY: signals a child process of this test.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

#[test]
fn each_stop_signal_ends_the_run_cleanly_under_each_mode() {
    for mode in MODES {
        for (signal, name) in SIGNALS {
            let case = format!("{name} under --sandbox {mode}");
            let vm = start_echo(&["--sandbox", mode], BOOT);
            let pid = vm.pid();
            send(pid, signal);
            let run = vm.wait_exit(BOOT);
            assert_eq!(run.status.signal(), None, "{case}: {}", run.stderr);
            assert_eq!(run.status.code(), Some(0), "{case}: {}", run.stderr);
            let want = format!("sandvmm: stopped by {name}");
            assert_eq!(run.error_lines().last(), Some(&want.as_str()), "{case}");
            assert!(!run.stderr.contains("sandbox:"), "{case}: {}", run.stderr);
            if mode == "log" {
                common::kmsg::assert_none_logged(pid, &case);
            }
        }
    }
}

#[test]
fn a_stop_signal_restores_the_terminal_under_each_mode() {
    let kernel = testkernel();
    for mode in MODES {
        for (signal, name) in SIGNALS {
            let case = format!("{name} under --sandbox {mode} on a terminal");
            let (mut master, slave) = pty::open();
            let before = pty::lflag(&slave);
            // Killed if an assertion below fails or it does not exit in time.
            let mut child = Guarded::spawn(
                Command::new(sandvmm())
                    .args(["--kernel", kernel.to_str().unwrap(), "--sandbox", mode])
                    .args(["--cmdline", "scenario=echo"])
                    .stdin(slave.try_clone().unwrap())
                    .stdout(slave.try_clone().unwrap())
                    .stderr(slave.try_clone().unwrap()),
            );
            let pid = child.id();
            pty::read_until(&mut master, "SANDVMM-TEST: echo ready", BOOT);
            assert_eq!(pty::lflag(&slave) & libc::ICANON, 0, "{case}: raw mode");
            send(pid, signal);
            let seen = pty::read_until(&mut master, &format!("stopped by {name}"), BOOT);
            let status = child.wait_timeout(BOOT);
            assert_eq!(status.code(), Some(0), "{case}: {status:?}\n{seen}");
            assert!(!seen.contains("sandbox:"), "{case}: {seen}");
            assert_eq!(pty::lflag(&slave), before, "{case}: terminal restored");
            if mode == "log" {
                common::kmsg::assert_none_logged(pid, &case);
            }
        }
    }
}

#[test]
fn sigterm_runs_the_helpers_down_scripts() {
    let ns = NetNs::new(true);
    let dir = Scratch::new("signal-down");
    // The helper runs scripts as the jail user, which needs a log it may append to.
    let log = dir.file("log", b"");
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let script = dir.file(
        "ifup.sh",
        format!("#!/bin/sh\necho \"$1 $2\" >> {}\n", log.display()).as_bytes(),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = ns.command(sandvmm());
    cmd.args(["--kernel", testkernel().to_str().unwrap()])
        .args(["--net", &format!("tap={TAP},script={}", script.display())])
        .args(["--cmdline", "scenario=echo"]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "tap0 up\n");
    send(vm.pid(), libc::SIGTERM);
    let run = vm.wait_exit(BOOT);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("sandvmm: stopped by SIGTERM"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "tap0 up\ntap0 down\n"
    );
}

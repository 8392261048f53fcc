//! Each escape attempt of the demonstration port against each layer on its own, as
//! docs/SANDBOX.md's table says: the seccomp filters with the jail (the default), the
//! jail alone (`--sandbox off`), and neither (`--sandbox off --jail off`, the control,
//! where every attempt must succeed). Every run boots the test kernel's escape scenario
//! as root, on a vCPU thread; the filters' sweep over both threads, enforce and trap,
//! as root and as an ordinary user, is in tests/sandbox.rs.

use sandvmm_harness as common;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::netns::{NetNs, TAP};
use common::*;

const BOOT: Duration = Duration::from_secs(60);
/// The fd the launcher leaves open for the `fd-write` attack.
const INHERITED_FD: i32 = 100;

/// How an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The seccomp filter killed the process (SIGSYS).
    Killed,
    /// The call returned this errno.
    Failed(&'static str),
    /// The attempt did what it set out to do.
    Succeeded,
}

use End::*;

/// attack → (filters + jail, jail alone, neither).
const TABLE: [(&str, [End; 3]); 12] = [
    ("execve", [Killed, Failed("ENOENT"), Succeeded]),
    // No free fd number is left: EMFILE comes before the path or the connect.
    ("open", [Killed, Failed("EMFILE"), Succeeded]),
    ("socket", [Killed, Failed("EMFILE"), Succeeded]),
    ("mprotect", [Killed, Failed("EACCES"), Succeeded]),
    ("mmap", [Killed, Failed("EACCES"), Succeeded]),
    ("fork", [Killed, Failed("EAGAIN"), Succeeded]),
    ("ptrace", [Killed, Failed("EPERM"), Succeeded]),
    // The jail cannot take away an fd the VMM needs: only the filter stops this.
    ("kvm-ioctl", [Killed, Succeeded, Succeeded]),
    ("setuid", [Killed, Failed("EINVAL"), Succeeded]),
    ("mount", [Killed, Failed("ENOENT"), Succeeded]),
    ("fd-write", [Killed, Failed("EBADF"), Succeeded]),
    ("signal-other", [Killed, Failed("EPERM"), Succeeded]),
];

const CONFIGS: [(&str, &str); 3] = [("enforce", "on"), ("off", "on"), ("off", "off")];

/// A process outside sandvmm for `ptrace` and `signal-other` to aim at, killed when
/// the test ends.
fn bystander() -> Guarded {
    Guarded::spawn(Command::new("sleep").arg("600"))
}

/// Runs `attack` under `--sandbox sandbox --jail jail` and checks it ended as `want`.
fn check(attack: &str, column: usize) {
    let (sandbox, jail) = CONFIGS[column];
    let want = TABLE.iter().find(|(a, _)| *a == attack).unwrap().1[column];
    let case = format!("{attack} under --sandbox {sandbox} --jail {jail}");
    let mut target = bystander();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let arg = match attack {
        "socket" => listener.local_addr().unwrap().port().to_string(),
        "ptrace" | "signal-other" => target.id().to_string(),
        "fd-write" => INHERITED_FD.to_string(),
        _ => "0".into(),
    };
    let (reader, writer) = std::io::pipe().unwrap();
    let writer = std::os::fd::OwnedFd::from(writer);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&writer);
    // The control's mount must not land in the host's mount namespace.
    let mut cmd = if attack == "mount" && jail == "off" {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", sandvmm()]);
        c
    } else {
        Command::new(sandvmm())
    };
    let kernel = testkernel();
    let cmdline = format!("scenario=escape escape={attack} arg={arg}");
    cmd.args(["--kernel", kernel.to_str().unwrap(), "--demo-escape"])
        .args(["--sandbox", sandbox, "--jail", jail, "--cmdline", &cmdline]);
    inherit_fd(&mut cmd, raw, INHERITED_FD);
    let mut vm = Vm::start_command(&mut cmd);
    drop(writer);
    vm.close_stdin();
    let run = vm.wait_exit(BOOT);
    let line = format!("escape demo: {attack} on the vcpu0 thread");
    match want {
        Killed => assert_eq!(
            run.status.signal(),
            Some(libc::SIGSYS),
            "{case}: {}",
            run.stderr
        ),
        Failed(errno) => {
            let want = format!("{line} failed: {errno} (");
            assert!(
                run.stderr.contains(&want),
                "{case}: want {want:?} in {}",
                run.stderr
            );
            run.assert_guest_printed(&format!("SANDVMM-TEST: escape {attack} was not stopped"));
        }
        Succeeded if attack == "execve" => {
            assert!(
                run.stdout.contains("ESCAPED: a shell ran"),
                "{case}: {}",
                run.stdout
            )
        }
        Succeeded => {
            assert!(
                run.stderr.contains(&format!("{line} succeeded")),
                "{case}: {}",
                run.stderr
            );
        }
    }
    // What the attempt did to the world outside, seen from outside.
    let mut written = String::new();
    let _ = std::fs::File::from(std::os::fd::OwnedFd::from(reader)).read_to_string(&mut written);
    assert_eq!(
        written.contains("written through an inherited fd"),
        attack == "fd-write" && want == Succeeded,
        "{case}: the inherited pipe got {written:?}"
    );
    std::thread::sleep(Duration::from_millis(50));
    let died = target.try_wait();
    assert_eq!(
        died.is_some(),
        attack == "signal-other" && want == Succeeded,
        "{case}: the bystander's state: {died:?}"
    );
}

fn column(index: usize) {
    for (attack, _) in TABLE {
        check(attack, index);
    }
}

#[test]
fn the_filters_with_the_jail_kill_every_attempt() {
    column(0);
}

#[test]
fn the_jail_alone_refuses_every_attempt_but_a_kvm_ioctl() {
    column(1);
}

#[test]
fn without_either_every_attempt_succeeds() {
    column(2);
}

#[test]
fn the_helper_runs_each_script_once_up_then_once_down_whatever_a_vcpu_asks() {
    for (sandbox, jail) in CONFIGS {
        let ns = NetNs::new(true);
        let dir = Scratch::new(&format!("helper-{sandbox}-{jail}"));
        let log = dir.file("log", b"");
        std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let script = dir.file(
            "ifup.sh",
            format!("#!/bin/sh\necho \"$1 $2\" >> {}\n", log.display()).as_bytes(),
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut cmd = ns.command(sandvmm());
        cmd.args(["--kernel", testkernel().to_str().unwrap(), "--demo-escape"])
            .args(["--net", &format!("tap={TAP},script={}", script.display())])
            .args(["--sandbox", sandbox, "--jail", jail])
            .args(["--cmdline", "scenario=escape escape=helper"]);
        let mut vm = Vm::start_command(&mut cmd);
        vm.close_stdin();
        let run = vm.wait_exit(BOOT);
        let case = format!("--sandbox {sandbox} --jail {jail}");
        let ran = std::fs::read_to_string(&log).unwrap();
        if sandbox == "enforce" {
            // The vCPU filter allows no write to the helper's socket.
            assert_eq!(
                run.status.signal(),
                Some(libc::SIGSYS),
                "{case}: {}",
                run.stderr
            );
            assert_eq!(ran, "tap0 up\n", "{case}");
        } else {
            // The write goes through; the helper refuses a second `up`.
            assert!(
                run.stderr.contains("script helper: refused request [0, 0]"),
                "{case}: {}",
                run.stderr
            );
            run.assert_guest_printed("SANDVMM-TEST: escape helper was not stopped");
            assert_eq!(ran, "tap0 up\ntap0 down\n", "{case}");
        }
    }
}

#[test]
fn landlock_alone_keeps_signals_from_a_process_of_the_same_user() {
    // Run by an ordinary user at a bystander of the same user, the uid check lets the
    // signal through; only Landlock's scoping stops it (the control shows it lands).
    for (jail, stopped) in [("on", true), ("off", false)] {
        let mut target = Guarded::spawn(as_test_user("sleep").arg("600"));
        let mut cmd = as_test_user(sandvmm());
        let cmdline = format!("scenario=escape escape=signal-other arg={}", target.id());
        cmd.args(["--kernel", testkernel().to_str().unwrap(), "--demo-escape"])
            .args(["--sandbox", "off", "--jail", jail, "--cmdline", &cmdline]);
        let mut vm = Vm::start_command(&mut cmd);
        vm.close_stdin();
        let run = vm.wait_exit(BOOT);
        // setpriv execs sleep, so the target's pid is the bystander's own.
        std::thread::sleep(Duration::from_millis(50));
        let alive = target.try_wait().is_none();
        assert_eq!(alive, stopped, "--jail {jail}: {}", run.stderr);
        if stopped {
            assert!(
                run.stderr
                    .contains("signal-other on the vcpu0 thread failed: EPERM"),
                "{}",
                run.stderr
            );
        }
    }
}

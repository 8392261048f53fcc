//! The jail on a running VM: what /proc shows of a VM started by root and by an
//! ordinary user, inherited fds closed, `--jail-user`, `sandbox show --layers`, and the
//! jail failing closed on a host without user namespaces or Landlock. The attack table
//! (each escape against each layer) is in tests/layers.rs.

use sandvmm_harness as common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);

/// The open fds of `pid`.
fn fds_of(pid: u32) -> BTreeSet<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect()
}

/// Checks everything the jail promises about the running sandvmm `pid`, whose jailed
/// uid is `uid`. Started by root, it has no supplementary groups left; an ordinary
/// user's stay (no unprivileged process can drop them), with no path to use them on.
fn assert_jailed(pid: u32, uid: u32, by_root: bool) {
    let ids = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(status_field(pid, "Uid"), ids);
    if by_root {
        assert_eq!(status_field(pid, "Groups"), "");
    }
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(pid, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    for (name, seccomp) in thread_seccomp_modes(pid) {
        assert_eq!(seccomp, "2", "thread {name}");
    }
    // The root is an empty directory: no host path resolves.
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .collect();
    assert!(root.is_empty(), "the jail's root holds {root:?}");
    for ns in ["user", "mnt", "net", "ipc", "uts", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared with the launcher");
    }
    // Non-dumpable: /proc/PID belongs to root although the process does not.
    let meta = std::fs::metadata(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(meta.uid(), 0, "sandvmm is still dumpable");
    // Every fd but 0-2 is close-on-exec (O_CLOEXEC is 02000000 in fdinfo's octal flags).
    let fds = fds_of(pid);
    for fd in fds.iter().filter(|fd| **fd > 2) {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .unwrap()
            .trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        assert_ne!(flags & 0o2000000, 0, "fd {fd} is not close-on-exec");
    }
    // No free number below the highest fd: with the limit below, no call can make one.
    let max = *fds.iter().max().unwrap();
    assert_eq!(fds, (0..=max).collect(), "free fd numbers left");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[25..].split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(limit("Max core file size"), "0");
    assert_eq!(
        limit("Max open files"),
        (fds.iter().max().unwrap() + 1).to_string()
    );
}

/// Boots the echo scenario with 2 vCPUs from `cmd`, runs `check` on the running VM, then
/// ends it.
fn while_echo_runs(cmd: &mut Command, check: impl FnOnce(u32)) {
    let kernel = testkernel();
    cmd.args([
        "--kernel",
        kernel.to_str().unwrap(),
        "--cpus",
        "2",
        "--cmdline",
        "scenario=echo",
    ]);
    let mut vm = Vm::start_command(cmd);
    vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
    check(vm.pid());
    vm.send(b"quit\n");
    vm.wait_exit(BOOT)
        .assert_guest_printed("SANDVMM-TEST: PASS echo");
}

#[test]
fn a_vm_started_by_root_runs_jailed_as_the_dedicated_user() {
    while_echo_runs(&mut Command::new(sandvmm()), |pid| {
        assert_jailed(pid, uid_of(JAIL_USER), true)
    });
}

#[test]
fn a_vm_started_by_an_ordinary_user_runs_jailed_as_that_user() {
    while_echo_runs(&mut as_test_user(sandvmm()), |pid| {
        assert_jailed(pid, uid_of(TEST_USER), false)
    });
}

#[test]
fn jail_user_chooses_who_root_becomes() {
    let mut cmd = Command::new(sandvmm());
    cmd.args(["--jail-user", "54321:54322"]);
    while_echo_runs(&mut cmd, |pid| {
        assert_eq!(status_field(pid, "Uid"), "54321\t54321\t54321\t54321");
        assert_eq!(status_field(pid, "Gid"), "54322\t54322\t54322\t54322");
    });
}

#[test]
fn bad_jail_users_are_one_line_errors() {
    let kernel = testkernel();
    let k = kernel.to_str().unwrap();
    run(&["--kernel", k, "--jail-user", "0:0"], BOOT).assert_one_line_error(2, "is root");
    run(&["--kernel", k, "--jail-user", "12:x"], BOOT)
        .assert_one_line_error(2, "invalid --jail-user");
    run(&["--kernel", k, "--jail-user", "no-such-user-here"], BOOT)
        .assert_one_line_error(1, "no user \"no-such-user-here\" to run as");
    run(&["--kernel", k, "--jail", "maybe"], BOOT).assert_one_line_error(2, "--jail");
}

/// Starts `sandvmm ARGS` with fd 7 open on the write end of a pipe, as a careless
/// launcher would leave it.
fn with_inherited_fd(args: &[&str]) -> (Vm, std::fs::File) {
    let (reader, writer) = std::io::pipe().unwrap();
    let writer = std::os::fd::OwnedFd::from(writer);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&writer);
    let mut cmd = Command::new(sandvmm());
    cmd.args(args);
    inherit_fd(&mut cmd, raw, 7);
    let vm = Vm::start_command(&mut cmd);
    drop(writer);
    (vm, std::fs::File::from(std::os::fd::OwnedFd::from(reader)))
}

#[test]
fn fds_inherited_from_the_launcher_are_closed_unless_the_jail_is_off() {
    let kernel = testkernel();
    for (jail, kept) in [("on", false), ("off", true)] {
        let (mut vm, _pipe) = with_inherited_fd(&[
            "--kernel",
            kernel.to_str().unwrap(),
            "--jail",
            jail,
            "--cmdline",
            "scenario=echo",
        ]);
        vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
        // A closed number may hold a plug now; the launcher's pipe must be gone.
        let seven = std::fs::read_link(format!("/proc/{}/fd/7", vm.pid()))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(
            seven.starts_with("pipe:"),
            kept,
            "--jail {jail}: fd 7 is {seven:?}"
        );
        vm.send(b"quit\n");
        vm.wait_exit(BOOT)
            .assert_guest_printed("SANDVMM-TEST: PASS echo");
    }
}

/// Runs sandvmm under a filter that makes `syscall` fail with `errno`, as a host that
/// forbids it would.
fn under_a_host_that_refuses(syscall: &str, errno: i32, args: &[&str]) -> Finished {
    use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).unwrap();
    ctx.add_rule(
        ScmpAction::Errno(errno),
        ScmpSyscall::from_name(syscall).unwrap(),
    )
    .unwrap();
    let filter = sandbox::CompiledFilter::from_context(sandbox::ThreadKind::Vmm, &ctx).unwrap();
    let mut cmd = Command::new(sandvmm());
    cmd.args(args);
    // SAFETY: install() makes two system calls (prctl, seccomp) on a program prepared
    // before the fork; nothing is allocated in the child.
    unsafe {
        cmd.pre_exec(move || {
            filter
                .install()
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
    }
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    vm.wait_exit(BOOT)
}

#[test]
fn the_jail_fails_closed_without_user_namespaces_or_landlock() {
    let kernel = testkernel();
    let k = kernel.to_str().unwrap();
    let hello = ["--kernel", k, "--cmdline", "scenario=hello"];
    under_a_host_that_refuses("unshare", libc::EPERM, &hello)
        .assert_one_line_error(1, "cannot create a user namespace");
    let no_landlock = under_a_host_that_refuses("landlock_create_ruleset", libc::ENOSYS, &hello);
    no_landlock.assert_one_line_error(1, "Landlock is not available");
    assert!(no_landlock.stderr.contains("--jail off"));
    // --jail off is the documented way out.
    let off = [&hello[..], &["--jail", "off"]].concat();
    under_a_host_that_refuses("unshare", libc::EPERM, &off)
        .assert_guest_printed("SANDVMM-TEST: PASS hello");
    under_a_host_that_refuses("landlock_create_ruleset", libc::ENOSYS, &off)
        .assert_guest_printed("SANDVMM-TEST: PASS hello");
}

#[test]
fn sandbox_show_layers_describes_what_a_run_would_set_up() {
    let out = output_within(
        Command::new(sandvmm()).args(["sandbox", "show", "--layers"]),
        BOOT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = &out.stdout;
    let uid = uid_of(JAIL_USER);
    for want in [
        "seccomp: enforce",
        &format!("identity: started as root: becomes sandvmm (uid {uid}"),
        "namespaces: user, mount, IPC, UTS, network, cgroup: available",
        "landlock: ABI ",
        "capabilities: none",
        "reaper: a process forked before the jail that keeps only the VM fd",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

//! The reaper (vmm/src/teardown.rs): the process that destroys the VM once sandvmm is
//! gone. It holds the VM fd and a pipe and nothing else, runs under its own filter in
//! a session of its own, and ends after sandvmm however sandvmm ended, so that a run's
//! exit never waits for KVM's destruction of the VM and nothing of the run outlives
//! it but the reaper itself, briefly.

use sandvmm_harness as common;

use std::time::{Duration, Instant};

use common::*;

const BOOT: Duration = Duration::from_secs(60);
/// How long the reaper may outlive sandvmm: KVM's destruction of a VM takes tens of
/// milliseconds on the test hosts; seconds mean it is stuck.
const REAPER_GONE: Duration = Duration::from_secs(10);

/// The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session.
fn stat_of(pid: u32) -> Option<(char, u32, u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut num = || fields.next()?.parse::<u32>().ok();
    Some((state, num()?, num()?, num()?))
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The children of `parent` named `sandvmm-reaper`.
fn reapers_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_of(*pid).is_some_and(|s| s.1 == parent))
        .filter(|pid| comm_of(*pid) == "sandvmm-reaper")
        .collect()
}

/// What each open fd of `pid` refers to, sorted.
fn fd_targets(pid: u32) -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let target = std::fs::read_link(e.unwrap().path()).unwrap();
            let target = target.to_string_lossy();
            // pipe:[12345] -> pipe
            target.split(':').next().unwrap().to_string()
        })
        .collect();
    targets.sort();
    targets
}

/// Whether `pid` has ended: gone, or a zombie waiting for whoever adopted it.
fn ended(pid: u32) -> bool {
    stat_of(pid).is_none_or(|s| s.0 == 'Z')
}

fn wait_ended(pid: u32) -> Duration {
    let start = Instant::now();
    while !ended(pid) {
        assert!(
            start.elapsed() < REAPER_GONE,
            "the reaper {pid} still runs {REAPER_GONE:?} after sandvmm ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// The one reaper of the running sandvmm `vm`, checked: the VM fd and its pipe and
/// nothing else, its own filter, its own session, no terminal.
fn checked_reaper(vm: u32) -> u32 {
    let reapers = reapers_of(vm);
    assert_eq!(reapers.len(), 1, "reapers of {vm}: {reapers:?}");
    let reaper = reapers[0];
    assert_eq!(
        fd_targets(reaper),
        ["anon_inode", "pipe"],
        "the reaper's fds: only the VM's and its pipe's"
    );
    let vm_fd = std::fs::read_dir(format!("/proc/{reaper}/fd"))
        .unwrap()
        .map(|e| std::fs::read_link(e.unwrap().path()).unwrap())
        .find(|t| t.to_string_lossy().starts_with("anon_inode"))
        .unwrap();
    assert_eq!(vm_fd.to_string_lossy(), "anon_inode:kvm-vm");
    assert_eq!(
        status_field(reaper, "Seccomp"),
        "2",
        "the reaper is filtered"
    );
    assert_eq!(status_field(reaper, "NoNewPrivs"), "1");
    let (state, _, pgrp, session) = stat_of(reaper).unwrap();
    assert_eq!(state, 'S', "the reaper sleeps until sandvmm is gone");
    assert_eq!((pgrp, session), (reaper, reaper), "a session of its own");
    reaper
}

#[test]
fn the_reaper_holds_the_vm_alone_and_ends_after_a_clean_exit() {
    let mut vm = start_echo(&[], BOOT);
    let reaper = checked_reaper(vm.pid());
    vm.send(b"hello\n");
    vm.wait_for("echo: hello", BOOT);
    // SAFETY: kill with a live child's pid and a constant signal.
    unsafe { libc::kill(vm.pid() as i32, libc::SIGTERM) };
    let out = vm.wait_exit(BOOT);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("stopped by SIGTERM"), "{}", out.stderr);
    let took = wait_ended(reaper);
    eprintln!("the reaper ended {took:?} after sandvmm");
}

#[test]
fn the_reaper_ends_after_a_killed_sandvmm() {
    let vm = start_echo(&[], BOOT);
    let reaper = checked_reaper(vm.pid());
    // SAFETY: as above.
    unsafe { libc::kill(vm.pid() as i32, libc::SIGKILL) };
    let out = vm.wait_exit(BOOT);
    assert_eq!(out.status.code(), None, "killed");
    wait_ended(reaper);
}

#[test]
fn an_ordinary_users_run_has_its_reaper_too() {
    if !is_root() {
        return skip("needs root to create the test user's run");
    }
    let kernel = testkernel();
    let mut cmd = as_test_user(sandvmm());
    cmd.args([
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "scenario=echo",
    ]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
    // setpriv execs sandvmm: same pid.
    let reaper = checked_reaper(vm.pid());
    let uid = uid_of(TEST_USER).to_string();
    assert_eq!(
        status_field(reaper, "Uid").split_whitespace().next(),
        Some(uid.as_str())
    );
    vm.send(b"quit\n");
    let out = vm.wait_exit(BOOT);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    wait_ended(reaper);
}

#[test]
fn the_reaper_is_filtered_with_the_sandbox_and_jail_off() {
    let mut vm = start_echo(&["--sandbox", "off", "--jail", "off"], BOOT);
    let reaper = checked_reaper(vm.pid());
    vm.send(b"quit\n");
    let out = vm.wait_exit(BOOT);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    wait_ended(reaper);
}

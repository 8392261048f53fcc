//! Snapshot and restore with the test kernel: a guest paused where it waits for input
//! (on a serial text), in the middle of a serial flood (on SIGUSR1), or while it starts
//! its second vCPU, written to a directory, and restored by new sandvmm processes under
//! the enforcing sandbox and the jail, one at a time and two at once. Each restore must
//! go on exactly where the guest was: the echo answers typed lines, the flood's bytes
//! and checksum come out whole across the two runs, the second vCPU comes up once.
//! Bad snapshots and mismatched devices get one-line errors. The Linux guest's
//! snapshot test is in tests/linux_snapshot.rs.

use sandvmm_harness as common;

use std::path::Path;
use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);
const FLOOD: Duration = Duration::from_secs(300);
const ECHO_READY: &str = "SANDVMM-TEST: echo ready";

/// Boots the echo scenario and snapshots it once it waits for input; `flags` are
/// added (the sandbox mode, say). Returns the finished first run.
fn snapshot_echo(dir: &Path, flags: &[&str]) -> Finished {
    let mut args = vec![
        "--snapshot-to",
        dir.to_str().unwrap(),
        "--snapshot-on-serial",
        ECHO_READY,
    ];
    args.extend_from_slice(flags);
    // stdin stays open: the guest must be paused at its prompt, not at end of input.
    let run = start_echo(&args, BOOT).wait_exit(BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains("sandvmm: snapshot written to"),
        "{}",
        run.stderr
    );
    run
}

/// Restores `dir`, types a line and `quit`, and checks the guest's answers.
fn restore_echo(dir: &Path, word: &str) -> Vm {
    let mut vm = Vm::start(&["--restore", dir.to_str().unwrap()]);
    vm.send(format!("{word}\n").as_bytes());
    vm.wait_for(&format!("echo: {word}\n"), BOOT);
    vm
}

fn finish_echo(mut vm: Vm) {
    vm.send(b"quit\n");
    let run = vm.wait_exit(BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    run.assert_guest_printed("SANDVMM-TEST: PASS echo");
    // The restored guest printed nothing of its boot again.
    assert!(!run.stdout.contains(ECHO_READY), "{}", run.stdout);
    assert!(!run.stderr.contains("sandbox:"), "{}", run.stderr);
}

#[test]
fn a_paused_echo_guest_answers_after_restore() {
    let dir = Scratch::new("snap-echo");
    let snap = dir.0.join("snap");
    let first = snapshot_echo(&snap, &[]);
    assert!(first.stdout.contains(ECHO_READY));
    let memory = std::fs::metadata(snap.join("memory")).unwrap().len();
    assert_eq!(memory, 128 << 20, "the memory file has the guest's size");
    let vm = restore_echo(&snap, "first");
    // Every thread of the restored VM is filtered.
    let modes = thread_seccomp_modes(vm.pid());
    assert!(
        modes.iter().all(|(_, mode)| mode == "2"),
        "unfiltered threads: {modes:?}"
    );
    finish_echo(vm);
}

#[test]
fn two_restores_of_one_snapshot_run_at_once() {
    let dir = Scratch::new("snap-twice");
    let snap = dir.0.join("snap");
    snapshot_echo(&snap, &[]);
    let a = restore_echo(&snap, "alpha");
    let b = restore_echo(&snap, "beta");
    assert!(!a.output().contains("beta") && !b.output().contains("alpha"));
    finish_echo(a);
    finish_echo(b);
    // A third restore of the same, untouched snapshot still works.
    finish_echo(restore_echo(&snap, "gamma"));
}

#[test]
fn snapshots_are_taken_and_restored_under_trap_without_a_violation() {
    let dir = Scratch::new("snap-trap");
    let snap = dir.0.join("snap");
    snapshot_echo(&snap, &["--sandbox", "trap"]);
    let mut vm = Vm::start(&["--restore", snap.to_str().unwrap(), "--sandbox", "trap"]);
    vm.send(b"trapped\nquit\n");
    let run = vm.wait_exit(BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    run.assert_guest_printed("echo: trapped");
    run.assert_guest_printed("SANDVMM-TEST: PASS echo");
}

#[test]
fn snapshot_continue_keeps_the_guest_running() {
    let dir = Scratch::new("snap-continue");
    let snap = dir.0.join("snap");
    let mut vm = start_echo(
        &[
            "--snapshot-to",
            snap.to_str().unwrap(),
            "--snapshot-on-serial",
            ECHO_READY,
            "--snapshot-continue",
        ],
        BOOT,
    );
    vm.send(b"still-here\nquit\n");
    let run = vm.wait_exit(BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    run.assert_guest_printed("echo: still-here");
    assert!(run.stderr.contains("snapshot written to"), "{}", run.stderr);
    finish_echo(restore_echo(&snap, "later"));
}

/// Two vCPUs, paused while the first is bringing up the second (INIT and SIPI through
/// the LAPIC): the restored guest finishes the bring-up, so both vCPUs' MP state and
/// LAPICs came back.
#[test]
fn an_smp_guest_paused_while_starting_its_second_vcpu_finishes_after_restore() {
    let dir = Scratch::new("snap-smp");
    let snap = dir.0.join("snap");
    let kernel = testkernel();
    let first = run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--cpus",
            "2",
            "--cmdline",
            "scenario=smp",
            "--snapshot-to",
            snap.to_str().unwrap(),
            "--snapshot-on-serial",
            "SANDVMM-TEST: cpu0 online",
        ],
        BOOT,
    );
    assert!(first.status.success(), "{}", first.stderr);
    let second = run(&["--restore", snap.to_str().unwrap()], BOOT);
    assert!(second.status.success(), "{}", second.stderr);
    // The pause comes well within a millisecond of the trigger, and the AP's start
    // takes the INIT-SIPI delays (1.2 ms, images/testkernel/smp.c) plus emulated
    // code: the AP nearly always comes up after the restore. Either way each line
    // comes exactly once, across the two runs.
    let both = first.stdout + &second.stdout;
    for line in ["SANDVMM-TEST: cpu1 online", "SANDVMM-TEST: PASS smp"] {
        assert_eq!(both.matches(line).count(), 1, "{line:?} in {both}");
    }
}

/// The flood is paused wherever SIGUSR1 finds it; the two runs' outputs together are
/// exactly one flood, and the guest's checksum over all of it matches.
#[test]
fn a_flood_paused_midway_finishes_after_restore_with_its_checksum() {
    const BYTES: usize = 256 * 1024;
    let dir = Scratch::new("snap-flood");
    let snap = dir.0.join("snap");
    let kernel = testkernel();
    let cmdline = format!("scenario=serial-flood bytes={BYTES}");
    let mut vm = Vm::start(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        &cmdline,
        "--snapshot-to",
        snap.to_str().unwrap(),
    ]);
    vm.wait_for("flood begin", BOOT);
    let deadline = std::time::Instant::now() + FLOOD;
    while vm.output().len() < BYTES / 4 {
        assert!(std::time::Instant::now() < deadline, "the flood stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(vm.pid() as i32, libc::SIGUSR1) };
    let first = vm.wait_exit(FLOOD);
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        !first.stdout.contains("flood end"),
        "the snapshot came too late"
    );
    let second = run(&["--restore", snap.to_str().unwrap()], FLOOD);
    assert!(second.status.success(), "{}", second.stderr);
    second.assert_guest_printed("SANDVMM-TEST: PASS serial-flood");
    let whole = [first.stdout.as_bytes(), second.stdout.as_bytes()].concat();
    common::flood::assert_complete(&whole, BYTES);
}

#[test]
fn sigusr1_without_snapshot_to_is_not_taken_as_a_request() {
    // Without --snapshot-to, SIGUSR1 keeps its default action: it ends the process, as
    // it did before snapshots existed, rather than being silently swallowed.
    let mut vm = start_echo(&[], BOOT);
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(vm.pid() as i32, libc::SIGUSR1) };
    vm.close_stdin();
    let run = vm.wait_exit(BOOT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(run.status.signal(), Some(libc::SIGUSR1));
}

/// An ordinary user (the kvm group, no root) takes and restores a snapshot, with the
/// jail on: the files are the user's, opened before the jail.
#[test]
fn an_ordinary_user_snapshots_and_restores() {
    if !is_root() {
        return skip("switching to the test user needs root");
    }
    let dir = Scratch::new("snap-user");
    let snap = dir.0.join("snap");
    let uid = uid_of(TEST_USER);
    std::os::unix::fs::chown(&dir.0, Some(uid), None).unwrap();
    let kernel = testkernel();
    let mut first = as_test_user(sandvmm());
    first.args([
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "scenario=echo",
        "--snapshot-to",
        snap.to_str().unwrap(),
        "--snapshot-on-serial",
        ECHO_READY,
    ]);
    let run = Vm::start_command(&mut first).wait_exit(BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(snap.join("state")).unwrap().uid(), uid);
    let mut second = as_test_user(sandvmm());
    second.args(["--restore", snap.to_str().unwrap()]);
    let mut vm = Vm::start_command(&mut second);
    vm.send(b"as-user\n");
    vm.wait_for("echo: as-user\n", BOOT);
    finish_echo(vm);
}

fn restore_error(dir: &Path, extra: &[&str]) -> Finished {
    let mut args = vec!["--restore", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, BOOT)
}

#[test]
fn bad_snapshots_and_mismatched_devices_get_one_line_errors() {
    let dir = Scratch::new("snap-bad");
    let snap = dir.0.join("snap");
    snapshot_echo(&snap, &[]);
    let state = std::fs::read(snap.join("state")).unwrap();
    let memory = snap.join("memory");

    // A device the snapshot does not have: refused before any tap is opened.
    restore_error(&snap, &["--net", "tap=sandvmm-none0"]).assert_one_line_error(
        1,
        "the snapshot has 0 net devices, the command line gives 1",
    );
    restore_error(&snap, &["--disk", "path=/nonexistent"])
        .assert_one_line_error(1, "the snapshot has 0 disks, the command line gives 1");

    // A truncated memory file.
    let full = std::fs::metadata(&memory).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&memory)
        .unwrap()
        .set_len(full / 2)
        .unwrap();
    restore_error(&snap, &[]).assert_one_line_error(1, "memory file has");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&memory)
        .unwrap()
        .set_len(full)
        .unwrap();

    // A corrupt state file: one byte changed, then cut short, then another version.
    let mut flipped = state.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x20;
    std::fs::write(snap.join("state"), &flipped).unwrap();
    restore_error(&snap, &[]).assert_one_line_error(1, "the snapshot state is corrupt");
    std::fs::write(snap.join("state"), &state[..state.len() / 2]).unwrap();
    restore_error(&snap, &[]).assert_one_line_error(1, "the snapshot state is corrupt");
    let text = String::from_utf8(state.clone()).unwrap();
    std::fs::write(
        snap.join("state"),
        text.replacen("\"version\":1", "\"version\":9", 1),
    )
    .unwrap();
    restore_error(&snap, &[]).assert_one_line_error(1, "format version 9");
    std::fs::remove_file(snap.join("state")).unwrap();
    restore_error(&snap, &[]).assert_one_line_error(1, "cannot read");

    // Flags that make no sense with --restore are refused by the command line.
    let kernel = testkernel();
    let clash = restore_error(&snap, &["--kernel", kernel.to_str().unwrap()]);
    assert_eq!(clash.status.code(), Some(2), "{}", clash.stderr);
}

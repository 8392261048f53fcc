//! Snapshot and restore of a booted Linux guest, the test runner's use: boot once to
//! the shell prompt with virtio-net and a disk, snapshot on the prompt text, then
//! restore three times, the last two at once, each under `--sandbox enforce` and the
//! jail, in its own network namespace with its own tap and its own copy of the disk.
//! Each restored shell must answer a typed command, ping the host over its tap, read
//! and write a file on its disk (which the host then finds in the image), and reboot
//! with status 0.

use sandvmm_harness as common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::netns::{NetNs, GUEST_IP, HOST_IP, TAP};
use common::workload::{linux_args, PROMPT};
use common::*;

const LINUX_BOOT: Duration = Duration::from_secs(300);
/// One shell command in a restored guest: a fork and exec (half a second on the
/// emulating hosts), an ext4 mount, a few pings.
const COMMAND: Duration = Duration::from_secs(120);

/// Boots the shell with net and `disk`, and snapshots it into `snap` at its prompt.
fn boot_and_snapshot(snap: &Path, disk: &Path) {
    let ns = NetNs::new(true);
    let mut cmd = ns.command(sandvmm());
    cmd.args(linux_args("vmlinux", "1")).args([
        "--cmdline",
        &format!("sandvmm.net={GUEST_IP}/24"),
        "--net",
        &format!("tap={TAP}"),
        "--disk",
        &format!("path={}", disk.display()),
        "--snapshot-to",
        snap.to_str().unwrap(),
        "--snapshot-on-serial",
        PROMPT,
    ]);
    let run = Vm::start_command(&mut cmd).wait_exit(LINUX_BOOT);
    assert!(run.status.success(), "{}", run.stderr);
    run.assert_guest_printed("SANDVMM-LINUX: eth0 up");
    run.assert_guest_printed(PROMPT);
    assert!(run.stderr.contains("snapshot written to"), "{}", run.stderr);
}

/// A restored guest in its own namespace, with its own disk copy.
struct Restored {
    vm: Vm,
    disk: PathBuf,
    name: String,
    _ns: NetNs,
}

fn restore(snap: &Path, dir: &Scratch, disk: &Path, name: &str) -> Restored {
    let copy = dir.0.join(format!("{name}.ext4"));
    std::fs::copy(disk, &copy).unwrap();
    let ns = NetNs::new(true);
    let mut cmd = ns.command(sandvmm());
    cmd.args([
        "--restore",
        snap.to_str().unwrap(),
        "--net",
        &format!("tap={TAP}"),
        "--disk",
        &format!("path={}", copy.display()),
        "--sandbox",
        "enforce",
    ]);
    let vm = Vm::start_command(&mut cmd);
    Restored {
        vm,
        disk: copy,
        name: name.into(),
        _ns: ns,
    }
}

impl Restored {
    /// Types `command` and waits for `answer` on a line of its own.
    fn run(&mut self, command: &str, answer: &str) {
        self.vm.send(format!("{command}\n").as_bytes());
        self.vm.wait_for(&format!("\n{answer}\r\n"), COMMAND);
    }

    /// The whole session, up to the reboot.
    fn session(&mut self) {
        // The shell answers at once: nothing of the boot is printed again.
        self.run("echo restored-$((6*7))", "restored-42");
        assert!(!self.vm.output().contains("Linux version"));
        let threads = thread_seccomp_modes(self.vm.pid());
        assert!(
            threads.iter().all(|(_, mode)| mode == "2"),
            "{}: {threads:?}",
            self.name
        );
        self.run(
            &format!("ping -c 2 -W 10 {HOST_IP} >/dev/null && echo ping-ok"),
            "ping-ok",
        );
        self.run(
            "mkdir -p /d && mount -t ext4 /dev/vda /d && test -x /d/bin/sandvmm-fill && echo disk-read-ok",
            "disk-read-ok",
        );
        let name = &self.name;
        self.run(
            &format!("echo written-by-{name} > /d/note && sync && umount /d && echo disk-write-ok"),
            "disk-write-ok",
        );
    }

    fn reboot(mut self) {
        self.vm.send(b"reboot\n");
        let run = self.vm.wait_exit(LINUX_BOOT);
        assert!(run.status.success(), "{}: {}", self.name, run.stderr);
        assert!(!run.stderr.contains("sandbox:"), "{}", run.stderr);
        let image = std::fs::read(&self.disk).unwrap();
        let note = format!("written-by-{}\n", self.name);
        assert!(
            common::flood::find(&image, note.as_bytes()).is_some(),
            "{}: the guest's file is not in its disk image",
            self.name
        );
    }
}

#[test]
fn a_booted_shell_is_restored_three_times_two_at_once() {
    if !is_root() {
        return skip("network namespaces and taps need root");
    }
    let dir = Scratch::new("linux-snapshot");
    let snap = dir.0.join("snap");
    let disk = dir.0.join("data.ext4");
    std::fs::copy(image("rootfs.ext4"), &disk).unwrap();
    boot_and_snapshot(&snap, &disk);

    // Another MAC than the snapshot's is a one-line error, after nothing has run.
    let ns = NetNs::new(true);
    let mut cmd = ns.command(sandvmm());
    cmd.args(["--restore", snap.to_str().unwrap()])
        .args(["--net", &format!("tap={TAP},mac=06:00:00:00:00:09")])
        .args(["--disk", &format!("path={}", disk.display())]);
    Vm::start_command(&mut cmd)
        .wait_exit(LINUX_BOOT)
        .assert_one_line_error(1, "does not match the snapshot's net0");

    let mut first = restore(&snap, &dir, &disk, "first");
    first.session();
    first.reboot();

    let mut second = restore(&snap, &dir, &disk, "second");
    let mut third = restore(&snap, &dir, &disk, "third");
    second.session();
    third.session();
    second.reboot();
    third.reboot();
}

//! Real Linux guest workloads under the sandbox: the kernel and busybox userspace built
//! by images/linux/build.sh, with Linux's own virtio_net and 8250 drivers.
//!
//! - the interactive shell (`sandvmm.mode=shell`): type a command, read its output,
//!   `reboot` ends sandvmm with status 0; from the vmlinux and from the bzImage;
//! - the workload (`sandvmm.mode=test`, images/linux/rootfs/etc/sandvmm/workload) with
//!   2 vCPUs and virtio-net on a tap in the test's own network namespace: user-space
//!   loops pinned to each CPU, 256 KiB on the console, pings both ways, 1 MiB over TCP
//!   each way (the server is tests/harness/src/http.rs). It runs under `--sandbox enforce`
//!   (every thread `Seccomp: 2`), `trap` (no violation reported) and `off` (the
//!   control), and the host checks what it can see: every console byte and both
//!   checksums.
//!
//! On the emulating test hosts Linux reaches its shell in about 15 s and the workload
//! takes about a minute (the console alone runs at about 7 KiB/s, its driver being
//! emulated), so the timeouts are generous; nothing here is timed.

use sandvmm_harness as common;

use std::net::TcpListener;
use std::time::Duration;

use common::http::{self, HttpServer, Transfer};
use common::netns::{NetNs, GUEST_IP, HOST_IP, TAP};
use common::workload::{self, linux_args, PROMPT};
use common::*;

const LINUX_BOOT: Duration = Duration::from_secs(300);
const WORKLOAD: Duration = Duration::from_secs(900);
/// The disk steps write and read 16 MiB through the guest's page cache, whose kernel
/// code is emulated on the test hosts: several minutes there.
const DISK_WORKLOAD: Duration = Duration::from_secs(900);
/// What the workload writes to the console between its serial markers.
const SERIAL_BYTES: usize = 256 * 1024;

/// A copy of the root disk image in `dir` (the guest writes to it).
fn root_disk(dir: &Scratch) -> std::path::PathBuf {
    let path = dir.0.join("rootfs.ext4");
    std::fs::copy(image("rootfs.ext4"), &path).unwrap();
    path
}

/// The arguments that boot the vmlinux from the root disk `disk`, with no initrd;
/// `cmdline` is added to the kernel command line.
fn disk_args(disk: &std::path::Path, cpus: &str, cmdline: &str) -> Vec<String> {
    let kernel = image("vmlinux");
    vec![
        "--kernel".into(),
        kernel.to_str().unwrap().into(),
        "--disk".into(),
        format!("path={},id=root", disk.display()),
        "--cpus".into(),
        cpus.into(),
        "--cmdline".into(),
        format!("root=/dev/vda rw {cmdline}"),
    ]
}

/// Boots `kernel` to the shell prompt, types `reboot` and checks the VM ended cleanly.
fn shell_session(kernel: &str, before_reboot: impl FnOnce(&mut Vm)) {
    shell_session_with(linux_args(kernel, "1"), before_reboot)
}

fn shell_session_with(args: Vec<String>, before_reboot: impl FnOnce(&mut Vm)) {
    let mut vm = Vm::start(&args);
    vm.wait_for(PROMPT, LINUX_BOOT);
    before_reboot(&mut vm);
    vm.send(b"reboot\n");
    let run = vm.wait_exit(LINUX_BOOT);
    run.assert_guest_printed("SANDVMM-LINUX: init ok mode=shell");
    assert!(
        run.stderr.contains("the guest reset the machine"),
        "{}",
        run.stderr
    );
}

#[test]
fn shell_runs_a_command_and_reboot_ends_the_vm() {
    shell_session("vmlinux", |vm| {
        vm.send(b"echo hello-from-guest\n");
        // The output line, not the terminal's echo of the typed one.
        vm.wait_for("\nhello-from-guest\r\n", LINUX_BOOT);
    });
}

#[test]
fn bzimage_boots_to_the_shell() {
    shell_session("bzImage", |_| {});
}

#[test]
fn boots_from_an_ext4_disk_to_the_shell_with_no_initrd() {
    let dir = Scratch::new("linux-disk-shell");
    let disk = root_disk(&dir);
    shell_session_with(disk_args(&disk, "1", ""), |vm| {
        // The root is the disk, as the kernel mounted it.
        vm.send(b"cat /proc/mounts\n");
        vm.wait_for("/dev/root / ext4 rw", LINUX_BOOT);
        vm.send(b"echo from-the-disk > /hello && cat /hello\n");
        vm.wait_for("\nfrom-the-disk\r\n", LINUX_BOOT);
    });
}

/// The value of `key=` in a `SANDVMM-LINUX: PASS NAME key=value ...` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    workload::field(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The workload's `PASS NAME` line.
fn passed<'a>(out: &'a str, name: &str) -> &'a str {
    workload::pass_line(out, name)
        .unwrap_or_else(|| panic!("no \"SANDVMM-LINUX: PASS {name}\" line in:\n{out}"))
}

/// Runs the workload under `--sandbox MODE` and checks every step; `user` runs sandvmm
/// as an ordinary user on a tap made for that user.
fn workload(mode: &str, user: bool) {
    let ns = NetNs::new(false);
    if user {
        ns.add_tap_for(TEST_USER);
    } else {
        ns.add_tap();
    }
    let listener = ns.enter(|| TcpListener::bind((HOST_IP, 0)).expect("bind in namespace"));
    let server = HttpServer::start(listener);
    let mut cmd = if user {
        let mut cmd = ns.command("setpriv");
        cmd.args([
            &format!("--reuid={TEST_USER}"),
            &format!("--regid={TEST_USER}"),
            "--init-groups",
            "--",
            sandvmm(),
        ]);
        cmd
    } else {
        ns.command(sandvmm())
    };
    cmd.args(linux_args("vmlinux", "2"))
        .args(["--cmdline", &workload::workload_cmdline(server.port)])
        .args(["--net", &format!("tap={TAP}"), "--sandbox", mode]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.wait_for("SANDVMM-LINUX: eth0 up", LINUX_BOOT);

    // While the guest runs: every thread filtered, or none for the control.
    let threads = thread_seccomp_modes(vm.pid());
    let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sandvmm", "vcpu0", "vcpu1"]);
    let want = if mode == "off" { "0" } else { "2" };
    for (name, seccomp) in &threads {
        assert_eq!(seccomp, want, "Seccomp: of thread {name} under {mode}");
    }
    // And jailed: the jail user (root's launch) or the ordinary user, no capability.
    let status = std::fs::read_to_string(format!("/proc/{}/status", vm.pid())).unwrap();
    let uid = uid_of(if user { TEST_USER } else { JAIL_USER });
    assert!(
        status.contains(&format!("\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"))
            && status.contains("\nCapEff:\t0000000000000000\n")
            && status.contains("\nNoNewPrivs:\t1\n"),
        "{status}"
    );

    let ping = ns
        .command("ping")
        .args(["-c", "3", "-W", "10", GUEST_IP])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success(),
        "host ping of the guest failed:\n{text}"
    );

    let run = vm.wait_exit(WORKLOAD);
    let transfers = server.transfers();
    check_workload(mode, &run, &transfers);
}

/// Boots from a copy of the root disk under `--sandbox MODE` and runs the workload's
/// disk steps; then the host reads the guest's file out of the image itself.
/// What `sandvmm-fill MIB SEED` writes in the guest (images/linux/tools/sandvmm-fill.c):
/// word i is splitmix64(SEED * 2^32 + i), little-endian.
fn fill(mib: usize, seed: u64) -> Vec<u8> {
    let mix = |z: u64| {
        let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..(mib << 17) as u64)
        .flat_map(|i| mix((seed << 32) + i).to_le_bytes())
        .collect()
}

fn disk_workload(mode: &str) {
    let dir = Scratch::new(&format!("linux-disk-{mode}"));
    let disk = root_disk(&dir);
    let mut args = disk_args(&disk, "2", "sandvmm.mode=test sandvmm.steps=disk,disk-dd");
    args.extend(["--sandbox".to_string(), mode.to_string()]);
    let mut vm = Vm::start(&args);
    vm.wait_for("SANDVMM-LINUX: init ok mode=test", LINUX_BOOT);
    let want = if mode == "off" { "0" } else { "2" };
    for (name, seccomp) in thread_seccomp_modes(vm.pid()) {
        assert_eq!(seccomp, want, "Seccomp: of thread {name} under {mode}");
    }
    let run = vm.wait_exit(DISK_WORKLOAD);
    let out = run.stdout.replace('\r', "");
    run.assert_guest_printed("SANDVMM-LINUX: DONE passed=2 failed=0");
    assert!(!run.stderr.contains("sandbox: blocked"), "{}", run.stderr);
    let line = passed(&out, "disk");
    assert_eq!(field(line, "bytes"), "16777216");
    // The file the guest wrote, read out of the image by the host's own tools.
    let dump = std::process::Command::new("debugfs")
        .args(["-R", "cat /sandvmm-disk-test.bin"])
        .arg(&disk)
        .output()
        .expect("debugfs (e2fsprogs)");
    assert_eq!(dump.stdout.len(), 16 << 20, "the file in the image");
    assert!(
        dump.stdout == fill(16, 3),
        "the file in the image is not what sandvmm-fill 16 3 makes"
    );
    assert_eq!(http::sha256_hex(&dump.stdout), field(line, "sha256"));
    let dd = passed(&out, "disk-dd");
    eprintln!(
        "linux disk under --sandbox {mode}: 16 MiB file written {} KiB/s, read {} KiB/s; \
         dd write {} KiB/s, read {} KiB/s (guest side)",
        field(line, "write_KiB/s"),
        field(line, "read_KiB/s"),
        field(dd, "write_KiB/s"),
        field(dd, "read_KiB/s"),
    );
}

fn check_workload(mode: &str, run: &Finished, transfers: &[Transfer]) {
    let out = run.stdout.replace('\r', "");
    assert!(
        !out.contains("SANDVMM-LINUX: FAIL"),
        "a workload step failed:\n{}",
        out.lines()
            .filter(|l| l.starts_with("SANDVMM-LINUX:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    run.assert_guest_printed(&format!(
        "SANDVMM-LINUX: DONE passed={} failed=0",
        workload::STEPS
    ));
    assert!(
        !run.stderr.contains("sandbox: blocked"),
        "the sandbox reported a violation under {mode}:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("the guest reset the machine"));

    assert_eq!(field(passed(&out, "smp"), "cpus"), "2");
    assert_eq!(field(passed(&out, "smp"), "loops_ran_on"), "0,1");

    // Every console byte arrived, in order.
    let begin = out
        .lines()
        .find(|l| l.starts_with("SANDVMM-LINUX: serial begin "))
        .expect("serial begin marker");
    let start = out.find(begin).unwrap() + begin.len() + 1;
    let end = start
        + out[start..]
            .find("SANDVMM-LINUX: serial end")
            .expect("serial end marker");
    let payload = &out.as_bytes()[start..end];
    assert_eq!(payload.len(), SERIAL_BYTES, "console bytes received");
    assert_eq!(http::sha256_hex(payload), field(begin, "sha256"));

    let download = passed(&out, "tcp-download");
    assert_eq!(field(download, "sha256"), http::sha256_hex(&http::blob()));
    let get = transfers
        .iter()
        .find(|t| t.path == "/blob")
        .expect("the guest never fetched /blob");
    assert_eq!(get.bytes, http::BLOB_LEN);
    let upload = passed(&out, "tcp-upload");
    let post = transfers
        .iter()
        .find(|t| t.method == "POST" && t.path == "/upload")
        .expect("the guest never posted /upload");
    assert_eq!(post.bytes, http::BLOB_LEN);
    assert_eq!(post.sha256, field(upload, "sha256"));

    eprintln!(
        "linux workload under --sandbox {mode}: TCP host->guest {:.0} KiB/s, \
         guest->host {:.0} KiB/s (host side); console {} KiB/s (guest side)",
        get.kib_per_s(),
        post.kib_per_s(),
        field(passed(&out, "serial"), "KiB/s"),
    );
}

#[test]
fn workload_under_enforce() {
    workload("enforce", false);
}

#[test]
fn workload_under_enforce_started_by_an_ordinary_user() {
    workload("enforce", true);
}

#[test]
fn a_16_mib_file_written_on_the_ext4_root_disk_under_enforce_is_in_the_image() {
    disk_workload("enforce");
}

#[test]
fn workload_under_trap_reports_no_violation() {
    workload("trap", false);
}

#[test]
fn workload_without_sandbox_control() {
    workload("off", false);
}

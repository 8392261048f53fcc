//! Real Linux guest workloads under the sandbox: the kernel and busybox userspace built
//! by images/linux/build.sh, with Linux's own virtio_net and 8250 drivers.
//!
//! - the interactive shell (`sandvmm.mode=shell`): type a command, read its output,
//!   `reboot` ends sandvmm with status 0; from the vmlinux and from the bzImage;
//! - the workload (`sandvmm.mode=test`, images/linux/rootfs/etc/sandvmm/workload) with
//!   2 vCPUs and virtio-net on a tap in the test's own network namespace: user-space
//!   loops pinned to each CPU, 256 KiB on the console, pings both ways, 1 MiB over TCP
//!   each way (the server is tests/common/http.rs). It runs under `--sandbox enforce`
//!   (every thread `Seccomp: 2`), `trap` (no violation reported) and `off` (the
//!   control), and the host checks what it can see: every console byte and both
//!   checksums.
//!
//! On the emulating test hosts Linux reaches its shell in about 15 s and the workload
//! takes about a minute (the console alone runs at about 7 KiB/s, its driver being
//! emulated), so the timeouts are generous; nothing here is timed.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::http::{self, HttpServer, Transfer};
use common::netns::{NetNs, GUEST_IP, HOST_IP, TAP};
use common::workload::{self, PROMPT};
use common::*;

const LINUX_BOOT: Duration = Duration::from_secs(300);
const WORKLOAD: Duration = Duration::from_secs(900);
/// What the workload writes to the console between its serial markers.
const SERIAL_BYTES: usize = 256 * 1024;

fn linux_args(kernel: &str, cpus: &str) -> Vec<String> {
    let kernel = image(kernel);
    let initrd = image("initramfs.cpio");
    vec![
        "--kernel".into(),
        kernel.to_str().unwrap().into(),
        "--initrd".into(),
        initrd.to_str().unwrap().into(),
        "--cpus".into(),
        cpus.into(),
    ]
}

/// Boots `kernel` to the shell prompt, types `reboot` and checks the VM ended cleanly.
fn shell_session(kernel: &str, before_reboot: impl FnOnce(&mut Vm)) {
    let mut vm = Vm::start(&linux_args(kernel, "1"));
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
        .args(["--net", &format!("tap={TAP}"), "--sandbox", mode])
        .args(["--cmdline", &workload::workload_cmdline(server.port)]);
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
    run.assert_guest_printed(workload::ALL_PASSED);
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
fn workload_under_trap_reports_no_violation() {
    workload("trap", false);
}

#[test]
fn workload_without_sandbox_control() {
    workload("off", false);
}

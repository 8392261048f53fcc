//! What a run tells tooling: trap-mode violations as JSON in the `--sandbox-report`
//! file, log-mode violations in the kernel log, and sandvmm's own messages through
//! `--log-file` and `--log-level`, rate-limited when a guest can cause them.

use sandvmm_harness as common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;
use sha2::Digest;

const BOOT: Duration = Duration::from_secs(60);
const CHAOS: Duration = Duration::from_secs(300);

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Boots `escape=NAME` on `thread` with `flags`.
fn escape(name: &str, thread: &str, flags: &[&str]) -> (Finished, u32) {
    let kernel = testkernel();
    let cmdline = format!("scenario=escape escape={name} thread={thread} arg=0");
    let mut cmd = Command::new(sandvmm());
    cmd.args(["--kernel", kernel.to_str().unwrap(), "--demo-escape"])
        .args(["--cmdline", &cmdline])
        .args(flags);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    let pid = vm.pid();
    (vm.wait_exit(BOOT), pid)
}

/// The JSON objects in a report file, one per line.
fn report_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn a_trapped_call_is_reported_as_json_with_the_policy_identity() {
    let dir = Scratch::new("report");
    let builtin = std::fs::read(root().join("sandbox/policy/x86_64.toml")).unwrap();
    let policy = dir.file("policy.toml", &builtin);
    for (thread, name, policy_flag, file) in [
        ("vcpu", "vcpu0", None, Value::from("builtin")),
        (
            "vmm",
            "sandvmm",
            Some(policy.to_str().unwrap()),
            Value::from(policy.display().to_string()),
        ),
    ] {
        let report = dir.file(&format!("report-{thread}.json"), b"stale");
        let mut flags = vec!["--sandbox", "trap"];
        flags.extend(["--sandbox-report", report.to_str().unwrap()]);
        if let Some(p) = policy_flag {
            flags.extend(["--sandbox-policy", p]);
        }
        let (run, _) = escape("execve", thread, &flags);
        assert_eq!(run.status.code(), Some(100), "{}", run.stderr);
        let lines = report_lines(&report);
        assert_eq!(lines.len(), 1, "one object per blocked call: {lines:?}");
        let r = &lines[0];
        assert_eq!(r["syscall"], "execve", "{r}");
        assert_eq!(r["nr"], 59);
        assert_eq!(r["abi"], "x86_64");
        assert_eq!(r["thread"], name);
        assert_eq!(r["args"].as_array().map(Vec::len), Some(6));
        assert_eq!(r["mode"], "trap");
        assert_eq!(r["policy"]["file"], file);
        assert_eq!(r["policy"]["sha256"], sha256_hex(&builtin).as_str());
        assert_eq!(r["policy"]["profile"], "default");
        // The stderr line says the same.
        assert!(run
            .stderr
            .contains(&format!("blocked syscall execve (59) in thread {name}")));
    }
}

#[test]
fn a_clean_run_leaves_an_empty_report_and_a_bad_path_is_one_line() {
    let dir = Scratch::new("report-clean");
    let report = dir.file("report.json", b"stale");
    let run = boot_scenario(
        "hello",
        "",
        &[
            "--sandbox",
            "trap",
            "--sandbox-report",
            report.to_str().unwrap(),
        ],
        BOOT,
    );
    run.assert_guest_printed("SANDVMM-TEST: PASS hello");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "");
    let bad = dir.0.join("no/such/dir/report.json");
    let run = boot_scenario(
        "hello",
        "",
        &["--sandbox-report", bad.to_str().unwrap()],
        BOOT,
    );
    run.assert_one_line_error(1, "cannot open the sandbox report file");
}

#[test]
fn log_mode_puts_the_call_in_the_kernel_log() {
    let (run, pid) = escape("execve", "vcpu", &["--sandbox", "log"]);
    // Allowed by the filter, then stopped by the jail's empty root.
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("sandbox:"), "{}", run.stderr);
    let Some(records) = common::kmsg::seccomp_log_records(pid) else {
        return skip("the kernel log (dmesg) is not readable");
    };
    assert!(
        records
            .iter()
            .any(|r| r.contains("comm=\"vcpu0\"") && r.contains(" syscall=59 ")),
        "no record of execve for pid {pid}: {records:?}"
    );
}

/// The warning lines of a log, by message (without the repeat count).
fn warnings_by_message(log: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let message = line.split(" (").next().unwrap_or(line).to_string();
        *counts.entry(message).or_default() += 1;
    }
    counts
}

#[test]
fn a_hostile_guests_warnings_go_to_the_log_file_rate_limited() {
    let dir = Scratch::new("log-file");
    let log = dir.0.join("sandvmm.log");
    // Chaos reaches the virtio-mmio registers and queues only with a device behind them.
    let disk = format!("path={}", zero_image(&dir, "disk.img", 1 << 20).display());
    let chaos = |extra: &str, flags: &[&str]| {
        let mut all = vec!["--disk", disk.as_str()];
        all.extend_from_slice(flags);
        boot_scenario("chaos", extra, &all, CHAOS)
    };
    let run = chaos("seed=3", &["--log-file", log.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty(), "chaos caused no warning at all");
    for line in text.lines() {
        assert!(
            line.starts_with("sandvmm: warning: ") || line.starts_with("sandvmm: error: "),
            "{line:?}"
        );
    }
    // Each kind of device warning: the first, then the 10th, 100th, ... (a handful,
    // however hostile); the same per crate for what the rust-vmm crates log.
    for (message, n) in warnings_by_message(&text) {
        assert!(n <= 8, "{n} lines of {message:?}");
    }
    assert!(text.lines().count() <= 100, "{text}");
    let quiet = dir.0.join("quiet.log");
    let run = chaos(
        "seed=3 iters=5000",
        &[
            "--log-file",
            quiet.to_str().unwrap(),
            "--log-level",
            "error",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&quiet).unwrap(), "");
}

#[test]
fn an_unwritable_log_file_is_one_line() {
    let dir = Scratch::new("log-bad");
    let bad = dir.0.join("missing/sandvmm.log");
    let run = boot_scenario("hello", "", &["--log-file", bad.to_str().unwrap()], BOOT);
    run.assert_one_line_error(1, "cannot open the log file");
}

/// `sandvmm sandbox profile -- RUN-ARGS`: the frequency table on stdout, the calls
/// outside the run's policy on a line of their own.
fn profile(run_args: &[&str]) -> (String, String) {
    let kernel = testkernel();
    let out = Command::new(sandvmm())
        .args([
            "sandbox",
            "profile",
            "--",
            "--kernel",
            kernel.to_str().unwrap(),
        ])
        .args(run_args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn profile_lists_the_calls_outside_the_policy_apart_from_the_table() {
    let (table, stderr) = profile(&["--cmdline", "scenario=hello"]);
    assert!(
        table.contains("[vcpu]") && table.contains("ioctl = "),
        "{table}"
    );
    assert!(
        stderr.contains("sandvmm: outside the policy: none\n"),
        "{stderr}"
    );
    // The same workload against a policy whose vCPU threads may not write: serial
    // output is then outside it.
    let dir = Scratch::new("profile-outside");
    let builtin = std::fs::read_to_string(root().join("sandbox/policy/x86_64.toml")).unwrap();
    let start = builtin.find("[[vcpu]]\nsyscall = \"write\"").unwrap();
    let end = start + builtin[start..].find("\n\n").unwrap();
    let policy = dir.file(
        "policy.toml",
        (builtin[..start].to_string() + &builtin[end..]).as_bytes(),
    );
    let (table, stderr) = profile(&[
        "--cmdline",
        "scenario=hello",
        "--sandbox-policy",
        policy.to_str().unwrap(),
    ]);
    assert!(table.contains("[vcpu]"), "{table}");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("sandvmm: outside the policy: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("vcpu: write ("), "{line}");
    assert!(!line.contains("vmm:"), "{line}");
}

//! Snapshot and restore (issue 16): what a snapshot costs to take, and how soon a
//! restored guest runs and answers, next to a cold boot of the same guest.
//!
//! The guest is the test kernel's `echo` scenario, with the sandbox enforcing and the
//! jail on. First it is snapshotted (`--runs` times, into one directory under
//! `$TMPDIR`) when it prints `echo ready`, and sandvmm's trace line gives the time to
//! park the vCPUs and the time to write the state and memory files. Then, in
//! interleaved rounds (at least 21), a cold boot and a restore of that snapshot:
//!
//! ```text
//! cold boot  exec ── first KVM_RUN ── echo ready ┄ line sent ── answer ┄ RSS ┄ quit
//! restore    exec ── first KVM_RUN ───────────────────────────── answer ┄ RSS ┄ quit
//!             └ line `x` typed here
//! ```
//!
//! - Times are CLOCK_MONOTONIC: exec just before spawning, the first `KVM_RUN` from
//!   sandvmm's `SANDVMM_TRACE_BOOT=1` trace, a marker on stdout when the read that
//!   brought its first byte returned (a thread reads stdout all the time).
//! - The restore's line is written to its stdin right after the spawn. It waits in the
//!   pipe until the restored VM's event loop takes it, so exec → answer is what a user
//!   who typed ahead sees: start-up, the input's way in, the guest's echo and the
//!   answer's way out, with no reaction time of the bench's in it. The cold boot's
//!   line is sent when `echo ready` arrives (the test kernel resets its UART's FIFOs
//!   during boot), so its echo row is the running guest's own answer time.
//! - RSS (`/proc/PID/status`, and the guest mapping's from smaps) is read once the
//!   answer has arrived, before `quit`. A restored guest's memory is a `MAP_PRIVATE`
//!   mapping of the memory file: the pages it reads count in RssFile, the pages it
//!   writes become RssAnon.
//! - The memory file was just written, so restores read it from the page cache.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use vmm::vcpu::monotonic_ns;

use crate::report::Report;
use crate::startup::{guest_rss_kb, status_kb};
use crate::watched::Watched;
use crate::whole_run::trace_ns;
use crate::Setup;

/// Rounds at least, as in the whole-run part: start-up is a few milliseconds.
const MIN_ROUNDS: usize = 21;
const GROUP: &str = "restore";
const ECHO_READY: &str = "SANDVMM-TEST: echo ready";
const ANSWER: &str = "echo: x\n";
const PASS: &str = "SANDVMM-TEST: PASS echo";
/// Every run: the default sandbox and the jail, spelled out.
const CONFINED: [&str; 4] = ["--sandbox", "enforce", "--jail", "on"];
const SNAPSHOT: &str = "snapshot";
const RESTORE: &str = "restore";
const COLD: &str = "cold boot";

/// The rows, in the order they are reported (each for the snapshot, or for either
/// variant or both, the restore's first), with their units.
const ROWS: [(&str, &str); 14] = [
    ("snapshot: parking the vCPUs", "ms"),
    ("snapshot: writing state and memory", "ms"),
    ("snapshot: memory file's blocks on disk", "MiB"),
    ("exec -> first KVM_RUN", "ms"),
    ("exec -> answer to a line typed at exec", "ms"),
    ("first KVM_RUN -> that answer", "ms"),
    ("exec -> echo ready", "ms"),
    ("line sent at echo ready -> answer", "ms"),
    ("compiling the filters", "ms"),
    ("putting the jail on", "ms"),
    ("VmRSS once answered", "MiB"),
    ("RssAnon", "MiB"),
    ("RssFile", "MiB"),
    ("guest memory resident", "MiB"),
];

/// Samples by variant and row.
#[derive(Default)]
struct Rows(Vec<(&'static str, &'static str, Vec<f64>)>);

impl Rows {
    fn push(&mut self, variant: &'static str, name: &'static str, x: f64) {
        debug_assert!(ROWS.iter().any(|(n, _)| *n == name), "{name}");
        match self
            .0
            .iter_mut()
            .find(|(v, n, _)| *v == variant && *n == name)
        {
            Some((_, _, values)) => values.push(x),
            None => self.0.push((variant, name, vec![x])),
        }
    }

    fn report(&self, report: &mut Report) {
        for (name, unit) in ROWS {
            for variant in [SNAPSHOT, RESTORE, COLD] {
                let row = self.0.iter().find(|(v, n, _)| *v == variant && *n == name);
                let Some((_, _, values)) = row else { continue };
                match variant {
                    SNAPSHOT => report.add(GROUP, name, unit, values),
                    _ => report.add(GROUP, format!("{name} ({variant})"), unit, values),
                }
            }
        }
    }

    /// The steps of the start-up trace in `stderr` (filters, jail) in ms, and `rss`
    /// (MiB).
    fn start_up_and_rss(&mut self, variant: &'static str, stderr: &str, rss: [f64; 4]) {
        for (name, key) in [
            ("compiling the filters", "filters compiled in "),
            ("putting the jail on", "jail on in "),
        ] {
            if let Ok(us) = trace_ns(stderr, key) {
                self.push(variant, name, us as f64 / 1000.0);
            }
        }
        let names = [
            "VmRSS once answered",
            "RssAnon",
            "RssFile",
            "guest memory resident",
        ];
        for (name, mib) in names.into_iter().zip(rss) {
            self.push(variant, name, mib);
        }
    }
}

/// Starts sandvmm with `args`, confined and traced; returns exec's time too.
fn start(setup: &Setup, args: &[&str], markers: &[&'static str]) -> (u128, Watched) {
    let mut cmd = Command::new(&setup.sandvmm);
    cmd.args(args).args(CONFINED).env("SANDVMM_TRACE_BOOT", "1");
    Watched::start(&mut cmd, markers)
}

/// VmRSS, RssAnon, RssFile and the guest mapping's RSS of process `pid`, in MiB.
fn rss(pid: u32) -> Result<[f64; 4], String> {
    let mib = |kb: u64| kb as f64 / 1024.0;
    Ok([
        mib(status_kb(pid, "VmRSS:")?),
        mib(status_kb(pid, "RssAnon:")?),
        mib(status_kb(pid, "RssFile:")?),
        mib(guest_rss_kb(pid)?),
    ])
}

fn ms(from: u128, to: u128) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

/// Boots the echo guest and snapshots it at `echo ready` into `dir`.
fn snapshot(setup: &Setup, dir: &str, rows: &mut Rows) -> Result<(), String> {
    let kernel = setup.image("testkernel.elf");
    let args = [
        "--kernel",
        &kernel,
        "--cmdline",
        "scenario=echo",
        "--snapshot-to",
        dir,
        "--snapshot-on-serial",
        ECHO_READY,
    ];
    // stdin stays open until the exit: the guest is paused waiting for input.
    let (_, vm) = start(setup, &args, &[]);
    let (_, stderr) = vm.finish()?;
    if !stderr.contains("sandvmm: snapshot written to") {
        return Err(format!("no snapshot written:\n{stderr}"));
    }
    let paused = trace_ns(&stderr, "vCPUs paused in ")?;
    let written = trace_ns(&stderr, "state and memory written in ")?;
    rows.push(SNAPSHOT, "snapshot: parking the vCPUs", paused as f64 / 1e3);
    rows.push(
        SNAPSHOT,
        "snapshot: writing state and memory",
        written as f64 / 1e3,
    );
    let memory = std::fs::metadata(PathBuf::from(dir).join("memory")).map_err(|e| e.to_string())?;
    let on_disk = (memory.blocks() * 512) as f64 / f64::from(1 << 20);
    rows.push(SNAPSHOT, "snapshot: memory file's blocks on disk", on_disk);
    Ok(())
}

/// A cold boot to `echo ready`, then one line and its answer.
fn cold(setup: &Setup, rows: &mut Rows) -> Result<(), String> {
    let kernel = setup.image("testkernel.elf");
    let args = ["--kernel", &kernel, "--cmdline", "scenario=echo"];
    let (exec, mut vm) = start(setup, &args, &[ECHO_READY, ANSWER, PASS]);
    let ready = vm.next_mark()?;
    let sent = monotonic_ns();
    vm.send(b"x\n")?;
    let answer = vm.next_mark()?;
    let memory = rss(vm.pid())?;
    vm.send(b"quit\n")?;
    vm.next_mark()?;
    let (_, stderr) = vm.finish()?;
    let first = trace_ns(&stderr, "first KVM_RUN at monotonic_ns=")?;
    rows.push(COLD, "exec -> first KVM_RUN", ms(exec, first));
    rows.push(COLD, "exec -> echo ready", ms(exec, ready));
    rows.push(COLD, "line sent at echo ready -> answer", ms(sent, answer));
    rows.start_up_and_rss(COLD, &stderr, memory);
    Ok(())
}

/// A restore of `dir` with a line typed at exec, to its answer.
fn restored(setup: &Setup, dir: &str, rows: &mut Rows) -> Result<(), String> {
    let (exec, mut vm) = start(setup, &["--restore", dir], &[ANSWER, PASS]);
    vm.send(b"x\n")?;
    let answer = vm.next_mark()?;
    let memory = rss(vm.pid())?;
    vm.send(b"quit\n")?;
    vm.next_mark()?;
    let (stdout, stderr) = vm.finish()?;
    if stdout.contains(ECHO_READY) {
        return Err(format!("the restored guest booted afresh:\n{stdout}"));
    }
    let first = trace_ns(&stderr, "first KVM_RUN at monotonic_ns=")?;
    rows.push(RESTORE, "exec -> first KVM_RUN", ms(exec, first));
    rows.push(
        RESTORE,
        "exec -> answer to a line typed at exec",
        ms(exec, answer),
    );
    rows.push(RESTORE, "first KVM_RUN -> that answer", ms(first, answer));
    rows.start_up_and_rss(RESTORE, &stderr, memory);
    Ok(())
}

/// The snapshot directory, removed when the part ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The restore part: the snapshots, then the interleaved rounds.
pub fn restore(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("sandvmm-bench-restore-{}", std::process::id())));
    let dir = scratch.0.display().to_string();
    let mut rows = Rows::default();
    for _ in 0..setup.runs {
        snapshot(setup, &dir, &mut rows)?;
    }
    for _ in 0..setup.runs.max(MIN_ROUNDS) {
        cold(setup, &mut rows)?;
        restored(setup, &dir, &mut rows)?;
    }
    rows.report(report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_the_variants_restore_first() {
        let mut rows = Rows::default();
        rows.push(COLD, "exec -> first KVM_RUN", 2.0);
        rows.push(RESTORE, "exec -> first KVM_RUN", 1.0);
        rows.push(SNAPSHOT, "snapshot: parking the vCPUs", 0.5);
        let mut report = Report::default();
        rows.report(&mut report);
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        let names: Vec<&str> = (0..3).map(|i| json[i]["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "snapshot: parking the vCPUs",
                "exec -> first KVM_RUN (restore)",
                "exec -> first KVM_RUN (cold boot)"
            ]
        );
    }
}

//! Start-up time and memory of the VMM itself.
//!
//! Start-up: from just before `exec` to the first `KVM_RUN` (sandvmm prints its
//! CLOCK_MONOTONIC time with SANDVMM_TRACE_BOOT=1) and to the test kernel's `hello`
//! PASS line arriving on the pipe; the enforcing sandbox with and without the jail, and
//! neither, interleaved. The same trace gives the filters' compile time and the jail's.
//!
//! Memory: VmRSS, RssAnon and RssFile of a VMM whose 1-vCPU, 128 MiB guest idles (the test
//! kernel's `idle` scenario halts the vCPU), minus what the guest touched (the RSS of
//! the guest-memory mapping, from /proc/PID/smaps).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmm::vcpu::monotonic_ns;

use crate::report::Report;
use crate::Setup;

/// Start-up needs many runs for a stable median.
const MIN_STARTUP_RUNS: usize = 21;
const GUEST_MEMORY: u64 = 128 << 20;

fn spawn(setup: &Setup, args: &[&str]) -> Result<Child, String> {
    Command::new(&setup.sandvmm)
        .args(args)
        .env("SANDVMM_TRACE_BOOT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sandvmm: {e}"))
}

/// Reads the child's stdout until `marker` appears; returns when it did (monotonic ns).
fn wait_for(child: &mut Child, marker: &str, timeout: Duration) -> Result<u128, String> {
    let out = child.stdout.as_mut().ok_or("no stdout")?;
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return Ok(monotonic_ns());
        }
    }
    Err(format!("the guest never printed {marker:?}"))
}

pub fn startup(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let kernel = setup.image("testkernel.elf");
    let variants = [("enforce", "on"), ("enforce", "off"), ("off", "off")];
    let mut first = vec![Vec::new(); variants.len()];
    let mut hello = vec![Vec::new(); variants.len()];
    let (mut compile, mut jail) = (Vec::new(), Vec::new());
    for _ in 0..setup.runs.max(MIN_STARTUP_RUNS) {
        for (i, (mode, jail_on)) in variants.iter().enumerate() {
            let t0 = monotonic_ns();
            let mut child = spawn(
                setup,
                &[
                    "--kernel",
                    &kernel,
                    "--sandbox",
                    mode,
                    "--jail",
                    jail_on,
                    "--cmdline",
                    "scenario=hello",
                ],
            )?;
            let t_hello = wait_for(
                &mut child,
                "SANDVMM-TEST: PASS hello",
                Duration::from_secs(30),
            )?;
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let t_run: u128 = stderr
                .lines()
                .find_map(|l| l.split("monotonic_ns=").nth(1))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("no start-up trace line from sandvmm")?;
            first[i].push((t_run - t0) as f64 / 1e6);
            hello[i].push((t_hello - t0) as f64 / 1e6);
            if i == 0 {
                let us = |what: &str| {
                    stderr
                        .split(what)
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|v| v.parse::<f64>().ok())
                        .ok_or(format!("no {what:?} in the start-up trace"))
                };
                compile.push(us("filters compiled in ")? / 1000.0);
                jail.push(us("jail on in ")? / 1000.0);
            }
        }
    }
    for (i, (mode, jail_on)) in variants.iter().enumerate() {
        let name = format!("sandbox {mode}, jail {jail_on}");
        report.add(
            "startup",
            format!("exec -> first KVM_RUN ({name})"),
            "ms",
            &first[i],
        );
        report.add(
            "startup",
            format!("exec -> hello PASS line ({name})"),
            "ms",
            &hello[i],
        );
    }
    report.add(
        "startup",
        "compiling the filters (in the first)",
        "ms",
        &compile,
    );
    report.add("startup", "putting the jail on (in the first)", "ms", &jail);
    Ok(())
}

/// Resident kB of the guest-memory mapping (the one of the guest's size: anonymous, or
/// the snapshot's memory file after `--restore`).
pub fn guest_rss_kb(pid: u32) -> Result<u64, String> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).map_err(|e| e.to_string())?;
    let mut in_guest = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                    in_guest = b - a == GUEST_MEMORY;
                    continue;
                }
            }
        }
        if in_guest && line.starts_with("Rss:") {
            return line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or("bad smaps".into());
        }
    }
    Err("no guest-memory mapping in smaps".into())
}

pub fn status_kb(pid: u32, field: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no {field} in status"))
}

pub fn memory(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let kernel = setup.image("testkernel.elf");
    let (mut rss, mut anon, mut guest) = (Vec::new(), Vec::new(), Vec::new());
    let mut file = Vec::new();
    for _ in 0..setup.runs {
        let mut child = spawn(
            setup,
            &[
                "--kernel",
                &kernel,
                "--memory",
                "128M",
                "--cmdline",
                "scenario=idle",
            ],
        )?;
        wait_for(&mut child, "SANDVMM-TEST: idle", Duration::from_secs(30))?;
        std::thread::sleep(Duration::from_millis(300));
        let pid = child.id();
        let g = guest_rss_kb(pid)?;
        rss.push((status_kb(pid, "VmRSS:")? - g) as f64 / 1024.0);
        anon.push((status_kb(pid, "RssAnon:")? - g) as f64 / 1024.0);
        file.push(status_kb(pid, "RssFile:")? as f64 / 1024.0);
        guest.push(g as f64 / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    report.add(
        "memory",
        "VmRSS without guest memory (idle 128 MiB guest)",
        "MiB",
        &rss,
    );
    report.add("memory", "RssAnon without guest memory", "MiB", &anon);
    report.add(
        "memory",
        "RssFile (pages of the binary and its libraries)",
        "MiB",
        &file,
    );
    report.add("memory", "guest memory touched", "MiB", &guest);
    Ok(())
}

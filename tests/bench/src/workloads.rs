//! Guest-driven workloads: the exit-heavy serial flood and UDP blast with the sandbox
//! enforcing and off (interleaved), and UDP echo latency and blast rate through the
//! tap. All traffic stays in a network namespace made for the run.

use std::io::Read;
use std::net::UdpSocket;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::report::{median, Report};
use crate::Setup;
use sandvmm_harness::netns::{NetNs, GUEST_IP, HOST_IP, TAP};

const FLOOD_BYTES: usize = 256 * 1024;
const BLAST_COUNT: u32 = 3000;
const ECHOES: usize = 1000;
const NET_ARGS: &str = "guest_ip=10.0.0.2 host_ip=10.0.0.1";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Serial flood: bytes/s between the begin and end markers, as the host reads them,
/// and the write-type system calls sandvmm made meanwhile (`syscw` in
/// /proc/PID/io, all threads: serial output and eventfd writes; unknown, NaN, where
/// that file cannot be read).
fn flood(setup: &Setup, mode: &str) -> Result<(f64, f64), String> {
    let kernel = setup.image("testkernel.elf");
    let mut child = std::process::Command::new(&setup.sandvmm)
        .args(["--kernel", &kernel, "--sandbox", mode])
        .args([
            "--cmdline",
            &format!("scenario=serial-flood bytes={FLOOD_BYTES}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let out = child.stdout.as_mut().ok_or("no stdout")?;
    let (mut seen, mut buf) = (Vec::new(), vec![0u8; 65536]);
    let mut begin = None;
    let mut writes_at_begin = f64::NAN;
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if begin.is_none() && contains(&seen, b"flood begin") {
            begin = Some(Instant::now());
            writes_at_begin = write_calls(pid);
        }
        if contains(&seen[seen.len().saturating_sub(n + 64)..], b"flood end") {
            let secs = begin.ok_or("no begin marker")?.elapsed().as_secs_f64();
            let writes = write_calls(pid) - writes_at_begin;
            let _ = child.wait();
            return Ok((FLOOD_BYTES as f64 / secs, writes));
        }
    }
    let _ = child.kill();
    Err("serial flood did not finish".into())
}

/// The write-type system calls process `pid` has made so far, or NaN.
fn write_calls(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("syscw: ")?.trim().parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn start_in(ns: &NetNs, setup: &Setup, mode: &str, cmdline: &str) -> Result<Child, String> {
    let kernel = setup.image("testkernel.elf");
    ns.command(setup.sandvmm.to_str().unwrap())
        .args([
            "--kernel",
            &kernel,
            "--sandbox",
            mode,
            "--serial",
            "none",
            "--net",
            &format!("tap={TAP}"),
        ])
        .args(["--cmdline", cmdline])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())
}

/// UDP blast of `size`-byte datagrams: datagrams/s between the first and last arrival.
fn blast(setup: &Setup, mode: &str, size: usize) -> Result<f64, String> {
    let ns = NetNs::new(true);
    let sock = ns
        .enter(|| UdpSocket::bind((HOST_IP, 9000)))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let cmdline =
        format!("scenario=net-blast {NET_ARGS} count={BLAST_COUNT} size={size} port=9000");
    let mut child = start_in(&ns, setup, mode, &cmdline)?;
    let mut buf = [0u8; 2048];
    let mut first = None;
    for i in 0..BLAST_COUNT {
        sock.recv_from(&mut buf)
            .map_err(|e| format!("datagram {i} missing: {e}"))?;
        first.get_or_insert_with(Instant::now);
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let _ = child.wait();
    Ok(f64::from(BLAST_COUNT - 1) / secs)
}

/// UDP echo: round-trip times in µs for `count` datagrams of `size` bytes.
fn echo_rtts(setup: &Setup, size: usize) -> Result<Vec<f64>, String> {
    let ns = NetNs::new(true);
    let mut child = start_in(
        &ns,
        setup,
        "enforce",
        &format!("scenario=net-echo {NET_ARGS}"),
    )?;
    let rtts = ns.enter(|| -> Result<Vec<f64>, String> {
        let sock = UdpSocket::bind((HOST_IP, 0)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let payload = vec![0x5au8; size];
        let mut buf = [0u8; 2048];
        // The guest needs a moment to boot and bring its driver up.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            sock.send_to(&payload, (GUEST_IP, 7))
                .map_err(|e| e.to_string())?;
            if sock.recv_from(&mut buf).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err("the guest never answered".into());
            }
        }
        let mut rtts = Vec::with_capacity(ECHOES);
        for _ in 0..ECHOES {
            let t = Instant::now();
            sock.send_to(&payload, (GUEST_IP, 7))
                .map_err(|e| e.to_string())?;
            sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
        sock.send_to(b"quit", (GUEST_IP, 7))
            .map_err(|e| e.to_string())?;
        Ok(rtts)
    })?;
    let _ = child.wait();
    Ok(rtts)
}

pub fn exits(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let modes = ["enforce", "off"];
    let mut floods = [Vec::new(), Vec::new()];
    let mut flood_writes = [Vec::new(), Vec::new()];
    let mut blasts = [Vec::new(), Vec::new()];
    for _ in 0..setup.runs.max(3) {
        for (i, mode) in modes.iter().enumerate() {
            let (rate, writes) = flood(setup, mode)?;
            floods[i].push(rate / 1024.0);
            if writes.is_finite() {
                flood_writes[i].push(writes);
            }
            blasts[i].push(blast(setup, mode, 64)?);
        }
    }
    for (i, mode) in modes.iter().enumerate() {
        report.add(
            "exits",
            format!("serial-flood 256 KiB (sandbox {mode})"),
            "KiB/s",
            &floods[i],
        );
        report.add(
            "exits",
            format!("serial-flood 256 KiB write calls (sandbox {mode})"),
            "calls",
            &flood_writes[i],
        );
        report.add(
            "exits",
            format!("net-blast 64 B (sandbox {mode})"),
            "pkt/s",
            &blasts[i],
        );
    }
    let ratio = |a: &[f64], b: &[f64]| vec![median(a) / median(b)];
    report.add(
        "exits",
        "serial-flood enforce/off",
        "ratio",
        &ratio(&floods[0], &floods[1]),
    );
    report.add(
        "exits",
        "net-blast enforce/off",
        "ratio",
        &ratio(&blasts[0], &blasts[1]),
    );
    Ok(())
}

pub fn network(setup: &Setup, report: &mut Report) -> Result<(), String> {
    for size in [64, 1400] {
        let rtts = echo_rtts(setup, size)?;
        report.add("net", format!("UDP echo round trip, {size} B"), "us", &rtts);
        let rate: Vec<f64> = vec![1e6 / median(&rtts)];
        report.add(
            "net",
            format!("UDP echo, one at a time, {size} B"),
            "pkt/s",
            &rate,
        );
        let blasts: Vec<f64> = (0..setup.runs.max(3))
            .map(|_| blast(setup, "enforce", size))
            .collect::<Result<_, _>>()?;
        report.add(
            "net",
            format!("UDP blast guest->host, {size} B"),
            "pkt/s",
            &blasts,
        );
    }
    Ok(())
}

//! The Linux guest (images/linux): time to the busybox shell prompt, and the workload
//! of tests/linux.rs (256 KiB on the console, 1 MiB over TCP each way) and, booted
//! from the ext4 root disk, its disk steps (a 16 MiB file, dd's rates), with the
//! sandbox enforcing and off, interleaved run by run.
//!
//! On the emulating test hosts these figures are bound by the emulated guest kernel;
//! the comparison between sandbox modes is what they are for.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::report::Report;
use crate::Setup;
use sandvmm_harness::http::HttpServer;
use sandvmm_harness::netns::{NetNs, GUEST_IP, HOST_IP, TAP};
use sandvmm_harness::workload::{self, PROMPT};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(900);
const DISK_TIMEOUT: Duration = Duration::from_secs(1500);

/// A sandvmm child whose stdout is collected by a thread.
struct Guest {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    started: Instant,
}

impl Guest {
    fn start(mut cmd: Command) -> Result<Guest, String> {
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sandvmm: {e}"))?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        thread::spawn(move || {
            let mut buf = [0; 65536];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(Guest {
            child,
            out,
            started,
        })
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Seconds since the start when `marker` appeared.
    fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<f64, String> {
        while !self.output().contains(marker) {
            if self.started.elapsed() > timeout {
                return Err(format!("no {marker:?} within {timeout:?}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("sandvmm exited ({status}) before {marker:?}"));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(self.started.elapsed().as_secs_f64())
    }

    /// Seconds since the start when sandvmm exited with status 0.
    fn wait_exit(&mut self, timeout: Duration) -> Result<f64, String> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return match status.success() {
                    true => Ok(self.started.elapsed().as_secs_f64()),
                    false => Err(format!("sandvmm exited with {status}")),
                };
            }
            if self.started.elapsed() > timeout {
                return Err(format!("sandvmm still running after {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn linux_command(setup: &Setup, program: Command, cpus: &str, mode: &str) -> Command {
    let mut cmd = program;
    cmd.args(["--kernel", &setup.image("vmlinux")])
        .args(["--initrd", &setup.image("initramfs.cpio")])
        .args(["--cpus", cpus, "--sandbox", mode]);
    cmd
}

/// Boots to the shell prompt and types `reboot`: (seconds to the prompt, to the exit).
fn boot_to_prompt(setup: &Setup, ns: &NetNs, cpus: &str) -> Result<(f64, f64), String> {
    let mut cmd = linux_command(
        setup,
        ns.command(setup.sandvmm.to_str().unwrap()),
        cpus,
        "enforce",
    );
    cmd.args(["--net", &format!("tap={TAP}")])
        .args(["--cmdline", &format!("sandvmm.net={GUEST_IP}/24")]);
    let mut guest = Guest::start(cmd)?;
    let prompt = guest.wait_for(PROMPT, BOOT_TIMEOUT)?;
    let stdin = guest.child.stdin.as_mut().unwrap();
    stdin
        .write_all(b"reboot\n")
        .map_err(|e| format!("typing reboot: {e}"))?;
    let exit = guest.wait_exit(BOOT_TIMEOUT)?;
    Ok((prompt, exit))
}

/// The value of `key=` in the guest's `SANDVMM-LINUX: PASS STEP ...` line.
fn guest_figure(out: &str, step: &str, key: &str) -> Result<f64, String> {
    workload::pass_line(out, step)
        .and_then(|line| workload::field(line, key)?.parse().ok())
        .ok_or_else(|| format!("the guest printed no PASS {step} line with {key}="))
}

/// One workload run: (console KiB/s, TCP host->guest KiB/s, guest->host KiB/s).
fn workload(setup: &Setup, mode: &str) -> Result<[f64; 3], String> {
    let ns = NetNs::new(true);
    let listener = ns
        .enter(|| TcpListener::bind((HOST_IP, 0)))
        .map_err(|e| e.to_string())?;
    let server = HttpServer::start(listener);
    let mut cmd = linux_command(
        setup,
        ns.command(setup.sandvmm.to_str().unwrap()),
        "2",
        mode,
    );
    cmd.args(["--net", &format!("tap={TAP}")])
        .args(["--cmdline", &workload::workload_cmdline(server.port)]);
    let mut guest = Guest::start(cmd)?;
    guest.wait_for("SANDVMM-LINUX: eth0 up", BOOT_TIMEOUT)?;
    // The workload waits for these (its ping-from-host step).
    let _ = ns
        .command("ping")
        .args(["-q", "-c", "3", "-W", "10", GUEST_IP])
        .output();
    guest.wait_exit(WORKLOAD_TIMEOUT)?;
    let out = guest.output();
    if !out.contains(&format!(
        "SANDVMM-LINUX: DONE passed={} failed=0",
        workload::STEPS
    )) {
        return Err(format!("the workload failed under {mode}"));
    }
    let rate = |method: &str| {
        server
            .transfers()
            .iter()
            .find(|t| t.method == method && t.bytes > 0)
            .map(|t| t.kib_per_s())
            .ok_or_else(|| format!("no {method} transfer"))
    };
    Ok([
        guest_figure(&out, "serial", "KiB/s")?,
        rate("GET")?,
        rate("POST")?,
    ])
}

/// The workload's disk steps, booted from a copy of the ext4 root disk: (16 MiB file
/// written and synced, read with the page cache dropped, dd write with fsync, dd read),
/// all KiB/s as the guest times them.
fn disk(setup: &Setup, mode: &str) -> Result<[f64; 4], String> {
    let image = std::env::temp_dir().join(format!("sandvmm-bench-{}.ext4", std::process::id()));
    std::fs::copy(setup.image("rootfs.ext4"), &image)
        .map_err(|e| format!("copying the disk: {e}"))?;
    let mut cmd = Command::new(&setup.sandvmm);
    cmd.args(["--kernel", &setup.image("vmlinux")])
        .args(["--disk", &format!("path={}", image.display())])
        .args(["--cpus", "2", "--sandbox", mode])
        .args([
            "--cmdline",
            "root=/dev/vda rw sandvmm.mode=test sandvmm.steps=disk,disk-dd",
        ]);
    let ended = Guest::start(cmd).and_then(|mut guest| {
        guest.wait_exit(DISK_TIMEOUT)?;
        Ok(guest.output())
    });
    let _ = std::fs::remove_file(&image);
    let out = ended?;
    if !out.contains("SANDVMM-LINUX: DONE passed=2 failed=0") {
        return Err(format!("the disk steps failed under {mode}"));
    }
    Ok([
        guest_figure(&out, "disk", "write_KiB/s")?,
        guest_figure(&out, "disk", "read_KiB/s")?,
        guest_figure(&out, "disk-dd", "write_KiB/s")?,
        guest_figure(&out, "disk-dd", "read_KiB/s")?,
    ])
}

/// Seconds to the shell prompt and from `reboot` to sandvmm's exit, 1 and 2 vCPUs,
/// `runs` boots each (`--only linux-boot`, and the first part of `linux`).
pub fn linux_boot(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let ns = NetNs::new(true);
    for cpus in ["1", "2"] {
        let mut prompt = Vec::new();
        let mut exit = Vec::new();
        for _ in 0..setup.runs {
            let (p, e) = boot_to_prompt(setup, &ns, cpus)?;
            prompt.push(p);
            exit.push(e - p);
        }
        let what = format!("{cpus} vCPU, virtio-net, enforce");
        report.add(
            "linux",
            format!("boot to shell prompt, {what}"),
            "s",
            &prompt,
        );
        report.add("linux", format!("`reboot` to exit, {what}"), "s", &exit);
    }
    Ok(())
}

/// The boot figures, then the workload of tests/linux.rs, enforcing and off.
pub fn linux(setup: &Setup, report: &mut Report) -> Result<(), String> {
    linux_boot(setup, report)?;
    let modes = ["enforce", "off"];
    let mut figures: [Vec<[f64; 3]>; 2] = Default::default();
    for _ in 0..setup.runs.min(3) {
        for (i, mode) in modes.iter().enumerate() {
            figures[i].push(workload(setup, mode)?);
        }
    }
    let names = [
        "console output",
        "TCP host->guest, 1 MiB",
        "TCP guest->host, 1 MiB",
    ];
    for (i, mode) in modes.iter().enumerate() {
        for (k, name) in names.iter().enumerate() {
            let samples: Vec<f64> = figures[i].iter().map(|f| f[k]).collect();
            report.add("linux", format!("{name}, {mode}"), "KiB/s", &samples);
        }
    }
    Ok(())
}

/// The Linux workload's disk steps from the ext4 root disk, enforcing and off,
/// interleaved; they take minutes each on an emulating host, so two rounds.
pub fn linux_disk(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let modes = ["enforce", "off"];
    let mut disks: [Vec<[f64; 4]>; 2] = Default::default();
    for _ in 0..setup.runs.min(2) {
        for (i, mode) in modes.iter().enumerate() {
            disks[i].push(disk(setup, mode)?);
        }
    }
    let names = [
        "16 MiB file written and synced",
        "16 MiB file read, page cache dropped",
        "dd 4 MiB write, conv=fsync",
        "dd 4 MiB read, page cache dropped",
    ];
    for (i, mode) in modes.iter().enumerate() {
        for (k, name) in names.iter().enumerate() {
            let samples: Vec<f64> = disks[i].iter().map(|f| f[k]).collect();
            report.add("linux-disk", format!("{name}, {mode}"), "KiB/s", &samples);
        }
    }
    Ok(())
}

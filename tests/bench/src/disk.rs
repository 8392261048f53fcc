//! virtio-blk rates from the test kernel's `blk-bench` scenario: sequential write and
//! read in 64 KiB requests and 4 KiB random reads, with the sandbox enforcing and off
//! (interleaved), and how much of a CPU the VMM thread, which serves every request,
//! spends meanwhile. The guest's own timing gives the rates; the image is a scratch
//! file in the page cache, so the figures are the VMM's and the guest's, not a disk's.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::report::Report;
use crate::Setup;

/// Bytes written and read sequentially; the image is twice that.
const BYTES: u64 = 8 << 20;
const TIMEOUT: Duration = Duration::from_secs(300);

/// What one run measured: write MiB/s, read MiB/s, random 4 KiB reads/s, and the VMM
/// thread's CPU time over the run's wall time (%).
type Figures = [f64; 4];

/// utime + stime of thread `tid` of process `pid`, in seconds.
fn thread_cpu(pid: u32, tid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

fn run(setup: &Setup, mode: &str) -> Result<Figures, String> {
    let image = std::env::temp_dir().join(format!("sandvmm-bench-{}.img", std::process::id()));
    let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
    file.set_len(2 * BYTES).map_err(|e| e.to_string())?;
    drop(file);
    let mut child = std::process::Command::new(&setup.sandvmm)
        .args([
            "--kernel",
            &setup.image("testkernel.elf"),
            "--sandbox",
            mode,
        ])
        .args(["--disk", &format!("path={}", image.display())])
        .args(["--cmdline", &format!("scenario=blk-bench bytes={BYTES}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let start = Instant::now();
    // Sample the VMM thread (the main thread: tid == pid) until the guest is done.
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let mut cpu = 0.0;
    let mut wall = 0.0;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if let Some(c) = thread_cpu(pid, pid) {
            cpu = c;
            wall = start.elapsed().as_secs_f64();
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(&image);
    let text = reader.join().map_err(|_| "reader panicked")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("SANDVMM-TEST: PASS blk-bench"))
        .ok_or_else(|| format!("blk-bench did not pass under {mode}"))?;
    let field = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {key}= in {line:?}"))
    };
    Ok([
        field("write_KiB/s")? / 1024.0,
        field("read_KiB/s")? / 1024.0,
        field("rand4k_iops")?,
        100.0 * cpu / wall.max(1e-3),
    ])
}

pub fn disk(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let modes = ["enforce", "off"];
    let mut figures: [Vec<Figures>; 2] = Default::default();
    for _ in 0..setup.runs {
        for (i, mode) in modes.iter().enumerate() {
            figures[i].push(run(setup, mode)?);
        }
    }
    let names = [
        ("test kernel: sequential write, 64 KiB requests", "MiB/s"),
        ("test kernel: sequential read, 64 KiB requests", "MiB/s"),
        ("test kernel: random 4 KiB reads", "IOPS"),
        ("VMM thread's CPU over the run", "%"),
    ];
    for (i, mode) in modes.iter().enumerate() {
        for (k, (name, unit)) in names.iter().enumerate() {
            let samples: Vec<f64> = figures[i].iter().map(|f| f[k]).collect();
            report.add("disk", format!("{name}, sandbox {mode}"), unit, &samples);
        }
    }
    Ok(())
}

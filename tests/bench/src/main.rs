//! The sandvmm benchmark harness (docs/BENCHMARKS.md): the whole run of the smallest
//! guest by phase, start-up, memory, snapshot and restore, filter cost
//! per system call, exit-heavy workloads with the sandbox on and off, network rate and
//! latency, virtio-blk rates, and the Linux guest (boot to its shell, console, TCP and
//! disk rates). Prints a table and writes JSON.
//!
//! ```text
//! sudo target/x86_64-unknown-linux-gnu/release/bench [--runs N] [--json FILE] [--only whole-run,startup,memory,restore,filter,exits,net,disk,linux,linux-disk,linux-boot]
//! target/x86_64-unknown-linux-gnu/release/bench --render-docs docs/BENCHMARKS.md README.md
//! ```
//!
//! Variants that are compared are interleaved run by run, and every figure is a median.
//! Guest code is emulated on the project's test hosts, so the guest-bound figures
//! (exits, net) say little about real hardware; the VMM-side ones (start-up, memory,
//! filter cost) are faithful.

mod disk;
mod filter_cost;
mod kvm_costs;
mod linux;
mod render;
mod report;
mod restore;
mod startup;
mod watched;
mod whole_run;
mod workloads;

use std::path::PathBuf;

use clap::Parser;

use report::Report;

/// Benchmarks sandvmm.
#[derive(Parser)]
#[command(name = "bench")]
struct Args {
    /// Runs per variant for the whole-VM measurements (start-up uses at least 21).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Comma-separated subset: whole-run, startup, memory, restore, filter, exits, net,
    /// disk, linux, linux-disk (the last two take about 15 and 10 minutes on an
    /// emulating host), or linux-boot (only the boot figures of linux, a few minutes).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "whole-run,startup,memory,restore,filter,exits,net,disk,linux,linux-disk"
    )]
    only: String,
    /// Rewrite the generated tables and figures of these docs (docs/BENCHMARKS.md,
    /// README.md) from the result files their markers name, and run nothing.
    #[arg(long, value_name = "DOC", num_args = 1..)]
    render_docs: Vec<PathBuf>,
}

/// Where the binaries and images are.
pub struct Setup {
    pub sandvmm: PathBuf,
    pub images: PathBuf,
    pub runs: usize,
}

impl Setup {
    pub fn image(&self, name: &str) -> String {
        self.images.join(name).display().to_string()
    }
}

fn main() {
    let args = Args::parse();
    if !args.render_docs.is_empty() {
        for doc in &args.render_docs {
            if let Err(e) = render::render_file(doc) {
                eprintln!("bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let setup = Setup {
        sandvmm: exe.with_file_name("sandvmm"),
        images: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../images/out"),
        runs: args.runs.max(1),
    };
    for needed in [
        setup.sandvmm.clone(),
        setup.images.join("testkernel.elf"),
        setup.images.join("tiny.elf"),
    ] {
        if !needed.exists() {
            eprintln!(
                "bench: {} is missing: build with `cargo build --release` and images/build.sh",
                needed.display()
            );
            std::process::exit(1);
        }
    }
    let mut report = Report::default();
    for part in args.only.split(',') {
        let result = match part.trim() {
            "startup" => startup::startup(&setup, &mut report),
            "memory" => startup::memory(&setup, &mut report),
            "restore" => restore::restore(&setup, &mut report),
            "whole-run" => whole_run::whole_run(&setup, &mut report),
            "filter" => filter_cost::filter_cost(&mut report),
            "exits" => workloads::exits(&setup, &mut report),
            "net" => workloads::network(&setup, &mut report),
            "disk" => disk::disk(&setup, &mut report),
            "linux" => linux::linux(&setup, &mut report),
            "linux-boot" => linux::linux_boot(&setup, &mut report),
            "linux-disk" => linux::linux_disk(&setup, &mut report),
            other => Err(format!("unknown part {other:?}")),
        };
        if let Err(e) = result {
            eprintln!("bench: {part}: {e}");
            std::process::exit(1);
        }
    }
    print!("{}", report.table());
    if let Some(path) = args.json {
        if let Err(e) = std::fs::write(&path, report.json()) {
            eprintln!("bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

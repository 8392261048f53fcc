//! The whole run of the smallest guest, exec to exit, split into its phases.
//!
//! The guest is images/out/tiny.elf: 8 bytes on COM1, then a reset through the i8042,
//! so nearly all of the time is sandvmm's and KVM's. sandvmm's start-up trace
//! (SANDVMM_TRACE_BOOT=1) gives the CLOCK_MONOTONIC times of the first `KVM_RUN`, of
//! the moment the event loop saw the guest end, and of the VM's teardown; the bench
//! takes exec (just before spawning) and exit (when `wait` returns) on the same clock:
//!
//! ```text
//! exec ── start-up ── first KVM_RUN ── guest ── guest ended ── reset → exit ── exit ── reaper's end
//!                                                  (of which: sandvmm's close of the VM)
//! ```
//!
//! KVM destroys the VM in the reaper, the process sandvmm forks to hold the VM fd
//! until sandvmm is gone (vmm/src/teardown.rs). The bench makes itself a child
//! subreaper for this part, so that the orphaned reaper becomes its child and `waitpid`
//! times its end: the work a run leaves behind after its exit, measured too.
//!
//! What KVM itself costs is measured in the same rounds, in the bench process
//! (kvm_costs.rs): the floor of start-up (`KVM_CREATE_VM` plus registering 128 MiB of
//! guest memory, which sandvmm cannot do without), the interrupt controllers and the
//! PIT, and the `close` of a VM with the PIT's re-injection off and on. Variants are
//! interleaved round by round.

use std::process::{Command, Stdio};

use kvm_ioctls::Kvm;
use vmm::vcpu::monotonic_ns;

use crate::kvm_costs::{self, KvmCosts};
use crate::report::Report;
use crate::Setup;

/// Rounds at least: the phases are a few milliseconds and the host is noisy.
const MIN_ROUNDS: usize = 21;

/// The number after `key` in sandvmm's trace: a CLOCK_MONOTONIC time in ns, or a
/// duration.
pub fn trace_ns(stderr: &str, key: &str) -> Result<u128, String> {
    stderr
        .split(key)
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .ok_or(format!("no {key:?} in sandvmm's trace:\n{stderr}"))
}

/// Waits for the next child of the bench to end (the reaper of the run that just
/// ended, adopted by the bench); false if it has none.
fn wait_adopted_child() -> bool {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a local.
    unsafe { libc::waitpid(-1, &mut status, 0) > 0 }
}

/// One run's phases, in ms: start-up, guest, reset → exit, teardown, whole, and exit
/// → the reaper's end.
fn one_run(setup: &Setup, flags: &[&str]) -> Result<[f64; 6], String> {
    let kernel = setup.image("tiny.elf");
    let t0 = monotonic_ns();
    let out = Command::new(&setup.sandvmm)
        .args(["--kernel", &kernel])
        .args(flags)
        .env("SANDVMM_TRACE_BOOT", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run sandvmm: {e}"))?;
    let t_exit = monotonic_ns();
    if !wait_adopted_child() {
        return Err("sandvmm left no reaper".into());
    }
    let t_reaped = monotonic_ns();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || out.stdout != b"tiny ok\n" {
        return Err(format!(
            "the tiny guest did not run: {} {stderr}",
            out.status
        ));
    }
    let first = trace_ns(&stderr, "first KVM_RUN at monotonic_ns=")?;
    let ended = trace_ns(&stderr, "guest ended at monotonic_ns=")?;
    let torn_from = trace_ns(&stderr, "torn down from monotonic_ns=")?;
    let torn_to = trace_ns(&stderr, "to monotonic_ns=")?;
    let ms = |a: u128, b: u128| b.saturating_sub(a) as f64 / 1e6;
    Ok([
        ms(t0, first),
        ms(first, ended),
        ms(ended, t_exit),
        ms(torn_from, torn_to),
        ms(t0, t_exit),
        ms(t_exit, t_reaped),
    ])
}

/// Makes the bench adopt its orphaned grandchildren (PR_SET_CHILD_SUBREAPER), or
/// stops it.
fn set_subreaper(on: bool) -> Result<(), String> {
    // SAFETY: prctl with plain integer arguments.
    match unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        )
    } {
        0 => Ok(()),
        _ => Err(format!(
            "cannot become a child subreaper: {}",
            std::io::Error::last_os_error()
        )),
    }
}

pub fn whole_run(setup: &Setup, report: &mut Report) -> Result<(), String> {
    let variants: [(&str, &[&str]); 2] = [
        ("sandbox enforce, jail on", &[]),
        (
            "sandbox off, jail off",
            &["--sandbox", "off", "--jail", "off"],
        ),
    ];
    let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    let mut phases = vec![[const { Vec::new() }; 6]; variants.len()];
    let mut costs = KvmCosts::default();
    set_subreaper(true)?;
    let rounds = (0..setup.runs.max(MIN_ROUNDS)).try_for_each(|_| {
        for (i, (_, flags)) in variants.iter().enumerate() {
            for (into, value) in phases[i].iter_mut().zip(one_run(setup, flags)?) {
                into.push(value);
            }
        }
        costs.measure(&kvm)
    });
    set_subreaper(false)?;
    rounds?;
    let names = [
        "exec -> first KVM_RUN",
        "guest (first KVM_RUN -> guest ended)",
        "guest ended -> exit",
        "of which sandvmm's close of the VM",
        "whole run, exec -> exit",
        "after the exit: the reaper destroying the VM",
    ];
    for (i, (variant, _)) in variants.iter().enumerate() {
        for (name, values) in names.iter().zip(&phases[i]) {
            report.add("whole-run", format!("{name} ({variant})"), "ms", values);
        }
    }
    kvm_costs::report(&costs, report);
    Ok(())
}

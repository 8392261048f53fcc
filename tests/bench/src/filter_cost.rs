//! Filter cost per system call: the hot calls of each thread, under seven variants —
//! no filter, an allow-everything filter (the cost of seccomp being on at all: the
//! kernel's action cache answers for every call without running the program), a
//! filter that compares one argument of the probed calls and allows everything (the
//! least any filter that pins an argument costs: its program runs), the policy without
//! its fd and pid pinning, the policy in file order, the policy ordered by measured
//! priorities, and the binary tree. Each measurement runs in a forked child that installs the filter and times
//! a tight loop of the call; rounds interleave the variants, and the figure is the
//! median over rounds of the mean time per call.

use std::time::Instant;

use sandbox::consts::KVM_RUN;
use sandbox::{CompiledFilter, FdRole, Mode, Optimize, Profile, RuntimeFacts, Sandbox, ThreadKind};

use crate::report::Report;

const CALLS: u64 = 200_000;
const ROUNDS: usize = 9;

/// The calls measured: name, thread kind, and the call itself.
struct Probe {
    name: &'static str,
    thread: ThreadKind,
    /// The system calls `call` makes.
    syscalls: &'static [&'static str],
    call: fn(&Fds),
}

/// fds the probes use, opened before any filter.
struct Fds {
    null: i32,
    console: i32,
    epoll: i32,
    eventfd: i32,
}

impl Fds {
    /// The run-time facts of a VM whose hot-path fds are the probes': the made-up
    /// sample facts (a net device, several eventfds) with the probes' fds in their
    /// roles, so pinned rules see as many fds as in a real run.
    fn facts(&self) -> RuntimeFacts {
        // A run without --snapshot-to: the snapshot roles are empty, as they are then.
        let mut facts = RuntimeFacts::sample()
            .with(FdRole::Snapshot, [])
            .with(FdRole::SnapshotVm, [])
            .with(FdRole::SnapshotVcpu, [])
            .with(FdRole::Vcpu, [self.null])
            .with(FdRole::Epoll, [self.epoll])
            .with(FdRole::Console, [self.console]);
        facts.add(FdRole::Event, self.eventfd);
        facts
    }
}

const PROBES: [Probe; 4] = [
    Probe {
        name: "vcpu ioctl(KVM_RUN) on a non-KVM fd",
        thread: ThreadKind::Vcpu,
        syscalls: &["ioctl"],
        call: |f| {
            // SAFETY: an ioctl that /dev/null refuses with ENOTTY.
            unsafe { libc::ioctl(f.null, KVM_RUN, 0) };
        },
    },
    Probe {
        name: "vcpu write (one serial byte)",
        thread: ThreadKind::Vcpu,
        syscalls: &["write"],
        call: |f| {
            // SAFETY: a one-byte write from a local to /dev/null.
            unsafe { libc::write(f.console, b"x".as_ptr().cast(), 1) };
        },
    },
    Probe {
        name: "vmm epoll_wait(timeout 0)",
        thread: ThreadKind::Vmm,
        syscalls: &["epoll_wait"],
        call: |f| {
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: waits on an empty epoll set with room for one event.
            unsafe { libc::epoll_wait(f.epoll, &mut ev, 1, 0) };
        },
    },
    Probe {
        name: "vmm eventfd write+read (per call)",
        thread: ThreadKind::Vmm,
        syscalls: &["write", "read"],
        call: |f| {
            let one = 1u64;
            let mut v = 0u64;
            // SAFETY: 8-byte write and read on an eventfd, from and into u64s.
            unsafe {
                libc::write(f.eventfd, (&one as *const u64).cast(), 8);
                libc::read(f.eventfd, (&mut v as *mut u64).cast(), 8);
            }
        },
    },
];

/// A filter that allows everything but makes the kernel run it for `probe`'s calls:
/// each has a rule comparing its first argument with a value no fd has (`ERRNO`,
/// never taken). The kernel's action cache cannot answer for a call whose outcome
/// depends on an argument, so this is the least a filter that pins an argument costs.
fn one_comparison(probe: &Probe) -> Result<CompiledFilter, String> {
    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| e.to_string())?;
    for name in probe.syscalls {
        let syscall = ScmpSyscall::from_name(name).map_err(|e| e.to_string())?;
        let never = ScmpArgCompare::new(0, ScmpCompareOp::Equal, u64::MAX);
        ctx.add_rule_conditional(ScmpAction::Errno(libc::EPERM), syscall, &[never])
            .map_err(|e| e.to_string())?;
    }
    CompiledFilter::from_context(probe.thread, &ctx).map_err(|e| e.to_string())
}

/// Runs `probe` CALLS times in a child under `filter`; returns ns per call.
fn measure(probe: &Probe, filter: Option<&CompiledFilter>, fds: &Fds) -> Result<f64, String> {
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for both ends.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        return Err("pipe failed".into());
    }
    // SAFETY: the child only installs a filter, runs raw calls, writes, and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if filter.is_some_and(|f| f.install().is_err()) {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(2) };
        }
        for _ in 0..CALLS / 10 {
            (probe.call)(fds);
        }
        let start = Instant::now();
        for _ in 0..CALLS {
            (probe.call)(fds);
        }
        let ns = start.elapsed().as_nanos() as f64 / CALLS as f64;
        let calls_per_iteration = if probe.name.contains("write+read") {
            2.0
        } else {
            1.0
        };
        let bytes = (ns / calls_per_iteration).to_ne_bytes();
        // SAFETY: writes 8 bytes we own to the pipe, then leaves the child.
        unsafe {
            libc::write(pipe[1], bytes.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    let mut bytes = [0u8; 8];
    // SAFETY: reads into our buffer, closes our pipe ends, reaps the child.
    let (n, status) = unsafe {
        libc::close(pipe[1]);
        let n = libc::read(pipe[0], bytes.as_mut_ptr().cast(), 8);
        libc::close(pipe[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        (n, status)
    };
    if n != 8 {
        return Err(format!(
            "{}: the measuring child died (status {status:#x})",
            probe.name
        ));
    }
    Ok(f64::from_ne_bytes(bytes))
}

pub fn filter_cost(report: &mut Report) -> Result<(), String> {
    // SAFETY: plain fd-creating calls; the fds live until the process exits.
    let fds = unsafe {
        Fds {
            null: libc::open(c"/dev/null".as_ptr(), libc::O_RDWR),
            console: libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY),
            epoll: libc::epoll_create1(0),
            eventfd: libc::eventfd(0, libc::EFD_NONBLOCK),
        }
    };
    let variant = |optimize, priorities| Sandbox {
        priorities,
        ..Sandbox::builtin(Mode::Enforce, Profile::Default, optimize)
    };
    // The policy as it was before fds and the pid were pinned: the same rules without
    // their run-time-fact conditions, to show what pinning costs.
    let mut unpinned = variant(Optimize::Priority, true);
    for rules in unpinned.policy.rules.values_mut() {
        for rule in rules.iter_mut() {
            rule.conditions.retain(|c| !c.uses_facts());
        }
    }
    let sandboxes = [
        ("policy without fd/pid pinning, priorities", unpinned),
        ("policy, file order", variant(Optimize::Priority, false)),
        (
            "policy, measured priorities",
            variant(Optimize::Priority, true),
        ),
        ("policy, binary tree", variant(Optimize::Tree, true)),
    ];
    for probe in &PROBES {
        let mut filters: Vec<(String, Option<CompiledFilter>)> = vec![
            ("no filter".into(), None),
            (
                "allow-all filter (floor)".into(),
                Some(CompiledFilter::allow_all(probe.thread).map_err(|e| e.to_string())?),
            ),
            (
                "one compared argument (what any pinning filter costs)".into(),
                Some(one_comparison(probe)?),
            ),
        ];
        for (name, sb) in &sandboxes {
            filters.push((
                name.to_string(),
                sb.compile(probe.thread, &fds.facts())
                    .map_err(|e| e.to_string())?,
            ));
        }
        let mut samples = vec![Vec::new(); filters.len()];
        for _ in 0..ROUNDS {
            for (i, (_, filter)) in filters.iter().enumerate() {
                samples[i].push(measure(probe, filter.as_ref(), &fds)?);
            }
        }
        for (i, (name, _)) in filters.iter().enumerate() {
            report.add(
                "filter",
                format!("{}: {name}", probe.name),
                "ns/call",
                &samples[i],
            );
        }
    }
    Ok(())
}

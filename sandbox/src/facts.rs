//! Run-time facts: the values a rule can only name once the VM is built.
//!
//! A policy says "a vCPU thread may `write` to the console, to stderr and to its
//! eventfds"; which fd numbers those are, and which pid `tgkill` may target, is known
//! only after set-up. The VMM collects them into [`RuntimeFacts`] just before the
//! filters are compiled, and the compiler turns every `$name` in a condition into the
//! numbers it stands for. `sandvmm sandbox show` prints the names; `sandvmm sandbox
//! verify` fills them in with [`RuntimeFacts::sample`].
//!
//! The sandbox knows fds by *role*, never by device: the VMM says which of its fds are
//! taps, irqfds or eventfds, and the policy speaks only of roles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::fd::RawFd;

/// What an fd is for, as far as the filters are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FdRole {
    /// Console input: stdin with `--serial stdio`.
    Stdin,
    /// Where guest serial output goes: stdout, or the `--serial file:` file.
    Console,
    /// Where messages go: stderr, the `--log-file`, the `--sandbox-report` file.
    Stderr,
    /// The signalfd the VMM thread takes its stop signals from (SIGTERM, SIGINT, ...).
    Signal,
    /// The timerfd that writes out waiting serial output (the VMM thread's only).
    Timer,
    /// The VMM thread's epoll instance.
    Epoll,
    /// Eventfds signalled to the VMM thread (reset line, vCPU reports, serial input
    /// room and output flush, device activation, quit).
    Event,
    /// Irqfds: writing one raises a guest interrupt.
    Irq,
    /// Ioeventfds: KVM signals them when the guest kicks a virtio queue.
    Kick,
    /// Tap devices.
    Tap,
    /// Disk images and block devices behind virtio-blk.
    Disk,
    /// The socket to the script helper.
    Helper,
    /// The calling thread's own vCPU fd (vCPU filters only).
    Vcpu,
    /// KVM's system fd, the VM fd and every vCPU fd.
    Kvm,
    /// Every vCPU fd (VMM filter only: vCPUs handed back at the end of a run).
    Vcpus,
    /// The snapshot files of a run with `--snapshot-to` (state and memory).
    Snapshot,
    /// The VM fd, in a run that can take a snapshot (VMM filter only).
    SnapshotVm,
    /// Every vCPU fd, in a run that can take a snapshot (VMM filter only: the VMM
    /// thread reads the parked vCPUs' state).
    SnapshotVcpu,
    /// The file guest memory is mapped from (`--restore`): kept open, named by no rule.
    Memory,
}

impl FdRole {
    /// Every role, in policy order.
    pub const ALL: [FdRole; 19] = [
        FdRole::Stdin,
        FdRole::Console,
        FdRole::Stderr,
        FdRole::Signal,
        FdRole::Timer,
        FdRole::Epoll,
        FdRole::Event,
        FdRole::Irq,
        FdRole::Kick,
        FdRole::Tap,
        FdRole::Disk,
        FdRole::Helper,
        FdRole::Vcpu,
        FdRole::Kvm,
        FdRole::Vcpus,
        FdRole::Snapshot,
        FdRole::SnapshotVm,
        FdRole::SnapshotVcpu,
        FdRole::Memory,
    ];

    /// Its name in a policy file, after the `$`.
    pub fn name(self) -> &'static str {
        match self {
            FdRole::Stdin => "stdin",
            FdRole::Console => "console",
            FdRole::Stderr => "stderr",
            FdRole::Signal => "signal",
            FdRole::Timer => "timer",
            FdRole::Epoll => "epoll",
            FdRole::Event => "event",
            FdRole::Irq => "irq",
            FdRole::Kick => "kick",
            FdRole::Tap => "tap",
            FdRole::Disk => "disk",
            FdRole::Helper => "helper",
            FdRole::Vcpu => "vcpu",
            FdRole::Kvm => "kvm",
            FdRole::Vcpus => "vcpus",
            FdRole::Snapshot => "snapshot",
            FdRole::SnapshotVm => "snapvm",
            FdRole::SnapshotVcpu => "snapvcpu",
            FdRole::Memory => "memory",
        }
    }
}

/// A run-time value a condition can name: `$pid`, `$own` or `$ROLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// sandvmm's own process id (the thread-group id `tgkill` takes).
    Pid,
    /// Every fd sandvmm holds, whatever its role.
    Own,
    /// The fds of one role.
    Fds(FdRole),
}

impl Fact {
    /// The fact named `name` (without the `$`).
    pub fn from_name(name: &str) -> Option<Fact> {
        match name {
            "pid" => Some(Fact::Pid),
            "own" => Some(Fact::Own),
            _ => FdRole::ALL
                .into_iter()
                .find(|r| r.name() == name)
                .map(Fact::Fds),
        }
    }

    /// Whether the fact is a set of fds (as opposed to the pid).
    pub fn is_fd(self) -> bool {
        !matches!(self, Fact::Pid)
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Pid => f.write_str("$pid"),
            Fact::Own => f.write_str("$own"),
            Fact::Fds(role) => write!(f, "${}", role.name()),
        }
    }
}

/// The facts of one filter: the pid and the fds by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeFacts {
    pub pid: u32,
    pub fds: BTreeMap<FdRole, BTreeSet<RawFd>>,
}

impl RuntimeFacts {
    /// Facts for the process `pid`, with no fds yet.
    pub fn new(pid: u32) -> RuntimeFacts {
        RuntimeFacts {
            pid,
            fds: BTreeMap::new(),
        }
    }

    /// Records that `fd` plays `role` (negative fds, "none", are ignored).
    pub fn add(&mut self, role: FdRole, fd: RawFd) -> &mut Self {
        if fd >= 0 {
            self.fds.entry(role).or_default().insert(fd);
        }
        self
    }

    /// A copy with `role` holding exactly `fds` (e.g. one vCPU's own fd).
    pub fn with(&self, role: FdRole, fds: impl IntoIterator<Item = RawFd>) -> RuntimeFacts {
        let mut facts = self.clone();
        facts
            .fds
            .insert(role, fds.into_iter().filter(|fd| *fd >= 0).collect());
        facts
    }

    /// Every fd, whatever its role.
    pub fn all_fds(&self) -> BTreeSet<RawFd> {
        self.fds.values().flatten().copied().collect()
    }

    /// The numbers `fact` stands for, smallest first; empty when the VM has no fd of
    /// that role (a rule naming it then allows nothing).
    pub fn values(&self, fact: Fact) -> Vec<u64> {
        match fact {
            Fact::Pid => vec![u64::from(self.pid)],
            Fact::Own => self.all_fds().into_iter().map(|fd| fd as u64).collect(),
            Fact::Fds(role) => self
                .fds
                .get(&role)
                .into_iter()
                .flatten()
                .map(|fd| *fd as u64)
                .collect(),
        }
    }

    /// Plausible facts for checking a policy without a VM (`sandbox verify`, tests):
    /// every role has at least one fd, and the numbers leave gaps so that neighbouring
    /// fds of a pinned one belong to no role.
    pub fn sample() -> RuntimeFacts {
        let mut facts = RuntimeFacts::new(4242);
        facts
            .add(FdRole::Stdin, 0)
            .add(FdRole::Console, 1)
            .add(FdRole::Stderr, 2)
            .add(FdRole::Kvm, 4)
            .add(FdRole::Kvm, 5)
            .add(FdRole::Event, 7)
            .add(FdRole::Event, 8)
            .add(FdRole::Irq, 10)
            .add(FdRole::Irq, 11)
            .add(FdRole::Kick, 13)
            .add(FdRole::Tap, 15)
            .add(FdRole::Disk, 23)
            .add(FdRole::Signal, 25)
            .add(FdRole::Timer, 27)
            .add(FdRole::Helper, 17)
            .add(FdRole::Epoll, 19)
            .add(FdRole::Kvm, 21)
            .add(FdRole::Vcpu, 21)
            .add(FdRole::Vcpus, 21)
            .add(FdRole::Snapshot, 29)
            .add(FdRole::Snapshot, 30)
            .add(FdRole::SnapshotVm, 5)
            .add(FdRole::SnapshotVcpu, 21)
            .add(FdRole::Memory, 31);
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in FdRole::ALL {
            assert_eq!(Fact::from_name(role.name()), Some(Fact::Fds(role)));
            assert_eq!(Fact::Fds(role).to_string(), format!("${}", role.name()));
        }
        assert_eq!(Fact::from_name("pid"), Some(Fact::Pid));
        assert_eq!(Fact::from_name("own"), Some(Fact::Own));
        assert_eq!(Fact::from_name("nope"), None);
    }

    #[test]
    fn values_by_role() {
        let mut facts = RuntimeFacts::new(7);
        facts
            .add(FdRole::Tap, 9)
            .add(FdRole::Tap, 8)
            .add(FdRole::Irq, 3)
            .add(FdRole::Irq, -1);
        assert_eq!(facts.values(Fact::Pid), [7]);
        assert_eq!(facts.values(Fact::Fds(FdRole::Tap)), [8, 9]);
        assert_eq!(facts.values(Fact::Fds(FdRole::Helper)), Vec::<u64>::new());
        assert_eq!(facts.values(Fact::Own), [3, 8, 9]);
        let one = facts.with(FdRole::Vcpu, [12]);
        assert_eq!(one.values(Fact::Fds(FdRole::Vcpu)), [12]);
        assert!(facts.values(Fact::Fds(FdRole::Vcpu)).is_empty());
    }

    #[test]
    fn the_sample_has_every_role() {
        let s = RuntimeFacts::sample();
        for role in FdRole::ALL {
            assert!(!s.values(Fact::Fds(role)).is_empty(), "{role:?}");
        }
    }
}

//! sandvmm's seccomp sandbox.
//!
//! The sandbox knows kinds of threads, not devices. A checked-in policy
//! (`policy/x86_64.toml`) lists, for each [`ThreadKind`], every system call the thread
//! may make once set-up is over, with a reason and argument conditions. [`Sandbox`]
//! compiles it with libseccomp into one BPF program per thread kind; each thread then
//! loads its own with [`CompiledFilter::install`] (NO_NEW_PRIVS, then
//! `seccomp(SECCOMP_SET_MODE_FILTER)`).
//!
//! Rule order inside each filter comes from measured syscall frequencies
//! (`policy/x86_64-frequency.toml`, written by `sandvmm sandbox profile`).
//!
//! Rules pin every argument known when the filter is compiled: ioctl requests, futex
//! operations and mmap flags are constants in the policy; fds and the pid are run-time
//! facts ([`facts`]) that the VMM supplies once the VM is built.
//!
//! Modules: [`policy`] (the file format), [`condition`] (argument conditions),
//! [`facts`] (run-time values), [`consts`] (names usable in conditions), [`filter`]
//! (compiling and installing, with `emit` turning each rule into what libseccomp is
//! handed), [`report`] (the SIGSYS handler of trap mode),
//! [`profile`] (counting a real workload's syscalls), [`reaper`] (the filter of the
//! process that destroys the VM once sandvmm is gone), [`bpf`] (an independent
//! interpreter of the compiled programs), [`verify`] (running every compiled program
//! over every case its policy cares about, against the policy), [`jail`] (the layers around the
//! filters: fds, identity and namespaces, an empty root, capabilities, Landlock).

pub mod bpf;
pub mod condition;
pub mod consts;
mod emit;
pub mod facts;
pub mod filter;
pub mod jail;
pub mod policy;
pub mod profile;
pub mod reaper;
pub mod report;
pub mod verify;

use std::fmt;
use std::str::FromStr;

pub use facts::{Fact, FdRole, RuntimeFacts};
pub use filter::{CompiledFilter, FilterError, Filters, Sandbox};
pub use policy::{Frequency, Policy, PolicyError};

/// The kinds of threads sandvmm runs; each gets its own seccomp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThreadKind {
    /// The main thread: builds the VM, then runs the event loop (serial input, exit
    /// events, virtio-net processing).
    Vmm,
    /// A vCPU thread: `KVM_RUN` and the device accesses its exits lead to.
    Vcpu,
}

impl ThreadKind {
    /// Every kind, in policy-file order.
    pub const ALL: [ThreadKind; 2] = [ThreadKind::Vmm, ThreadKind::Vcpu];

    /// The thread name for the `index`-th thread of this kind, as shown in
    /// `/proc/PID/task/TID/comm` (`sandvmm` for the main thread, `vcpu0`, `vcpu1`, ...).
    pub fn thread_name(self, index: usize) -> String {
        match self {
            ThreadKind::Vmm => "sandvmm".to_string(),
            ThreadKind::Vcpu => format!("vcpu{index}"),
        }
    }

    /// The kind a thread named `comm` belongs to.
    pub fn from_thread_name(comm: &str) -> ThreadKind {
        let is_vcpu = comm
            .strip_prefix("vcpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_vcpu {
            ThreadKind::Vcpu
        } else {
            ThreadKind::Vmm
        }
    }

    /// The key used in policy and frequency files.
    pub fn key(self) -> &'static str {
        match self {
            ThreadKind::Vmm => "vmm",
            ThreadKind::Vcpu => "vcpu",
        }
    }
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for ThreadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vmm" => Ok(ThreadKind::Vmm),
            "vcpu" => Ok(ThreadKind::Vcpu),
            _ => Err(format!("unknown thread kind {s:?}: expected vmm or vcpu")),
        }
    }
}

/// What a filter does with a system call that is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kill the whole process (`SCMP_ACT_KILL_PROCESS`): the default.
    Enforce,
    /// Raise SIGSYS; the handler names the call and thread and exits with
    /// [`report::TRAP_EXIT_STATUS`]. For debugging a policy.
    Trap,
    /// Allow it, and have the kernel log it (`SCMP_ACT_LOG`).
    Log,
    /// No filter at all.
    Off,
    /// Let a ptrace-ing parent see it (`SCMP_ACT_TRACE`); used by `sandvmm sandbox
    /// profile` to count what the filter would see.
    Trace,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "trap" => Ok(Mode::Trap),
            "log" => Ok(Mode::Log),
            "off" => Ok(Mode::Off),
            _ => Err(format!(
                "unknown sandbox mode {s:?}: expected enforce, trap, log or off"
            )),
        }
    }
}

/// Which rules of the policy apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every rule.
    Default,
    /// Only rules not marked `profiles = ["default"]`: for deployments that hand every fd
    /// in (`--net fd=`), with no helper process to talk to.
    Strict,
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Profile::Default),
            "strict" => Ok(Profile::Strict),
            _ => Err(format!(
                "unknown sandbox profile {s:?}: expected default or strict"
            )),
        }
    }
}

/// How libseccomp lays out the BPF program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimize {
    /// Linear checks ordered by rule priority (`SCMP_FLTATR_CTL_OPTIMIZE` = 1).
    Priority,
    /// A binary tree over syscall numbers (`SCMP_FLTATR_CTL_OPTIMIZE` = 2).
    Tree,
}

impl FromStr for Optimize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "priority" => Ok(Optimize::Priority),
            "tree" => Ok(Optimize::Tree),
            _ => Err(format!(
                "unknown optimisation {s:?}: expected priority or tree"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_and_kinds() {
        assert_eq!(ThreadKind::Vcpu.thread_name(1), "vcpu1");
        assert_eq!(ThreadKind::from_thread_name("vcpu12"), ThreadKind::Vcpu);
        assert_eq!(ThreadKind::from_thread_name("sandvmm"), ThreadKind::Vmm);
        assert_eq!(ThreadKind::from_thread_name("vcpu"), ThreadKind::Vmm);
        // comm is 15 bytes plus NUL.
        assert!(ThreadKind::Vcpu.thread_name(999).len() <= 15);
    }

    #[test]
    fn parse_options() {
        assert_eq!("trap".parse::<Mode>(), Ok(Mode::Trap));
        assert!("trace".parse::<Mode>().is_err(), "trace is internal");
        assert_eq!("strict".parse::<Profile>(), Ok(Profile::Strict));
        assert_eq!("tree".parse::<Optimize>(), Ok(Optimize::Tree));
        assert_eq!("vcpu".parse::<ThreadKind>(), Ok(ThreadKind::Vcpu));
    }
}

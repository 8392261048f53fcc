//! sandvmm's seccomp sandbox.
//!
//! The sandbox knows kinds of threads, not devices: each thread of the VMM belongs to
//! one [`ThreadKind`], and each kind gets its own allowlist. The allowlists, their
//! compilation and installation arrive with the sandbox work (issue 4); today this
//! crate names the thread kinds so that the VMM spawns and names its threads by them.

use std::fmt;

/// The kinds of threads sandvmm runs; each gets its own seccomp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadKind {
    /// The main thread: builds the VM, then runs the event loop (serial input,
    /// exit events, device back-ends).
    Vmm,
    /// A vCPU thread: `KVM_RUN` and the device accesses its exits lead to.
    Vcpu,
}

impl ThreadKind {
    /// The thread name for the `index`-th thread of this kind, as shown in
    /// `/proc/PID/task/TID/comm` (`vmm`, `vcpu0`, `vcpu1`, ...).
    pub fn thread_name(self, index: usize) -> String {
        match self {
            ThreadKind::Vmm => "vmm".to_string(),
            ThreadKind::Vcpu => format!("vcpu{index}"),
        }
    }
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThreadKind::Vmm => "vmm",
            ThreadKind::Vcpu => "vcpu",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_fit_the_kernel_comm_limit() {
        assert_eq!(ThreadKind::Vmm.thread_name(0), "vmm");
        assert_eq!(ThreadKind::Vcpu.thread_name(1), "vcpu1");
        // comm is 15 bytes plus NUL; KVM allows at most a few hundred vCPUs.
        assert!(ThreadKind::Vcpu.thread_name(999).len() <= 15);
    }
}

//! The reaper's filter. The reaper is the process sandvmm forks right after creating
//! its VM (vmm/src/teardown.rs says why): it holds the VM fd, waits on a pipe until
//! sandvmm is gone, closes the VM fd, and exits. Its filter allows exactly that, with
//! every argument pinned: `read` of the wait pipe, `close` of the VM fd, `exit_group`.
//! Any other call kills it, whatever the run's `--sandbox` mode: the reaper is
//! sandvmm's own code, with nothing for a policy file to tune.

use std::os::fd::RawFd;

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::{CompiledFilter, FilterError, ThreadKind};

/// The reaper's filter, for its wait pipe `wait_fd` and the VM fd `vm_fd`.
pub fn filter(wait_fd: RawFd, vm_fd: RawFd) -> Result<CompiledFilter, FilterError> {
    // Reported as the VMM's: the reaper is the VMM thread's fork.
    let fail = |what: String| FilterError::Compile {
        thread: ThreadKind::Vmm,
        what,
    };
    let mut ctx =
        ScmpFilterContext::new(ScmpAction::KillProcess).map_err(|e| fail(e.to_string()))?;
    let fd_is = |fd: RawFd| ScmpArgCompare::new(0, ScmpCompareOp::Equal, fd as u64);
    let rules = [
        ("read", Some(fd_is(wait_fd))),
        ("close", Some(fd_is(vm_fd))),
        ("exit_group", None),
    ];
    for (name, condition) in rules {
        let syscall = ScmpSyscall::from_name(name).map_err(|e| fail(e.to_string()))?;
        let added = match condition {
            Some(c) => ctx.add_rule_conditional(ScmpAction::Allow, syscall, &[c]),
            None => ctx.add_rule(ScmpAction::Allow, syscall),
        };
        added.map_err(|e| fail(format!("{name}: {e}")))?;
    }
    CompiledFilter::from_context(ThreadKind::Vmm, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{self, Action, SeccompData, AUDIT_ARCH_X86_64};

    fn verdict(filter: &CompiledFilter, nr: libc::c_long, args: [u64; 6]) -> Action {
        let data = SeccompData {
            nr: nr as i32,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        };
        Action::from_ret(bpf::run(filter.program(), &data).unwrap())
    }

    /// Run by the independent interpreter: the three pinned calls pass, the same calls
    /// on other fds and everything else kill the process.
    #[test]
    fn allows_only_the_pinned_calls() {
        let f = filter(7, 5).unwrap();
        bpf::check(f.program()).unwrap();
        let allowed = [
            (libc::SYS_read, 7),
            (libc::SYS_close, 5),
            (libc::SYS_exit_group, 0),
        ];
        for (nr, fd) in allowed {
            assert_eq!(verdict(&f, nr, [fd, 0, 0, 0, 0, 0]), Action::Allow, "{nr}");
        }
        let refused = [
            (libc::SYS_read, 5),
            (libc::SYS_read, 7 | 1 << 32),
            (libc::SYS_close, 7),
            (libc::SYS_close, 0),
            (libc::SYS_write, 7),
            (libc::SYS_ioctl, 5),
            (libc::SYS_exit, 0),
            (libc::SYS_kill, 1),
            (libc::SYS_execve, 0),
            (libc::SYS_openat, 0),
        ];
        for (nr, fd) in refused {
            assert_eq!(
                verdict(&f, nr, [fd, 0, 0, 0, 0, 0]),
                Action::KillProcess,
                "{nr} {fd:#x}"
            );
        }
    }
}

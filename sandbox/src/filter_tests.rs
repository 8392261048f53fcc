//! Tests that run real filters: each case forks a child that installs a filter and
//! makes one system call, and the parent checks how the child ended. The test harness
//! itself is never filtered.

use super::*;
use crate::policy::{CondOp, Condition, Rule};
use crate::report;

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Killed(i32),
}

/// Forks; the child installs `filter` (unless None) and runs `body`, then exits 0.
/// `stderr` optionally receives the child's fd 2.
fn in_child(filter: Option<&CompiledFilter>, stderr: Option<i32>, body: impl FnOnce()) -> End {
    // SAFETY: the child runs only the filter install and raw system calls.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        if let Some(fd) = stderr {
            // SAFETY: redirecting the child's stderr to a pipe we own.
            unsafe { libc::dup2(fd, 2) };
        }
        if let Some(f) = filter {
            if f.install().is_err() {
                // SAFETY: leaving the child without running destructors.
                unsafe { libc::_exit(90) };
            }
        }
        body();
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        End::Killed(libc::WTERMSIG(status))
    } else {
        End::Exited(libc::WEXITSTATUS(status))
    }
}

fn sandbox(mode: Mode) -> Sandbox {
    Sandbox::builtin(mode, Profile::Default, Optimize::Priority)
}

/// The facts every test filter is compiled with: made-up fds, so a pinned call
/// made in a test child touches at most the child's own fds, with null buffers.
fn facts() -> RuntimeFacts {
    RuntimeFacts::sample()
}

fn compiled(thread: ThreadKind, mode: Mode) -> CompiledFilter {
    sandbox(mode).compile(thread, &facts()).unwrap().unwrap()
}

/// A value satisfying `c`, and one violating it.
fn satisfying(c: &Condition) -> (u64, u64) {
    let values = c.resolve(&facts());
    let value = values[0];
    match c.op {
        CondOp::Eq => {
            let bad = (value ^ 1..).find(|v| !values.contains(v)).unwrap();
            (value, bad)
        }
        CondOp::Ne => (value ^ 0x1, value),
        CondOp::Lt | CondOp::Le => (value.saturating_sub(1), value + 1),
        CondOp::Gt | CondOp::Ge => (value + 1, value.saturating_sub(1)),
        CondOp::MaskedEq(mask) => (value, (value & !mask) | (!value & mask)),
    }
}

/// Arguments for `rule`'s call: bad fds and null pointers so that the call itself
/// fails harmlessly, with the conditioned arguments set as given.
fn args_for(rule: &Rule, violate: Option<usize>) -> [u64; 6] {
    let mut args = [u64::MAX, 0, 0, 0, 0, 0]; // fd -1, NULL, 0, ...
    for (i, c) in rule.conditions.iter().enumerate() {
        let (good, bad) = satisfying(c);
        args[c.arg as usize] = if violate == Some(i) { bad } else { good };
    }
    args
}

/// Calls that do not return or would disturb the child, tested separately.
const NOT_CALLED_DIRECTLY: &[&str] = &["rt_sigreturn", "exit", "exit_group", "clone3"];

fn raw_syscall(nr: i32, a: [u64; 6]) -> i64 {
    // SAFETY: the arguments are chosen so that every call fails or does nothing.
    unsafe { libc::syscall(nr as libc::c_long, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

#[test]
fn every_rule_allows_its_arguments_and_kills_on_a_mutated_one() {
    for thread in ThreadKind::ALL {
        let filter = compiled(thread, Mode::Enforce);
        let sb = sandbox(Mode::Enforce);
        for rule in sb.policy.rules_for(thread, Profile::Default) {
            if NOT_CALLED_DIRECTLY.contains(&rule.syscall.as_str()) {
                continue;
            }
            let allowed = args_for(rule, None);
            let end = in_child(Some(&filter), None, || {
                raw_syscall(rule.nr, allowed);
            });
            assert_eq!(
                end,
                End::Exited(0),
                "{thread}: {} {allowed:x?} should pass",
                rule.syscall
            );
            for i in 0..rule.conditions.len() {
                let mutated = args_for(rule, Some(i));
                // Another rule for the same call may allow the mutated value.
                let allowed_elsewhere =
                    sb.policy.rules_for(thread, Profile::Default).any(|other| {
                        other.nr == rule.nr && other != rule && args_for(other, None) == mutated
                    });
                if allowed_elsewhere {
                    continue;
                }
                let end = in_child(Some(&filter), None, || {
                    raw_syscall(rule.nr, mutated);
                });
                assert_eq!(
                    end,
                    End::Killed(libc::SIGSYS),
                    "{thread}: {} {mutated:x?} should be killed",
                    rule.syscall
                );
            }
        }
    }
}

#[test]
fn calls_outside_the_policy_kill_with_sigsys() {
    for thread in ThreadKind::ALL {
        let filter = compiled(thread, Mode::Enforce);
        for nr in [
            libc::SYS_getppid,
            libc::SYS_openat,
            libc::SYS_socket,
            libc::SYS_execve,
            libc::SYS_ptrace,
        ] {
            let end = in_child(Some(&filter), None, || {
                raw_syscall(nr as i32, [u64::MAX, 0, 0, 0, 0, 0]);
            });
            assert_eq!(end, End::Killed(libc::SIGSYS), "{thread}: syscall {nr}");
        }
    }
}

#[test]
fn prot_exec_is_denied() {
    for thread in ThreadKind::ALL {
        let filter = compiled(thread, Mode::Enforce);
        let rw = in_child(Some(&filter), None, || {
            // SAFETY: an anonymous private mapping, never used.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        });
        assert_eq!(rw, End::Exited(0), "{thread}: plain mmap");
        let exec = in_child(Some(&filter), None, || {
            // SAFETY: as above, but executable: the filter must stop it.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        });
        assert_eq!(exec, End::Killed(libc::SIGSYS), "{thread}: mmap PROT_EXEC");
        let mut page = vec![0u8; 8192];
        let aligned = ((page.as_mut_ptr() as usize + 4095) & !4095) as *mut libc::c_void;
        let rw = in_child(Some(&filter), None, || {
            // SAFETY: re-protecting a page of our own heap with the same access.
            unsafe { libc::mprotect(aligned, 4096, libc::PROT_READ | libc::PROT_WRITE) };
        });
        assert_eq!(rw, End::Exited(0), "{thread}: mprotect RW");
        let exec = in_child(Some(&filter), None, || {
            // SAFETY: as above, making it executable: the filter must stop it.
            unsafe { libc::mprotect(aligned, 4096, libc::PROT_READ | libc::PROT_EXEC) };
        });
        assert_eq!(
            exec,
            End::Killed(libc::SIGSYS),
            "{thread}: mprotect PROT_EXEC"
        );
    }
}

#[test]
fn clone3_returns_enosys() {
    for thread in ThreadKind::ALL {
        let filter = compiled(thread, Mode::Enforce);
        let end = in_child(Some(&filter), None, || {
            let rc = raw_syscall(libc::SYS_clone3 as i32, [0; 6]);
            let errno = std::io::Error::last_os_error().raw_os_error();
            let code = if rc == -1 && errno == Some(libc::ENOSYS) {
                0
            } else {
                1
            };
            // SAFETY: leaving the child.
            unsafe { libc::_exit(code) };
        });
        assert_eq!(end, End::Exited(0), "{thread}");
    }
}

#[test]
fn exit_is_allowed_where_the_policy_says() {
    let vcpu = compiled(ThreadKind::Vcpu, Mode::Enforce);
    let end = in_child(Some(&vcpu), None, || {
        raw_syscall(libc::SYS_exit as i32, [7, 0, 0, 0, 0, 0]);
    });
    assert_eq!(end, End::Exited(7));
    let vmm = compiled(ThreadKind::Vmm, Mode::Enforce);
    let end = in_child(Some(&vmm), None, || {
        raw_syscall(libc::SYS_exit_group as i32, [5, 0, 0, 0, 0, 0]);
    });
    assert_eq!(end, End::Exited(5));
}

#[test]
fn trap_mode_names_the_call_and_the_thread() {
    report::install_trap_handler().unwrap();
    let filter = compiled(ThreadKind::Vcpu, Mode::Trap);
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the pipe's two ends.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let end = in_child(Some(&filter), Some(fds[1]), || {
        raw_syscall(libc::SYS_getpid as i32, [1, 2, 3, 4, 5, 6]);
    });
    // SAFETY: closing our write end so the read below sees EOF.
    unsafe { libc::close(fds[1]) };
    let mut buf = vec![0u8; 512];
    // SAFETY: reads into a buffer we own.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: closing the read end.
    unsafe { libc::close(fds[0]) };
    let text = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    assert_eq!(end, End::Exited(report::TRAP_EXIT_STATUS), "{text}");
    assert_eq!(text, "sandbox: blocked syscall getpid (39) in thread unknown, args [0x1, 0x2, 0x3, 0x4, 0x5, 0x6]\n");
}

#[test]
fn log_mode_lets_calls_through() {
    let filter = compiled(ThreadKind::Vcpu, Mode::Log);
    let end = in_child(Some(&filter), None, || {
        raw_syscall(libc::SYS_getpid as i32, [0; 6]);
    });
    assert_eq!(end, End::Exited(0));
}

#[test]
fn off_compiles_nothing_and_both_layouts_compile() {
    assert!(sandbox(Mode::Off)
        .compile(ThreadKind::Vmm, &facts())
        .unwrap()
        .is_none());
    for optimize in [Optimize::Priority, Optimize::Tree] {
        let sb = Sandbox::builtin(Mode::Enforce, Profile::Strict, optimize);
        for thread in ThreadKind::ALL {
            let f = sb.compile(thread, &facts()).unwrap().unwrap();
            assert!(f.len() > 4 && f.to_bytes().len() == 8 * f.len());
        }
    }
}

#[test]
fn priorities_follow_measured_counts() {
    let mut sb = sandbox(Mode::Enforce);
    sb.frequency = Frequency::parse("f", "[vcpu]\nwrite = 10\nioctl = 1000\n").unwrap();
    let prio = sb.priorities_for(ThreadKind::Vcpu);
    let of = |name: &str| {
        let nr = libseccomp::ScmpSyscall::from_name(name)
            .unwrap()
            .as_raw_syscall();
        prio.iter().find(|(n, _)| *n == nr).unwrap().1
    };
    assert_eq!(of("ioctl"), 255);
    assert_eq!(of("write"), 254);
    assert_eq!(of("futex"), 0, "never seen");
}

#[test]
fn a_rule_naming_a_role_without_fds_allows_nothing() {
    // No tap in this VM: TUNSETOFFLOAD is refused on every fd, the sample's tap too.
    let facts = facts().with(crate::FdRole::Tap, []);
    let filter = sandbox(Mode::Enforce)
        .compile(ThreadKind::Vmm, &facts)
        .unwrap()
        .unwrap();
    let tunsetoffload = crate::consts::value_of("TUNSETOFFLOAD").unwrap();
    for fd in [15, u64::MAX] {
        let end = in_child(Some(&filter), None, || {
            raw_syscall(libc::SYS_ioctl as i32, [fd, tunsetoffload, 0, 0, 0, 0]);
        });
        assert_eq!(end, End::Killed(libc::SIGSYS), "fd {fd}");
    }
}

/// Facts of a run without `--snapshot-to`: the sample without the snapshot roles.
fn facts_without_snapshots() -> RuntimeFacts {
    facts()
        .with(FdRole::Snapshot, [])
        .with(FdRole::SnapshotVm, [])
        .with(FdRole::SnapshotVcpu, [])
}

/// The built-in policy's text without the rules that name a snapshot role.
fn builtin_without_snapshot_rules() -> String {
    crate::policy::BUILTIN
        .split("\n\n")
        .filter(|block| !block.contains("$snap"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The VMM thread's and the first vCPU's programs, as bytes.
fn programs(sandbox: &Sandbox, facts: &RuntimeFacts) -> (Vec<u8>, Vec<u8>) {
    let filters = sandbox.filters(facts, &[21]).unwrap();
    let vcpu = filters.vcpus[0].as_ref().unwrap().to_bytes();
    (filters.vmm.unwrap().to_bytes(), vcpu)
}

/// docs/SANDBOX.md, "Snapshots under the sandbox": the snapshot rules allow nothing in a
/// run without `--snapshot-to`, so its programs are exactly those of a policy without
/// them; with snapshots only the VMM thread's program changes.
#[test]
fn without_snapshots_the_snapshot_rules_compile_to_nothing() {
    let with = sandbox(Mode::Enforce);
    let mut without = sandbox(Mode::Enforce);
    without.policy = Policy::parse("test", &builtin_without_snapshot_rules()).unwrap();
    let count = |s: &Sandbox, t| s.policy.rules_for(t, Profile::Default).count();
    assert_eq!(
        count(&without, ThreadKind::Vmm) + 4,
        count(&with, ThreadKind::Vmm)
    );
    assert_eq!(
        count(&without, ThreadKind::Vcpu),
        count(&with, ThreadKind::Vcpu)
    );
    let facts = facts_without_snapshots();
    let plain = programs(&with, &facts);
    assert_eq!(plain, programs(&without, &facts));
    let snapshots = facts
        .with(FdRole::SnapshotVm, [5])
        .with(FdRole::Snapshot, [29])
        .with(FdRole::SnapshotVcpu, [21]);
    let (vmm, vcpu) = programs(&with, &snapshots);
    assert_ne!(vmm, plain.0);
    assert_eq!(vcpu, plain.1, "a vCPU filter is the same with snapshots");
}

/// In a run with snapshots the VMM thread may read vCPU state through the vCPU fds
/// and no other fd.
#[test]
fn vcpu_state_is_read_only_through_vcpu_fds() {
    let facts = facts_without_snapshots()
        .with(FdRole::SnapshotVm, [5])
        .with(FdRole::SnapshotVcpu, [21]);
    let filters = sandbox(Mode::Enforce).filters(&facts, &[21]).unwrap();
    let vmm = filters.vmm.as_ref().unwrap();
    let get_lapic = crate::consts::KVM_GET_LAPIC;
    // ioctl on a closed fd number: allowed calls fail with EBADF, blocked ones kill.
    let vcpu_fd = in_child(Some(vmm), None, || {
        // SAFETY: an ioctl on an fd the child does not hold; it only fails.
        unsafe { libc::ioctl(21, get_lapic as _, std::ptr::null_mut::<u8>()) };
    });
    assert_eq!(vcpu_fd, End::Exited(0));
    let other = in_child(Some(vmm), None, || {
        // SAFETY: as above.
        unsafe { libc::ioctl(22, get_lapic as _, std::ptr::null_mut::<u8>()) };
    });
    assert_eq!(other, End::Killed(libc::SIGSYS));
}

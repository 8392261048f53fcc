//! The interpreter against libseccomp's programs and the running kernel: libseccomp
//! filters over every syscall number and argument edge case, the built-in filters,
//! and, in forked children, which programs the kernel loads and what it does with
//! real system calls.

use super::*;
use crate::consts::KVM_RUN;

// Programs compiled by libseccomp.

/// The test policy: read, getppid, exit_group, write of at most 4096 bytes, ioctl
/// KVM_RUN, mmap without PROT_EXEC; close fails with EPERM; anything else gets
/// `default`.
fn libseccomp_filter(default: ScmpAction, badarch: Option<ScmpAction>, optimize: u32) -> Program {
    let mut ctx = ScmpFilterContext::new(default).unwrap();
    let nr = |n: libc::c_long| ScmpSyscall::from(n as i32);
    for n in [libc::SYS_read, libc::SYS_getppid, libc::SYS_exit_group] {
        ctx.add_rule_exact(ScmpAction::Allow, nr(n)).unwrap();
    }
    let conditional = [
        (
            libc::SYS_write,
            ScmpArgCompare::new(2, ScmpCompareOp::LessOrEqual, 4096),
        ),
        (
            libc::SYS_ioctl,
            ScmpArgCompare::new(1, ScmpCompareOp::Equal, KVM_RUN),
        ),
        (
            libc::SYS_mmap,
            ScmpArgCompare::new(2, ScmpCompareOp::MaskedEqual(libc::PROT_EXEC as u64), 0),
        ),
    ];
    for (n, cmp) in conditional {
        ctx.add_rule_conditional_exact(ScmpAction::Allow, nr(n), &[cmp])
            .unwrap();
    }
    ctx.add_rule_exact(ScmpAction::Errno(libc::EPERM), nr(libc::SYS_close))
        .unwrap();
    if let Some(action) = badarch {
        ctx.set_act_badarch(action).unwrap();
    }
    ctx.set_ctl_optimize(optimize).unwrap();
    to_program(&export_bpf(&ctx).unwrap())
}

/// What the test policy says for `d`, worked out by hand. libseccomp's
/// `_gen_bpf_arch` (src/gen_bpf.c) sends other arches and x32 numbers (at or above
/// X32_SYSCALL_BIT, unsigned) to the bad-arch action, except -1, which tracers use
/// to skip a call and which goes through the rules (to the default).
fn policy_says(d: &SeccompData, default: Action, badarch: Action) -> Action {
    let nr = d.nr as u32;
    if d.arch != AUDIT_ARCH_X86_64 || (nr >= X32_SYSCALL_BIT && nr != u32::MAX) {
        return badarch;
    }
    let allowed = match libc::c_long::from(d.nr) {
        libc::SYS_read | libc::SYS_getppid | libc::SYS_exit_group => true,
        libc::SYS_write => d.args[2] <= 4096,
        libc::SYS_ioctl => d.args[1] == KVM_RUN,
        libc::SYS_mmap => d.args[2] & libc::PROT_EXEC as u64 == 0,
        libc::SYS_close => return Action::Errno(libc::EPERM as u16),
        _ => false,
    };
    if allowed {
        Action::Allow
    } else {
        default
    }
}

/// Argument vectors around each condition's edges, in both halves of 64 bits.
fn edge_args() -> Vec<[u64; 6]> {
    let mut all = vec![[0; 6], [u64::MAX; 6]];
    let ioctl = [
        KVM_RUN,
        KVM_RUN + 1,
        KVM_RUN - 1,
        1 << 32 | KVM_RUN,
        u64::MAX << 32 | KVM_RUN,
    ];
    let write = [
        4095,
        4096,
        4097,
        1 << 32,
        1 << 32 | 4096,
        u64::MAX,
        0x8000_0000,
    ];
    let mmap = [3, 4, 7, 1 << 32 | 3, 1 << 32 | 4, u64::MAX ^ 4];
    for (arg, values) in [(1, &ioctl[..]), (2, &write[..]), (2, &mmap[..])] {
        for &v in values {
            let mut args = [0; 6];
            args[arg] = v;
            all.push(args);
        }
    }
    all
}

#[test]
fn libseccomp_filters_do_what_the_policy_says_for_every_syscall_number() {
    let numbers: Vec<i32> = (0..=1023)
        .chain((0..=1023).map(|n| (X32_SYSCALL_BIT | n) as i32))
        .chain([-1, -2, i32::MIN, i32::MAX, X32_SYSCALL_BIT as i32 - 1])
        .collect();
    let arches = [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xc000_00b7, 0];
    let configs = [
        (
            ScmpAction::KillProcess,
            Action::KillProcess,
            None,
            Action::KillThread,
        ),
        (
            ScmpAction::Trap,
            Action::Trap(0),
            Some(ScmpAction::KillProcess),
            Action::KillProcess,
        ),
        (
            ScmpAction::Errno(libc::ENOSYS),
            Action::Errno(38),
            None,
            Action::KillThread,
        ),
    ];
    let args = edge_args();
    let mut allowed = 0;
    for (default, default_action, badarch, badarch_action) in configs {
        for optimize in [1, 2] {
            let program = libseccomp_filter(default, badarch, optimize);
            check(&program).unwrap();
            for &arch in &arches {
                for &nr in &numbers {
                    // Argument edge cases matter only for the conditional rules.
                    let conditional = [libc::SYS_write, libc::SYS_ioctl, libc::SYS_mmap]
                        .contains(&libc::c_long::from(nr));
                    for &args in &args[..if conditional { args.len() } else { 2 }] {
                        let d = SeccompData {
                            nr,
                            arch,
                            instruction_pointer: 0x7f12_3456_789a,
                            args,
                        };
                        let got = Action::from_ret(run(&program, &d).unwrap());
                        let want = policy_says(&d, default_action, badarch_action);
                        assert_eq!(got, want, "optimize {optimize}, {d:x?}");
                        allowed += usize::from(got == Action::Allow);
                    }
                }
            }
        }
    }
    assert!(allowed > 100, "{allowed}");
}

#[test]
fn the_builtin_filters_load_and_kill_calls_outside_the_policy() {
    for optimize in [Optimize::Priority, Optimize::Tree] {
        for (mode, action) in [
            (Mode::Enforce, Action::KillProcess),
            (Mode::Trap, Action::Trap(0)),
        ] {
            for thread in ThreadKind::ALL {
                let filter = Sandbox::builtin(mode, Profile::Default, optimize);
                let filter = filter
                    .compile(thread, &crate::RuntimeFacts::sample())
                    .unwrap()
                    .unwrap();
                let program = to_program(&filter.to_bytes());
                check(&program).unwrap();
                for nr in [
                    libc::SYS_getppid,
                    libc::SYS_openat,
                    libc::SYS_socket,
                    libc::SYS_execve,
                    libc::SYS_ptrace,
                ] {
                    let d = SeccompData {
                        nr: nr as i32,
                        arch: AUDIT_ARCH_X86_64,
                        instruction_pointer: 0,
                        args: [0; 6],
                    };
                    let got = Action::from_ret(run(&program, &d).unwrap());
                    assert_eq!(got, action, "{thread} {mode:?} syscall {nr}");
                    let i386 = SeccompData {
                        arch: AUDIT_ARCH_I386,
                        ..d
                    };
                    // Another ABI meets the mode's own action, never libseccomp's
                    // default of killing the calling thread alone.
                    let got = Action::from_ret(run(&program, &i386).unwrap());
                    assert_eq!(got, action, "{thread} i386 syscall {nr}");
                    let x32 = SeccompData {
                        nr: nr as i32 | X32_SYSCALL_BIT as i32,
                        ..d
                    };
                    let got = Action::from_ret(run(&program, &x32).unwrap());
                    assert_eq!(got, action, "{thread} x32 syscall {nr}");
                }
            }
        }
    }
}

// Cross-checks against the running kernel.

/// What a forked child saw of one system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// seccomp() refused the filter, with this errno.
    Refused(i32),
    Returned(i64),
    Failed(i32),
    /// SIGSYS reached the child's handler.
    Trapped,
    Killed(i32),
    /// The child exited with this status without reporting.
    Exited(i32),
}

const TRAPPED_STATUS: i32 = 77;

extern "C" fn exit_on_sigsys(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and ends the child.
    unsafe { libc::_exit(TRAPPED_STATUS) };
}

/// Forks a child that installs `program` (unless None), makes system call `nr` with
/// `args`, and reports the outcome through a pipe. The program must allow the
/// child's `write` to the pipe and its `exit_group`.
fn kernel_sees(program: Option<&[libc::sock_filter]>, nr: libc::c_long, args: [u64; 6]) -> Seen {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the pipe's two ends.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child makes only raw system calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let report = |words: [i64; 3]| {
            // SAFETY: writes our own array to the pipe, then leaves the child without
            // running destructors.
            unsafe {
                libc::write(fds[1], words.as_ptr().cast(), 24);
                libc::_exit(0)
            }
        };
        // SAFETY: no core files from the kills to come; a SIGSYS handler that only
        // calls _exit.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            let handler: extern "C" fn(libc::c_int) = exit_on_sigsys;
            libc::signal(libc::SIGSYS, handler as libc::sighandler_t);
        }
        if let Some(program) = program {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: prctl with constant arguments, then seccomp with a program that
            // outlives the call; the kernel copies it.
            let rc = unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog)
            };
            if rc != 0 {
                report([
                    0,
                    0,
                    std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(0)
                        .into(),
                ]);
            }
        }
        let a = args;
        // SAFETY: every call made here fails harmlessly or only reads a value.
        let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        report([1, rc, errno.into()]);
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let mut words = [0i64; 3];
    let n = if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        // SAFETY: reads into our own array.
        unsafe { libc::read(fds[0], words.as_mut_ptr().cast(), 24) }
    } else {
        0
    };
    // SAFETY: closing the read end.
    unsafe { libc::close(fds[0]) };
    match (n, words) {
        (24, [0, _, errno]) => Seen::Refused(errno as i32),
        (24, [_, -1, errno]) => Seen::Failed(errno as i32),
        (24, [_, rc, _]) => Seen::Returned(rc),
        _ if libc::WIFSIGNALED(status) => Seen::Killed(libc::WTERMSIG(status)),
        _ if libc::WEXITSTATUS(status) == TRAPPED_STATUS => Seen::Trapped,
        _ => Seen::Exited(libc::WEXITSTATUS(status)),
    }
}

/// Whether the kernel loads `program`; it refuses with EINVAL or not at all.
fn kernel_loads(program: &[libc::sock_filter]) -> bool {
    match kernel_sees(Some(program), libc::SYS_getppid, [0; 6]) {
        Seen::Refused(errno) => {
            assert_eq!(errno, libc::EINVAL, "{:?}", show(program));
            false
        }
        _ => true,
    }
}

/// What the kernel makes of a call that gets `action`, given what the call does
/// unfiltered (kernel/seccomp.c, __seccomp_filter).
fn outcome(action: Action, unfiltered: Seen) -> Seen {
    match action {
        Action::Allow | Action::Log => unfiltered,
        Action::Errno(0) => Seen::Returned(0),
        Action::Errno(errno) => Seen::Failed(i32::from(errno).min(4095)),
        Action::Trace(_) => Seen::Failed(libc::ENOSYS),
        Action::Trap(_) => Seen::Trapped,
        Action::KillProcess | Action::KillThread | Action::Unknown(_) => Seen::Killed(libc::SIGSYS),
    }
}

/// `body` guarded so that only getppid sees it: every other call (the child's report
/// and exit) is allowed. A is reset so that `body` starts as a whole program would.
fn on_getppid(body: &[libc::sock_filter]) -> Program {
    let mut program = vec![
        stmt(LD | ABS, 0),
        jump(JMP | JEQ | K, libc::SYS_getppid as u32, 1, 0),
        ret(SECCOMP_RET_ALLOW),
        stmt(LD | IMM, 0),
    ];
    program.extend_from_slice(body);
    program
}

#[test]
fn check_agrees_with_the_kernel_on_what_loads() {
    let mut programs: Vec<Program> = Vec::new();
    // Every 8-bit opcode and a few wider ones, with constants around each limit.
    let codes = (0..=0xff).chain([0x106, 0x8006, 0xffff]);
    for code in codes {
        for k in [0, 1, 4, 16, 32, 64] {
            programs.push(vec![
                stmt(LDX | IMM, 1),
                stmt(LD | IMM, SECCOMP_RET_ALLOW),
                stmt(code, k),
                ret(SECCOMP_RET_ALLOW),
            ]);
        }
    }
    for k in [0, 2, 60, 61, 62, 63, 64, 0xffff_f000, 0xffff_f004] {
        programs.push(vec![stmt(LD | ABS, k), ret(SECCOMP_RET_ALLOW)]);
    }
    for (jt, jf) in [(0, 1), (1, 0), (1, 1), (2, 0), (0, 2)] {
        programs.push(vec![
            jump(JMP | JGT | K, 0, jt, jf),
            ret(SECCOMP_RET_ALLOW),
            ret(1),
        ]);
    }
    for k in [0, 1, 2] {
        programs.push(vec![stmt(JMP | JA, k), ret(SECCOMP_RET_ALLOW), ret(1)]);
    }
    programs.push(vec![]);
    programs.push(vec![ret(SECCOMP_RET_ALLOW); 4096]);
    programs.push(vec![ret(SECCOMP_RET_ALLOW); 4097]);
    programs.push(vec![stmt(LD | IMM, 0)]);
    programs.push(on_getppid(&the_kernels_scratch_quirk()));
    programs.push(on_getppid(&[stmt(ST, 3), stmt(LD | MEM, 3), ret_a()]));
    programs.push(on_getppid(&[stmt(ST, 3), stmt(LD | MEM, 2), ret_a()]));
    let mut loaded = 0;
    for program in &programs {
        let kernel = kernel_loads(program);
        assert_eq!(
            check(program).is_ok(),
            kernel,
            "{:?}: kernel loads: {kernel}",
            show(program)
        );
        loaded += usize::from(kernel);
    }
    assert!(
        loaded > 150 && loaded < programs.len() - 1000,
        "{loaded} of {}",
        programs.len()
    );
}

#[test]
fn run_agrees_with_the_kernel_on_hand_assembled_programs() {
    let errno_a = |body: &[libc::sock_filter]| {
        let mut p = body.to_vec();
        p.extend([stmt(ALU | OR | K, SECCOMP_RET_ERRNO), ret_a()]);
        p
    };
    let bodies: Vec<Program> = vec![
        errno_a(&[
            stmt(LD | IMM, 1),
            stmt(LDX | IMM, 33),
            stmt(ALU | LSH | X, 0),
        ]),
        errno_a(&[
            stmt(LD | IMM, 0x8000_0000),
            stmt(LDX | IMM, 63),
            stmt(ALU | RSH | X, 0),
        ]),
        errno_a(&[stmt(LD | IMM, 0x8000_0001), stmt(ALU | MUL | K, 2)]),
        errno_a(&[stmt(LD | IMM, 0xffff), stmt(ALU | ADD | K, 0xffff_fff0)]),
        errno_a(&[stmt(LD | ABS, 24), stmt(ALU | AND | K, 0xfff)]),
        errno_a(&[stmt(LD | ABS, 28)]),
        errno_a(&[stmt(LD | ABS, 44), stmt(ALU | RSH | K, 20)]),
        errno_a(&[stmt(LD | LEN, 0)]),
        errno_a(&[
            stmt(LD | IMM, 9),
            stmt(ST, 3),
            stmt(LD | IMM, 0),
            stmt(LDX | MEM, 3),
            stmt(MISC | TXA, 0),
        ]),
        vec![stmt(LD | IMM, 0xfffa_fff9), stmt(ALU | NEG, 0), ret_a()],
        vec![
            stmt(LD | IMM, 7),
            stmt(ALU | DIV | X, 0),
            ret(SECCOMP_RET_ALLOW),
        ],
        vec![
            stmt(LD | IMM, 0xffff_ffff),
            jump(JMP | JGT | K, 0x7fff_ffff, 0, 1),
            ret(SECCOMP_RET_ERRNO | 1),
            ret(SECCOMP_RET_ERRNO | 2),
        ],
        vec![
            stmt(LD | IMM, 0x8000_0000),
            jump(JMP | JEQ | K, 0x8000_0000, 0, 1),
            ret(SECCOMP_RET_ERRNO | 3),
            ret(SECCOMP_RET_ERRNO | 4),
        ],
        vec![
            stmt(LD | ABS, 4),
            jump(JMP | JEQ | K, AUDIT_ARCH_X86_64, 0, 1),
            ret(SECCOMP_RET_ALLOW),
            ret(SECCOMP_RET_KILL_PROCESS),
        ],
        vec![ret(SECCOMP_RET_ERRNO | 5000)],
        vec![ret(SECCOMP_RET_ERRNO)],
        vec![ret(SECCOMP_RET_TRAP | 5)],
        vec![ret(SECCOMP_RET_TRACE | 1)],
        vec![ret(SECCOMP_RET_LOG)],
        vec![ret(SECCOMP_RET_KILL_THREAD)],
        vec![ret(SECCOMP_RET_KILL_PROCESS | 1)],
        vec![ret(0x0001_0000)], // no such action
    ];
    let args = [u64::MAX, 0x1_0000_0123, 0, 0x1234_5678_0000_0000, 0, 0];
    let unfiltered = kernel_sees(None, libc::SYS_getppid, args);
    assert_eq!(unfiltered, Seen::Returned(std::process::id().into()));
    for body in &bodies {
        let program = on_getppid(body);
        let d = SeccompData {
            nr: libc::SYS_getppid as i32,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        };
        let action = Action::from_ret(run(&program, &d).unwrap());
        let kernel = kernel_sees(Some(&program), libc::SYS_getppid, args);
        assert_eq!(
            kernel,
            outcome(action, unfiltered),
            "{action} from {:?}",
            show(body)
        );
    }
}

#[test]
fn run_agrees_with_the_kernel_on_libseccomp_filters() {
    let x32 = |nr: libc::c_long| nr | libc::c_long::from(X32_SYSCALL_BIT);
    let calls: [(libc::c_long, [u64; 6]); 10] = [
        (libc::SYS_getppid, [0; 6]),
        (libc::SYS_ioctl, [u64::MAX, KVM_RUN, 0, 0, 0, 0]),
        (libc::SYS_ioctl, [u64::MAX, 1 << 32 | KVM_RUN, 0, 0, 0, 0]),
        (libc::SYS_ioctl, [u64::MAX, KVM_RUN + 1, 0, 0, 0, 0]),
        (libc::SYS_read, [u64::MAX, 0, 0, 0, 0, 0]),
        (libc::SYS_close, [u64::MAX, 0, 0, 0, 0, 0]),
        (libc::SYS_getuid, [0; 6]),
        (libc::SYS_write, [u64::MAX, 0, 1 << 32, 0, 0, 0]),
        (x32(libc::SYS_getppid), [0; 6]),
        (-1, [0; 6]),
    ];
    for default in [
        ScmpAction::KillProcess,
        ScmpAction::Trap,
        ScmpAction::Errno(libc::EACCES),
    ] {
        for optimize in [1, 2] {
            let program = libseccomp_filter(default, None, optimize);
            for (nr, args) in calls {
                let d = SeccompData {
                    nr: nr as i32,
                    arch: AUDIT_ARCH_X86_64,
                    instruction_pointer: 0,
                    args,
                };
                let action = Action::from_ret(run(&program, &d).unwrap());
                let unfiltered = kernel_sees(None, nr, args);
                let kernel = kernel_sees(Some(&program), nr, args);
                assert_eq!(
                    kernel,
                    outcome(action, unfiltered),
                    "{default:?} optimize {optimize}: {action} for syscall {nr:#x} {args:x?}"
                );
            }
        }
    }
}

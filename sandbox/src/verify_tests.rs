//! Tests of the verifier: the built-in filters agree with their policy everywhere,
//! and a policy or program that is wrong is caught.

use super::*;
use crate::bpf::{SeccompData, AUDIT_ARCH_X86_64};
use crate::facts::FdRole;
use crate::policy::Policy;
use crate::{Optimize, Profile};

const MODES: [Mode; 3] = [Mode::Enforce, Mode::Trap, Mode::Log];

/// Facts unlike the sample's: high fd numbers, a pid above 16 bits, several taps.
fn other_facts() -> RuntimeFacts {
    let mut facts = RuntimeFacts::new(0x0012_3456);
    for (role, fds) in [
        (FdRole::Stdin, &[0][..]),
        (FdRole::Console, &[300]),
        (FdRole::Stderr, &[2]),
        (FdRole::Epoll, &[1023]),
        (FdRole::Event, &[40, 41, 42, 43, 44, 45]),
        (FdRole::Irq, &[50, 51, 52]),
        (FdRole::Kick, &[60, 61, 62, 63]),
        (FdRole::Tap, &[70, 71]),
        (FdRole::Disk, &[75, 76]),
        (FdRole::Helper, &[80]),
        (FdRole::Kvm, &[3, 4, 90, 91]),
        (FdRole::Vcpu, &[91]),
    ] {
        for fd in fds {
            facts.add(role, *fd);
        }
    }
    facts
}

#[test]
fn every_builtin_filter_does_what_its_policy_says() {
    let mut checked = 0;
    for facts in [RuntimeFacts::sample(), other_facts()] {
        for mode in MODES {
            for profile in [Profile::Default, Profile::Strict] {
                for optimize in [Optimize::Priority, Optimize::Tree] {
                    let sandbox = Sandbox::builtin(mode, profile, optimize);
                    for thread in ThreadKind::ALL {
                        let report = verify(&sandbox, thread, &facts).unwrap().unwrap();
                        assert!(
                            report.mismatches.is_empty(),
                            "{mode:?} {profile:?} {optimize:?} {thread}: {}",
                            report.mismatches[0]
                        );
                        assert!(report.cases > 3 * 1024, "{}", report.cases);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 3 * 2 * 2 * 2);
}

#[test]
fn pinned_values_and_their_neighbours_are_tried() {
    let sandbox = Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority);
    let facts = RuntimeFacts::sample();
    let cases = cases(&sandbox, ThreadKind::Vmm, &facts);
    let tgkill = |pid: u64| {
        cases
            .iter()
            .any(|d| d.nr == libc::SYS_tgkill as i32 && d.args[0] == pid)
    };
    assert!(tgkill(4242) && tgkill(4241) && tgkill(4243) && tgkill(4242 | 1 << 32));
    // The tap (fd 15) and its neighbours, for write.
    for fd in [14, 15, 16] {
        assert!(cases
            .iter()
            .any(|d| d.nr == libc::SYS_write as i32 && d.args[0] == fd));
    }
    let x32 = cases
        .iter()
        .filter(|d| d.nr as u32 & bpf::X32_SYSCALL_BIT != 0)
        .count();
    assert_eq!(x32, 1024);
}

#[test]
fn a_corrupted_program_is_caught() {
    let sandbox = Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority);
    let facts = RuntimeFacts::sample();
    let filter = sandbox.compile(ThreadKind::Vcpu, &facts).unwrap().unwrap();
    // Make every comparison with KVM_RUN's request compare with another one.
    let kvm_run = crate::consts::KVM_RUN as u32;
    let mut program = filter.program().to_vec();
    let mut changed = 0;
    for insn in &mut program {
        if insn.k == kvm_run {
            insn.k = kvm_run + 1;
            changed += 1;
        }
    }
    assert!(changed > 0);
    let bytes: Vec<u8> = program
        .iter()
        .flat_map(|f| {
            let mut b = f.code.to_ne_bytes().to_vec();
            b.extend([f.jt, f.jf]);
            b.extend(f.k.to_ne_bytes());
            b
        })
        .collect();
    let broken = CompiledFilter {
        thread: ThreadKind::Vcpu,
        program: crate::filter::to_program(&bytes),
    };
    let report = check_filter(&sandbox, ThreadKind::Vcpu, &facts, &broken);
    assert!(
        report
            .mismatches
            .iter()
            .any(|m| m.data.args[1] == crate::consts::KVM_RUN && m.got == Ok(Action::KillProcess)),
        "{report:?}"
    );
}

#[test]
fn overlapping_rules_that_disagree_are_reported() {
    let policy = Policy::parse(
        "overlap.toml",
        r#"
version = 1
[[vcpu]]
syscall = "ioctl"
args = ["arg1 < 0x100000010"]
reason = "allow below"
[[vcpu]]
syscall = "ioctl"
args = ["arg1 < 0x100000005"]
action = "errno:EPERM"
reason = "refuse further below"
"#,
    )
    .unwrap();
    let sandbox = Sandbox {
        policy,
        ..Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority)
    };
    let report = verify(&sandbox, ThreadKind::Vcpu, &RuntimeFacts::sample())
        .unwrap()
        .unwrap();
    assert!(report
        .mismatches
        .iter()
        .any(|m| m.expected == Expected::Ambiguous));
}

/// A policy of the shape GHSA-4q85-33p6-j5g6 is about: several 64-bit range
/// comparisons on one argument of one call.
const RANGES: &str = r#"
version = 1
[[vcpu]]
syscall = "ioctl"
args = ["arg1 <= 0x10"]
reason = "low requests"
[[vcpu]]
syscall = "ioctl"
args = ["arg1 >= 0x200000005"]
reason = "high requests"
"#;

fn libseccomp_before_2_6_1() -> bool {
    let v = libseccomp::ScmpVersion::current().unwrap();
    (v.major, v.minor, v.micro) < (2, 6, 1)
}

#[test]
fn libseccomp_2_5_miscompiles_64_bit_ranges_and_our_rules_avoid_it() {
    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
    // The shape handed to libseccomp as is: 0x11 is in neither range, yet 2.5 lets it
    // through. Its pseudo filter code is right; its BPF is not: after testing the low
    // word of the first range it tests the second range's high word against the
    // accumulator without loading it again.
    let mut ctx = ScmpFilterContext::new(ScmpAction::KillProcess).unwrap();
    for (op, v) in [
        (ScmpCompareOp::LessOrEqual, 0x10),
        (ScmpCompareOp::GreaterEqual, 0x2_0000_0005),
    ] {
        ctx.add_rule_conditional(
            ScmpAction::Allow,
            libc::SYS_ioctl as i32,
            &[ScmpArgCompare::new(1, op, v)],
        )
        .unwrap();
    }
    // (So that the child below can report.)
    ctx.add_rule(ScmpAction::Allow, libc::SYS_exit_group as i32)
        .unwrap();
    let raw = CompiledFilter::from_context(ThreadKind::Vcpu, &ctx).unwrap();
    let data = SeccompData {
        nr: libc::SYS_ioctl as i32,
        arch: AUDIT_ARCH_X86_64,
        instruction_pointer: 0,
        args: [u64::MAX, 0x11, 0, 0, 0, 0],
    };
    let raw_action = Action::from_ret(bpf::run(raw.program(), &data).unwrap());
    if libseccomp_before_2_6_1() {
        assert_eq!(
            raw_action,
            Action::Allow,
            "the libseccomp bug is not reproduced"
        );
        // And the kernel agrees with the interpreter: the call really goes through
        // (EBADF from ioctl on fd -1 rather than SIGSYS).
        // SAFETY: the child installs the filter, makes one ioctl on fd -1 and leaves.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = match raw.install() {
                // SAFETY: an ioctl on fd -1 fails without touching memory.
                Ok(()) => (unsafe { libc::ioctl(-1, 0x11, 0) } == -1) as i32,
                Err(_) => 2,
            };
            // SAFETY: leaving the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
            "{status:#x}"
        );
    }
    // The same policy through sandvmm's emitter: every case as the policy says.
    let sandbox = Sandbox {
        policy: Policy::parse("ranges.toml", RANGES).unwrap(),
        ..Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority)
    };
    let report = verify(&sandbox, ThreadKind::Vcpu, &RuntimeFacts::sample())
        .unwrap()
        .unwrap();
    assert!(report.mismatches.is_empty(), "{}", report.mismatches[0]);
    let ours = sandbox
        .compile(ThreadKind::Vcpu, &RuntimeFacts::sample())
        .unwrap()
        .unwrap();
    assert_eq!(
        Action::from_ret(bpf::run(ours.program(), &data).unwrap()),
        Action::KillProcess
    );
}

#[test]
fn random_policies_of_comparisons_compile_to_what_they_say() {
    // Small policies of every operator on one argument, with 64-bit values close to
    // each other: the search that found the ranges bug above, kept as a test of the
    // emitter.
    let ops = ["<", "<=", ">", ">=", "==", "!=", "& 0xffff0000ffff =="];
    let values = [
        "0x5",
        "0x10",
        "0x100000005",
        "0x100000010",
        "0x200000005",
        "0xffffffff",
    ];
    let actions = ["allow", "errno:EPERM", "errno:ENOENT"];
    let mut seed: u64 = 0x5eed_1234_5678;
    let mut pick = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut checked = 0;
    for _ in 0..300 {
        let mut text = String::from("version = 1\n");
        for _ in 0..2 + pick(3) {
            text.push_str(&format!(
                "[[vcpu]]\nsyscall = \"ioctl\"\nargs = [\"arg1 {} {}\"]\naction = \"{}\"\nreason = \"r\"\n",
                ops[pick(ops.len())],
                values[pick(values.len())],
                actions[pick(actions.len())]
            ));
        }
        // Masks that cannot match are refused by the parser.
        let Ok(policy) = Policy::parse("random.toml", &text) else {
            continue;
        };
        let sandbox = Sandbox {
            policy,
            ..Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority)
        };
        let report = verify(&sandbox, ThreadKind::Vcpu, &RuntimeFacts::sample())
            .unwrap()
            .unwrap();
        let wrong = report
            .mismatches
            .iter()
            .find(|m| m.expected != Expected::Ambiguous);
        assert!(wrong.is_none(), "{text}\n{}", wrong.unwrap());
        checked += 1;
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn range_blocks_cover_exactly_their_range() {
    let inside = |blocks: &[(u64, u64)], x: u64| blocks.iter().filter(|(m, b)| x & m == *b).count();
    for (first, last) in [
        (0, 0),
        (0, 0x10),
        (5, 5),
        (5, 0x2_0000_0004),
        (0x11, u64::MAX),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
        (0x8000_0000_0000_0000, u64::MAX - 1),
    ] {
        let blocks = crate::emit::range_blocks(first, last);
        assert!(blocks.len() <= 128);
        for x in [
            0,
            1,
            first.wrapping_sub(1),
            first,
            first.wrapping_add(1),
            last.wrapping_sub(1),
            last,
            last.wrapping_add(1),
            u64::MAX,
            0x1_0000_0000,
        ] {
            let want = usize::from((first..=last).contains(&x));
            assert_eq!(inside(&blocks, x), want, "{first:#x}..={last:#x} at {x:#x}");
        }
    }
}

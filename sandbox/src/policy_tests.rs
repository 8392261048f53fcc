//! Tests of the policy and frequency formats, and of the built-in policy itself.

use super::*;
use crate::facts::{Fact, FdRole, RuntimeFacts};

const FILE: &str = "test.toml";

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(FILE, text)
}

#[test]
fn builtin_policy_and_table_parse() {
    let p = Policy::builtin();
    assert!(p.rules[&ThreadKind::Vcpu]
        .iter()
        .any(|r| r.syscall == "ioctl"));
    let f = Frequency::builtin();
    assert!(f.count(ThreadKind::Vcpu, "ioctl") > 0);
}

#[test]
fn builtin_policy_has_no_dead_rules() {
    // Every allowed call was seen in the measured workload, or says why it is needed.
    let dead = Policy::builtin().dead_rules(&Frequency::builtin());
    assert!(
        dead.is_empty(),
        "rules never seen in the frequency table and not marked rare: {dead:?}"
    );
}

#[test]
fn builtin_policy_never_allows_the_dangerous_calls() {
    let forbidden = [
        "open",
        "openat",
        "openat2",
        "creat",
        "socket",
        "connect",
        "bind",
        "listen",
        "accept",
        "accept4",
        "execve",
        "execveat",
        "fork",
        "vfork",
        "clone",
        "ptrace",
        "mount",
        "umount2",
        "setuid",
        "setgid",
        "setreuid",
        "setresuid",
        "setfsuid",
        "capset",
        "process_vm_writev",
        "process_vm_readv",
        "kexec_load",
        "bpf",
        "perf_event_open",
        "init_module",
        "finit_module",
        "unshare",
        "setns",
        "chroot",
        "pivot_root",
        "pkey_mprotect",
        "mremap",
        "memfd_create",
        "userfaultfd",
        "io_uring_setup",
    ];
    for (thread, rules) in &Policy::builtin().rules {
        for r in rules {
            assert!(
                !forbidden.contains(&r.syscall.as_str()),
                "{thread} allows {}",
                r.syscall
            );
        }
    }
}

#[test]
fn builtin_mmap_and_mprotect_rules_refuse_prot_exec_and_ioctl_rules_name_their_request() {
    for rules in Policy::builtin().rules.values() {
        for r in rules {
            if r.syscall == "mmap" || r.syscall == "mprotect" {
                assert!(
                    r.conditions
                        .contains(&Condition::new(2, CondOp::MaskedEq(4), 0)),
                    "{} may map executable memory",
                    r.syscall
                );
            }
            if r.syscall == "mmap" {
                let flags = r
                    .conditions
                    .iter()
                    .find(|c| c.arg == 3)
                    .expect("mmap flags");
                for v in flags.resolve(&RuntimeFacts::default()) {
                    assert_eq!(v & 0x01, 0, "MAP_SHARED allowed");
                    assert_eq!(v & 0x22, 0x22, "not private and anonymous");
                }
            }
            if r.syscall == "ioctl" {
                assert!(
                    r.conditions
                        .iter()
                        .any(|c| c.arg == 1 && c.op == CondOp::Eq),
                    "unrestricted ioctl"
                );
            }
        }
    }
}

#[test]
fn builtin_policy_pins_fds_pid_futex_ops_and_madvise_advice() {
    let pinned = |r: &Rule, arg: u32| r.conditions.iter().any(|c| c.arg == arg);
    for (thread, rules) in &Policy::builtin().rules {
        for r in rules {
            let want: &[u32] = match r.syscall.as_str() {
                "read" | "write" | "close" | "epoll_wait" | "tgkill" => &[0],
                "ioctl" | "fcntl" => &[0, 1],
                "epoll_ctl" => &[0, 2],
                "futex" => &[1],
                "madvise" => &[2],
                _ => &[],
            };
            for arg in want {
                assert!(pinned(r, *arg), "{thread} {}: arg{arg} is free", r.syscall);
            }
            if r.syscall == "futex" {
                let ops = r.conditions[0].resolve(&RuntimeFacts::default());
                // WAIT, WAKE and WAIT_BITSET only: no PI (6-8, 11-13), no requeue (3-4).
                assert!(
                    ops.iter().all(|op| [0, 1, 9].contains(&(op & 0x7f))),
                    "{ops:?}"
                );
            }
            if r.syscall == "madvise" {
                assert_eq!(r.conditions[0].resolve(&RuntimeFacts::default()), [4]);
            }
            if r.syscall == "tgkill" {
                assert!(r.conditions[0].values.contains(&Operand::Fact(Fact::Pid)));
            }
        }
    }
}

#[test]
fn conditions() {
    assert_eq!(
        parse_condition("arg1 == KVM_RUN"),
        Ok(Condition::new(1, CondOp::Eq, 0xae80))
    );
    assert_eq!(
        parse_condition("arg2 & PROT_EXEC == 0"),
        Ok(Condition::new(2, CondOp::MaskedEq(4), 0))
    );
    assert_eq!(
        parse_condition("arg0 <= 0x10"),
        Ok(Condition::new(0, CondOp::Le, 16))
    );
    assert_eq!(
        parse_condition("arg3 != PROT_READ|PROT_WRITE"),
        Ok(Condition::new(3, CondOp::Ne, 3))
    );
    assert_eq!(
        parse_condition("arg0 == $pid"),
        Ok(Condition {
            arg: 0,
            op: CondOp::Eq,
            values: vec![Operand::Fact(Fact::Pid)]
        })
    );
    let set = parse_condition("arg0 in {$tap, $irq, 7, PROT_READ|PROT_WRITE}").unwrap();
    assert_eq!(
        set.values,
        [
            Operand::Fact(Fact::Fds(FdRole::Tap)),
            Operand::Fact(Fact::Fds(FdRole::Irq)),
            Operand::Const(7),
            Operand::Const(3)
        ]
    );
    assert_eq!(set.to_string(), "arg0 in {$tap, $irq, 0x7, 0x3}");
    let mut facts = RuntimeFacts::new(9);
    facts.add(FdRole::Tap, 12).add(FdRole::Irq, 3);
    assert_eq!(set.resolve(&facts), [3, 7, 12]);
    assert!(set.holds(12, &facts) && !set.holds(13, &facts));
    // A value with bits in the high half is not the fd.
    assert!(!set.holds(12 | 1 << 32, &facts));
    for bad in [
        "arg0 < $pid",
        "arg0 == $nope",
        "arg0 in $tap",
        "arg0 in {$tap,}",
        "arg0 & $tap == 0",
        "",
        "arg6 == 1",
        "x == 1",
        "arg1 = 1",
        "arg1 == NOPE",
        "arg1 & 4 != 0",
        "arg1 ==",
        "arg1 == 1 2",
    ] {
        assert!(parse_condition(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_small_policy_with_every_feature() {
    let p = parse(
        r#"
version = 1
[[vmm]]
syscall = "read"
reason = "r"
[[vmm]]
syscall = "ioctl"
args = ["arg1 == TUNSETOFFLOAD"]
reason = "tap offloads"
profiles = ["default"]
[[vcpu]]
syscall = "clone3"
action = "errno:ENOSYS"
reason = "fall back"
rare = "never"
"#,
    )
    .unwrap();
    assert_eq!(p.rules[&ThreadKind::Vmm].len(), 2);
    assert_eq!(p.rules_for(ThreadKind::Vmm, Profile::Strict).count(), 1);
    assert_eq!(p.rules_for(ThreadKind::Vmm, Profile::Default).count(), 2);
    assert_eq!(p.rules[&ThreadKind::Vcpu][0].action, RuleAction::Errno(38));
}

#[test]
fn syntax_errors_name_the_line() {
    let err = parse("version = 1\n\n[[vmm]]\nsyscall = \"read\"\nreason = \n").unwrap_err();
    assert!(matches!(err, PolicyError::Syntax { line: 5, .. }), "{err}");
    let unknown_field =
        parse("version = 1\n[[vmm]]\nsyscall = \"read\"\nreason = \"x\"\nallow = true\n")
            .unwrap_err();
    let text = unknown_field.to_string();
    assert!(text.contains("line 5") && text.contains("allow"), "{text}");
    assert!(!text.contains('\n'), "one line: {text:?}");
}

#[test]
fn meaning_errors_name_the_rule_and_field() {
    let cases = [
        ("syscall = \"no_such_call\"\nreason = \"x\"", "syscall"),
        ("syscall = \"read\"\nreason = \"\"", "reason"),
        (
            "syscall = \"read\"\nreason = \"x\"\nargs = [\"arg9 == 1\"]",
            "args",
        ),
        (
            "syscall = \"read\"\nreason = \"x\"\naction = \"kill\"",
            "action",
        ),
        (
            "syscall = \"read\"\nreason = \"x\"\nprofiles = [\"lax\"]",
            "profiles",
        ),
        ("syscall = \"read\"\nreason = \"x\"\nrare = \" \"", "rare"),
    ];
    for (rule, field) in cases {
        let text = format!(
            "version = 1\n[[vcpu]]\nsyscall = \"write\"\nreason = \"ok\"\n[[vcpu]]\n{rule}\n"
        );
        let err = parse(&text).unwrap_err();
        match &err {
            PolicyError::Rule {
                thread,
                index,
                field: f,
                ..
            } => {
                assert_eq!((*thread, *index, *f), (ThreadKind::Vcpu, 2, field), "{err}");
            }
            other => panic!("{rule}: {other}"),
        }
        assert!(
            err.to_string().starts_with("test.toml: [[vcpu]] rule 2"),
            "{err}"
        );
    }
}

#[test]
fn wrong_version_is_refused() {
    assert!(matches!(
        parse("version = 2\n"),
        Err(PolicyError::Version(2, _))
    ));
}

#[test]
fn dead_rules_are_found_unless_rare() {
    let p = parse(
        "version = 1\n[[vmm]]\nsyscall = \"read\"\nreason = \"r\"\n[[vmm]]\nsyscall = \"close\"\nreason = \"c\"\n[[vmm]]\nsyscall = \"dup\"\nreason = \"d\"\nrare = \"on errors\"\n",
    )
    .unwrap();
    let f = Frequency::parse("f", "[vmm]\nread = 10\n").unwrap();
    assert_eq!(
        p.dead_rules(&f),
        vec![(ThreadKind::Vmm, "close".to_string())]
    );
}

#[test]
fn calls_outside_the_policy_are_listed_per_thread_and_profile() {
    let p = parse(
        "version = 1\n[[vmm]]\nsyscall = \"read\"\nreason = \"r\"\n[[vmm]]\nsyscall = \"ioctl\"\nreason = \"i\"\nprofiles = [\"default\"]\n[[vcpu]]\nsyscall = \"write\"\nreason = \"w\"\n",
    )
    .unwrap();
    let f = Frequency::parse(
        "f",
        "[vmm]\nread = 10\nioctl = 2\nwrite = 1\n[vcpu]\nwrite = 4\nread = 3\n",
    )
    .unwrap();
    assert_eq!(
        p.outside(&f, Profile::Default),
        vec![
            (ThreadKind::Vmm, "write".to_string(), 1),
            (ThreadKind::Vcpu, "read".to_string(), 3)
        ]
    );
    assert!(p
        .outside(&f, Profile::Strict)
        .contains(&(ThreadKind::Vmm, "ioctl".to_string(), 2)));
    assert!(Policy::builtin()
        .outside(&Frequency::builtin(), Profile::Default)
        .is_empty());
}

#[test]
fn frequency_round_trip() {
    let f = Frequency::parse("f", "[vcpu]\nioctl = 100\nwrite = 7\n[vmm]\nread = 3\n").unwrap();
    let text = f.to_toml("measured here");
    assert!(text.starts_with("# measured here\n"));
    assert_eq!(Frequency::parse("f", &text).unwrap(), f);
    assert!(Frequency::parse("f", "[gpu]\nread = 1\n").is_err());
}

/// A run reads the built-in files as JSON made by build.rs; they must mean exactly
/// what the committed TOML says.
#[test]
fn the_embedded_json_is_the_toml_files() {
    assert_eq!(
        Policy::builtin(),
        Policy::parse("x86_64.toml", crate::policy::BUILTIN).unwrap()
    );
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policy/x86_64-frequency.toml"),
    )
    .unwrap();
    assert_eq!(
        Frequency::builtin(),
        Frequency::parse("x86_64-frequency.toml", &text).unwrap()
    );
}

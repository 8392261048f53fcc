//! Proving the compiled filters: every program libseccomp made is run, in the
//! independent interpreter of [`crate::bpf`], over every system call number and every
//! argument edge case its policy cares about, and each answer is compared with what
//! the policy file says. The expected action never comes from libseccomp: it is the
//! matching rule's action (allow or its errno), or the mode's default.
//!
//! The cases, for each filter:
//! - every syscall number 0..=1023 of x86_64, and the same numbers through the x32
//!   ABI (`nr | 0x4000_0000`) and through i386 (`int 0x80`), with zero arguments;
//! - for each rule with conditions: each allowed value of each conditioned argument,
//!   the value ± 1, the value with bits set in the high 32, 0 and `u64::MAX`, with the
//!   rule's other arguments held at an allowed value (so a pinned fd is tried with its
//!   neighbours, a pinned ioctl request with its neighbours, and so on).
//!
//! A policy whose rules overlap with different actions has no single meaning; the
//! verifier reports it as a mismatch too. libseccomp 2.5's GHSA-4q85-33p6-j5g6 bug
//! lived exactly there, in merging such overlapping 64-bit comparisons.

use std::collections::BTreeSet;

use crate::bpf::{self, Action, SeccompData, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use crate::facts::RuntimeFacts;
use crate::policy::{CondOp, Rule, RuleAction};
use crate::{CompiledFilter, FilterError, Mode, Sandbox, ThreadKind};

/// Syscall numbers tried on every ABI.
const SYSCALL_NUMBERS: std::ops::RangeInclusive<i32> = 0..=1023;

/// What the policy says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Action(Action),
    /// Two matching rules disagree.
    Ambiguous,
}

/// One case where the compiled filter and the policy disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub data: SeccompData,
    pub expected: Expected,
    pub got: Result<Action, bpf::BpfError>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let abi = match (self.data.arch, self.data.nr as u32 & X32_SYSCALL_BIT) {
            (AUDIT_ARCH_I386, _) => "i386 ",
            (AUDIT_ARCH_X86_64, 0) => "",
            (AUDIT_ARCH_X86_64, _) => "x32 ",
            _ => "other-ABI ",
        };
        let name = libseccomp::ScmpSyscall::from(self.data.nr & !(X32_SYSCALL_BIT as i32))
            .get_name()
            .unwrap_or_else(|_| "?".into());
        let expected = match self.expected {
            Expected::Action(a) => a.to_string(),
            Expected::Ambiguous => "no single action (overlapping rules disagree)".into(),
        };
        let got = match &self.got {
            Ok(a) => a.to_string(),
            Err(e) => e.to_string(),
        };
        write!(
            f,
            "{abi}syscall {name} ({:#x}) args {:#x?}: policy says {expected}, filter does {got}",
            self.data.nr, self.data.args
        )
    }
}

/// The outcome of checking one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub thread: ThreadKind,
    pub rules: usize,
    pub instructions: usize,
    pub cases: usize,
    pub mismatches: Vec<Mismatch>,
}

/// The action of `mode` for calls outside the policy (and for other ABIs).
pub fn default_action(mode: Mode) -> Option<Action> {
    match mode {
        Mode::Off => None,
        Mode::Enforce => Some(Action::KillProcess),
        Mode::Trap => Some(Action::Trap(0)),
        Mode::Log => Some(Action::Log),
        Mode::Trace => Some(Action::Trace(0)),
    }
}

/// What the policy of `sandbox` says `thread` may do with `data`, given `facts`.
pub fn expected(
    sandbox: &Sandbox,
    thread: ThreadKind,
    facts: &RuntimeFacts,
    data: &SeccompData,
) -> Option<Expected> {
    let default = default_action(sandbox.mode)?;
    if data.arch != AUDIT_ARCH_X86_64 || sandbox.mode == Mode::Trace {
        return Some(Expected::Action(default));
    }
    let mut actions: Vec<Action> = Vec::new();
    for rule in sandbox.policy.rules_for(thread, sandbox.profile) {
        if rule.nr == data.nr && matches(rule, facts, &data.args) {
            let action = match rule.action {
                RuleAction::Allow => Action::Allow,
                RuleAction::Errno(e) => Action::Errno(e as u16),
            };
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    Some(match actions.as_slice() {
        [] => Expected::Action(default),
        [one] => Expected::Action(*one),
        _ => Expected::Ambiguous,
    })
}

/// Whether every condition of `rule` holds for `args`.
fn matches(rule: &Rule, facts: &RuntimeFacts, args: &[u64; 6]) -> bool {
    rule.conditions
        .iter()
        .all(|c| c.holds(args[c.arg as usize], facts))
}

/// The cases for `thread`'s filter (module header).
pub fn cases(sandbox: &Sandbox, thread: ThreadKind, facts: &RuntimeFacts) -> Vec<SeccompData> {
    let call = |nr: i32, arch: u32, args: [u64; 6]| SeccompData {
        nr,
        arch,
        instruction_pointer: 0x7f00_1234_5678,
        args,
    };
    let mut out = Vec::new();
    for nr in SYSCALL_NUMBERS {
        out.push(call(nr, AUDIT_ARCH_X86_64, [0; 6]));
        out.push(call(nr | X32_SYSCALL_BIT as i32, AUDIT_ARCH_X86_64, [0; 6]));
        out.push(call(nr, AUDIT_ARCH_I386, [0; 6]));
    }
    for rule in sandbox.policy.rules_for(thread, sandbox.profile) {
        // Every conditioned argument at an allowed value (the first), or 0.
        let mut base = [0u64; 6];
        for c in &rule.conditions {
            base[c.arg as usize] = c.resolve(facts).first().copied().unwrap_or(0);
        }
        out.push(call(rule.nr, AUDIT_ARCH_X86_64, base));
        for c in &rule.conditions {
            let mut tried = BTreeSet::new();
            for v in c.resolve(facts) {
                let mask = match c.op {
                    CondOp::MaskedEq(mask) => mask,
                    _ => 0,
                };
                tried.extend([
                    v,
                    v.wrapping_add(1),
                    v.wrapping_sub(1),
                    v | 1 << 32,
                    v | 0xffff_ffff_0000_0000,
                    v ^ mask,
                    0,
                    u64::MAX,
                ]);
            }
            for value in tried {
                let mut args = base;
                args[c.arg as usize] = value;
                out.push(call(rule.nr, AUDIT_ARCH_X86_64, args));
            }
        }
    }
    out
}

/// Runs `filter` over the cases of `thread` and compares each answer with the policy.
pub fn check_filter(
    sandbox: &Sandbox,
    thread: ThreadKind,
    facts: &RuntimeFacts,
    filter: &CompiledFilter,
) -> Report {
    let cases = cases(sandbox, thread, facts);
    let mut mismatches = Vec::new();
    for data in &cases {
        let Some(expected) = expected(sandbox, thread, facts, data) else {
            continue;
        };
        let got = bpf::run(filter.program(), data).map(Action::from_ret);
        let agrees = matches!((expected, &got), (Expected::Action(e), Ok(g)) if e == *g);
        if !agrees {
            mismatches.push(Mismatch {
                data: *data,
                expected,
                got,
            });
        }
    }
    Report {
        thread,
        rules: sandbox.policy.rules_for(thread, sandbox.profile).count(),
        instructions: filter.len(),
        cases: cases.len(),
        mismatches,
    }
}

/// Compiles `thread`'s filter with `facts` and checks it (None with mode off).
pub fn verify(
    sandbox: &Sandbox,
    thread: ThreadKind,
    facts: &RuntimeFacts,
) -> Result<Option<Report>, FilterError> {
    Ok(sandbox
        .compile(thread, facts)?
        .map(|filter| check_filter(sandbox, thread, facts, &filter)))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

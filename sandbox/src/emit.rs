//! Emitting rules: what libseccomp is handed for one rule of the policy once the
//! run-time facts are known. A condition over a set of values becomes one alternative
//! per value; a range becomes the aligned blocks that cover it, because libseccomp 2.5
//! mis-compiles several 64-bit range comparisons on one argument (below).

use libseccomp::{ScmpArgCompare, ScmpCompareOp};

use crate::facts::RuntimeFacts;
use crate::policy::{CondOp, Rule};

/// The libseccomp conditions of each alternative `rule` stands for once `facts` are
/// filled in: one per combination of the values of its conditions (a rule on
/// `arg0 in {$tap}` with two taps becomes two rules). A condition with no value makes
/// the rule allow nothing, so it yields no alternative.
pub(crate) fn expand(rule: &Rule, facts: &RuntimeFacts) -> Vec<Vec<ScmpArgCompare>> {
    let mut alternatives: Vec<Vec<ScmpArgCompare>> = vec![Vec::new()];
    for c in &rule.conditions {
        let compares: Vec<ScmpArgCompare> = c
            .resolve(facts)
            .into_iter()
            .flat_map(|v| compares(c.arg, c.op, v))
            .collect();
        alternatives = alternatives
            .iter()
            .flat_map(|prefix| {
                compares.iter().map(move |cmp| {
                    let mut next = prefix.clone();
                    next.push(*cmp);
                    next
                })
            })
            .collect();
    }
    alternatives
}

/// The libseccomp comparisons that together mean `arg OP value` (any one of them).
///
/// Range comparisons are never handed to libseccomp: version 2.5 (Debian 12's) merges
/// several 64-bit `<`, `<=`, `>`, `>=` comparisons on one argument of one system call
/// wrongly and lets through values no rule allows (GHSA-4q85-33p6-j5g6; the
/// verifier's tests reproduce it). A range is emitted instead as the aligned blocks
/// that cover it, each a masked equality, which libseccomp compiles correctly.
fn compares(arg: u32, op: CondOp, value: u64) -> Vec<ScmpArgCompare> {
    let block = |(mask, base)| ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(mask), base);
    match op {
        CondOp::Eq => vec![ScmpArgCompare::new(arg, ScmpCompareOp::Equal, value)],
        CondOp::Ne => vec![ScmpArgCompare::new(arg, ScmpCompareOp::NotEqual, value)],
        CondOp::MaskedEq(mask) => vec![ScmpArgCompare::new(
            arg,
            ScmpCompareOp::MaskedEqual(mask),
            value,
        )],
        CondOp::Lt if value == 0 => Vec::new(),
        CondOp::Lt => range_blocks(0, value - 1).into_iter().map(block).collect(),
        CondOp::Le => range_blocks(0, value).into_iter().map(block).collect(),
        CondOp::Gt if value == u64::MAX => Vec::new(),
        CondOp::Gt => range_blocks(value + 1, u64::MAX)
            .into_iter()
            .map(block)
            .collect(),
        CondOp::Ge => range_blocks(value, u64::MAX)
            .into_iter()
            .map(block)
            .collect(),
    }
}

/// The fewest aligned power-of-two blocks covering `first..=last`, as (mask, base)
/// pairs: `x` is in a block when `x & mask == base`. At most 128 blocks.
pub(crate) fn range_blocks(first: u64, last: u64) -> Vec<(u64, u64)> {
    let mut blocks = Vec::new();
    let mut start = first;
    loop {
        // The largest block aligned at `start` that does not pass `last`.
        let mut size_log = start.trailing_zeros().min(63);
        while size_log > 0
            && start
                .checked_add((1u64 << size_log) - 1)
                .is_none_or(|end| end > last)
        {
            size_log -= 1;
        }
        let span = (1u64 << size_log) - 1;
        if start == 0 && last == u64::MAX {
            return vec![(0, 0)];
        }
        blocks.push((!span, start));
        match (start + span).checked_add(1) {
            Some(next) if next <= last => start = next,
            _ => return blocks,
        }
    }
}

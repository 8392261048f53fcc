//! Argument conditions: their grammar, their meaning, and how they are shown.
//!
//! ```text
//! arg1 == KVM_RUN                      # compare with a constant (names from consts.rs)
//! arg3 != PROT_READ|PROT_WRITE         # constants may be OR-ed
//! arg2 & PROT_EXEC == 0                # masked compare
//! arg0 == $pid                         # a run-time fact (facts.rs)
//! arg0 in {$console, $stderr, 2}       # one of several values
//! ```
//!
//! Every comparison is on the full 64-bit register, as the kernel hands it to the
//! filter: a value with bits set in the high half never equals a 32-bit constant. A
//! condition holds when the comparison holds for at least one of its values; a fact
//! that stands for no value (a VM without a tap, say) makes the condition, and so its
//! rule, match nothing.

use std::fmt;

use crate::consts;
use crate::facts::{Fact, RuntimeFacts};

/// A comparison in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

impl CondOp {
    /// Whether `arg OP value` holds.
    pub fn holds(self, arg: u64, value: u64) -> bool {
        match self {
            CondOp::Eq => arg == value,
            CondOp::Ne => arg != value,
            CondOp::Lt => arg < value,
            CondOp::Le => arg <= value,
            CondOp::Gt => arg > value,
            CondOp::Ge => arg >= value,
            CondOp::MaskedEq(mask) => arg & mask == value,
        }
    }
}

/// One value of a condition: a number, or a fact known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Const(u64),
    Fact(Fact),
}

/// One argument condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub arg: u32,
    pub op: CondOp,
    /// The alternatives: one for `OP VALUE`, several for `in {...}`.
    pub values: Vec<Operand>,
}

impl Condition {
    /// A condition comparing with one constant.
    pub fn new(arg: u32, op: CondOp, value: u64) -> Condition {
        Condition {
            arg,
            op,
            values: vec![Operand::Const(value)],
        }
    }

    /// The numbers this condition compares with, given `facts`: sorted, no repeats.
    pub fn resolve(&self, facts: &RuntimeFacts) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .values
            .iter()
            .flat_map(|v| match v {
                Operand::Const(c) => vec![*c],
                Operand::Fact(f) => facts.values(*f),
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether an argument register holding `arg` satisfies the condition.
    pub fn holds(&self, arg: u64, facts: &RuntimeFacts) -> bool {
        self.resolve(facts).iter().any(|v| self.op.holds(arg, *v))
    }

    /// Whether any value is a run-time fact.
    pub fn uses_facts(&self) -> bool {
        self.values.iter().any(|v| matches!(v, Operand::Fact(_)))
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Const(c) => write!(f, "{c:#x}"),
            Operand::Fact(fact) => write!(f, "{fact}"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ioctl requests are shown by name.
        let show = |v: &Operand| match v {
            Operand::Const(c) if self.arg == 1 => consts::ioctl_name(*c)
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
            _ => v.to_string(),
        };
        if self.values.len() != 1 {
            let list: Vec<String> = self.values.iter().map(show).collect();
            return write!(f, "arg{} in {{{}}}", self.arg, list.join(", "));
        }
        let value = show(&self.values[0]);
        let op = match self.op {
            CondOp::Eq => "==",
            CondOp::Ne => "!=",
            CondOp::Lt => "<",
            CondOp::Le => "<=",
            CondOp::Gt => ">",
            CondOp::Ge => ">=",
            CondOp::MaskedEq(mask) => return write!(f, "arg{} & {mask:#x} == {value}", self.arg),
        };
        write!(f, "arg{} {op} {value}", self.arg)
    }
}

/// Parses a condition (grammar in the module header).
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let bad = |why: &str| format!("cannot parse {text:?}: {why}");
    let trimmed = text.trim();
    let (first, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let arg = first
        .strip_prefix("arg")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n < 6)
        .ok_or_else(|| bad("expected arg0 to arg5 first"))?;
    let rest = rest.trim();

    if let Some(list) = rest.strip_prefix("in ") {
        let inner = list
            .trim()
            .strip_prefix('{')
            .and_then(|l| l.strip_suffix('}'))
            .ok_or_else(|| bad("expected `in {VALUE, VALUE, ...}`"))?;
        let values = inner
            .split(',')
            .map(|item| operand(item, &bad))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Condition {
            arg,
            op: CondOp::Eq,
            values,
        });
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        ["&", mask, "==", v] => {
            let (mask, value) = (constant(mask, &bad)?, constant(v, &bad)?);
            // libseccomp would quietly compare with `value & mask` instead.
            if value & !mask != 0 {
                return Err(bad(
                    "the value has bits outside the mask, so it can never match",
                ));
            }
            Ok(Condition::new(arg, CondOp::MaskedEq(mask), value))
        }
        [op, v] => {
            let op = match *op {
                "==" => CondOp::Eq,
                "!=" => CondOp::Ne,
                "<" => CondOp::Lt,
                "<=" => CondOp::Le,
                ">" => CondOp::Gt,
                ">=" => CondOp::Ge,
                _ => return Err(bad("expected one of == != < <= > >= in")),
            };
            let value = operand(v, &bad)?;
            if op != CondOp::Eq && matches!(value, Operand::Fact(_)) {
                return Err(bad("run-time facts ($...) compare only with == or in"));
            }
            Ok(Condition {
                arg,
                op,
                values: vec![value],
            })
        }
        _ => Err(bad(
            "expected `argN OP VALUE`, `argN & MASK == VALUE` or `argN in {...}`",
        )),
    }
}

/// A constant or a `$fact`.
fn operand(word: &str, bad: &dyn Fn(&str) -> String) -> Result<Operand, String> {
    let word = word.trim();
    match word.strip_prefix('$') {
        Some(name) => Fact::from_name(name)
            .map(Operand::Fact)
            .ok_or_else(|| bad(&format!("unknown run-time fact {word:?}"))),
        None => constant(word, bad).map(Operand::Const),
    }
}

/// A number or name, or several OR-ed with `|`.
fn constant(word: &str, bad: &dyn Fn(&str) -> String) -> Result<u64, String> {
    if word.is_empty() {
        return Err(bad("missing value"));
    }
    word.split('|').try_fold(0u64, |acc, part| {
        consts::value_of(part)
            .map(|v| acc | v)
            .ok_or_else(|| bad(&format!("unknown value {part:?}")))
    })
}

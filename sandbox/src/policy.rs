//! The policy file format and the measured-frequency table.
//!
//! ```toml
//! version = 1
//!
//! [[vcpu]]                          # one table per rule, per thread kind
//! syscall = "ioctl"
//! args = ["arg1 == KVM_RUN"]        # all must hold; several rules = alternatives
//! reason = "runs the guest"         # one line, required
//! # action = "errno:ENOSYS"         # answer instead of allowing
//! # rare = "why"                    # needed only on a path the profile misses
//! # profiles = ["default"]          # left out of the strict profile
//! ```
//!
//! Conditions are described in [`crate::condition`]: constants, masks, and run-time
//! facts such as `$pid` or `$tap` ([`crate::facts`]). Every error names the line
//! (syntax) or the rule and field (meaning), on one line.

use std::collections::BTreeMap;
use std::path::Path;

use libseccomp::ScmpSyscall;
use serde::Deserialize;

pub use crate::condition::{parse_condition, CondOp, Condition, Operand};
use crate::{consts, Profile, ThreadKind};

/// Errors in a policy or frequency file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: [[{thread}]] rule {index} ({syscall}): field `{field}`: {message}")]
    Rule {
        file: String,
        thread: ThreadKind,
        index: usize,
        syscall: String,
        field: &'static str,
        message: String,
    },
    #[error("{file}: unsupported policy version {0}; this sandvmm reads version 1", file = .1)]
    Version(u32, String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Errno(i32),
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub syscall: String,
    pub nr: i32,
    pub conditions: Vec<Condition>,
    pub action: RuleAction,
    pub reason: String,
    pub rare: Option<String>,
    /// False for rules kept out of the strict profile.
    pub in_strict: bool,
}

/// A checked policy: the rules of each thread kind, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: BTreeMap<ThreadKind, Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    vmm: Vec<RuleFile>,
    #[serde(default)]
    vcpu: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    syscall: String,
    reason: String,
    #[serde(default)]
    args: Vec<String>,
    action: Option<String>,
    rare: Option<String>,
    profiles: Option<Vec<String>>,
}

fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> PolicyError {
    let line = e.span().map_or(0, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    });
    PolicyError::Syntax {
        file: file.to_string(),
        line,
        message: e.message().replace('\n', " "),
    }
}

/// The text of the built-in x86_64 policy.
pub const BUILTIN: &str = include_str!("../policy/x86_64.toml");
/// The same policy as JSON (build.rs), which is what a run reads: faster to parse.
const BUILTIN_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/x86_64.json"));
/// The built-in frequency table, as JSON (build.rs).
const BUILTIN_FREQUENCY_JSON: &str =
    include_str!(concat!(env!("OUT_DIR"), "/x86_64-frequency.json"));
/// Where the built-in files come from, for messages.
const BUILTIN_FILE: &str = "sandbox/policy/x86_64.toml";
const BUILTIN_FREQUENCY_FILE: &str = "sandbox/policy/x86_64-frequency.toml";

/// The SHA-256 of `text`, in hex: a policy's identity in reports, a snapshot state file's
/// checksum.
pub fn text_sha256(text: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Policy {
    /// The built-in x86_64 policy.
    pub fn builtin() -> Policy {
        serde_json::from_str(BUILTIN_JSON)
            .ok()
            .and_then(|raw| Policy::checked(BUILTIN_FILE, raw).ok())
            .expect("the built-in policy is checked by the test suite")
    }

    /// Reads and checks the policy file at `path`, or returns the built-in policy.
    pub fn load(path: Option<&Path>) -> Result<Policy, PolicyError> {
        let Some(path) = path else {
            return Ok(Policy::builtin());
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        Policy::parse(&name, &text)
    }

    /// Parses and checks a policy; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let raw: PolicyFile = toml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
        Policy::checked(file, raw)
    }

    /// Checks a parsed policy file.
    fn checked(file: &str, raw: PolicyFile) -> Result<Policy, PolicyError> {
        if raw.version != 1 {
            return Err(PolicyError::Version(raw.version, file.to_string()));
        }
        let mut rules = BTreeMap::new();
        for (thread, list) in [(ThreadKind::Vmm, raw.vmm), (ThreadKind::Vcpu, raw.vcpu)] {
            let mut checked = Vec::with_capacity(list.len());
            for (i, r) in list.into_iter().enumerate() {
                let err = |field, message: String| PolicyError::Rule {
                    file: file.to_string(),
                    thread,
                    index: i + 1,
                    syscall: r.syscall.clone(),
                    field,
                    message,
                };
                let nr = ScmpSyscall::from_name(&r.syscall)
                    .map_err(|_| err("syscall", format!("unknown system call {:?}", r.syscall)))?
                    .as_raw_syscall();
                if r.reason.trim().is_empty() || r.reason.contains('\n') {
                    return Err(err("reason", "give a one-line reason".into()));
                }
                let conditions = r
                    .args
                    .iter()
                    .map(|c| parse_condition(c).map_err(|m| err("args", m)))
                    .collect::<Result<Vec<_>, _>>()?;
                let action = match r.action.as_deref() {
                    None | Some("allow") => RuleAction::Allow,
                    Some(a) => {
                        let errno = a
                            .strip_prefix("errno:")
                            .and_then(consts::value_of)
                            .filter(|v| (1..4096).contains(v));
                        RuleAction::Errno(errno.ok_or_else(|| {
                            err("action", format!("{a:?} is not allow or errno:NAME"))
                        })? as i32)
                    }
                };
                let in_strict = match r.profiles.as_deref() {
                    None => true,
                    Some([only]) if only == "default" => false,
                    Some(p) if p.iter().all(|x| x == "default" || x == "strict") => {
                        p.iter().any(|x| x == "strict")
                    }
                    Some(_) => {
                        return Err(err(
                            "profiles",
                            "profiles may list only \"default\" and \"strict\"".into(),
                        ))
                    }
                };
                if r.rare.as_deref().is_some_and(|w| w.trim().is_empty()) {
                    return Err(err("rare", "say why the rule is needed".into()));
                }
                checked.push(Rule {
                    syscall: r.syscall.clone(),
                    nr,
                    conditions,
                    action,
                    reason: r.reason.trim().to_string(),
                    rare: r.rare,
                    in_strict,
                });
            }
            rules.insert(thread, checked);
        }
        Ok(Policy { rules })
    }

    /// The rules for `thread` under `profile`.
    pub fn rules_for(&self, thread: ThreadKind, profile: Profile) -> impl Iterator<Item = &Rule> {
        self.rules
            .get(&thread)
            .into_iter()
            .flatten()
            .filter(move |r| profile == Profile::Default || r.in_strict)
    }

    /// The system calls in `freq` that `thread`'s rules under `profile` do not name at
    /// all, with their counts: what a workload did outside the policy. By name only: a
    /// named call whose arguments the rules refuse is not listed (trap mode names it).
    pub fn outside(&self, freq: &Frequency, profile: Profile) -> Vec<(ThreadKind, String, u64)> {
        let mut outside = Vec::new();
        for (thread, counts) in &freq.counts {
            for (syscall, count) in counts {
                if !self
                    .rules_for(*thread, profile)
                    .any(|r| &r.syscall == syscall)
                {
                    outside.push((*thread, syscall.clone(), *count));
                }
            }
        }
        outside
    }

    /// Rules whose system call the measured workload never made, and that are not
    /// marked `rare`: allowed for no known reason.
    pub fn dead_rules(&self, freq: &Frequency) -> Vec<(ThreadKind, String)> {
        let mut dead = Vec::new();
        for (thread, rules) in &self.rules {
            for r in rules {
                if r.rare.is_none()
                    && freq.count(*thread, &r.syscall) == 0
                    && !dead.contains(&(*thread, r.syscall.clone()))
                {
                    dead.push((*thread, r.syscall.clone()));
                }
            }
        }
        dead
    }
}

/// Syscall counts per thread kind from a real workload (`sandvmm sandbox profile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frequency {
    pub counts: BTreeMap<ThreadKind, BTreeMap<String, u64>>,
}

impl Frequency {
    /// The committed x86_64 table.
    pub fn builtin() -> Frequency {
        serde_json::from_str(BUILTIN_FREQUENCY_JSON)
            .ok()
            .and_then(|raw| Frequency::checked(BUILTIN_FREQUENCY_FILE, raw).ok())
            .expect("the built-in frequency table is checked by the test suite")
    }

    /// Parses a table: one `[vmm]` / `[vcpu]` section of `syscall = count`.
    pub fn parse(file: &str, text: &str) -> Result<Frequency, PolicyError> {
        let raw: BTreeMap<String, BTreeMap<String, u64>> =
            toml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
        Frequency::checked(file, raw)
    }

    /// Checks a parsed table.
    fn checked(
        file: &str,
        raw: BTreeMap<String, BTreeMap<String, u64>>,
    ) -> Result<Frequency, PolicyError> {
        let mut counts = BTreeMap::new();
        for (key, table) in raw {
            let thread = key
                .parse::<ThreadKind>()
                .map_err(|message| PolicyError::Syntax {
                    file: file.to_string(),
                    line: 0,
                    message,
                })?;
            counts.insert(thread, table);
        }
        Ok(Frequency { counts })
    }

    /// How often `thread` made `syscall`.
    pub fn count(&self, thread: ThreadKind, syscall: &str) -> u64 {
        self.counts
            .get(&thread)
            .and_then(|t| t.get(syscall))
            .copied()
            .unwrap_or(0)
    }

    /// The table as TOML, most frequent first within each thread.
    pub fn to_toml(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        for (thread, table) in &self.counts {
            out.push_str(&format!("\n[{thread}]\n"));
            let mut rows: Vec<_> = table.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (name, n) in rows {
                out.push_str(&format!("{name} = {n}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

//! `sandvmm sandbox show` and `sandvmm sandbox profile`: looking at the policy and
//! measuring a workload, without running a VM of our own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sandbox::policy::{Frequency, Policy, PolicyError};
use sandbox::profile::{self, ProfileError, WorkloadEnd};
use sandbox::{FilterError, Mode, Optimize, Profile, Sandbox, ThreadKind};

/// Errors of the sandbox subcommands.
#[derive(Debug, thiserror::Error)]
pub enum SandboxCmdError {
    #[error("invalid {0}: {1}")]
    Option(&'static str, String),
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("the profiled workload failed ({0}); the table was not written")]
    Workload(String),
}

/// Loads `path`, or the built-in policy.
pub fn load_policy(path: Option<&Path>) -> Result<Policy, SandboxCmdError> {
    match path {
        None => Ok(Policy::builtin()),
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| SandboxCmdError::Read {
                path: name.clone(),
                source,
            })?;
            Ok(Policy::parse(&name, &text)?)
        }
    }
}

fn parse<T: std::str::FromStr<Err = String>>(
    flag: &'static str,
    text: &str,
) -> Result<T, SandboxCmdError> {
    text.parse().map_err(|e| SandboxCmdError::Option(flag, e))
}

/// Renders `sandvmm sandbox show`.
pub fn show(
    thread: Option<&str>,
    format: &str,
    profile: &str,
    optimize: &str,
    policy: Option<&Path>,
) -> Result<Vec<u8>, SandboxCmdError> {
    let threads: Vec<ThreadKind> = match thread {
        Some(t) => vec![parse("--thread", t)?],
        None => ThreadKind::ALL.to_vec(),
    };
    let sandbox = Sandbox {
        policy: load_policy(policy)?,
        frequency: Frequency::builtin(),
        mode: Mode::Enforce,
        profile: parse::<Profile>("--profile", profile)?,
        optimize: parse::<Optimize>("--optimize", optimize)?,
        priorities: true,
    };
    let mut out = Vec::new();
    for kind in threads {
        match format {
            "table" => out.extend_from_slice(table(&sandbox, kind)?.as_bytes()),
            "pfc" => out.extend_from_slice(sandbox.pfc(kind)?.as_bytes()),
            "bpf" => {
                let compiled = sandbox
                    .compile(kind)?
                    .expect("enforce mode compiles a filter");
                let bytes = compiled.to_bytes();
                let mut text = format!(
                    "# {kind}: {} BPF instructions (code jt jf k)\n",
                    compiled.len()
                );
                for insn in bytes.chunks_exact(8) {
                    let code = u16::from_ne_bytes([insn[0], insn[1]]);
                    let k = u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]);
                    let _ = writeln!(text, "{code:#06x} {:3} {:3} {k:#010x}", insn[2], insn[3]);
                }
                out.extend_from_slice(text.as_bytes());
            }
            other => {
                return Err(SandboxCmdError::Option(
                    "--format",
                    format!("{other:?} is not table, pfc or bpf"),
                ))
            }
        }
    }
    Ok(out)
}

fn table(sandbox: &Sandbox, kind: ThreadKind) -> Result<String, SandboxCmdError> {
    let compiled = sandbox
        .compile(kind)?
        .expect("enforce mode compiles a filter");
    let priorities = sandbox.priorities_for(kind);
    let rules: Vec<_> = sandbox.policy.rules_for(kind, sandbox.profile).collect();
    let mut text = format!(
        "{kind}: {} rules, {} BPF instructions ({:?} profile, {:?} layout); anything else kills the process\n",
        rules.len(),
        compiled.len(),
        sandbox.profile,
        sandbox.optimize
    );
    let _ = writeln!(
        text,
        "  {:>4}  {:<16} {:<34} reason",
        "prio", "syscall", "condition / action"
    );
    for rule in rules {
        let prio = priorities
            .iter()
            .find(|(nr, _)| *nr == rule.nr)
            .map_or(0, |p| p.1);
        let mut cond = rule
            .conditions
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" && ");
        if let sandbox::policy::RuleAction::Errno(e) = rule.action {
            cond = format!("returns errno {e}");
        }
        let rare = if rule.rare.is_some() { " [rare]" } else { "" };
        let _ = writeln!(
            text,
            "  {prio:>4}  {:<16} {:<34} {}{rare}",
            rule.syscall, cond, rule.reason
        );
    }
    text.push('\n');
    Ok(text)
}

/// Runs `sandvmm sandbox profile`: the workload is this binary with `run_args` and
/// trace filters. Returns the table's text and a one-line summary.
pub fn profile(
    run_args: &[String],
    merge: Option<&PathBuf>,
) -> Result<(String, String), SandboxCmdError> {
    let exe = std::env::current_exe().map_err(|source| SandboxCmdError::Read {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let mut argv = vec![exe.display().to_string()];
    argv.extend(run_args.iter().cloned());
    argv.push("--sandbox-trace".into());
    let (mut measured, end) = profile::profile(&argv)?;
    match end {
        WorkloadEnd::Exited(0) => {}
        WorkloadEnd::Exited(n) => {
            return Err(SandboxCmdError::Workload(format!("exit status {n}")))
        }
        WorkloadEnd::Signalled(s) => {
            return Err(SandboxCmdError::Workload(format!("killed by signal {s}")))
        }
    }
    let summary = ThreadKind::ALL
        .iter()
        .map(|k| {
            let t = measured.counts.get(k);
            format!(
                "{k}: {} calls of {} kinds",
                t.map_or(0, |t| t.values().sum::<u64>()),
                t.map_or(0, |t| t.len())
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(path) = merge {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SandboxCmdError::Read {
            path: name.clone(),
            source,
        })?;
        let previous = Frequency::parse(&name, &text)?;
        profile::merge(&mut measured, &previous);
    }
    let header = format!(
        "System calls per thread kind after set-up, counted by `sandvmm sandbox profile`.\nRule priorities come from this table; regenerate it with sandbox/policy/measure.sh.\nLast workload: sandvmm {}",
        run_args.join(" ")
    );
    Ok((measured.to_toml(&header), summary))
}

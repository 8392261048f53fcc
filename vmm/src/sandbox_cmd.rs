//! `sandvmm sandbox show`, `verify` and `profile`: looking at the policy and the other
//! layers, proving the compiled filters, and measuring a workload, without running a
//! VM of our own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use sandbox::jail::JailUser;
use sandbox::policy::{Frequency, Policy, PolicyError};
use sandbox::profile::{self, ProfileError, WorkloadEnd};
use sandbox::{FilterError, Mode, Optimize, Profile, RuntimeFacts, Sandbox, ThreadKind};

use crate::cli::ShowFormat;

/// Errors of the sandbox subcommands.
#[derive(Debug, thiserror::Error)]
pub enum SandboxCmdError {
    #[error("invalid run arguments for the workload: {0}")]
    RunArgs(String),
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

/// Renders `sandvmm sandbox show --layers`: every layer a run of this binary would set
/// up here, with the defaults (`--sandbox enforce`, `--jail on`).
pub fn layers() -> String {
    let sandbox = Sandbox::builtin(Mode::Enforce, Profile::Default, Optimize::Priority);
    let count = |t| sandbox.policy.rules_for(t, Profile::Default).count();
    let mut text = format!(
        "seccomp: enforce (default): a filter per thread, {} rules for the VMM thread, {} for each vCPU; any other call kills the process (sandvmm sandbox show)\n",
        count(ThreadKind::Vmm),
        count(ThreadKind::Vcpu)
    );
    text.push_str("jail: on (default; --jail off goes without)\n");
    for (layer, what) in sandbox::jail::probe::describe(&JailUser::default()) {
        let _ = writeln!(text, "  {layer}: {what}");
    }
    text.push_str("reaper: a process forked before the jail that keeps only the VM fd and a pipe, under its own filter (read the pipe, close the VM fd, exit_group; anything else kills it), and destroys the VM once sandvmm has exited (docs/SANDBOX.md, \"The reaper\")\n");
    text
}

/// Runs `sandvmm sandbox verify`: every mode, profile and layout of both thread kinds,
/// with sample run-time facts. Returns the report and whether every filter agreed.
pub fn verify(policy: Option<&Path>) -> Result<(String, bool), SandboxCmdError> {
    const SHOWN: usize = 10;
    let facts = RuntimeFacts::sample();
    let mut text = String::new();
    let (mut filters, mut failed, mut cases) = (0, 0, 0);
    for mode in [Mode::Enforce, Mode::Trap, Mode::Log] {
        for profile in [Profile::Default, Profile::Strict] {
            for optimize in [Optimize::Priority, Optimize::Tree] {
                let sandbox = Sandbox::load(mode, profile, optimize, policy)?;
                for thread in ThreadKind::ALL {
                    let Some(report) = sandbox::verify::verify(&sandbox, thread, &facts)? else {
                        continue;
                    };
                    let name = format!("{mode:?}/{profile:?}/{optimize:?} {thread}").to_lowercase();
                    let verdict = if report.mismatches.is_empty() {
                        "ok  "
                    } else {
                        "FAIL"
                    };
                    let _ = writeln!(
                        text,
                        "{verdict} {name}: {} rules, {} BPF instructions, {} cases, {} mismatches",
                        report.rules,
                        report.instructions,
                        report.cases,
                        report.mismatches.len()
                    );
                    for m in report.mismatches.iter().take(SHOWN) {
                        let _ = writeln!(text, "       {m}");
                    }
                    if report.mismatches.len() > SHOWN {
                        let _ = writeln!(
                            text,
                            "       ... and {} more",
                            report.mismatches.len() - SHOWN
                        );
                    }
                    filters += 1;
                    cases += report.cases;
                    failed += usize::from(!report.mismatches.is_empty());
                }
            }
        }
    }
    let source = policy.map_or("the built-in policy".to_string(), |p| {
        p.display().to_string()
    });
    if failed == 0 {
        let _ = writeln!(
            text,
            "every compiled filter does what {source} says ({filters} filters, {cases} cases)"
        );
    } else {
        let _ = writeln!(
            text,
            "{failed} of {filters} compiled filters disagree with {source}"
        );
    }
    Ok((text, failed == 0))
}

/// Renders `sandvmm sandbox show` for one thread kind, or both.
pub fn show(
    thread: Option<ThreadKind>,
    format: ShowFormat,
    profile: Profile,
    optimize: Optimize,
    policy: Option<&Path>,
) -> Result<Vec<u8>, SandboxCmdError> {
    let threads: Vec<ThreadKind> = match thread {
        Some(t) => vec![t],
        None => ThreadKind::ALL.to_vec(),
    };
    let sandbox = Sandbox::load(Mode::Enforce, profile, optimize, policy)?;
    // The programs depend on the run-time facts; sample ones stand in for a VM's.
    let facts = RuntimeFacts::sample();
    let mut out = Vec::new();
    for kind in threads {
        match format {
            ShowFormat::Table => out.extend_from_slice(table(&sandbox, kind, &facts)?.as_bytes()),
            ShowFormat::Pfc => out.extend_from_slice(sandbox.pfc(kind, &facts)?.as_bytes()),
            ShowFormat::Bpf => {
                let compiled = sandbox
                    .compile(kind, &facts)?
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
        }
    }
    Ok(out)
}

fn table(
    sandbox: &Sandbox,
    kind: ThreadKind,
    facts: &RuntimeFacts,
) -> Result<String, SandboxCmdError> {
    let compiled = sandbox
        .compile(kind, facts)?
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
        "  {:>4}  {:<16} {:<44} reason",
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
            "  {prio:>4}  {:<16} {:<44} {}{rare}",
            rule.syscall, cond, rule.reason
        );
    }
    text.push('\n');
    Ok(text)
}

/// What `sandvmm sandbox profile` measured.
pub struct Profiled {
    /// The frequency table (merged, with `--merge`).
    pub table: String,
    /// Calls and kinds per thread kind, on one line.
    pub summary: String,
    /// The calls of this workload that the run's policy (its `--sandbox-policy` and
    /// `--sandbox-profile`) has no rule for, on one line: `none`, or
    /// `vcpu: getpid (3 calls), ...`.
    pub outside: String,
}

/// The policy and profile a run with `run_args` would use.
fn run_policy(run_args: &[String]) -> Result<(Policy, Profile), SandboxCmdError> {
    let argv = std::iter::once("sandvmm").chain(run_args.iter().map(String::as_str));
    let cli = crate::cli::Cli::try_parse_from(argv)
        .map_err(|e| SandboxCmdError::RunArgs(e.kind().to_string()))?;
    let config = cli
        .run
        .into_config()
        .map_err(|e| SandboxCmdError::RunArgs(e.to_string()))?;
    let policy = Policy::load(config.sandbox.policy_file.as_deref())?;
    Ok((policy, config.sandbox.profile))
}

/// Runs `sandvmm sandbox profile`: the workload is this binary with `run_args` and
/// trace filters.
pub fn profile(run_args: &[String], merge: Option<&PathBuf>) -> Result<Profiled, SandboxCmdError> {
    let (policy, run_profile) = run_policy(run_args)?;
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
    // This workload's calls alone, before any merge.
    let outside = policy.outside(&measured, run_profile);
    let outside = match outside.is_empty() {
        true => "none".to_string(),
        false => outside
            .iter()
            .map(|(thread, syscall, n)| format!("{thread}: {syscall} ({n} calls)"))
            .collect::<Vec<_>>()
            .join(", "),
    };
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
    Ok(Profiled {
        table: measured.to_toml(&header),
        summary,
        outside,
    })
}

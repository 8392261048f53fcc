//! Compiling the policy into one BPF program per thread kind, and installing it.
//!
//! Compilation runs once, on the VMM thread before any filter exists: libseccomp
//! builds the program and exports it as BPF. Installing is then two system calls in
//! the thread that will live under the filter: `prctl(PR_SET_NO_NEW_PRIVS)` and
//! `seccomp(SECCOMP_SET_MODE_FILTER)`. A filter that fails to install is an error the
//! caller must treat as fatal (the 2012 review's second ask).

use std::collections::BTreeMap;

use libseccomp::error::SeccompErrno;
use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};

use crate::emit::expand;
use crate::facts::{FdRole, RuntimeFacts};
use crate::policy::{Frequency, Policy, RuleAction};
use crate::{Mode, Optimize, Profile, ThreadKind};

/// Errors from compiling or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("libseccomp refused the {thread} filter: {what}")]
    Compile { thread: ThreadKind, what: String },
    #[error("cannot set NO_NEW_PRIVS")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("cannot install the {0} seccomp filter")]
    Install(ThreadKind, #[source] std::io::Error),
}

/// The sandbox configuration for one run: the policy and how to apply it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub policy: Policy,
    pub frequency: Frequency,
    pub mode: Mode,
    pub profile: Profile,
    pub optimize: Optimize,
    /// Order rules by measured frequency (on by default; off only to measure what the
    /// ordering buys).
    pub priorities: bool,
}

/// A BPF program ready to be installed by a thread of its kind.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub thread: ThreadKind,
    pub(crate) program: Vec<libc::sock_filter>,
}

/// The filters of one run: the VMM thread's, and one per vCPU (each pinned to its
/// own vCPU fd). All None with mode off.
#[derive(Debug, Clone)]
pub struct Filters {
    pub vmm: Option<CompiledFilter>,
    pub vcpus: Vec<Option<CompiledFilter>>,
}

impl Sandbox {
    /// The policy at `policy_file` (or the built-in one) and the built-in frequency
    /// table, with the given options.
    pub fn load(
        mode: Mode,
        profile: Profile,
        optimize: Optimize,
        policy_file: Option<&std::path::Path>,
    ) -> Result<Sandbox, crate::PolicyError> {
        // Not `..Sandbox::builtin()`: that would parse the built-in policy as well,
        // a quarter of a millisecond of every start-up.
        Ok(Sandbox {
            policy: Policy::load(policy_file)?,
            frequency: Frequency::builtin(),
            mode,
            profile,
            optimize,
            priorities: true,
        })
    }

    /// Compiles every filter of a run. `facts` hold the pid and the fds by role, with
    /// [`FdRole::Vcpu`] left empty; `vcpu_fds` are the vCPU fds in vCPU order.
    pub fn filters(
        &self,
        facts: &RuntimeFacts,
        vcpu_fds: &[std::os::fd::RawFd],
    ) -> Result<Filters, FilterError> {
        let vcpus = vcpu_fds
            .iter()
            .map(|fd| self.compile(ThreadKind::Vcpu, &facts.with(FdRole::Vcpu, [*fd])))
            .collect::<Result<_, _>>()?;
        Ok(Filters {
            vmm: self.compile(ThreadKind::Vmm, facts)?,
            vcpus,
        })
    }

    /// The built-in policy and frequency table with the given options.
    pub fn builtin(mode: Mode, profile: Profile, optimize: Optimize) -> Sandbox {
        Sandbox {
            policy: Policy::builtin(),
            frequency: Frequency::builtin(),
            mode,
            profile,
            optimize,
            priorities: true,
        }
    }

    /// The action for calls outside the policy, and for calls from another
    /// architecture or ABI (None with mode off).
    pub fn default_action(&self) -> Option<ScmpAction> {
        match self.mode {
            Mode::Off => None,
            Mode::Enforce => Some(ScmpAction::KillProcess),
            Mode::Trap => Some(ScmpAction::Trap),
            Mode::Log => Some(ScmpAction::Log),
            Mode::Trace => Some(ScmpAction::Trace(0)),
        }
    }

    /// The libseccomp context for `thread` with the run-time `facts` filled in (None
    /// with mode off).
    pub fn context(
        &self,
        thread: ThreadKind,
        facts: &RuntimeFacts,
    ) -> Result<Option<ScmpFilterContext>, FilterError> {
        let Some(default) = self.default_action() else {
            return Ok(None);
        };
        let fail = |what: String| FilterError::Compile { thread, what };
        let mut ctx = ScmpFilterContext::new(default).map_err(|e| fail(e.to_string()))?;
        // A 32-bit `int 0x80` or an x32 call must meet the mode's own action, not
        // libseccomp's default (which kills only the calling thread, silently).
        ctx.set_act_badarch(default)
            .map_err(|e| fail(format!("bad-arch action: {e}")))?;
        // A trace filter has no rules: the profiler must see every call.
        let rules = self
            .policy
            .rules_for(thread, self.profile)
            .filter(|_| self.mode != Mode::Trace);
        for rule in rules {
            let action = match rule.action {
                RuleAction::Allow => ScmpAction::Allow,
                RuleAction::Errno(e) => ScmpAction::Errno(e),
            };
            let syscall = ScmpSyscall::from(rule.nr);
            for conditions in expand(rule, facts) {
                let added = if conditions.is_empty() {
                    ctx.add_rule_exact(action, syscall)
                } else {
                    ctx.add_rule_conditional_exact(action, syscall, &conditions)
                };
                match added {
                    Ok(_) => {}
                    // This alternative overlaps an earlier rule's with another action:
                    // the earlier rule stands. Such a policy has no single meaning, and
                    // `sandvmm sandbox verify` reports it.
                    Err(e) if e.errno() == Some(SeccompErrno::EEXIST) => {}
                    Err(e) => return Err(fail(format!("rule for {}: {e}", rule.syscall))),
                }
            }
        }
        if self.priorities {
            for (nr, priority) in self.priorities_for(thread) {
                ctx.set_syscall_priority(nr, priority)
                    .map_err(|e| fail(format!("priority: {e}")))?;
            }
        }
        let level = match self.optimize {
            Optimize::Priority => 1,
            Optimize::Tree => 2,
        };
        ctx.set_ctl_optimize(level)
            .map_err(|e| fail(format!("optimize: {e}")))?;
        Ok(Some(ctx))
    }

    /// libseccomp priorities (255 first) for `thread`'s syscalls: by measured count,
    /// most frequent first; syscalls the workload never made get 0.
    pub fn priorities_for(&self, thread: ThreadKind) -> Vec<(i32, u8)> {
        let mut seen: BTreeMap<i32, (u64, &str)> = BTreeMap::new();
        for rule in self.policy.rules_for(thread, self.profile) {
            seen.insert(
                rule.nr,
                (self.frequency.count(thread, &rule.syscall), &rule.syscall),
            );
        }
        let mut order: Vec<(i32, u64, &str)> = seen
            .into_iter()
            .map(|(nr, (n, name))| (nr, n, name))
            .collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(b.2)));
        order
            .iter()
            .enumerate()
            .map(|(rank, (nr, count, _))| {
                (
                    *nr,
                    if *count == 0 {
                        0
                    } else {
                        255u8.saturating_sub(rank as u8).max(1)
                    },
                )
            })
            .collect()
    }

    /// libseccomp's pseudo filter code for `thread` (empty with mode off).
    pub fn pfc(&self, thread: ThreadKind, facts: &RuntimeFacts) -> Result<String, FilterError> {
        let Some(ctx) = self.context(thread, facts)? else {
            return Ok(String::new());
        };
        let bytes = export_via_memfd(|f| ctx.export_pfc(f).map_err(|e| format!("export: {e}")))
            .map_err(|what| FilterError::Compile { thread, what })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Compiles the filter for `thread` with `facts` (None with mode off).
    pub fn compile(
        &self,
        thread: ThreadKind,
        facts: &RuntimeFacts,
    ) -> Result<Option<CompiledFilter>, FilterError> {
        let Some(ctx) = self.context(thread, facts)? else {
            return Ok(None);
        };
        let bytes = export_bpf(&ctx).map_err(|what| FilterError::Compile { thread, what })?;
        Ok(Some(CompiledFilter {
            thread,
            program: to_program(&bytes),
        }))
    }
}

/// What an export function of libseccomp writes to an fd. libseccomp 2.5 exports only
/// to fds, so it goes through an anonymous memory file.
fn export_via_memfd(
    export: impl FnOnce(&std::fs::File) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek};
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create with a NUL-terminated name; the fd is owned by `file` below.
    let fd = unsafe { libc::memfd_create(c"sandvmm-export".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    export(&file)?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(|e| format!("export: {e}"))?;
    Ok(bytes)
}

/// `struct sock_filter` entries from libseccomp's exported bytes.
pub(crate) fn to_program(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// libseccomp's BPF program for `ctx`, as raw bytes.
pub(crate) fn export_bpf(ctx: &ScmpFilterContext) -> Result<Vec<u8>, String> {
    export_via_memfd(|f| ctx.export_bpf(f).map_err(|e| format!("export: {e}")))
}

impl CompiledFilter {
    /// A filter that allows everything: the cost floor of having a filter at all, for
    /// the benchmarks.
    pub fn allow_all(thread: ThreadKind) -> Result<CompiledFilter, FilterError> {
        let fail = |what: String| FilterError::Compile { thread, what };
        let ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| fail(e.to_string()))?;
        let bytes = export_bpf(&ctx).map_err(fail)?;
        Ok(CompiledFilter {
            thread,
            program: to_program(&bytes),
        })
    }

    /// Exports a libseccomp context made elsewhere (the tests run sandvmm under
    /// filters of their own to play a host that refuses user namespaces or Landlock).
    pub fn from_context(
        thread: ThreadKind,
        ctx: &ScmpFilterContext,
    ) -> Result<CompiledFilter, FilterError> {
        let bytes = export_bpf(ctx).map_err(|what| FilterError::Compile { thread, what })?;
        Ok(CompiledFilter {
            thread,
            program: to_program(&bytes),
        })
    }

    /// The program, one `struct sock_filter` per instruction.
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (it never is once compiled).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The raw program (8-byte `struct sock_filter` entries), for `sandbox show --format bpf`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.program
            .iter()
            .flat_map(|f| {
                let mut b = Vec::with_capacity(8);
                b.extend_from_slice(&f.code.to_ne_bytes());
                b.extend_from_slice(&[f.jt, f.jf]);
                b.extend_from_slice(&f.k.to_ne_bytes());
                b
            })
            .collect()
    }

    /// Puts the calling thread under this filter, for good.
    pub fn install(&self) -> Result<(), FilterError> {
        // SAFETY: prctl with constant arguments; no memory is passed.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(FilterError::NoNewPrivs(std::io::Error::last_os_error()));
        }
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        const SET_MODE_FILTER: libc::c_uint = libc::SECCOMP_SET_MODE_FILTER;
        // SAFETY: `prog` points at a valid BPF program that outlives the call; the
        // kernel copies it.
        let rc = unsafe { libc::syscall(libc::SYS_seccomp, SET_MODE_FILTER, 0, &prog) };
        if rc != 0 {
            return Err(FilterError::Install(
                self.thread,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;

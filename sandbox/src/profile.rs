//! Counting the system calls each thread makes under a real workload, so that rule
//! priorities come from measurements (the 2012 review's idea, done per thread).
//!
//! The workload runs as a child under ptrace with its filters in trace mode
//! (`SCMP_ACT_TRACE` as the default action, no rules), installed at exactly the points
//! the real filters are. Every system call a filter would see therefore stops the
//! thread with `PTRACE_EVENT_SECCOMP`; the profiler reads the number from `orig_rax`,
//! the thread from `/proc/PID/task/TID/comm`, counts, and lets it go on. Calls made
//! during set-up, before the filters, are not counted: no filter judges them.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;

use libseccomp::ScmpSyscall;

use crate::policy::Frequency;
use crate::ThreadKind;

/// Errors from profiling.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the command line contains a NUL byte")]
    Nul,
    #[error("cannot start the workload")]
    Fork(#[source] io::Error),
    #[error("ptrace failed ({0})")]
    Ptrace(&'static str, #[source] io::Error),
}

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadEnd {
    Exited(i32),
    Signalled(i32),
}

fn last_error(what: &'static str) -> ProfileError {
    ProfileError::Ptrace(what, io::Error::last_os_error())
}

/// Runs `argv` (program first) under the profiler and returns the counts.
pub fn profile(argv: &[String]) -> Result<(Frequency, WorkloadEnd), ProfileError> {
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| ProfileError::Nul)?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());

    // SAFETY: the child only calls async-signal-safe functions before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ProfileError::Fork(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the child: ask to be traced, stop so the parent can set options,
        // then exec; on failure leave without running the parent's destructors.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    trace(pid)
}

fn wait_any(status: &mut i32) -> libc::pid_t {
    // SAFETY: waitpid writes the status of a traced thread.
    unsafe { libc::waitpid(-1, status, libc::__WALL) }
}

fn cont(tid: libc::pid_t, signal: i32) {
    // SAFETY: resumes a thread that is in a ptrace stop.
    unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0, signal) };
}

fn trace(pid: libc::pid_t) -> Result<(Frequency, WorkloadEnd), ProfileError> {
    let mut status = 0;
    // SAFETY: waits for the child's initial SIGSTOP.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(last_error("waitpid"));
    }
    let options = libc::PTRACE_O_TRACESECCOMP
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: sets options on our stopped child.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) } != 0 {
        return Err(last_error("PTRACE_SETOPTIONS"));
    }
    cont(pid, 0);

    let mut kinds: HashMap<libc::pid_t, ThreadKind> = HashMap::new();
    let mut counts: HashMap<(ThreadKind, i64), u64> = HashMap::new();
    let end = loop {
        let tid = wait_any(&mut status);
        if tid < 0 {
            return Err(last_error("waitpid"));
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if tid == pid {
                break if libc::WIFEXITED(status) {
                    WorkloadEnd::Exited(libc::WEXITSTATUS(status))
                } else {
                    WorkloadEnd::Signalled(libc::WTERMSIG(status))
                };
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let event = status >> 16;
        let signal = libc::WSTOPSIG(status);
        if signal == libc::SIGTRAP && event == libc::PTRACE_EVENT_SECCOMP {
            // SAFETY: user_regs_struct is plain data; PTRACE_GETREGS fills it.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            // SAFETY: `tid` is in a ptrace stop; `regs` is writable.
            if unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs) } == 0 {
                let kind = *kinds.entry(tid).or_insert_with(|| thread_kind(pid, tid));
                *counts.entry((kind, regs.orig_rax as i64)).or_default() += 1;
            }
            cont(tid, 0);
        } else if signal == libc::SIGTRAP && event != 0 {
            // Exec, clone and the like.
            cont(tid, 0);
        } else if signal == libc::SIGSTOP && event == 0 && !kinds.contains_key(&tid) && tid != pid {
            // A new thread's initial stop.
            cont(tid, 0);
        } else {
            // A real signal for the workload (the vCPU kick, SIGTERM, ...): deliver it.
            cont(tid, signal);
        }
    };

    let mut frequency = Frequency::default();
    for ((kind, nr), n) in counts {
        let name = ScmpSyscall::from(nr as i32)
            .get_name()
            .unwrap_or_else(|_| format!("syscall_{nr}"));
        *frequency
            .counts
            .entry(kind)
            .or_default()
            .entry(name)
            .or_default() += n;
    }
    Ok((frequency, end))
}

fn thread_kind(pid: libc::pid_t, tid: libc::pid_t) -> ThreadKind {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    ThreadKind::from_thread_name(comm.trim())
}

/// Adds `other`'s counts to `into`.
pub fn merge(into: &mut Frequency, other: &Frequency) {
    for (kind, table) in &other.counts {
        let dest = into.counts.entry(*kind).or_default();
        for (name, n) in table {
            *dest.entry(name.clone()).or_default() += n;
        }
    }
}

//! The process layer: no core dumps, no ptrace by peers, no new executable memory, and
//! resource limits that match what a running VM needs and nothing more.
//!
//! - `PR_SET_DUMPABLE 0`: no core file, and /proc/PID is root's, so processes of the
//!   same uid cannot read the VMM's memory or attach to it.
//! - `RLIMIT_CORE 0`: no core even if something made it dumpable again. Guest memory
//!   is also `MADV_DONTDUMP` from the moment it is mapped (vmm/src/memory.rs).
//! - `RLIMIT_NOFILE` = highest fd + 1: no new fd, whatever the filters allow.
//! - `RLIMIT_NPROC` = the threads still to come: the vCPUs, plus the worker thread
//!   KVM starts at the first `KVM_RUN`; a fork then fails with `EAGAIN`. (Counted per
//!   uid inside the jail's own user namespace, which holds only this process.)
//! - `RLIMIT_MEMLOCK` and `RLIMIT_MSGQUEUE` 0: nothing is locked or queued.
//! - `PR_SET_MDWE` (Linux 6.3): memory can never become writable and executable, or
//!   executable after the fact — the mprotect/mmap escape without the filters.

use std::io;

use super::JailError;

/// `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)` (include/uapi/linux/prctl.h).
pub(crate) const PR_SET_MDWE: libc::c_int = 65;
const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;

fn set(
    resource: libc::__rlimit_resource_t,
    what: &'static str,
    value: u64,
) -> Result<(), JailError> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(resource, &limit) } < 0 {
        return Err(JailError::Step(what, io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets the resource limits: `max_fd` is the highest fd kept, `tasks` the threads the
/// process will still create.
pub fn limit_resources(max_fd: i32, tasks: u64) -> Result<(), JailError> {
    set(libc::RLIMIT_CORE, "set RLIMIT_CORE", 0)?;
    set(
        libc::RLIMIT_NOFILE,
        "set RLIMIT_NOFILE",
        max_fd.max(2) as u64 + 1,
    )?;
    // The running process counts as one.
    set(libc::RLIMIT_NPROC, "set RLIMIT_NPROC", 1 + tasks)?;
    set(libc::RLIMIT_MEMLOCK, "set RLIMIT_MEMLOCK", 0)?;
    set(libc::RLIMIT_MSGQUEUE, "set RLIMIT_MSGQUEUE", 0)
}

/// Makes the process non-dumpable and, where the kernel has it, refuses executable
/// memory gains. Returns whether MDWE is on.
pub fn seal() -> Result<bool, JailError> {
    // SAFETY: prctl with plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(JailError::Step(
            "make the process non-dumpable",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above.
    let mdwe = unsafe { libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) } == 0;
    if !mdwe && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(JailError::Step(
            "refuse executable memory",
            io::Error::last_os_error(),
        ));
    }
    Ok(mdwe)
}

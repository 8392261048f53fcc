//! The kernel's records of seccomp `log` actions (audit `type=1326`), read with
//! `dmesg` for the log-mode tests.
//!
//! Without auditd the kernel prints each record to its log, e.g.
//! `audit: type=1326 ... pid=4242 comm="vcpu0" exe="/.../sandvmm" sig=0 arch=c000003e
//! syscall=59 compat=0 ip=0x... code=0x7ffc0000`, where `pid` is the process (thread
//! group) id and `code=0x7ffc0000` is `SECCOMP_RET_LOG`.

use std::process::Command;

/// `SECCOMP_RET_LOG` as the record prints it.
const RET_LOG: &str = "code=0x7ffc0000";

/// The log-action records of process `pid`, or `None` when the kernel log cannot be
/// read (not root, `dmesg` missing): the caller decides whether that is a skip.
pub fn seccomp_log_records(pid: u32) -> Option<Vec<String>> {
    let out = Command::new("dmesg").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let pid = format!(" pid={pid} ");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("type=1326") && l.contains(&pid) && l.contains(RET_LOG))
            .map(str::to_string)
            .collect(),
    )
}

/// Asserts the kernel logged no seccomp record for `pid` (a log-mode run without
/// violations). Where the kernel log cannot be read the check is skipped
/// ([`super::skip`]: a failure under CI).
pub fn assert_none_logged(pid: u32, case: &str) {
    match seccomp_log_records(pid) {
        Some(records) => assert!(records.is_empty(), "{case}: logged {records:?}"),
        None => super::skip(&format!("{case}: the kernel log (dmesg) is not readable")),
    }
}

//! Shrinking the freshly forked script helper to what a script needs (the helper's
//! module header says what and why): no parent to outlive, no fds but its socket and
//! stderr, no environment, and, started as root, CAP_NET_ADMIN and nothing else.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use sandbox::jail::identity::set_capabilities;
use sandbox::jail::Identity;

/// CAP_NET_ADMIN (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

fn check(what: &'static str, rc: libc::c_long) -> Result<(), String> {
    if rc < 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Shrinks the freshly forked helper to what a script needs (module header).
pub(super) fn confine(
    sock: &UnixStream,
    parent: libc::pid_t,
    user: Option<Identity>,
) -> Result<(), String> {
    let keep = sock.as_raw_fd();
    // SAFETY: every call below takes plain integers or pointers to locals that outlive
    // it; the helper is single-threaded, so the raw id changes cover the whole process.
    unsafe {
        check(
            "die with the VMM",
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into(),
        )?;
        if libc::getppid() != parent {
            return Err("outlive the VMM".into());
        }
        // stdin and stdout become /dev/null; stderr stays for the scripts' messages.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        check("open /dev/null", null.into())?;
        for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
            check("redirect stdin and stdout", libc::dup2(null, fd).into())?;
        }
        for (first, last) in [(3, keep - 1), (keep + 1, libc::c_int::MAX)] {
            if first <= last {
                check(
                    "close the inherited fds",
                    libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32),
                )?;
            }
        }
        if libc::geteuid() == 0 {
            keep_only_net_admin(user)?;
        }
    }
    // Only the scripts' PATH is set again (in `serve`); nothing of the launcher's stays.
    scrub_environment();
    Ok(())
}

/// Started as root: keeps CAP_NET_ADMIN in every set (ambient too, so that a script
/// gets it across exec), drops everything else, and becomes `user` if given.
///
/// # Safety
/// The process must be single-threaded.
unsafe fn keep_only_net_admin(user: Option<Identity>) -> Result<(), String> {
    // SAFETY: (for the block) plain-integer prctl and setres*id calls.
    unsafe {
        for cap in (0..=63).filter(|c| *c != CAP_NET_ADMIN) {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 {
                break; // EINVAL past the last capability the kernel knows
            }
        }
        // SECBIT_NOROOT and SECBIT_NO_SETUID_FIXUP, with their locks, and KEEP_CAPS for
        // the uid change below: uid 0 regains nothing at exec, a uid change keeps the
        // capabilities this helper chose.
        check(
            "lock the secure bits",
            libc::prctl(libc::PR_SET_SECUREBITS, 0b1_1111, 0, 0, 0).into(),
        )?;
        if let Some(user) = user {
            check(
                "clear the groups",
                libc::setgroups(0, std::ptr::null()).into(),
            )?;
            check(
                "switch gid",
                libc::setresgid(user.gid, user.gid, user.gid).into(),
            )?;
            check(
                "switch uid",
                libc::setresuid(user.uid, user.uid, user.uid).into(),
            )?;
        }
        set_capabilities(1 << CAP_NET_ADMIN)
            .map_err(|e| format!("keep only CAP_NET_ADMIN: {e}"))?;
        check(
            "pass CAP_NET_ADMIN to the scripts",
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                CAP_NET_ADMIN,
                0,
                0,
            )
            .into(),
        )?;
        check(
            "set no_new_privs",
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(),
        )?;
    }
    Ok(())
}

extern "C" {
    /// The C library's environment (environ(7)).
    static mut environ: *mut *mut libc::c_char;
}

/// Forgets the launcher's environment. Removing the variables is not enough: their
/// text stays in the process's memory, where /proc/PID/environ shows it, so it is
/// overwritten first.
fn scrub_environment() {
    // SAFETY: the helper is single-threaded, so nothing else reads or changes the
    // environment meanwhile; each entry is a NUL-terminated string in writable memory
    // (the initial stack, or the heap for variables set later), zeroed in place before
    // clearenv drops the array.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry;
            std::ptr::write_bytes(text, 0, libc::strlen(text));
            entry = entry.add(1);
        }
        libc::clearenv();
    }
}

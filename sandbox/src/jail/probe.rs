//! What the jail would reach on this host, found without putting it on: the lines of
//! `sandvmm sandbox show --layers`. Each probe that changes the process runs in a
//! forked child.

use super::identity::{started_as_root, Identity, JailUser};
use super::landlock::{LandlockLevel, WANTED_ABI};
use super::mounts::NAMESPACES;

/// Runs `probe` in a forked child; returns the errno it failed with (0: it worked).
fn in_child(probe: fn() -> libc::c_int) -> i32 {
    // SAFETY: the child makes raw system calls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let rc = probe();
        let errno = if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
        } else {
            0
        };
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(errno.min(255)) };
    }
    if pid < 0 {
        return libc::EAGAIN;
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        libc::EINTR
    }
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// The jail's layers on this host, as (layer, what a run gets) lines.
pub fn describe(user: &JailUser) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    lines.push((
        "fds",
        "inherited fds closed (close_range), all of sandvmm's own close-on-exec".into(),
    ));
    lines.push((
        "identity",
        if started_as_root() {
            match user.resolve() {
                Ok(Identity { uid, gid }) => {
                    let name = match user {
                        JailUser::Name(name) => name.clone(),
                        JailUser::Ids(_) => "--jail-user".into(),
                    };
                    format!("started as root: becomes {name} (uid {uid}, gid {gid}), no groups")
                }
                Err(e) => format!("started as root: FAILS: {e}"),
            }
        } else {
            let me = Identity::current();
            format!("keeps uid {}, gid {}", me.uid, me.gid)
        },
    ));
    let userns = in_child(|| {
        // SAFETY: unshare takes flags only; this is a throw-away child.
        unsafe { libc::unshare(libc::CLONE_NEWUSER | NAMESPACES) }
    });
    lines.push((
        "namespaces",
        match userns {
            0 => "user, mount, IPC, UTS, network, cgroup: available".into(),
            e => format!("user, mount, IPC, UTS, network, cgroup: UNAVAILABLE ({}); the jail would fail, --jail off goes without", errno_text(e)),
        },
    ));
    lines.push((
        "root",
        "an empty read-only tmpfs (pivot_root), the host's detached".into(),
    ));
    lines.push((
        "capabilities",
        "none (bounding, permitted, effective, inheritable, ambient), secure bits locked".into(),
    ));
    let landlock = LandlockLevel::probe();
    lines.push((
        "landlock",
        match landlock.abi {
            0 => "UNAVAILABLE: the jail would fail, --jail off goes without".into(),
            abi if landlock.full => format!(
                "ABI {abi}: every filesystem right denied, TCP bind/connect denied, signals and abstract sockets scoped"
            ),
            abi => format!(
                "ABI {abi} of the {WANTED_ABI} sandvmm asks for: cannot enforce {}",
                landlock.missing()
            ),
        },
    ));
    lines.push((
        "limits",
        "RLIMIT_CORE 0, NOFILE = highest fd + 1 (no free number below it), NPROC = vCPUs + 2, MEMLOCK 0, MSGQUEUE 0".into(),
    ));
    let mdwe = in_child(|| {
        // SAFETY: prctl with integer arguments, in a throw-away child.
        unsafe { libc::prctl(super::process::PR_SET_MDWE, 1, 0, 0, 0) }
    });
    lines.push((
        "memory",
        match mdwe {
            0 => "non-dumpable; never writable and executable (PR_SET_MDWE)".into(),
            _ => "non-dumpable; PR_SET_MDWE not available on this kernel (Linux 6.3+)".into(),
        },
    ));
    lines
}

//! The process's own namespaces, and an empty, read-only root.
//!
//! Inside its user namespace the process unshares the mount, IPC, UTS, network and
//! cgroup namespaces: it then sees no host network interface (its taps are fds, which
//! keep working), no host SysV IPC, and its own hostname. It mounts an empty tmpfs,
//! read-only and with no device, setuid or exec rights, makes it the root with
//! `pivot_root(".", ".")` and detaches the old root, so no host path resolves any more:
//! `/etc/passwd`, `/proc` and `/dev` are all gone (pivot_root(2), "NOTES").
//!
//! The tmpfs is mounted over [`STAGING_DIR`] only long enough to pivot into it; the
//! staging directory itself is never modified.

use std::io;

use super::JailError;

/// Where the empty root is mounted before the pivot: any directory every Linux host
/// has. (It cannot be `/` itself: pivot_root refuses a root stacked on the old one.)
pub const STAGING_DIR: &std::ffi::CStr = c"/tmp";

/// The namespaces unshared besides the user namespace.
pub const NAMESPACES: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

fn check(what: &'static str, rc: libc::c_long) -> Result<(), JailError> {
    if rc < 0 {
        return Err(JailError::Step(what, io::Error::last_os_error()));
    }
    Ok(())
}

/// Unshares [`NAMESPACES`]; needs the capabilities of the new user namespace.
pub fn unshare_namespaces() -> Result<(), JailError> {
    // SAFETY: unshare takes flags only.
    check(
        "unshare the mount, IPC, UTS, network and cgroup namespaces",
        unsafe { libc::unshare(NAMESPACES) } as libc::c_long,
    )
}

/// Replaces the root with an empty read-only tmpfs and detaches the old one.
pub fn pivot_to_empty_root() -> Result<(), JailError> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: every string is NUL-terminated and outlives the call; the null pointers
    // are the documented "none" values of mount(2), umount2(2) and pivot_root(2).
    unsafe {
        // Nothing done in this namespace may propagate back to the host's.
        check(
            "make the mounts private",
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
            .into(),
        )?;
        check(
            "mount the empty root",
            libc::mount(
                c"tmpfs".as_ptr(),
                STAGING_DIR.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"size=4k,nr_inodes=1,mode=0555".as_ptr().cast(),
            )
            .into(),
        )?;
        check(
            "enter the empty root",
            libc::chdir(STAGING_DIR.as_ptr()).into(),
        )?;
        // With new_root == put_old, the old root ends up stacked on the new one at
        // "."; detaching it leaves only the empty tmpfs.
        check(
            "pivot_root into the empty root",
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
        )?;
        check(
            "detach the old root",
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into(),
        )?;
        check("enter the new root", libc::chdir(c"/".as_ptr()).into())?;
    }
    Ok(())
}

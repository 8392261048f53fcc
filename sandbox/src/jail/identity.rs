//! Who the jailed process is: an unprivileged uid and gid, in a user namespace of its
//! own, with no capability left in any set.
//!
//! Started as root, sandvmm first becomes the jail user (`--jail-user`, by default the
//! dedicated `sandvmm` user) with no supplementary groups. Then, whoever started it,
//! it enters a new user namespace that maps only that uid and gid onto themselves, so
//! the namespace's other ids are unmapped and it owns nothing outside. The namespace
//! gives the process full capabilities over the namespaces it then creates (mounts,
//! pivot_root); [`drop_capabilities`] takes every one of them away for good.

use std::io;

use super::JailError;

/// The user sandvmm becomes when started as root, unless `--jail-user` says otherwise.
pub const DEFAULT_JAIL_USER: &str = "sandvmm";

/// `struct __user_cap_header_struct.version` for 64-bit capability sets.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Secure bits: `SECBIT_NOROOT`, `SECBIT_NO_SETUID_FIXUP`, `SECBIT_KEEP_CAPS` and
/// `SECBIT_NO_CAP_AMBIENT_RAISE`, each with its lock (include/uapi/linux/securebits.h).
/// Locked, no exec and no uid change can ever hand capabilities back.
const SECUREBITS_LOCKED_DOWN: libc::c_ulong = 0b1111_1111 & !0b1_0000; // KEEP_CAPS itself off

/// A uid and gid to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// `--jail-user`: a user to look up, or a uid and gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JailUser {
    Name(String),
    Ids(Identity),
}

impl Default for JailUser {
    /// The dedicated user.
    fn default() -> JailUser {
        JailUser::Name(DEFAULT_JAIL_USER.to_string())
    }
}

impl std::str::FromStr for JailUser {
    type Err = String;

    /// `USER` or `UID:GID`; root's ids are refused.
    fn from_str(spec: &str) -> Result<JailUser, String> {
        if let Some((uid, gid)) = spec.split_once(':') {
            let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
                return Err(format!("{spec:?} is not UID:GID"));
            };
            if uid == 0 || gid == 0 {
                return Err(format!(
                    "{spec:?} is root; the jail needs an unprivileged uid and gid"
                ));
            }
            return Ok(JailUser::Ids(Identity { uid, gid }));
        }
        if spec.is_empty() || spec.contains(['\0', '/']) {
            return Err(format!("{spec:?} is not a user name"));
        }
        Ok(JailUser::Name(spec.to_string()))
    }
}

impl JailUser {
    /// The uid and gid to become, looking a name up in the user database.
    pub fn resolve(&self) -> Result<Identity, JailError> {
        let name = match self {
            JailUser::Ids(ids) => return Ok(*ids),
            JailUser::Name(name) => name,
        };
        let identity = lookup_user(name)?.ok_or_else(|| JailError::NoJailUser {
            user: name.clone(),
            default: name == DEFAULT_JAIL_USER,
        })?;
        if identity.uid == 0 || identity.gid == 0 {
            return Err(JailError::RootJailUser(name.clone()));
        }
        Ok(identity)
    }
}

impl Identity {
    /// The process's own real uid and gid.
    pub fn current() -> Identity {
        // SAFETY: getuid and getgid cannot fail.
        unsafe {
            Identity {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }
}

/// Whether the process runs with root's effective uid.
pub fn started_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The user database the jail user is looked up in.
const PASSWD: &str = "/etc/passwd";

/// `name`'s uid and gid from /etc/passwd (None if there is no such user).
///
/// sandvmm is linked statically (.cargo/config.toml), and a static glibc cannot load
/// the NSS modules `getpwnam` would consult (it crashes in them): the jail user is a
/// local system account (`useradd --system`), so /etc/passwd is where it is.
fn lookup_user(name: &str) -> Result<Option<Identity>, JailError> {
    let text = std::fs::read_to_string(PASSWD)
        .map_err(|e| JailError::Step("read /etc/passwd to look up the jail user", e))?;
    Ok(find_user(&text, name))
}

/// `name`'s entry in passwd(5) text: `name:password:uid:gid:gecos:home:shell`.
/// Comments, blank and malformed lines are skipped.
fn find_user(passwd: &str, name: &str) -> Option<Identity> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name || line.starts_with('#') {
            return None;
        }
        let _password = fields.next()?;
        Some(Identity {
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), JailError> {
    if rc < 0 {
        return Err(JailError::Step(what, io::Error::last_os_error()));
    }
    Ok(())
}

/// Becomes `to` for good: no supplementary groups, then gid, then uid (real, effective
/// and saved). Needs root; the process must be single-threaded (the raw calls change
/// only the calling thread).
pub fn switch_user(to: Identity) -> Result<(), JailError> {
    // SAFETY: setgroups with an empty list; setresgid/setresuid take plain ids.
    unsafe {
        check(
            "clear the supplementary groups",
            libc::setgroups(0, std::ptr::null()),
        )?;
        check("switch gid", libc::setresgid(to.gid, to.gid, to.gid))?;
        check("switch uid", libc::setresuid(to.uid, to.uid, to.uid))?;
        // Changing ids made the process non-dumpable, which makes /proc/self/* root's
        // and the id maps below unwritable; the process layer sets it back to 0.
        check(
            "make /proc/self writable",
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0),
        )?;
    }
    Ok(())
}

/// Enters a new user namespace in which `who` is mapped onto itself and nothing else
/// is mapped. The process must be single-threaded.
pub fn enter_user_namespace(who: Identity) -> Result<(), JailError> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        return Err(JailError::UserNamespace(
            io::Error::last_os_error(),
            userns_hint(),
        ));
    }
    let write = |path: &str, text: String| {
        std::fs::write(path, text)
            .map_err(|e| JailError::Step("write the user namespace's id maps", e))
    };
    // An unprivileged process may map only its own ids, and gid_map only once
    // setgroups is denied (user_namespaces(7)).
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/gid_map", format!("{0} {0} 1\n", who.gid))?;
    write("/proc/self/uid_map", format!("{0} {0} 1\n", who.uid))?;
    Ok(())
}

/// What, on this host, forbids unprivileged user namespaces.
fn userns_hint() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "sysctl user.max_user_namespaces is 0".into();
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "sysctl kernel.unprivileged_userns_clone is 0".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "sysctl kernel.apparmor_restrict_unprivileged_userns is 1".into();
    }
    "the kernel or a security module refuses unprivileged user namespaces".into()
}

/// Drops every capability: the bounding set, the ambient set, then effective,
/// permitted and inheritable; and locks the secure bits so that nothing gives any
/// back. Runs inside the user namespace, where CAP_SETPCAP is still held.
pub fn drop_capabilities() -> Result<(), JailError> {
    // The bounding set has one bit per capability up to cap_last_cap; PR_CAPBSET_DROP
    // fails with EINVAL past the last one the kernel knows.
    for cap in 0..=63 {
        // SAFETY: prctl with plain integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(JailError::Step(
                "drop the capability bounding set",
                io::Error::last_os_error(),
            ));
        }
    }
    // SAFETY: prctl with plain integer arguments.
    unsafe {
        check(
            "clear the ambient capabilities",
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ),
        )?;
        check(
            "lock the secure bits",
            libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_LOCKED_DOWN, 0, 0, 0),
        )?;
    }
    set_capabilities(0).map_err(|e| JailError::Step("drop every capability", e))
}

/// Sets the effective, permitted and inheritable capability sets of the calling thread
/// to `caps` (bit N is capability N). It can only keep or drop what the thread has.
pub fn set_capabilities(caps: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |w: u64| Data {
        effective: w as u32,
        permitted: w as u32,
        inheritable: w as u32,
    };
    // Version 3 takes the 64 bits as two words, low first.
    let data = [word(caps), word(caps >> 32)];
    // SAFETY: capset reads a version-3 header and two data words, which these are.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment:x:5:5
broken:x:notanumber:7::/:/bin/false
sandvmm:x:998:997::/nonexistent:/usr/sbin/nologin

sandvmm-test:x:1001:1001::/home/t:/bin/sh
";

    #[test]
    fn users_are_found_by_their_exact_name() {
        let find = |name| find_user(PASSWD_TEXT, name);
        assert_eq!(find("sandvmm"), Some(Identity { uid: 998, gid: 997 }));
        assert_eq!(
            find("sandvmm-test"),
            Some(Identity {
                uid: 1001,
                gid: 1001
            })
        );
        assert_eq!(find("root"), Some(Identity { uid: 0, gid: 0 }));
        assert_eq!(find("sandvm"), None, "a prefix is not a name");
        assert_eq!(find("broken"), None, "a malformed line is skipped");
        assert_eq!(find("# a comment"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn this_hosts_root_is_found() {
        assert_eq!(
            lookup_user("root").unwrap(),
            Some(Identity { uid: 0, gid: 0 })
        );
    }
}

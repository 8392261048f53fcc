//! The jail: every confinement layer around the seccomp filters.
//!
//! sandvmm jails itself once the VM is built (every fd and mapping exists) and before
//! any vCPU thread starts. [`begin`] (while the process is single-threaded) and
//! [`finish`] apply the layers in the only order that works:
//!
//! 1. [`fds`]: close every fd the launcher left open, keeping sandvmm's own and those
//!    handed in (needs /proc, so it comes first);
//! 2. [`identity`]: started as root, become the jail user; then, for anyone, a user
//!    namespace that maps only that uid and gid;
//! 3. [`mounts`]: new mount, IPC, UTS, network and cgroup namespaces, and an empty
//!    read-only root with the old one detached;
//! 4. [`identity::drop_capabilities`]: no capability in any set, secure bits locked;
//! 5. [`landlock`]: no filesystem right, no TCP, signals and abstract sockets scoped;
//! 6. [`process`]: resource limits, non-dumpable, no executable memory gains.
//!
//! The seccomp filters go on afterwards, one per thread. Each layer stops attacks on
//! its own; docs/SANDBOX.md has the table of what each one stops.

pub mod fds;
pub mod identity;
pub mod landlock;
pub mod mounts;
pub mod probe;
pub mod process;

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;

pub use identity::{Identity, JailUser, DEFAULT_JAIL_USER};
pub use landlock::LandlockLevel;

/// Errors from putting the jail on. Each names the step and, where the host is the
/// cause, the setting that changes it.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("cannot {0}")]
    Step(&'static str, #[source] io::Error),
    #[error("cannot create a user namespace ({1}); allow unprivileged user namespaces, or run with --jail off")]
    UserNamespace(#[source] io::Error, String),
    #[error("Landlock is not available on this host (a kernel built with CONFIG_SECURITY_LANDLOCK and booted with landlock in lsm=); run with --jail off to go without the jail")]
    NoLandlock,
    #[error("cannot apply the Landlock ruleset: {0}")]
    Landlock(String),
    #[error("started as root, but there is no user {user:?} to run as{}", if *default { ": create it (useradd --system --no-create-home --shell /usr/sbin/nologin sandvmm) or choose one with --jail-user USER|UID:GID" } else { "" })]
    NoJailUser { user: String, default: bool },
    #[error("jail user {0:?} is root; the jail needs an unprivileged uid and gid")]
    RootJailUser(String),
    #[error("internal error: fd {0} is sandvmm's own but has no role in the sandbox")]
    UnknownFd(RawFd),
}

/// What the jail needs to know about the process it confines.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The uid and gid to become when started as root (ignored otherwise).
    pub jail_user: Identity,
    /// The fds to keep: sandvmm's own, those handed in, and 0-2.
    pub keep_fds: BTreeSet<RawFd>,
    /// The fds open when sandvmm started ([`fds::inherited`]).
    pub inherited_fds: BTreeSet<RawFd>,
    /// Threads still to be created once jailed (vCPUs and KVM's worker).
    pub tasks: u64,
}

/// What the jail reached, for the notice and `sandbox show --layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// The identity the process runs as.
    pub identity: Identity,
    pub landlock: LandlockLevel,
    /// Whether the kernel refuses executable memory gains (PR_SET_MDWE).
    pub mdwe: bool,
}

impl Reached {
    /// The line said once on stderr when Landlock enforces less than sandvmm asks for.
    pub fn notice(&self) -> Option<String> {
        (!self.landlock.full).then(|| {
            format!(
                "sandvmm: this kernel's Landlock (ABI {}) cannot enforce {}; the other layers are on",
                self.landlock.abi,
                self.landlock.missing()
            )
        })
    }
}

/// The first half of the jail, which needs the process single-threaded: the fds, the
/// identity and the user namespace. Returns who the process now is.
///
/// The second half, [`finish`], may overlap with work on another thread (sandvmm
/// registers guest memory meanwhile), as long as that thread ends before anything
/// runs under the filters: namespaces, capabilities and Landlock go on the calling
/// thread, and threads it creates afterwards inherit them.
pub fn begin(plan: &Plan) -> Result<Identity, JailError> {
    fds::close_all_but(&plan.keep_fds, &plan.inherited_fds)?;
    fds::plug_holes()?;
    let identity = if identity::started_as_root() {
        identity::switch_user(plan.jail_user)?;
        plan.jail_user
    } else {
        Identity::current()
    };
    identity::enter_user_namespace(identity)?;
    Ok(identity)
}

/// The second half of the jail: the other namespaces and the empty root, no
/// capabilities, Landlock, resource limits, non-dumpable and no executable memory.
pub fn finish(plan: &Plan, identity: Identity) -> Result<Reached, JailError> {
    mounts::unshare_namespaces()?;
    mounts::pivot_to_empty_root()?;
    identity::drop_capabilities()?;
    let landlock = landlock::restrict()?;
    let max_fd = plan.keep_fds.iter().copied().max().unwrap_or(2);
    process::limit_resources(max_fd, plan.tasks)?;
    let mdwe = process::seal()?;
    Ok(Reached {
        identity,
        landlock,
        mdwe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(abi: i32) -> Reached {
        Reached {
            identity: Identity { uid: 1, gid: 1 },
            landlock: LandlockLevel {
                abi,
                full: abi >= landlock::WANTED_ABI,
            },
            mdwe: true,
        }
    }

    #[test]
    fn an_older_landlock_is_said_once_and_a_full_one_not_at_all() {
        assert_eq!(reached(7).notice(), None);
        assert_eq!(reached(6).notice(), None);
        let notice = reached(3).notice().unwrap();
        assert!(
            notice.contains("Landlock (ABI 3) cannot enforce TCP bind/connect"),
            "{notice}"
        );
        assert!(reached(5)
            .notice()
            .unwrap()
            .contains("cannot enforce signal and abstract-socket scoping"));
    }

    #[test]
    fn this_hosts_landlock_is_probed_without_restricting_anything() {
        let level = LandlockLevel::probe();
        assert_eq!(level.abi, landlock::kernel_abi());
        // Still able to open files afterwards: probing restricted nothing.
        assert!(std::fs::File::open("/proc/self/status").is_ok());
    }
}

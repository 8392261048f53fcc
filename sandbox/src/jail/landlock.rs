//! Landlock: a ruleset that handles every right and grants none.
//!
//! Filesystem: every access right of the best ABI the kernel offers is handled and no
//! path is allowed, so even a path that still resolved (none does after the pivot)
//! could not be opened, executed, written, truncated or ioctl'ed. Fds opened before the
//! ruleset keep working: Landlock checks rights when a file is opened.
//! Network (ABI 4): TCP bind and connect are denied. Scopes (ABI 6): signals and
//! abstract unix sockets cannot reach any process outside the sandbox, which is what
//! stops a `tgkill` the seccomp filter allows from hitting a stranger.
//!
//! Best effort: an older kernel enforces what it knows, and [`LandlockLevel`] says how
//! much that was; a kernel without Landlock at all fails the jail (`--jail off` is the
//! documented way out).

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
    RulesetStatus, Scope, ABI,
};

use super::JailError;

/// The ABI whose rights sandvmm asks for: filesystem rights up to ABI 5 (device
/// ioctls), TCP (4) and scopes (6). Later ABIs add logging and thread-sync flags, no
/// right that sandvmm would handle.
pub const WANTED_ABI: i32 = 6;

/// How much of the ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LandlockLevel {
    /// The kernel's Landlock ABI (0: none).
    pub abi: i32,
    /// Whether every right sandvmm asks for is enforced.
    pub full: bool,
}

impl LandlockLevel {
    /// What this kernel would enforce, without restricting anything.
    pub fn probe() -> LandlockLevel {
        let abi = kernel_abi();
        LandlockLevel {
            abi,
            full: abi >= WANTED_ABI,
        }
    }

    /// What the kernel lacks, for the one-line notice when not everything holds.
    pub fn missing(&self) -> &'static str {
        match self.abi {
            ..=0 => "everything",
            1..=3 => "TCP bind/connect, device ioctls, signal and abstract-socket scoping",
            4 => "device ioctls, signal and abstract-socket scoping",
            5 => "signal and abstract-socket scoping",
            _ => "nothing",
        }
    }
}

/// The kernel's Landlock ABI version, or 0 when Landlock is absent or disabled.
pub fn kernel_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the call only
    // returns the ABI version (landlock_create_ruleset(2)).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0) as i32
}

/// Restricts the calling thread (and the threads it creates later) for good.
pub fn restrict() -> Result<LandlockLevel, JailError> {
    let abi = ABI::V6;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| JailError::Landlock(e.to_string()))?;
    if status.ruleset == RulesetStatus::NotEnforced
        || !matches!(status.landlock, LandlockStatus::Available { .. })
    {
        return Err(JailError::NoLandlock);
    }
    Ok(LandlockLevel {
        abi: kernel_abi(),
        full: status.ruleset == RulesetStatus::FullyEnforced,
    })
}

//! Names that policy conditions may use instead of numbers: ioctl request codes,
//! protection bits, clone flags, signals and errno values (x86_64 values).
//!
//! The ioctl request codes are defined here once, from libc's constants (the tun and
//! terminal ones) and libc's `_IO*` encoders over kvm-bindings' structures (the KVM
//! ones, as linux/kvm.h defines them), and everything else imports them: the policy
//! names below, the escape demonstration, the bench and the tests. The tap code in
//! `devices` takes the same libc constants directly.

use kvm_bindings::{
    kvm_clock_data, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msrs,
    kvm_pit_state2, kvm_regs, kvm_sregs, kvm_translation, kvm_userspace_memory_region,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};

/// The ioctl type of KVM (linux/kvm.h, `KVMIO`).
const KVMIO: u32 = 0xae;

// linux/kvm.h
pub const KVM_CHECK_EXTENSION: u64 = libc::_IO(KVMIO, 0x03) as u64;
pub const KVM_CREATE_VCPU: u64 = libc::_IO(KVMIO, 0x41) as u64;
pub const KVM_SET_USER_MEMORY_REGION: u64 =
    libc::_IOW::<kvm_userspace_memory_region>(KVMIO, 0x46) as u64;
pub const KVM_REINJECT_CONTROL: u64 = libc::_IO(KVMIO, 0x71) as u64;
pub const KVM_RUN: u64 = libc::_IO(KVMIO, 0x80) as u64;
pub const KVM_GET_REGS: u64 = libc::_IOR::<kvm_regs>(KVMIO, 0x81) as u64;
pub const KVM_SET_REGS: u64 = libc::_IOW::<kvm_regs>(KVMIO, 0x82) as u64;
pub const KVM_GET_SREGS: u64 = libc::_IOR::<kvm_sregs>(KVMIO, 0x83) as u64;
pub const KVM_TRANSLATE: u64 = libc::_IOWR::<kvm_translation>(KVMIO, 0x85) as u64;
// The state a snapshot reads: the VM's, then a vCPU's.
pub const KVM_GET_IRQCHIP: u64 = libc::_IOWR::<kvm_irqchip>(KVMIO, 0x62) as u64;
pub const KVM_GET_CLOCK: u64 = libc::_IOR::<kvm_clock_data>(KVMIO, 0x7c) as u64;
pub const KVM_GET_PIT2: u64 = libc::_IOR::<kvm_pit_state2>(KVMIO, 0x9f) as u64;
pub const KVM_GET_MSRS: u64 = libc::_IOWR::<kvm_msrs>(KVMIO, 0x88) as u64;
pub const KVM_GET_LAPIC: u64 = libc::_IOR::<kvm_lapic_state>(KVMIO, 0x8e) as u64;
pub const KVM_GET_MP_STATE: u64 = libc::_IOR::<kvm_mp_state>(KVMIO, 0x98) as u64;
pub const KVM_GET_VCPU_EVENTS: u64 = libc::_IOR::<kvm_vcpu_events>(KVMIO, 0x9f) as u64;
pub const KVM_GET_DEBUGREGS: u64 = libc::_IOR::<kvm_debugregs>(KVMIO, 0xa1) as u64;
pub const KVM_GET_XSAVE: u64 = libc::_IOR::<kvm_xsave>(KVMIO, 0xa4) as u64;
pub const KVM_GET_XCRS: u64 = libc::_IOR::<kvm_xcrs>(KVMIO, 0xa6) as u64;
// linux/if_tun.h
pub const TUNSETIFF: u64 = libc::TUNSETIFF;
pub const TUNSETOFFLOAD: u64 = libc::TUNSETOFFLOAD;
// asm-generic/ioctls.h (libc types these as c_ulong, our u64, on x86_64 glibc)
pub const TCGETS: u64 = libc::TCGETS;
pub const TCSETS: u64 = libc::TCSETS;
pub const FIONBIO: u64 = libc::FIONBIO;
pub const FIOCLEX: u64 = libc::FIOCLEX;

/// `CLONE_*` flags a pthread_create passes (glibc's `clone_flags` in
/// sysdeps/unix/sysv/linux/createthread.c).
pub const CLONE_THREAD_FLAGS: u64 = 0x100 // CLONE_VM
    | 0x200 // CLONE_FS
    | 0x400 // CLONE_FILES
    | 0x800 // CLONE_SIGHAND
    | 0x1_0000 // CLONE_THREAD
    | 0x4_0000 // CLONE_SYSVSEM
    | 0x8_0000 // CLONE_SETTLS
    | 0x10_0000 // CLONE_PARENT_SETTID
    | 0x20_0000; // CLONE_CHILD_CLEARTID

/// Every name with its value.
pub const CONSTANTS: &[(&str, u64)] = &[
    ("KVM_RUN", KVM_RUN),
    ("KVM_GET_REGS", KVM_GET_REGS),
    ("KVM_GET_SREGS", KVM_GET_SREGS),
    ("KVM_TRANSLATE", KVM_TRANSLATE),
    ("KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION),
    ("KVM_CREATE_VCPU", KVM_CREATE_VCPU),
    ("KVM_SET_REGS", KVM_SET_REGS),
    ("KVM_REINJECT_CONTROL", KVM_REINJECT_CONTROL),
    ("KVM_GET_IRQCHIP", KVM_GET_IRQCHIP),
    ("KVM_GET_CLOCK", KVM_GET_CLOCK),
    ("KVM_GET_PIT2", KVM_GET_PIT2),
    ("KVM_GET_MSRS", KVM_GET_MSRS),
    ("KVM_GET_LAPIC", KVM_GET_LAPIC),
    ("KVM_GET_MP_STATE", KVM_GET_MP_STATE),
    ("KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS),
    ("KVM_GET_DEBUGREGS", KVM_GET_DEBUGREGS),
    ("KVM_GET_XSAVE", KVM_GET_XSAVE),
    ("KVM_GET_XCRS", KVM_GET_XCRS),
    ("TUNSETIFF", TUNSETIFF),
    ("TUNSETOFFLOAD", TUNSETOFFLOAD),
    ("TCGETS", TCGETS),
    ("TCSETS", TCSETS),
    ("FIONBIO", FIONBIO),
    ("FIOCLEX", FIOCLEX),
    // asm-generic/fcntl.h
    ("F_GETFD", 1),
    // asm-generic/mman-common.h
    ("PROT_READ", 0x1),
    ("PROT_WRITE", 0x2),
    ("PROT_EXEC", 0x4),
    ("MADV_DONTNEED", 4),
    ("MADV_HWPOISON", 100),
    ("MAP_SHARED", 0x01),
    ("MAP_PRIVATE", 0x02),
    ("MAP_ANONYMOUS", 0x20),
    ("MAP_NORESERVE", 0x4000),
    ("MAP_STACK", 0x2_0000),
    // linux/futex.h: operation | FUTEX_PRIVATE_FLAG (128) | FUTEX_CLOCK_REALTIME (256)
    ("FUTEX_WAIT_PRIVATE", 128),
    ("FUTEX_WAKE_PRIVATE", 129),
    ("FUTEX_WAIT_BITSET_PRIVATE", 137),
    ("FUTEX_WAIT_BITSET_REALTIME", 9 | 256),
    ("FUTEX_LOCK_PI", 6),
    // linux/sched.h
    ("CLONE_THREAD_FLAGS", CLONE_THREAD_FLAGS),
    // signals (glibc's SIGRTMIN is 34: NPTL keeps 32 and 33 for itself)
    ("SIGRTMIN", 34),
    ("SIGABRT", 6),
    // asm-generic/errno*.h
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EACCES", 13),
    ("ENOSYS", 38),
    // fds every process has
    ("STDIN", 0),
    ("STDOUT", 1),
    ("STDERR", 2),
];

/// The value of `name`, or of a number written in decimal or 0x-hex.
pub fn value_of(name: &str) -> Option<u64> {
    let name = name.trim();
    if let Some(hex) = name.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if name.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
        return name.parse().ok();
    }
    CONSTANTS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of `value` among the ioctl request codes, for messages.
pub fn ioctl_name(value: u64) -> Option<&'static str> {
    CONSTANTS
        .iter()
        .find(|(n, v)| {
            *v == value
                && (n.starts_with("KVM_")
                    || n.starts_with("TUN")
                    || n.starts_with("TC")
                    || n.starts_with("FIO"))
        })
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_codes_match_the_headers() {
        // Values as printed by a C program including linux/kvm.h, linux/if_tun.h and
        // asm-generic/ioctls.h: a check on the sizes the encoders took.
        assert_eq!(value_of("KVM_RUN"), Some(0xae80));
        assert_eq!(value_of("KVM_SET_REGS"), Some(0x4090_ae82));
        assert_eq!(value_of("KVM_SET_USER_MEMORY_REGION"), Some(0x4020_ae46));
        assert_eq!(value_of("KVM_CREATE_VCPU"), Some(0xae41));
        assert_eq!(KVM_CHECK_EXTENSION, 0xae03);
        assert_eq!(value_of("FIONBIO"), Some(0x5421));
        assert_eq!(value_of("KVM_GET_REGS"), Some(0x8090_ae81));
        assert_eq!(value_of("KVM_GET_SREGS"), Some(0x8138_ae83));
        assert_eq!(value_of("KVM_TRANSLATE"), Some(0xc018_ae85));
        assert_eq!(value_of("TUNSETIFF"), Some(0x4004_54ca));
        assert_eq!(value_of("TUNSETOFFLOAD"), Some(0x4004_54d0));
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(value_of("42"), Some(42));
        assert_eq!(value_of("0x10"), Some(16));
        assert_eq!(value_of("PROT_EXEC"), Some(4));
        assert_eq!(value_of("NO_SUCH_THING"), None);
        assert_eq!(value_of(""), None);
        assert_eq!(ioctl_name(0xae80), Some("KVM_RUN"));
    }

    #[test]
    fn thread_flags_are_what_glibc_passes() {
        assert_eq!(CLONE_THREAD_FLAGS, 0x3d0f00);
    }
}

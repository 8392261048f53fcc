//! What kind of host KVM we run on, and how a guest is adapted to an emulating one.
//!
//! Some hosts provide `/dev/kvm` through the `kvm_pvm` module, which emulates guest
//! kernel code instruction by instruction and lacks some instructions altogether (see
//! docs/ARCHITECTURE.md, "Emulating hosts"). sandvmm notices the module, says so once,
//! and — unless `--no-host-adapt` is given — adapts a Linux guest:
//! - kernel command-line items that avoid the missing instructions (required) and the
//!   slowest emulated paths (speed only);
//! - CPUID leaf 0x4000_0001 without the paravirt features that hang an SMP guest.
//!
//! On any other host nothing changes.

use std::path::Path;

use crate::x86_64::cpuid::{CpuidOptions, KVM_PV_FEATURES_TO_HIDE};

/// Where the emulating KVM module shows itself.
const KVM_PVM_SYSFS: &str = "/sys/module/kvm_pvm";

/// Linux command-line items for an emulating host.
///
/// Required: `pvm_native` turns on our guest kernel's SYSCALL and FWAIT work-arounds
/// (images/linux/kernel.patch); `noxsave` avoids XSAVE/XRSTOR; `clearcpuid=smap,popcnt`
/// avoids CLAC/STAC and POPCNT. Speed only: hiding ERMS/FSRM makes the kernel use
/// `rep movsq` instead of byte-wise `rep movsb`; `rodata=off`, `noreplace-smp`,
/// `percpu_alloc=page` skip long emulated loops at boot; `quiet` saves the console time.
/// Keep the `clearcpuid=` list under 127 characters: the kernel cuts it silently.
pub const EMULATED_HOST_CMDLINE: &str = "pvm_native noxsave clearcpuid=smap,popcnt,erms,fsrm \
     rodata=off noreplace-smp percpu_alloc=page mitigations=off quiet";

/// The host as far as sandvmm cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// `/dev/kvm` comes from kvm_pvm in emulating mode.
    pub emulating: bool,
    /// The user allows sandvmm to adapt the guest to the host.
    pub adapt: bool,
}

impl Host {
    /// Looks at the running host.
    pub fn detect(adapt: bool) -> Self {
        Self {
            emulating: Path::new(KVM_PVM_SYSFS).exists(),
            adapt,
        }
    }

    /// The one line said on stderr at start-up, if any.
    pub fn notice(&self) -> Option<&'static str> {
        match (self.emulating, self.adapt) {
            (false, _) => None,
            (true, true) => Some(
                "sandvmm: host KVM is kvm_pvm, which emulates guest kernel code: \
                 adapting Linux guests (command line, CPUID); --no-host-adapt turns this off",
            ),
            (true, false) => Some(
                "sandvmm: host KVM is kvm_pvm, which emulates guest kernel code; \
                 not adapting the guest (--no-host-adapt)",
            ),
        }
    }

    fn adapting(&self) -> bool {
        self.emulating && self.adapt
    }

    /// Extra command-line items for a guest (`is_linux`: the kernel is Linux).
    pub fn cmdline_items(&self, is_linux: bool) -> Option<&'static str> {
        (self.adapting() && is_linux).then_some(EMULATED_HOST_CMDLINE)
    }

    /// CPUID adjustments for every vCPU.
    pub fn cpuid_options(&self) -> CpuidOptions {
        CpuidOptions {
            hide_kvm_features: if self.adapting() {
                KVM_PV_FEATURES_TO_HIDE
            } else {
                0
            },
        }
    }

    /// A hint appended to emulation-failure reports.
    pub fn emulation_hint(&self) -> &'static str {
        if self.emulating {
            " (this host's KVM is kvm_pvm, which cannot emulate some instructions in guest \
             kernel mode; see docs/ARCHITECTURE.md)"
        } else {
            ""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: Host = Host {
        emulating: false,
        adapt: true,
    };
    const PVM: Host = Host {
        emulating: true,
        adapt: true,
    };
    const PVM_NO_ADAPT: Host = Host {
        emulating: true,
        adapt: false,
    };

    #[test]
    fn real_hosts_change_nothing() {
        assert_eq!(REAL.notice(), None);
        assert_eq!(REAL.cmdline_items(true), None);
        assert_eq!(REAL.cpuid_options().hide_kvm_features, 0);
        assert_eq!(REAL.emulation_hint(), "");
    }

    #[test]
    fn emulating_hosts_adapt_linux_only() {
        assert!(PVM.notice().is_some());
        assert_eq!(PVM.cmdline_items(true), Some(EMULATED_HOST_CMDLINE));
        assert_eq!(PVM.cmdline_items(false), None);
        assert_eq!(
            PVM.cpuid_options().hide_kvm_features,
            KVM_PV_FEATURES_TO_HIDE
        );
    }

    #[test]
    fn adaptation_can_be_turned_off() {
        assert!(PVM_NO_ADAPT.notice().unwrap().contains("not adapting"));
        assert_eq!(PVM_NO_ADAPT.cmdline_items(true), None);
        assert_eq!(PVM_NO_ADAPT.cpuid_options().hide_kvm_features, 0);
        assert!(!PVM_NO_ADAPT.emulation_hint().is_empty());
    }

    #[test]
    fn clearcpuid_list_fits_the_kernel_buffer() {
        let list = EMULATED_HOST_CMDLINE
            .split_whitespace()
            .find_map(|item| item.strip_prefix("clearcpuid="))
            .unwrap();
        assert!(list.len() < 127);
    }
}

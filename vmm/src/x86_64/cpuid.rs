//! CPUID for each vCPU: what KVM supports on this host, with the topology filled in.
//!
//! We start from `KVM_GET_SUPPORTED_CPUID`, which is right on real hardware, and patch
//! the per-vCPU fields: the APIC IDs (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX), the
//! logical processor count, and the "running on a hypervisor" bit. On an emulating
//! host (kvm_pvm) the host layer may also hide paravirt features in leaf 0x4000_0001.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// Leaf 1: family/model, feature flags, APIC ID.
const LEAF_FEATURES: u32 = 1;
/// Leaves 0xB and 0x1F: extended topology, EDX holds the x2APIC ID.
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
/// KVM's paravirt feature leaf (Documentation/virt/kvm/x86/cpuid.rst).
pub const LEAF_KVM_FEATURES: u32 = 0x4000_0001;

const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF1_EDX_HTT: u32 = 1 << 28;

/// Paravirt features that make a 2-vCPU Linux guest hang on kvm_pvm: the guest issues a
/// VMCALL (e.g. hypercall 10, PV send-IPI) that the emulating host never completes.
/// Bits from Documentation/virt/kvm/x86/cpuid.rst.
pub const KVM_PV_FEATURES_TO_HIDE: u32 = (1 << 4) // ASYNC_PF
    | (1 << 7)  // PV_UNHALT
    | (1 << 9)  // PV_TLB_FLUSH
    | (1 << 11) // PV_SEND_IPI
    | (1 << 13) // PV_SCHED_YIELD
    | (1 << 14); // ASYNC_PF_INT

/// Per-VM choices applied to every vCPU's CPUID.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuidOptions {
    /// Feature bits to clear in leaf 0x4000_0001 EAX.
    pub hide_kvm_features: u32,
}

/// Adjusts a copy of the supported CPUID for vCPU `index` of `count`.
pub fn vcpu_cpuid(supported: &CpuId, index: u8, count: u8, options: CpuidOptions) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        patch_entry(entry, index, count, options);
    }
    cpuid
}

fn patch_entry(entry: &mut kvm_cpuid_entry2, index: u8, count: u8, options: CpuidOptions) {
    match entry.function {
        LEAF_FEATURES => {
            // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
            entry.ebx =
                (entry.ebx & 0x0000_ffff) | (u32::from(index) << 24) | (u32::from(count) << 16);
            entry.ecx |= LEAF1_ECX_HYPERVISOR;
            if count > 1 {
                entry.edx |= LEAF1_EDX_HTT;
            } else {
                entry.edx &= !LEAF1_EDX_HTT;
            }
        }
        LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => entry.edx = u32::from(index),
        LEAF_KVM_FEATURES => entry.eax &= !options.hide_kvm_features,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xffff_ffff,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0xffff_ffff,
            ..Default::default()
        }
    }

    fn supported() -> CpuId {
        CpuId::from_entries(&[
            entry(0, 0),
            entry(LEAF_FEATURES, 0),
            entry(LEAF_TOPOLOGY, 0),
            entry(LEAF_TOPOLOGY, 1),
            entry(LEAF_KVM_FEATURES, 0),
        ])
        .unwrap()
    }

    fn find(cpuid: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
        *cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap()
    }

    #[test]
    fn apic_ids_and_count() {
        let c = vcpu_cpuid(&supported(), 1, 2, CpuidOptions::default());
        let leaf1 = find(&c, LEAF_FEATURES, 0);
        assert_eq!(leaf1.ebx >> 24, 1);
        assert_eq!((leaf1.ebx >> 16) & 0xff, 2);
        assert_eq!(
            leaf1.ebx & 0xffff,
            0xffff,
            "brand index and CLFLUSH size are kept"
        );
        assert_ne!(leaf1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(leaf1.edx & LEAF1_EDX_HTT, 0);
        assert_eq!(find(&c, LEAF_TOPOLOGY, 0).edx, 1);
        assert_eq!(find(&c, LEAF_TOPOLOGY, 1).edx, 1);
    }

    #[test]
    fn one_vcpu_has_no_htt() {
        let c = vcpu_cpuid(&supported(), 0, 1, CpuidOptions::default());
        assert_eq!(find(&c, LEAF_FEATURES, 0).edx & LEAF1_EDX_HTT, 0);
    }

    #[test]
    fn paravirt_features_are_hidden_only_when_asked() {
        let kept = vcpu_cpuid(&supported(), 0, 1, CpuidOptions::default());
        assert_eq!(find(&kept, LEAF_KVM_FEATURES, 0).eax, 0xffff_ffff);
        let hidden = vcpu_cpuid(
            &supported(),
            0,
            1,
            CpuidOptions {
                hide_kvm_features: KVM_PV_FEATURES_TO_HIDE,
            },
        );
        let eax = find(&hidden, LEAF_KVM_FEATURES, 0).eax;
        assert_eq!(eax & KVM_PV_FEATURES_TO_HIDE, 0);
        assert_eq!(eax | KVM_PV_FEATURES_TO_HIDE, 0xffff_ffff);
    }
}

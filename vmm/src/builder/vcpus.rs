//! Creating the vCPUs: each gets its CPUID (computed, or a snapshot's), and, when the
//! guest boots, its entry state; a restored vCPU's state is written later, once guest
//! memory is registered ([`crate::snapshot::setup::apply_kvm_state`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use devices::bus::Bus;
use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VmFd};
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::BuildError;
use crate::boot::BootInfo;
use crate::config::VmConfig;
use crate::host::Host;
use crate::snapshot::format::Snapshot;
use crate::snapshot::setup::Prepared;
use crate::snapshot::SnapshotError;
use crate::vcpu::{Vcpu, VcpuReport};
use crate::x86_64::{cpuid, regs};

/// What every vCPU thread shares with the others.
pub(super) struct Shared {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub mem: GuestMemoryMmap,
    pub stop: Arc<AtomicBool>,
    pub reports: Sender<VcpuReport>,
    pub wake: Arc<EventFd>,
    pub emulation_hint: &'static str,
    pub trace_boot: bool,
}

/// Where the vCPUs start from: a booted kernel or a snapshot; and, in a run that can
/// take snapshots, how they save themselves.
pub(super) struct Start<'a> {
    pub boot: Option<&'a BootInfo>,
    pub snapshot: Option<&'a Snapshot>,
    pub prepared: Option<&'a Prepared>,
}

/// The vCPUs, and the CPUID entries set on each (a snapshot records them).
pub(super) struct Created {
    pub vcpus: Vec<Vcpu>,
    pub cpuids: Vec<Vec<kvm_cpuid_entry2>>,
}

/// Creates `config.vcpus` vCPUs.
pub(super) fn create(
    kvm: &Kvm,
    vm: &VmFd,
    config: &VmConfig,
    host: &Host,
    start: Start<'_>,
    shared: Shared,
    facts: &mut RuntimeFacts,
) -> Result<Created, BuildError> {
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| BuildError::Kvm("report supported CPUID", e))?;
    let mut vcpus = Vec::with_capacity(config.vcpus.into());
    let mut cpuids = Vec::with_capacity(config.vcpus.into());
    for index in 0..config.vcpus {
        let fd = vm
            .create_vcpu(index.into())
            .map_err(|e| BuildError::Kvm("create a vCPU", e))?;
        facts
            .add(FdRole::Kvm, fd.as_raw_fd())
            .add(FdRole::Vcpus, fd.as_raw_fd());
        // A restored vCPU gets the CPUID it had, whatever this host would offer.
        let cpuid = match start.snapshot {
            Some(snapshot) => {
                let entries: Vec<_> = snapshot.vcpus[usize::from(index)]
                    .cpuid
                    .iter()
                    .map(|e| e.0)
                    .collect();
                CpuId::from_entries(&entries)
                    .map_err(|_| SnapshotError::Corrupt("too many CPUID entries".into()))?
            }
            None => cpuid::vcpu_cpuid(&supported, index, config.vcpus, host.cpuid_options()),
        };
        fd.set_cpuid2(&cpuid)
            .map_err(|e| BuildError::Vcpu(index, regs::RegsError::Kvm("CPUID", e)))?;
        if let Some(boot) = start.boot {
            regs::setup_common(&fd).map_err(|e| BuildError::Vcpu(index, e))?;
            regs::setup_lapic(&fd).map_err(|e| BuildError::Vcpu(index, e))?;
            // Only the boot vCPU gets an entry state: with the in-kernel LAPIC the
            // others wait for INIT/SIPI from the guest, which resets them to real mode.
            if index == 0 {
                regs::setup_boot_vcpu(&fd, boot.kernel.entry)
                    .map_err(|e| BuildError::Vcpu(index, e))?;
            }
        }
        cpuids.push(cpuid.as_slice().to_vec());
        vcpus.push(Vcpu {
            index,
            fd,
            pio: shared.pio.clone(),
            mmio: shared.mmio.clone(),
            mem: shared.mem.clone(),
            stop: shared.stop.clone(),
            reports: shared.reports.clone(),
            wake: shared.wake.clone(),
            emulation_hint: shared.emulation_hint,
            trace_boot: shared.trace_boot,
            pause: start.prepared.map(|p| p.pause.clone()),
        });
    }
    Ok(Created { vcpus, cpuids })
}

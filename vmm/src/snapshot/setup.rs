//! The snapshot's part of building a VM: for `--snapshot-to`, the files, the pause
//! control and the serial trigger, made before the jail; for `--restore`, the checks of
//! the command line's devices against the snapshot's, and the device state put back.
//! The KVM state of a restore is written later, by [`apply_kvm_state`], once guest
//! memory is registered.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use devices::serial::SerialDevice;
use devices::EventFdTrigger;
use kvm_bindings::kvm_cpuid_entry2;
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use sandbox::{FdRole, RuntimeFacts};

use super::format::{Machine, Snapshot, VcpuState, VmState};
use super::pause::Pause;
use super::take::{DiskTransport, NetTransport, Snapshotter};
use super::{kvm_state, load, SnapshotConfig, SnapshotError, SnapshotFiles};
use crate::config::VmConfig;

/// The KVM capabilities behind the state a snapshot reads and writes.
const SNAPSHOT_CAPS: [(Cap, &str); 6] = [
    (Cap::MpState, "MP_STATE"),
    (Cap::VcpuEvents, "VCPU_EVENTS"),
    (Cap::Debugregs, "DEBUGREGS"),
    (Cap::Xsave, "XSAVE"),
    (Cap::Xcrs, "XCRS"),
    (Cap::AdjustClock, "ADJUST_CLOCK"),
];

/// Checks that this host's KVM can save and restore every part of a snapshot.
pub fn check_caps(kvm: &Kvm) -> Result<(), SnapshotError> {
    match SNAPSHOT_CAPS
        .iter()
        .find(|(cap, _)| !kvm.check_extension(*cap))
    {
        Some((_, name)) => Err(SnapshotError::KvmCap(name)),
        None => Ok(()),
    }
}

/// What a run with `--snapshot-to` makes before its vCPUs.
pub struct Prepared {
    pub files: SnapshotFiles,
    pub pause: Arc<Pause>,
    pub parked: Receiver<u8>,
    pub msr_index: Vec<u32>,
    /// Written when the guest prints `--snapshot-on-serial`'s text.
    pub serial_trigger: Option<EventFdTrigger>,
}

/// Opens the snapshot files and arms the serial trigger; records their fds and the
/// VM fd (`$snapvm`) for the filters.
pub fn prepare(
    config: &SnapshotConfig,
    memory_bytes: u64,
    kvm: &Kvm,
    vm: &VmFd,
    serial: &Mutex<SerialDevice>,
    facts: &mut RuntimeFacts,
) -> Result<Prepared, SnapshotError> {
    let files = SnapshotFiles::create(&config.dir, memory_bytes).map_err(|source| {
        SnapshotError::Create {
            path: config.dir.display().to_string(),
            source,
        }
    })?;
    for fd in files.fds() {
        facts.add(FdRole::Snapshot, fd);
    }
    facts.add(FdRole::SnapshotVm, vm.as_raw_fd());
    let msr_index = kvm
        .get_msr_index_list()
        .map_err(|e| SnapshotError::Vm(super::KvmStateError::Kvm("list the MSRs", e)))?
        .as_slice()
        .to_vec();
    let serial_trigger = match &config.on_serial {
        None => None,
        Some(text) => {
            let trigger = EventFdTrigger::new().map_err(|source| SnapshotError::Create {
                path: config.dir.display().to_string(),
                source,
            })?;
            facts.add(FdRole::Event, trigger.as_raw_fd());
            serial
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .watch_output(text.as_bytes().to_vec(), trigger.clone())
                .map_err(SnapshotError::Watch)?;
            Some(trigger)
        }
    };
    let (pause, parked) = Pause::new();
    Ok(Prepared {
        files,
        pause,
        parked,
        msr_index,
        serial_trigger,
    })
}

/// What a snapshot reads besides the VM: the devices' transports and each vCPU's fd
/// with the CPUID set on it.
pub struct Parts {
    pub nets: Vec<NetTransport>,
    pub disks: Vec<DiskTransport>,
    pub vcpus: Vec<(RawFd, Vec<kvm_cpuid_entry2>)>,
}

impl Prepared {
    /// The VMM thread's side, once the devices and vCPUs exist; the vCPU fds become
    /// `$snapvcpu`, which only the VMM thread's snapshot rule names.
    pub fn snapshotter(
        self,
        config: &SnapshotConfig,
        vm: &VmConfig,
        parts: Parts,
        trace: bool,
        facts: &mut RuntimeFacts,
    ) -> Snapshotter {
        for (fd, _) in &parts.vcpus {
            facts.add(FdRole::SnapshotVcpu, *fd);
        }
        Snapshotter {
            files: self.files,
            pause: self.pause,
            parked: self.parked,
            vcpus: parts.vcpus,
            msr_index: self.msr_index,
            machine: Machine {
                memory_bytes: vm.memory_bytes,
                vcpus: vm.vcpus,
                cpu_vendor: load::host_cpu_vendor(),
                written_by: concat!("sandvmm ", env!("CARGO_PKG_VERSION")).into(),
            },
            continue_after: config.continue_after,
            nets: parts.nets,
            disks: parts.disks,
            trace,
        }
    }
}

/// Checks that the command line gives as many nets and disks as the snapshot has.
pub fn check_devices(snapshot: &Snapshot, config: &VmConfig) -> Result<(), SnapshotError> {
    let counts = [
        (
            "net devices",
            "net",
            snapshot.devices.nets.len(),
            config.nets.len(),
        ),
        (
            "disks",
            "disk",
            snapshot.devices.disks.len(),
            config.disks.len(),
        ),
    ];
    for (what, flag, snapshot, given) in counts {
        if snapshot != given {
            return Err(SnapshotError::DeviceCount {
                what,
                flag,
                snapshot,
                given,
            });
        }
    }
    Ok(())
}

/// Puts the snapshot's device state back: COM1 and every virtio transport (which
/// re-activates the devices the driver had started).
pub fn restore_devices(
    snapshot: &Snapshot,
    config: &VmConfig,
    serial: &Mutex<SerialDevice>,
    nets: &[NetTransport],
    disks: &[DiskTransport],
) -> Result<(), SnapshotError> {
    serial
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .restore(&snapshot.devices.serial)
        .map_err(SnapshotError::Serial)?;
    let mismatch = |flag, spec: &str, name: String, error: devices::virtio::StateError| {
        SnapshotError::DeviceMismatch {
            flag,
            spec: spec.to_string(),
            name,
            why: error.to_string(),
        }
    };
    for (index, (transport, state)) in nets.iter().zip(&snapshot.devices.nets).enumerate() {
        let mut transport = transport.lock().unwrap_or_else(|p| p.into_inner());
        transport
            .restore(state)
            .map_err(|e| mismatch("net", &config.nets[index].spec, format!("net{index}"), e))?;
    }
    for (index, (transport, state)) in disks.iter().zip(&snapshot.devices.disks).enumerate() {
        let mut transport = transport.lock().unwrap_or_else(|p| p.into_inner());
        transport
            .restore(state)
            .map_err(|e| mismatch("disk", &config.disks[index].spec, format!("disk{index}"), e))?;
    }
    Ok(())
}

/// The KVM state of a restore, written once guest memory is registered.
pub struct KvmRestore {
    pub vm: VmState,
    pub vcpus: Vec<VcpuState>,
}

/// Writes the VM's, then each vCPU's, state.
pub fn apply_kvm_state<'a>(
    state: &KvmRestore,
    vm: &VmFd,
    vcpus: impl Iterator<Item = &'a VcpuFd>,
) -> Result<(), SnapshotError> {
    kvm_state::restore_vm(vm, &state.vm).map_err(SnapshotError::RestoreVm)?;
    for (index, (fd, vcpu)) in vcpus.zip(&state.vcpus).enumerate() {
        kvm_state::restore_vcpu(fd, vcpu).map_err(|error| SnapshotError::RestoreVcpu {
            index: index as u8,
            error,
        })?;
    }
    Ok(())
}

//! Taking a snapshot, on the VMM thread, between two events of its loop.
//!
//! In order: every vCPU parks (pause.rs) and its state is read; COM1's buffered output is
//! written out, so that everything the guest printed before the snapshot is on the
//! host; the devices and the VM's interrupt controllers, PIT and clock are read; guest
//! memory is written, then the state file. The VMM thread serves no device meanwhile
//! and the vCPUs are parked, so the state is one consistent instant.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use devices::serial::SerialDevice;
use devices::virtio::block::Block;
use devices::virtio::mmio::MmioTransport;
use devices::virtio::net::Net;
use kvm_bindings::kvm_cpuid_entry2;
use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;

use super::format::{DeviceStates, Machine, Snapshot};
use super::pause::Pause;
use super::{kvm_state, SnapshotError, SnapshotFiles};
use crate::vcpu::{monotonic_ns, Vcpu};

/// A virtio-net device's transport, as the snapshot reads it.
pub type NetTransport = Arc<Mutex<MmioTransport<Net>>>;
/// A virtio-blk device's transport, as the snapshot reads it.
pub type DiskTransport = Arc<Mutex<MmioTransport<Block>>>;

/// What happens after a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The vCPUs run on (`--snapshot-continue`).
    Continue,
    /// The run ends; the vCPUs were told to stop.
    Exit,
}

/// Everything the VMM thread needs to take a snapshot.
pub struct Snapshotter {
    pub files: SnapshotFiles,
    pub pause: Arc<Pause>,
    /// Where the parked vCPUs say so.
    pub parked: Receiver<u8>,
    /// Each vCPU's fd (owned by its thread, which is parked while the fd is used here)
    /// and the CPUID the VMM set on it.
    pub vcpus: Vec<(RawFd, Vec<kvm_cpuid_entry2>)>,
    /// KVM's list of MSRs to save.
    pub msr_index: Vec<u32>,
    pub machine: Machine,
    pub continue_after: bool,
    pub nets: Vec<NetTransport>,
    pub disks: Vec<DiskTransport>,
    /// Prints the pause and write times (`SANDVMM_TRACE_BOOT=1`).
    pub trace: bool,
}

/// The parts of the running VM a snapshot reads.
pub struct Running<'a> {
    pub vm: &'a VmFd,
    pub mem: &'a GuestMemoryMmap,
    pub serial: &'a Mutex<SerialDevice>,
    pub handles: &'a [JoinHandle<Vcpu>],
    pub stop: &'a AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Snapshotter {
    /// Takes a snapshot. The vCPUs are released afterwards, to run on or, when the run
    /// ends here (no `--snapshot-continue`, or an error), with the stop flag set.
    pub fn take(&mut self, vm: Running<'_>) -> Result<After, SnapshotError> {
        let start = monotonic_ns();
        let result = self.pause_and_write(&vm);
        let after = match (&result, self.continue_after) {
            (Ok(_), true) => After::Continue,
            _ => {
                vm.stop.store(true, Ordering::Release);
                After::Exit
            }
        };
        self.pause.release();
        let written = result?;
        eprintln!(
            "sandvmm: snapshot written to {} ({} MiB of memory, in {} ms)",
            self.files.dir().display(),
            written >> 20,
            (monotonic_ns() - start) / 1_000_000
        );
        Ok(after)
    }

    /// Parks the vCPUs and writes both files; returns the memory bytes written.
    fn pause_and_write(&mut self, vm: &Running<'_>) -> Result<u64, SnapshotError> {
        let start = monotonic_ns();
        self.pause.request(&self.parked, vm.handles)?;
        let paused = monotonic_ns();
        let mut vcpus = Vec::with_capacity(self.vcpus.len());
        for (index, (fd, cpuid)) in self.vcpus.iter().enumerate() {
            // SAFETY: the fd belongs to the vCPU's `VcpuFd`, which lives until its thread
            // is joined, after every snapshot; the thread is parked and makes no call on
            // it until `Pause::release`.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
            let state = kvm_state::save_vcpu(fd, cpuid, &self.msr_index).map_err(|error| {
                SnapshotError::SaveVcpu {
                    index: index as u8,
                    error,
                }
            })?;
            vcpus.push(state);
        }
        let serial = {
            let mut serial = lock(vm.serial);
            serial.flush_output();
            serial.snapshot()
        };
        let devices = DeviceStates {
            serial,
            nets: self.nets.iter().map(|t| lock(t).snapshot()).collect(),
            disks: self.disks.iter().map(|t| lock(t).snapshot()).collect(),
        };
        let snapshot = Snapshot {
            machine: self.machine.clone(),
            vm: kvm_state::save_vm(vm.vm).map_err(SnapshotError::Vm)?,
            vcpus,
            devices,
        };
        let dir = self.files.dir().display().to_string();
        let failed = |source| SnapshotError::Write {
            path: dir.clone(),
            source,
        };
        let written = self.files.write_memory(vm.mem).map_err(failed)?;
        self.files.write_state(&snapshot.encode()).map_err(failed)?;
        if self.trace {
            eprintln!(
                "sandvmm: trace: snapshot: vCPUs paused in {} us, state and memory written in {} us",
                (paused - start) / 1000,
                (monotonic_ns() - paused) / 1000
            );
        }
        Ok(written)
    }
}

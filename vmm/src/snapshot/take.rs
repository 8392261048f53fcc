//! Taking a snapshot, on the VMM thread, between two events of its loop.
//!
//! In order: every vCPU parks and saves itself (pause.rs); COM1's buffered output is
//! written out, so that everything the guest printed before the snapshot is on the
//! host; the devices and the VM's interrupt controllers, PIT and clock are read; guest
//! memory is written, then the state file. The VMM thread serves no device meanwhile
//! and the vCPUs are parked, so the state is one consistent instant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use devices::serial::SerialDevice;
use devices::virtio::block::Block;
use devices::virtio::mmio::MmioTransport;
use devices::virtio::net::Net;
use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;

use super::format::{DeviceStates, Machine, Snapshot};
use super::pause::{Pause, Saved};
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
    pub saved: Receiver<Saved>,
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
        let vcpus = self.pause.request(&self.saved, vm.handles)?;
        let paused = monotonic_ns();
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

//! Building the virtio-blk devices from `--disk`: each takes the virtio-mmio slot after
//! the net devices', opens or adopts its image (locked with flock, before any filter
//! or jail), and gets an irqfd and the ioeventfd of its one request queue. Requests
//! are served synchronously on the VMM thread's event loop (docs/ARCHITECTURE.md).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::bus::Bus;
use devices::virtio::block::{Block, BlockEventHandler, DiskError, DiskFile};
use kvm_ioctls::VmFd;
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::GuestMemoryMmap;

use crate::config::{DiskBackend, DiskConfig};
use crate::virtio_slot::{self, MmioSlot, SlotError};

/// Errors from setting up one disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskSetupError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("cannot create an event fd")]
    EventFd(#[source] std::io::Error),
    #[error(transparent)]
    Slot(#[from] SlotError),
}

/// The device's handle for the event loop.
pub type DiskHandler = Arc<Mutex<BlockEventHandler<DiskFile>>>;

/// A built disk: its event handler, and its transport for snapshots.
pub struct BuiltDisk {
    pub handler: DiskHandler,
    pub transport: crate::snapshot::take::DiskTransport,
}

/// Builds disk `index` (named `diskN`) from `config` in `slot`, places it on `mmio` and
/// wires its interrupt and queue notification into `vm`.
pub fn build_disk(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    mmio: &mut Bus,
    index: usize,
    slot: MmioSlot,
    config: &DiskConfig,
    facts: &mut RuntimeFacts,
) -> Result<BuiltDisk, DiskSetupError> {
    let name = format!("disk{index}");
    let file = match &config.backend {
        DiskBackend::Path(path) => DiskFile::open(path, config.read_only)?,
        DiskBackend::Fd(fd) => DiskFile::from_fd(*fd, config.read_only)?,
    };
    let id = config.id.clone().unwrap_or_else(|| name.clone());
    let block =
        Block::new(&name, file, config.read_only, Some(id)).map_err(DiskSetupError::EventFd)?;
    facts
        .add(FdRole::Disk, block.backend_fd())
        .add(FdRole::Event, block.activate_evt().as_raw_fd());
    // One request queue: the driver writes 0 to QueueNotify.
    let interrupt = virtio_slot::wire(vm, slot, &[block.queue_evt()], facts)?;
    let transport = virtio_slot::place(mmio, mem, slot, &name, block, interrupt)?;
    Ok(BuiltDisk {
        handler: Arc::new(Mutex::new(BlockEventHandler::new(transport.clone()))),
        transport,
    })
}

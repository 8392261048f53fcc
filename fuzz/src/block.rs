//! A virtio-blk device over the in-memory disk of `devices`' `test-utils` feature,
//! behind its MMIO transport, with what the VMM would hold on to: the IRQ eventfd and
//! the disk's script. Wired the way `NetRig` wires virtio-net.
//!
//! The in-memory disk panics on any transfer the device should have refused (past the
//! end of the disk, longer than the request cap, a write to a read-only disk), so the
//! fuzzer checks those too.

use std::sync::Arc;

use devices::bus::BusDevice;
use devices::virtio::block::test_utils::MemDisk;
use devices::virtio::block::Block;
use devices::virtio::mmio::{MmioTransport, QUEUE_NOTIFY_OFFSET};
use devices::virtio::Interrupt;
use devices::EventFdTrigger;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::guest_memory;

/// A block device, its disk and the guest's memory.
pub struct BlockRig {
    pub transport: MmioTransport<Block<MemDisk>>,
    pub disk: MemDisk,
    pub mem: GuestMemoryMmap,
    pub irq: EventFdTrigger,
}

impl BlockRig {
    /// A device over a zeroed disk of `sectors` sectors, read-only or not.
    pub fn new(sectors: u64, read_only: bool) -> BlockRig {
        let mem = guest_memory();
        let disk = MemDisk::new(sectors);
        disk.state().read_only = read_only;
        let block = Block::new("blk0", disk.clone(), read_only, None).expect("eventfds");
        let irq = EventFdTrigger::new().expect("eventfd");
        let interrupt = Arc::new(Interrupt::new(irq.try_clone().expect("eventfd")));
        let transport = MmioTransport::new(block, "blk0", mem.clone(), interrupt);
        BlockRig {
            transport,
            disk,
            mem,
            irq,
        }
    }

    /// A DMA-like write of up to 4 KiB of fuzzer bytes into guest memory; partly
    /// outside RAM is fine: the write stops there.
    pub fn poke(&self, addr: u32, bytes: &[u8]) {
        let _ = self.mem.write_slice(
            &bytes[..bytes.len().min(4096)],
            GuestAddress(u64::from(addr)),
        );
    }

    /// What the VMM thread's event loop does when the device's activation event fires
    /// (`BlockEventHandler::process`): only after the transport really activated it.
    pub fn run_activation_event(&mut self) {
        let block = self.transport.device_mut();
        if block.activate_evt().read().is_ok() {
            block.on_activated();
        }
    }

    /// A guest write to QueueNotify with queue index `queue`: KVM's ioeventfd (with
    /// datamatch 0) takes it and the event loop runs the queue; any other value
    /// reaches the transport as an ordinary register write.
    pub fn notify(&mut self, queue: u32) {
        if queue == 0 {
            let block = self.transport.device_mut();
            let _ = block.queue_evt().write(1);
            let _ = block.queue_evt().read();
            block.on_queue_notify();
        } else {
            self.transport
                .write(0xd000_0000, QUEUE_NOTIFY_OFFSET, &queue.to_le_bytes());
        }
    }

    /// The interrupt line, drained so the eventfd counter cannot saturate.
    pub fn drain_irq(&self) {
        let _ = self.irq.read();
    }
}

//! The block device's part of the VMM thread's event loop.
//!
//! Two sources: the request queue's ioeventfd (the driver queued requests) and the
//! activation event (requests may have been queued, and their notification consumed,
//! before the device was ready). Requests complete synchronously inside `process`;
//! nothing here polls or spins.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

use super::device::Block;
use super::disk::BlockBackend;
use crate::virtio::mmio::MmioTransport;

/// Subscriber driving one block device.
pub struct BlockEventHandler<B: BlockBackend> {
    transport: Arc<Mutex<MmioTransport<Block<B>>>>,
    queue: RawFd,
    activate: RawFd,
}

impl<B: BlockBackend> BlockEventHandler<B> {
    /// Watches the device behind `transport`.
    pub fn new(transport: Arc<Mutex<MmioTransport<Block<B>>>>) -> Self {
        let (queue, activate) = {
            let t = transport.lock().unwrap_or_else(|p| p.into_inner());
            let block = t.device();
            (
                block.queue_evt().as_raw_fd(),
                block.activate_evt().as_raw_fd(),
            )
        };
        Self {
            transport,
            queue,
            activate,
        }
    }
}

impl<B: BlockBackend> MutEventSubscriber for BlockEventHandler<B> {
    fn init(&mut self, ops: &mut EventOps) {
        for fd in [self.queue, self.activate] {
            if let Err(err) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                log::error!("cannot watch a block device event: {err:?}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let mut transport = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        let block = transport.device_mut();
        let fd = events.fd();
        if fd == self.queue {
            let _ = block.queue_evt().read();
            block.on_queue_notify();
        } else if fd == self.activate {
            let _ = block.activate_evt().read();
            block.on_activated();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::block::test_utils::MemDisk;
    use crate::virtio::Interrupt;
    use crate::EventFdTrigger;
    use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    #[test]
    fn an_inactive_device_drains_its_queue_event() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let block = Block::new("blk0", MemDisk::new(8), false, None).unwrap();
        let interrupt = Arc::new(Interrupt::new(EventFdTrigger::new().unwrap()));
        let transport = Arc::new(Mutex::new(MmioTransport::new(
            block, "blk0", mem, interrupt,
        )));
        let handler = Arc::new(Mutex::new(BlockEventHandler::new(transport.clone())));
        let mut manager = EventManager::<Arc<Mutex<dyn MutEventSubscriber + Send>>>::new().unwrap();
        manager.add_subscriber(handler);
        transport
            .lock()
            .unwrap()
            .device()
            .queue_evt()
            .write(1)
            .unwrap();
        assert_eq!(manager.run_with_timeout(100).unwrap(), 1);
        let t = transport.lock().unwrap();
        assert!(
            t.device().queue_evt().read().is_err(),
            "the event was consumed"
        );
        assert!(!t.device().is_active());
    }
}

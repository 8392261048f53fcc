//! Placing a virtio device in the MMIO gap, the part net.rs and disk.rs share: its slot
//! (a 4 KiB register window and an IRQ), its interrupt (an irqfd) and its queue
//! notifications (ioeventfds, so a guest kick never leaves the kernel until the VMM
//! thread's event loop picks it up), each fd recorded in the sandbox's run-time facts.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::bus::{Bus, BusError};
use devices::virtio::mmio::{MmioTransport, MMIO_WINDOW, QUEUE_NOTIFY_OFFSET};
use devices::virtio::{Interrupt, VirtioDevice};
use devices::EventFdTrigger;
use kvm_ioctls::{IoEventAddress, VmFd};
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::memory::MMIO_GAP_START;

/// IRQ of the first virtio-mmio device; the serial port has 4.
pub const VIRTIO_IRQ_BASE: u32 = 5;

/// A virtio-mmio slot: register window address and IRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioSlot {
    pub addr: u64,
    pub irq: u32,
}

/// The slot of the `index`-th virtio-mmio device: 4 KiB windows from the start of the
/// MMIO gap, IRQs from 5.
pub fn mmio_slot(index: usize) -> MmioSlot {
    MmioSlot {
        addr: MMIO_GAP_START + index as u64 * MMIO_WINDOW,
        irq: VIRTIO_IRQ_BASE + index as u32,
    }
}

/// Errors from wiring a device into KVM and the bus.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("cannot create an event fd")]
    EventFd(#[source] std::io::Error),
    #[error("KVM refused to {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("cannot place the device on the MMIO bus")]
    Bus(#[from] BusError),
}

/// Registers the slot's irqfd and one ioeventfd per queue (`queues[i]` is signalled
/// when the driver writes `i` to QueueNotify, virtio 1.2 §4.2.2), records them in
/// `facts`, and returns the device's interrupt.
pub fn wire(
    vm: &VmFd,
    slot: MmioSlot,
    queues: &[&EventFd],
    facts: &mut RuntimeFacts,
) -> Result<Arc<Interrupt>, SlotError> {
    let irq = EventFdTrigger::new().map_err(SlotError::EventFd)?;
    vm.register_irqfd(&irq, slot.irq)
        .map_err(|e| SlotError::Kvm("register a virtio irqfd", e))?;
    facts.add(FdRole::Irq, irq.as_raw_fd());
    let notify = IoEventAddress::Mmio(slot.addr + QUEUE_NOTIFY_OFFSET);
    for (index, evt) in queues.iter().enumerate() {
        vm.register_ioevent(evt, &notify, index as u32)
            .map_err(|e| SlotError::Kvm("register a virtio ioeventfd", e))?;
        facts.add(FdRole::Kick, evt.as_raw_fd());
    }
    Ok(Arc::new(Interrupt::new(irq)))
}

/// Puts `device`, behind its virtio-mmio transport, in `slot` on `mmio`.
pub fn place<D: VirtioDevice + Send + 'static>(
    mmio: &mut Bus,
    mem: &GuestMemoryMmap,
    slot: MmioSlot,
    name: &str,
    device: D,
    interrupt: Arc<Interrupt>,
) -> Result<Arc<Mutex<MmioTransport<D>>>, SlotError> {
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        device,
        name,
        mem.clone(),
        interrupt,
    )));
    mmio.insert(transport.clone(), slot.addr, MMIO_WINDOW)?;
    Ok(transport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_VIRTIO_DEVICES;
    use crate::memory::{IOAPIC_START, MMIO_GAP_END};

    #[test]
    fn slots_fit_the_gap_and_the_ioapic() {
        let last = mmio_slot(MAX_VIRTIO_DEVICES - 1);
        assert!(last.addr + MMIO_WINDOW <= IOAPIC_START.min(MMIO_GAP_END));
        assert_eq!(
            mmio_slot(0),
            MmioSlot {
                addr: MMIO_GAP_START,
                irq: 5
            }
        );
        assert_eq!(last.irq, 23, "the IOAPIC has 24 pins");
    }
}

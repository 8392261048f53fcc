//! Building the virtio-net devices from `--net`: where each sits in the MMIO gap, its
//! tap, its interrupt (an irqfd) and its queue notifications (ioeventfds, so a guest
//! kick never leaves the kernel until the VMM thread's event loop picks it up).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::bus::{Bus, BusError};
use devices::virtio::mmio::{MmioTransport, MMIO_WINDOW, QUEUE_NOTIFY_OFFSET};
use devices::virtio::net::{Net, NetEventHandler, Tap, TapError, RX_QUEUE, TX_QUEUE};
use devices::virtio::Interrupt;
use devices::EventFdTrigger;
use kvm_ioctls::{IoEventAddress, VmFd};
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::GuestMemoryMmap;

use crate::config::{NetBackend, NetConfig};
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

/// Errors from setting up one net device.
#[derive(Debug, thiserror::Error)]
pub enum NetSetupError {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("cannot create an event fd")]
    EventFd(#[source] std::io::Error),
    #[error("KVM refused to {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("cannot place the device on the MMIO bus")]
    Bus(#[from] BusError),
}

/// The device's handle for the event loop.
pub type NetHandler = Arc<Mutex<NetEventHandler<Tap>>>;

/// Builds device `index` from `config`, places it on `mmio` and wires its interrupt and
/// notifications into `vm`.
pub fn build_net(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    mmio: &mut Bus,
    index: usize,
    config: &NetConfig,
    facts: &mut RuntimeFacts,
) -> Result<NetHandler, NetSetupError> {
    let name = format!("net{index}");
    let slot = mmio_slot(index);
    let tap = match &config.backend {
        NetBackend::Tap(ifname) => Tap::open(ifname)?,
        NetBackend::Fd(fd) => Tap::from_fd(*fd)?,
    };
    let net = Net::new(&name, tap, config.mac).map_err(NetSetupError::EventFd)?;
    facts
        .add(FdRole::Tap, net.backend_fd())
        .add(FdRole::Kick, net.queue_evt(RX_QUEUE).as_raw_fd())
        .add(FdRole::Kick, net.queue_evt(TX_QUEUE).as_raw_fd())
        .add(FdRole::Event, net.activate_evt().as_raw_fd());

    let irq = EventFdTrigger::new().map_err(NetSetupError::EventFd)?;
    vm.register_irqfd(&irq, slot.irq)
        .map_err(|e| NetSetupError::Kvm("register a virtio irqfd", e))?;
    facts.add(FdRole::Irq, irq.as_raw_fd());
    let notify = IoEventAddress::Mmio(slot.addr + QUEUE_NOTIFY_OFFSET);
    for queue in [RX_QUEUE, TX_QUEUE] {
        // The driver writes the queue index to QueueNotify; KVM matches it and signals
        // that queue's eventfd without an exit to sandvmm.
        vm.register_ioevent(net.queue_evt(queue), &notify, queue as u32)
            .map_err(|e| NetSetupError::Kvm("register a virtio ioeventfd", e))?;
    }

    let transport = MmioTransport::new(net, &name, mem.clone(), Arc::new(Interrupt::new(irq)));
    let transport = Arc::new(Mutex::new(transport));
    mmio.insert(transport.clone(), slot.addr, MMIO_WINDOW)?;
    Ok(Arc::new(Mutex::new(NetEventHandler::new(transport))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_NET_DEVICES;
    use crate::memory::{IOAPIC_START, MMIO_GAP_END};

    #[test]
    fn slots_fit_the_gap_and_the_ioapic() {
        let last = mmio_slot(MAX_NET_DEVICES - 1);
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

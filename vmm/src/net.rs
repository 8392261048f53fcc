//! Building the virtio-net devices from `--net`: each takes the `index`-th virtio-mmio
//! slot (virtio_slot.rs wires its interrupt and its two queues' notifications) and
//! opens or adopts its tap before any filter or jail.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::bus::Bus;
use devices::virtio::net::{Net, NetEventHandler, Tap, TapError, RX_QUEUE, TX_QUEUE};
use kvm_ioctls::VmFd;
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::GuestMemoryMmap;

use crate::config::{NetBackend, NetConfig};
use crate::virtio_slot::{self, mmio_slot, SlotError};

/// Errors from setting up one net device.
#[derive(Debug, thiserror::Error)]
pub enum NetSetupError {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("cannot create an event fd")]
    EventFd(#[source] std::io::Error),
    #[error(transparent)]
    Slot(#[from] SlotError),
}

/// The device's handle for the event loop.
pub type NetHandler = Arc<Mutex<NetEventHandler<Tap>>>;

/// A built net device: its event handler, and its transport for snapshots.
pub struct BuiltNet {
    pub handler: NetHandler,
    pub transport: crate::snapshot::take::NetTransport,
}

/// Builds device `index` from `config`, places it on `mmio` and wires its interrupt and
/// notifications into `vm`.
pub fn build_net(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    mmio: &mut Bus,
    index: usize,
    config: &NetConfig,
    facts: &mut RuntimeFacts,
) -> Result<BuiltNet, NetSetupError> {
    let name = format!("net{index}");
    let slot = mmio_slot(index);
    let tap = match &config.backend {
        NetBackend::Tap(ifname) => Tap::open(ifname)?,
        NetBackend::Fd(fd) => Tap::from_fd(*fd)?,
    };
    let net = Net::new(&name, tap, config.mac).map_err(NetSetupError::EventFd)?;
    facts
        .add(FdRole::Tap, net.backend_fd())
        .add(FdRole::Event, net.activate_evt().as_raw_fd());
    let queues = [net.queue_evt(RX_QUEUE), net.queue_evt(TX_QUEUE)];
    let interrupt = virtio_slot::wire(vm, slot, &queues, facts)?;
    let transport = virtio_slot::place(mmio, mem, slot, &name, net, interrupt)?;
    Ok(BuiltNet {
        handler: Arc::new(Mutex::new(NetEventHandler::new(transport.clone()))),
        transport,
    })
}

//! The net device's part of the VMM thread's event loop.
//!
//! Four sources: the tap (edge-triggered: RX runs until the tap says `WouldBlock`, and
//! the device remembers a frame it could not place), the RX and TX queue ioeventfds
//! (the driver added buffers / queued frames), and the activation event (frames may
//! have been waiting since before DRIVER_OK). Nothing here polls or spins.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

use super::device::Net;
use super::tap::NetBackend;
use super::{RX_QUEUE, TX_QUEUE};
use crate::virtio::mmio::MmioTransport;

/// Subscriber driving one net device.
pub struct NetEventHandler<B: NetBackend> {
    transport: Arc<Mutex<MmioTransport<Net<B>>>>,
    backend: RawFd,
    rx: RawFd,
    tx: RawFd,
    activate: RawFd,
}

impl<B: NetBackend> NetEventHandler<B> {
    /// Watches the device behind `transport`.
    pub fn new(transport: Arc<Mutex<MmioTransport<Net<B>>>>) -> Self {
        let (backend, rx, tx, activate) = {
            let t = transport.lock().unwrap_or_else(|p| p.into_inner());
            let net = t.device();
            (
                net.backend_fd(),
                net.queue_evt(RX_QUEUE).as_raw_fd(),
                net.queue_evt(TX_QUEUE).as_raw_fd(),
                net.activate_evt().as_raw_fd(),
            )
        };
        Self {
            transport,
            backend,
            rx,
            tx,
            activate,
        }
    }
}

impl<B: NetBackend> MutEventSubscriber for NetEventHandler<B> {
    fn init(&mut self, ops: &mut EventOps) {
        let events = [
            Events::new_raw(self.backend, EventSet::IN | EventSet::EDGE_TRIGGERED),
            Events::new_raw(self.rx, EventSet::IN),
            Events::new_raw(self.tx, EventSet::IN),
            Events::new_raw(self.activate, EventSet::IN),
        ];
        for e in events {
            if let Err(err) = ops.add(e) {
                log::error!("cannot watch a net device event: {err:?}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let mut transport = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        let net = transport.device_mut();
        let fd = events.fd();
        if fd == self.backend {
            net.on_backend_readable();
        } else if fd == self.rx {
            let _ = net.queue_evt(RX_QUEUE).read();
            net.on_rx_notify();
        } else if fd == self.tx {
            let _ = net.queue_evt(TX_QUEUE).read();
            net.on_tx_notify();
        } else if fd == self.activate {
            let _ = net.activate_evt().read();
            net.on_activated();
        }
    }
}

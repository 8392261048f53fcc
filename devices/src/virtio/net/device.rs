//! The virtio-net device model (virtio 1.2, 5.1): RX queue 0, TX queue 1, MAC in
//! config space, the 12-byte `virtio_net_hdr` passed through to a tap opened with
//! `IFF_VNET_HDR`, checksum and TSO offloads, and mergeable RX buffers.
//!
//! Hostile drivers: every descriptor is checked before use. A TX chain with a
//! write-only descriptor, an RX chain with a read-only one, a buffer outside guest
//! memory, or a length beyond the largest frame is dropped (returned to the driver
//! with length 0) and reported (rate-limited: `Warnings`); a looping chain ends after queue-size descriptors
//! (virtio-queue's iterator) and is dropped the same way.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_queue::{Queue, QueueOwnedT, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::chain::{gather, scatter, writable_buffers, RxChain};
use super::tap::{NetBackend, Tap, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
use super::{
    features, MacAddr, MAX_FRAME_LEN, QUEUE_SIZE, RX_QUEUE, TX_QUEUE, VIRTIO_ID_NET, VNET_HDR_LEN,
};
use crate::virtio::{
    ActivateError, ActiveQueues, Interrupt, VirtioDevice, Warnings, VIRTIO_F_VERSION_1,
};
use crate::EVENTFD_FLAGS;

/// The driver can merge RX buffers (5.1.6.3.1): one frame may span several chains.
pub const MRG_RXBUF: u64 = 1 << 15;
/// Offset of `num_buffers` in the vnet header.
const NUM_BUFFERS_OFFSET: usize = 10;

// Warning kinds.
const WARN_NOT_ACTIVE: u32 = 0;
const WARN_TX_CHAIN: u32 = 1;
const WARN_RX_CHAIN: u32 = 2;
const WARN_RX_SMALL: u32 = 3;
const WARN_BACKEND: u32 = 4;
const WARN_OFFLOAD: u32 = 5;

/// Traffic counters, for benchmarks and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

struct Active {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<Interrupt>,
    mergeable: bool,
}

/// A virtio-net device.
pub struct Net<B: NetBackend = Tap> {
    name: String,
    backend: B,
    mac: MacAddr,
    queue_evts: [EventFd; 2],
    activate_evt: EventFd,
    active: Option<Active>,
    rx_frame: Vec<u8>,
    /// Length of the frame in `rx_frame` waiting for guest buffers. Not snapshot
    /// state: a frame read from the tap but not yet delivered is lost across a
    /// snapshot, as any frame a full queue drops; the guest's TCP resends it.
    rx_pending: Option<usize>,
    /// The backend signalled readable and has not yet returned `WouldBlock`.
    backend_readable: bool,
    tx_frame: Vec<u8>,
    /// Offloads to set on the tap once the VMM thread handles the activation.
    pending_offload: Option<u32>,
    counters: NetCounters,
    warnings: Warnings,
}

impl<B: NetBackend> Net<B> {
    /// Creates the device `name` (e.g. "net0") over `backend` with address `mac`.
    pub fn new(name: &str, backend: B, mac: MacAddr) -> io::Result<Self> {
        Ok(Self {
            name: name.to_string(),
            backend,
            mac,
            queue_evts: [EventFd::new(EVENTFD_FLAGS)?, EventFd::new(EVENTFD_FLAGS)?],
            activate_evt: EventFd::new(EVENTFD_FLAGS)?,
            active: None,
            rx_frame: vec![0; MAX_FRAME_LEN],
            rx_pending: None,
            backend_readable: true,
            tx_frame: Vec::with_capacity(MAX_FRAME_LEN),
            pending_offload: None,
            counters: NetCounters::default(),
            warnings: Warnings::default(),
        })
    }

    /// The eventfd the VMM registers as the ioeventfd of queue `index`.
    pub fn queue_evt(&self, index: usize) -> &EventFd {
        &self.queue_evts[index]
    }

    /// Written when the driver activates the device.
    pub fn activate_evt(&self) -> &EventFd {
        &self.activate_evt
    }

    /// The device's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The backend's fd.
    pub fn backend_fd(&self) -> RawFd {
        self.backend.raw_fd()
    }

    /// Traffic so far.
    pub fn counters(&self) -> NetCounters {
        self.counters
    }

    /// Whether the driver has activated the device.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    fn warn(&mut self, kind: u32, message: std::fmt::Arguments<'_>) {
        self.warnings.warn(kind, &self.name, message);
    }

    /// Finishes activation on the VMM thread: sets the tap's offloads (kept off the
    /// vCPU threads, whose filter allows only KVM ioctls), then moves any frames that
    /// waited for the driver, in both directions.
    pub fn on_activated(&mut self) {
        if let Some(offload) = self.pending_offload.take() {
            if let Err(e) = self.backend.set_offload(offload) {
                // Without offloads the tap hands over plain frames, which still works.
                self.warn(
                    WARN_OFFLOAD,
                    format_args!("cannot set tap offloads {offload:#x}: {e}"),
                );
            }
        }
        self.process_rx();
        self.process_tx();
    }

    /// The backend may have frames: move as many as the guest has buffers for.
    pub fn on_backend_readable(&mut self) {
        self.backend_readable = true;
        self.process_rx();
    }

    /// The guest added RX buffers.
    pub fn on_rx_notify(&mut self) {
        if self.active.is_none() {
            self.warn(
                WARN_NOT_ACTIVE,
                format_args!("queue notification before DRIVER_OK; ignored"),
            );
            return;
        }
        self.process_rx();
    }

    /// The guest queued frames to send.
    pub fn on_tx_notify(&mut self) {
        if self.active.is_none() {
            self.warn(
                WARN_NOT_ACTIVE,
                format_args!("queue notification before DRIVER_OK; ignored"),
            );
            return;
        }
        self.process_tx();
    }

    /// Moves frames from the backend into guest RX buffers until either runs out.
    /// Never waits: with no guest buffers the frame stays in `rx_pending` until the
    /// driver's next RX notification.
    pub fn process_rx(&mut self) {
        let mut delivered = false;
        while self.active.is_some() {
            let len = match self.rx_pending {
                Some(len) => len,
                None if !self.backend_readable => break,
                None => match self.backend.read_frame(&mut self.rx_frame) {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.backend_readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.warn(WARN_BACKEND, format_args!("reading the tap failed: {e}"));
                        self.backend_readable = false;
                        break;
                    }
                },
            };
            if len < VNET_HDR_LEN {
                self.rx_pending = None;
                self.counters.rx_dropped += 1;
                continue;
            }
            match self.deliver_rx(len) {
                Some(true) => {
                    self.rx_pending = None;
                    delivered = true;
                }
                // Dropped: bad chain or too small; the frame is gone, carry on.
                Some(false) => {
                    self.rx_pending = None;
                    self.counters.rx_dropped += 1;
                    delivered = true;
                }
                None => {
                    self.rx_pending = Some(len);
                    break;
                }
            }
        }
        if delivered {
            self.notify(RX_QUEUE);
        }
    }

    /// Puts the frame in `rx_frame[..len]` into guest buffers. `None`: not enough
    /// buffers yet; `Some(false)`: the frame was dropped.
    fn deliver_rx(&mut self, len: usize) -> Option<bool> {
        let active = self.active.as_mut()?;
        let mem = active.mem.clone();
        // Claim enough chains for the frame: one without MRG_RXBUF, as many as needed
        // with it (5.1.6.4.2).
        let mut chains: Vec<RxChain> = Vec::new();
        let mut capacity = 0usize;
        let mut bad = false;
        while capacity < len {
            if !active.mergeable && !chains.is_empty() {
                break;
            }
            let Some(chain) = active.rx.pop_descriptor_chain(&mem) else {
                // Not enough buffers: give back what we claimed and wait.
                for _ in 0..chains.len() {
                    active.rx.go_to_previous_position();
                }
                return None;
            };
            let head = chain.head_index();
            match writable_buffers(chain) {
                Ok(bufs) => {
                    capacity += bufs.iter().map(|b| b.1).sum::<usize>();
                    chains.push((head, bufs));
                }
                Err(_) => {
                    bad = true;
                    chains.push((head, Vec::new()));
                    break;
                }
            }
        }
        if bad || capacity < len {
            for (head, _) in &chains {
                let _ = active.rx.add_used(&mem, *head, 0);
            }
            if bad {
                self.warn(
                    WARN_RX_CHAIN,
                    format_args!("RX buffer read-only or outside guest memory; dropped"),
                );
            } else {
                self.warn(
                    WARN_RX_SMALL,
                    format_args!("RX buffer smaller than a {len}-byte frame; dropped"),
                );
            }
            return Some(false);
        }
        let frame = &mut self.rx_frame[..len];
        frame[NUM_BUFFERS_OFFSET..NUM_BUFFERS_OFFSET + 2]
            .copy_from_slice(&(chains.len() as u16).to_le_bytes());
        for (head, used) in scatter(&mem, frame, &chains) {
            let _ = active.rx.add_used(&mem, head, used);
        }
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += (len - VNET_HDR_LEN) as u64;
        Some(true)
    }

    /// Sends every frame the guest queued, then interrupts once.
    pub fn process_tx(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = active.mem.clone();
        let mut sent_any = false;
        let mut dropped_chain = false;
        while let Some(chain) = active.tx.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            match gather(&mem, chain, &mut self.tx_frame) {
                Ok(()) => match self.backend.write_frame(&self.tx_frame) {
                    Ok(_) => {
                        self.counters.tx_frames += 1;
                        self.counters.tx_bytes += (self.tx_frame.len() - VNET_HDR_LEN) as u64;
                    }
                    // A full tap queue drops, as a switch port would.
                    Err(_) => self.counters.tx_dropped += 1,
                },
                Err(_) => {
                    self.counters.tx_dropped += 1;
                    dropped_chain = true;
                }
            }
            let _ = active.tx.add_used(&mem, head, 0);
            sent_any = true;
        }
        if dropped_chain {
            self.warn(
                WARN_TX_CHAIN,
                format_args!("malformed TX descriptor chain; dropped"),
            );
        }
        if sent_any {
            self.notify(TX_QUEUE);
        }
    }

    fn notify(&mut self, queue: usize) {
        if let Some(active) = self.active.as_mut() {
            let q = if queue == RX_QUEUE {
                &mut active.rx
            } else {
                &mut active.tx
            };
            if q.needs_notification(&active.mem).unwrap_or(true) {
                active.interrupt.signal_used();
            }
        }
    }
}

impl<B: NetBackend> VirtioDevice for Net<B> {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | features::MAC
            | features::CSUM
            | features::GUEST_CSUM
            | features::GUEST_TSO4
            | features::GUEST_TSO6
            | features::HOST_TSO4
            | features::HOST_TSO6
            | MRG_RXBUF
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    /// Config space (5.1.4): just `mac`, since only VIRTIO_NET_F_MAC is offered.
    fn config_space(&self) -> &[u8] {
        &self.mac
    }

    /// In virtio 1.x the MAC is read-only for the driver (5.1.4.2).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) -> bool {
        false
    }

    fn activate(
        &mut self,
        active: ActiveQueues,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError> {
        let ActiveQueues {
            mem,
            mut queues,
            acked_features,
        } = active;
        if queues.len() != 2 {
            return Err(ActivateError::QueueCount {
                got: queues.len(),
                want: 2,
            });
        }
        let tx = queues.pop().expect("two queues");
        let rx = queues.pop().expect("two queues");
        let mut offload = 0;
        if acked_features & features::GUEST_CSUM != 0 {
            offload |= TUN_F_CSUM;
            if acked_features & features::GUEST_TSO4 != 0 {
                offload |= TUN_F_TSO4;
            }
            if acked_features & features::GUEST_TSO6 != 0 {
                offload |= TUN_F_TSO6;
            }
        }
        self.pending_offload = Some(offload);
        self.active = Some(Active {
            mem,
            rx,
            tx,
            interrupt,
            mergeable: acked_features & MRG_RXBUF != 0,
        });
        // The VMM thread finishes the activation (offloads, frames that arrived before
        // the driver was ready) when it sees this event.
        let _ = self.activate_evt.write(1);
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.rx_pending = None;
        self.backend_readable = true;
    }

    /// RX then TX. Every chain the device takes is completed before it returns to
    /// the event loop (or given back, for RX buffers a frame did not fill), so the
    /// indexes are the whole queue state; see `rx_pending` for the frame that is not.
    fn queue_states(&self) -> Option<Vec<QueueState>> {
        let active = self.active.as_ref()?;
        Some(vec![active.rx.state(), active.tx.state()])
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;

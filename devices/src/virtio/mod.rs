//! Virtio devices over the MMIO transport (virtio 1.2, section 4.2).
//!
//! A device implements [`VirtioDevice`]: its type, features, queue sizes, config space
//! and what to do when the driver activates it. [`mmio::MmioTransport`] turns any such
//! device into a [`crate::bus::BusDevice`] speaking the virtio-mmio version 2 register
//! layout. Interrupts go out through an [`Interrupt`]; queue notifications arrive on
//! eventfds that the VMM registers as KVM ioeventfds, so neither side needs KVM here.
//! [`state`] holds the transport's snapshot state and its checks.

pub mod block;
pub mod mmio;
pub mod net;
pub mod state;

pub use state::{MmioSnapshot, QueueSnapshot, StateError};

use std::sync::atomic::{AtomicU32, Ordering};

use virtio_queue::{Queue, QueueState};
use vm_memory::GuestMemoryMmap;

use crate::EventFdTrigger;

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// The device conforms to virtio 1.x, not the legacy interface (virtio 1.2, 6).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// The driver and device use the `used_event` and `avail_event` fields (virtio 1.2, 6).
/// No device here offers it.
pub const VIRTIO_F_RING_EVENT_IDX: u64 = 1 << 29;

/// Interrupt status bits (virtio 1.2, 4.2.2, InterruptStatus).
pub const INT_USED_RING: u32 = 1;
pub const INT_CONFIG_CHANGE: u32 = 2;

/// Errors a device reports when the driver activates it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActivateError {
    #[error("the driver set up {got} queues, the device needs {want}")]
    QueueCount { got: usize, want: usize },
    #[error("queue {0} is not usable (size, addresses or not ready)")]
    BadQueue(usize),
    #[error("the device's back-end failed: {0}")]
    Backend(String),
}

/// The interrupt line of one virtio-mmio device: the InterruptStatus register plus the
/// eventfd (a KVM irqfd) that raises the guest interrupt.
#[derive(Debug)]
pub struct Interrupt {
    status: AtomicU32,
    irq: EventFdTrigger,
}

impl Interrupt {
    /// Wraps the irqfd of the device's IRQ.
    pub fn new(irq: EventFdTrigger) -> Self {
        Self {
            status: AtomicU32::new(0),
            irq,
        }
    }

    /// Tells the driver that a queue's used ring has new entries.
    pub fn signal_used(&self) {
        self.signal(INT_USED_RING);
    }

    /// Tells the driver that the configuration (or device status) changed.
    pub fn signal_config(&self) {
        self.signal(INT_CONFIG_CHANGE);
    }

    fn signal(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::SeqCst);
        // A failed eventfd write means the irqfd is gone; the driver will still see the
        // status bit the next time it looks, so there is nothing better to do.
        let _ = vm_superio::Trigger::trigger(&self.irq);
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clears the acknowledged bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }

    /// Sets InterruptStatus from a snapshot and, if any bit is set, raises the
    /// interrupt again. The VMM restores the interrupt controller too, but a second
    /// interrupt costs the driver one look at the status register, while a lost one
    /// would leave it waiting for ever.
    fn restore_status(&self, bits: u32) {
        self.status.store(bits, Ordering::SeqCst);
        if bits != 0 {
            let _ = vm_superio::Trigger::trigger(&self.irq);
        }
    }
}

/// What the driver handed over at DRIVER_OK.
pub struct ActiveQueues {
    pub mem: GuestMemoryMmap,
    pub queues: Vec<Queue>,
    pub acked_features: u64,
}

/// Copies `data.len()` bytes of a device's config space `space` from `offset` (virtio
/// 1.2 §4.2.2, offsets from 0x100); bytes past its end read as 0.
pub fn read_config_space(space: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| space.get(o))
            .copied()
            .unwrap_or(0);
    }
}

/// A virtio device behind a transport.
pub trait VirtioDevice: Send {
    /// Device type (virtio 1.2, 5: 1 = network card, 2 = block device).
    fn device_type(&self) -> u32;
    /// Feature bits the device offers.
    fn features(&self) -> u64;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// The device config space (virtio 1.2, 4.2.2, from offset 0x100): its length is
    /// the space's size. Snapshots carry it so that a restore can tell a different
    /// device (another MAC, another disk size) from the one saved.
    fn config_space(&self) -> &[u8];
    /// Reads device config space at `offset`; bytes past its end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_space(self.config_space(), offset, data);
    }
    /// Writes device config space; returns false if the write is outside it or not
    /// writable (the transport then drops it and warns once).
    fn write_config(&mut self, offset: u64, data: &[u8]) -> bool;
    /// Starts the device with the driver's queues.
    fn activate(
        &mut self,
        queues: ActiveQueues,
        interrupt: std::sync::Arc<Interrupt>,
    ) -> Result<(), ActivateError>;
    /// Stops the device and forgets the queues (status written to 0).
    fn reset(&mut self);
    /// The live state of each queue, in queue order, while the device is active (from
    /// `activate` until `reset`); `None` when it is not. Snapshots take the queues from
    /// here, since after DRIVER_OK the device owns them.
    fn queue_states(&self) -> Option<Vec<QueueState>>;
}

/// Warnings about a misbehaving guest, rate-limited per kind so that a hostile or
/// buggy driver cannot flood the host's log: the first occurrence of each kind is
/// logged, then only the 10th, 100th, 1000th, ... with the count so far. Counting
/// instead of timing keeps it free of clock reads on threads whose filter has no
/// `clock_gettime`, and bounds the lines a guest can cause to about 20 per kind.
#[derive(Debug)]
pub struct Warnings([u64; WARNING_KINDS]);

/// Kinds of warning a device may count separately.
pub const WARNING_KINDS: usize = 16;

impl Default for Warnings {
    fn default() -> Self {
        Self([0; WARNING_KINDS])
    }
}

impl Warnings {
    /// Counts warning `kind` (0..16) for `device`, and logs `message` if this
    /// occurrence is the first or a power of ten.
    pub fn warn(&mut self, kind: u32, device: &str, message: std::fmt::Arguments<'_>) {
        let count = &mut self.0[kind as usize % WARNING_KINDS];
        *count = count.saturating_add(1);
        match *count {
            1 => log::warn!("{device}: {message}"),
            n if is_power_of_ten(n) => log::warn!("{device}: {message} ({n} times so far)"),
            _ => {}
        }
    }

    /// How many times warning `kind` was given.
    pub fn count(&self, kind: u32) -> u64 {
        self.0[kind as usize % WARNING_KINDS]
    }

    /// Whether warning `kind` was given.
    pub fn given(&self, kind: u32) -> bool {
        self.count(kind) > 0
    }
}

/// Whether the `n`-th occurrence of a rate-limited message is logged: the 1st, 10th,
/// 100th, ... (shared with the logger's limit on other crates' messages).
pub fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_warnings_logs_a_handful_of_lines() {
        let mut warnings = Warnings::default();
        let logged = (1..=1_000_000u64)
            .filter(|_| {
                warnings.warn(3, "test", format_args!("bad"));
                is_power_of_ten(warnings.count(3))
            })
            .count();
        // 1, 10, 100, ..., 1000000.
        assert_eq!(logged, 7);
        assert_eq!(warnings.count(3), 1_000_000);
        assert!(!warnings.given(4));
        assert!(!is_power_of_ten(0) && !is_power_of_ten(20) && is_power_of_ten(1000));
    }
}

//! The virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2): the register
//! block a driver uses to discover a device, negotiate features, set up queues and
//! drive the status state machine. Generic over any [`VirtioDevice`].
//!
//! A misbehaving driver never takes the VMM down: accesses of the wrong width or to
//! unknown registers are ignored, queue set-up that cannot work (a size that is not a
//! power of two, rings outside guest memory) makes the device set DEVICE_NEEDS_RESET
//! at DRIVER_OK, and each kind of misbehaviour is reported, rate-limited (`Warnings`).
//!
//! Snapshots: [`MmioTransport::snapshot`] and [`MmioTransport::restore`], with the
//! state and its checks in state.rs.

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::state::{self, MmioSnapshot, QueueSnapshot, StateError};
use super::{status, ActiveQueues, Interrupt, VirtioDevice, Warnings, VIRTIO_F_VERSION_1};
use crate::bus::BusDevice;

/// Size of one device's register window.
pub const MMIO_WINDOW: u64 = 0x1000;
/// "virt" in little endian.
const MAGIC: u32 = 0x7472_6976;
const VERSION: u32 = 2;
/// "SVMM", our vendor ID.
const VENDOR_ID: u32 = 0x4d4d_5653;
/// Offset of QueueNotify, where the VMM places each queue's ioeventfd.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x50;
/// Start of the device-specific configuration space.
const CONFIG_OFFSET: u64 = 0x100;

// Warning kinds (see Warnings).
const WARN_WIDTH: u32 = 0;
const WARN_CONFIG_WRITE: u32 = 1;
const WARN_LATE_WRITE: u32 = 2;
const WARN_QUEUE_SIZE: u32 = 3;
const WARN_ACTIVATE: u32 = 4;
const WARN_NOTIFY: u32 = 5;
const WARN_STATUS: u32 = 6;
const WARN_FEATURES: u32 = 7;

/// A virtio device on the MMIO bus.
pub struct MmioTransport<D: VirtioDevice> {
    device: D,
    name: String,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    /// The driver's queue set-up, until DRIVER_OK hands it to the device.
    queues: Vec<Queue>,
    /// Whether the last QueueNum written for each queue was a valid size.
    size_ok: Vec<bool>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    driver_features: u64,
    status: u32,
    warnings: Warnings,
}

fn new_queues(max_sizes: &[u16]) -> Vec<Queue> {
    max_sizes
        .iter()
        // Queue::new only fails for a max size that is not a power of two, a device bug.
        .map(|&max| Queue::new(max).expect("device queue sizes are powers of two"))
        .collect()
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// Puts `device` behind a transport named `name` (for messages).
    pub fn new(device: D, name: &str, mem: GuestMemoryMmap, interrupt: Arc<Interrupt>) -> Self {
        let queues = new_queues(device.queue_max_sizes());
        Self {
            size_ok: vec![true; queues.len()],
            queues,
            device,
            name: name.to_string(),
            mem,
            interrupt,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            status: 0,
            warnings: Warnings::default(),
        }
    }

    /// The device, for its event handler.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The transport's and the device's state. Between the VMM thread's events a
    /// device has nothing in flight (see each device's `queue_states`), so this is all
    /// there is.
    pub fn snapshot(&self) -> MmioSnapshot {
        // While DRIVER_OK is set the device is active and owns the queues: DRIVER_OK is
        // only ever stored after a successful activation, and only a reset clears it.
        let live = (self.status & status::DRIVER_OK != 0)
            .then(|| self.device.queue_states())
            .flatten();
        let queues = match live {
            Some(states) => states.into_iter().map(QueueSnapshot::from).collect(),
            None => self.queues.iter().map(|q| q.state().into()).collect(),
        };
        MmioSnapshot {
            device_type: self.device.device_type(),
            status: self.status,
            driver_features: self.driver_features,
            queue_select: self.queue_select,
            device_features_select: self.device_features_select,
            driver_features_select: self.driver_features_select,
            interrupt_status: self.interrupt.status(),
            size_ok: self.size_ok.clone(),
            queues,
            config: self.device.config_space().to_vec(),
        }
    }

    /// Puts the transport in the state `s`, after checking that `s` fits this device
    /// and guest memory (state.rs says what is checked). With DRIVER_OK in `s` the
    /// device is activated with the saved queues, as the driver's DRIVER_OK write did,
    /// so its activation event is written and the VMM thread finishes the activation
    /// (tap offloads, queued work) when its event loop runs. Whatever DEVICE_NEEDS_RESET
    /// or FAILED say, DRIVER_OK means the device was active, and it is again.
    ///
    /// A snapshot that fails the checks leaves the transport as it was; a device that
    /// then refuses activation leaves it reset, as at power-on.
    pub fn restore(&mut self, s: &MmioSnapshot) -> Result<(), StateError> {
        let queues = state::check(s, &self.device, &self.mem)?;
        self.reset();
        if s.status & status::DRIVER_OK != 0 {
            let active = ActiveQueues {
                mem: self.mem.clone(),
                queues,
                acked_features: s.driver_features,
            };
            if let Err(e) = self.device.activate(active, self.interrupt.clone()) {
                self.reset();
                return Err(StateError::Activate(e));
            }
        } else {
            self.queues = queues;
        }
        self.size_ok = s.size_ok.clone();
        self.queue_select = s.queue_select;
        self.device_features_select = s.device_features_select;
        self.driver_features_select = s.driver_features_select;
        self.driver_features = s.driver_features;
        self.status = s.status;
        self.interrupt.restore_status(s.interrupt_status);
        Ok(())
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn warn(&mut self, kind: u32, message: std::fmt::Arguments<'_>) {
        self.warnings.warn(kind, &self.name, message);
    }

    fn read_register(&self, offset: u64) -> u32 {
        let queue = self.queues.get(self.queue_select as usize);
        match offset {
            0x00 => MAGIC,
            0x04 => VERSION,
            0x08 => self.device.device_type(),
            0x0c => VENDOR_ID,
            0x10 => match self.device_features_select {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            0x34 => queue.map_or(0, |q| u32::from(q.max_size())),
            0x44 => queue.map_or(0, |q| u32::from(q.ready())),
            0x60 => self.interrupt.status(),
            0x70 => self.status,
            // The config space never changes under the driver.
            0xfc => 0,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        let queue_setup = matches!(offset, 0x38 | 0x44 | 0x80..=0xa4);
        if queue_setup && self.status & status::DRIVER_OK != 0 {
            self.warn(
                WARN_LATE_WRITE,
                format_args!("queue set-up written after DRIVER_OK; ignored"),
            );
            return;
        }
        match offset {
            0x14 => self.device_features_select = value,
            0x20 => self.write_driver_features(value),
            0x24 => self.driver_features_select = value,
            0x30 => self.queue_select = value,
            0x38 => {
                let index = self.queue_select as usize;
                let ok = self
                    .selected_queue()
                    .is_some_and(|q| value <= 0xffff && q.try_set_size(value as u16).is_ok());
                if let Some(flag) = self.size_ok.get_mut(index) {
                    *flag = ok;
                }
                if !ok {
                    self.warn(
                        WARN_QUEUE_SIZE,
                        format_args!("invalid queue size {value} for queue {index}"),
                    );
                }
            }
            0x44 => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1);
                }
            }
            QUEUE_NOTIFY_OFFSET => {
                // With the ioeventfd in place, KVM consumes valid notifications; one that
                // reaches us names a queue the device does not have.
                self.warn(
                    WARN_NOTIFY,
                    format_args!("notification for unknown queue {value}"),
                );
            }
            0x64 => self.interrupt.ack(value),
            0x70 => self.write_status(value),
            0x80 => self.with_queue(|q| q.set_desc_table_address(Some(value), None)),
            0x84 => self.with_queue(|q| q.set_desc_table_address(None, Some(value))),
            0x90 => self.with_queue(|q| q.set_avail_ring_address(Some(value), None)),
            0x94 => self.with_queue(|q| q.set_avail_ring_address(None, Some(value))),
            0xa0 => self.with_queue(|q| q.set_used_ring_address(Some(value), None)),
            0xa4 => self.with_queue(|q| q.set_used_ring_address(None, Some(value))),
            _ => {}
        }
    }

    fn with_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.selected_queue() {
            f(q);
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        // Features are negotiated after DRIVER and before FEATURES_OK (virtio 1.2, 3.1.1).
        if self.status & status::DRIVER == 0 || self.status & status::FEATURES_OK != 0 {
            self.warn(
                WARN_FEATURES,
                format_args!("driver features written out of order; ignored"),
            );
            return;
        }
        match self.driver_features_select {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features =
                    (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            _ => {}
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // The driver only ever adds bits (virtio 1.2, 2.1.1); FAILED may come at any time.
        let old = self.status;
        if value & old != old {
            self.warn(
                WARN_STATUS,
                format_args!("driver cleared status bits ({old:#x} -> {value:#x}); ignored"),
            );
            return;
        }
        let added = value & !self.status;
        let mut value = value;
        if added & status::FEATURES_OK != 0 {
            let offered = self.device.features();
            let acceptable = self.driver_features & !offered == 0
                && self.driver_features & VIRTIO_F_VERSION_1 != 0;
            if !acceptable {
                // Leaving FEATURES_OK clear is how the device refuses (3.1.1 step 6).
                value &= !status::FEATURES_OK;
            }
        }
        if added & status::DRIVER_OK != 0 {
            value = self.activate(value);
        }
        self.status = value;
    }

    /// Hands the queues to the device; returns the status to store.
    fn activate(&mut self, value: u32) -> u32 {
        if value & status::FEATURES_OK == 0 {
            self.warn(WARN_ACTIVATE, format_args!("DRIVER_OK without FEATURES_OK"));
            return self.needs_reset(value);
        }
        let bad = (0..self.queues.len())
            .find(|&i| !self.size_ok[i] || !self.queues[i].is_valid(&self.mem));
        if let Some(index) = bad {
            self.warn(
                WARN_ACTIVATE,
                format_args!("queue {index} is not usable; device needs reset"),
            );
            return self.needs_reset(value);
        }
        let queues = std::mem::replace(&mut self.queues, new_queues(self.device.queue_max_sizes()));
        let active = ActiveQueues {
            mem: self.mem.clone(),
            queues,
            acked_features: self.driver_features,
        };
        match self.device.activate(active, self.interrupt.clone()) {
            Ok(()) => value,
            Err(e) => {
                self.warn(WARN_ACTIVATE, format_args!("activation failed: {e}"));
                self.needs_reset(value)
            }
        }
    }

    fn needs_reset(&mut self, value: u32) -> u32 {
        self.interrupt.signal_config();
        (value & !status::DRIVER_OK) | status::DEVICE_NEEDS_RESET
    }

    fn reset(&mut self) {
        self.device.reset();
        self.queues = new_queues(self.device.queue_max_sizes());
        self.size_ok = vec![true; self.queues.len()];
        self.queue_select = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt.clear();
    }
}

impl<D: VirtioDevice> BusDevice for MmioTransport<D> {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        // The common registers are 32 bits wide and 32-bit aligned (4.2.2.2).
        if data.len() != 4 || !offset.is_multiple_of(4) {
            self.warn(
                WARN_WIDTH,
                format_args!("{}-byte read at {offset:#x} ignored", data.len()),
            );
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_register(offset).to_le_bytes());
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            if !self.device.write_config(offset - CONFIG_OFFSET, data) {
                self.warn(
                    WARN_CONFIG_WRITE,
                    format_args!("config write at {offset:#x} outside the config space; ignored"),
                );
            }
            return;
        }
        match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset.is_multiple_of(4) => {
                self.write_register(offset, u32::from_le_bytes(bytes))
            }
            _ => self.warn(
                WARN_WIDTH,
                format_args!("{}-byte write at {offset:#x} ignored", data.len()),
            ),
        }
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
pub(crate) mod tests;

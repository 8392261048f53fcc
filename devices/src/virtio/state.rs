//! Snapshot state of a virtio-mmio device: the transport's registers, every queue
//! (virtio-queue's `QueueState`, mirrored here with serde) and the device's config
//! space, plus the checks a restore makes before it touches anything.
//!
//! A snapshot file is untrusted input, so a restore accepts only states the live
//! transport could itself be in, for this very device:
//! - the same device type, queue count, queue maximum sizes and config space bytes
//!   (for net the MAC, for block the capacity and limits): restoring a guest onto
//!   another disk size would corrupt it. The config space is compared, not restored:
//!   no device here lets the driver write it (one that did would need restoring it);
//! - only known status bits; DRIVER_OK only with FEATURES_OK, and FEATURES_OK only
//!   with driver features the device offers, VERSION_1 among them (virtio 1.2, 3.1.1,
//!   as the transport checks when the driver sets FEATURES_OK). Before FEATURES_OK the
//!   driver may have written any features; the transport checks them when it is set;
//! - interrupt status bits the transport can set (4.2.2, InterruptStatus);
//! - queues virtio-queue would build: sizes powers of two up to the maximum, rings
//!   aligned (2.7, table 2.2), no event index unless negotiated; and, if DRIVER_OK has
//!   handed them to the device, ready with their rings in guest memory.
//!
//! The select registers may hold any value: the driver can write any, and every
//! access through them is range-checked, so they are restored as they were.

use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;

use super::{
    status, ActivateError, VirtioDevice, INT_CONFIG_CHANGE, INT_USED_RING, VIRTIO_F_RING_EVENT_IDX,
    VIRTIO_F_VERSION_1,
};

/// Every status bit the transport knows (2.1).
const KNOWN_STATUS: u32 = status::ACKNOWLEDGE
    | status::DRIVER
    | status::DRIVER_OK
    | status::FEATURES_OK
    | status::DEVICE_NEEDS_RESET
    | status::FAILED;

/// One virtqueue, as virtio-queue's `QueueState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSnapshot {
    pub max_size: u16,
    /// Index of the next available ring entry the device will read.
    pub next_avail: u16,
    /// Index of the next used ring entry the device will write.
    pub next_used: u16,
    pub event_idx_enabled: bool,
    /// The size the driver chose.
    pub size: u16,
    pub ready: bool,
    /// Guest physical addresses of the descriptor table and the two rings.
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

impl From<QueueState> for QueueSnapshot {
    fn from(q: QueueState) -> Self {
        Self {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx_enabled: q.event_idx_enabled,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
        }
    }
}

impl From<&QueueSnapshot> for QueueState {
    fn from(q: &QueueSnapshot) -> Self {
        Self {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx_enabled: q.event_idx_enabled,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
        }
    }
}

/// A virtio-mmio device's state, as written to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmioSnapshot {
    /// DeviceID (virtio 1.2, 5): checked, not restored.
    pub device_type: u32,
    /// The device status register (2.1).
    pub status: u32,
    pub driver_features: u64,
    pub queue_select: u32,
    pub device_features_select: u32,
    pub driver_features_select: u32,
    /// InterruptStatus (4.2.2).
    pub interrupt_status: u32,
    /// Whether the last QueueNum written for each queue was valid.
    pub size_ok: Vec<bool>,
    /// Every queue: the transport's set-up before DRIVER_OK, the device's live queues
    /// after it.
    pub queues: Vec<QueueSnapshot>,
    /// The device config space: checked, not restored.
    pub config: Vec<u8>,
}

/// Why a snapshot cannot be restored onto a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("the snapshot is of a device of type {snapshot}, this one is of type {device}")]
    DeviceType { snapshot: u32, device: u32 },
    #[error("the snapshot's device config space is {snapshot} bytes long, this device's {device}")]
    ConfigLength { snapshot: usize, device: usize },
    #[error("the snapshot's device config differs from this device's at byte {offset} ({snapshot:#04x} there, {device:#04x} here): another MAC address or disk size?")]
    Config {
        offset: usize,
        snapshot: u8,
        device: u8,
    },
    #[error("the snapshot's device status {0:#x} has bits virtio does not define")]
    UnknownStatus(u32),
    #[error("the snapshot's device status {0:#x} has DRIVER_OK without FEATURES_OK")]
    DriverOkWithoutFeaturesOk(u32),
    #[error("the snapshot's driver accepted features {0:#x} that this device does not offer")]
    UnofferedFeatures(u64),
    #[error("the snapshot's driver accepted features without VIRTIO_F_VERSION_1")]
    NotVersion1,
    #[error("the snapshot's interrupt status {0:#x} has bits virtio-mmio does not define")]
    UnknownInterruptStatus(u32),
    #[error("the snapshot has {snapshot} queues, the device has {device}")]
    QueueCount { snapshot: usize, device: usize },
    #[error("the snapshot has {snapshot} queue size flags, the device has {device} queues")]
    SizeOkCount { snapshot: usize, device: usize },
    #[error("queue {index} has maximum size {snapshot} in the snapshot, {device} on this device")]
    QueueMaxSize {
        index: usize,
        snapshot: u16,
        device: u16,
    },
    #[error("queue {index} has size {size}, not a power of two from 1 to {max}")]
    QueueSize { index: usize, size: u16, max: u16 },
    #[error("queue {index}'s descriptor table or rings are misaligned")]
    QueueAlignment { index: usize },
    #[error("queue {index} uses event indexes, which the driver did not negotiate")]
    QueueEventIdx { index: usize },
    #[error("queue {index} is not valid in guest memory (not ready, or its rings lie outside it)")]
    QueueNotValid { index: usize },
    #[error("the restored device could not be activated")]
    Activate(#[source] ActivateError),
}

/// Checks `s` against `device` and guest memory `mem` (see the module documentation)
/// and builds its queues, changing nothing.
pub(super) fn check<D: VirtioDevice>(
    s: &MmioSnapshot,
    device: &D,
    mem: &GuestMemoryMmap,
) -> Result<Vec<Queue>, StateError> {
    if s.device_type != device.device_type() {
        return Err(StateError::DeviceType {
            snapshot: s.device_type,
            device: device.device_type(),
        });
    }
    check_config(&s.config, device.config_space())?;
    check_status(s, device.features())?;
    let max_sizes = device.queue_max_sizes();
    if s.queues.len() != max_sizes.len() {
        return Err(StateError::QueueCount {
            snapshot: s.queues.len(),
            device: max_sizes.len(),
        });
    }
    if s.size_ok.len() != max_sizes.len() {
        return Err(StateError::SizeOkCount {
            snapshot: s.size_ok.len(),
            device: max_sizes.len(),
        });
    }
    let active = s.status & status::DRIVER_OK != 0;
    let event_idx = s.driver_features & VIRTIO_F_RING_EVENT_IDX != 0;
    s.queues
        .iter()
        .zip(max_sizes)
        .enumerate()
        .map(|(index, (q, &max))| build_queue(index, q, max, event_idx, active, mem))
        .collect()
}

fn check_config(snapshot: &[u8], device: &[u8]) -> Result<(), StateError> {
    if snapshot.len() != device.len() {
        return Err(StateError::ConfigLength {
            snapshot: snapshot.len(),
            device: device.len(),
        });
    }
    match snapshot.iter().zip(device).position(|(a, b)| a != b) {
        Some(offset) => Err(StateError::Config {
            offset,
            snapshot: snapshot[offset],
            device: device[offset],
        }),
        None => Ok(()),
    }
}

fn check_status(s: &MmioSnapshot, offered: u64) -> Result<(), StateError> {
    if s.status & !KNOWN_STATUS != 0 {
        return Err(StateError::UnknownStatus(s.status));
    }
    if s.interrupt_status & !(INT_USED_RING | INT_CONFIG_CHANGE) != 0 {
        return Err(StateError::UnknownInterruptStatus(s.interrupt_status));
    }
    if s.status & status::DRIVER_OK != 0 && s.status & status::FEATURES_OK == 0 {
        return Err(StateError::DriverOkWithoutFeaturesOk(s.status));
    }
    if s.status & status::FEATURES_OK != 0 {
        let unoffered = s.driver_features & !offered;
        if unoffered != 0 {
            return Err(StateError::UnofferedFeatures(unoffered));
        }
        if s.driver_features & VIRTIO_F_VERSION_1 == 0 {
            return Err(StateError::NotVersion1);
        }
    }
    Ok(())
}

fn build_queue(
    index: usize,
    q: &QueueSnapshot,
    max: u16,
    event_idx: bool,
    active: bool,
    mem: &GuestMemoryMmap,
) -> Result<Queue, StateError> {
    if q.max_size != max {
        return Err(StateError::QueueMaxSize {
            index,
            snapshot: q.max_size,
            device: max,
        });
    }
    if !q.size.is_power_of_two() || q.size > max {
        return Err(StateError::QueueSize {
            index,
            size: q.size,
            max,
        });
    }
    if q.event_idx_enabled && !event_idx {
        return Err(StateError::QueueEventIdx { index });
    }
    // The sizes are checked above and the device's maximum is valid (it built its
    // own queues with it), so only the alignments are left for virtio-queue to refuse.
    let queue =
        Queue::try_from(QueueState::from(q)).map_err(|_| StateError::QueueAlignment { index })?;
    if active && !queue.is_valid(mem) {
        return Err(StateError::QueueNotValid { index });
    }
    Ok(queue)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

//! Port I/O and MMIO buses: address ranges mapped to devices.
//!
//! The vCPU loop never hard-codes a port range; it hands every `KVM_EXIT_IO` and
//! `KVM_EXIT_MMIO` to a bus, which finds the device owning the address and calls it
//! with the offset from the device's base. One bus is built per address space at VM
//! set-up and then shared read-only by all vCPU threads; each device has its own lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device that can be placed on a [`Bus`].
///
/// `data.len()` is the access size. A string I/O instruction (`rep outsb`) arrives as one
/// access whose data holds every byte, so byte-register devices treat a longer access
/// as consecutive accesses to the same register.
pub trait BusDevice: Send {
    /// Reads `data.len()` bytes at `offset` from the device's `base`.
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` from the device's `base`.
    fn write(&mut self, base: u64, offset: u64, data: &[u8]);
}

/// Errors from building a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps one already on the bus.
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap { base: u64, len: u64 },
    /// The range is empty or wraps around the address space.
    #[error("bus range {base:#x}+{len:#x} is empty or wraps around")]
    BadRange { base: u64, len: u64 },
}

/// A shared handle on a device placed on a bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
}

/// Maps non-overlapping address ranges to devices.
#[derive(Clone, Default)]
pub struct Bus {
    // Keyed by base address; ranges never overlap, so the candidate for an address is
    // the entry with the greatest base that is <= the address.
    devices: BTreeMap<u64, Entry>,
}

impl Bus {
    /// Creates an empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `[base, base + len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        // The closest range below the new base must end before it, and the next range
        // above must start at or after the new end.
        let below = self.devices.range(..=base).next_back();
        let above = self.devices.range(base..).next();
        let overlaps_below = below.is_some_and(|(b, e)| b + e.len > base);
        let overlaps_above = above.is_some_and(|(b, _)| *b < end);
        if overlaps_below || overlaps_above {
            return Err(BusError::Overlap { base, len });
        }
        self.devices.insert(base, Entry { len, device });
        Ok(())
    }

    /// Finds the device that owns `addr`, with its base.
    fn resolve(&self, addr: u64) -> Option<(u64, &SharedDevice)> {
        let (base, entry) = self.devices.range(..=addr).next_back()?;
        (addr - base < entry.len).then_some((*base, &entry.device))
    }

    /// Forwards a read to the owning device; returns false when no device owns `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr) {
            Some((base, device)) => {
                lock(device).read(base, addr - base, data);
                true
            }
            None => false,
        }
    }

    /// Forwards a write to the owning device; returns false when no device owns `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr) {
            Some((base, device)) => {
                lock(device).write(base, addr - base, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device, recovering from a poisoned lock: a device that panicked mid-access
/// is already broken, and taking the whole VMM down with it helps nobody.
fn lock(device: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the last access and answers reads with its offset.
    #[derive(Default)]
    struct Probe {
        last: Option<(u64, u64, Vec<u8>)>,
    }

    impl BusDevice for Probe {
        fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
            self.last = Some((base, offset, data.to_vec()));
        }
    }

    fn probe() -> Arc<Mutex<Probe>> {
        Arc::new(Mutex::new(Probe::default()))
    }

    #[test]
    fn dispatches_with_offset_from_base() {
        let mut bus = Bus::new();
        let dev = probe();
        bus.insert(dev.clone(), 0x3f8, 8).unwrap();
        let mut data = [0u8; 1];
        assert!(bus.read(0x3fd, &mut data));
        assert_eq!(data, [5]);
        assert!(bus.write(0x3f8, b"xy"));
        assert_eq!(dev.lock().unwrap().last, Some((0x3f8, 0, vec![b'x', b'y'])));
    }

    #[test]
    fn addresses_outside_every_range_are_unclaimed() {
        let mut bus = Bus::new();
        bus.insert(probe(), 0x60, 5).unwrap();
        let mut data = [0u8; 1];
        assert!(!bus.read(0x5f, &mut data));
        assert!(!bus.read(0x65, &mut data));
        assert!(!bus.write(0x1000, &data));
        assert!(bus.read(0x64, &mut data));
    }

    #[test]
    fn rejects_overlaps_and_bad_ranges() {
        let mut bus = Bus::new();
        bus.insert(probe(), 0x100, 0x10).unwrap();
        for (base, len) in [(0x100, 1), (0xf8, 0x10), (0x10f, 4), (0xf0, 0x100)] {
            assert_eq!(
                bus.insert(probe(), base, len),
                Err(BusError::Overlap { base, len })
            );
        }
        // Touching ranges are fine.
        bus.insert(probe(), 0xf0, 0x10).unwrap();
        bus.insert(probe(), 0x110, 0x10).unwrap();
        assert_eq!(
            bus.insert(probe(), 0x200, 0),
            Err(BusError::BadRange {
                base: 0x200,
                len: 0
            })
        );
        assert_eq!(
            bus.insert(probe(), u64::MAX, 2),
            Err(BusError::BadRange {
                base: u64::MAX,
                len: 2
            })
        );
    }

    #[test]
    fn a_poisoned_device_still_answers() {
        let mut bus = Bus::new();
        let dev = probe();
        bus.insert(dev.clone(), 0, 4).unwrap();
        let d2 = dev.clone();
        let _ = std::thread::spawn(move || {
            let _guard = d2.lock().unwrap();
            panic!("device bug");
        })
        .join();
        let mut data = [0u8; 2];
        assert!(bus.read(2, &mut data));
        assert_eq!(data, [2, 2]);
    }
}

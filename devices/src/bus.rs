//! Port I/O and MMIO buses: address ranges mapped to devices.
//!
//! The vCPU loop never hard-codes a port range; it hands every `KVM_EXIT_IO` and
//! `KVM_EXIT_MMIO` to a bus, which finds the device owning the address and calls it
//! with the offset from the device's base. One bus is built per address space at VM
//! set-up and then shared read-only by all vCPU threads; each device has its own lock.
//!
//! Port I/O is byte-addressed, as on a PC's ISA bus: a 2- or 4-byte `in`/`out` to port
//! P touches ports P, P+1, ... one byte each, so [`Bus::pio_read`] and
//! [`Bus::pio_write`] split such an access into byte accesses, each sent to whichever
//! device decodes that port, and bytes no device decodes are dropped (writes) or float
//! high (reads). MMIO accesses ([`Bus::read`], [`Bus::write`]) stay whole: a virtio-mmio
//! register is 32 bits wide (virtio 1.2, 4.2.2).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device that can be placed on a [`Bus`].
///
/// `data.len()` is the access size. On the port bus every access is one byte wide
/// except a byte-wide string instruction (`rep outsb`, `rep insb`), which arrives as one
/// access whose data holds every byte: byte-register devices treat a longer access as
/// consecutive accesses to the same register.
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

/// Value unclaimed ports and MMIO read as: an undriven ISA bus floats high.
pub const UNCLAIMED_READ: u8 = 0xff;

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

    /// An `in` of `data.len() / width` accesses of `width` bytes at `port` (`width` is
    /// 1, 2 or 4; more than one access is a string instruction, `rep ins*`).
    ///
    /// Byte *i* of each access comes from port `port + i`; bytes no device decodes
    /// read as [`UNCLAIMED_READ`]. A byte-wide string read goes to its device as one
    /// access, as the [`BusDevice`] contract says.
    pub fn pio_read(&self, port: u16, width: usize, data: &mut [u8]) {
        let port = u64::from(port);
        if width <= 1 {
            if !self.read(port, data) {
                data.fill(UNCLAIMED_READ);
            }
            return;
        }
        for access in data.chunks_mut(width) {
            for (i, byte) in access.iter_mut().enumerate() {
                if !self.read(port + i as u64, std::slice::from_mut(byte)) {
                    *byte = UNCLAIMED_READ;
                }
            }
        }
    }

    /// An `out` of `data.len() / width` accesses of `width` bytes at `port`; the
    /// counterpart of [`Bus::pio_read`]. Byte *i* of each access goes to port
    /// `port + i`, and bytes no device decodes are dropped, as on the ISA bus: a
    /// 16-bit write of 0xfe87 to the i8042's command port 0x64 writes 0x87 there and
    /// 0xfe to 0x65, which nothing decodes, so it does not reset the machine.
    pub fn pio_write(&self, port: u16, width: usize, data: &[u8]) {
        let port = u64::from(port);
        if width <= 1 {
            self.write(port, data);
            return;
        }
        for access in data.chunks(width) {
            for (i, byte) in access.iter().enumerate() {
                self.write(port + i as u64, std::slice::from_ref(byte));
            }
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
    fn a_wide_port_write_goes_byte_by_byte_to_consecutive_ports() {
        use crate::i8042::{I8042, I8042_BASE, I8042_LEN};
        use crate::EventFdTrigger;
        let reset = EventFdTrigger::new().unwrap();
        let reset_wait = reset.try_clone().unwrap();
        let mut bus = Bus::new();
        bus.insert(
            Arc::new(Mutex::new(I8042::new(reset))),
            I8042_BASE,
            I8042_LEN,
        )
        .unwrap();
        // outw 0xfe87 to 0x64: 0x87 reaches the command port, 0xfe goes to 0x65,
        // which nothing decodes.
        bus.pio_write(0x64, 2, &0xfe87u16.to_le_bytes());
        assert!(reset_wait.read().is_err(), "a 16-bit write reset the VM");
        // The byte-wide reset command still works.
        bus.pio_write(0x64, 1, &[0xfe]);
        assert_eq!(reset_wait.read().unwrap(), 1);
    }

    #[test]
    fn a_wide_write_to_the_uart_fills_thr_then_ier() {
        use crate::serial::{SerialDevice, SerialOut, COM1_BASE, COM1_LEN};
        use crate::EventFdTrigger;
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let uart = SerialDevice::new(
            EventFdTrigger::new().unwrap(),
            SerialOut::new(Box::new(sink.clone())),
            None,
        );
        let mut bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(uart)), COM1_BASE, COM1_LEN)
            .unwrap();
        // outw 0x0141 to 0x3f8: 'A' into THR (0x3f8), 0x01 into IER (0x3f9).
        bus.pio_write(0x3f8, 2, &0x0141u16.to_le_bytes());
        assert_eq!(*sink.0.lock().unwrap(), b"A");
        let mut ier = [0u8];
        bus.pio_read(0x3f9, 1, &mut ier);
        assert_eq!(ier, [0x01]);
        // A byte-wide string write stays on one register: every byte is output.
        bus.pio_write(0x3f8, 1, b"bcd");
        assert_eq!(*sink.0.lock().unwrap(), b"Abcd");
    }

    #[test]
    fn a_wide_read_past_a_device_floats_high_for_unclaimed_ports() {
        let mut bus = Bus::new();
        bus.insert(probe(), 0x60, 5).unwrap();
        let mut data = [0u8; 4];
        // Ports 0x63 and 0x64 are the probe's (it answers with the offset); 0x65 and
        // 0x66 are nobody's.
        bus.pio_read(0x63, 4, &mut data);
        assert_eq!(data, [3, 4, UNCLAIMED_READ, UNCLAIMED_READ]);
        // A string read of two 16-bit accesses repeats the pattern per access.
        let mut data = [0u8; 4];
        bus.pio_read(0x64, 2, &mut data);
        assert_eq!(data, [4, UNCLAIMED_READ, 4, UNCLAIMED_READ]);
        let mut data = [0u8; 2];
        bus.pio_read(0x80, 1, &mut data);
        assert_eq!(data, [UNCLAIMED_READ; 2]);
    }

    #[test]
    fn a_wide_write_spanning_two_devices_reaches_both() {
        let mut bus = Bus::new();
        let (low, high) = (probe(), probe());
        bus.insert(low.clone(), 0x70, 2).unwrap();
        bus.insert(high.clone(), 0x72, 2).unwrap();
        bus.pio_write(0x71, 2, &[0xaa, 0xbb]);
        assert_eq!(low.lock().unwrap().last, Some((0x70, 1, vec![0xaa])));
        assert_eq!(high.lock().unwrap().last, Some((0x72, 0, vec![0xbb])));
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

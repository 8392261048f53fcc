//! Just enough of the i8042 keyboard controller for a guest to reset the machine.
//!
//! Linux with `reboot=k` (and our test kernel) ends a run by writing the "pulse reset
//! line" command 0xFE to the command port 0x64. vm-superio's `I8042Device` turns that
//! into an event on the reset line, which the VMM's event loop treats as the end of
//! the VM. Every other access reads as 0 and is ignored.

use vm_superio::I8042Device;

use crate::bus::BusDevice;
use crate::EventFdTrigger;

/// First port of the controller (data port 0x60; the command port is base + 4).
pub const I8042_BASE: u64 = 0x60;
/// Ports decoded: 0x60 to 0x64.
pub const I8042_LEN: u64 = 5;

/// The i8042 on the port bus.
pub struct I8042 {
    inner: I8042Device<EventFdTrigger>,
}

impl I8042 {
    /// Creates the controller; `reset` is triggered when the guest asks for a reset.
    pub fn new(reset: EventFdTrigger) -> Self {
        Self {
            inner: I8042Device::new(reset),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        for byte in data.iter_mut() {
            *byte = self.inner.read(offset as u8);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        for byte in data {
            if let Err(e) = self.inner.write(offset as u8, *byte) {
                log::error!("i8042 could not signal the reset: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i8042() -> (I8042, EventFdTrigger) {
        let reset = EventFdTrigger::new().unwrap();
        let wait = reset.try_clone().unwrap();
        (I8042::new(reset), wait)
    }

    #[test]
    fn command_0xfe_on_port_0x64_resets() {
        let (mut dev, reset) = i8042();
        dev.write(I8042_BASE, 4, &[0xfe]);
        assert_eq!(reset.read().unwrap(), 1);
    }

    #[test]
    fn other_writes_do_not_reset() {
        let (mut dev, reset) = i8042();
        dev.write(I8042_BASE, 0, &[0xfe]); // data port, not the command port
        dev.write(I8042_BASE, 4, &[0xd1]); // "write output port"
        assert!(reset.read().is_err());
        let mut b = [0xaa];
        dev.read(I8042_BASE, 4, &mut b);
        assert_eq!(b, [0]);
    }
}

//! The port devices: COM1 (8250 UART at 0x3f8, IRQ 4) with its batched output and
//! flush timer, and the i8042 whose reset line ends the VM.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::bus::Bus;
use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use devices::serial::{SerialDevice, SerialOut, COM1_BASE, COM1_IRQ, COM1_LEN};
use devices::EventFdTrigger;
use kvm_ioctls::VmFd;
use sandbox::{FdRole, RuntimeFacts};

use super::{eventfd, BuildError};
use crate::config::SerialTarget;
use crate::serial_flush::{SerialFlush, StdoutSink};

/// The port devices: COM1 and the i8042.
pub(super) struct PortDevices {
    pub bus: Bus,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub serial_room: EventFdTrigger,
    /// COM1's flush timer; None when its output is discarded.
    pub serial_flush: Option<SerialFlush>,
    pub reset: EventFdTrigger,
}

pub(super) fn build(
    vm: &VmFd,
    target: &SerialTarget,
    facts: &mut RuntimeFacts,
) -> Result<PortDevices, BuildError> {
    let out = match target {
        SerialTarget::Stdio => {
            facts.add(FdRole::Console, libc::STDOUT_FILENO);
            SerialOut::new(Box::new(StdoutSink))
        }
        SerialTarget::File { path, max } => {
            let file = File::create(path).map_err(|source| BuildError::SerialFile {
                path: path.display().to_string(),
                source,
            })?;
            facts.add(FdRole::Console, file.as_raw_fd());
            SerialOut::with_limit(Box::new(file), *max)
        }
        SerialTarget::None => SerialOut::discard(),
    };
    let irq = eventfd()?;
    vm.register_irqfd(&irq, COM1_IRQ)
        .map_err(|e| BuildError::Kvm("register the serial irqfd", e))?;
    facts.add(FdRole::Irq, irq.as_raw_fd());
    let room = eventfd()?;
    facts.add(FdRole::Event, room.as_raw_fd());
    // Output is batched, with the VMM thread's timer, unless it goes nowhere.
    let kick = match target {
        SerialTarget::None => None,
        _ => Some(eventfd()?),
    };
    let out = match &kick {
        Some(kick) => {
            facts.add(FdRole::Event, kick.as_raw_fd());
            out.batched(kick.clone())
        }
        None => out,
    };
    let serial = Arc::new(Mutex::new(SerialDevice::new(irq, out, Some(room.clone()))));
    let serial_flush = kick
        .map(|kick| SerialFlush::new(serial.clone(), kick))
        .transpose()
        .map_err(BuildError::FlushTimer)?;
    if let Some(flush) = &serial_flush {
        facts.add(FdRole::Timer, flush.timer_fd());
    }

    let reset = eventfd()?;
    facts.add(FdRole::Event, reset.as_raw_fd());
    let i8042 = I8042::new(reset.clone());

    let mut bus = Bus::new();
    bus.insert(serial.clone(), COM1_BASE, COM1_LEN)?;
    bus.insert(Arc::new(Mutex::new(i8042)), I8042_BASE, I8042_LEN)?;
    Ok(PortDevices {
        bus,
        serial,
        serial_room: room,
        serial_flush,
        reset,
    })
}

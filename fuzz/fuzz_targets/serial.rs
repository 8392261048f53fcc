//! The COM1 UART (devices::serial::SerialDevice on vm-superio) and the i8042 on the
//! port bus, as a guest drives them: byte and string (`rep insb`/`rep outsb`) accesses
//! to every register, DLAB and loopback included, with host input arriving at any
//! time. Nothing may panic, and the host input queue must drain through the FIFO.

#![no_main]

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use devices::bus::Bus;
use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use devices::serial::{SerialDevice, SerialOut, COM1_BASE, COM1_LEN};
use devices::EventFdTrigger;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Counts output bytes; fails on request, like a closed pipe.
struct Sink {
    bytes: Arc<Mutex<usize>>,
    fail: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        *self.bytes.lock().unwrap() += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// `inb` (or `rep insb` of `count` bytes) from COM1 + `reg % 8`.
    Read {
        reg: u8,
        count: u8,
    },
    /// `outb` of each byte (one access) to COM1 + `reg % 8`.
    Write {
        reg: u8,
        data: Vec<u8>,
    },
    /// Host input typed on the console.
    Input(Vec<u8>),
    /// A burst of host input (60-75 KiB) large enough to pause the reader.
    Flood {
        kib: u8,
        byte: u8,
    },
    /// The event loop asks whether to read more input.
    WantsInput,
    /// An access to the i8042 (ports 0x60-0x64); 0xfe to 0x64 is the reset.
    KbdRead {
        port: u8,
    },
    KbdWrite {
        port: u8,
        value: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    failing_sink: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let irq = EventFdTrigger::new().unwrap();
    let room = EventFdTrigger::new().unwrap();
    let reset = EventFdTrigger::new().unwrap();
    let out = SerialOut::new(Box::new(Sink {
        bytes: Arc::new(Mutex::new(0)),
        fail: input.failing_sink,
    }));
    let serial = Arc::new(Mutex::new(SerialDevice::new(
        irq.try_clone().unwrap(),
        out,
        Some(room.try_clone().unwrap()),
    )));
    let mut bus = Bus::new();
    bus.insert(serial.clone(), COM1_BASE, COM1_LEN).unwrap();
    bus.insert(
        Arc::new(Mutex::new(I8042::new(reset.try_clone().unwrap()))),
        I8042_BASE,
        I8042_LEN,
    )
    .unwrap();

    let mut flooded = false;
    for op in input.ops {
        match op {
            Op::Read { reg, count } => {
                let mut data = vec![0u8; usize::from(count % 32).max(1)];
                assert!(bus.read(COM1_BASE + u64::from(reg % 8), &mut data));
            }
            Op::Write { reg, data } => {
                if !data.is_empty() {
                    assert!(bus.write(COM1_BASE + u64::from(reg % 8), &data));
                }
            }
            Op::Input(bytes) => serial.lock().unwrap().queue_input(&bytes),
            Op::Flood { kib, byte } => {
                // Past the 64 KiB pause mark, once per run: every queued byte costs
                // instrumented work, and one flood is enough to pause and resume.
                if !flooded {
                    flooded = true;
                    serial
                        .lock()
                        .unwrap()
                        .queue_input(&vec![byte; (60 + usize::from(kib % 16)) * 1024]);
                }
            }
            Op::WantsInput => {
                serial.lock().unwrap().wants_input();
            }
            Op::KbdRead { port } => {
                let mut b = [0u8];
                assert!(bus.read(I8042_BASE + u64::from(port) % I8042_LEN, &mut b));
            }
            Op::KbdWrite { port, value } => {
                assert!(bus.write(I8042_BASE + u64::from(port) % I8042_LEN, &[value]));
            }
        }
        let _ = irq.read();
        let _ = room.read();
        let _ = reset.read();
    }

    // Whatever the guest did to the UART, a driver that restores 8N1 with DLAB off and
    // loopback off can drain every byte of queued input through RBR.
    let mut dev = serial.lock().unwrap();
    let pending = dev.pending_input();
    dev_write(&mut dev, 3, 0x03); // LCR: 8N1, DLAB off
    dev_write(&mut dev, 1, 0x00); // IER: polled, no interrupt per byte
    dev_write(&mut dev, 4, 0x00); // MCR: loopback off
                                  // 64-byte reads (`rep insb`) empty the whole FIFO, which then refills from the queue.
    let mut rounds = 0usize;
    while dev_read(&mut dev, 5) & 1 != 0 {
        let mut fifo = [0u8; 64];
        devices::bus::BusDevice::read(&mut *dev, COM1_BASE, 0, &mut fifo);
        rounds += 1;
        assert!(rounds <= pending / 64 + 2, "the receive FIFO never empties");
    }
    assert_eq!(dev.pending_input(), 0, "queued input stuck behind the FIFO");
});

fn dev_read(dev: &mut SerialDevice, reg: u64) -> u8 {
    use devices::bus::BusDevice;
    let mut b = [0u8];
    dev.read(COM1_BASE, reg, &mut b);
    b[0]
}

fn dev_write(dev: &mut SerialDevice, reg: u64, value: u8) {
    use devices::bus::BusDevice;
    dev.write(COM1_BASE, reg, &[value]);
}

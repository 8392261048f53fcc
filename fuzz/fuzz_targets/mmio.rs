//! The virtio-mmio register interface of a virtio-net device, as a guest driver sees
//! it: reads and writes of any size at any offset in the 4 KiB window, interleaved
//! with guest memory writes (rings and descriptors), frames arriving on the tap, queue
//! kicks and the VMM thread's activation handling. The transport must never panic
//! and must keep answering the identification registers.

#![no_main]

use devices::bus::BusDevice;
use devices::virtio::mmio::MMIO_WINDOW;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sandvmm_fuzz::{Inbound, NetRig};

const BASE: u64 = 0xd000_0000;

/// Registers a driver writes during set-up; `Reg` picks one so the fuzzer reaches
/// queue set-up and DRIVER_OK without guessing offsets.
const REGS: [u64; 16] = [
    0x14, 0x20, 0x24, 0x30, 0x38, 0x44, 0x50, 0x64, 0x70, 0x80, 0x84, 0x90, 0x94, 0xa0, 0xa4, 0x100,
];

#[derive(Arbitrary, Debug)]
enum Op {
    /// A load of `size` (1..=8) bytes at `offset` in the window.
    Read { offset: u16, size: u8 },
    /// A store of the low `size` (1..=8) bytes of `value` at `offset`.
    Write { offset: u16, size: u8, value: u64 },
    /// A 32-bit store to a known register (small values, for addresses in RAM).
    Reg { reg: u8, value: u16 },
    /// A 32-bit store of any value to a known register.
    RegWide { reg: u8, value: u32 },
    /// The status dance of a well-behaved driver, up to FEATURES_OK, with `features`.
    Negotiate { features: u64 },
    /// The driver writes guest memory (rings, descriptors, buffers).
    Mem { addr: u16, bytes: Vec<u8> },
    /// A frame (`len` bytes of `fill`, with a plausible vnet header) on the tap.
    Frame { len: u16, fill: u8 },
    /// The tap fails its next read.
    ReadError { interrupted: bool },
    /// The tap fails writes (a full queue) or refuses offloads.
    TapFails { writes: bool, offload: bool },
    /// QueueNotify as a KVM ioeventfd sees it (0 = RX, 1 = TX, else the transport).
    Kick { queue: u32 },
    /// The tap became readable.
    Readable,
    /// The event loop handles the activation event, if there is one.
    Activated,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut rig = NetRig::new();
    for op in ops {
        match op {
            Op::Read { offset, size } => {
                let mut data = vec![0u8; usize::from(size % 8) + 1];
                rig.transport
                    .read(BASE, u64::from(offset) % MMIO_WINDOW, &mut data);
            }
            Op::Write {
                offset,
                size,
                value,
            } => {
                let len = usize::from(size % 8) + 1;
                let offset = u64::from(offset) % MMIO_WINDOW;
                if offset == 0x50 && len == 4 && value as u32 <= 1 {
                    rig.notify(value as u32);
                } else {
                    rig.transport
                        .write(BASE, offset, &value.to_le_bytes()[..len]);
                }
            }
            Op::Reg { reg, value } => write_reg(&mut rig, reg, u32::from(value)),
            Op::RegWide { reg, value } => write_reg(&mut rig, reg, value),
            Op::Negotiate { features } => {
                for (reg, v) in [
                    (0x70, 1),
                    (0x70, 3),
                    (0x24, 0),
                    (0x20, features as u32),
                    (0x24, 1),
                    (0x20, (features >> 32) as u32),
                    (0x70, 11),
                ] {
                    rig.transport.write(BASE, reg, &u32::to_le_bytes(v));
                }
            }
            Op::Mem { addr, bytes } => rig.poke(u32::from(addr), &bytes),
            Op::Frame { len, fill } => rig.push_frame(len, fill),
            Op::ReadError { interrupted } => rig.tap.push(Inbound::Error(if interrupted {
                std::io::ErrorKind::Interrupted
            } else {
                std::io::ErrorKind::Other
            })),
            Op::TapFails { writes, offload } => {
                let mut s = rig.tap.0.lock().unwrap();
                s.fail_writes = writes;
                s.fail_offload = offload;
            }
            Op::Kick { queue } => rig.notify(queue),
            Op::Readable => rig.transport.device_mut().on_backend_readable(),
            Op::Activated => rig.run_activation_event(),
        }
        rig.drain_irq();
        // Identification never changes, whatever the driver did.
        let mut magic = [0u8; 4];
        rig.transport.read(BASE, 0, &mut magic);
        assert_eq!(&magic, b"virt");
    }
});

fn write_reg(rig: &mut NetRig, reg: u8, value: u32) {
    let offset = REGS[usize::from(reg) % REGS.len()];
    if offset == 0x50 && value <= 1 {
        rig.notify(value);
    } else {
        rig.transport.write(BASE, offset, &value.to_le_bytes());
    }
}

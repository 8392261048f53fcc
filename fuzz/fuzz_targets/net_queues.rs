//! virtio-net RX and TX over guest memory with arbitrary descriptor tables: a device
//! brought up through its transport with queues wherever the input puts them, then
//! descriptors, available-ring entries, raw memory and tap frames from the input, and
//! RX/TX kicks. Every chain must be used or dropped without a panic, and nothing the
//! device sends may exceed the largest frame (checked by the fake tap).

#![no_main]

use devices::bus::BusDevice;
use devices::virtio::status;
use devices::virtio::{VirtioDevice, VIRTIO_F_VERSION_1};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sandvmm_fuzz::{Inbound, NetRig, RAM};
use vm_memory::{Bytes, GuestAddress};

const BASE: u64 = 0xd000_0000;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct QueueSetup {
    /// Queue size 2^(n % 9): 1 to 256.
    size_log2: u8,
    desc: u16,
    avail: u16,
    used: u16,
}

/// A buffer address: mostly inside the small RAM, sometimes anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    Low(u16),
    Page(u16),
    Any(u64),
}

impl Addr {
    fn get(self) -> u64 {
        match self {
            Addr::Low(a) => u64::from(a),
            Addr::Page(a) => RAM[1].0 + u64::from(a) % 0x1100,
            Addr::Any(a) => a,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Writes descriptor `index` (taken modulo the queue size) of a queue.
    Desc {
        tx: bool,
        index: u16,
        addr: Addr,
        len: u32,
        flags: u16,
        next: u16,
    },
    /// Makes descriptor `head` available and publishes it (avail->idx + 1).
    Avail {
        tx: bool,
        head: u16,
    },
    /// Sets avail->idx to anything (a driver lying about what it added).
    AvailIdx {
        tx: bool,
        idx: u16,
    },
    /// Sets avail->flags / used->flags-like words anywhere: raw guest memory.
    Mem {
        addr: u16,
        bytes: Vec<u8>,
    },
    /// A frame of `len` bytes of `fill` (vnet header zero) on the tap.
    Frame {
        len: u16,
        fill: u8,
    },
    /// A frame given byte for byte.
    RawFrame(Vec<u8>),
    /// The tap's next read fails.
    ReadError {
        interrupted: bool,
    },
    /// The tap starts or stops refusing writes / offloads.
    TapFails {
        writes: bool,
        offload: bool,
    },
    RxKick,
    TxKick,
    Readable,
    Activated,
    /// The driver resets the device and brings it up again with the same queues.
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    features: u64,
    rx: QueueSetup,
    tx: QueueSetup,
    ops: Vec<Op>,
}

struct Layout {
    size: u16,
    desc: u64,
    avail: u64,
}

fn layout(q: QueueSetup) -> Layout {
    Layout {
        size: 1 << (q.size_log2 % 9),
        desc: u64::from(q.desc) & !0xf,
        avail: u64::from(q.avail) & !1,
    }
}

fn write32(rig: &mut NetRig, offset: u64, value: u32) {
    rig.transport.write(BASE, offset, &value.to_le_bytes());
}

/// The bring-up of virtio 1.2, 3.1.1, with the input's features and queues.
fn bring_up(rig: &mut NetRig, input: &Input) {
    // What the device itself offers, so the fuzzer follows any change to it.
    let offered = rig.transport.device().features();
    let acked = (input.features & offered) | VIRTIO_F_VERSION_1;
    write32(rig, 0x70, 0);
    write32(rig, 0x70, status::ACKNOWLEDGE);
    write32(rig, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    write32(rig, 0x24, 0);
    write32(rig, 0x20, acked as u32);
    write32(rig, 0x24, 1);
    write32(rig, 0x20, (acked >> 32) as u32);
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write32(rig, 0x70, s);
    for (index, q) in [input.rx, input.tx].into_iter().enumerate() {
        let l = layout(q);
        write32(rig, 0x30, index as u32);
        write32(rig, 0x38, u32::from(l.size));
        write32(rig, 0x80, l.desc as u32);
        write32(rig, 0x84, 0);
        write32(rig, 0x90, l.avail as u32);
        write32(rig, 0x94, 0);
        write32(rig, 0xa0, u32::from(q.used) & !3);
        write32(rig, 0xa4, 0);
        write32(rig, 0x44, 1);
    }
    write32(rig, 0x70, s | status::DRIVER_OK);
    rig.run_activation_event();
}

fuzz_target!(|input: Input| {
    let mut rig = NetRig::new();
    bring_up(&mut rig, &input);
    let queues = [layout(input.rx), layout(input.tx)];
    let mut avail_idx = [0u16; 2];
    for op in &input.ops {
        match *op {
            Op::Desc {
                tx,
                index,
                addr,
                len,
                flags,
                next,
            } => {
                let q = &queues[usize::from(tx)];
                let at = q.desc + 16 * u64::from(index % q.size);
                let mut d = [0u8; 16];
                d[0..8].copy_from_slice(&addr.get().to_le_bytes());
                d[8..12].copy_from_slice(&len.to_le_bytes());
                d[12..14].copy_from_slice(&flags.to_le_bytes());
                d[14..16].copy_from_slice(&next.to_le_bytes());
                let _ = rig.mem.write_slice(&d, GuestAddress(at));
            }
            Op::Avail { tx, head } => {
                let i = usize::from(tx);
                let q = &queues[i];
                let slot = q.avail + 4 + 2 * u64::from(avail_idx[i] % q.size);
                let _ = rig.mem.write_obj(head, GuestAddress(slot));
                avail_idx[i] = avail_idx[i].wrapping_add(1);
                let _ = rig.mem.write_obj(avail_idx[i], GuestAddress(q.avail + 2));
            }
            Op::AvailIdx { tx, idx } => {
                let i = usize::from(tx);
                avail_idx[i] = idx;
                let _ = rig.mem.write_obj(idx, GuestAddress(queues[i].avail + 2));
            }
            Op::Mem { addr, ref bytes } => rig.poke(u32::from(addr), bytes),
            Op::Frame { len, fill } => rig.push_frame(len, fill),
            Op::RawFrame(ref f) => rig.tap.push(Inbound::Frame(f.clone())),
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
            Op::RxKick => rig.notify(0),
            Op::TxKick => rig.notify(1),
            Op::Readable => rig.transport.device_mut().on_backend_readable(),
            Op::Activated => rig.run_activation_event(),
            Op::Reset => {
                // A driver starts again with empty rings.
                avail_idx = [0; 2];
                for q in &queues {
                    let _ = rig.mem.write_obj(0u16, GuestAddress(q.avail + 2));
                }
                bring_up(&mut rig, &input);
            }
        }
        rig.drain_irq();
    }
});

//! virtio-net RX and TX over guest memory with arbitrary descriptor tables: a device
//! brought up through its transport with queues wherever the input puts them, then
//! descriptors, available-ring entries, raw memory and tap frames from the input, and
//! RX/TX kicks. Every chain must be used or dropped without a panic, and nothing the
//! device sends may exceed the largest frame (checked by the fake tap).

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sandvmm_fuzz::driver::{bring_up, Layout, QueueSetup};
use sandvmm_fuzz::{Inbound, NetRig, RAM};
use vm_memory::{Bytes, GuestAddress};

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

/// Brings the device up with the input's features and queues, and activates it.
fn start(rig: &mut NetRig, input: &Input) {
    bring_up(&mut rig.transport, input.features, &[input.rx, input.tx]);
    rig.run_activation_event();
}

fuzz_target!(|input: Input| {
    let mut rig = NetRig::new();
    start(&mut rig, &input);
    let queues = [Layout::of(input.rx), Layout::of(input.tx)];
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
                queues[usize::from(tx)].write_desc(&rig.mem, index, addr.get(), len, flags, next);
            }
            Op::Avail { tx, head } => {
                let i = usize::from(tx);
                queues[i].publish(&rig.mem, &mut avail_idx[i], head);
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
                start(&mut rig, &input);
            }
        }
        rig.drain_irq();
    }
});

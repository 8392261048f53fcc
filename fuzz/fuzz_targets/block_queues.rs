//! virtio-blk requests over guest memory with arbitrary descriptor tables: a device
//! over an in-memory disk (read-only or not, 1-256 sectors) brought up through its
//! transport with its queue wherever the input puts it, then raw descriptors, whole
//! request chains (a header, data, a status byte, each part's address, length and
//! direction from the input), available-ring entries, raw memory, disk failures,
//! kicks, activation and resets. Every chain must be used or dropped without a panic;
//! the in-memory disk panics on any transfer the device should have refused (past the
//! end, over the request cap, a write to a read-only disk).

#![no_main]

use devices::bus::BusDevice;
use devices::virtio::block::request_type;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sandvmm_fuzz::driver::{bring_up, Layout, QueueSetup, BASE};
use sandvmm_fuzz::{BlockRig, RAM};
use vm_memory::{Bytes, GuestAddress};

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

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

/// A buffer length: mostly whole sectors, sometimes anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Sectors(u8),
    Small(u16),
    Any(u32),
}

impl Len {
    fn get(self) -> u32 {
        match self {
            Len::Sectors(n) => u32::from(n % 17) * 512,
            Len::Small(n) => u32::from(n),
            Len::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Type {
    In,
    Out,
    Flush,
    GetId,
    Other(u32),
}

impl Type {
    fn get(self) -> u32 {
        match self {
            Type::In => request_type::IN,
            Type::Out => request_type::OUT,
            Type::Flush => request_type::FLUSH,
            Type::GetId => request_type::GET_ID,
            Type::Other(t) => t,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Writes descriptor `index` (taken modulo the queue size).
    Desc {
        index: u16,
        addr: Addr,
        len: u32,
        flags: u16,
        next: u16,
    },
    /// A request in consecutive descriptors from `head`: header, data, status, with
    /// the data's direction from the type unless `flip`, then made available.
    Chain {
        head: u16,
        header: Addr,
        request: Type,
        /// Sector near the disk (small) or anywhere.
        sector: u64,
        near: bool,
        data: Vec<(Addr, Len)>,
        flip: bool,
        status: Addr,
        status_flags: u16,
    },
    /// Makes descriptor `head` available and publishes it (avail->idx + 1).
    Avail {
        head: u16,
    },
    /// Sets avail->idx to anything (a driver lying about what it added).
    AvailIdx {
        idx: u16,
    },
    /// Raw guest memory.
    Mem {
        addr: u16,
        bytes: Vec<u8>,
    },
    /// The disk starts or stops failing reads, writes, flushes.
    DiskFails {
        reads: bool,
        writes: bool,
        flush: bool,
    },
    Kick,
    /// A QueueNotify naming another queue, which reaches the transport.
    KickOther(u32),
    Activated,
    /// The driver resets the device and brings it up again with the same queue.
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    features: u64,
    read_only: bool,
    sectors: u8,
    queue: QueueSetup,
    ops: Vec<Op>,
}

/// Brings the device up with the input's features and queue, and activates it.
fn start(rig: &mut BlockRig, input: &Input) {
    bring_up(&mut rig.transport, input.features, &[input.queue]);
    rig.run_activation_event();
}

fuzz_target!(|input: Input| {
    let sectors = u64::from(input.sectors) + 1;
    let mut rig = BlockRig::new(sectors, input.read_only);
    start(&mut rig, &input);
    let q = Layout::of(input.queue);
    let mut avail_idx = 0u16;
    for op in &input.ops {
        match *op {
            Op::Desc {
                index,
                addr,
                len,
                flags,
                next,
            } => q.write_desc(&rig.mem, index, addr.get(), len, flags, next),
            Op::Chain {
                head,
                header,
                request,
                sector,
                near,
                ref data,
                flip,
                status,
                status_flags,
            } => {
                let sector = if near { sector % (sectors + 2) } else { sector };
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&request.get().to_le_bytes());
                h[8..16].copy_from_slice(&sector.to_le_bytes());
                let _ = rig.mem.write_slice(&h, GuestAddress(header.get()));
                let writable = matches!(request, Type::In | Type::GetId) != flip;
                let data_flags = if writable { F_WRITE } else { 0 };
                let n = data.len() as u16 + 2;
                let at = |i: u16| head.wrapping_add(i) % q.size;
                q.write_desc(&rig.mem, at(0), header.get(), 16, F_NEXT, at(1));
                for (i, &(addr, len)) in data.iter().enumerate() {
                    let i = i as u16 + 1;
                    let flags = data_flags | F_NEXT;
                    q.write_desc(&rig.mem, at(i), addr.get(), len.get(), flags, at(i + 1));
                }
                q.write_desc(
                    &rig.mem,
                    at(n - 1),
                    status.get(),
                    1,
                    status_flags & !F_NEXT,
                    0,
                );
                q.publish(&rig.mem, &mut avail_idx, at(0));
            }
            Op::Avail { head } => q.publish(&rig.mem, &mut avail_idx, head),
            Op::AvailIdx { idx } => {
                avail_idx = idx;
                let _ = rig.mem.write_obj(idx, GuestAddress(q.avail + 2));
            }
            Op::Mem { addr, ref bytes } => rig.poke(u32::from(addr), bytes),
            Op::DiskFails {
                reads,
                writes,
                flush,
            } => {
                let mut s = rig.disk.state();
                s.fail_reads = reads;
                s.fail_writes = writes;
                s.fail_flush = flush;
            }
            Op::Kick => rig.notify(0),
            Op::KickOther(queue) => rig.notify(queue | 1),
            Op::Activated => rig.run_activation_event(),
            Op::Reset => {
                // A driver starts again with empty rings.
                avail_idx = 0;
                let _ = rig.mem.write_obj(0u16, GuestAddress(q.avail + 2));
                start(&mut rig, &input);
            }
        }
        rig.drain_irq();
    }
    // Failed requests are among the answered ones; the transport still answers.
    let c = rig.transport.device().counters();
    assert!(c.errors <= c.requests);
    let mut magic = [0u8; 4];
    rig.transport.read(BASE, 0, &mut magic);
    assert_eq!(&magic, b"virt");
});

//! Unit tests of virtio-mmio snapshots: a block and a net device are brought up
//! through the registers as a driver would, do some work, and are snapshotted, sent
//! through serde_json and restored onto fresh devices, which must carry on from the
//! same queue positions; then every check on untrusted state, and many mutated
//! states that must never make the transport or the device panic.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::virtio::block::{self, test_utils::MemDisk, Block};
use crate::virtio::mmio::tests::{negotiate, program_queue, r32, w32, ALL_UP};
use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::{self, MacAddr, Net, NetBackend};
use crate::virtio::Interrupt;
use crate::EventFdTrigger;

const MEM_SIZE: usize = 0x40_0000;
const RINGS: [u64; 2] = [0x1_0000, 0x2_0000];
const HEADERS: u64 = 0x3_0000;
const STATUS: u64 = 0x4_0000;
const DATA: u64 = 0x10_0000;
/// The size the driver picks, below the devices' maximum of 256.
const SIZE: u16 = 16;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const MAC: MacAddr = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// The driver's side of one queue: where its rings are, and the next free descriptor.
struct Ring {
    mem: GuestMemoryMmap,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
}

impl Ring {
    /// Lays out queue `index`'s rings and programs them into the transport.
    fn set_up<D: VirtioDevice>(
        t: &mut MmioTransport<D>,
        mem: &GuestMemoryMmap,
        index: usize,
    ) -> Ring {
        let mock = MockSplitQueue::create(mem, GuestAddress(RINGS[index]), SIZE);
        program_queue(t, index as u32, SIZE, &mock);
        Ring {
            mem: mem.clone(),
            desc: mock.desc_table_addr().0,
            avail: mock.avail_addr().0,
            used: mock.used_addr().0,
            next_desc: 0,
        }
    }

    /// Makes a chain of (addr, len, flags) available; returns its head.
    fn post(&mut self, parts: &[(u64, u32, u16)]) -> u16 {
        let first = self.next_desc;
        for (i, &(addr, len, flags)) in parts.iter().enumerate() {
            let index = first + i as u16;
            let last = i + 1 == parts.len();
            let flags = if last { flags } else { flags | F_NEXT };
            let d = RawDescriptor::from(Descriptor::new(addr, len, flags, index + 1));
            self.mem
                .write_obj(d, GuestAddress(self.desc + 16 * u64::from(index)))
                .unwrap();
        }
        self.next_desc = (first + parts.len() as u16) % SIZE;
        let idx: u16 = self.mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = self.avail + 4 + 2 * u64::from(idx % SIZE);
        self.mem.write_obj(first, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .unwrap();
        first
    }

    /// The used ring's index and its entries so far: (head, length).
    fn used(&self) -> Vec<(u32, u32)> {
        let n: u16 = self.mem.read_obj(GuestAddress(self.used + 2)).unwrap();
        (0..u64::from(n))
            .map(|i| {
                let at = self.used + 4 + 8 * (i % u64::from(SIZE));
                let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
                let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
                (id, len)
            })
            .collect()
    }

    /// Posts a one-sector write of `fill` bytes to `sector`, in request slot `slot`.
    fn post_write(&mut self, slot: u64, sector: u64, fill: u8) -> u16 {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&block::request_type::OUT.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem
            .write_slice(&header, GuestAddress(HEADERS + 16 * slot))
            .unwrap();
        let data = DATA + 512 * slot;
        self.mem
            .write_slice(&[fill; 512], GuestAddress(data))
            .unwrap();
        self.post(&[
            (HEADERS + 16 * slot, 16, 0),
            (data, 512, 0),
            (STATUS + slot, 1, F_WRITE),
        ])
    }
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

fn transport<D: VirtioDevice>(
    device: D,
    mem: &GuestMemoryMmap,
) -> (MmioTransport<D>, EventFdTrigger) {
    let irq = EventFdTrigger::new().unwrap();
    let interrupt = Arc::new(Interrupt::new(irq.clone()));
    (
        MmioTransport::new(device, "dev0", mem.clone(), interrupt),
        irq,
    )
}

fn block_transport(disk: &MemDisk, mem: &GuestMemoryMmap) -> MmioTransport<Block<MemDisk>> {
    transport(Block::new("blk0", disk.clone(), false, None).unwrap(), mem).0
}

/// A block device the driver activated and sent two writes, unacknowledged.
fn active_block(disk: &MemDisk, mem: &GuestMemoryMmap) -> (MmioTransport<Block<MemDisk>>, Ring) {
    let mut t = block_transport(disk, mem);
    negotiate(&mut t, VIRTIO_F_VERSION_1 | block::features::FLUSH);
    let mut ring = Ring::set_up(&mut t, mem, 0);
    w32(&mut t, 0x70, ALL_UP);
    assert_eq!(r32(&mut t, 0x70), ALL_UP);
    ring.post_write(0, 0, 0xaa);
    ring.post_write(1, 1, 0xbb);
    t.device_mut().on_queue_notify();
    assert_eq!(ring.used(), [(0, 1), (3, 1)]);
    (t, ring)
}

fn json_round_trip(s: &MmioSnapshot) -> MmioSnapshot {
    serde_json::from_str(&serde_json::to_string_pretty(s).unwrap()).unwrap()
}

/// Every register and the first config bytes, as the driver would read them.
fn registers<D: VirtioDevice>(t: &mut MmioTransport<D>) -> Vec<u32> {
    (0..0x120).step_by(4).map(|offset| r32(t, offset)).collect()
}

#[test]
fn a_restored_block_device_continues_its_queue() {
    let (mem, disk) = (memory(), MemDisk::new(64));
    let (mut old, mut ring) = active_block(&disk, &mem);
    let snap = old.snapshot();
    assert_eq!(
        (snap.status, snap.interrupt_status),
        (ALL_UP, INT_USED_RING)
    );
    let q = &snap.queues[0];
    assert_eq!(
        (q.size, q.next_avail, q.next_used, q.ready),
        (SIZE, 2, 2, true)
    );
    assert_eq!(snap.config[..8], 64u64.to_le_bytes());

    let snap = json_round_trip(&snap);
    let (mut new, irq) = transport(Block::new("blk0", disk.clone(), false, None).unwrap(), &mem);
    new.restore(&snap).unwrap();
    assert_eq!(new.snapshot(), snap);
    assert_eq!(registers(&mut new), registers(&mut old));
    assert_eq!(
        new.device().activate_evt().read().unwrap(),
        1,
        "the VMM thread finishes it"
    );
    assert_eq!(
        irq.read().unwrap(),
        1,
        "the pending interrupt is raised again"
    );

    ring.post_write(2, 2, 0xcc);
    new.device_mut().on_queue_notify();
    assert_eq!(ring.used(), [(0, 1), (3, 1), (6, 1)]);
    let data = &disk.state().data;
    assert!(data[1024..1536].iter().all(|&b| b == 0xcc));
    assert!(
        data[0..512].iter().all(|&b| b == 0xaa),
        "written before the snapshot"
    );
    assert_eq!(new.device().counters().requests, 1);
}

#[test]
fn a_snapshot_taken_during_set_up_restores_the_set_up() {
    let (mem, disk) = (memory(), MemDisk::new(64));
    let mut old = block_transport(&disk, &mem);
    negotiate(&mut old, VIRTIO_F_VERSION_1);
    let mut ring = Ring::set_up(&mut old, &mem, 0);
    w32(&mut old, 0x38, 12); // a bad size, remembered until DRIVER_OK
    let snap = json_round_trip(&old.snapshot());
    assert_eq!(snap.size_ok, [false]);
    let mut new = block_transport(&disk, &mem);
    new.restore(&snap).unwrap();
    assert_eq!(registers(&mut new), registers(&mut old));
    assert!(!new.device().is_active());
    w32(&mut new, 0x38, u32::from(SIZE));
    w32(&mut new, 0x70, ALL_UP);
    assert_eq!(r32(&mut new, 0x70), ALL_UP);
    ring.post_write(0, 3, 0x11);
    new.device_mut().on_activated();
    assert_eq!(ring.used(), [(0, 1)]);
}

/// A tap stand-in that records frames sent and offloads set.
#[derive(Clone, Default)]
struct Tap {
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    offload: Arc<Mutex<Option<u32>>>,
}

impl NetBackend for Tap {
    fn read_frame(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn write_frame(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn set_offload(&mut self, flags: u32) -> io::Result<()> {
        *self.offload.lock().unwrap() = Some(flags);
        Ok(())
    }
    fn raw_fd(&self) -> RawFd {
        -1
    }
}

fn net_transport(tap: &Tap, mac: MacAddr, mem: &GuestMemoryMmap) -> MmioTransport<Net<Tap>> {
    transport(Net::new("net0", tap.clone(), mac).unwrap(), mem).0
}

/// Queues one frame of `len` payload bytes on the TX ring.
fn send(ring: &mut Ring, slot: u64, len: u32) {
    let at = DATA + 0x1000 * slot;
    ring.post(&[(at, net::VNET_HDR_LEN as u32 + len, 0)]);
}

#[test]
fn a_restored_net_device_continues_sending_with_its_offloads() {
    let mem = memory();
    let old_tap = Tap::default();
    let mut old = net_transport(&old_tap, MAC, &mem);
    negotiate(
        &mut old,
        VIRTIO_F_VERSION_1 | net::features::MAC | net::features::GUEST_CSUM,
    );
    let _rx = Ring::set_up(&mut old, &mem, 0);
    let mut tx = Ring::set_up(&mut old, &mem, 1);
    w32(&mut old, 0x70, ALL_UP);
    old.device_mut().on_activated();
    send(&mut tx, 0, 60);
    old.device_mut().on_tx_notify();
    assert_eq!(old_tap.sent.lock().unwrap().len(), 1);

    let snap = json_round_trip(&old.snapshot());
    assert_eq!(
        (snap.queues[1].next_avail, snap.queues[0].next_avail),
        (1, 0)
    );
    assert_eq!(snap.config, MAC);
    let tap = Tap::default();
    let mut new = net_transport(&tap, MAC, &mem);
    new.restore(&snap).unwrap();
    assert_eq!(new.device().mac(), MAC);
    assert_eq!(registers(&mut new), registers(&mut old));
    assert_eq!(new.device().activate_evt().read().unwrap(), 1);
    new.device_mut().on_activated();
    assert_eq!(
        *tap.offload.lock().unwrap(),
        *old_tap.offload.lock().unwrap()
    );
    send(&mut tx, 1, 100);
    new.device_mut().on_tx_notify();
    assert_eq!(tap.sent.lock().unwrap().len(), 1, "only the new frame");
    assert_eq!(tap.sent.lock().unwrap()[0].len(), net::VNET_HDR_LEN + 100);
    assert_eq!(tx.used().len(), 2);
}

#[test]
fn another_mac_is_refused_naming_the_byte() {
    let mem = memory();
    let tap = Tap::default();
    let snap = net_transport(&tap, MAC, &mem).snapshot();
    let mut other = MAC;
    other[5] = 0x57;
    let e = net_transport(&tap, other, &mem).restore(&snap).unwrap_err();
    assert_eq!(
        e,
        StateError::Config {
            offset: 5,
            snapshot: 0x56,
            device: 0x57
        }
    );
    assert!(
        e.to_string().contains("at byte 5 (0x56 there, 0x57 here)"),
        "{e}"
    );
}

#[path = "state_refusal_tests.rs"]
mod refusal;

//! Unit tests of the block device: the driver side is played by virtio-queue's
//! `MockSplitQueue`, the disk by an in-memory one, so hostile descriptor chains can be
//! built at will and no file or KVM is needed. Requests the device refuses, and
//! hostile chains, are in `refusal_tests.rs`, which shares the helpers here.

use std::sync::Arc;

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::virtio::block::request_type::{FLUSH, GET_ID, IN, OUT};
use crate::virtio::block::test_utils::MemDisk;
use crate::virtio::block::MAX_DATA_LEN;
use crate::virtio::INT_USED_RING;
use crate::EventFdTrigger;

#[path = "refusal_tests.rs"]
mod refusal;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
/// Descriptor table, then the rings, as `MockSplitQueue::create` lays them out.
const RING: u64 = 0x0;
const HEADERS: u64 = 0x1_0000;
const STATUS: u64 = 0x2_0000;
const BUFFERS: u64 = 0x10_0000;
const MEM_SIZE: usize = 0x40_0000;
/// 64 sectors: 32 KiB.
const DISK_SECTORS: u64 = 64;

struct Fixture {
    block: Block<MemDisk>,
    disk: MemDisk,
    mem: GuestMemoryMmap,
    irq: EventFdTrigger,
    interrupt: Arc<Interrupt>,
    /// Where `MockSplitQueue::create` put the available and used rings.
    avail: u64,
    used: u64,
    /// Next free descriptor index and request slot.
    next_desc: u16,
}

fn fixture_with(read_only: bool, acked: u64) -> Fixture {
    build(read_only, acked, None)
}

fn build(read_only: bool, acked: u64, id: Option<String>) -> Fixture {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let disk = MemDisk::new(DISK_SECTORS);
    disk.state().read_only = read_only;
    let mut block = Block::new("blk0", disk.clone(), read_only, id).unwrap();
    let irq = EventFdTrigger::new().unwrap();
    let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
    // The mock is created once (creating it resets the rings); later chains are
    // written through the ring addresses, as a driver would.
    let mock = MockSplitQueue::create(&mem, GuestAddress(RING), QUEUE_SIZE);
    let (avail, used) = (mock.avail_addr().0, mock.used_addr().0);
    let queue = mock.create_queue::<Queue>().unwrap();
    block
        .activate(
            ActiveQueues {
                mem: mem.clone(),
                queues: vec![queue],
                acked_features: acked,
            },
            interrupt.clone(),
        )
        .unwrap();
    Fixture {
        block,
        disk,
        mem,
        irq,
        interrupt,
        avail,
        used,
        next_desc: 0,
    }
}

fn fixture() -> Fixture {
    fixture_with(false, VIRTIO_F_VERSION_1 | features::FLUSH)
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, next))
}

impl Fixture {
    /// Writes raw descriptors at table index `first` onwards and makes `first`
    /// available, as a driver would.
    fn post_raw(&mut self, first: u16, descs: &[RawDescriptor]) {
        for (i, d) in descs.iter().enumerate() {
            let at = RING + 16 * (u64::from(first) + i as u64);
            self.mem.write_obj(*d, GuestAddress(at)).unwrap();
        }
        let idx: u16 = self.mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = self.avail + 4 + 2 * u64::from(idx % QUEUE_SIZE);
        self.mem.write_obj(first, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .unwrap();
        self.next_desc = first + descs.len() as u16;
    }

    /// Posts a chain of (addr, len, flags) at the next free descriptors, linked in
    /// order; returns its head.
    fn post(&mut self, parts: &[(u64, u32, u16)]) -> u16 {
        // Start again at the top of the table when the chain does not fit below;
        // everything posted before has been used by then.
        let mut first = self.next_desc;
        if usize::from(first) + parts.len() > usize::from(QUEUE_SIZE) {
            first = 0;
        }
        let descs: Vec<RawDescriptor> = parts
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let last = i + 1 == parts.len();
                let next = first + i as u16 + 1;
                let flags = if last { flags } else { flags | F_NEXT };
                desc(addr, len, flags, if last { 0 } else { next })
            })
            .collect();
        self.post_raw(first, &descs);
        first
    }

    /// Writes a request header for the chain with head `slot` and returns its address.
    fn header(&self, slot: u16, request_type: u32, sector: u64) -> u64 {
        let at = HEADERS + 16 * u64::from(slot);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&request_type.to_le_bytes());
        h[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(at)).unwrap();
        // A status the device must overwrite.
        self.mem
            .write_obj(0xffu8, GuestAddress(STATUS + u64::from(slot)))
            .unwrap();
        at
    }

    /// Posts a well-formed request: header, the data buffers, a status byte.
    fn request(&mut self, request_type: u32, sector: u64, data: &[(u64, u32)]) -> u16 {
        let mut head = self.next_desc;
        if usize::from(head) + data.len() + 2 > usize::from(QUEUE_SIZE) {
            head = 0;
        }
        let hdr = self.header(head, request_type, sector);
        let data_flags = if request_type == OUT { 0 } else { F_WRITE };
        let mut parts = vec![(hdr, 16, 0)];
        parts.extend(data.iter().map(|&(a, l)| (a, l, data_flags)));
        parts.push((STATUS + u64::from(head), 1, F_WRITE));
        self.post(&parts)
    }

    fn status_of(&self, head: u16) -> u8 {
        self.mem
            .read_obj(GuestAddress(STATUS + u64::from(head)))
            .unwrap()
    }

    /// The used ring's entries so far: (descriptor head, length).
    fn used(&self) -> Vec<(u32, u32)> {
        let n: u16 = self.mem.read_obj(GuestAddress(self.used + 2)).unwrap();
        (0..u64::from(n))
            .map(|i| {
                let at = self.used + 4 + 8 * i;
                let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
                let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
                (id, len)
            })
            .collect()
    }

    fn last_used(&self) -> (u32, u32) {
        *self.used().last().expect("a used entry")
    }

    /// A good one-sector read still works: the device survived what came before.
    fn assert_still_works(&mut self) {
        self.disk.state().data[512..1024].fill(0x5a);
        let head = self.request(IN, 1, &[(BUFFERS + 0x20_0000, 512)]);
        self.block.on_queue_notify();
        assert_eq!(self.last_used(), (u32::from(head), 513));
        assert_eq!(self.status_of(head), request_status::OK);
        let got: [u8; 4] = self
            .mem
            .read_obj(GuestAddress(BUFFERS + 0x20_0000 + 508))
            .unwrap();
        assert_eq!(got, [0x5a; 4]);
    }
}

#[test]
fn write_then_read_back_several_sectors() {
    let mut f = fixture();
    let pattern: Vec<u8> = (0..1536u32).map(|i| (i * 7 % 251) as u8).collect();
    // Three sectors over three descriptors of uneven size.
    f.mem
        .write_slice(&pattern[..700], GuestAddress(BUFFERS))
        .unwrap();
    f.mem
        .write_slice(&pattern[700..1024], GuestAddress(BUFFERS + 0x1000))
        .unwrap();
    f.mem
        .write_slice(&pattern[1024..], GuestAddress(BUFFERS + 0x2000))
        .unwrap();
    let w = f.request(
        OUT,
        5,
        &[
            (BUFFERS, 700),
            (BUFFERS + 0x1000, 324),
            (BUFFERS + 0x2000, 512),
        ],
    );
    // Read it back into two different buffers in the same batch.
    let r = f.request(IN, 5, &[(BUFFERS + 0x8000, 1000), (BUFFERS + 0x9000, 536)]);
    f.block.on_queue_notify();
    assert_eq!(&f.disk.state().data[5 * 512..8 * 512], &pattern[..]);
    assert_eq!(
        f.used(),
        vec![(u32::from(w), 1), (u32::from(r), 1536 + 1)],
        "5.2.6: used length is the bytes written: the status, plus the data of a read"
    );
    assert_eq!(f.status_of(w), request_status::OK);
    assert_eq!(f.status_of(r), request_status::OK);
    let mut got = vec![0u8; 1536];
    f.mem
        .read_slice(&mut got[..1000], GuestAddress(BUFFERS + 0x8000))
        .unwrap();
    f.mem
        .read_slice(&mut got[1000..], GuestAddress(BUFFERS + 0x9000))
        .unwrap();
    assert_eq!(got, pattern);
    assert_eq!(f.irq.read().unwrap(), 1, "one interrupt for the batch");
    assert_eq!(f.interrupt.status() & INT_USED_RING, INT_USED_RING);
    let c = f.block.counters();
    assert_eq!((c.requests, c.bytes_written, c.bytes_read), (2, 1536, 1536));
    assert_eq!((c.errors, c.dropped), (0, 0));
    assert_eq!(
        f.disk.state().flushes,
        0,
        "FLUSH negotiated: writes are cached"
    );
}

#[test]
fn flush_syncs_the_disk() {
    let mut f = fixture();
    let head = f.request(FLUSH, 0, &[]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 1));
    assert_eq!(f.status_of(head), request_status::OK);
    assert_eq!(f.disk.state().flushes, 1);
    assert_eq!(f.block.counters().flushes, 1);
    f.disk.state().fail_flush = true;
    let head = f.request(FLUSH, 0, &[]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(head), request_status::IOERR);
    assert_eq!(f.block.counters().errors, 1);
}

#[test]
fn without_flush_negotiated_every_write_is_made_durable() {
    let mut f = fixture_with(false, VIRTIO_F_VERSION_1);
    let head = f.request(OUT, 0, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(head), request_status::OK);
    assert_eq!(
        f.disk.state().flushes,
        1,
        "5.2.6.2: stable before completion"
    );
}

#[test]
fn get_id_answers_the_padded_id() {
    let mut f = fixture();
    f.mem
        .write_slice(&[0xaa; 32], GuestAddress(BUFFERS))
        .unwrap();
    let head = f.request(GET_ID, 0, &[(BUFFERS, 20)]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 21));
    assert_eq!(f.status_of(head), request_status::OK);
    let got: [u8; 20] = f.mem.read_obj(GuestAddress(BUFFERS)).unwrap();
    let mut want = [0u8; 20];
    want[..4].copy_from_slice(b"blk0");
    assert_eq!(got, want);
    // A short buffer, split in two, gets the start of the ID.
    let mut f = build(
        false,
        VIRTIO_F_VERSION_1,
        Some("serial-0123456789abc".into()),
    );
    f.mem
        .write_slice(&[0xaa; 32], GuestAddress(BUFFERS))
        .unwrap();
    let head = f.request(GET_ID, 0, &[(BUFFERS, 3), (BUFFERS + 0x100, 4)]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 8));
    let a: [u8; 4] = f.mem.read_obj(GuestAddress(BUFFERS)).unwrap();
    let b: [u8; 4] = f.mem.read_obj(GuestAddress(BUFFERS + 0x100)).unwrap();
    assert_eq!((&a, &b), (b"ser\xaa", b"ial-"));
    // A longer one gets all 20 bytes, nothing after them.
    let head = f.request(GET_ID, 0, &[(BUFFERS + 0x200, 64)]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 21));
    let id: [u8; 21] = f.mem.read_obj(GuestAddress(BUFFERS + 0x200)).unwrap();
    assert_eq!(&id[..20], b"serial-0123456789abc");
    assert_eq!(id[20], 0, "untouched");
}

#[test]
fn config_space_holds_capacity_and_limits() {
    let f = fixture();
    let read = |offset: u64, len: usize| {
        let mut buf = vec![0xffu8; len];
        f.block.read_config(offset, &mut buf);
        buf
    };
    assert_eq!(read(0, 8), DISK_SECTORS.to_le_bytes());
    assert_eq!(read(8, 4), SIZE_MAX.to_le_bytes());
    assert_eq!(read(12, 4), SEG_MAX.to_le_bytes());
    assert_eq!(read(16, 4), [0; 4], "no geometry");
    assert_eq!(read(20, 4), 512u32.to_le_bytes());
    assert_eq!(read(22, 6), [0, 0, 0, 0, 0, 0], "past the end reads zero");
    assert_eq!(read(u64::MAX, 2), [0, 0]);
    assert_eq!(u64::from(SEG_MAX) * u64::from(SIZE_MAX), MAX_DATA_LEN);
}

#[test]
fn config_writes_are_refused() {
    let mut f = fixture();
    assert!(!f.block.write_config(0, &[1, 2, 3, 4]));
    assert!(!f.block.write_config(32, &[1]), "no CONFIG_WCE");
    let mut cap = [0u8; 8];
    f.block.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), DISK_SECTORS);
}

#[test]
fn features_follow_read_only() {
    let base = VIRTIO_F_VERSION_1
        | features::SEG_MAX
        | features::SIZE_MAX
        | features::BLK_SIZE
        | features::FLUSH;
    let rw = Block::new("blk0", MemDisk::new(1), false, None).unwrap();
    assert_eq!(rw.features(), base);
    let ro = Block::new("blk0", MemDisk::new(1), true, None).unwrap();
    assert_eq!(ro.features(), base | features::RO);
    assert_eq!(ro.device_type(), 2);
    assert_eq!(ro.queue_max_sizes(), &[256]);
}

#[test]
fn notifications_before_activation_are_ignored_and_reset_stops_the_device() {
    let disk = MemDisk::new(1);
    let mut block = Block::new("blk0", disk, false, None).unwrap();
    block.on_queue_notify();
    block.on_activated();
    assert!(!block.is_active());
    let mut f = fixture();
    assert!(f.block.is_active());
    assert_eq!(f.block.activate_evt().read().unwrap(), 1);
    f.block.reset();
    assert!(!f.block.is_active());
    f.request(IN, 0, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    assert!(f.used().is_empty());
}

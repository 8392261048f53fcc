//! Unit tests of the net device: the driver side is played by virtio-queue's
//! `MockSplitQueue`, the tap by an in-memory fake, so hostile descriptor chains can be
//! built at will and no KVM or tap is needed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::virtio::INT_USED_RING;
use crate::EventFdTrigger;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const RX_RING: u64 = 0x0;
const TX_RING: u64 = 0x8000;
const BUFFERS: u64 = 0x10_0000;

/// A tap stand-in: frames to deliver, frames sent.
#[derive(Clone, Default)]
struct FakeTap {
    inbound: Arc<Mutex<VecDeque<Vec<u8>>>>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    offload: Arc<Mutex<Option<u32>>>,
}

impl NetBackend for FakeTap {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inbound.lock().unwrap().pop_front() {
            Some(f) => {
                buf[..f.len()].copy_from_slice(&f);
                Ok(f.len())
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
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

struct Fixture {
    net: Net<FakeTap>,
    tap: FakeTap,
    mem: GuestMemoryMmap,
    irq: EventFdTrigger,
    interrupt: Arc<Interrupt>,
}

fn mock(mem: &GuestMemoryMmap, base: u64) -> MockSplitQueue<'_, GuestMemoryMmap> {
    MockSplitQueue::create(mem, GuestAddress(base), QUEUE_SIZE)
}

fn fixture(features: u64) -> Fixture {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let tap = FakeTap::default();
    let mut net = Net::new("net0", tap.clone(), [0x06, 0, 0, 0, 0, 1]).unwrap();
    let irq = EventFdTrigger::new().unwrap();
    let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
    let mut queues = Vec::new();
    for ring in [RX_RING, TX_RING] {
        queues.push(mock(&mem, ring).create_queue::<Queue>().unwrap());
        let addrs = ring_addrs(&mem, ring);
        RINGS.with(|r| r.borrow_mut().insert(ring, addrs));
    }
    net.activate(
        ActiveQueues {
            mem: mem.clone(),
            queues,
            acked_features: features,
        },
        interrupt.clone(),
    )
    .unwrap();
    Fixture {
        net,
        tap,
        mem,
        irq,
        interrupt,
    }
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, next))
}

/// Where `MockSplitQueue::create` put a ring's available and used rings. The mock is
/// created once per ring (creating it resets the rings); later chains are written
/// through these addresses, as a driver would.
fn ring_addrs(mem: &GuestMemoryMmap, ring: u64) -> (u64, u64) {
    let m = MockSplitQueue::create(mem, GuestAddress(ring), QUEUE_SIZE);
    (m.avail_addr().0, m.used_addr().0)
}

fn avail_addr(ring: u64) -> u64 {
    RINGS.with(|r| r.borrow()[&ring].0)
}

fn used_addr(ring: u64) -> u64 {
    RINGS.with(|r| r.borrow()[&ring].1)
}

thread_local! {
    static RINGS: std::cell::RefCell<std::collections::HashMap<u64, (u64, u64)>> = Default::default();
}

/// Writes raw descriptors at table index `first` onwards and makes `first` available,
/// as a driver would. The mock is only created once per ring (creating it resets the
/// rings), so later chains are written directly.
fn post_raw(mem: &GuestMemoryMmap, ring: u64, first: u16, descs: &[RawDescriptor]) {
    for (i, d) in descs.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(ring + 16 * (u64::from(first) + i as u64)))
            .unwrap();
    }
    let idx: u16 = mem.read_obj(GuestAddress(avail_addr(ring) + 2)).unwrap();
    let slot = u64::from(idx % QUEUE_SIZE);
    mem.write_obj(first, GuestAddress(avail_addr(ring) + 4 + 2 * slot))
        .unwrap();
    mem.write_obj(idx.wrapping_add(1), GuestAddress(avail_addr(ring) + 2))
        .unwrap();
}

/// Posts a chain of (addr, len, flags) starting at descriptor `first`, linked in order.
fn post(mem: &GuestMemoryMmap, ring: u64, first: u16, parts: &[(u64, u32, u16)]) {
    let descs: Vec<RawDescriptor> = parts
        .iter()
        .enumerate()
        .map(|(i, &(addr, len, flags))| {
            let last = i + 1 == parts.len();
            let next = first + i as u16 + 1;
            desc(
                addr,
                len,
                if last { flags } else { flags | F_NEXT },
                if last { 0 } else { next },
            )
        })
        .collect();
    post_raw(mem, ring, first, &descs);
}

/// The used ring's entries so far: (descriptor head, length).
fn used(mem: &GuestMemoryMmap, ring: u64) -> Vec<(u32, u32)> {
    let base = used_addr(ring);
    let n: u16 = mem.read_obj(GuestAddress(base + 2)).unwrap();
    (0..u64::from(n))
        .map(|i| {
            let id: u32 = mem.read_obj(GuestAddress(base + 4 + 8 * i)).unwrap();
            let len: u32 = mem.read_obj(GuestAddress(base + 8 + 8 * i)).unwrap();
            (id, len)
        })
        .collect()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(payload);
    f
}

#[test]
fn tx_sends_the_gathered_chain_and_interrupts_once() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    let pkt = frame(b"hello, tap");
    f.mem
        .write_slice(&pkt[..VNET_HDR_LEN], GuestAddress(BUFFERS))
        .unwrap();
    f.mem
        .write_slice(&pkt[VNET_HDR_LEN..], GuestAddress(BUFFERS + 0x1000))
        .unwrap();
    post(
        &f.mem,
        TX_RING,
        0,
        &[(BUFFERS, VNET_HDR_LEN as u32, 0), (BUFFERS + 0x1000, 10, 0)],
    );
    post(&f.mem, TX_RING, 2, &[(BUFFERS + 0x2000, 12 + 3, 0)]);
    f.net.on_tx_notify();
    let sent = f.tap.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], pkt);
    assert_eq!(used(&f.mem, TX_RING), vec![(0, 0), (2, 0)]);
    assert_eq!(f.interrupt.status() & INT_USED_RING, INT_USED_RING);
    assert_eq!(f.irq.read().unwrap(), 1, "one interrupt for the batch");
    assert_eq!(f.net.counters().tx_frames, 2);
}

#[test]
fn rx_delivers_into_a_guest_buffer() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    let pkt = frame(&[0xab; 100]);
    f.tap.inbound.lock().unwrap().push_back(pkt.clone());
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 2048, F_WRITE)]);
    f.net.on_backend_readable();
    assert_eq!(used(&f.mem, RX_RING), vec![(0, pkt.len() as u32)]);
    let mut got = vec![0u8; pkt.len()];
    f.mem.read_slice(&mut got, GuestAddress(BUFFERS)).unwrap();
    assert_eq!(&got[VNET_HDR_LEN..], &pkt[VNET_HDR_LEN..]);
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1, "num_buffers");
}

#[test]
fn rx_waits_for_buffers_without_losing_the_frame() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    f.tap.inbound.lock().unwrap().push_back(frame(b"early"));
    f.net.on_backend_readable();
    assert!(used(&f.mem, RX_RING).is_empty());
    assert_eq!(f.net.counters().rx_dropped, 0);
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 2048, F_WRITE)]);
    f.net.on_rx_notify();
    assert_eq!(used(&f.mem, RX_RING), vec![(0, (VNET_HDR_LEN + 5) as u32)]);
}

#[test]
fn mergeable_buffers_carry_a_large_frame() {
    let mut f = fixture(VIRTIO_F_VERSION_1 | MRG_RXBUF);
    let pkt = frame(&[7u8; 3500]);
    f.tap.inbound.lock().unwrap().push_back(pkt.clone());
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 1536, F_WRITE)]);
    post(&f.mem, RX_RING, 1, &[(BUFFERS + 0x1000, 1536, F_WRITE)]);
    post(&f.mem, RX_RING, 2, &[(BUFFERS + 0x2000, 1536, F_WRITE)]);
    f.net.on_backend_readable();
    assert_eq!(
        used(&f.mem, RX_RING),
        vec![(0, 1536), (1, 1536), (2, (pkt.len() - 3072) as u32)]
    );
    let hdr: [u8; 12] = f.mem.read_obj(GuestAddress(BUFFERS)).unwrap();
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 3);
}

#[test]
fn mergeable_frame_waits_when_buffers_are_short() {
    let mut f = fixture(VIRTIO_F_VERSION_1 | MRG_RXBUF);
    f.tap.inbound.lock().unwrap().push_back(frame(&[1u8; 3500]));
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 1536, F_WRITE)]);
    f.net.on_backend_readable();
    assert!(
        used(&f.mem, RX_RING).is_empty(),
        "the claimed buffer is given back"
    );
    post(&f.mem, RX_RING, 1, &[(BUFFERS + 0x1000, 1536, F_WRITE)]);
    post(&f.mem, RX_RING, 2, &[(BUFFERS + 0x2000, 1536, F_WRITE)]);
    f.net.on_rx_notify();
    assert_eq!(used(&f.mem, RX_RING).len(), 3);
}

#[test]
fn offloads_follow_the_acked_features() {
    let mut f = fixture(VIRTIO_F_VERSION_1 | features::GUEST_CSUM | features::GUEST_TSO4);
    assert_eq!(
        *f.tap.offload.lock().unwrap(),
        None,
        "set on the VMM thread, not in activate"
    );
    f.net.on_activated();
    assert_eq!(
        *f.tap.offload.lock().unwrap(),
        Some(TUN_F_CSUM | TUN_F_TSO4)
    );
    let mut f = fixture(VIRTIO_F_VERSION_1 | features::GUEST_TSO4);
    f.net.on_activated();
    assert_eq!(
        *f.tap.offload.lock().unwrap(),
        Some(0),
        "TSO needs checksum offload"
    );
}

#[test]
fn config_space_holds_the_mac() {
    let f = fixture(VIRTIO_F_VERSION_1);
    let mut mac = [0u8; 6];
    f.net.read_config(0, &mut mac);
    assert_eq!(mac, [0x06, 0, 0, 0, 0, 1]);
    let mut past = [9u8; 4];
    f.net.read_config(4, &mut past);
    assert_eq!(past, [0, 1, 0, 0]);
}

// ---- hostile drivers: the chain is dropped, the device keeps working ----

fn assert_still_works(f: &mut Fixture, next_desc: u16) {
    let pkt = frame(b"still alive");
    f.mem
        .write_slice(&pkt, GuestAddress(BUFFERS + 0x8000))
        .unwrap();
    post(
        &f.mem,
        TX_RING,
        next_desc,
        &[(BUFFERS + 0x8000, pkt.len() as u32, 0)],
    );
    f.net.on_tx_notify();
    assert_eq!(f.tap.sent.lock().unwrap().last(), Some(&pkt));
}

#[test]
fn tx_chain_with_a_write_only_descriptor_is_dropped() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    post(
        &f.mem,
        TX_RING,
        0,
        &[(BUFFERS, 12, 0), (BUFFERS + 0x100, 64, F_WRITE)],
    );
    f.net.on_tx_notify();
    assert!(f.tap.sent.lock().unwrap().is_empty());
    assert_eq!(used(&f.mem, TX_RING), vec![(0, 0)]);
    assert_eq!(f.net.counters().tx_dropped, 1);
    assert_still_works(&mut f, 2);
}

#[test]
fn tx_buffers_outside_memory_or_too_long_are_dropped() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    post(&f.mem, TX_RING, 0, &[(0x7fff_0000_0000, 64, 0)]);
    post(&f.mem, TX_RING, 1, &[(BUFFERS, u32::MAX, 0)]);
    post(&f.mem, TX_RING, 2, &[(BUFFERS, 4, 0)]); // shorter than a vnet header
                                                  // Links to a descriptor index beyond the table.
    post_raw(&f.mem, TX_RING, 3, &[desc(BUFFERS, 64, F_NEXT, 999)]);
    f.net.on_tx_notify();
    assert!(f.tap.sent.lock().unwrap().is_empty());
    assert_eq!(f.net.counters().tx_dropped, 4);
    assert_still_works(&mut f, 4);
}

#[test]
fn a_looping_tx_chain_ends_and_is_dropped() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    // Descriptor 0 points at itself.
    post_raw(&f.mem, TX_RING, 0, &[desc(BUFFERS, 64, F_NEXT, 0)]);
    f.net.on_tx_notify();
    assert_eq!(f.net.counters().tx_dropped, 1);
    assert!(f.tap.sent.lock().unwrap().is_empty());
    assert_still_works(&mut f, 1);
}

#[test]
fn rx_chain_with_a_read_only_or_unmapped_buffer_is_dropped() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    {
        let mut inbound = f.tap.inbound.lock().unwrap();
        inbound.push_back(frame(b"one"));
        inbound.push_back(frame(b"two"));
        inbound.push_back(frame(b"three"));
    }
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 2048, 0)]);
    post(&f.mem, RX_RING, 1, &[(0x7fff_0000_0000, 2048, F_WRITE)]);
    post(&f.mem, RX_RING, 2, &[(BUFFERS, 2048, F_WRITE)]);
    f.net.on_backend_readable();
    assert_eq!(
        used(&f.mem, RX_RING),
        vec![(0, 0), (1, 0), (2, (VNET_HDR_LEN + 5) as u32)]
    );
    assert_eq!(f.net.counters().rx_dropped, 2);
    assert_eq!(f.net.counters().rx_frames, 1);
}

#[test]
fn rx_buffer_too_small_without_merging_drops_the_frame() {
    let mut f = fixture(VIRTIO_F_VERSION_1);
    f.tap.inbound.lock().unwrap().push_back(frame(&[0u8; 1000]));
    post(&f.mem, RX_RING, 0, &[(BUFFERS, 100, F_WRITE)]);
    f.net.on_backend_readable();
    assert_eq!(used(&f.mem, RX_RING), vec![(0, 0)]);
    assert_eq!(f.net.counters().rx_dropped, 1);
}

#[test]
fn notifications_before_activation_are_ignored() {
    let tap = FakeTap::default();
    let mut net = Net::new("net0", tap.clone(), [2, 0, 0, 0, 0, 1]).unwrap();
    tap.inbound.lock().unwrap().push_back(frame(b"x"));
    net.on_rx_notify();
    net.on_tx_notify();
    net.on_backend_readable();
    assert!(!net.is_active());
    assert_eq!(
        tap.inbound.lock().unwrap().len(),
        1,
        "nothing read before DRIVER_OK"
    );
}

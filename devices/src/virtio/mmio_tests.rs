//! Unit tests of the virtio-mmio transport, driving it as a driver would, with a
//! dummy device and queues laid out by virtio-queue's mock.

use std::sync::{Arc, Mutex};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::*;
use crate::virtio::{ActivateError, StateError, INT_CONFIG_CHANGE, INT_USED_RING};
use crate::EventFdTrigger;

const QUEUE_SIZE: u16 = 16;

#[derive(Default)]
struct Record {
    activated: Option<(usize, u64)>,
    resets: usize,
}

struct Dummy {
    record: Arc<Mutex<Record>>,
    config: [u8; 8],
    fail_activation: bool,
    /// The queues while active, as a real device keeps them.
    queues: Option<Vec<Queue>>,
}

impl VirtioDevice for Dummy {
    fn device_type(&self) -> u32 {
        42
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | 0b101
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }
    fn config_space(&self) -> &[u8] {
        &self.config
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) -> bool {
        let end = offset as usize + data.len();
        if end > self.config.len() {
            return false;
        }
        self.config[offset as usize..end].copy_from_slice(data);
        true
    }
    fn activate(&mut self, q: ActiveQueues, _: Arc<Interrupt>) -> Result<(), ActivateError> {
        if self.fail_activation {
            return Err(ActivateError::Backend("no tap".into()));
        }
        self.record.lock().unwrap().activated = Some((q.queues.len(), q.acked_features));
        self.queues = Some(q.queues);
        Ok(())
    }
    fn reset(&mut self) {
        self.record.lock().unwrap().resets += 1;
        self.queues = None;
    }
    fn queue_states(&self) -> Option<Vec<virtio_queue::QueueState>> {
        Some(self.queues.as_ref()?.iter().map(|q| q.state()).collect())
    }
}

struct Fixture {
    t: MmioTransport<Dummy>,
    record: Arc<Mutex<Record>>,
    irq: EventFdTrigger,
    mem: GuestMemoryMmap,
}

fn fixture() -> Fixture {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let irq = EventFdTrigger::new().unwrap();
    let record = Arc::new(Mutex::new(Record::default()));
    let dev = Dummy {
        record: record.clone(),
        config: *b"abcdefgh",
        fail_activation: false,
        queues: None,
    };
    let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
    Fixture {
        t: MmioTransport::new(dev, "dummy0", mem.clone(), interrupt),
        record,
        irq,
        mem,
    }
}

pub(crate) fn r32<D: VirtioDevice>(t: &mut MmioTransport<D>, offset: u64) -> u32 {
    let mut d = [0u8; 4];
    t.read(0, offset, &mut d);
    u32::from_le_bytes(d)
}

pub(crate) fn w32<D: VirtioDevice>(t: &mut MmioTransport<D>, offset: u64, v: u32) {
    t.write(0, offset, &v.to_le_bytes());
}

/// Steps 1-6 of driver initialisation (virtio 1.2, 3.1.1), acking `features`.
pub(crate) fn negotiate<D: VirtioDevice>(t: &mut MmioTransport<D>, features: u64) -> u32 {
    w32(t, 0x70, status::ACKNOWLEDGE);
    w32(t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    w32(t, 0x24, 0);
    w32(t, 0x20, features as u32);
    w32(t, 0x24, 1);
    w32(t, 0x20, (features >> 32) as u32);
    w32(
        t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    r32(t, 0x70)
}

/// Sets up queue `index` with rings laid out by the mock at `base`, size `size`.
fn setup_queue(f: &mut Fixture, index: u32, base: u64, size: u16) {
    let mock = MockSplitQueue::create(&f.mem, GuestAddress(base), QUEUE_SIZE);
    program_queue(&mut f.t, index, size, &mock);
}

/// Writes queue `index`'s size and the addresses of `mock`'s rings, then QueueReady.
pub(crate) fn program_queue<D: VirtioDevice>(
    t: &mut MmioTransport<D>,
    index: u32,
    size: u16,
    mock: &MockSplitQueue<'_, GuestMemoryMmap>,
) {
    w32(t, 0x30, index);
    w32(t, 0x38, u32::from(size));
    for (lo, addr) in [
        (0x80, mock.desc_table_addr()),
        (0x90, mock.avail_addr()),
        (0xa0, mock.used_addr()),
    ] {
        w32(t, lo, addr.0 as u32);
        w32(t, lo + 4, (addr.0 >> 32) as u32);
    }
    w32(t, 0x44, 1);
}

pub(crate) const ALL_UP: u32 =
    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

#[test]
fn identification_registers() {
    let mut f = fixture();
    assert_eq!(r32(&mut f.t, 0x00), 0x7472_6976);
    assert_eq!(r32(&mut f.t, 0x04), 2);
    assert_eq!(r32(&mut f.t, 0x08), 42);
    assert_eq!(r32(&mut f.t, 0x34), u32::from(QUEUE_SIZE));
    w32(&mut f.t, 0x14, 1);
    assert_eq!(r32(&mut f.t, 0x10), 1, "VERSION_1 is bit 32");
    w32(&mut f.t, 0x14, 0);
    assert_eq!(r32(&mut f.t, 0x10), 0b101);
}

#[test]
fn full_initialisation_activates_the_device() {
    let mut f = fixture();
    assert_ne!(
        negotiate(&mut f.t, VIRTIO_F_VERSION_1 | 1) & status::FEATURES_OK,
        0
    );
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    assert_eq!(r32(&mut f.t, 0x70), ALL_UP);
    assert_eq!(
        f.record.lock().unwrap().activated,
        Some((2, VIRTIO_F_VERSION_1 | 1))
    );
}

#[test]
fn unoffered_or_legacy_features_are_refused() {
    let mut f = fixture();
    assert_eq!(
        negotiate(&mut f.t, VIRTIO_F_VERSION_1 | 0b10) & status::FEATURES_OK,
        0
    );
    let mut f = fixture();
    assert_eq!(
        negotiate(&mut f.t, 1) & status::FEATURES_OK,
        0,
        "VERSION_1 is required"
    );
}

#[test]
fn queue_size_not_a_power_of_two_needs_reset() {
    let mut f = fixture();
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, 12);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    let st = r32(&mut f.t, 0x70);
    assert_ne!(st & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(st & status::DRIVER_OK, 0);
    assert_eq!(r32(&mut f.t, 0x60) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
    assert_eq!(f.irq.read().unwrap(), 1);
    assert!(f.record.lock().unwrap().activated.is_none());
}

#[test]
fn rings_outside_guest_memory_need_reset() {
    let mut f = fixture();
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x30, 1);
    w32(&mut f.t, 0x44, 0); // queue ready must be 0 while changing it
    w32(&mut f.t, 0xa0, 0xffff_0000);
    w32(&mut f.t, 0xa4, 0x10);
    w32(&mut f.t, 0x44, 1);
    w32(&mut f.t, 0x70, ALL_UP);
    assert_ne!(r32(&mut f.t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn failed_activation_needs_reset_and_reset_recovers() {
    let mut f = fixture();
    f.t.device_mut().fail_activation = true;
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    assert_ne!(r32(&mut f.t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
    w32(&mut f.t, 0x70, 0);
    assert_eq!(r32(&mut f.t, 0x70), 0);
    assert_eq!(f.record.lock().unwrap().resets, 1);
    f.t.device_mut().fail_activation = false;
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    assert_eq!(r32(&mut f.t, 0x70), ALL_UP);
}

#[test]
fn driver_ok_without_features_ok_needs_reset() {
    let mut f = fixture();
    w32(&mut f.t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    w32(
        &mut f.t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert_ne!(r32(&mut f.t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn config_space_reads_writes_and_writes_past_the_end() {
    let mut f = fixture();
    let mut d = [0u8; 2];
    f.t.read(0, 0x102, &mut d);
    assert_eq!(&d, b"cd");
    f.t.write(0, 0x100, b"XY");
    f.t.read(0, 0x100, &mut d);
    assert_eq!(&d, b"XY");
    // Past the end: dropped, and the device keeps working.
    f.t.write(0, 0x1f0, &[1, 2, 3, 4]);
    let mut far = [9u8; 4];
    f.t.read(0, 0x1f0, &mut far);
    assert_eq!(far, [0; 4]);
    assert_eq!(r32(&mut f.t, 0x00), 0x7472_6976);
}

#[test]
fn wrong_width_and_misaligned_accesses_are_ignored() {
    let mut f = fixture();
    let mut d = [7u8; 2];
    f.t.read(0, 0x00, &mut d);
    assert_eq!(d, [0, 0]);
    f.t.write(0, 0x70, &[1]);
    f.t.write(0, 0x71, &[1, 0, 0, 0]);
    assert_eq!(r32(&mut f.t, 0x70), 0);
}

#[test]
fn interrupt_status_and_ack() {
    let mut f = fixture();
    f.t.interrupt.signal_used();
    assert_eq!(r32(&mut f.t, 0x60), INT_USED_RING);
    w32(&mut f.t, 0x64, INT_USED_RING);
    assert_eq!(r32(&mut f.t, 0x60), 0);
}

#[test]
fn stray_notifications_and_late_queue_writes_are_harmless() {
    let mut f = fixture();
    w32(&mut f.t, QUEUE_NOTIFY_OFFSET, 7);
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    w32(&mut f.t, 0x30, 0);
    w32(&mut f.t, 0x38, 3); // after DRIVER_OK: ignored
    assert_eq!(r32(&mut f.t, 0x70), ALL_UP);
    // Clearing bits is not allowed either.
    w32(&mut f.t, 0x70, status::ACKNOWLEDGE);
    assert_eq!(r32(&mut f.t, 0x70), ALL_UP);
}

/// Snapshots themselves are tested on real devices in state_tests.rs; a dummy can
/// refuse activation, which they cannot.
#[test]
fn a_restore_the_device_refuses_to_activate_leaves_the_transport_reset() {
    let mut f = fixture();
    negotiate(&mut f.t, VIRTIO_F_VERSION_1);
    setup_queue(&mut f, 0, 0x1_0000, QUEUE_SIZE);
    setup_queue(&mut f, 1, 0x2_0000, QUEUE_SIZE);
    w32(&mut f.t, 0x70, ALL_UP);
    let snap = f.t.snapshot();
    assert_eq!(
        snap.queues[1].desc_table, 0x2_0000,
        "the device's live queues"
    );

    let mut g = fixture();
    let reset = g.t.snapshot();
    g.t.device_mut().fail_activation = true;
    w32(&mut g.t, 0x70, status::ACKNOWLEDGE);
    let e = g.t.restore(&snap).unwrap_err();
    assert_eq!(
        e,
        StateError::Activate(ActivateError::Backend("no tap".into()))
    );
    assert_eq!(g.t.snapshot(), reset);
    g.t.device_mut().fail_activation = false;
    g.t.restore(&snap).unwrap();
    assert_eq!(r32(&mut g.t, 0x70), ALL_UP);
    assert_eq!(
        g.record.lock().unwrap().activated,
        Some((2, VIRTIO_F_VERSION_1))
    );
}

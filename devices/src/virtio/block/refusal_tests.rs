//! Requests the device refuses: well-formed ones it cannot serve get IOERR or UNSUPP
//! (used length 1, the status byte), and hostile or broken descriptor chains are
//! dropped (used length 0, no status byte, the disk untouched). Either way they are
//! counted, and the device keeps serving good requests afterwards.

use super::*;

const F_INDIRECT: u16 = 4;
const OUTSIDE: u64 = 0x7fff_0000_0000;
/// Where the indirect table of the test that needs one goes.
const INDIRECT_TABLE: u64 = 0x38_0000;

// ---- set-up the device refuses; well-formed requests answered IOERR or UNSUPP ----

#[test]
fn unknown_types_are_unsupported() {
    let mut f = fixture();
    // DISCARD (11) with a readable segment, and an unknown type with none.
    let hdr = f.header(0, 11, 0);
    let discard = f.post(&[(hdr, 16, 0), (BUFFERS, 16, 0), (STATUS, 1, F_WRITE)]);
    let other = f.request(0x1234, 0, &[]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(discard), request_status::UNSUPP);
    assert_eq!(f.status_of(other), request_status::UNSUPP);
    assert_eq!(f.used(), vec![(0, 1), (u32::from(other), 1)]);
    assert_eq!(f.block.counters().errors, 2);
    f.assert_still_works();
}

#[test]
fn past_the_end_is_an_io_error() {
    let mut f = fixture();
    let last = f.request(IN, DISK_SECTORS - 1, &[(BUFFERS, 1024)]);
    let beyond = f.request(OUT, DISK_SECTORS, &[(BUFFERS, 512)]);
    let huge = f.request(IN, u64::MAX / 256, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    for head in [last, beyond, huge] {
        assert_eq!(f.status_of(head), request_status::IOERR);
    }
    assert!(f.used().iter().all(|&(_, len)| len == 1));
    assert_eq!(f.block.counters().errors, 3);
    // The last sector itself is fine.
    let ok = f.request(IN, DISK_SECTORS - 1, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(ok), request_status::OK);
    f.assert_still_works();
}

#[test]
fn partial_sectors_are_an_io_error() {
    let mut f = fixture();
    let read = f.request(IN, 0, &[(BUFFERS, 511)]);
    let write = f.request(OUT, 0, &[(BUFFERS, 512), (BUFFERS + 0x1000, 100)]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(read), request_status::IOERR);
    assert_eq!(f.status_of(write), request_status::IOERR);
    assert!(
        f.disk.state().data.iter().all(|&b| b == 0),
        "nothing written"
    );
    f.assert_still_works();
}

#[test]
fn writes_to_a_read_only_disk_fail_and_write_nothing() {
    let mut f = fixture_with(true, VIRTIO_F_VERSION_1 | features::RO);
    f.mem
        .write_slice(&[1u8; 512], GuestAddress(BUFFERS))
        .unwrap();
    let head = f.request(OUT, 0, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    assert_eq!(f.status_of(head), request_status::IOERR);
    assert_eq!(f.last_used(), (u32::from(head), 1));
    assert_eq!(f.block.counters().bytes_written, 0);
    f.assert_still_works();
}

#[test]
fn disk_failures_are_io_errors() {
    let mut f = fixture();
    f.disk.state().fail_reads = true;
    let head = f.request(IN, 0, &[(BUFFERS, 512)]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 1));
    assert_eq!(f.status_of(head), request_status::IOERR);
    f.disk.state().fail_reads = false;
    f.assert_still_works();
}

#[test]
fn ids_are_at_most_20_bytes() {
    let err = Block::new("blk0", MemDisk::new(1), false, Some("x".repeat(21))).err();
    assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    let long = "a-very-long-device-name-indeed";
    let block = Block::new(long, MemDisk::new(1), false, None).unwrap();
    assert_eq!(&block.id[..], &long.as_bytes()[..20]);
}

#[test]
fn activation_needs_exactly_one_queue() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let mut block = Block::new("blk0", MemDisk::new(1), false, None).unwrap();
    let interrupt = Arc::new(Interrupt::new(EventFdTrigger::new().unwrap()));
    let err = block.activate(
        ActiveQueues {
            mem,
            queues: Vec::new(),
            acked_features: VIRTIO_F_VERSION_1,
        },
        interrupt,
    );
    assert_eq!(err, Err(ActivateError::QueueCount { got: 0, want: 1 }));
}

// ---- hostile chains, dropped ----

/// Runs the queue and checks that the chain at `head` was dropped whole.
fn assert_dropped(f: &mut Fixture, head: u16, dropped_before: u64) {
    f.block.on_queue_notify();
    assert_eq!(
        f.last_used(),
        (u32::from(head), 0),
        "returned with length 0"
    );
    assert_eq!(f.status_of(head), 0xff, "no status written");
    let c = f.block.counters();
    assert_eq!(c.dropped, dropped_before + 1);
    assert_eq!((c.requests, c.errors), (0, 0), "nothing executed");
    assert!(
        f.disk.state().data.iter().all(|&b| b == 0),
        "disk untouched"
    );
}

#[test]
fn a_looping_chain_is_dropped() {
    let mut f = fixture();
    let hdr = f.header(0, IN, 0);
    // header -> data -> header -> ... never ends.
    f.post_raw(
        0,
        &[
            desc(hdr, 16, F_NEXT, 1),
            desc(BUFFERS, 512, F_NEXT | F_WRITE, 0),
        ],
    );
    assert_dropped(&mut f, 0, 0);
    // A link to a descriptor beyond the table.
    let hdr = f.header(2, IN, 0);
    f.post_raw(2, &[desc(hdr, 16, F_NEXT, 999)]);
    assert_dropped(&mut f, 2, 1);
    f.assert_still_works();
}

#[test]
fn data_of_the_wrong_direction_is_dropped() {
    let mut f = fixture();
    let hdr = f.header(0, IN, 0);
    // A read whose data buffer is device-readable.
    let head = f.post(&[(hdr, 16, 0), (BUFFERS, 512, 0), (STATUS, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 0);
    // A write whose data buffer is device-writable.
    f.mem
        .write_slice(&[7u8; 512], GuestAddress(BUFFERS))
        .unwrap();
    let hdr = f.header(3, OUT, 0);
    let head = f.post(&[
        (hdr, 16, 0),
        (BUFFERS, 512, F_WRITE),
        (STATUS + 3, 1, F_WRITE),
    ]);
    assert_dropped(&mut f, head, 1);
    // A header the device would write into.
    let hdr = f.header(6, IN, 0);
    let head = f.post(&[
        (hdr, 16, F_WRITE),
        (BUFFERS, 512, F_WRITE),
        (STATUS + 6, 1, F_WRITE),
    ]);
    assert_dropped(&mut f, head, 2);
    f.assert_still_works();
}

#[test]
fn a_chain_without_a_status_descriptor_is_dropped() {
    let mut f = fixture();
    // The data buffer is last: its 512 bytes are not a status byte.
    let hdr = f.header(0, IN, 0);
    let head = f.post(&[(hdr, 16, 0), (BUFFERS, 512, F_WRITE)]);
    assert_dropped(&mut f, head, 0);
    // The header alone.
    let hdr = f.header(2, FLUSH, 0);
    let head = f.post(&[(hdr, 16, 0)]);
    assert_dropped(&mut f, head, 1);
    assert_eq!(f.disk.state().flushes, 0);
    f.assert_still_works();
}

#[test]
fn a_read_only_status_descriptor_is_dropped() {
    let mut f = fixture();
    let hdr = f.header(0, FLUSH, 0);
    let head = f.post(&[(hdr, 16, 0), (STATUS, 1, 0)]);
    assert_dropped(&mut f, head, 0);
    assert_eq!(f.disk.state().flushes, 0, "not executed");
    f.assert_still_works();
}

#[test]
fn a_huge_request_is_dropped() {
    let mut f = fixture();
    // One descriptor of 4 GiB - 1.
    let hdr = f.header(0, IN, 0);
    let head = f.post(&[
        (hdr, 16, 0),
        (BUFFERS, u32::MAX, F_WRITE),
        (STATUS, 1, F_WRITE),
    ]);
    assert_dropped(&mut f, head, 0);
    // Five descriptors of 4 MiB, all over the same (real) guest memory: 20 MiB.
    let hdr = f.header(3, OUT, 0);
    let mut parts = vec![(hdr, 16, 0)];
    parts.extend([(0u64, MEM_SIZE as u32, 0); 5]);
    parts.push((STATUS + 3, 1, F_WRITE));
    let head = f.post(&parts);
    assert_dropped(&mut f, head, 1);
    f.assert_still_works();
}

#[test]
fn the_longest_legal_chain_works() {
    let mut f = fixture();
    f.disk.state().data = vec![0x11; SEG_MAX as usize * 512];
    let data: Vec<(u64, u32)> = (0..u64::from(SEG_MAX))
        .map(|i| (BUFFERS + 512 * i, 512))
        .collect();
    let head = f.request(IN, 0, &data);
    assert_eq!(f.next_desc, QUEUE_SIZE, "the whole descriptor table");
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), SEG_MAX * 512 + 1));
    assert_eq!(f.status_of(head), request_status::OK);
    let last: u8 = f
        .mem
        .read_obj(GuestAddress(BUFFERS + 512 * u64::from(SEG_MAX) - 1))
        .unwrap();
    assert_eq!(last, 0x11);
    f.assert_still_works();
}

#[test]
fn too_many_descriptors_are_dropped() {
    let mut f = fixture();
    // An indirect table (followed by virtio-queue although INDIRECT_DESC is not
    // offered) of header, 300 data descriptors and status.
    let hdr = f.header(0, IN, 0);
    let n = 302u16;
    for i in 0..n {
        let d = match i {
            0 => desc(hdr, 16, F_NEXT, 1),
            i if i == n - 1 => desc(STATUS, 1, F_WRITE, 0),
            i => desc(BUFFERS + 512 * u64::from(i), 512, F_NEXT | F_WRITE, i + 1),
        };
        f.mem
            .write_obj(d, GuestAddress(INDIRECT_TABLE + 16 * u64::from(i)))
            .unwrap();
    }
    let head = f.post(&[(INDIRECT_TABLE, 16 * u32::from(n), F_INDIRECT)]);
    assert_dropped(&mut f, head, 0);
    f.assert_still_works();
}

#[test]
fn buffers_outside_guest_memory_are_dropped() {
    let mut f = fixture();
    let hdr = f.header(0, IN, 0);
    let head = f.post(&[(hdr, 16, 0), (OUTSIDE, 512, F_WRITE), (STATUS, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 0);
    // Straddling the end of guest memory.
    let hdr = f.header(3, OUT, 0);
    let end = MEM_SIZE as u64 - 256;
    let head = f.post(&[(hdr, 16, 0), (end, 512, 0), (STATUS + 3, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 1);
    // The header, then the status byte, outside.
    f.header(6, IN, 0);
    let head = f.post(&[(OUTSIDE, 16, 0), (STATUS + 6, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 2);
    let hdr = f.header(8, FLUSH, 0);
    let head = f.post(&[(hdr, 16, 0), (OUTSIDE, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 3);
    f.assert_still_works();
}

#[test]
fn odd_headers_and_heads_outside_the_table_are_dropped() {
    let mut f = fixture();
    let hdr = f.header(0, IN, 0);
    let head = f.post(&[(hdr, 8, 0), (hdr + 8, 8, 0), (STATUS, 1, F_WRITE)]);
    assert_dropped(&mut f, head, 0);
    let hdr = f.header(3, IN, 0);
    let head = f.post(&[(hdr, 16, 0), (STATUS + 3, 4, F_WRITE)]);
    assert_dropped(&mut f, head, 1);
    // An available-ring entry naming descriptor 999 of a 256-entry table.
    let idx: u16 = f.mem.read_obj(GuestAddress(f.avail + 2)).unwrap();
    let slot = f.avail + 4 + 2 * u64::from(idx % QUEUE_SIZE);
    f.mem.write_obj(999u16, GuestAddress(slot)).unwrap();
    f.mem
        .write_obj(idx.wrapping_add(1), GuestAddress(f.avail + 2))
        .unwrap();
    let used_before = f.used().len();
    f.block.on_queue_notify();
    // Dropped, and not returned: the used ring cannot name a head outside the table.
    assert_eq!(f.block.counters().dropped, 3);
    assert_eq!(f.used().len(), used_before);
    f.assert_still_works();
}

#[test]
fn a_data_descriptor_of_zero_length_is_harmless() {
    let mut f = fixture();
    let head = f.request(IN, 0, &[(OUTSIDE, 0), (BUFFERS, 512), (OUTSIDE, 0)]);
    f.block.on_queue_notify();
    assert_eq!(f.last_used(), (u32::from(head), 513));
    assert_eq!(f.status_of(head), request_status::OK);
    assert_eq!(MAX_DATA_LEN, 254 * 64 * 1024);
}

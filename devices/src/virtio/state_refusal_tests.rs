//! The checks on untrusted snapshot state, one by one: each refused snapshot leaves
//! the transport untouched. Then states the checks must let through because the live
//! transport can be in them, strict JSON, and a loop over thousands of mutated
//! snapshots that must be refused or restored, never panic.

use super::*;

/// A snapshot of an active block device, with its memory and disk.
fn valid() -> (MmioSnapshot, GuestMemoryMmap, MemDisk) {
    let (mem, disk) = (memory(), MemDisk::new(64));
    let snap = active_block(&disk, &mem).0.snapshot();
    (snap, mem, disk)
}

/// Restores `valid()` changed by `mutate` onto a fresh block device, which must
/// refuse it and stay as it was; returns the error.
fn refused(mutate: impl FnOnce(&mut MmioSnapshot)) -> StateError {
    let (mut snap, mem, disk) = valid();
    mutate(&mut snap);
    let mut t = block_transport(&disk, &mem);
    let before = t.snapshot();
    let e = t.restore(&snap).unwrap_err();
    assert_eq!(
        t.snapshot(),
        before,
        "{e}: a refused snapshot changes nothing"
    );
    assert!(!t.device().is_active());
    assert!(t.device().activate_evt().read().is_err());
    assert!(!e.to_string().contains('\n'), "{e}");
    e
}

#[test]
fn another_device_is_refused() {
    use StateError::*;
    assert_eq!(
        refused(|s| s.device_type = 1),
        DeviceType {
            snapshot: 1,
            device: 2
        }
    );
    assert_eq!(
        refused(|s| s.config.push(0)),
        ConfigLength {
            snapshot: 25,
            device: 24
        }
    );
    // The capacity, 64 sectors, is the first config field.
    let e = refused(|s| s.config[0] = 65);
    assert_eq!(
        e,
        Config {
            offset: 0,
            snapshot: 65,
            device: 64
        }
    );
    let e = refused(|s| s.queues.push(s.queues[0].clone()));
    assert_eq!(
        e,
        QueueCount {
            snapshot: 2,
            device: 1
        }
    );
    assert_eq!(e.to_string(), "the snapshot has 2 queues, the device has 1");
    assert_eq!(
        refused(|s| s.size_ok.clear()),
        SizeOkCount {
            snapshot: 0,
            device: 1
        }
    );
    let e = refused(|s| s.queues[0].max_size = 128);
    assert_eq!(
        e,
        QueueMaxSize {
            index: 0,
            snapshot: 128,
            device: 256
        }
    );
}

#[test]
fn impossible_registers_are_refused() {
    use StateError::*;
    assert_eq!(refused(|s| s.status |= 0x10), UnknownStatus(ALL_UP | 0x10));
    let no_features_ok = ALL_UP & !status::FEATURES_OK;
    assert_eq!(
        refused(|s| s.status = no_features_ok),
        DriverOkWithoutFeaturesOk(no_features_ok)
    );
    assert_eq!(refused(|s| s.driver_features |= 1), UnofferedFeatures(1));
    assert_eq!(
        refused(|s| s.driver_features &= !VIRTIO_F_VERSION_1),
        NotVersion1
    );
    assert_eq!(
        refused(|s| s.interrupt_status = 4),
        UnknownInterruptStatus(4)
    );
}

#[test]
fn unusable_queues_are_refused() {
    use StateError::*;
    for size in [0, 12, 512] {
        let e = refused(|s| s.queues[0].size = size);
        assert_eq!(
            e,
            QueueSize {
                index: 0,
                size,
                max: 256
            }
        );
    }
    assert_eq!(
        refused(|s| s.queues[0].desc_table += 8),
        QueueAlignment { index: 0 }
    );
    assert_eq!(
        refused(|s| s.queues[0].avail_ring += 1),
        QueueAlignment { index: 0 }
    );
    assert_eq!(
        refused(|s| s.queues[0].used_ring += 2),
        QueueAlignment { index: 0 }
    );
    assert_eq!(
        refused(|s| s.queues[0].event_idx_enabled = true),
        QueueEventIdx { index: 0 }
    );
    let e = refused(|s| s.queues[0].used_ring = MEM_SIZE as u64 - 4);
    assert_eq!(e, QueueNotValid { index: 0 });
    assert_eq!(
        e.to_string(),
        "queue 0 is not valid in guest memory (not ready, or its rings lie outside it)"
    );
    assert_eq!(
        refused(|s| s.queues[0].ready = false),
        QueueNotValid { index: 0 }
    );
}

#[test]
fn states_the_live_transport_can_be_in_are_accepted() {
    let (valid, mem, disk) = valid();
    let mut t = block_transport(&disk, &mem);
    // Before DRIVER_OK the rings are the driver's business until it sets DRIVER_OK,
    // and the features until it sets FEATURES_OK.
    let mut s = valid.clone();
    s.status = status::ACKNOWLEDGE | status::DRIVER;
    s.driver_features |= 1;
    s.queues[0].used_ring = MEM_SIZE as u64 - 4;
    s.queue_select = 99;
    s.device_features_select = 7;
    t.restore(&s).unwrap();
    assert_eq!(r32(&mut t, 0x34), 0, "no queue 99");
    w32(&mut t, 0x70, s.status | status::FEATURES_OK);
    assert_eq!(r32(&mut t, 0x70), s.status, "FEATURES_OK refused, as live");
    // A driver may set FAILED after DRIVER_OK; the device stays active.
    let mut s = valid.clone();
    s.status |= status::FAILED;
    t.restore(&s).unwrap();
    assert!(t.device().is_active());
    assert_eq!(t.snapshot(), s);
}

#[test]
fn json_with_unknown_or_missing_fields_is_refused() {
    let (valid, ..) = valid();
    let good = serde_json::to_value(&valid).unwrap();
    assert_eq!(
        serde_json::from_value::<MmioSnapshot>(good.clone()).unwrap(),
        valid
    );
    let mut extra = good.clone();
    extra["queue_notify"] = serde_json::json!(0);
    assert!(serde_json::from_value::<MmioSnapshot>(extra).is_err());
    let mut extra_in_queue = good.clone();
    extra_in_queue["queues"][0]["num_added"] = serde_json::json!(0);
    assert!(serde_json::from_value::<MmioSnapshot>(extra_in_queue).is_err());
    let mut missing = good;
    missing["queues"][0]
        .as_object_mut()
        .unwrap()
        .remove("next_used");
    assert!(serde_json::from_value::<MmioSnapshot>(missing).is_err());
}

/// Changes one field of `s` at random, mostly to values near the valid ones.
fn mutate(s: &mut MmioSnapshot, next: &mut impl FnMut() -> u64) {
    let r = next();
    let bit = 1u64 << (next() % 64);
    let q = (next() % 2) as usize;
    match next() % 16 {
        0 => s.device_type = (r % 4) as u32,
        1 => s.status ^= bit as u32 & 0xff,
        2 => s.driver_features ^= bit,
        3 => s.queue_select = r as u32,
        4 => s.interrupt_status = (r % 8) as u32,
        5 => s.size_ok.iter_mut().for_each(|f| *f = !*f),
        6 if r.is_multiple_of(4) => s.size_ok.push(true),
        7 if r.is_multiple_of(4) => {
            s.queues.pop();
        }
        8 => {
            if let Some(b) = s.config.get_mut(q) {
                *b ^= r as u8;
            }
        }
        _ => {
            let Some(queue) = s.queues.get_mut(q) else {
                return;
            };
            match r % 9 {
                0 => queue.max_size = (1u32 << (next() % 17)) as u16,
                1 => queue.next_avail = next() as u16,
                2 => queue.next_used = next() as u16,
                3 => queue.event_idx_enabled ^= true,
                4 => queue.size = 1 << (next() % 10),
                5 => queue.ready ^= true,
                6 => queue.desc_table = next() % (MEM_SIZE as u64 + 0x1000),
                7 => queue.avail_ring = (next() % (MEM_SIZE as u64 + 0x1000)) & !1,
                _ => queue.used_ring = (next() % (MEM_SIZE as u64 + 0x1000)) & !3,
            }
        }
    }
}

/// Mutated snapshots are refused without a change, or restored exactly; the device
/// then runs its queue over whatever the rings hold without panicking. One transport
/// takes them all, so restores also land on active devices.
#[test]
fn mutated_snapshots_never_panic() {
    let (valid, mem, disk) = valid();
    let mut seed = 0xdead_beef_cafe_f00du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut t = block_transport(&disk, &mem);
    let (mut restored, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut s = valid.clone();
        for _ in 0..1 + next() % 3 {
            mutate(&mut s, &mut next);
        }
        let before = t.snapshot();
        match t.restore(&s) {
            Ok(()) => {
                restored += 1;
                assert_eq!(t.snapshot(), s);
                t.device_mut().on_activated();
            }
            Err(_) => {
                refused += 1;
                assert_eq!(t.snapshot(), before);
            }
        }
        let _ = registers(&mut t);
    }
    assert!(
        restored > 300 && refused > 300,
        "{restored} restored, {refused} refused"
    );
}

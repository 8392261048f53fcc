//! Unit tests of the serial console's snapshot and restore: round trips through
//! serde_json, the checks on untrusted state, and arbitrary states that must never
//! make the device panic.

use super::*;
use crate::bus::BusDevice;
use crate::serial::tests::{device, drain, read_reg, Shared};
use crate::serial::COM1_BASE;
use crate::EventFdTrigger;

const THR: u64 = 0;
const IER: u64 = 1;
const IIR: u64 = 2;
const LCR: u64 = 3;
const MCR: u64 = 4;
const SCR: u64 = 7;

/// Registers a read does not change (IIR and RBR do).
const PLAIN_REGISTERS: [u64; 6] = [1, 3, 4, 5, 6, 7];

fn json_round_trip(s: &SerialSnapshot) -> SerialSnapshot {
    let text = serde_json::to_string(s).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A device a guest has configured, with 200 bytes of input of which it read 10.
fn busy_device() -> SerialDevice {
    let (mut dev, _) = device(SerialOut::discard());
    dev.write(COM1_BASE, LCR, &[0x83]); // DLAB on
    dev.write(COM1_BASE, 0, &[0x01]); // 115200 baud
    dev.write(COM1_BASE, 1, &[0x00]);
    dev.write(COM1_BASE, LCR, &[0x03]); // 8N1, DLAB off
    dev.write(COM1_BASE, IER, &[0x01]);
    dev.write(COM1_BASE, MCR, &[0x0b]);
    dev.write(COM1_BASE, SCR, &[0x5a]);
    dev.queue_input(&(0..200u8).collect::<Vec<_>>());
    for _ in 0..10 {
        read_reg(&mut dev, THR);
    }
    dev
}

#[test]
fn a_restored_device_reads_like_the_original() {
    let mut old = busy_device();
    let snap = old.snapshot();
    assert_eq!(snap.in_buffer.len(), FIFO_SIZE);
    assert_eq!(snap.pending_input.len(), 200 - 10 - FIFO_SIZE);
    assert_eq!(snap.scratch, 0x5a);
    let sink = Shared::default();
    let (mut new, _) = device(SerialOut::new(Box::new(sink.clone())));
    new.restore(&json_round_trip(&snap)).unwrap();
    assert_eq!(new.snapshot(), snap);
    for r in PLAIN_REGISTERS {
        assert_eq!(read_reg(&mut new, r), read_reg(&mut old, r), "register {r}");
    }
    assert_eq!(read_reg(&mut new, IIR), read_reg(&mut old, IIR));
    // The divisor latch came across too.
    for dev in [&mut old, &mut new] {
        dev.write(COM1_BASE, LCR, &[0x83]);
    }
    assert_eq!(read_reg(&mut new, 0), 0x01);
    for dev in [&mut old, &mut new] {
        dev.write(COM1_BASE, LCR, &[0x03]);
    }
    // The input continues where the guest left off, FIFO first, then the queue.
    let rest: Vec<u8> = (10..200).collect();
    assert_eq!(drain(&mut old), rest);
    assert_eq!(drain(&mut new), rest);
    // Output goes to the restored device's own sink.
    new.write(COM1_BASE, THR, b"after\n");
    assert_eq!(&*sink.0.lock().unwrap(), b"after\n");
}

#[test]
fn restore_keeps_the_output_watch() {
    let (mut dev, _) = device(SerialOut::discard());
    let trigger = EventFdTrigger::new().unwrap();
    dev.watch_output(b"ready".to_vec(), trigger.clone())
        .unwrap();
    dev.write(COM1_BASE, THR, b"rea");
    dev.restore(&busy_device().snapshot()).unwrap();
    dev.write(COM1_BASE, THR, b"dy");
    assert_eq!(trigger.read().unwrap(), 1);
}

#[test]
fn a_pending_enabled_interrupt_is_raised_on_restore() {
    let (dev, _) = device(SerialOut::discard());
    let mut snap = dev.snapshot();
    snap.interrupt_enable = 0x02; // THR empty
    snap.interrupt_identification = 0x02;
    let (mut new, irq) = device(SerialOut::discard());
    new.restore(&snap).unwrap();
    assert_eq!(irq.read().unwrap(), 1);
}

#[test]
fn queued_input_moves_into_a_fifo_with_room() {
    let (mut dev, _) = device(SerialOut::discard());
    let mut snap = dev.snapshot();
    snap.pending_input = b"typed".to_vec();
    dev.restore(&snap).unwrap();
    assert_eq!(dev.pending_input(), 0);
    assert_eq!(drain(&mut dev), b"typed");
}

#[test]
fn an_overfull_fifo_or_input_queue_is_refused_and_changes_nothing() {
    let mut dev = busy_device();
    let before = dev.snapshot();
    let mut snap = before.clone();
    snap.in_buffer = vec![0; FIFO_SIZE + 1];
    let e = dev.restore(&snap).unwrap_err();
    assert!(matches!(e, SerialError::FifoOverflow(65)), "{e}");
    assert!(e.to_string().contains("65 bytes"), "{e}");
    let mut snap = before.clone();
    snap.pending_input = vec![0; PENDING_INPUT_RESTORE_MAX + 1];
    let e = dev.restore(&snap).unwrap_err();
    assert!(matches!(e, SerialError::PendingInput(_)), "{e}");
    assert_eq!(dev.snapshot(), before);
    let mut snap = before.clone();
    snap.pending_input = vec![0; PENDING_INPUT_RESTORE_MAX];
    dev.restore(&snap).unwrap();
    assert!(!dev.wants_input(), "a long queue pauses the reader again");
}

#[test]
fn the_fifo_size_is_vm_superios() {
    let (dev, _) = device(SerialOut::discard());
    assert_eq!(dev.uart.fifo_capacity(), FIFO_SIZE);
}

#[test]
fn unknown_or_missing_fields_are_refused() {
    let (dev, _) = device(SerialOut::discard());
    let mut value = serde_json::to_value(dev.snapshot()).unwrap();
    value["transmit_holding"] = serde_json::json!(0);
    assert!(serde_json::from_value::<SerialSnapshot>(value.clone()).is_err());
    let object = value.as_object_mut().unwrap();
    object.remove("transmit_holding");
    object.remove("scratch");
    assert!(serde_json::from_value::<SerialSnapshot>(value).is_err());
}

/// Arbitrary states, most of them impossible for a real UART, are either refused or
/// restored into a device that then survives a guest poking every register.
#[test]
fn arbitrary_states_never_make_the_device_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut dev, _) = device(SerialOut::discard());
    for _ in 0..3000 {
        let mut r = [0u8; 9];
        r.iter_mut().for_each(|b| *b = next() as u8);
        let snap = SerialSnapshot {
            baud_divisor_low: r[0],
            baud_divisor_high: r[1],
            interrupt_enable: r[2],
            interrupt_identification: r[3],
            line_control: r[4],
            line_status: r[5],
            modem_control: r[6],
            modem_status: r[7],
            scratch: r[8],
            in_buffer: vec![next() as u8; (next() % 70) as usize],
            pending_input: vec![next() as u8; (next() % 150) as usize],
        };
        let fits = snap.in_buffer.len() <= FIFO_SIZE;
        assert_eq!(dev.restore(&snap).is_ok(), fits);
        for _ in 0..20 {
            let offset = next() % 8;
            if next() % 2 == 0 {
                read_reg(&mut dev, offset);
            } else {
                dev.write(COM1_BASE, offset, &[next() as u8]);
            }
        }
        dev.queue_input(b"x");
        dev.wants_input();
    }
}

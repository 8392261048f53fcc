//! Unit tests of the serial console: output batching and its limit, input pacing,
//! the output watch, with `Vec`-backed sinks and no KVM. Snapshot tests are in
//! serial/state_tests.rs, which shares the helpers here.
use super::*;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

const THR: u64 = 0;
const IER: u64 = 1;
const LSR: u64 = 5;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;

/// A `Write` that the test can read back while the device owns it.
#[derive(Clone, Default)]
pub(super) struct Shared(pub(super) Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn device(out: SerialOut) -> (SerialDevice, EventFdTrigger) {
    let irq = EventFdTrigger::new().unwrap();
    let irq_wait = irq.try_clone().unwrap();
    (SerialDevice::new(irq, out, None), irq_wait)
}

pub(super) fn read_reg(dev: &mut SerialDevice, offset: u64) -> u8 {
    let mut b = [0u8];
    dev.read(COM1_BASE, offset, &mut b);
    b[0]
}

#[test]
fn output_reaches_the_sink_in_order() {
    let sink = Shared::default();
    let (mut dev, _) = device(SerialOut::new(Box::new(sink.clone())));
    for b in b"hello" {
        dev.write(COM1_BASE, THR, &[*b]);
    }
    dev.write(COM1_BASE, THR, b", world\n");
    assert_eq!(&*sink.0.lock().unwrap(), b"hello, world\n");
    assert_ne!(read_reg(&mut dev, LSR) & LSR_THR_EMPTY, 0);
}

#[test]
fn a_string_write_is_pushed_out_once() {
    let sink = super::output::tests::Sink::default();
    let (mut dev, _) = device(SerialOut::new(Box::new(sink.clone())));
    dev.write(COM1_BASE, THR, &[b'x'; 16]);
    assert_eq!(*sink.0.lock().unwrap(), vec![vec![b'x'; 16]]);
}

/// Reads the receive FIFO until it is empty, as a guest driver does.
pub(super) fn drain(dev: &mut SerialDevice) -> Vec<u8> {
    let mut got = Vec::new();
    while read_reg(dev, LSR) & LSR_DATA_READY != 0 {
        got.push(read_reg(dev, THR));
    }
    got
}

#[test]
fn input_is_paced_through_the_fifo() {
    let (mut dev, _) = device(SerialOut::discard());
    let input: Vec<u8> = (0..200u8).collect();
    dev.queue_input(&input);
    assert!(dev.pending_input() > 0, "the FIFO holds only 64 bytes");
    assert_eq!(drain(&mut dev), input);
    assert_eq!(dev.pending_input(), 0);
}

#[test]
fn received_data_raises_the_interrupt_when_enabled() {
    let (mut dev, irq) = device(SerialOut::discard());
    dev.write(COM1_BASE, IER, &[0x01]); // enable "received data available"
    dev.queue_input(b"k");
    assert_eq!(irq.read().unwrap(), 1);
}

#[test]
fn a_flood_of_input_pauses_and_resumes_the_reader() {
    let irq = EventFdTrigger::new().unwrap();
    let room = EventFdTrigger::new().unwrap();
    let room_wait = room.try_clone().unwrap();
    let mut dev = SerialDevice::new(irq, SerialOut::discard(), Some(room));
    dev.queue_input(&vec![b'a'; PENDING_INPUT_LIMIT + 100]);
    assert!(!dev.wants_input());
    assert!(
        room_wait.read().is_err(),
        "no wake-up before the guest reads"
    );
    while read_reg(&mut dev, LSR) & LSR_DATA_READY != 0 {
        read_reg(&mut dev, THR);
    }
    assert_eq!(room_wait.read().unwrap(), 1);
    assert!(dev.wants_input());
}

/// fuzz/regressions/serial/loopback-stalls-input: input that arrived while the
/// guest had the UART in loopback mode was dropped (64 bytes) and the rest stayed
/// queued with the FIFO empty, so the guest never saw it.
#[test]
fn input_queued_during_loopback_arrives_afterwards() {
    const MCR: u64 = 4;
    let (mut dev, _) = device(SerialOut::discard());
    dev.write(COM1_BASE, MCR, &[0x14]); // loopback on
    let input: Vec<u8> = (0..100u8).collect();
    dev.queue_input(&input);
    assert_eq!(read_reg(&mut dev, LSR) & LSR_DATA_READY, 0);
    dev.write(COM1_BASE, MCR, &[0x00]); // loopback off
    assert_eq!(drain(&mut dev), input);
    assert_eq!(dev.pending_input(), 0);
}

#[test]
fn a_failing_sink_is_dropped_without_stopping_the_guest() {
    let (mut dev, _) = device(SerialOut::new(Box::new(super::output::tests::Broken)));
    dev.write(COM1_BASE, THR, b"a");
    dev.write(COM1_BASE, THR, b"b");
    assert!(!dev.output().is_open());
    assert!(dev.output().has_sink(), "closed on the VMM thread, later");
}

#[test]
fn output_stops_at_the_limit_and_the_guest_runs_on() {
    let sink = Shared::default();
    let (mut dev, _) = device(SerialOut::with_limit(Box::new(sink.clone()), 10));
    dev.write(COM1_BASE, THR, b"0123");
    dev.write(COM1_BASE, THR, b"456");
    assert!(dev.output().is_open());
    // This burst crosses the limit: only its first 3 bytes fit.
    dev.write(COM1_BASE, THR, b"789abc");
    assert_eq!(&*sink.0.lock().unwrap(), b"0123456789");
    assert!(!dev.output().is_open());
    // The UART still works: output is taken and dropped, registers answer.
    dev.write(COM1_BASE, THR, b"more");
    assert_eq!(sink.0.lock().unwrap().len(), 10);
    assert_ne!(read_reg(&mut dev, LSR) & LSR_THR_EMPTY, 0);
}

#[test]
fn output_that_ends_exactly_at_the_limit_is_all_written() {
    let sink = Shared::default();
    let (mut dev, _) = device(SerialOut::with_limit(Box::new(sink.clone()), 4));
    dev.write(COM1_BASE, THR, b"abcd");
    assert_eq!(&*sink.0.lock().unwrap(), b"abcd");
    assert!(dev.output().is_open(), "nothing was cut yet");
    dev.write(COM1_BASE, THR, b"e");
    assert!(!dev.output().is_open());
    assert_eq!(&*sink.0.lock().unwrap(), b"abcd");
}

#[test]
fn the_watch_fires_once_on_a_pattern_split_across_accesses() {
    let sink = Shared::default();
    let (mut dev, _) = device(SerialOut::new(Box::new(sink.clone())));
    let trigger = EventFdTrigger::new().unwrap();
    dev.watch_output(b"aab".to_vec(), trigger.clone()).unwrap();
    for b in b"xaa" {
        dev.write(COM1_BASE, THR, &[*b]);
    }
    assert!(trigger.read().is_err(), "no match yet");
    dev.write(COM1_BASE, THR, b"ab");
    assert_eq!(trigger.read().unwrap(), 1, "\"aab\" ends \"xaaab\"");
    // The matching bytes were output before the watch fired.
    assert_eq!(&*sink.0.lock().unwrap(), b"xaaab");
    dev.write(COM1_BASE, THR, b"aab aab");
    assert!(trigger.read().is_err(), "a watch fires only once");
}

#[test]
fn the_watch_sees_output_that_no_longer_reaches_a_sink() {
    let (mut dev, _) = device(SerialOut::discard());
    let trigger = EventFdTrigger::new().unwrap();
    dev.watch_output(b"# ".to_vec(), trigger.clone()).unwrap();
    dev.write(COM1_BASE, THR, b"root@guest:~# ");
    assert_eq!(trigger.read().unwrap(), 1);
}

#[test]
fn an_empty_watch_pattern_is_refused() {
    let (mut dev, _) = device(SerialOut::discard());
    let e = dev
        .watch_output(Vec::new(), EventFdTrigger::new().unwrap())
        .unwrap_err();
    assert!(matches!(e, SerialError::EmptyPattern), "{e}");
}

#[test]
fn loopback_bytes_are_not_output_and_do_not_match() {
    const MCR: u64 = 4;
    let (mut dev, _) = device(SerialOut::discard());
    let trigger = EventFdTrigger::new().unwrap();
    dev.watch_output(b"ok".to_vec(), trigger.clone()).unwrap();
    dev.write(COM1_BASE, MCR, &[0x10]); // loopback on
    dev.write(COM1_BASE, THR, b"ok");
    assert!(trigger.read().is_err());
}

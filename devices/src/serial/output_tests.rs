//! Unit tests of output batching, through the UART as a guest drives it: a `Vec`
//! sink, the timer's kick eventfd read by the test, and the timer's flush called by
//! the test where the VMM thread would.
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::{SerialOut, FLUSH_SIZE};
use crate::bus::BusDevice;
use crate::serial::{SerialDevice, COM1_BASE};
use crate::EventFdTrigger;

const THR: u64 = 0;

/// Records every write the device makes, so that tests see both bytes and batches
/// (serial_tests.rs uses it too).
#[derive(Clone, Default)]
pub(crate) struct Sink(pub(crate) Arc<Mutex<Vec<Vec<u8>>>>);

impl Sink {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().concat()
    }
    fn writes(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink whose every write fails, as a closed pipe does (serial_tests.rs uses it too).
pub(crate) struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A UART whose output is batched, and the read end of its timer kick.
fn batched(out: SerialOut) -> (SerialDevice, EventFdTrigger) {
    let kick = EventFdTrigger::new().unwrap();
    let irq = EventFdTrigger::new().unwrap();
    let dev = SerialDevice::new(irq, out.batched(kick.clone()), None);
    (dev, kick)
}

/// The guest prints `text` byte by byte (`outb`, as Linux does).
fn print(dev: &mut SerialDevice, text: &[u8]) {
    for b in text {
        dev.write(COM1_BASE, THR, &[*b]);
    }
}

/// How many kicks the timer got since the last call.
fn kicks(kick: &EventFdTrigger) -> u64 {
    kick.read().unwrap_or(0)
}

#[test]
fn a_newline_writes_the_line_in_one_call() {
    let sink = Sink::default();
    let (mut dev, kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, b"hello");
    assert_eq!(sink.writes(), 0, "no newline yet: the bytes wait");
    assert_eq!(dev.output().waiting(), 5);
    print(&mut dev, b", world\n");
    assert_eq!(*sink.0.lock().unwrap(), vec![b"hello, world\n".to_vec()]);
    assert_eq!(kicks(&kick), 1, "one kick for the first waiting byte only");
}

#[test]
fn a_newline_inside_a_burst_writes_the_whole_burst() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::new(Box::new(sink.clone())));
    dev.write(COM1_BASE, THR, b"ab\ncd");
    assert_eq!(sink.bytes(), b"ab\ncd");
    assert_eq!(dev.output().waiting(), 0);
}

#[test]
fn a_full_buffer_is_written_without_a_newline() {
    let sink = Sink::default();
    let (mut dev, kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, &vec![b'x'; FLUSH_SIZE - 1]);
    assert_eq!(sink.writes(), 0);
    print(&mut dev, b"y");
    assert_eq!(sink.writes(), 1);
    assert_eq!(sink.bytes().len(), FLUSH_SIZE);
    assert_eq!(
        kicks(&kick),
        1,
        "a flood kicks the timer once, not per byte"
    );
}

#[test]
fn the_timer_writes_a_prompt_and_rearms_on_the_next_byte() {
    let sink = Sink::default();
    let (mut dev, kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, b"$ ");
    assert_eq!(kicks(&kick), 1);
    assert_eq!(sink.writes(), 0);
    assert!(!dev.flush_timer(), "written now, not re-armed");
    assert_eq!(sink.bytes(), b"$ ");
    // The echo of a typed character needs the timer again.
    print(&mut dev, b"l");
    assert_eq!(kicks(&kick), 1);
    dev.flush_timer();
    assert_eq!(sink.bytes(), b"$ l");
    // A timer that finds nothing to write writes nothing.
    dev.flush_timer();
    assert_eq!(sink.writes(), 2);
}

#[test]
fn no_kick_while_one_is_pending_even_across_newline_flushes() {
    let (mut dev, kick) = batched(SerialOut::new(Box::new(Sink::default())));
    print(&mut dev, b"a");
    print(&mut dev, b"b\n");
    print(&mut dev, b"c");
    assert_eq!(kicks(&kick), 1, "the pending timer covers 'c' too");
}

/// A guest printing lines: the timer finds that output was written since it was
/// armed, so the partial line is left to end and the timer is armed once more.
#[test]
fn a_timer_that_finds_lines_written_waits_one_more_period() {
    let sink = Sink::default();
    let (mut dev, kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, b"line 1\nline 2\nlin");
    assert_eq!(kicks(&kick), 1);
    assert!(dev.flush_timer(), "lines were written: arm again");
    assert_eq!(sink.bytes(), b"line 1\nline 2\n");
    print(&mut dev, b"e 3\nli");
    assert_eq!(kicks(&kick), 0, "still covered by the re-armed timer");
    assert!(dev.flush_timer());
    // The guest stopped mid-line: the next firing writes what waits.
    assert!(!dev.flush_timer());
    assert_eq!(sink.bytes(), b"line 1\nline 2\nline 3\nli");
    print(&mut dev, b"ne 4");
    assert_eq!(kicks(&kick), 1, "a new kick after the timer wrote");
    assert!(
        !dev.flush_timer(),
        "nothing written since the kick: write now"
    );
    assert_eq!(sink.bytes(), b"line 1\nline 2\nline 3\nline 4");
}

#[test]
fn order_is_kept_across_every_kind_of_flush() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::new(Box::new(sink.clone())));
    let mut expected = Vec::new();
    let mut say = |dev: &mut SerialDevice, text: &[u8], burst: bool| {
        if burst {
            dev.write(COM1_BASE, THR, text);
        } else {
            print(dev, text);
        }
        expected.extend_from_slice(text);
    };
    say(&mut dev, b"boot: ", false);
    dev.flush_timer();
    say(&mut dev, b"ok\nlogin", false);
    say(&mut dev, b": root\nPass", true);
    say(&mut dev, &[b'.'; FLUSH_SIZE + 10], false);
    dev.flush_timer();
    say(&mut dev, b"tail", false);
    drop(dev);
    assert_eq!(sink.bytes(), expected);
    assert!(sink.writes() >= 5);
}

#[test]
fn waiting_bytes_are_written_when_the_device_is_dropped() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, b"no newline");
    drop(dev);
    assert_eq!(sink.bytes(), b"no newline");
}

#[test]
fn the_exit_flush_writes_everything() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::new(Box::new(sink.clone())));
    print(&mut dev, b"last words");
    dev.flush_output();
    assert_eq!(sink.bytes(), b"last words");
    assert_eq!(dev.output().waiting(), 0);
}

#[test]
fn the_limit_cuts_batched_output_at_the_same_byte() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::with_limit(Box::new(sink.clone()), 10));
    print(&mut dev, b"0123");
    print(&mut dev, b"456");
    assert_eq!(sink.writes(), 0);
    assert!(dev.output().is_open());
    // The buffer now holds more than the limit: it is cut and written at once.
    dev.write(COM1_BASE, THR, b"789abc");
    assert_eq!(sink.bytes(), b"0123456789");
    assert!(!dev.output().is_open());
    print(&mut dev, b"more\n");
    dev.flush_output();
    assert_eq!(sink.bytes(), b"0123456789");
    assert_eq!(
        dev.output().waiting(),
        0,
        "output past the limit is not kept"
    );
}

#[test]
fn output_ending_exactly_at_the_limit_is_all_written() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::with_limit(Box::new(sink.clone()), 4));
    print(&mut dev, b"abcd");
    dev.flush_timer();
    assert_eq!(sink.bytes(), b"abcd");
    assert!(dev.output().is_open(), "nothing was cut yet");
    print(&mut dev, b"e");
    assert!(!dev.output().is_open());
    assert_eq!(sink.bytes(), b"abcd");
}

#[test]
fn a_failing_sink_stops_buffering() {
    let (mut dev, _kick) = batched(SerialOut::new(Box::new(Broken)));
    print(&mut dev, b"lost\n");
    assert!(!dev.output().is_open());
    print(&mut dev, b"never kept");
    assert_eq!(dev.output().waiting(), 0);
}

#[test]
fn the_signal_handler_flush_keeps_the_limit_and_ends_output() {
    let sink = Sink::default();
    let (mut dev, _kick) = batched(SerialOut::with_limit(Box::new(sink.clone()), 6));
    print(&mut dev, b"abc");
    dev.flush_timer();
    print(&mut dev, b"defgh");
    dev.flush_output_in_signal_handler();
    assert_eq!(
        sink.bytes(),
        b"abcdef",
        "cut at the limit, as push_out cuts"
    );
    // The process is about to exit: nothing more is taken, nothing written twice.
    print(&mut dev, b"\n");
    drop(dev);
    assert_eq!(sink.bytes(), b"abcdef");
}

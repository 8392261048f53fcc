//! The 8250/16550A serial console at 0x3f8 (IRQ 4), built on vm-superio.
//!
//! vm-superio implements the UART registers; this file adds what a VMM needs around
//! them:
//! - output batching: vm-superio flushes its writer after every byte, which would be
//!   one `write(2)` per guest byte. [`SerialOut`] collects the bytes of one guest
//!   access (a `rep outsb` burst brings up to a FIFO's worth) and pushes them out when
//!   the access ends, so guest output order is kept and nothing stays buffered while
//!   the guest runs on.
//! - an output limit: output to a file stops after a set number of bytes, so a guest
//!   cannot fill the host's disk ([`SerialOut::with_limit`]).
//! - input pacing: host input is queued here and fed into the 64-byte receive FIFO as
//!   the guest drains it, so a large paste is neither lost nor held in an unbounded
//!   buffer (the event loop stops reading stdin while [`SerialDevice::wants_input`]
//!   is false and resumes on the `input_room` event).

use std::collections::VecDeque;
use std::io::{self, Write};

use vm_superio::serial::NoEvents;
use vm_superio::Serial;

use crate::bus::BusDevice;
use crate::EventFdTrigger;

/// I/O port base of COM1.
pub const COM1_BASE: u64 = 0x3f8;
/// Number of ports the UART decodes.
pub const COM1_LEN: u64 = 8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u32 = 4;

/// Receive buffer register: reading it takes a byte out of the FIFO (8250 datasheet).
const RBR_OFFSET: u64 = 0;
/// Host input queued beyond the FIFO; above this the event loop stops reading stdin.
const PENDING_INPUT_LIMIT: usize = 64 * 1024;

/// Where guest serial output goes.
pub struct SerialOut {
    sink: Option<Box<dyn Write + Send>>,
    /// False once the sink failed or the limit was reached. The sink itself stays: it
    /// is dropped with the device on the VMM thread, because output is written on a
    /// vCPU thread, whose filter does not allow `close`.
    open: bool,
    batch: Vec<u8>,
    /// The output limit in bytes and how much of it is left, if there is one.
    limit: Option<(u64, u64)>,
}

impl SerialOut {
    /// Output to `sink` (stdout, a file, or a test buffer).
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            sink: Some(sink),
            open: true,
            batch: Vec::with_capacity(256),
            limit: None,
        }
    }

    /// Output to `sink`, of which at most `max` bytes are written. Output past the
    /// limit is dropped and reported once on stderr; the guest keeps running, as with
    /// a terminal that has been switched off.
    pub fn with_limit(sink: Box<dyn Write + Send>, max: u64) -> Self {
        Self {
            limit: Some((max, max)),
            ..Self::new(sink)
        }
    }

    /// Output that is dropped (`--serial none`).
    pub fn discard() -> Self {
        Self {
            sink: None,
            open: false,
            batch: Vec::new(),
            limit: None,
        }
    }

    /// Writes the bytes collected during the current guest access to the sink.
    ///
    /// A sink that fails (a closed pipe, a full disk) is reported once and then no
    /// longer written: the guest keeps running, as it would with a disconnected cable.
    pub fn push_out(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut cut = false;
        if let Some((max, left)) = self.limit.as_mut() {
            let fits = usize::try_from(*left).unwrap_or(usize::MAX);
            if self.batch.len() > fits {
                self.batch.truncate(fits);
                cut = true;
                log::warn!(
                    "serial output reached its limit of {max} bytes (--serial file:PATH,max=SIZE); further output is dropped"
                );
            }
            *left -= self.batch.len() as u64;
        }
        if let Some(sink) = self.sink.as_mut().filter(|_| self.open) {
            if let Err(e) = sink.write_all(&self.batch).and_then(|()| sink.flush()) {
                log::error!("serial output failed, dropping further output: {e}");
                self.open = false;
            }
        }
        if cut {
            // No more output: the message above stays the only one.
            self.open = false;
        }
        self.batch.clear();
    }

    /// Whether output still reaches the sink.
    pub fn is_open(&self) -> bool {
        self.open
    }
}

impl Write for SerialOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open {
            self.batch.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    /// Deliberately does nothing: vm-superio calls this after every byte, and the real
    /// flush happens once per guest access in [`SerialOut::push_out`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The COM1 UART with host-side input queue and batched output.
pub struct SerialDevice {
    uart: Serial<EventFdTrigger, NoEvents, SerialOut>,
    pending_input: VecDeque<u8>,
    input_room: Option<EventFdTrigger>,
    input_paused: bool,
}

impl SerialDevice {
    /// Creates the UART. `interrupt` raises IRQ 4; `input_room`, if given, is signalled
    /// when queued input has drained after [`SerialDevice::wants_input`] returned false.
    pub fn new(
        interrupt: EventFdTrigger,
        out: SerialOut,
        input_room: Option<EventFdTrigger>,
    ) -> Self {
        Self {
            uart: Serial::new(interrupt, out),
            pending_input: VecDeque::new(),
            input_room,
            input_paused: false,
        }
    }

    /// Queues host input for the guest. Bytes go into the receive FIFO as room allows;
    /// the rest wait here until the guest reads.
    pub fn queue_input(&mut self, bytes: &[u8]) {
        self.pending_input.extend(bytes);
        self.feed_fifo();
    }

    /// Whether the event loop should read more host input now.
    pub fn wants_input(&mut self) -> bool {
        let wants = self.pending_input.len() < PENDING_INPUT_LIMIT;
        self.input_paused = !wants;
        wants
    }

    /// Bytes of host input not yet in the FIFO.
    pub fn pending_input(&self) -> usize {
        self.pending_input.len()
    }

    /// Gives access to the output side, for tests.
    pub fn output(&self) -> &SerialOut {
        self.uart.writer()
    }

    fn feed_fifo(&mut self) {
        let room = self.uart.fifo_capacity().min(self.pending_input.len());
        if room == 0 {
            return;
        }
        let chunk: Vec<u8> = self.pending_input.iter().take(room).copied().collect();
        // Only what the UART took leaves the queue: in loopback mode (MCR bit 4) it
        // takes nothing, and the bytes wait until the guest leaves loopback (found by
        // fuzz/fuzz_targets/serial.rs: they used to be dropped, and input then stalled).
        let taken = match self.uart.enqueue_raw_bytes(&chunk) {
            Ok(n) => n,
            Err(vm_superio::serial::Error::FullFifo) => 0,
            // The bytes are in the FIFO but the interrupt could not be raised: an
            // eventfd error, which would also break every other interrupt: report it.
            Err(e) => {
                log::error!("serial input interrupt failed: {e:?}");
                chunk.len()
            }
        };
        self.pending_input.drain(..taken);
        if self.input_paused && self.pending_input.len() < PENDING_INPUT_LIMIT / 2 {
            self.input_paused = false;
            if let Some(room) = &self.input_room {
                // A failed wake-up only delays input until the next read; nothing is lost.
                let _ = vm_superio::Trigger::trigger(room);
            }
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        // Every 8250 register is one byte wide; see the bus contract for longer accesses.
        for byte in data.iter_mut() {
            *byte = self.uart.read(offset as u8);
        }
        if offset == RBR_OFFSET && !self.pending_input.is_empty() {
            self.feed_fifo();
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        for byte in data {
            // Errors are an interrupt eventfd that cannot be written; the byte itself
            // has been taken by then, so keep going.
            let _ = self.uart.write(offset as u8, *byte);
        }
        self.uart.writer_mut().push_out();
        // A write that ends loopback mode makes the FIFO take host input again; without
        // this, input queued meanwhile would wait for the next host keystroke, forever
        // if the event loop had paused reading stdin.
        if !self.pending_input.is_empty() {
            self.feed_fifo();
        }
    }
}

#[cfg(test)]
#[path = "serial_tests.rs"]
mod tests;

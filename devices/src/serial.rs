//! The 8250/16550A serial console at 0x3f8 (IRQ 4), built on vm-superio.
//!
//! vm-superio implements the UART registers; this file adds what a VMM needs around
//! them:
//! - output batching: vm-superio flushes its writer after every byte, which would be
//!   one `write(2)` per guest byte. [`SerialOut`] (serial/output.rs) buffers output
//!   and writes it on a newline, at [`FLUSH_SIZE`] bytes, when the VMM thread's flush
//!   timer fires, and at exit; the module says what that guarantees.
//! - an output limit: output to a file stops after a set number of bytes, so a guest
//!   cannot fill the host's disk ([`SerialOut::with_limit`]).
//! - input pacing: host input is queued here and fed into the 64-byte receive FIFO as
//!   the guest drains it, so a large paste is neither lost nor held in an unbounded
//!   buffer (the event loop stops reading stdin while [`SerialDevice::wants_input`]
//!   is false and resumes on the `input_room` event).
//! - an output watch for `--snapshot-on-serial` (serial/watch.rs): an eventfd written
//!   the first time the guest prints a given text ([`SerialDevice::watch_output`]).
//! - snapshot state (serial/state.rs): the UART's registers and FIFO plus the queued
//!   host input, as [`SerialSnapshot`], and a restore that checks it.

mod output;
mod state;
mod watch;

use std::collections::VecDeque;
use std::io;

pub use output::{SerialOut, FLUSH_SIZE};
pub use state::SerialSnapshot;
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
/// Most queued host input a snapshot may carry. The reader stops only once the queue
/// is past [`PENDING_INPUT_LIMIT`], after a read of up to 4 KiB (vmm's event loop), so
/// a real queue can exceed the limit by that much; twice the limit leaves room.
pub const PENDING_INPUT_RESTORE_MAX: usize = 2 * PENDING_INPUT_LIMIT;
/// Size of the UART's receive FIFO (a 16550A's, as vm-superio models it).
pub const FIFO_SIZE: usize = 64;

/// Errors of the serial console's set-up and restore.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("the serial output watch's pattern is empty")]
    EmptyPattern,
    #[error("the snapshot's receive FIFO holds {0} bytes, more than the UART's {FIFO_SIZE}")]
    FifoOverflow(usize),
    #[error("the snapshot has {0} bytes of queued serial input, more than the {PENDING_INPUT_RESTORE_MAX} allowed")]
    PendingInput(usize),
    #[error("cannot raise the serial interrupt that the snapshot has pending")]
    Interrupt(#[source] io::Error),
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

    /// Writes `trigger` the first time the guest prints `pattern`
    /// ([`SerialOut::watch_output`], which says what counts).
    pub fn watch_output(
        &mut self,
        pattern: Vec<u8>,
        trigger: EventFdTrigger,
    ) -> Result<(), SerialError> {
        self.uart.writer_mut().watch_output(pattern, trigger)
    }

    /// Gives access to the output side, for tests.
    pub fn output(&self) -> &SerialOut {
        self.uart.writer()
    }

    /// The VMM thread's flush timer fired: writes the output that waits for it, or
    /// returns true when the timer should be armed again ([`SerialOut::flush_timer`]).
    pub fn flush_timer(&mut self) -> bool {
        self.uart.writer_mut().flush_timer()
    }

    /// The flush timer cannot be armed: writes waiting output now
    /// ([`SerialOut::flush_untimed`]).
    pub fn flush_untimed(&mut self) {
        self.uart.writer_mut().flush_untimed();
    }

    /// Writes waiting output from the trap-mode SIGSYS handler, just before the process
    /// exits ([`SerialOut::push_out_in_signal_handler`]).
    pub fn flush_output_in_signal_handler(&mut self) {
        self.uart.writer_mut().push_out_in_signal_handler();
    }

    /// Writes every byte of waiting output now (at exit).
    pub fn flush_output(&mut self) {
        self.uart.writer_mut().push_out();
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
        let before = self.uart.writer().waiting();
        for byte in data {
            // Errors are an interrupt eventfd that cannot be written; the byte itself
            // has been taken by then, so keep going.
            let _ = self.uart.write(offset as u8, *byte);
        }
        self.uart.writer_mut().end_access(before);
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

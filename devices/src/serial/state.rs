//! Snapshot state of the serial console: the UART's registers and receive FIFO (a
//! serde mirror of vm-superio's `SerialState`, which has no serde) and the host input
//! queued behind the FIFO.
//!
//! What is not state: the output side. The VMM flushes waiting output before it takes
//! a snapshot, and a restored device keeps its own sink, limit, flush timer and output
//! watch, which are host configuration. The interrupt trigger and the `input_room`
//! line are host fds and stay too.
//!
//! A snapshot file is untrusted input: restore checks the FIFO against the UART's size
//! and the queued input against [`PENDING_INPUT_RESTORE_MAX`]. Any register values are
//! accepted, since the guest can write any of them and vm-superio handles them all.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use vm_superio::serial::{NoEvents, SerialState};
use vm_superio::Serial;

use super::{SerialDevice, SerialError, SerialOut, FIFO_SIZE, PENDING_INPUT_RESTORE_MAX};

/// The serial console's state, as written to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSnapshot {
    /// Divisor latch, low and high bytes (DLL, DLM).
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    /// Interrupt enable register (IER).
    pub interrupt_enable: u8,
    /// Interrupt identification register (IIR): the interrupts pending.
    pub interrupt_identification: u8,
    /// Line control register (LCR).
    pub line_control: u8,
    /// Line status register (LSR).
    pub line_status: u8,
    /// Modem control register (MCR).
    pub modem_control: u8,
    /// Modem status register (MSR).
    pub modem_status: u8,
    /// Scratch register (SCR).
    pub scratch: u8,
    /// The receive FIFO, oldest byte first: at most [`FIFO_SIZE`] bytes.
    pub in_buffer: Vec<u8>,
    /// Host input not yet in the FIFO, oldest byte first.
    pub pending_input: Vec<u8>,
}

impl SerialSnapshot {
    fn registers(&self) -> SerialState {
        SerialState {
            baud_divisor_low: self.baud_divisor_low,
            baud_divisor_high: self.baud_divisor_high,
            interrupt_enable: self.interrupt_enable,
            interrupt_identification: self.interrupt_identification,
            line_control: self.line_control,
            line_status: self.line_status,
            modem_control: self.modem_control,
            modem_status: self.modem_status,
            scratch: self.scratch,
            in_buffer: self.in_buffer.clone(),
        }
    }
}

impl SerialDevice {
    /// The device's state. Waiting output is not part of it: flush it first.
    pub fn snapshot(&self) -> SerialSnapshot {
        let r = self.uart.state();
        SerialSnapshot {
            baud_divisor_low: r.baud_divisor_low,
            baud_divisor_high: r.baud_divisor_high,
            interrupt_enable: r.interrupt_enable,
            interrupt_identification: r.interrupt_identification,
            line_control: r.line_control,
            line_status: r.line_status,
            modem_control: r.modem_control,
            modem_status: r.modem_status,
            scratch: r.scratch,
            in_buffer: r.in_buffer,
            pending_input: self.pending_input.iter().copied().collect(),
        }
    }

    /// Puts the UART and the input queue in the state `s`, keeping this device's
    /// output, interrupt and `input_room` lines. Raises the interrupt if `s` has one
    /// pending and enabled (vm-superio's `from_state`). On error nothing has changed.
    pub fn restore(&mut self, s: &SerialSnapshot) -> Result<(), SerialError> {
        if s.in_buffer.len() > FIFO_SIZE {
            return Err(SerialError::FifoOverflow(s.in_buffer.len()));
        }
        if s.pending_input.len() > PENDING_INPUT_RESTORE_MAX {
            return Err(SerialError::PendingInput(s.pending_input.len()));
        }
        let interrupt = self.uart.interrupt_evt().clone();
        // from_state takes the writer by value and drops it on error, so it gets a
        // stand-in; the real output moves over only once the UART is built.
        let mut uart =
            Serial::from_state(&s.registers(), interrupt, NoEvents, SerialOut::discard()).map_err(
                |e| match e {
                    vm_superio::serial::Error::FullFifo => {
                        SerialError::FifoOverflow(s.in_buffer.len())
                    }
                    // from_state writes nothing but the interrupt eventfd.
                    vm_superio::serial::Error::Trigger(e)
                    | vm_superio::serial::Error::IOError(e) => SerialError::Interrupt(e),
                },
            )?;
        std::mem::swap(uart.writer_mut(), self.uart.writer_mut());
        self.uart = uart;
        self.pending_input = VecDeque::from(s.pending_input.clone());
        // The new process's console reader starts out reading; the first input it
        // queues asks `wants_input` again and pauses if the queue is still long.
        self.input_paused = false;
        // Room in the FIFO with input waiting (a snapshot taken in loopback mode, or
        // an edited one) would otherwise wait for the guest's next read.
        if !self.pending_input.is_empty() {
            self.feed_fifo();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

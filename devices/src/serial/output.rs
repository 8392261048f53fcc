//! Guest serial output: batched, limited, never reordered.
//!
//! vm-superio hands the writer one byte at a time and flushes after each. Written
//! straight through, that is one `write(2)` per guest byte, and Linux prints byte by
//! byte with `outb` (284 242 calls in the Linux workload). [`SerialOut`] keeps the
//! bytes in one buffer and writes it out:
//! - at the end of a guest access that brought a newline, so that output stays
//!   line by line for a reader (and for a log that the process might not outlive);
//! - at the end of an access that filled the buffer to [`FLUSH_SIZE`];
//! - when the VMM thread's flush timer fires ([`SerialOut::flush_timer`]): a prompt or
//!   the echo of a typed character has no newline, and must still show at once. The
//!   first byte that waits asks for the timer by writing the `kick` eventfd given to
//!   [`SerialOut::batched`]; while that request is pending no further kick is made.
//!   If output was written meanwhile (the guest prints lines), the timer is armed once
//!   more instead, so a flood of lines costs neither partial writes nor kicks;
//! - when the VMM asks at exit ([`SerialOut::push_out`]), and when it is dropped.
//!
//! Without a kick eventfd (tests, the fuzzer) nothing waits for a timer: the buffer
//! is written at the end of every guest access, as before batching.
//!
//! What is guaranteed (docs/ARCHITECTURE.md, "Serial output", names the VMM's side):
//! - **order:** every byte goes through the one buffer, in guest order, under the
//!   device's lock, and every write to the sink takes the buffer from its start; so
//!   output is never reordered, whichever thread writes it;
//! - **nothing lost** when the VMM ends the run itself: it stops the vCPUs and then
//!   calls [`SerialOut::push_out`] on every way out, and a dropped `SerialOut` writes
//!   what waits;
//! - **trap mode:** the SIGSYS handler writes the buffer before `_exit`
//!   ([`SerialOut::push_out_in_signal_handler`]), unless the lock stays taken;
//! - **a kill** (`--sandbox enforce`'s, `SIGKILL`) loses what waits. Between guest
//!   accesses that is never a newline: at most the start of the current line, under
//!   [`FLUSH_SIZE`] bytes, written during the last two timer periods; plus, if a vCPU
//!   was inside an access at that moment, that access's bytes.

use std::io::{self, Write};

use super::watch::OutputWatch;
use super::SerialError;
use crate::EventFdTrigger;

/// Waiting output is written once it reaches this many bytes, newline or not.
pub const FLUSH_SIZE: usize = 4096;

/// Where guest serial output goes.
pub struct SerialOut {
    sink: Option<Box<dyn Write + Send>>,
    /// False once the sink failed or the limit was reached. The sink itself stays: it
    /// is dropped with the device on the VMM thread, because output is written on a
    /// vCPU thread, whose filter does not allow `close`.
    pub(super) open: bool,
    batch: Vec<u8>,
    /// The output limit in bytes and how much of it is left, if there is one.
    limit: Option<(u64, u64)>,
    /// The VMM thread's flush timer, when output is batched.
    timer: Option<FlushTimer>,
    /// The `--snapshot-on-serial` watch, until it fires.
    watch: Option<OutputWatch>,
}

/// The request line to the VMM thread's flush timer.
struct FlushTimer {
    kick: EventFdTrigger,
    /// A kick was sent and the timer has not fired since: the waiting bytes will be
    /// written by then, so further bytes need no kick of their own.
    requested: bool,
    /// Output was written since the kick or the last re-arming: what waits now is
    /// younger than one timer period.
    wrote: bool,
}

impl SerialOut {
    /// Output to `sink` (stdout, a file, or a test buffer).
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            sink: Some(sink),
            open: true,
            batch: Vec::with_capacity(FLUSH_SIZE),
            limit: None,
            timer: None,
            watch: None,
        }
    }

    /// Output to `sink`, of which at most `max` bytes are written. Output past the
    /// limit is dropped and reported once on stderr; the guest keeps running, as with
    /// a terminal that has been switched off.
    pub fn with_limit(sink: Box<dyn Write + Send>, max: u64) -> Self {
        let mut out = Self::new(sink);
        out.limit = Some((max, max));
        out
    }

    /// Output that is dropped (`--serial none`).
    pub fn discard() -> Self {
        Self {
            sink: None,
            open: false,
            batch: Vec::new(),
            limit: None,
            timer: None,
            watch: None,
        }
    }

    /// Batches output across guest accesses. `kick` is written when bytes start to
    /// wait; whoever reads it must call [`SerialOut::flush_timer`] soon after (the VMM
    /// thread arms a timer of a few milliseconds).
    pub fn batched(mut self, kick: EventFdTrigger) -> Self {
        self.timer = Some(FlushTimer {
            kick,
            requested: false,
            wrote: false,
        });
        self
    }

    /// Writes `trigger` the first time the guest's output contains `pattern`, then
    /// never again; replaces any earlier watch. The whole stream counts, split across
    /// accesses or not, and whether or not it still reaches the sink (past the limit,
    /// `--serial none`). The trigger is written once the matching bytes are in the
    /// output, so that a snapshot taken on it comes after them once the VMM flushes.
    /// An empty pattern is refused: it would match before the guest printed anything.
    pub fn watch_output(
        &mut self,
        pattern: Vec<u8>,
        trigger: EventFdTrigger,
    ) -> Result<(), SerialError> {
        self.watch = Some(OutputWatch::new(pattern, trigger).ok_or(SerialError::EmptyPattern)?);
        Ok(())
    }

    /// Called at the end of a guest access, with the buffer's length before it: writes
    /// the buffer out or makes sure the timer will.
    pub(super) fn end_access(&mut self, before: usize) {
        let Some(timer) = self.timer.as_mut() else {
            return self.push_out();
        };
        if self.batch.is_empty() {
            return;
        }
        let newline = self.batch[before.min(self.batch.len())..].contains(&b'\n');
        // Bytes past the limit are cut now, so that the notice comes when they arrive.
        let over_limit = self
            .limit
            .is_some_and(|(_, left)| self.batch.len() as u64 > left);
        if newline || over_limit || self.batch.len() >= FLUSH_SIZE {
            return self.push_out();
        }
        if !timer.requested {
            match vm_superio::Trigger::trigger(&timer.kick) {
                Ok(()) => {
                    timer.requested = true;
                    timer.wrote = false;
                }
                Err(e) => {
                    // Without the timer the bytes could wait for ever: write them now.
                    log::error!("serial flush timer cannot be requested: {e}");
                    self.push_out();
                }
            }
        }
    }

    /// The flush timer fired: writes what waits, and lets the next waiting byte kick
    /// the timer again. Returns true when, instead, the timer should be armed once
    /// more: output was written since it was armed (the guest prints whole lines), so
    /// what waits is younger than one period and its line will likely end soon. A
    /// flood of lines then costs no partial writes and no kicks; a byte waits at
    /// most two periods.
    pub fn flush_timer(&mut self) -> bool {
        if let Some(timer) = self.timer.as_mut() {
            if timer.requested && timer.wrote && !self.batch.is_empty() {
                timer.wrote = false;
                return true;
            }
        }
        self.flush_untimed();
        false
    }

    /// The timer cannot be armed: writes what waits now, and lets the next waiting
    /// byte kick the timer again.
    pub fn flush_untimed(&mut self) {
        self.push_out();
        if let Some(timer) = self.timer.as_mut() {
            timer.requested = false;
        }
    }

    /// Writes every waiting byte to the sink now.
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
        if let Some(timer) = self.timer.as_mut() {
            timer.wrote = true;
        }
    }

    /// Writes the waiting bytes from a signal handler, just before the process exits
    /// (the trap-mode SIGSYS report): as [`SerialOut::push_out`], with the limit, but
    /// with no message, no allocation and nothing but `write(2)` on the sink, so it is
    /// async-signal-safe for the sinks sandvmm uses (a file, stdout).
    pub fn push_out_in_signal_handler(&mut self) {
        let Some(sink) = self.sink.as_mut().filter(|_| self.open) else {
            return;
        };
        let fits = match self.limit {
            Some((_, left)) => usize::try_from(left).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let n = self.batch.len().min(fits);
        // Errors are not reported: the process is about to exit.
        let _ = sink.write_all(&self.batch[..n]);
        self.batch.clear();
        self.open = false;
    }

    /// Bytes waiting to be written.
    pub fn waiting(&self) -> usize {
        self.batch.len()
    }

    /// Whether output still reaches the sink.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the sink is still held (it is dropped only with the device).
    pub fn has_sink(&self) -> bool {
        self.sink.is_some()
    }
}

impl Write for SerialOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open {
            self.batch.extend_from_slice(buf);
        }
        // Only now that the bytes are output: see `watch_output`.
        if let Some(watch) = self.watch.as_mut() {
            if watch.feed(buf) {
                self.watch = None;
            }
        }
        Ok(buf.len())
    }

    /// Deliberately does nothing: vm-superio calls this after every byte; the real
    /// writes happen as the module documentation says.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SerialOut {
    /// The last chance for waiting bytes: the VMM flushes at exit on its own, but a
    /// device dropped on any other path must not take output with it.
    fn drop(&mut self) {
        self.push_out();
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
pub(crate) mod tests;

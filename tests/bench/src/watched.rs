//! A running sandvmm whose output the bench times: a thread reads its stdout all the
//! time and notes, for each of a list of markers in turn, when the read that brought
//! the marker's first byte returned (CLOCK_MONOTONIC, comparable with the times
//! sandvmm's `SANDVMM_TRACE_BOOT=1` trace prints). Its stdin stays open for typing,
//! and it is killed, with its process group, if the bench gives up on it.

use std::io::{Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sandvmm_harness::Guarded;
use vmm::vcpu::monotonic_ns;

/// How long to wait for a marker or for the exit.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A running sandvmm whose stdout a thread watches for `markers`, in order.
pub struct Watched {
    child: Guarded,
    stdin: Option<ChildStdin>,
    /// For each marker found: when the read that brought its first byte returned.
    marks: Receiver<u128>,
    markers: Vec<&'static str>,
    next: usize,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// Reads `from` to its end, sending the time (from `now`, taken as each read returns)
/// of each marker in turn; returns all it read.
fn watch(
    mut from: impl Read,
    markers: Vec<&'static str>,
    marks: mpsc::Sender<u128>,
    now: impl Fn() -> u128,
) -> String {
    let (mut seen, mut reads, mut buf) = (Vec::new(), Vec::new(), [0u8; 4096]);
    let (mut markers, mut from_pos) = (markers.into_iter(), 0);
    let mut marker = markers.next();
    while let Ok(n @ 1..) = from.read(&mut buf) {
        let at = now();
        seen.extend_from_slice(&buf[..n]);
        reads.push((seen.len(), at));
        while let Some(m) = marker {
            let Some(pos) = seen[from_pos..]
                .windows(m.len())
                .position(|w| w == m.as_bytes())
            else {
                break;
            };
            let first_byte = from_pos + pos;
            if let Some(&(_, at)) = reads.iter().find(|(end, _)| *end > first_byte) {
                let _ = marks.send(at);
            }
            from_pos = first_byte + m.len();
            marker = markers.next();
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

impl Watched {
    /// Spawns `cmd` with piped stdio; returns the time just before the spawn (exec)
    /// too.
    pub fn start(cmd: &mut Command, markers: &[&'static str]) -> (u128, Watched) {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let exec = monotonic_ns();
        let mut child = Guarded::spawn(cmd);
        let pipes = child.child();
        let (stdin, out, err) = (pipes.stdin.take(), pipes.stdout.take(), pipes.stderr.take());
        let (tx, marks) = mpsc::channel();
        let watched = markers.to_vec();
        let stdout = out.map(|out| thread::spawn(move || watch(out, watched, tx, monotonic_ns)));
        let stderr = err.map(|mut err| {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        let vm = Watched {
            child,
            stdin,
            marks,
            markers: markers.to_vec(),
            next: 0,
            stdout,
            stderr,
        };
        (exec, vm)
    }

    /// Types `text` on the guest's console.
    pub fn send(&mut self, text: &[u8]) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(text)
            .map_err(|e| format!("cannot write to sandvmm: {e}"))
    }

    /// When the next marker arrived (its first byte).
    pub fn next_mark(&mut self) -> Result<u128, String> {
        let marker = self.markers.get(self.next).copied().unwrap_or("nothing");
        self.next += 1;
        match self.marks.recv_timeout(TIMEOUT) {
            Ok(at) => Ok(at),
            Err(_) => Err(self.fail(&format!("the guest never printed {marker:?}"))),
        }
    }

    /// The process id, to read /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills sandvmm; `what` with its stderr.
    fn fail(&mut self, what: &str) -> String {
        self.child.kill();
        let stderr = self.stderr.take().and_then(|h| h.join().ok());
        format!("{what}; sandvmm's stderr:\n{}", stderr.unwrap_or_default())
    }

    /// Closes stdin and waits for exit status 0; returns stdout and stderr.
    pub fn finish(mut self) -> Result<(String, String), String> {
        self.stdin = None;
        let Some(status) = self.child.wait_deadline(Instant::now() + TIMEOUT) else {
            return Err(self.fail("sandvmm did not exit"));
        };
        let join = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok());
        let (stdout, stderr) = (join(self.stdout.take()), join(self.stderr.take()));
        let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
        match status.success() {
            true => Ok((stdout, stderr)),
            false => Err(format!("sandvmm exited with {status}:\n{stderr}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives its chunks one read at a time.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(chunk) = self.0.first().copied() else {
                return Ok(0);
            };
            self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn markers_are_found_in_order_across_reads() {
        let (tx, rx) = mpsc::channel();
        let input = Chunks(vec![b"boot\nSANDVMM-TEST: echo re", b"ady\necho: x", b"\n"]);
        // The n-th read returns at time n.
        let reads = std::cell::Cell::new(0);
        let clock = || {
            reads.set(reads.get() + 1);
            reads.get()
        };
        let markers = vec!["SANDVMM-TEST: echo ready", "echo: x\n", "PASS"];
        let all = watch(input, markers, tx, clock);
        assert_eq!(all, "boot\nSANDVMM-TEST: echo ready\necho: x\n");
        // Each marker split over two reads has the first one's time; PASS never came.
        assert_eq!(rx.iter().collect::<Vec<u128>>(), [1, 2]);
    }
}

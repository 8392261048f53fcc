//! Pausing the vCPUs for a snapshot, and letting them go again.
//!
//! The VMM thread asks with [`Pause::request`] and kicks every vCPU thread out of
//! `KVM_RUN` (the same kick signal as at shutdown). Each vCPU thread, before its next
//! `KVM_RUN`, calls [`Pause::park`]: it completes the exit it has just handled (a
//! `KVM_RUN` with `immediate_exit` set, so that a port or MMIO read lands in the
//! registers before they are read), says it is parked, and waits. Once every vCPU is
//! parked the VMM thread reads their state through their fds (kvm_state.rs), the
//! devices and the VM, then calls [`Pause::release`]: the vCPUs go on, or, with the
//! stop flag set, end.
//!
//! The vCPU threads make no new system call for this (`KVM_RUN` and futex only), so
//! their filters are the same with or without `--snapshot-to`; the VMM thread's reads
//! are pinned to the vCPU fds (`$snapvcpu`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::VcpuFd;
use vmm_sys_util::signal::Killable;

use crate::vcpu::{kick_signal, Vcpu};

/// How long the VMM thread waits for every vCPU to park.
const PARK_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause protocol's shared state.
pub struct Pause {
    requested: AtomicBool,
    /// Bumped by every release; a parked vCPU waits for it to change.
    generation: Mutex<u64>,
    released: Condvar,
    /// Each parked vCPU sends its index.
    parked: Mutex<Sender<u8>>,
}

impl Pause {
    /// A pause control and the receiving end of the vCPUs' "parked" messages.
    pub fn new() -> (Arc<Pause>, Receiver<u8>) {
        let (tx, rx) = channel();
        let pause = Pause {
            requested: AtomicBool::new(false),
            generation: Mutex::new(0),
            released: Condvar::new(),
            parked: Mutex::new(tx),
        };
        (Arc::new(pause), rx)
    }

    /// Whether the vCPU should park before its next `KVM_RUN` (one load per exit on
    /// the vCPU's hot path).
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// On a vCPU thread: completes the pending exit, says the vCPU is parked and waits
    /// for [`Pause::release`].
    pub fn park(&self, index: u8, fd: &mut VcpuFd) {
        let generation = *self.generation.lock().unwrap_or_else(|p| p.into_inner());
        // KVM finishes the last port or MMIO read into the registers on the next
        // KVM_RUN; with immediate_exit it then returns EINTR without running the guest.
        fd.set_kvm_immediate_exit(1);
        let _ = fd.run();
        fd.set_kvm_immediate_exit(0);
        let _ = self
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(index);
        let mut current = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        while *current == generation && self.requested() {
            current = self
                .released
                .wait(current)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// On the VMM thread: asks every vCPU to park, kicking the threads until each has
    /// answered. On success every vCPU is out of `KVM_RUN` until [`Pause::release`].
    pub fn request(
        &self,
        parked: &Receiver<u8>,
        handles: &[JoinHandle<Vcpu>],
    ) -> Result<(), PauseError> {
        self.requested.store(true, Ordering::Release);
        let deadline = Instant::now() + PARK_TIMEOUT;
        let mut waiting = vec![true; handles.len()];
        while waiting.contains(&true) {
            for (handle, _) in handles.iter().zip(&waiting).filter(|(_, w)| **w) {
                if !handle.is_finished() {
                    let _ = handle.kill(kick_signal());
                }
            }
            match parked.recv_timeout(Duration::from_micros(500)) {
                Ok(index) => {
                    if let Some(w) = waiting.get_mut(usize::from(index)) {
                        *w = false;
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => return Err(PauseError::Timeout),
            }
        }
        Ok(())
    }

    /// On the VMM thread: lets every parked vCPU go on (or end, if the stop flag is set).
    pub fn release(&self) {
        self.requested.store(false, Ordering::Release);
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.released.notify_all();
    }
}

/// Why the vCPUs could not be paused.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("the vCPUs did not pause within {PARK_TIMEOUT:?}")]
    Timeout,
}

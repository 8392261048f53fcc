//! Pausing the vCPUs for a snapshot, and letting them go again.
//!
//! The VMM thread asks with [`Pause::request`] and kicks every vCPU thread out of
//! `KVM_RUN` (the same kick signal as at shutdown). Each vCPU thread, before its next
//! `KVM_RUN`, calls [`Pause::park`]: it completes the exit it has just handled (a
//! `KVM_RUN` with `immediate_exit` set, so that a port or MMIO read lands in the
//! registers before they are saved), saves its own state, hands it over, and waits.
//! The VMM thread reads the devices and the VM while every vCPU is parked, then calls
//! [`Pause::release`]: the vCPUs go on, or, with the stop flag set, end.
//!
//! The vCPU threads read their own state because their filters already allow ioctls
//! on their own vCPU fd; the VMM thread's filter never names a vCPU fd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_cpuid_entry2;
use kvm_ioctls::VcpuFd;
use vmm_sys_util::signal::Killable;

use super::format::VcpuState;
use super::kvm_state::{self, KvmStateError};
use crate::vcpu::{kick_signal, Vcpu};

/// How long the VMM thread waits for every vCPU to park.
const PARK_TIMEOUT: Duration = Duration::from_secs(2);

/// What each vCPU thread needs to save itself.
pub struct SaveInfo {
    /// The CPUID entries the VMM set on the vCPU.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// KVM's list of MSRs to save.
    pub msr_index: Arc<Vec<u32>>,
    /// Shared with the VMM thread.
    pub pause: Arc<Pause>,
}

/// A vCPU's saved state, or why it could not be read.
pub type Saved = (u8, Result<VcpuState, KvmStateError>);

/// The pause protocol's shared state.
pub struct Pause {
    requested: AtomicBool,
    /// Bumped by every release; a parked vCPU waits for it to change.
    generation: Mutex<u64>,
    released: Condvar,
    saved: Mutex<Sender<Saved>>,
}

impl Pause {
    /// A pause control and the receiving end of the vCPUs' saved states.
    pub fn new() -> (Arc<Pause>, Receiver<Saved>) {
        let (tx, rx) = channel();
        let pause = Pause {
            requested: AtomicBool::new(false),
            generation: Mutex::new(0),
            released: Condvar::new(),
            saved: Mutex::new(tx),
        };
        (Arc::new(pause), rx)
    }

    /// Whether the vCPU should park before its next `KVM_RUN` (one relaxed load per
    /// exit on the vCPU's hot path).
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// On a vCPU thread: completes the pending exit, saves the vCPU, hands the state
    /// over and waits for [`Pause::release`].
    pub fn park(&self, index: u8, fd: &mut VcpuFd, info: &SaveInfo) {
        let generation = *self.generation.lock().unwrap_or_else(|p| p.into_inner());
        // KVM finishes the last port or MMIO read into the registers on the next
        // KVM_RUN; with immediate_exit it then returns EINTR without running the guest.
        fd.set_kvm_immediate_exit(1);
        let _ = fd.run();
        fd.set_kvm_immediate_exit(0);
        let state = kvm_state::save_vcpu(fd, &info.cpuid, &info.msr_index);
        let _ = self
            .saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((index, state));
        let mut current = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        while *current == generation && self.requested() {
            current = self
                .released
                .wait(current)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// On the VMM thread: asks every vCPU to park and collects their states, in vCPU
    /// order. Kicks the threads until each has answered.
    pub fn request(
        &self,
        saved: &Receiver<Saved>,
        handles: &[JoinHandle<Vcpu>],
    ) -> Result<Vec<VcpuState>, PauseError> {
        self.requested.store(true, Ordering::Release);
        let deadline = Instant::now() + PARK_TIMEOUT;
        let mut states: Vec<Option<VcpuState>> = handles.iter().map(|_| None).collect();
        while states.iter().any(Option::is_none) {
            for (handle, state) in handles.iter().zip(&states) {
                if state.is_none() && !handle.is_finished() {
                    let _ = handle.kill(kick_signal());
                }
            }
            match saved.recv_timeout(Duration::from_micros(500)) {
                Ok((index, Ok(state))) => {
                    if let Some(slot) = states.get_mut(usize::from(index)) {
                        *slot = Some(state);
                    }
                }
                Ok((index, Err(error))) => return Err(PauseError::Save { index, error }),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => return Err(PauseError::Timeout),
            }
        }
        Ok(states.into_iter().flatten().collect())
    }

    /// On the VMM thread: lets every parked vCPU go on (or end, if the stop flag is set).
    pub fn release(&self) {
        self.requested.store(false, Ordering::Release);
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.released.notify_all();
    }
}

/// Why the vCPUs could not be paused and saved.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("cannot save vCPU {index}")]
    Save {
        index: u8,
        #[source]
        error: KvmStateError,
    },
    #[error("the vCPUs did not pause within {PARK_TIMEOUT:?}")]
    Timeout,
}

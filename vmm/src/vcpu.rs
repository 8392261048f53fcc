//! vCPU threads: one per vCPU, each running `KVM_RUN` and handing exits to the buses.
//!
//! The mapping from a KVM exit to what the thread does next is [`handle_exit`], a plain
//! function over the exit and the buses, so it is unit-tested without KVM. The thread
//! loop around it adds what needs the vCPU fd: the width of a port access, diagnosing
//! an emulation failure, and stopping when the VMM kicks it.
//!
//! Stopping: the VMM sets the shared stop flag and sends [`kick_signal`] to the thread
//! until it has finished. Pausing for a snapshot (snapshot/pause.rs) kicks the same
//! way; the thread then parks before its next `KVM_RUN`. The no-op handler makes a blocked `KVM_RUN` return `EINTR`;
//! repeating the kick closes the window where the signal lands just before `KVM_RUN`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use devices::bus::{Bus, UNCLAIMED_READ};
use kvm_bindings::{
    kvm_run, KVM_EXIT_IO_OUT, KVM_INTERNAL_ERROR_EMULATION, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use sandbox::{CompiledFilter, FilterError, ThreadKind};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// Longest x86 instruction.
const MAX_INSN_LEN: usize = 15;

/// Why a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Reset through the i8042 or a KVM reset event.
    Reset,
    /// ACPI-style power-off reported by KVM.
    PowerOff,
    /// A triple fault (`KVM_EXIT_SHUTDOWN`), which resets a real PC.
    TripleFault,
}

/// What the vCPU loop does after an exit.
#[derive(Debug, PartialEq, Eq)]
pub enum VcpuAction {
    Continue,
    Stop(StopReason),
}

/// Errors that end a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("KVM could not emulate the instruction at RIP {rip:#x} (bytes: {bytes}){hint}")]
    Emulation {
        rip: u64,
        bytes: String,
        hint: &'static str,
    },
    /// An emulation failure the VMM thread has not yet read RIP and bytes for
    /// ([`Vcpu::diagnose_emulation_failure`]); its message if that fails.
    #[error("KVM could not emulate an instruction{hint}")]
    EmulationFailed { hint: &'static str },
    #[error("KVM internal error (suberror {0})")]
    Internal(u32),
    #[error("KVM could not enter the guest (hardware entry failure reason {0:#x})")]
    FailEntry(u64),
    #[error("the guest reported a crash (KVM system event)")]
    GuestCrash,
    #[error("unexpected KVM exit: {0}")]
    UnexpectedExit(String),
    #[error("KVM_RUN failed")]
    Run(#[source] kvm_ioctls::Error),
}

/// Maps one KVM exit to an action, forwarding device accesses to the buses.
///
/// kvm-ioctls hands port I/O over as `size × count` bytes without the size, so here a
/// port exit is one access as wide as its data. The thread loop does not rely on that:
/// it reads the width from `kvm_run` (`Vcpu::port_io`), since a `rep outsb` of two
/// bytes and an `outw` look alike otherwise.
pub fn handle_exit(exit: VcpuExit<'_>, pio: &Bus, mmio: &Bus) -> Result<VcpuAction, VcpuError> {
    match exit {
        VcpuExit::IoIn(port, data) => {
            pio.pio_read(port, data.len(), data);
            Ok(VcpuAction::Continue)
        }
        VcpuExit::IoOut(port, data) => {
            pio.pio_write(port, data.len(), data);
            Ok(VcpuAction::Continue)
        }
        VcpuExit::MmioRead(addr, data) => {
            if !mmio.read(addr, data) {
                data.fill(UNCLAIMED_READ);
            }
            Ok(VcpuAction::Continue)
        }
        VcpuExit::MmioWrite(addr, data) => {
            mmio.write(addr, data);
            Ok(VcpuAction::Continue)
        }
        // With the in-kernel irqchip KVM handles HLT itself; a stray exit is harmless.
        VcpuExit::Hlt => Ok(VcpuAction::Continue),
        VcpuExit::Shutdown => Ok(VcpuAction::Stop(StopReason::TripleFault)),
        VcpuExit::SystemEvent(kind, _) => match kind {
            KVM_SYSTEM_EVENT_RESET => Ok(VcpuAction::Stop(StopReason::Reset)),
            KVM_SYSTEM_EVENT_SHUTDOWN => Ok(VcpuAction::Stop(StopReason::PowerOff)),
            KVM_SYSTEM_EVENT_CRASH => Err(VcpuError::GuestCrash),
            other => Err(VcpuError::UnexpectedExit(format!("system event {other}"))),
        },
        // The suberror and instruction are read from the vCPU by the caller.
        VcpuExit::InternalError => Err(VcpuError::Internal(0)),
        VcpuExit::FailEntry(reason, _cpu) => Err(VcpuError::FailEntry(reason)),
        other => Err(VcpuError::UnexpectedExit(format!("{other:?}"))),
    }
}

/// The real-time signal used to kick vCPU threads out of `KVM_RUN`.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn noop_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op kick handler; must run before any kick is sent, since the
/// default action of a real-time signal ends the process.
pub fn register_kick_handler() -> std::io::Result<()> {
    register_signal_handler(kick_signal(), noop_handler)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// How a vCPU thread ended, sent to the VMM thread.
#[derive(Debug)]
pub struct VcpuReport {
    pub index: u8,
    pub outcome: Result<StopReason, VcpuError>,
}

/// Everything a vCPU thread owns.
pub struct Vcpu {
    pub index: u8,
    pub fd: VcpuFd,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub mem: GuestMemoryMmap,
    pub stop: Arc<AtomicBool>,
    pub reports: Sender<VcpuReport>,
    pub wake: Arc<EventFd>,
    pub emulation_hint: &'static str,
    pub trace_boot: bool,
    /// Where to park for a snapshot; None in a run without snapshots.
    pub pause: Option<Arc<crate::snapshot::Pause>>,
}

/// Holds the vCPU threads until the VMM thread says whether they may run.
#[derive(Debug, Default)]
pub struct StartGate {
    decision: Mutex<Option<bool>>,
    opened: Condvar,
}

impl StartGate {
    /// Releases every waiting thread: to run the guest (`true`) or to end (`false`).
    pub fn open(&self, run: bool) {
        *self.decision.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
        self.opened.notify_all();
    }

    /// Waits for the decision.
    pub fn wait(&self) -> bool {
        let mut decision = self.decision.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(run) = *decision {
                return run;
            }
            decision = self
                .opened
                .wait(decision)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// How a vCPU thread starts: its filter, where to say whether it is installed, and
/// the gate that holds every vCPU until all threads are filtered.
pub struct VcpuStart {
    pub filter: Option<CompiledFilter>,
    pub installed: Sender<Result<(), FilterError>>,
    pub gate: Arc<StartGate>,
}

impl Vcpu {
    /// Starts the thread `vcpuN`. The thread hands the `Vcpu` back when it ends, so its
    /// fds are closed on the VMM thread and a vCPU filter need not allow `close`.
    pub fn start(self, start: VcpuStart) -> std::io::Result<JoinHandle<Vcpu>> {
        thread::Builder::new()
            .name(ThreadKind::Vcpu.thread_name(self.index.into()))
            .spawn(move || self.run(start))
    }

    fn run(mut self, start: VcpuStart) -> Vcpu {
        // The thread's own filter comes first, before the first KVM_RUN; then it waits
        // until the VMM thread and every other vCPU are filtered too, so no guest code
        // runs while any thread is unfiltered.
        let name = ThreadKind::Vcpu.thread_name(self.index.into());
        sandbox::report::set_thread_name(&name);
        let installed = start
            .filter
            .as_ref()
            .map_or(Ok(()), CompiledFilter::install);
        let ok = installed.is_ok();
        let _ = start.installed.send(installed);
        // The start record holds an fd-free channel and the filter; dropping it here
        // frees memory only.
        let run = start.gate.wait() && ok;
        drop(start);
        if !run {
            return self;
        }
        if self.trace_boot && self.index == 0 {
            eprintln!(
                "sandvmm: trace: first KVM_RUN at monotonic_ns={}",
                monotonic_ns()
            );
        }
        if let Some(outcome) = self.run_loop() {
            let report = VcpuReport {
                index: self.index,
                outcome,
            };
            // The VMM thread may already be gone if another vCPU ended the VM.
            if self.reports.send(report).is_ok() {
                let _ = self.wake.write(1);
            }
        }
        self
    }

    /// Runs until the guest stops (Some) or the VMM asks the thread to stop (None).
    fn run_loop(&mut self) -> Option<Result<StopReason, VcpuError>> {
        while !self.stop.load(Ordering::Acquire) {
            if let Some(pause) = self.pause.as_ref().filter(|p| p.requested()) {
                pause.park(self.index, &mut self.fd);
                continue;
            }
            let result = match self.fd.run() {
                Ok(VcpuExit::IoIn(..) | VcpuExit::IoOut(..)) => {
                    self.port_io();
                    Ok(VcpuAction::Continue)
                }
                Ok(exit) => handle_exit(exit, &self.pio, &self.mmio),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    Ok(VcpuAction::Continue)
                }
                Err(e) => Err(VcpuError::Run(e)),
            };
            match result {
                Ok(VcpuAction::Continue) => {}
                Ok(VcpuAction::Stop(reason)) => return Some(Ok(reason)),
                Err(VcpuError::Internal(_)) => return Some(Err(self.internal_error())),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// Hands the port access of the last exit (`KVM_EXIT_IO`) to the port bus with its
    /// width: `count` accesses of `size` bytes each (`struct kvm_run`, `io`, in
    /// Documentation/virt/kvm/api.rst).
    fn port_io(&mut self) {
        let run: &mut kvm_run = self.fd.get_kvm_run();
        // SAFETY: the last exit was KVM_EXIT_IO (kvm-ioctls returned IoIn or IoOut for
        // it), so `io` is the union member KVM filled in.
        let io = unsafe { run.__bindgen_anon_1.io };
        let len = usize::from(io.size) * io.count as usize;
        // SAFETY: KVM puts the data `data_offset` bytes into the vCPU's kvm_run mapping
        // (on x86 the page after `struct kvm_run`, KVM_PIO_PAGE_OFFSET), which
        // kvm-ioctls mapped whole (KVM_GET_VCPU_MMAP_SIZE) and builds its own
        // IoIn/IoOut slice from in the same way. The slice lives only while `run` is
        // borrowed here, and no other reference to those bytes exists meanwhile.
        let data = unsafe {
            let start = (run as *mut kvm_run).cast::<u8>();
            std::slice::from_raw_parts_mut(start.add(io.data_offset as usize), len)
        };
        let width = usize::from(io.size);
        if u32::from(io.direction) == KVM_EXIT_IO_OUT {
            self.pio.pio_write(io.port, width, data);
        } else {
            self.pio.pio_read(io.port, width, data);
        }
    }

    /// What `KVM_EXIT_INTERNAL_ERROR` was, from `kvm_run` alone: the vCPU thread makes
    /// no system call for it, so its filter needs no rule beyond `KVM_RUN`.
    fn internal_error(&mut self) -> VcpuError {
        // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the
        // union member KVM filled in.
        let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        match suberror {
            KVM_INTERNAL_ERROR_EMULATION => VcpuError::EmulationFailed {
                hint: self.emulation_hint,
            },
            other => VcpuError::Internal(other),
        }
    }

    /// Turns an emulation failure into a report with RIP and the instruction bytes.
    /// Runs on the VMM thread once this vCPU's thread has ended and handed the vCPU
    /// back (`KVM_GET_REGS` and `KVM_TRANSLATE` are in the VMM thread's filter, pinned
    /// to the vCPU fds, and in no vCPU's).
    pub fn diagnose_emulation_failure(&self) -> VcpuError {
        let failed = VcpuError::EmulationFailed {
            hint: self.emulation_hint,
        };
        let Ok(regs) = self.fd.get_regs() else {
            return failed;
        };
        let bytes = match self.fd.translate_gva(regs.rip) {
            Ok(t) if t.valid != 0 => read_insn(&self.mem, t.physical_address),
            _ => None,
        };
        VcpuError::Emulation {
            rip: regs.rip,
            bytes: bytes.unwrap_or_else(|| "unreadable".to_string()),
            hint: self.emulation_hint,
        }
    }
}

/// Up to 15 bytes at `gpa`, as hex.
fn read_insn(mem: &GuestMemoryMmap, gpa: u64) -> Option<String> {
    let mut buf = [0u8; MAX_INSN_LEN];
    // An instruction near the end of RAM may be shorter than 15 readable bytes.
    let len = (1..=MAX_INSN_LEN)
        .rev()
        .find(|&n| mem.read_slice(&mut buf[..n], GuestAddress(gpa)).is_ok())?;
    Some(
        buf[..len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// CLOCK_MONOTONIC in ns, comparable across processes (for start-up tracing).
pub fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Stops the vCPU threads: sets the flag, kicks each thread until it ends, joins it.
/// A thread that does not end within `timeout` is left behind (the process is about to
/// exit anyway). Returns the vCPUs of the threads that ended, and how many did not.
pub fn stop_all(
    handles: Vec<JoinHandle<Vcpu>>,
    stop: &AtomicBool,
    timeout: Duration,
) -> (Vec<Vcpu>, usize) {
    stop.store(true, Ordering::Release);
    let deadline = Instant::now() + timeout;
    let mut stuck = 0;
    let mut ended = Vec::with_capacity(handles.len());
    for handle in handles {
        while !handle.is_finished() && Instant::now() < deadline {
            let _ = handle.kill(kick_signal());
            thread::sleep(Duration::from_micros(200));
        }
        if handle.is_finished() {
            ended.extend(handle.join().ok());
        } else {
            stuck += 1;
        }
    }
    (ended, stuck)
}

#[cfg(test)]
#[path = "vcpu_tests.rs"]
mod tests;

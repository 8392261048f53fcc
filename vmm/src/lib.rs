//! sandvmm, the library behind the `sandvmm` binary: configuration, VM building,
//! vCPU threads and the VMM thread's event loop.
//!
//! [`run`] is the whole life of a VM: build it ([`builder::build`]), compile the seccomp
//! filters with the fds it holds, put the jail on, start one thread per vCPU (each
//! installs its own filter), install the VMM thread's filter, run the event loop on the
//! calling thread until the guest ends, stop the vCPUs.
//! docs/ARCHITECTURE.md walks through it step by step.

pub mod boot;
pub mod builder;
pub mod cli;
pub mod config;
pub mod disk;
pub mod escape;
pub mod event_loop;
pub mod helper;
pub mod host;
mod launch;
pub mod logger;
pub mod memory;
pub mod net;
pub mod sandbox_cmd;
pub mod serial_flush;
pub mod signals;
pub mod snapshot;
pub mod teardown;
pub mod terminal;
pub mod vcpu;
pub mod virtio_slot;
pub mod x86_64;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use devices::serial::SerialDevice;
use event_manager::{MutEventSubscriber, SubscriberOps};
use kvm_ioctls::{Kvm, VmFd};
use sandbox::jail::{self, Identity, JailError};
use sandbox::{FdRole, FilterError, Filters, PolicyError, RuntimeFacts, Sandbox, ThreadKind};
use vm_memory::GuestMemoryMmap;

use crate::boot::BootInfo;
use crate::event_loop::{ConsoleInput, ExitWatch, Outcome};
use crate::signals::StopSignals;
use crate::terminal::RawMode;

use crate::vcpu::{StartGate, Vcpu, VcpuStart};
pub use launch::run;

/// How long to wait for vCPU threads to leave `KVM_RUN` at shutdown.
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Errors that end sandvmm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] builder::BuildError),
    #[error("cannot set up the event loop")]
    EventLoop(#[source] event_manager::Error),
    #[error("cannot find the event loop's epoll fd")]
    EpollFd(#[source] std::io::Error),
    #[error("cannot put the terminal into raw mode")]
    Terminal(#[source] std::io::Error),
    #[error("cannot install the vCPU kick handler")]
    Signal(#[source] std::io::Error),
    #[error("cannot start vCPU thread {0}")]
    Spawn(u8, #[source] std::io::Error),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot set up the sandbox")]
    Sandbox(#[from] FilterError),
    #[error("cannot put the jail on")]
    Jail(#[from] JailError),
    #[error("cannot install the trap-mode SIGSYS handler")]
    TrapHandler(#[source] std::io::Error),
    #[error("cannot take SIGTERM, SIGINT, SIGHUP and SIGQUIT through a signalfd")]
    StopSignals(#[source] std::io::Error),
    #[error("cannot open the sandbox report file {path}")]
    Report {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the sandbox report")]
    ReportContext(#[from] sandbox::report::ReportError),
    #[error(transparent)]
    Helper(#[from] helper::HelperError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("vcpu{index}: {error}")]
    Vcpu {
        index: u8,
        #[source]
        error: vcpu::VcpuError,
    },
}

type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// A built VM, ready to run.
pub struct Vmm {
    /// The process that destroys the VM once this one is gone; None if it could not
    /// be forked.
    reaper: Option<teardown::Reaper>,
    // Kept alive for as long as the vCPUs run.
    _kvm: Kvm,
    _vm: VmFd,
    _memory: GuestMemoryMmap,
    vcpus: Vec<Vcpu>,
    exit_watch: Arc<Mutex<ExitWatch>>,
    /// Console input and whether stdin is a terminal; None without `--serial stdio`.
    console: Option<(Arc<Mutex<ConsoleInput>>, bool)>,
    /// COM1, for the flush of its buffered output at exit.
    serial: Arc<Mutex<SerialDevice>>,
    /// COM1's flush timer; None with `--serial none`.
    serial_flush: Option<Arc<Mutex<serial_flush::SerialFlush>>>,
    /// The virtio-net devices' event handlers.
    nets: Vec<net::NetHandler>,
    /// The virtio-blk devices' event handlers.
    disks: Vec<disk::DiskHandler>,
    /// The escape demonstration's VMM-thread side, with `--demo-escape`.
    escape: Option<Arc<Mutex<escape::EscapeHandler>>>,
    stop: Arc<AtomicBool>,
    /// Every fd the VM holds, by role, and the pid: what the filters may name.
    facts: RuntimeFacts,
    /// Takes snapshots, in a run with `--snapshot-to`.
    snapshotter: Option<snapshot::Snapshotter>,
    /// The KVM state of a `--restore`, written once guest memory is registered.
    restore: Option<snapshot::setup::KvmRestore>,
    /// What was loaded, for the caller to report; None for a restore.
    pub boot: Option<BootInfo>,
}

/// The confinement of one run: the seccomp policy and, unless `--jail off`, the jail.
pub struct Confinement {
    pub sandbox: Sandbox,
    pub jail: Option<JailSetup>,
    /// The `--sandbox-report` file, already handed to the trap handler.
    pub report: Option<std::fs::File>,
}

/// What the jail needs from before the VM was built.
pub struct JailSetup {
    /// Who to become when started as root.
    pub user: Identity,
    /// The fds open when sandvmm started: the launcher's.
    pub inherited_fds: BTreeSet<RawFd>,
}

impl Vmm {
    /// Runs the VM until it ends (the guest, the console's quit, or a stop signal on
    /// `signals`); returns how it ended.
    pub fn run(
        self,
        confinement: Confinement,
        mut helper: Option<helper::Helper>,
        signals: StopSignals,
    ) -> Result<Outcome, Error> {
        vcpu::register_kick_handler().map_err(Error::Signal)?;
        let (mut events, epoll_fd) = event_loop::new_event_manager::<Subscriber>()?;
        let signal_fd = signals.as_raw_fd();
        self.exit_watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch_signals(signals);
        events.add_subscriber(self.exit_watch.clone());
        for net in self.nets {
            events.add_subscriber(net);
        }
        for disk in self.disks {
            events.add_subscriber(disk);
        }
        if let Some(escape) = self.escape {
            if let Some(helper) = &helper {
                let handler = escape.lock().unwrap_or_else(|p| p.into_inner());
                handler.targets().set_helper_fd(helper.fd());
            }
            events.add_subscriber(escape);
        }
        if let Some(flush) = self.serial_flush {
            events.add_subscriber(flush);
        }
        let mut raw_mode = None;
        if let Some((console, is_terminal)) = self.console {
            events.add_subscriber(console);
            if is_terminal {
                raw_mode = RawMode::enter(libc::STDIN_FILENO).map_err(Error::Terminal)?;
            }
        }

        // Every device, fd and mapping exists now, and only this thread runs. In this
        // order: the filters are compiled with every fd by role; the jail goes on; the
        // vCPU threads start and install their own filters while this thread installs
        // its filter; only then do the vCPUs enter KVM_RUN (they wait at the gate).
        let mut facts = self.facts;
        facts.add(FdRole::Epoll, epoll_fd);
        facts.add(FdRole::Signal, signal_fd);
        // Messages: the log file, and trap reports' JSON copy.
        if let Some(fd) = logger::fd() {
            facts.add(FdRole::Stderr, fd);
        }
        if let Some(report) = &confinement.report {
            facts.add(FdRole::Stderr, report.as_raw_fd());
        }
        if let Some(helper) = &helper {
            facts.add(FdRole::Helper, helper.fd());
        }
        let vcpu_fds: Vec<RawFd> = self.vcpus.iter().map(|v| v.fd.as_raw_fd()).collect();
        let plan = confinement.jail.as_ref().map(|setup| {
            let mut keep = facts.all_fds();
            keep.extend([libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO]);
            keep.extend(self.reaper.as_ref().map(teardown::Reaper::fd));
            jail::Plan {
                jail_user: setup.user,
                keep_fds: keep,
                inherited_fds: setup.inherited_fds.clone(),
                // The vCPU threads, and the worker KVM starts at the first KVM_RUN.
                tasks: self.vcpus.len() as u64 + 1,
            }
        });
        let trace = self.vcpus.first().is_some_and(|v| v.trace_boot);
        // The first half of the jail needs this thread alone; the filters are compiled
        // in between, with the jail's user namespace in place.
        let t0 = vcpu::monotonic_ns();
        let identity = plan.as_ref().map(jail::begin).transpose()?;
        let t1 = vcpu::monotonic_ns();
        let filters = confinement.sandbox.filters(&facts, &vcpu_fds);
        let t2 = vcpu::monotonic_ns();
        let reached = match (&plan, identity) {
            (Some(plan), Some(identity)) => jail::finish(plan, identity).map(Some),
            _ => Ok(None),
        };
        let t3 = vcpu::monotonic_ns();
        if let Some(state) = &self.restore {
            snapshot::setup::apply_kvm_state(state, &self._vm, self.vcpus.iter().map(|v| &v.fd))?;
        }
        let filters = filters?;
        if let Some(notice) = reached?.and_then(|r| r.notice()) {
            log::warn!("{notice}");
        }
        if trace {
            eprintln!(
                "sandvmm: trace: filters compiled in {} us, jail on in {} us",
                (t2 - t1) / 1000,
                (t1 - t0 + t3 - t2) / 1000,
            );
        }

        let count = self.vcpus.len();
        let gate = Arc::new(StartGate::default());
        let (installed_tx, installed_rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(count);
        let Filters { vmm, vcpus } = filters;
        for (vcpu, filter) in self.vcpus.into_iter().zip(vcpus) {
            let index = vcpu.index;
            let start = VcpuStart {
                filter,
                installed: installed_tx.clone(),
                gate: gate.clone(),
            };
            match vcpu.start(start) {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    gate.open(false);
                    stop_vcpus(handles, &self.stop, &self.serial);
                    return Err(Error::Spawn(index, e));
                }
            }
        }
        // This thread installs its filter while the vCPU threads install theirs.
        sandbox::report::set_thread_name(&ThreadKind::Vmm.thread_name(0));
        let own = vmm.as_ref().and_then(|f| f.install().err());
        let theirs = installed_rx.iter().take(count).find_map(Result::err);
        let failure = own.or(theirs);
        gate.open(failure.is_none());
        if let Some(e) = failure {
            stop_vcpus(handles, &self.stop, &self.serial);
            return Err(Error::Sandbox(e));
        }

        let mut snapshotter = self.snapshotter;
        let outcome = loop {
            if let Err(e) = events.run() {
                stop_vcpus(handles, &self.stop, &self.serial);
                return Err(Error::EventLoop(e));
            }
            let (taken, snapshot_wanted) = {
                let mut watch = self.exit_watch.lock().unwrap_or_else(|p| p.into_inner());
                (watch.take_outcome(), watch.take_snapshot_request())
            };
            if let Some(outcome) = taken {
                break outcome;
            }
            let Some(snapshotter) = snapshotter.as_mut().filter(|_| snapshot_wanted) else {
                continue;
            };
            let running = snapshot::take::Running {
                vm: &self._vm,
                mem: &self._memory,
                serial: &self.serial,
                handles: &handles,
                stop: &self.stop,
            };
            match snapshotter.take(running) {
                Ok(snapshot::take::After::Continue) => {}
                Ok(snapshot::take::After::Exit) => break Outcome::Snapshot,
                Err(e) => {
                    stop_vcpus(handles, &self.stop, &self.serial);
                    return Err(e.into());
                }
            }
        };
        let ended = vcpu::monotonic_ns();
        let (vcpus, stuck) = stop_vcpus(handles, &self.stop, &self.serial);
        let outcome = diagnosed(outcome, &vcpus);
        // Their fds close here, on this thread: vCPU filters have no `close`.
        drop(vcpus);
        if stuck > 0 {
            log::warn!("{stuck} vCPU thread(s) did not stop in time; exiting anyway");
        }
        drop(raw_mode);
        // Down scripts run through the helper: this thread is filtered and never execs.
        if let Some(helper) = helper.as_mut() {
            for index in 0..helper.len() {
                if let Err(e) = helper.run(index, helper::Phase::Down) {
                    log::error!("{e}");
                }
            }
        }
        // The VM goes last, after what a user waits for (the terminal, the down scripts).
        // With a reaper this close is not the last reference: KVM's destruction, which
        // waits for SRCU grace periods, happens in the reaper after this process exits.
        let teardown = vcpu::monotonic_ns();
        drop((self._vm, self._kvm, self._memory));
        if trace {
            eprintln!(
                "sandvmm: trace: guest ended at monotonic_ns={ended}, VM torn down from monotonic_ns={teardown} to monotonic_ns={}",
                vcpu::monotonic_ns()
            );
        }
        Ok(outcome)
    }
}

/// Stops the vCPU threads, then writes the serial output they left buffered: every
/// way out of [`Vmm::run`] once vCPUs exist goes through here, so no guest output is
/// lost however the VM ends. Returns the vCPUs handed back, and how many threads did
/// not stop in time.
fn stop_vcpus(
    handles: Vec<std::thread::JoinHandle<Vcpu>>,
    stop: &AtomicBool,
    serial: &Mutex<SerialDevice>,
) -> (Vec<Vcpu>, usize) {
    let (vcpus, stuck) = vcpu::stop_all(handles, stop, VCPU_STOP_TIMEOUT);
    serial_flush::flush_at_exit(serial, stuck > 0);
    (vcpus, stuck)
}

/// An emulation failure, with RIP and the instruction bytes read from its vCPU, now
/// that the vCPU's thread has handed it back; any other outcome as it is.
fn diagnosed(outcome: Outcome, vcpus: &[Vcpu]) -> Outcome {
    match outcome {
        Outcome::VcpuFailed {
            index,
            error: error @ vcpu::VcpuError::EmulationFailed { .. },
        } => Outcome::VcpuFailed {
            index,
            error: vcpus
                .iter()
                .find(|v| v.index == index)
                .map_or(error, Vcpu::diagnose_emulation_failure),
        },
        other => other,
    }
}

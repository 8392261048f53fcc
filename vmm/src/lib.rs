//! sandvmm, the library behind the `sandvmm` binary: configuration, VM building,
//! vCPU threads and the VMM thread's event loop.
//!
//! [`run`] is the whole life of a VM: build it ([`builder::build`]), start one thread per
//! vCPU, run the event loop on the calling thread until the guest ends, stop the vCPUs.
//! docs/ARCHITECTURE.md walks through it step by step.

pub mod boot;
pub mod builder;
pub mod cli;
pub mod config;
pub mod escape;
pub mod event_loop;
pub mod helper;
pub mod host;
pub mod memory;
pub mod net;
pub mod sandbox_cmd;
pub mod terminal;
pub mod vcpu;
pub mod x86_64;

use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::GuestMemoryMmap;

use crate::boot::BootInfo;
use crate::config::VmConfig;
use crate::event_loop::{ConsoleInput, ExitWatch, Outcome};
use crate::host::Host;
use crate::terminal::RawMode;
use crate::vcpu::{StartGate, Vcpu, VcpuStart};
use sandbox::{CompiledFilter, FilterError, Frequency, Sandbox, ThreadKind};

/// How long to wait for vCPU threads to leave `KVM_RUN` at shutdown.
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Errors that end sandvmm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] builder::BuildError),
    #[error("cannot set up the event loop")]
    EventLoop(#[source] event_manager::Error),
    #[error("cannot put the terminal into raw mode")]
    Terminal(#[source] std::io::Error),
    #[error("cannot install the vCPU kick handler")]
    Signal(#[source] std::io::Error),
    #[error("cannot start vCPU thread {0}")]
    Spawn(u8, #[source] std::io::Error),
    #[error(transparent)]
    Policy(#[from] sandbox_cmd::SandboxCmdError),
    #[error("cannot set up the sandbox")]
    Sandbox(#[from] FilterError),
    #[error("cannot install the trap-mode SIGSYS handler")]
    TrapHandler(#[source] std::io::Error),
    #[error(transparent)]
    Helper(#[from] helper::HelperError),
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
    // Kept alive for as long as the vCPUs run.
    _kvm: Kvm,
    _vm: VmFd,
    _memory: GuestMemoryMmap,
    vcpus: Vec<Vcpu>,
    exit_watch: Arc<Mutex<ExitWatch>>,
    /// Console input and whether stdin is a terminal; None without `--serial stdio`.
    console: Option<(Arc<Mutex<ConsoleInput>>, bool)>,
    /// The virtio-net devices' event handlers.
    nets: Vec<net::NetHandler>,
    /// The escape demonstration's VMM-thread side, with `--demo-escape`.
    escape: Option<Arc<Mutex<escape::EscapeHandler>>>,
    stop: Arc<AtomicBool>,
    /// What was loaded, for the caller to report.
    pub boot: BootInfo,
}

/// The compiled filter of each thread kind (None with `--sandbox off`).
pub struct Filters {
    pub vmm: Option<CompiledFilter>,
    pub vcpu: Option<CompiledFilter>,
}

impl Filters {
    /// Compiles the configured policy; installs the SIGSYS handler for trap mode.
    pub fn prepare(config: &config::SandboxConfig) -> Result<Filters, Error> {
        let sandbox = Sandbox {
            policy: sandbox_cmd::load_policy(config.policy_file.as_deref())?,
            frequency: Frequency::builtin(),
            mode: config.mode,
            profile: config.profile,
            optimize: config.optimize,
            priorities: true,
        };
        if config.mode == sandbox::Mode::Trap {
            sandbox::report::install_trap_handler().map_err(Error::TrapHandler)?;
        }
        Ok(Filters {
            vmm: sandbox.compile(ThreadKind::Vmm)?,
            vcpu: sandbox.compile(ThreadKind::Vcpu)?,
        })
    }
}

impl Vmm {
    /// Runs the VM until it ends; returns how it ended.
    pub fn run(
        self,
        filters: Filters,
        mut helper: Option<helper::Helper>,
    ) -> Result<Outcome, Error> {
        vcpu::register_kick_handler().map_err(Error::Signal)?;
        let mut events = EventManager::<Subscriber>::new().map_err(Error::EventLoop)?;
        events.add_subscriber(self.exit_watch.clone());
        for net in self.nets {
            events.add_subscriber(net);
        }
        if let Some(escape) = self.escape {
            events.add_subscriber(escape);
        }
        let mut raw_mode = None;
        if let Some((console, is_terminal)) = self.console {
            events.add_subscriber(console);
            if is_terminal {
                raw_mode = RawMode::enter(libc::STDIN_FILENO).map_err(Error::Terminal)?;
            }
        }

        // Every device, fd and mapping exists now. The vCPU threads start and install
        // their own filters; then this thread installs its filter; only then do the
        // vCPUs enter KVM_RUN (they wait at the gate).
        let count = self.vcpus.len();
        let gate = Arc::new(StartGate::default());
        let (installed_tx, installed_rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(count);
        for vcpu in self.vcpus {
            let index = vcpu.index;
            let start = VcpuStart {
                filter: filters.vcpu.clone(),
                installed: installed_tx.clone(),
                gate: gate.clone(),
            };
            match vcpu.start(start) {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    gate.open(false);
                    vcpu::stop_all(handles, &self.stop, VCPU_STOP_TIMEOUT);
                    return Err(Error::Spawn(index, e));
                }
            }
        }
        let mut failure = installed_rx.iter().take(count).find_map(Result::err);
        if failure.is_none() {
            sandbox::report::set_thread_name(&ThreadKind::Vmm.thread_name(0));
            failure = filters.vmm.as_ref().and_then(|f| f.install().err());
        }
        gate.open(failure.is_none());
        if let Some(e) = failure {
            vcpu::stop_all(handles, &self.stop, VCPU_STOP_TIMEOUT);
            return Err(Error::Sandbox(e));
        }

        let outcome = loop {
            if let Err(e) = events.run() {
                vcpu::stop_all(handles, &self.stop, VCPU_STOP_TIMEOUT);
                return Err(Error::EventLoop(e));
            }
            let taken = self
                .exit_watch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take_outcome();
            if let Some(outcome) = taken {
                break outcome;
            }
        };
        let stuck = vcpu::stop_all(handles, &self.stop, VCPU_STOP_TIMEOUT);
        if stuck > 0 {
            eprintln!("sandvmm: {stuck} vCPU thread(s) did not stop in time; exiting anyway");
        }
        drop(raw_mode);
        // Down scripts run through the helper: this thread is filtered and never execs.
        if let Some(helper) = helper.as_mut() {
            for index in 0..helper.len() {
                if let Err(e) = helper.run(index, helper::Phase::Down) {
                    eprintln!("sandvmm: {e}");
                }
            }
        }
        Ok(outcome)
    }
}

/// Builds and runs a VM. `trace_boot` prints start-up timestamps on stderr.
pub fn run(config: &VmConfig, trace_boot: bool) -> Result<Outcome, Error> {
    let host = Host::detect(config.host_adapt);
    // The helper is forked first, while this process is single-threaded and holds no
    // KVM fd, tap or guest memory.
    let scripts: Vec<helper::Script> = config
        .nets
        .iter()
        .filter_map(|net| match (&net.backend, &net.script) {
            (config::NetBackend::Tap(tap), Some(path)) => Some(helper::Script {
                path: path.clone(),
                tap: tap.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut helper = if scripts.is_empty() {
        None
    } else {
        Some(helper::Helper::spawn(scripts)?)
    };
    let filters = Filters::prepare(&config.sandbox)?;
    let vmm = builder::build(config, host, trace_boot)?;
    if let Some(helper) = helper.as_mut() {
        for index in 0..helper.len() {
            helper.run(index, helper::Phase::Up)?;
        }
    }
    // Said only once the VM is built, so that a bad-input error stays a single line.
    if let Some(notice) = host.notice() {
        eprintln!("{notice}");
    }
    vmm.run(filters, helper)
}

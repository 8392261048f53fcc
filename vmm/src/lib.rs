//! sandvmm, the library behind the `sandvmm` binary: configuration, VM building,
//! vCPU threads and the VMM thread's event loop.
//!
//! [`run`] is the whole life of a VM: build it ([`builder::build`]), start one thread per
//! vCPU, run the event loop on the calling thread until the guest ends, stop the vCPUs.
//! docs/ARCHITECTURE.md walks through it step by step.

pub mod boot;
pub mod builder;
pub mod config;
pub mod event_loop;
pub mod host;
pub mod memory;
pub mod net;
pub mod terminal;
pub mod vcpu;
pub mod x86_64;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::GuestMemoryMmap;

use crate::boot::BootInfo;
use crate::config::VmConfig;
use crate::event_loop::{ConsoleInput, ExitWatch, Outcome};
use crate::host::Host;
use crate::terminal::RawMode;
use crate::vcpu::Vcpu;

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
    stop: Arc<AtomicBool>,
    /// What was loaded, for the caller to report.
    pub boot: BootInfo,
}

impl Vmm {
    /// Runs the VM until it ends; returns how it ended.
    pub fn run(self) -> Result<Outcome, Error> {
        vcpu::register_kick_handler().map_err(Error::Signal)?;
        let mut events = EventManager::<Subscriber>::new().map_err(Error::EventLoop)?;
        events.add_subscriber(self.exit_watch.clone());
        for net in self.nets {
            events.add_subscriber(net);
        }
        let mut raw_mode = None;
        if let Some((console, is_terminal)) = self.console {
            events.add_subscriber(console);
            if is_terminal {
                raw_mode = RawMode::enter(libc::STDIN_FILENO).map_err(Error::Terminal)?;
            }
        }
        // Every device, fd and mapping exists now: this is where the VMM thread's
        // seccomp filter goes (issue 4), just before the event loop.

        let mut handles = Vec::with_capacity(self.vcpus.len());
        for vcpu in self.vcpus {
            let index = vcpu.index;
            match vcpu.start() {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    vcpu::stop_all(handles, &self.stop, VCPU_STOP_TIMEOUT);
                    return Err(Error::Spawn(index, e));
                }
            }
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
        Ok(outcome)
    }
}

/// Builds and runs a VM. `trace_boot` prints start-up timestamps on stderr.
pub fn run(config: &VmConfig, trace_boot: bool) -> Result<Outcome, Error> {
    let host = Host::detect(config.host_adapt);
    let vmm = builder::build(config, host, trace_boot)?;
    // Said only once the VM is built, so that a bad-input error stays a single line.
    if let Some(notice) = host.notice() {
        eprintln!("{notice}");
    }
    vmm.run()
}

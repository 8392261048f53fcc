//! Building a VM, in the order KVM requires or rewards: the KVM handle and VM, the
//! reaper (teardown.rs), guest memory and its registration, the in-kernel interrupt
//! controllers and PIT, the guest image, the devices and their interrupt lines, and
//! last the vCPUs. Everything that needs a file, a socket or a new
//! mapping happens here, before any sandbox filter exists; [`crate::Vmm::run`] only
//! runs what was built.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use devices::bus::{Bus, BusError};
use devices::{EventFdTrigger, EVENTFD_FLAGS};
use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use sandbox::{FdRole, RuntimeFacts};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootError};
use crate::config::{SerialTarget, VmConfig};
use crate::event_loop::{ConsoleInput, ExitWatch};
use crate::host::Host;
use crate::memory::{self, MemoryError, KVM_TSS_ADDRESS};
use crate::snapshot::setup::{self, KvmRestore};
use crate::snapshot::{load, Loaded};
use crate::teardown::Reaper;
use crate::virtio_slot::{mmio_slot, MmioSlot};
use crate::x86_64::regs;
use crate::Vmm;

mod ports;
mod vcpus;
use crate::{disk, net};

/// The KVM API version every KVM since Linux 2.6.22 reports.
const KVM_API_VERSION: i32 = 12;
/// Capabilities sandvmm cannot run without.
const REQUIRED_CAPS: [(Cap, &str); 5] = [
    (Cap::Irqchip, "IRQCHIP"),
    (Cap::UserMemory, "USER_MEMORY"),
    (Cap::Ioeventfd, "IOEVENTFD"),
    (Cap::Irqfd, "IRQFD"),
    (Cap::Pit2, "PIT2"),
];

/// Errors from building the VM.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("/dev/kvm does not exist: this host has no KVM (load kvm_intel or kvm_amd, or enable nested virtualisation)")]
    KvmMissing,
    #[error(
        "permission denied on /dev/kvm: run as a user with access to it (usually the kvm group)"
    )]
    KvmDenied,
    #[error("cannot open /dev/kvm")]
    KvmOpen(#[source] kvm_ioctls::Error),
    #[error("/dev/kvm answers KVM API version {0}, but sandvmm needs version {KVM_API_VERSION}")]
    KvmApi(i32),
    #[error("this host's KVM lacks the {0} capability")]
    KvmCap(&'static str),
    #[error("{wanted} vCPUs requested, but this host's KVM allows at most {max}")]
    TooManyVcpus { wanted: u8, max: usize },
    #[error("KVM refused to {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("cannot set up vCPU {0}")]
    Vcpu(u8, #[source] regs::RegsError),
    #[error("cannot create an event fd")]
    EventFd(#[source] io::Error),
    #[error("cannot create the serial flush timer")]
    FlushTimer(#[source] io::Error),
    #[error("cannot open serial output file {path}")]
    SerialFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot place a device on the bus")]
    Bus(#[from] BusError),
    #[error("--sandbox-profile strict does not drive a terminal: use --serial file:PATH or none, or redirect stdin")]
    StrictTerminal,
    #[error("cannot set up {name} (--net {spec})")]
    Net {
        name: String,
        spec: String,
        #[source]
        source: net::NetSetupError,
    },
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("cannot set up {name} (--disk {spec})")]
    Disk {
        name: String,
        spec: String,
        #[source]
        source: disk::DiskSetupError,
    },
}

/// Opens KVM and checks it can run a sandvmm guest.
fn open_kvm(vcpus: u8) -> Result<Kvm, BuildError> {
    let kvm = Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT => BuildError::KvmMissing,
        libc::EACCES | libc::EPERM => BuildError::KvmDenied,
        _ => BuildError::KvmOpen(e),
    })?;
    let version = kvm.get_api_version();
    if version != KVM_API_VERSION {
        return Err(BuildError::KvmApi(version));
    }
    if let Some((_, name)) = REQUIRED_CAPS
        .iter()
        .find(|(cap, _)| !kvm.check_extension(*cap))
    {
        return Err(BuildError::KvmCap(name));
    }
    let max = kvm.get_max_vcpus();
    if usize::from(vcpus) > max {
        return Err(BuildError::TooManyVcpus { wanted: vcpus, max });
    }
    Ok(kvm)
}

/// Creates the in-kernel PIC, IOAPIC, LAPICs and PIT, once guest memory is registered.
///
/// Creating the interrupt controllers leaves KVM an SRCU grace period to finish, and a
/// memory registration right after waits for it (about 5 ms on the project's test
/// hosts; the bench's whole-run part times both orders). Registered first, memory
/// takes its floor time, and the controllers do not care.
fn create_interrupt_controllers(vm: &VmFd) -> Result<(), BuildError> {
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(|e| BuildError::Kvm("set the TSS address", e))?;
    vm.create_irq_chip()
        .map_err(|e| BuildError::Kvm("create the interrupt controllers", e))?;
    // The PIT drives Linux's early timer calibration; its speaker port is a dummy. Its
    // tick re-injection stays on (KVM's default): turning it off costs two SRCU grace
    // periods at start-up, and the reaper (teardown.rs) takes the same cost out of
    // the exit.
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| BuildError::Kvm("create the PIT", e))
}

/// Tells KVM about every guest memory region (before the interrupt controllers:
/// [`create_interrupt_controllers`] says why).
fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), BuildError> {
    for (slot, region) in mem.iter().enumerate() {
        let region_desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which the Vmm keeps for as
        // long as the VM exists, and slots do not overlap (ram_ranges).
        unsafe { vm.set_user_memory_region(region_desc) }
            .map_err(|e| BuildError::Kvm("register guest memory", e))?;
    }
    Ok(())
}

pub(crate) fn eventfd() -> Result<EventFdTrigger, BuildError> {
    EventFdTrigger::new().map_err(BuildError::EventFd)
}

/// Builds a ready-to-run VM from `config`, booting its kernel or, with `restore`,
/// going on from a snapshot (whose shape `config` already has: [`VmConfig::restored`]).
pub fn build(
    config: &VmConfig,
    host: Host,
    trace_boot: bool,
    restore: Option<Loaded>,
) -> Result<Vmm, BuildError> {
    // Every fd the VM keeps is recorded by role as it is made: the sandbox pins its
    // system calls to them and the jail closes every other fd.
    let mut facts = RuntimeFacts::new(std::process::id());
    facts.add(FdRole::Stderr, libc::STDERR_FILENO);
    let kvm = open_kvm(config.vcpus)?;
    let vm = kvm
        .create_vm()
        .map_err(|e| BuildError::Kvm("create a VM", e))?;
    // Forked while the process is single-threaded and holds nothing but KVM's fds.
    let reaper = Reaper::start(&vm);
    facts
        .add(FdRole::Kvm, kvm.as_raw_fd())
        .add(FdRole::Kvm, vm.as_raw_fd());
    if config.snapshot.is_some() || restore.is_some() {
        setup::check_caps(&kvm)?;
    }
    // virtio-mmio slots: the net devices', then the disks'.
    let slots: Vec<MmioSlot> = (0..config.nets.len() + config.disks.len())
        .map(mmio_slot)
        .collect();
    let (mem, snapshot) = match restore {
        None => (memory::create_guest_memory(config.memory_bytes)?, None),
        Some(Loaded { snapshot, memory }) => {
            setup::check_devices(&snapshot, config)?;
            facts.add(FdRole::Memory, memory.as_raw_fd());
            let mem = load::map_memory(memory, config.memory_bytes)?;
            (mem, Some(snapshot))
        }
    };
    register_memory(&vm, &mem)?;
    create_interrupt_controllers(&vm)?;
    // Loading the guest image overlaps the grace period the controllers left behind.
    let boot = match snapshot {
        None => Some(boot::load_guest(&mem, config, &host, &slots)?),
        Some(_) => None,
    };

    let ports = ports::build(&vm, &config.serial, &mut facts)?;
    let prepared = config
        .snapshot
        .as_ref()
        .map(|s| setup::prepare(s, config.memory_bytes, &kvm, &vm, &ports.serial, &mut facts))
        .transpose()?;
    let mut pio = ports.bus;
    let mut escape = None;
    if config.demo_escape {
        let (port, handler) = crate::escape::escape_device().map_err(BuildError::EventFd)?;
        facts.add(FdRole::Event, handler.wake_fd());
        handler.targets().set_vm_fd(vm.as_raw_fd());
        pio.insert(
            Arc::new(Mutex::new(port)),
            crate::escape::ESCAPE_PORT,
            crate::escape::ESCAPE_PORT_LEN,
        )?;
        escape = Some(Arc::new(Mutex::new(handler)));
    }
    let pio = Arc::new(pio);
    let mut mmio = Bus::new();
    let mut nets = Vec::with_capacity(config.nets.len());
    let mut net_transports = Vec::with_capacity(config.nets.len());
    for (index, net_config) in config.nets.iter().enumerate() {
        let built = net::build_net(&vm, &mem, &mut mmio, index, net_config, &mut facts).map_err(
            |source| BuildError::Net {
                name: format!("net{index}"),
                spec: net_config.spec.clone(),
                source,
            },
        )?;
        nets.push(built.handler);
        net_transports.push(built.transport);
    }
    let mut disks = Vec::with_capacity(config.disks.len());
    let mut disk_transports = Vec::with_capacity(config.disks.len());
    for (index, disk_config) in config.disks.iter().enumerate() {
        let slot = slots[config.nets.len() + index];
        let built = disk::build_disk(&vm, &mem, &mut mmio, index, slot, disk_config, &mut facts)
            .map_err(|source| BuildError::Disk {
                name: format!("disk{index}"),
                spec: disk_config.spec.clone(),
                source,
            })?;
        disks.push(built.handler);
        disk_transports.push(built.transport);
    }
    let mmio = Arc::new(mmio);
    if let Some(snapshot) = &snapshot {
        setup::restore_devices(
            snapshot,
            config,
            &ports.serial,
            &net_transports,
            &disk_transports,
        )?;
    }

    let vcpu_wake = Arc::new(EventFd::new(EVENTFD_FLAGS).map_err(BuildError::EventFd)?);
    facts.add(FdRole::Event, vcpu_wake.as_raw_fd());
    let (report_tx, report_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));

    let (console, quit) = if config.serial == SerialTarget::Stdio {
        // SAFETY: isatty only inspects the descriptor.
        let is_terminal = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
        // The strict filter has no rule to restore a terminal at exit.
        if is_terminal && config.sandbox.profile == sandbox::Profile::Strict {
            return Err(BuildError::StrictTerminal);
        }
        let (console, quit) = ConsoleInput::new(
            libc::STDIN_FILENO,
            ports.serial.clone(),
            ports.serial_room,
            is_terminal,
        )
        .map_err(BuildError::EventFd)?;
        facts.add(FdRole::Stdin, libc::STDIN_FILENO);
        (Some((Arc::new(Mutex::new(console)), is_terminal)), quit)
    } else {
        let quit = EventFd::new(EVENTFD_FLAGS).map_err(BuildError::EventFd)?;
        (None, Arc::new(quit))
    };
    facts.add(FdRole::Event, quit.as_raw_fd());
    let mut exit_watch = ExitWatch::new(ports.reset, vcpu_wake.clone(), quit, report_rx);
    if let Some(trigger) = prepared.as_ref().and_then(|p| p.serial_trigger.clone()) {
        exit_watch.watch_snapshot_trigger(trigger);
    }

    let shared = vcpus::Shared {
        pio,
        mmio,
        mem: mem.clone(),
        stop: stop.clone(),
        reports: report_tx,
        wake: vcpu_wake,
        emulation_hint: host.emulation_hint(),
        trace_boot,
    };
    let vcpus::Created { vcpus, cpuids } = vcpus::create(
        &kvm,
        &vm,
        config,
        &host,
        vcpus::Start {
            boot: boot.as_ref(),
            snapshot: snapshot.as_ref(),
            prepared: prepared.as_ref(),
        },
        shared,
        &mut facts,
    )?;
    let snapshotter = match (prepared, &config.snapshot) {
        (Some(prepared), Some(snapshot_config)) => {
            let parts = setup::Parts {
                nets: net_transports,
                disks: disk_transports,
                vcpus: vcpus.iter().map(|v| v.fd.as_raw_fd()).zip(cpuids).collect(),
            };
            Some(prepared.snapshotter(snapshot_config, config, parts, trace_boot, &mut facts))
        }
        _ => None,
    };
    let restore = snapshot.map(|s| KvmRestore {
        vm: s.vm,
        vcpus: s.vcpus,
    });

    Ok(Vmm {
        reaper,
        _kvm: kvm,
        _vm: vm,
        _memory: mem,
        vcpus,
        exit_watch: Arc::new(Mutex::new(exit_watch)),
        console,
        serial: ports.serial,
        serial_flush: ports.serial_flush.map(|f| Arc::new(Mutex::new(f))),
        nets,
        disks,
        escape,
        stop,
        facts,
        snapshotter,
        restore,
        boot,
    })
}

//! What KVM's own calls cost on this host, timed in the bench process: the start-up
//! floor and the steps sandvmm adds to it, memory registered after the interrupt
//! controllers instead of before (vmm/src/builder/mod.rs, `create_interrupt_controllers`),
//! and the `close` of a VM with and without the PIT's tick re-injection, which is the
//! work sandvmm's reaper does after sandvmm's exit (vmm/src/teardown.rs). These are
//! the figures that explain the whole run's start-up and exit, measured instead of
//! traced.

use kvm_bindings::{
    kvm_pit_config, kvm_reinject_control, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use std::os::fd::AsRawFd;
use vmm::vcpu::monotonic_ns;

use crate::report::Report;

const GUEST_MEMORY: usize = 128 << 20;

/// The samples, in ms, one per round.
#[derive(Default)]
pub struct KvmCosts {
    /// `KVM_CREATE_VM` plus registering the guest memory.
    floor: Vec<f64>,
    irqchip: Vec<f64>,
    pit: Vec<f64>,
    /// Registering the guest memory right after the interrupt controllers and PIT.
    late_registration: Vec<f64>,
    reinject_off: Vec<f64>,
    close_reinject_off: Vec<f64>,
    close_reinject_on: Vec<f64>,
}

/// Guest memory: an anonymous mapping, unmapped on drop.
struct Mapping(*mut libc::c_void);

impl Mapping {
    fn new() -> Result<Mapping, String> {
        // SAFETY: a fresh anonymous private mapping, checked below.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUEST_MEMORY,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        match host == libc::MAP_FAILED {
            true => Err("cannot map guest memory".into()),
            false => Ok(Mapping(host)),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`; every VM using it is gone.
        unsafe { libc::munmap(self.0, GUEST_MEMORY) };
    }
}

fn ms(from: u128) -> f64 {
    (monotonic_ns() - from) as f64 / 1e6
}

fn register(vm: &VmFd, memory: &Mapping) -> Result<(), String> {
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: GUEST_MEMORY as u64,
        userspace_addr: memory.0 as u64,
    };
    // SAFETY: the region is `memory`, which the caller keeps until the VM is closed.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))
}

/// A VM as sandvmm builds one, each step timed: [floor, irqchip, PIT]. With
/// `memory_last`, guest memory is registered after the PIT instead, and the third
/// figure is that registration.
fn build(kvm: &Kvm, memory: &Mapping, memory_last: bool) -> Result<(VmFd, [f64; 3]), String> {
    let t = monotonic_ns();
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    if !memory_last {
        register(&vm, memory)?;
    }
    let floor = ms(t);
    let t = monotonic_ns();
    vm.create_irq_chip()
        .map_err(|e| format!("KVM_CREATE_IRQCHIP: {e}"))?;
    let irqchip = ms(t);
    let t = monotonic_ns();
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| format!("KVM_CREATE_PIT2: {e}"))?;
    let pit = ms(t);
    if memory_last {
        let t = monotonic_ns();
        register(&vm, memory)?;
        return Ok((vm, [floor, irqchip, ms(t)]));
    }
    Ok((vm, [floor, irqchip, pit]))
}

fn reinjection_off(vm: &VmFd) -> Result<(), String> {
    let control = kvm_reinject_control::default();
    // SAFETY: KVM_REINJECT_CONTROL reads a `kvm_reinject_control`, alive for the call.
    let rc = unsafe {
        libc::ioctl(
            vm.as_raw_fd(),
            sandbox::consts::KVM_REINJECT_CONTROL as _,
            &control as *const kvm_reinject_control,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(format!(
            "KVM_REINJECT_CONTROL: {}",
            std::io::Error::last_os_error()
        )),
    }
}

impl KvmCosts {
    /// One round: a VM built in sandvmm's order with re-injection then turned off,
    /// one with it left on as sandvmm leaves it (its close is the reaper's work), each
    /// closed; and one with memory registered last.
    pub fn measure(&mut self, kvm: &Kvm) -> Result<(), String> {
        let memory = Mapping::new()?;
        let (vm, [floor, irqchip, pit]) = build(kvm, &memory, false)?;
        let t = monotonic_ns();
        reinjection_off(&vm)?;
        self.reinject_off.push(ms(t));
        let t = monotonic_ns();
        drop(vm);
        self.close_reinject_off.push(ms(t));
        self.floor.push(floor);
        self.irqchip.push(irqchip);
        self.pit.push(pit);
        let (vm, _) = build(kvm, &memory, false)?;
        let t = monotonic_ns();
        drop(vm);
        self.close_reinject_on.push(ms(t));
        let (vm, [_, _, late]) = build(kvm, &memory, true)?;
        self.late_registration.push(late);
        // Its close is left out of the figures: it destroys a VM like the one above.
        drop(vm);
        Ok(())
    }
}

/// Adds the rows to the whole-run group.
pub fn report(costs: &KvmCosts, report: &mut Report) {
    for (name, values) in [
        (
            "KVM floor: KVM_CREATE_VM + registering 128 MiB",
            &costs.floor,
        ),
        ("KVM: KVM_CREATE_IRQCHIP", &costs.irqchip),
        ("KVM: KVM_CREATE_PIT2", &costs.pit),
        (
            "KVM: registering 128 MiB after KVM_CREATE_IRQCHIP and the PIT",
            &costs.late_registration,
        ),
        (
            "KVM: PIT re-injection off (KVM_REINJECT_CONTROL)",
            &costs.reinject_off,
        ),
        (
            "KVM: close of the VM, re-injection off",
            &costs.close_reinject_off,
        ),
        (
            "KVM: close of the VM, re-injection left on",
            &costs.close_reinject_on,
        ),
    ] {
        report.add("whole-run", name, "ms", values);
    }
}

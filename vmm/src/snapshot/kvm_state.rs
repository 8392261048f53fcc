//! KVM's share of a snapshot: each vCPU's registers, controllers and MSRs, and the
//! VM's interrupt controllers, PIT and clock.
//!
//! The order of the calls matters to KVM, and follows Documentation/virt/kvm/api.rst
//! and what Firecracker learned:
//! - saving, `KVM_GET_MP_STATE` comes first, because it makes the LAPIC accept
//!   pending INIT/SIPI events, which changes the other state;
//! - restoring, the LAPIC comes before the MSRs (the TSC-deadline MSR needs the LAPIC
//!   in TSC-deadline mode) and the vCPU events come last (a pending exception or NMI
//!   must not be lost to a later call that resets it);
//! - the clock is set before the irqchip, and both after the PIT.
//!
//! A vCPU's state is read by the VMM thread through the vCPU's fd while the vCPU's own
//! thread is parked out of `KVM_RUN` (pause.rs): kvm-ioctls' `VcpuFd` stays with that
//! thread, so the reads are plain `ioctl`s on the borrowed fd. It is written before the
//! vCPU's thread starts, after guest memory is registered (the kvmclock and async-PF
//! MSRs point into guest memory), through the `VcpuFd`.

use std::os::fd::{AsRawFd, BorrowedFd};

use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_msr_entry, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::{VcpuFd, VmFd};
use sandbox::consts::{
    KVM_GET_DEBUGREGS, KVM_GET_LAPIC, KVM_GET_MP_STATE, KVM_GET_MSRS, KVM_GET_REGS, KVM_GET_SREGS,
    KVM_GET_VCPU_EVENTS, KVM_GET_XCRS, KVM_GET_XSAVE,
};

use super::format::{Raw, VcpuState, VmState};

/// Errors from reading or writing KVM state.
#[derive(Debug, thiserror::Error)]
pub enum KvmStateError {
    #[error("KVM refused to {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("KVM took {set} of the snapshot's {total} MSRs; it refused MSR {index:#x}")]
    Msr {
        set: usize,
        total: usize,
        index: u32,
    },
    #[error("cannot hold {0} MSRs")]
    MsrCount(usize),
}

fn kvm(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> KvmStateError {
    move |e| KvmStateError::Kvm(what, e)
}

/// A vCPU state struct and the `KVM_GET_*` request that writes exactly one of it
/// through its argument (`_IOR(KVMIO, nr, Self)` in linux/kvm.h; sandbox/src/consts.rs
/// builds each request from the same type).
trait VcpuGet: Default {
    const REQUEST: u64;
    const WHAT: &'static str;
}

macro_rules! vcpu_get {
    ($($ty:ty => $request:ident, $what:literal;)*) => {
        $(impl VcpuGet for $ty {
            const REQUEST: u64 = $request;
            const WHAT: &'static str = $what;
        })*
    };
}

vcpu_get! {
    kvm_mp_state => KVM_GET_MP_STATE, "read the MP state";
    kvm_regs => KVM_GET_REGS, "read the registers";
    kvm_sregs => KVM_GET_SREGS, "read the special registers";
    kvm_xsave => KVM_GET_XSAVE, "read the FPU state (XSAVE)";
    kvm_xcrs => KVM_GET_XCRS, "read the XCRs";
    kvm_debugregs => KVM_GET_DEBUGREGS, "read the debug registers";
    kvm_lapic_state => KVM_GET_LAPIC, "read the LAPIC";
    kvm_vcpu_events => KVM_GET_VCPU_EVENTS, "read the vCPU events";
}

/// One `KVM_GET_*` call on vCPU fd `fd`.
fn get<T: VcpuGet>(fd: BorrowedFd<'_>) -> Result<T, KvmStateError> {
    let mut value = T::default();
    // SAFETY: `T::REQUEST` writes exactly one `T` through its argument (VcpuGet), into
    // `value`, which lives for the call; `fd` is borrowed, so it stays open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), T::REQUEST as _, &mut value as *mut T) };
    if rc < 0 {
        return Err(KvmStateError::Kvm(T::WHAT, kvm_ioctls::Error::last()));
    }
    Ok(value)
}

/// Reads one vCPU's state through `fd`, on the VMM thread while the vCPU's own thread
/// is parked out of `KVM_RUN` (pause.rs). `cpuid` is what the VMM set on it;
/// `msr_index` is KVM's MSR list (`KVM_GET_MSR_INDEX_LIST`), of which the readable
/// ones are kept.
pub fn save_vcpu(
    fd: BorrowedFd<'_>,
    cpuid: &[kvm_cpuid_entry2],
    msr_index: &[u32],
) -> Result<VcpuState, KvmStateError> {
    let mp_state: kvm_mp_state = get(fd)?;
    let regs = get(fd)?;
    let sregs = get(fd)?;
    let xsave = get(fd)?;
    let xcrs = get(fd)?;
    let debugregs = get(fd)?;
    let lapic = get(fd)?;
    let msrs = save_msrs(fd, msr_index)?;
    let events = get(fd)?;
    Ok(VcpuState {
        cpuid: cpuid.iter().copied().map(Raw).collect(),
        regs: Raw(regs),
        sregs: Raw(sregs),
        xsave: Raw(xsave),
        xcrs: Raw(xcrs),
        debugregs: Raw(debugregs),
        lapic: Raw(lapic),
        mp_state: Raw(mp_state),
        events: Raw(events),
        msrs,
    })
}

/// Reads every MSR of `index` that KVM lets the VMM read. `KVM_GET_MSRS` stops at the
/// first MSR it cannot read and returns how many it read: that one is dropped and the
/// rest read again.
fn save_msrs(fd: BorrowedFd<'_>, index: &[u32]) -> Result<Vec<(u32, u64)>, KvmStateError> {
    let mut saved = Vec::with_capacity(index.len());
    let mut rest = index;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs =
            Msrs::from_entries(&entries).map_err(|_| KvmStateError::MsrCount(entries.len()))?;
        // SAFETY: KVM_GET_MSRS reads a `kvm_msrs` header and then as many entries as
        // its `nmsrs` says, which the FAM wrapper allocated, and writes their data.
        let read = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                KVM_GET_MSRS as _,
                msrs.as_mut_fam_struct_ptr(),
            )
        };
        if read < 0 {
            return Err(KvmStateError::Kvm(
                "read the MSRs",
                kvm_ioctls::Error::last(),
            ));
        }
        let read = read as usize;
        saved.extend(msrs.as_slice()[..read].iter().map(|e| (e.index, e.data)));
        rest = &rest[(read + 1).min(rest.len())..];
    }
    Ok(saved)
}

/// Writes one vCPU's state (its CPUID was set when the vCPU was created).
pub fn restore_vcpu(fd: &VcpuFd, state: &VcpuState) -> Result<(), KvmStateError> {
    fd.set_mp_state(state.mp_state.0)
        .map_err(kvm("set the MP state"))?;
    fd.set_regs(&state.regs.0)
        .map_err(kvm("set the registers"))?;
    fd.set_sregs(&state.sregs.0)
        .map_err(kvm("set the special registers"))?;
    // SAFETY: the buffer is a whole `kvm_xsave` (4 KiB). KVM_SET_XSAVE reads more only
    // after the process enables dynamic XSTATE features (AMX) with arch_prctl, which
    // sandvmm never does.
    unsafe { fd.set_xsave(&state.xsave.0) }.map_err(kvm("set the FPU state (XSAVE)"))?;
    fd.set_xcrs(&state.xcrs.0).map_err(kvm("set the XCRs"))?;
    fd.set_debug_regs(&state.debugregs.0)
        .map_err(kvm("set the debug registers"))?;
    fd.set_lapic(&state.lapic.0).map_err(kvm("set the LAPIC"))?;
    let entries: Vec<kvm_msr_entry> = state
        .msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|_| KvmStateError::MsrCount(entries.len()))?;
    let set = fd.set_msrs(&msrs).map_err(kvm("set the MSRs"))?;
    if set != entries.len() {
        return Err(KvmStateError::Msr {
            set,
            total: entries.len(),
            index: entries[set].index,
        });
    }
    fd.set_vcpu_events(&state.events.0)
        .map_err(kvm("set the vCPU events"))?;
    Ok(())
}

fn irqchip(vm: &VmFd, chip_id: u32) -> Result<kvm_irqchip, KvmStateError> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip)
        .map_err(kvm("read the interrupt controllers"))?;
    Ok(chip)
}

/// Reads the VM-wide state: PIT, clock, PICs and IOAPIC.
pub fn save_vm(vm: &VmFd) -> Result<VmState, KvmStateError> {
    let pit = vm.get_pit2().map_err(kvm("read the PIT"))?;
    let clock = vm.get_clock().map_err(kvm("read the KVM clock"))?;
    Ok(VmState {
        pit: Raw(pit),
        // Only the time is state; KVM_SET_CLOCK refuses the flags GET_CLOCK reports
        // (TSC_STABLE and friends).
        clock: Raw(kvm_clock_data { flags: 0, ..clock }),
        pic_master: Raw(irqchip(vm, KVM_IRQCHIP_PIC_MASTER)?),
        pic_slave: Raw(irqchip(vm, KVM_IRQCHIP_PIC_SLAVE)?),
        ioapic: Raw(irqchip(vm, KVM_IRQCHIP_IOAPIC)?),
    })
}

/// Writes the VM-wide state. The guest's clock resumes from the snapshot's time, so
/// it sees no jump for the time the snapshot sat on disk.
pub fn restore_vm(vm: &VmFd, state: &VmState) -> Result<(), KvmStateError> {
    vm.set_pit2(&state.pit.0).map_err(kvm("set the PIT"))?;
    let clock = kvm_clock_data {
        flags: 0,
        ..state.clock.0
    };
    vm.set_clock(&clock).map_err(kvm("set the KVM clock"))?;
    for (chip, id) in [
        (&state.pic_master, KVM_IRQCHIP_PIC_MASTER),
        (&state.pic_slave, KVM_IRQCHIP_PIC_SLAVE),
        (&state.ioapic, KVM_IRQCHIP_IOAPIC),
    ] {
        // The chip id comes from its place in the file, not from its bytes.
        let chip = kvm_irqchip {
            chip_id: id,
            ..chip.0
        };
        vm.set_irqchip(&chip)
            .map_err(kvm("set the interrupt controllers"))?;
    }
    Ok(())
}

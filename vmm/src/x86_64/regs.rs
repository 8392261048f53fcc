//! The state the boot vCPU starts in: 64-bit long mode with paging on, as the Linux
//! 64-bit boot protocol requires (Documentation/arch/x86/boot.rst, "64-bit Boot
//! Protocol"): flat segments, an identity map covering the kernel, boot_params and the
//! command line, interrupts off, RSI pointing at the zero page.
//!
//! The guest-memory writes (GDT, IDT, page tables) are separate from the KVM calls so
//! that they can be unit-tested.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{self, BOOT_GDT};
use crate::memory::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
    ZERO_PAGE_START,
};

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Page-table entry bits: present, writable, and (in a PD) a 2 MiB page.
const PTE_PRESENT_RW: u64 = 0x3;
const PDE_2M_PAGE: u64 = 0x83;

/// Errors from setting up vCPU state.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    #[error("cannot write the boot {0} into guest memory")]
    GuestWrite(&'static str),
    #[error("cannot set the vCPU's {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("KVM accepted {set} of {wanted} boot MSRs")]
    Msrs { set: usize, wanted: usize },
}

/// Writes the GDT, an empty IDT and the identity page tables into guest memory.
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    for (i, entry) in BOOT_GDT.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(BOOT_GDT_START + 8 * i as u64))
            .map_err(|_| RegsError::GuestWrite("GDT"))?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(|_| RegsError::GuestWrite("IDT"))?;
    let write = |value: u64, addr: u64| {
        mem.write_obj(value, GuestAddress(addr))
            .map_err(|_| RegsError::GuestWrite("page tables"))
    };
    write(PDPTE_START | PTE_PRESENT_RW, PML4_START)?;
    write(PDE_START | PTE_PRESENT_RW, PDPTE_START)?;
    // 512 2 MiB pages: the first 1 GiB, enough for the kernel, initrd and boot data.
    for i in 0..512u64 {
        write((i << 21) | PDE_2M_PAGE, PDE_START + i * 8)?;
    }
    Ok(())
}

/// Special registers for 64-bit entry, starting from what KVM reports.
pub fn long_mode_sregs(mut sregs: kvm_sregs) -> kvm_sregs {
    let code = gdt::segment(&BOOT_GDT, 1);
    let data = gdt::segment(&BOOT_GDT, 2);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&BOOT_GDT) - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = gdt::segment(&BOOT_GDT, 3);
    sregs.cr3 = PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    sregs
}

/// General registers for entry at `entry`.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2, // bit 1 is reserved and always set; IF is clear
        rip: entry,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rsi: ZERO_PAGE_START,
        ..Default::default()
    }
}

/// MSRs the guest expects cleared at entry, plus fast strings enabled.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    const MSR_IA32_TSC: u32 = 0x10;
    const MSR_IA32_SYSENTER_CS: u32 = 0x174;
    const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
    const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
    const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
    const MSR_STAR: u32 = 0xc000_0081;
    const MSR_LSTAR: u32 = 0xc000_0082;
    const MSR_CSTAR: u32 = 0xc000_0083;
    const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
    const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
    const MISC_ENABLE_FAST_STRING: u64 = 1;
    let entry = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    vec![
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_TSC, 0),
        entry(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ]
}

/// Puts the boot vCPU into 64-bit mode at `entry`.
pub fn setup_boot_vcpu(vcpu: &VcpuFd, entry: u64) -> Result<(), RegsError> {
    let sregs = vcpu.get_sregs().map_err(|e| RegsError::Kvm("sregs", e))?;
    vcpu.set_sregs(&long_mode_sregs(sregs))
        .map_err(|e| RegsError::Kvm("sregs", e))?;
    vcpu.set_regs(&boot_regs(entry))
        .map_err(|e| RegsError::Kvm("registers", e))?;
    Ok(())
}

/// State every vCPU needs, the boot one and the ones woken by INIT/SIPI alike:
/// a sane FPU and the boot MSRs.
pub fn setup_common(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,    // x87 default control word: all exceptions masked
        mxcsr: 0x1f80, // SSE default: all exceptions masked, round to nearest
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|e| RegsError::Kvm("FPU", e))?;
    let entries = boot_msrs();
    let msrs = Msrs::from_entries(&entries).map_err(|_| RegsError::Msrs {
        set: 0,
        wanted: entries.len(),
    })?;
    let set = vcpu
        .set_msrs(&msrs)
        .map_err(|e| RegsError::Kvm("MSRs", e))?;
    if set != entries.len() {
        return Err(RegsError::Msrs {
            set,
            wanted: entries.len(),
        });
    }
    Ok(())
}

/// Programs the local APIC's LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, the
/// wiring of a PC and what the MP table says (MP spec 1.4, 5.1 "Default configurations").
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), RegsError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const MODE_EXTINT: u32 = 0x7;
    const MODE_NMI: u32 = 0x4;
    let mut lapic = vcpu.get_lapic().map_err(|e| RegsError::Kvm("LAPIC", e))?;
    for (reg, mode) in [(APIC_LVT0, MODE_EXTINT), (APIC_LVT1, MODE_NMI)] {
        let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[reg + i] as u8);
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            lapic.regs[reg + i] = *b as _;
        }
    }
    vcpu.set_lapic(&lapic)
        .map_err(|e| RegsError::Kvm("LAPIC", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let m = mem();
        write_boot_tables(&m).unwrap();
        let pml4: u64 = m.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let pdpte: u64 = m.read_obj(GuestAddress(PDPTE_START)).unwrap();
        assert_eq!(pdpte, PDE_START | 3);
        let first: u64 = m.read_obj(GuestAddress(PDE_START)).unwrap();
        let last: u64 = m.read_obj(GuestAddress(PDE_START + 511 * 8)).unwrap();
        assert_eq!(first, 0x83);
        assert_eq!(last, (511 << 21) | 0x83);
    }

    #[test]
    fn gdt_is_written_where_sregs_point() {
        let m = mem();
        write_boot_tables(&m).unwrap();
        let sregs = long_mode_sregs(kvm_sregs::default());
        for (i, want) in BOOT_GDT.iter().enumerate() {
            let got: u64 = m
                .read_obj(GuestAddress(sregs.gdt.base + 8 * i as u64))
                .unwrap();
            assert_eq!(got, *want);
        }
        assert_eq!(sregs.gdt.limit, 31);
    }

    #[test]
    fn sregs_enter_long_mode_with_paging() {
        let s = long_mode_sregs(kvm_sregs::default());
        assert_ne!(s.cr0 & X86_CR0_PE, 0);
        assert_ne!(s.cr0 & X86_CR0_PG, 0);
        assert_ne!(s.cr4 & X86_CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cr3, PML4_START);
        assert_eq!(s.cs.selector, gdt::CODE_SELECTOR);
        assert_eq!(s.ss.selector, gdt::DATA_SELECTOR);
    }

    #[test]
    fn regs_follow_the_boot_protocol() {
        let r = boot_regs(0x100_0000);
        assert_eq!(r.rip, 0x100_0000);
        assert_eq!(r.rsi, ZERO_PAGE_START);
        assert_eq!(r.rflags & (1 << 9), 0, "interrupts must be off at entry");
    }
}

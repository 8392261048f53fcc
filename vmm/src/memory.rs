//! Guest physical memory: the layout every other module places things by, and the
//! mmap-backed guest RAM itself.
//!
//! ```text
//!   0x0000_0500  GDT used at entry (4 entries)
//!   0x0000_0520  IDT used at entry (empty: interrupts stay off until the guest sets its own)
//!   0x0000_7000  zero page (struct boot_params), Linux boot protocol §"64-bit boot"
//!   0x0000_8ff0  initial stack pointer
//!   0x0000_9000  PML4, then PDPT (0xa000) and PD (0xb000): identity map of the first 1 GiB
//!   0x0002_0000  kernel command line (up to 2 KiB, COMMAND_LINE_SIZE on x86)
//!   0x0009_fc00  EBDA: MP floating pointer and MP configuration table (MP spec 1.4)
//!   0x000a_0000  legacy VGA/ROM hole, not RAM
//!   0x0010_0000  high memory: the kernel is loaded here or above; the initrd sits at the
//!                top of RAM below the MMIO gap
//!   0xd000_0000  MMIO gap (768 MiB): virtio-mmio devices, IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000
//!   0x1_0000_0000 RAM continues here when the guest has more than 3.25 GiB
//! ```

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Where the boot GDT lives.
pub const BOOT_GDT_START: u64 = 0x500;
/// Where the (empty) boot IDT lives.
pub const BOOT_IDT_START: u64 = 0x520;
/// The zero page (`struct boot_params`), passed to the kernel in RSI.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial RSP and RBP.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Page-map level 4 table.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// Page directory (512 entries of 2 MiB pages: the first 1 GiB).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Longest command line, including the NUL (x86 `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area; the MP tables go here.
pub const EBDA_START: u64 = 0x9fc00;
/// First byte of high memory; kernels are loaded at or above it.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the MMIO gap below 4 GiB.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
/// End of the MMIO gap (4 GiB).
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// IOAPIC registers (fixed by the PC platform; KVM's in-kernel IOAPIC sits here).
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Local APIC registers.
pub const APIC_START: u64 = 0xfee0_0000;
/// Identity-mapped TSS region KVM needs on Intel hosts (three pages just below the BIOS).
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
/// Smallest guest we accept: the fixed low-memory layout plus a kernel.
pub const MIN_MEMORY: u64 = 16 << 20;
/// Page size, the granularity of guest memory.
pub const PAGE_SIZE: u64 = 4096;

// The fixed structures must not overlap; checked when the crate compiles.
const _: () = {
    assert!(BOOT_IDT_START >= BOOT_GDT_START + 4 * 8);
    assert!(BOOT_STACK_POINTER < PML4_START);
    assert!(PDE_START + PAGE_SIZE <= CMDLINE_START);
    assert!(CMDLINE_START + CMDLINE_MAX_SIZE as u64 <= EBDA_START);
    assert!(EBDA_START < HIMEM_START);
    assert!(IOAPIC_START > MMIO_GAP_START && APIC_START < MMIO_GAP_END);
};

/// Errors from setting up guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap failed, usually for lack of host memory or address space.
    #[error("cannot allocate {size} bytes of guest memory")]
    Allocate {
        size: u64,
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    #[error("cannot keep guest memory out of core dumps")]
    DontDump(#[source] std::io::Error),
    #[error("cannot map guest memory from the snapshot's memory file")]
    Map(#[source] std::io::Error),
}

/// The guest RAM ranges for `size` bytes: one range below the MMIO gap, and a second
/// one from 4 GiB for whatever does not fit below it.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize),
        ]
    }
}

/// End (exclusive) of the RAM below the MMIO gap.
pub fn lowmem_end(size: u64) -> u64 {
    size.min(MMIO_GAP_START)
}

/// Maps `size` bytes of anonymous guest memory.
///
/// The mappings are `MADV_DONTDUMP`: a core dump of sandvmm, should one ever be written
/// despite the jail's `RLIMIT_CORE 0`, never holds the guest's memory.
pub fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    let mem = GuestMemoryMmap::from_ranges(&ram_ranges(size))
        .map_err(|source| MemoryError::Allocate { size, source })?;
    dont_dump(&mem)?;
    Ok(mem)
}

/// Keeps `mem` out of core dumps (`MADV_DONTDUMP`).
pub fn dont_dump(mem: &GuestMemoryMmap) -> Result<(), MemoryError> {
    for region in mem.iter() {
        // SAFETY: advice on a mapping `mem` owns, of its own length; DONTDUMP changes
        // only what a core dump includes.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_DONTDUMP,
            )
        };
        if rc < 0 {
            return Err(MemoryError::DontDump(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guests_have_one_range() {
        assert_eq!(ram_ranges(128 << 20), vec![(GuestAddress(0), 128 << 20)]);
        assert_eq!(lowmem_end(128 << 20), 128 << 20);
    }

    #[test]
    fn large_guests_skip_the_mmio_gap() {
        let size = 4u64 << 30;
        let ranges = ram_ranges(size);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0], (GuestAddress(0), MMIO_GAP_START as usize));
        assert_eq!(ranges[1].0, GuestAddress(MMIO_GAP_END));
        assert_eq!(ranges[0].1 as u64 + ranges[1].1 as u64, size);
        assert_eq!(lowmem_end(size), MMIO_GAP_START);
    }
}

//! The zero page (`struct boot_params`) and the e820 memory map.
//!
//! Linux boot protocol (Documentation/arch/x86/boot.rst): a 64-bit loader fills in
//! `boot_params`, copies the bzImage's setup header into `hdr` (or builds one for an
//! ELF vmlinux), sets `type_of_loader`, the command line and ramdisk fields, and the
//! e820 table (Documentation/arch/x86/zero-page.rst: `e820_entries` at 0x1e8,
//! `e820_table` at 0x2d0).

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::memory::{
    lowmem_end, CMDLINE_START, EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START,
    ZERO_PAGE_START,
};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
/// "Undefined" boot loader ID (0xff), for loaders without an assigned one.
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// Linux's default physical alignment (CONFIG_PHYSICAL_ALIGN), for headers we build.
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
/// The e820 table in the zero page has 128 slots.
const E820_MAX_ENTRIES: usize = 128;

/// Where the initrd went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramdisk {
    pub address: u64,
    pub size: u64,
}

/// Errors from writing the zero page.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("the e820 table is full")]
    E820Full,
    #[error("cannot write the zero page into guest memory")]
    Write(#[source] linux_loader::configurator::Error),
}

/// The e820 map for a guest with `memory` bytes of RAM: base memory up to the EBDA,
/// high memory up to the MMIO gap, and the rest above 4 GiB.
pub fn e820_map(memory: u64) -> Vec<boot_e820_entry> {
    let entry = |addr: u64, end: u64| boot_e820_entry {
        addr,
        size: end - addr,
        r#type: E820_RAM,
    };
    let mut map = vec![entry(0, EBDA_START), entry(HIMEM_START, lowmem_end(memory))];
    if memory > MMIO_GAP_START {
        map.push(entry(MMIO_GAP_END, MMIO_GAP_END + memory - MMIO_GAP_START));
    }
    map
}

/// Builds the zero page.
pub fn build_boot_params(
    header: Option<setup_header>,
    cmdline_len: usize,
    ramdisk: Option<Ramdisk>,
    memory: u64,
) -> Result<boot_params, ParamsError> {
    let mut params = boot_params::default();
    if let Some(header) = header {
        params.hdr = header;
    } else {
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(rd) = ramdisk {
        params.hdr.ramdisk_image = rd.address as u32;
        params.hdr.ramdisk_size = rd.size as u32;
    }
    let map = e820_map(memory);
    if map.len() > E820_MAX_ENTRIES {
        return Err(ParamsError::E820Full);
    }
    params.e820_table[..map.len()].copy_from_slice(&map);
    params.e820_entries = map.len() as u8;
    Ok(params)
}

/// Writes `params` to the zero page.
pub fn write_boot_params(mem: &GuestMemoryMmap, params: &boot_params) -> Result<(), ParamsError> {
    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )
    .map_err(ParamsError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_skips_the_bios_hole_and_the_mmio_gap() {
        let small = e820_map(128 << 20);
        assert_eq!(small.len(), 2);
        assert_eq!((small[0].addr, small[0].size), (0, EBDA_START));
        assert_eq!({ small[1].addr }, HIMEM_START);
        assert_eq!(small[1].addr + small[1].size, 128 << 20);

        let big = e820_map(4 << 30);
        assert_eq!(big.len(), 3);
        assert_eq!(big[1].addr + big[1].size, MMIO_GAP_START);
        assert_eq!({ big[2].addr }, MMIO_GAP_END);
        let ram: u64 = big.iter().map(|e| e.size).sum();
        assert_eq!(ram, (4 << 30) - (HIMEM_START - EBDA_START));
    }

    #[test]
    fn elf_kernels_get_a_built_header() {
        let rd = Ramdisk {
            address: 0x700_0000,
            size: 0x1234,
        };
        let p = build_boot_params(None, 42, Some(rd), 128 << 20).unwrap();
        let hdr = p.hdr;
        assert_eq!({ hdr.boot_flag }, KERNEL_BOOT_FLAG_MAGIC);
        assert_eq!({ hdr.header }, KERNEL_HDR_MAGIC);
        assert_eq!({ hdr.type_of_loader }, KERNEL_LOADER_OTHER);
        assert_eq!({ hdr.cmd_line_ptr } as u64, CMDLINE_START);
        assert_eq!({ hdr.cmdline_size }, 42);
        assert_eq!((hdr.ramdisk_image, hdr.ramdisk_size), (0x700_0000, 0x1234));
        assert_eq!(p.e820_entries, 2);
    }

    #[test]
    fn bzimage_headers_are_kept() {
        let header = setup_header {
            version: 0x020f,
            setup_sects: 27,
            ..Default::default()
        };
        let p = build_boot_params(Some(header), 1, None, 64 << 20).unwrap();
        let hdr = p.hdr;
        assert_eq!((hdr.version, hdr.setup_sects), (0x020f, 27));
        assert_eq!({ hdr.type_of_loader }, KERNEL_LOADER_OTHER);
        assert_eq!((hdr.ramdisk_image, hdr.ramdisk_size), (0, 0));
    }
}

//! Putting a guest into memory: kernel, initrd, command line, zero page, boot tables
//! and MP table. After [`load_guest`] the boot vCPU only needs its registers set to the
//! returned entry point.

mod kernel;
mod params;

use std::fs::File;
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::load_cmdline;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub use kernel::{KernelError, KernelFormat, LoadedKernel};
pub use params::{e820_map, Ramdisk, E820_RAM};

use crate::config::{VmConfig, DEFAULT_CMDLINE};
use crate::host::Host;
use crate::memory::{lowmem_end, CMDLINE_MAX_SIZE, CMDLINE_START, PAGE_SIZE};
use crate::virtio_slot::MmioSlot;
use crate::x86_64::{mptable, regs};
use devices::virtio::mmio::MMIO_WINDOW;

/// Errors from loading the guest.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("cannot open initrd {path}")]
    InitrdOpen {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("initrd {0} is empty")]
    InitrdEmpty(String),
    #[error("initrd {path} ({size} bytes) does not fit in guest memory above the kernel; give the guest more --memory")]
    InitrdTooLarge { path: String, size: u64 },
    #[error("cannot read initrd {0} into guest memory")]
    InitrdRead(String),
    #[error("invalid kernel command line: {0}")]
    Cmdline(linux_loader::cmdline::Error),
    #[error("cannot write the kernel command line into guest memory")]
    CmdlineWrite(#[source] linux_loader::loader::Error),
    #[error(transparent)]
    Params(#[from] params::ParamsError),
    #[error(transparent)]
    Tables(#[from] regs::RegsError),
    #[error(transparent)]
    MpTable(#[from] mptable::MpTableError),
}

/// What the rest of the VMM needs to know about the loaded guest.
#[derive(Debug)]
pub struct BootInfo {
    pub kernel: LoadedKernel,
    pub cmdline: String,
    pub ramdisk: Option<Ramdisk>,
}

/// Builds the kernel command line: our defaults, the virtio-mmio devices
/// (`virtio_mmio.device=4K@ADDR:IRQ`, how Linux finds them without ACPI), the host's
/// adaptations, then the user's text (which therefore wins where the kernel takes the
/// last occurrence).
pub fn build_cmdline(
    virtio: &[MmioSlot],
    host_items: Option<&str>,
    user: Option<&str>,
) -> Result<Cmdline, BootError> {
    let mut cmdline =
        Cmdline::try_from(DEFAULT_CMDLINE, CMDLINE_MAX_SIZE).map_err(BootError::Cmdline)?;
    for slot in virtio {
        cmdline
            .add_virtio_mmio_device(MMIO_WINDOW, GuestAddress(slot.addr), slot.irq, None)
            .map_err(BootError::Cmdline)?;
    }
    let mut text = cmdline
        .as_cstring()
        .map_err(BootError::Cmdline)?
        .into_string()
        .unwrap_or_default();
    for extra in [host_items, user].into_iter().flatten() {
        text.push(' ');
        text.push_str(extra.trim());
    }
    Cmdline::try_from(&text, CMDLINE_MAX_SIZE).map_err(BootError::Cmdline)
}

/// Where an initrd of `size` bytes goes: page-aligned at the top of low memory, above
/// the kernel (Linux boot protocol: "as high as possible" below `initrd_addr_max`).
pub fn initrd_address(size: u64, kernel_end: u64, top: u64) -> Option<u64> {
    let address = top.checked_sub(size)? & !(PAGE_SIZE - 1);
    (address >= kernel_end).then_some(address)
}

/// Loads kernel and initrd, writes the command line, zero page, boot tables and MP table.
pub fn load_guest(
    mem: &GuestMemoryMmap,
    config: &VmConfig,
    host: &Host,
    virtio: &[MmioSlot],
) -> Result<BootInfo, BootError> {
    let kernel = kernel::load_kernel(mem, &config.kernel)?;

    let ramdisk = match &config.initrd {
        Some(path) => Some(load_initrd(mem, path, &kernel, config.memory_bytes)?),
        None => None,
    };

    let cmdline = build_cmdline(
        virtio,
        host.cmdline_items(kernel.is_linux),
        config.extra_cmdline.as_deref(),
    )?;
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline).map_err(BootError::CmdlineWrite)?;
    let text = cmdline
        .as_cstring()
        .map_err(BootError::Cmdline)?
        .into_string()
        .unwrap_or_default();

    let params = params::build_boot_params(
        kernel.setup_header,
        text.len(),
        ramdisk,
        config.memory_bytes,
    )?;
    params::write_boot_params(mem, &params)?;
    regs::write_boot_tables(mem)?;
    mptable::setup_mptable(mem, config.vcpus)?;

    Ok(BootInfo {
        kernel,
        cmdline: text,
        ramdisk,
    })
}

fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel: &LoadedKernel,
    memory: u64,
) -> Result<Ramdisk, BootError> {
    let name = path.display().to_string();
    let mut file = File::open(path).map_err(|source| BootError::InitrdOpen {
        path: name.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| BootError::InitrdOpen {
            path: name.clone(),
            source,
        })?
        .len();
    if size == 0 {
        return Err(BootError::InitrdEmpty(name));
    }
    // A bzImage tells us the highest address its initrd may end at.
    let mut top = lowmem_end(memory);
    if let Some(header) = kernel.setup_header {
        if header.initrd_addr_max != 0 {
            top = top.min(u64::from(header.initrd_addr_max) + 1);
        }
    }
    let address = initrd_address(size, kernel.end, top).ok_or(BootError::InitrdTooLarge {
        path: name.clone(),
        size,
    })?;
    mem.read_exact_volatile_from(GuestAddress(address), &mut file, size as usize)
        .map_err(|_| BootError::InitrdRead(name))?;
    Ok(Ramdisk { address, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_is_defaults_then_host_then_user() {
        let c = build_cmdline(&[], Some("pvm_native"), Some(" quiet ")).unwrap();
        let s = c.as_cstring().unwrap().into_string().unwrap();
        assert_eq!(s, format!("{DEFAULT_CMDLINE} pvm_native quiet"));
        let plain = build_cmdline(&[], None, None).unwrap();
        assert_eq!(
            plain.as_cstring().unwrap().to_str().unwrap(),
            DEFAULT_CMDLINE
        );
    }

    #[test]
    fn cmdline_too_long_is_an_error() {
        let long = "x".repeat(CMDLINE_MAX_SIZE);
        assert!(matches!(
            build_cmdline(&[], None, Some(&long)),
            Err(BootError::Cmdline(_))
        ));
    }

    #[test]
    fn initrd_goes_page_aligned_at_the_top() {
        let top = 128 << 20;
        assert_eq!(initrd_address(4096, 0x20_0000, top), Some(top - 4096));
        assert_eq!(initrd_address(100, 0x20_0000, top), Some(top - 4096));
        assert_eq!(initrd_address(top - 0x10_0000, 0x20_0000, top), None);
        assert_eq!(initrd_address(top + 1, 0, top), None);
    }
}

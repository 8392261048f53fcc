//! Kernel images: telling an ELF vmlinux from a bzImage, checking it is something we
//! can boot, and loading it through linux-loader.
//!
//! Both formats end up entered the same way, in 64-bit mode with `boot_params` in RSI:
//! an ELF at its `e_entry` (a vmlinux's `startup_64` physical address), a bzImage at
//! its protected-mode code + 0x200 (Linux boot protocol, "64-bit Boot Protocol":
//! the 64-bit entry point is 0x200 past the 32-bit one).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{self, BzImage, Elf, KernelLoader};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::memory::HIMEM_START;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const EM_X86_64: u16 = 62;
const PT_NOTE: u32 = 4;
/// bzImage: "HdrS" at 0x202, boot protocol version at 0x206.
const BZIMAGE_MAGIC_OFFSET: u64 = 0x202;
const BZIMAGE_MAGIC: &[u8; 4] = b"HdrS";
/// A bzImage promises its 64-bit entry point with `XLF_KERNEL_64` (xloadflags bit 0),
/// a field that exists from boot protocol 2.12.
const MIN_BZIMAGE_VERSION: u16 = 0x020c;
const XLF_KERNEL_64: u16 = 1 << 0;
const STARTUP_64_OFFSET: u64 = 0x200;

/// What kind of image was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    Elf,
    BzImage,
}

/// A loaded kernel.
#[derive(Debug)]
pub struct LoadedKernel {
    pub format: KernelFormat,
    /// 64-bit entry point.
    pub entry: u64,
    /// First byte after the loaded image.
    pub end: u64,
    /// The bzImage setup header, to be copied into the zero page.
    pub setup_header: Option<setup_header>,
    /// Whether this is a Linux kernel (a bzImage, or an ELF carrying a "Linux" note),
    /// as opposed to another 64-bit ELF such as the sandvmm test kernel.
    pub is_linux: bool,
}

/// Errors from loading the kernel image.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot open kernel {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read kernel {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel {0} is neither an ELF vmlinux nor a bzImage")]
    UnknownFormat(String),
    #[error("kernel {0} is a 32-bit ELF; sandvmm boots 64-bit kernels")]
    Elf32(String),
    #[error("kernel {path} is an ELF for machine {machine}, not x86-64")]
    WrongMachine { path: String, machine: u16 },
    #[error("bzImage {path} uses boot protocol {major}.{minor:02} without a 64-bit entry point (need 2.12 with XLF_KERNEL_64)")]
    OldBzImage { path: String, major: u8, minor: u8 },
    #[error("cannot load kernel {path} (truncated, corrupt or too large for guest memory)")]
    Load {
        path: String,
        #[source]
        source: loader::Error,
    },
}

/// Loads the kernel at `path` into `mem`.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, KernelError> {
    let name = path.display().to_string();
    let read_err = |source| KernelError::Read {
        path: name.clone(),
        source,
    };
    let mut file = File::open(path).map_err(|source| KernelError::Open {
        path: name.clone(),
        source,
    })?;
    let mut head = [0u8; 64];
    let got = read_up_to(&mut file, &mut head).map_err(read_err)?;

    if got >= 4 && &head[..4] == ELF_MAGIC {
        if got < 64 {
            return Err(KernelError::Load {
                path: name,
                source: loader::Error::Elf(loader::elf::Error::ReadElfHeader),
            });
        }
        if head[4] != ELFCLASS64 {
            return Err(KernelError::Elf32(name));
        }
        let machine = u16::from_le_bytes([head[18], head[19]]);
        if machine != EM_X86_64 {
            return Err(KernelError::WrongMachine {
                path: name,
                machine,
            });
        }
        let result =
            Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(|source| {
                KernelError::Load {
                    path: name.clone(),
                    source,
                }
            })?;
        let is_linux = has_linux_note(&mut file, &head).map_err(read_err)?;
        return Ok(LoadedKernel {
            format: KernelFormat::Elf,
            entry: result.kernel_load.0,
            end: result.kernel_end,
            setup_header: None,
            is_linux,
        });
    }

    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(BZIMAGE_MAGIC_OFFSET))
        .map_err(read_err)?;
    if read_up_to(&mut file, &mut magic).map_err(read_err)? < 4 || &magic != BZIMAGE_MAGIC {
        return Err(KernelError::UnknownFormat(name));
    }
    let result =
        BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(|source| {
            KernelError::Load {
                path: name.clone(),
                source,
            }
        })?;
    // linux-loader returns the header whenever it succeeds on a bzImage.
    let header = result
        .setup_header
        .ok_or_else(|| KernelError::UnknownFormat(name.clone()))?;
    if header.version < MIN_BZIMAGE_VERSION || header.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(KernelError::OldBzImage {
            path: name,
            major: (header.version >> 8) as u8,
            minor: header.version as u8,
        });
    }
    Ok(LoadedKernel {
        format: KernelFormat::BzImage,
        entry: result.kernel_load.0 + STARTUP_64_OFFSET,
        end: result.kernel_end,
        setup_header: Some(header),
        is_linux: true,
    })
}

/// Reads as much of `buf` as the file has.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Whether the ELF has a note named "Linux" (vmlinux carries build-salt and similar
/// notes under that name). `ehdr` is the 64-byte ELF header.
fn has_linux_note(file: &mut File, ehdr: &[u8; 64]) -> std::io::Result<bool> {
    let phoff = u64::from_le_bytes(ehdr[32..40].try_into().unwrap_or_default());
    let phentsize = u64::from(u16::from_le_bytes([ehdr[54], ehdr[55]]));
    let phnum = u64::from(u16::from_le_bytes([ehdr[56], ehdr[57]]));
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        file.seek(SeekFrom::Start(phoff + i * phentsize))?;
        if read_up_to(file, &mut ph)? < ph.len() {
            return Ok(false);
        }
        if u32::from_le_bytes(ph[0..4].try_into().unwrap_or_default()) != PT_NOTE {
            continue;
        }
        let offset = u64::from_le_bytes(ph[8..16].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(ph[32..40].try_into().unwrap_or_default()).min(1 << 16);
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        let got = read_up_to(file, &mut notes)?;
        if note_names(&notes[..got]).any(|n| n == b"Linux") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The names of the ELF notes in a PT_NOTE segment (ELF spec, "Note Section":
/// namesz, descsz, type, then name and desc each padded to 4 bytes).
fn note_names(mut notes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let word = |b: &[u8], i: usize| -> Option<usize> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
        };
        let namesz = word(notes, 0)?;
        let descsz = word(notes, 4)?;
        let name = notes.get(12..12 + namesz)?;
        let next = 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
        notes = notes.get(next..).unwrap_or(&[]);
        Some(name.strip_suffix(&[0]).unwrap_or(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&1u32.to_le_bytes());
        n.extend_from_slice(name);
        n.push(0);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    #[test]
    fn note_names_walks_padded_notes() {
        let mut notes = note(b"Xen", &[1, 2, 3, 4, 5]);
        notes.extend(note(b"Linux", &[0; 4]));
        let names: Vec<&[u8]> = note_names(&notes).collect();
        assert_eq!(names, vec![&b"Xen"[..], &b"Linux"[..]]);
    }

    #[test]
    fn truncated_notes_end_the_walk() {
        let notes = note(b"GNU", &[0; 16]);
        assert_eq!(note_names(&notes[..10]).count(), 0);
        assert_eq!(note_names(&notes[..notes.len() - 1]).count(), 1);
    }
}

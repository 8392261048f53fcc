//! Reading a snapshot directory for `--restore`: the state file as untrusted input,
//! the memory file checked against it, and guest memory mapped privately from it.
//!
//! Guest memory is a `MAP_PRIVATE` mapping of the memory file: nothing is copied at
//! start-up, pages are read in as the guest touches them, a page the guest writes
//! becomes the process's own copy, and the file never changes, so any number of
//! restores of one snapshot can run at once.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use vm_memory::mmap::MmapRegion;
use vm_memory::{FileOffset, GuestMemoryMmap, GuestRegionMmap};

use super::files::{MEMORY_FILE, STATE_FILE};
use super::format::{Snapshot, MAX_BODY};
use super::SnapshotError;
use crate::memory::{self, MemoryError};

/// A snapshot ready to restore.
pub struct Loaded {
    pub snapshot: Snapshot,
    /// The memory file, open for reading; its length matches the snapshot.
    pub memory: File,
}

/// Reads and checks the snapshot in `dir`.
pub fn load(dir: &Path) -> Result<Loaded, SnapshotError> {
    let io = |name: &'static str| {
        let path = dir.join(name).display().to_string();
        move |source| SnapshotError::Read { path, source }
    };
    let mut bytes = Vec::new();
    File::open(dir.join(STATE_FILE))
        .map_err(io(STATE_FILE))?
        // A body at the limit plus its header line; more is refused by decode.
        .take(MAX_BODY as u64 + 1024)
        .read_to_end(&mut bytes)
        .map_err(io(STATE_FILE))?;
    let snapshot = Snapshot::decode(&bytes)?;
    let memory = File::open(dir.join(MEMORY_FILE)).map_err(io(MEMORY_FILE))?;
    let len = memory.metadata().map_err(io(MEMORY_FILE))?.len();
    if len != snapshot.machine.memory_bytes {
        return Err(SnapshotError::MemoryFile {
            len,
            want: snapshot.machine.memory_bytes,
        });
    }
    let vendor = host_cpu_vendor();
    if vendor != snapshot.machine.cpu_vendor {
        return Err(SnapshotError::CpuVendor {
            snapshot: snapshot.machine.cpu_vendor.clone(),
            host: vendor,
        });
    }
    Ok(Loaded { snapshot, memory })
}

/// This host's CPU vendor string (CPUID leaf 0).
pub fn host_cpu_vendor() -> String {
    let leaf = std::arch::x86_64::__cpuid(0);
    let bytes: Vec<u8> = [leaf.ebx, leaf.edx, leaf.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Maps guest memory privately from `file`, which holds `size` bytes of RAM ranges
/// back to back (the layout `memory::ram_ranges` gives).
pub fn map_memory(file: File, size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    let file = Arc::new(file);
    let mut offset = 0u64;
    let mut regions = Vec::new();
    for (start, len) in memory::ram_ranges(size) {
        let mapping = MmapRegion::build(
            Some(FileOffset::from_arc(file.clone(), offset)),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| MemoryError::Map(std::io::Error::other(e.to_string())))?;
        let region = GuestRegionMmap::new(mapping, start)
            .ok_or_else(|| MemoryError::Map(std::io::Error::other("region overflows")))?;
        regions.push(region);
        offset += len as u64;
    }
    let mem = GuestMemoryMmap::from_regions(regions)
        .map_err(|e| MemoryError::Map(std::io::Error::other(e.to_string())))?;
    memory::dont_dump(&mem)?;
    Ok(mem)
}

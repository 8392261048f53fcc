//! The snapshot directory's two files, opened before the jail and the filters and
//! written afterwards through their fds only (`$snapshot` in the policy: `pwrite64`
//! and `ftruncate`).
//!
//! Memory is written first and the state file last, so a state file that reads back
//! with a good checksum always belongs to a complete memory file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The state file's name in a snapshot directory.
pub const STATE_FILE: &str = "state";
/// The memory file's name in a snapshot directory.
pub const MEMORY_FILE: &str = "memory";

/// Granularity of the all-zero check when memory is first written.
const CHUNK: usize = 64 * 1024;

/// The open snapshot files of a run with `--snapshot-to`.
pub struct SnapshotFiles {
    dir: PathBuf,
    state: File,
    memory: File,
    /// Whether memory has been written before: the first write leaves all-zero
    /// chunks as holes of the freshly truncated file; later ones write everything.
    written: bool,
}

impl SnapshotFiles {
    /// Creates `dir` if needed and creates (or truncates) its files; the memory file
    /// gets the guest's size at once.
    pub fn create(dir: &Path, memory_bytes: u64) -> io::Result<SnapshotFiles> {
        fs::create_dir_all(dir)?;
        let open = |name: &str| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(dir.join(name))
        };
        let state = open(STATE_FILE)?;
        let memory = open(MEMORY_FILE)?;
        memory.set_len(memory_bytes)?;
        Ok(SnapshotFiles {
            dir: dir.to_path_buf(),
            state,
            memory,
            written: false,
        })
    }

    /// The directory, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Both fds, for the `$snapshot` role.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.state.as_raw_fd(), self.memory.as_raw_fd()]
    }

    /// Writes guest RAM, range after range; returns the bytes written.
    pub fn write_memory(&mut self, mem: &GuestMemoryMmap) -> io::Result<u64> {
        let mut offset = 0u64;
        let mut written = 0u64;
        for region in mem.iter() {
            let len = region.len() as usize;
            // SAFETY: the region is a live mapping of `len` bytes owned by `mem`. The
            // vCPUs are parked and the VMM thread (this one) is not serving devices, so
            // nothing writes guest memory while the slice exists.
            let bytes = unsafe { std::slice::from_raw_parts(region.as_ptr(), len) };
            for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
                if !self.written && is_zero(chunk) {
                    continue;
                }
                self.memory
                    .write_all_at(chunk, offset + (i * CHUNK) as u64)?;
                written += chunk.len() as u64;
            }
            offset += len as u64;
        }
        self.written = true;
        Ok(written)
    }

    /// Replaces the state file's contents with `bytes`.
    pub fn write_state(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.state.write_all_at(bytes, 0)?;
        self.state.set_len(bytes.len() as u64)
    }
}

/// Whether every byte of `bytes` is zero, a word at a time.
fn is_zero(bytes: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u64; align_to only reinterprets the
    // aligned middle of the slice and hands back the unaligned ends as bytes.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_check_sees_every_byte() {
        let mut buf = vec![0u8; CHUNK + 3];
        assert!(is_zero(&buf));
        for at in [0, 1, 7, 8, CHUNK / 2, CHUNK + 2] {
            buf[at] = 1;
            assert!(!is_zero(&buf), "byte {at}");
            assert!(!is_zero(&buf[1..]) || at == 0, "byte {at}, unaligned");
            buf[at] = 0;
        }
    }

    #[test]
    fn memory_is_written_at_its_offsets_and_zero_chunks_stay_holes() {
        let dir = std::env::temp_dir().join(format!("sandvmm-files-{}", std::process::id()));
        let size = 16u64 << 20;
        let mem = crate::memory::create_guest_memory(size).unwrap();
        use vm_memory::{Bytes, GuestAddress};
        mem.write_slice(b"hello", GuestAddress(0x12345)).unwrap();
        mem.write_slice(b"end", GuestAddress(size - 3)).unwrap();
        let mut files = SnapshotFiles::create(&dir, size).unwrap();
        assert_eq!(files.write_memory(&mem).unwrap(), 2 * CHUNK as u64);
        files.write_state(b"state, long").unwrap();
        files.write_state(b"short").unwrap();
        let memory = fs::read(dir.join(MEMORY_FILE)).unwrap();
        assert_eq!(memory.len() as u64, size);
        assert_eq!(&memory[0x12345..0x1234a], b"hello");
        assert_eq!(&memory[memory.len() - 3..], b"end");
        assert_eq!(fs::read(dir.join(STATE_FILE)).unwrap(), b"short");
        // A second snapshot writes every chunk, so a page zeroed since is zero again.
        mem.write_slice(&[0; 5], GuestAddress(0x12345)).unwrap();
        assert_eq!(files.write_memory(&mem).unwrap(), size);
        assert!(fs::read(dir.join(MEMORY_FILE))
            .unwrap()
            .iter()
            .take(0x20000)
            .all(|&b| b == 0));
        fs::remove_dir_all(&dir).unwrap();
    }
}

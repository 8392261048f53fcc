//! An in-memory disk for the device's unit tests and the fuzz targets (the
//! `test-utils` feature), so that neither needs files.
//!
//! It also checks the device: a transfer past the end of the disk, one longer than
//! [`MAX_DATA_LEN`], or a write to a disk marked read-only panics, since the device
//! must have refused each of them before reaching the disk.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use vm_memory::VolatileSlice;

use super::disk::BlockBackend;
use super::{MAX_DATA_LEN, SECTOR_SIZE};

/// What an in-memory disk holds; shared with the test through [`MemDisk::state`].
#[derive(Debug, Default)]
pub struct MemDiskState {
    pub data: Vec<u8>,
    /// The device was told the disk is read-only: a write is a device bug.
    pub read_only: bool,
    pub fail_reads: bool,
    pub fail_writes: bool,
    pub fail_flush: bool,
    /// `flush` calls so far.
    pub flushes: u64,
}

/// An in-memory disk; clones share the contents.
#[derive(Debug, Clone, Default)]
pub struct MemDisk(pub Arc<Mutex<MemDiskState>>);

impl MemDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> MemDisk {
        let state = MemDiskState {
            data: vec![0; (sectors * SECTOR_SIZE) as usize],
            ..MemDiskState::default()
        };
        MemDisk(Arc::new(Mutex::new(state)))
    }

    /// The shared state, for a test to inspect or script.
    pub fn state(&self) -> std::sync::MutexGuard<'_, MemDiskState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn range(data: &[u8], bufs: &[VolatileSlice<'_>], offset: u64) -> std::ops::Range<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        assert!(
            len as u64 <= MAX_DATA_LEN,
            "the device passed an oversized request"
        );
        let start = usize::try_from(offset).expect("offset inside the disk");
        assert!(
            start + len <= data.len(),
            "the device let a transfer go past the end of the disk"
        );
        start..start + len
    }
}

impl BlockBackend for MemDisk {
    fn read_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()> {
        let s = self.state();
        let range = MemDisk::range(&s.data, bufs, offset);
        if s.fail_reads {
            return Err(io::Error::other("scripted read failure"));
        }
        let mut at = range.start;
        for b in bufs {
            b.copy_from(&s.data[at..at + b.len()]);
            at += b.len();
        }
        Ok(())
    }

    fn write_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()> {
        let mut s = self.state();
        assert!(!s.read_only, "the device wrote to a read-only disk");
        let range = MemDisk::range(&s.data, bufs, offset);
        if s.fail_writes {
            return Err(io::Error::other("scripted write failure"));
        }
        let mut at = range.start;
        for b in bufs {
            b.copy_to(&mut s.data[at..at + b.len()]);
            at += b.len();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut s = self.state();
        s.flushes += 1;
        if s.fail_flush {
            return Err(io::Error::other("scripted flush failure"));
        }
        Ok(())
    }

    fn sectors(&self) -> u64 {
        self.state().data.len() as u64 / SECTOR_SIZE
    }

    fn raw_fd(&self) -> RawFd {
        -1
    }
}

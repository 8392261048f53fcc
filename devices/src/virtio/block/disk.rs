//! The block device's backing store: a disk image file or a host block device.
//!
//! `--disk path=FILE` opens the file with [`DiskFile::open`]; `--disk fd=N` adopts an
//! fd a management layer opened with [`DiskFile::from_fd`]. Either way the disk must
//! be a regular file or a block device holding a non-zero whole number of 512-byte
//! sectors, and it is locked with `flock` (shared when read-only, exclusive when
//! writable) so that two VMs cannot write one image, nor one read it while another
//! writes it.
//!
//! I/O is synchronous and zero-copy: `preadv`/`pwritev` at an offset with iovecs that
//! point into guest memory, and `fdatasync` for a flush. Those three are the only
//! system calls on the request path; the size is read once, at open.
//!
//! An fd handed in keeps the file status flags its opener gave it, and two of them
//! break that I/O, so such an fd is refused: with O_APPEND, Linux's `pwritev` ignores
//! the offset and appends (pwrite(2), BUGS), so every guest write would land past the
//! end of the disk; with O_DIRECT, every request whose guest buffers are not aligned
//! for direct I/O fails with EINVAL, and virtio lets a driver place buffers anywhere.
//! Clearing the flags instead would change them for the opener too (they belong to
//! the open file description both share).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use vm_memory::VolatileSlice;

use super::SECTOR_SIZE;

// BLKGETSIZE64 is _IOR(0x12, 114, size_t) in <linux/fs.h>. The libc crate does not
// define it, so vmm-sys-util's macro computes the number (0x80081272 on 64-bit) from
// the same direction, type, number and size the kernel header uses.
mod ioctls {
    vmm_sys_util::ioctl_ior_nr!(BLKGETSIZE64, 0x12, 114, u64);
}

/// Most iovecs one `preadv`/`pwritev` takes (UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Errors from opening or adopting a disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk {0} does not exist")]
    NotFound(String),
    #[error("disk {0} is a directory, not a disk image")]
    IsDirectory(String),
    #[error("disk {0} is not a regular file or a block device")]
    NotADisk(String),
    #[error(
        "disk {what} is {size} bytes; a disk must hold a non-zero whole number of 512-byte sectors"
    )]
    BadSize { what: String, size: u64 },
    #[error("disk {0} is in use by another process (locked)")]
    Locked(String),
    #[error("fd {0} is not an open file descriptor")]
    BadFd(RawFd),
    #[error("fd {0} is open write-only; a disk must be readable")]
    FdWriteOnly(RawFd),
    #[error("fd {0} is open read-only; open it read-write or make the disk read-only")]
    FdReadOnly(RawFd),
    #[error("fd {0} is open with O_APPEND, which would put every write at the end of the disk; open it without")]
    FdAppend(RawFd),
    #[error("fd {0} is open with O_DIRECT, which fails guest buffers not aligned for direct I/O; open it without")]
    FdDirect(RawFd),
    #[error("cannot open disk {what}")]
    Open {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot {op} disk {what}")]
    Io {
        what: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What the device needs from its disk; [`DiskFile`] in production, an in-memory
/// disk in tests and fuzzing.
pub trait BlockBackend: Send {
    /// Fills `bufs`, in order, with the disk's bytes from byte `offset` on: all of
    /// them, or an error. The device has checked the range against [`Self::sectors`].
    fn read_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()>;
    /// Writes all of `bufs`, in order, to the disk from byte `offset` on.
    fn write_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable (`fdatasync`).
    fn flush(&mut self) -> io::Result<()>;
    /// Size in 512-byte sectors.
    fn sectors(&self) -> u64;
    /// The fd the sandbox pins for the I/O system calls.
    fn raw_fd(&self) -> RawFd;
}

/// An open, locked disk image or block device.
#[derive(Debug)]
pub struct DiskFile {
    file: File,
    sectors: u64,
    read_only: bool,
}

impl DiskFile {
    /// Opens `path` read-only or read-write and locks it.
    pub fn open(path: &Path, read_only: bool) -> Result<DiskFile, DiskError> {
        let what = path.display().to_string();
        // Refuse by type before opening: opening a FIFO or a terminal has effects.
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DiskError::NotFound(what)),
            Err(source) => return Err(DiskError::Open { what, source }),
            Ok(m) if m.is_dir() => return Err(DiskError::IsDirectory(what)),
            Ok(m) if !m.is_file() && !m.file_type().is_block_device() => {
                return Err(DiskError::NotADisk(what))
            }
            Ok(_) => {}
        }
        // O_NONBLOCK and O_NOCTTY in case the path was swapped for something else
        // since the check; the fstat in `inspect` is the one that counts.
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENOENT) => DiskError::NotFound(what.clone()),
                Some(libc::EISDIR) => DiskError::IsDirectory(what.clone()),
                _ => DiskError::Open {
                    what: what.clone(),
                    source,
                },
            })?;
        let fd = file.as_raw_fd();
        let sectors = inspect(fd, &what)?;
        // SAFETY: fcntl on an fd this function owns; clearing O_NONBLOCK again.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above, setting the file status flags read just now, less one.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io_error(&what, "configure"));
        }
        lock(fd, read_only, &what)?;
        Ok(DiskFile {
            file,
            sectors,
            read_only,
        })
    }

    /// Adopts `fd`, an open disk image or block device, with the same checks and lock
    /// as [`DiskFile::open`]. sandvmm owns the fd once this succeeds; on an error the
    /// caller still does.
    pub fn from_fd(fd: RawFd, read_only: bool) -> Result<DiskFile, DiskError> {
        if fd < 0 {
            return Err(DiskError::BadFd(fd));
        }
        // SAFETY: F_GETFL only reads the file status flags; a closed fd gives EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(DiskError::BadFd(fd));
        }
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => return Err(DiskError::FdWriteOnly(fd)),
            libc::O_RDONLY if !read_only => return Err(DiskError::FdReadOnly(fd)),
            _ => {}
        }
        if flags & libc::O_APPEND != 0 {
            return Err(DiskError::FdAppend(fd));
        }
        if flags & libc::O_DIRECT != 0 {
            return Err(DiskError::FdDirect(fd));
        }
        let what = format!("fd {fd}");
        let sectors = inspect(fd, &what)?;
        // Ours from now on: like every fd sandvmm holds, it must not reach a program
        // the script helper runs.
        // SAFETY: fcntl on the fd checked above; FD_CLOEXEC is the only fd flag.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(io_error(&what, "set FD_CLOEXEC on"));
        }
        lock(fd, read_only, &what)?;
        // SAFETY: the caller hands the fd over; from here this File owns and closes it.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(DiskFile {
            file,
            sectors,
            read_only,
        })
    }

    /// Whether the disk was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Reads (`write` false) or writes all of `bufs` at `offset`, one system call per
    /// up to IOV_MAX buffers, going on after a short transfer or EINTR.
    fn transfer(&self, bufs: &[VolatileSlice<'_>], offset: u64, write: bool) -> io::Result<()> {
        // The guards keep the pointers valid for as long as the iovecs are used.
        let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
        let mut iovs: Vec<libc::iovec> = guards
            .iter()
            .zip(bufs)
            .filter(|(_, b)| !b.is_empty())
            .map(|(g, b)| libc::iovec {
                iov_base: g.as_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let syscall = if write { libc::pwritev } else { libc::preadv };
        let mut offset = offset;
        let mut first = 0;
        while first < iovs.len() {
            let batch = &iovs[first..iovs.len().min(first + IOV_MAX)];
            let at = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
            // SAFETY: every iovec points into guest memory that `bufs` borrows for this
            // call, with its slice's length: pwritev only reads it, and preadv writes
            // at most iov_len bytes into each, memory the guest handed over to write.
            let n = unsafe {
                syscall(
                    self.file.as_raw_fd(),
                    batch.as_ptr(),
                    batch.len() as i32,
                    at,
                )
            };
            let mut done = match n {
                n if n > 0 => n as usize,
                0 if write => return Err(io::ErrorKind::WriteZero.into()),
                // The file shrank under us (another process truncated it).
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            };
            offset += done as u64;
            while done > 0 {
                let iov = &mut iovs[first];
                if done >= iov.iov_len {
                    done -= iov.iov_len;
                    first += 1;
                } else {
                    // SAFETY: `done` < iov_len, so the pointer stays inside the buffer.
                    iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(done).cast() };
                    iov.iov_len -= done;
                    done = 0;
                }
            }
        }
        Ok(())
    }
}

impl BlockBackend for DiskFile {
    fn read_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()> {
        self.transfer(bufs, offset, false)
    }

    fn write_at(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<()> {
        self.transfer(bufs, offset, true)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Data and the metadata needed to read it back (the size), not timestamps.
        self.file.sync_data()
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsRawFd for DiskFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn io_error(what: &str, op: &'static str) -> DiskError {
    DiskError::Io {
        what: what.to_string(),
        op,
        source: io::Error::last_os_error(),
    }
}

/// Checks that `fd` is a regular file or block device of whole sectors; returns
/// its size in sectors.
fn inspect(fd: RawFd, what: &str) -> Result<u64, DiskError> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes a `stat`, which `st` is; a bad fd gives EBADF.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io_error(what, "inspect"));
    }
    let size = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size as u64,
        libc::S_IFBLK => {
            let mut size = 0u64;
            // SAFETY: BLKGETSIZE64 writes a u64 (size_t), which `size` is.
            if unsafe { libc::ioctl(fd, ioctls::BLKGETSIZE64(), &mut size) } < 0 {
                return Err(io_error(what, "read the size of"));
            }
            size
        }
        libc::S_IFDIR => return Err(DiskError::IsDirectory(what.to_string())),
        _ => return Err(DiskError::NotADisk(what.to_string())),
    };
    if size == 0 || !size.is_multiple_of(SECTOR_SIZE) {
        return Err(DiskError::BadSize {
            what: what.to_string(),
            size,
        });
    }
    Ok(size / SECTOR_SIZE)
}

/// Takes the advisory lock: shared for a read-only disk, exclusive for a writable one,
/// never waiting. The lock belongs to the open file description and goes with it.
fn lock(fd: RawFd, read_only: bool, what: &str) -> Result<(), DiskError> {
    let kind = if read_only {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    };
    loop {
        // SAFETY: flock takes no pointers; a bad fd gives EBADF.
        if unsafe { libc::flock(fd, kind | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Err(DiskError::Locked(what.to_string())),
            _ => {
                return Err(DiskError::Io {
                    what: what.to_string(),
                    op: "lock",
                    source: e,
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;

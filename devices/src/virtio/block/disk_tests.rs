//! Tests of `DiskFile`: the checks and the lock on real files in the temporary
//! directory, and vectored I/O through guest memory.

use std::io::Write;
use std::path::PathBuf;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::*;

/// A file in the temporary directory, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sandvmm-disk-{}-{tag}-{n}", std::process::id());
        TempPath(std::env::temp_dir().join(name))
    }

    fn with_len(tag: &str, len: usize) -> TempPath {
        let t = TempPath::new(tag);
        let bytes: Vec<u8> = (0..len).map(|i| (i / 512) as u8).collect();
        std::fs::File::create(&t.0)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        t
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_4096_byte_image_has_8_sectors() {
    let t = TempPath::with_len("ok", 4096);
    let disk = DiskFile::open(&t.0, false).unwrap();
    assert_eq!(disk.sectors(), 8);
    assert!(!disk.is_read_only());
    // SAFETY: F_GETFD only reads the fd flags of an fd `disk` owns.
    let fd_flags = unsafe { libc::fcntl(disk.raw_fd(), libc::F_GETFD) };
    assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    // SAFETY: as above, the file status flags.
    let fl = unsafe { libc::fcntl(disk.raw_fd(), libc::F_GETFL) };
    assert_eq!(
        fl & libc::O_NONBLOCK,
        0,
        "O_NONBLOCK is cleared after the checks"
    );
}

#[test]
fn directories_odd_sizes_and_missing_files_are_refused() {
    let dir = TempPath::new("dir");
    std::fs::create_dir(&dir.0).unwrap();
    assert!(matches!(
        DiskFile::open(&dir.0, true),
        Err(DiskError::IsDirectory(_))
    ));
    let odd = TempPath::with_len("odd", 1000);
    let err = DiskFile::open(&odd.0, false).unwrap_err();
    assert!(
        matches!(err, DiskError::BadSize { size: 1000, .. }),
        "{err}"
    );
    let empty = TempPath::with_len("empty", 0);
    assert!(matches!(
        DiskFile::open(&empty.0, true),
        Err(DiskError::BadSize { size: 0, .. })
    ));
    let missing = TempPath::new("missing");
    let err = DiskFile::open(&missing.0, false).unwrap_err();
    assert!(matches!(err, DiskError::NotFound(_)));
    assert!(err.to_string().contains("does not exist"));
    assert!(matches!(
        DiskFile::open(Path::new("/dev/null"), true),
        Err(DiskError::NotADisk(_))
    ));
}

#[test]
fn a_second_writer_finds_the_image_locked() {
    let t = TempPath::with_len("lock", 4096);
    let first = DiskFile::open(&t.0, false).unwrap();
    let err = DiskFile::open(&t.0, false).unwrap_err();
    assert!(matches!(err, DiskError::Locked(_)), "{err}");
    assert!(err
        .to_string()
        .ends_with("is in use by another process (locked)"));
    // A reader cannot share it with a writer either.
    assert!(matches!(
        DiskFile::open(&t.0, true),
        Err(DiskError::Locked(_))
    ));
    drop(first);
    DiskFile::open(&t.0, false).expect("the lock goes with the first open");
}

#[test]
fn readers_share_the_image() {
    let t = TempPath::with_len("shared", 4096);
    let a = DiskFile::open(&t.0, true).unwrap();
    let b = DiskFile::open(&t.0, true).unwrap();
    assert!(a.is_read_only() && b.is_read_only());
    assert!(matches!(
        DiskFile::open(&t.0, false),
        Err(DiskError::Locked(_))
    ));
}

#[test]
fn from_fd_refuses_pipes_and_bad_fds() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    assert!(matches!(
        DiskFile::from_fd(fds[0], true),
        Err(DiskError::NotADisk(_))
    ));
    for fd in fds {
        // SAFETY: closing the pipe this test made; from_fd did not take them.
        unsafe { libc::close(fd) };
    }
    assert!(matches!(
        DiskFile::from_fd(-1, true),
        Err(DiskError::BadFd(-1))
    ));
    assert!(matches!(
        DiskFile::from_fd(9999, true),
        Err(DiskError::BadFd(9999))
    ));
}

#[test]
fn from_fd_adopts_an_image_with_the_same_checks() {
    use std::os::fd::IntoRawFd;
    let t = TempPath::with_len("fd", 4096);
    let ro = std::fs::File::open(&t.0).unwrap().into_raw_fd();
    assert!(matches!(
        DiskFile::from_fd(ro, false),
        Err(DiskError::FdReadOnly(_))
    ));
    let disk = DiskFile::from_fd(ro, true).unwrap();
    assert_eq!(disk.sectors(), 8);
    // SAFETY: F_GETFD only reads the fd flags of an fd `disk` owns.
    let fd_flags = unsafe { libc::fcntl(disk.raw_fd(), libc::F_GETFD) };
    assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.0)
        .unwrap()
        .into_raw_fd();
    assert!(matches!(
        DiskFile::from_fd(rw, false),
        Err(DiskError::Locked(_))
    ));
    drop(disk);
    DiskFile::from_fd(rw, false).expect("unlocked once the reader is gone");
}

#[test]
fn from_fd_refuses_append_and_direct_io() {
    use std::os::fd::IntoRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let t = TempPath::with_len("flags", 4096);
    // pwritev on an O_APPEND fd ignores the offset: writes would land past the end.
    let append = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&t.0)
        .unwrap()
        .into_raw_fd();
    let err = DiskFile::from_fd(append, false).unwrap_err();
    assert!(matches!(err, DiskError::FdAppend(_)), "{err}");
    assert!(err.to_string().contains("O_APPEND"));
    // Refused before the lock: the fd is still the caller's, and unlocked.
    // SAFETY: closing the fd from_fd did not take.
    unsafe { libc::close(append) };
    // O_DIRECT where the file system has it (tmpfs before Linux 6.6 does not).
    if let Ok(direct) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&t.0)
    {
        let direct = direct.into_raw_fd();
        let err = DiskFile::from_fd(direct, true).unwrap_err();
        assert!(matches!(err, DiskError::FdDirect(_)), "{err}");
        // SAFETY: as above.
        unsafe { libc::close(direct) };
    }
    let plain = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.0)
        .unwrap()
        .into_raw_fd();
    DiskFile::from_fd(plain, false).expect("no lock was left behind");
}

#[test]
fn blkgetsize64_is_the_kernel_number() {
    assert_eq!(ioctls::BLKGETSIZE64(), 0x8008_1272);
}

#[test]
fn vectored_io_goes_through_guest_memory() {
    let t = TempPath::with_len("io", 4096);
    let mut disk = DiskFile::open(&t.0, false).unwrap();
    let mem: GuestMemoryMmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let slices = |parts: &[(u64, usize)]| -> Vec<VolatileSlice<'_>> {
        parts
            .iter()
            .map(|&(a, l)| mem.get_slice(GuestAddress(a), l).unwrap())
            .collect()
    };
    // Sectors 1 and 2, split 100 / 924 bytes over two buffers.
    disk.read_at(&slices(&[(0x1000, 100), (0x3000, 924)]), 512)
        .unwrap();
    let mut got = [0u8; 924];
    mem.read_slice(&mut got, GuestAddress(0x3000)).unwrap();
    assert_eq!(got[411], 1);
    assert_eq!(got[412], 2);
    mem.write_slice(&[0xee; 1024], GuestAddress(0x8000))
        .unwrap();
    disk.write_at(&slices(&[(0x8000, 512), (0x8200, 0), (0x8200, 512)]), 3072)
        .unwrap();
    disk.flush().unwrap();
    let bytes = std::fs::read(&t.0).unwrap();
    assert!(bytes[3072..].iter().all(|&b| b == 0xee));
    assert_eq!(bytes[3071], 5);
    // Past the end of the file: a short read, then end of file.
    let err = disk.read_at(&slices(&[(0x1000, 1024)]), 3584).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

//! Tap devices: the host end of a virtio-net device.
//!
//! `--net tap=NAME` opens `/dev/net/tun` and attaches to (or creates) tap NAME with
//! `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`; `--net fd=N` adopts a tap a management layer
//! opened and handed in, after checking that it is one. Either way the fd is
//! non-blocking, carries a 12-byte vnet header (`TUNSETVNETHDRSZ`), and gets the
//! offloads the guest accepted (`TUNSETOFFLOAD`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

// The tun ioctls, flags and `struct ifreq` come from libc, which the sandbox's policy
// names (sandbox/src/consts.rs) and the tests take them from too.
use libc::{IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IFNAMSIZ, TUNGETIFF, TUNSETIFF};
use libc::{TUNSETOFFLOAD, TUNSETVNETHDRSZ};
/// TUNSETOFFLOAD bits: what the receiver (our guest) can take.
pub use libc::{TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};

/// The flags sandvmm opens taps with, and wants of a tap handed in.
pub const TAP_FLAGS: libc::c_int = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

/// Errors from opening or configuring a tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name {0:?} is empty or longer than 15 bytes")]
    BadName(String),
    #[error("cannot open /dev/net/tun (is the tun module loaded?)")]
    OpenTun(#[source] io::Error),
    #[error("permission denied on /dev/net/tun: give users access to it (mode 0666, as udev does) or hand the tap in with --net fd=N")]
    TunDenied,
    #[error("tap {0} is busy: another process has it open")]
    Busy(String),
    #[error("not permitted to use tap {0}: it belongs to another user, or creating it needs CAP_NET_ADMIN")]
    NotPermitted(String),
    #[error("cannot attach to tap {name}")]
    Attach {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("fd {0} is not an open tap device")]
    NotATap(RawFd),
    #[error("fd {0} is a tap without IFF_VNET_HDR; open it with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR")]
    NoVnetHdr(RawFd),
    #[error("fd {0} is a tun (layer 3) device, not a tap")]
    NotTapMode(RawFd),
    #[error("cannot configure the tap ({0})")]
    Configure(&'static str, #[source] io::Error),
}

/// A `struct ifreq` as TUNSETIFF and TUNGETIFF use it: interface `name` (at most
/// IFNAMSIZ - 1 bytes, or it is cut) and `flags` (linux/if_tun.h, `IFF_*`).
pub fn ifreq(name: &str, flags: libc::c_int) -> libc::ifreq {
    // SAFETY: ifreq is a C struct of integers and a union of integers and plain
    // structs, for which all zero bytes is a valid value (and the empty name).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    // TUNSETIFF takes the flags as a short (drivers/net/tun.c, tun_set_iff()).
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    req
}

/// The name in `req`, up to its NUL.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The flags in `req`.
fn ifreq_flags(req: &libc::ifreq) -> libc::c_int {
    // SAFETY: every ifreq here is made by `ifreq()`, which sets the flags member, or
    // filled in by TUNGETIFF, which writes it; any bits are a valid c_short.
    libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags })
}

/// What the device needs from its host end; [`Tap`] in production, a fake in tests.
pub trait NetBackend: Send {
    /// Reads one frame, vnet header first; `WouldBlock` when none is waiting.
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one frame, vnet header first.
    fn write_frame(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Sets the offloads (TUN_F_* bits) the guest can receive.
    fn set_offload(&mut self, flags: u32) -> io::Result<()>;
    /// The fd the event loop waits on for RX.
    fn raw_fd(&self) -> RawFd;
}

impl NetBackend for Tap {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Tap::read_frame(self, buf)
    }
    fn write_frame(&mut self, buf: &[u8]) -> io::Result<usize> {
        Tap::write_frame(self, buf)
    }
    fn set_offload(&mut self, flags: u32) -> io::Result<()> {
        Tap::set_offload(self, flags).map_err(io::Error::other)
    }
    fn raw_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// An open tap.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Attaches to tap `name`, creating it if it does not exist (which needs
    /// CAP_NET_ADMIN); the tap then lives as long as this fd unless it is persistent.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return Err(TapError::BadName(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => TapError::TunDenied,
                _ => TapError::OpenTun(e),
            })?;
        let mut req = ifreq(name, TAP_FLAGS);
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is, on a tun fd.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EBUSY) => TapError::Busy(name.to_string()),
                Some(libc::EPERM) | Some(libc::EACCES) => TapError::NotPermitted(name.to_string()),
                _ => TapError::Attach {
                    name: name.to_string(),
                    source: err,
                },
            });
        }
        let tap = Tap {
            file,
            name: ifreq_name(&req),
        };
        tap.set_vnet_hdr_size()?;
        Ok(tap)
    }

    /// Adopts `fd`, which must be a tap opened with `IFF_TAP | IFF_NO_PI |
    /// IFF_VNET_HDR`. sandvmm takes ownership of the fd.
    pub fn from_fd(fd: RawFd) -> Result<Tap, TapError> {
        let mut req = ifreq("", 0);
        // SAFETY: TUNGETIFF writes an ifreq, which `req` is; on a non-tun fd it fails.
        if fd < 0 || unsafe { libc::ioctl(fd, TUNGETIFF, &mut req) } < 0 {
            return Err(TapError::NotATap(fd));
        }
        if ifreq_flags(&req) & IFF_TAP == 0 {
            return Err(TapError::NotTapMode(fd));
        }
        if ifreq_flags(&req) & IFF_VNET_HDR == 0 {
            return Err(TapError::NoVnetHdr(fd));
        }
        // SAFETY: fcntl on an fd we just checked is open.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above; adding O_NONBLOCK to the file status flags.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(TapError::Configure(
                "O_NONBLOCK",
                io::Error::last_os_error(),
            ));
        }
        // Ours from now on: like every fd sandvmm holds, it must not reach a program
        // the script helper runs.
        // SAFETY: fcntl on the same fd; FD_CLOEXEC is the only fd flag.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(TapError::Configure(
                "FD_CLOEXEC",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: the caller hands the fd over; from here this File owns and closes it.
        let file = unsafe { File::from_raw_fd(fd) };
        let tap = Tap {
            file,
            name: ifreq_name(&req),
        };
        tap.set_vnet_hdr_size()?;
        Ok(tap)
    }

    fn set_vnet_hdr_size(&self) -> Result<(), TapError> {
        let size: libc::c_int = super::VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int, which `size` is.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETVNETHDRSZ, &size) } < 0 {
            return Err(TapError::Configure(
                "TUNSETVNETHDRSZ",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Tells the kernel which offloads the guest can receive (TUN_F_* bits).
    pub fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) } < 0
        {
            return Err(TapError::Configure(
                "TUNSETOFFLOAD",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame (vnet header first); `WouldBlock` when none is waiting.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }

    /// Writes one frame (vnet header first).
    pub fn write_frame(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        assert!(matches!(Tap::open(""), Err(TapError::BadName(_))));
        assert!(matches!(
            Tap::open("a-very-long-tap-name"),
            Err(TapError::BadName(_))
        ));
    }

    #[test]
    fn fds_that_are_not_taps_are_refused() {
        let file = File::open("/dev/null").unwrap();
        let fd = file.as_raw_fd();
        assert!(matches!(Tap::from_fd(fd), Err(TapError::NotATap(f)) if f == fd));
        assert!(matches!(Tap::from_fd(-1), Err(TapError::NotATap(-1))));
        assert!(matches!(Tap::from_fd(9999), Err(TapError::NotATap(9999))));
    }

    #[test]
    fn ifreq_holds_the_name_and_flags_where_the_kernel_reads_them() {
        // include/uapi/linux/if.h: a 16-byte name, then a union whose short flags
        // come first, 40 bytes in all on x86_64.
        assert_eq!(std::mem::size_of::<libc::ifreq>(), 40);
        let req = ifreq("tap0", TAP_FLAGS);
        assert_eq!(ifreq_name(&req), "tap0");
        assert_eq!(ifreq_flags(&req), 0x5002);
        // SAFETY: viewing the bytes of a plain C struct that lives for the borrow.
        let bytes =
            unsafe { std::slice::from_raw_parts((&req as *const libc::ifreq).cast::<u8>(), 40) };
        assert_eq!(&bytes[..5], b"tap0\0");
        assert_eq!(&bytes[16..18], &0x5002u16.to_le_bytes());
        // A name too long for IFNAMSIZ is cut, keeping the NUL.
        assert_eq!(ifreq_name(&ifreq("0123456789abcdefXYZ", 0)).len(), 15);
        // The request codes, as linux/if_tun.h encodes them.
        assert_eq!(TUNSETIFF, 0x4004_54ca);
        assert_eq!(TUNGETIFF, 0x8004_54d2);
        assert_eq!(TUNSETOFFLOAD, 0x4004_54d0);
        assert_eq!(TUNSETVNETHDRSZ, 0x4004_54d8);
    }
}

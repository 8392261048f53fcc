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

// ioctls from <linux/if_tun.h>: _IOW('T', 202, int) etc.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
/// TUNSETOFFLOAD bits: what the receiver (our guest) can take.
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;
const IFNAMSIZ: usize = 16;

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

/// `struct ifreq` as TUNSETIFF/TUNGETIFF use it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: i16,
    _pad: [u8; 22],
}

impl IfReq {
    fn new(name: &str) -> Self {
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req
    }

    fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
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
        let mut req = IfReq::new(name);
        req.flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
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
            name: req.name(),
        };
        tap.set_vnet_hdr_size()?;
        Ok(tap)
    }

    /// Adopts `fd`, which must be a tap opened with `IFF_TAP | IFF_NO_PI |
    /// IFF_VNET_HDR`. sandvmm takes ownership of the fd.
    pub fn from_fd(fd: RawFd) -> Result<Tap, TapError> {
        let mut req = IfReq::new("");
        // SAFETY: TUNGETIFF writes an ifreq, which `req` is; on a non-tun fd it fails.
        if fd < 0 || unsafe { libc::ioctl(fd, TUNGETIFF, &mut req) } < 0 {
            return Err(TapError::NotATap(fd));
        }
        if req.flags & IFF_TAP == 0 {
            return Err(TapError::NotTapMode(fd));
        }
        if req.flags & IFF_VNET_HDR == 0 {
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
            name: req.name(),
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
}

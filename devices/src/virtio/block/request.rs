//! One virtio-blk request (virtio 1.2, 5.2.6): checking its descriptor chain, then
//! carrying it out against the disk.
//!
//! The framing is the one every driver uses (Linux, Windows, FreeBSD, SeaBIOS, OVMF):
//! the 16-byte header alone in the first descriptor, device-readable; the data in the
//! descriptors between, device-readable for OUT and device-writable for IN and GET_ID;
//! the status byte alone in the last descriptor, device-writable. virtio 1.2, 2.6.4
//! lets a driver frame a request any way it likes, but a chain framed otherwise is
//! dropped here rather than guessed at: misreading where the data ends would write a
//! disk or guest memory the driver did not mean.
//!
//! A chain is dropped (returned with used length 0, nothing read, written or executed)
//! when it loops or links outside the descriptor table, has more than `seg_max` data
//! descriptors, more than [`MAX_DATA_LEN`] bytes of data, a buffer outside guest
//! memory, or a descriptor of the wrong direction or size. A well-formed request the
//! disk cannot serve (past its end, not whole sectors, a write to a read-only disk, an
//! I/O error) gets VIRTIO_BLK_S_IOERR; an unknown type VIRTIO_BLK_S_UNSUPP.

use std::io;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use super::disk::BlockBackend;
use super::{
    request_status, request_type, HEADER_LEN, ID_BYTES, MAX_DATA_LEN, SECTOR_SIZE, SEG_MAX,
};

/// Most descriptors in one chain: header, `seg_max` data segments, status.
pub const MAX_DESCRIPTORS: usize = SEG_MAX as usize + 2;

/// Why a chain was dropped, or why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the chain is empty or starts outside the descriptor table")]
    Empty,
    #[error("the chain loops or links to a descriptor outside the table")]
    Unterminated,
    #[error("the chain has more than {MAX_DESCRIPTORS} descriptors")]
    TooManyDescriptors,
    #[error("the chain has no status descriptor")]
    NoStatus,
    #[error("the first descriptor is not a device-readable 16-byte request header")]
    BadHeader,
    #[error("the last descriptor is not a device-writable 1-byte status")]
    BadStatus,
    #[error("a data descriptor of a type {0} request has the wrong direction")]
    WrongDirection(u32),
    #[error("the request carries more than {MAX_DATA_LEN} bytes of data")]
    TooLarge,
    #[error("a buffer lies outside guest memory")]
    OutsideMemory,
    #[error("a {len}-byte transfer at sector {sector} goes past the end of the disk")]
    PastEnd { sector: u64, len: u64 },
    #[error("a {0}-byte transfer is not a whole number of 512-byte sectors")]
    Unaligned(u64),
    #[error("a write to a read-only disk was refused")]
    ReadOnly,
    #[error("request type {0} is not supported")]
    Unsupported(u32),
    #[error("the disk failed: {0}")]
    Io(io::Error),
}

impl RequestError {
    /// The status byte a failed request gets, or `None` for a chain that is dropped
    /// without one.
    pub fn status(&self) -> Option<u8> {
        match self {
            RequestError::PastEnd { .. }
            | RequestError::Unaligned(_)
            | RequestError::ReadOnly
            | RequestError::Io(_) => Some(request_status::IOERR),
            RequestError::Unsupported(_) => Some(request_status::UNSUPP),
            _ => None,
        }
    }
}

/// What the request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    In,
    Out,
    Flush,
    GetId,
    Unsupported(u32),
}

impl RequestKind {
    fn from_type(t: u32) -> Self {
        match t {
            request_type::IN => RequestKind::In,
            request_type::OUT => RequestKind::Out,
            request_type::FLUSH => RequestKind::Flush,
            request_type::GET_ID => RequestKind::GetId,
            other => RequestKind::Unsupported(other),
        }
    }

    /// Whether the data descriptors must be device-writable (`Some(true)`), readable
    /// (`Some(false)`), or are not used at all.
    fn data_writable(self) -> Option<bool> {
        match self {
            RequestKind::In | RequestKind::GetId => Some(true),
            RequestKind::Out => Some(false),
            // A flush has no data (5.2.6.1); other types are answered UNSUPP unread.
            RequestKind::Flush | RequestKind::Unsupported(_) => None,
        }
    }
}

/// What the device knows beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct ExecContext<'a> {
    /// VIRTIO_BLK_F_RO was offered: writes fail (5.2.6.2).
    pub read_only: bool,
    /// VIRTIO_BLK_F_FLUSH was offered but not negotiated: each write must be stable
    /// before it completes (5.2.6.2, case 1).
    pub writethrough: bool,
    /// The GET_ID answer, NUL-padded.
    pub id: &'a [u8; ID_BYTES],
}

/// A checked request.
#[derive(Debug)]
pub struct Request {
    pub kind: RequestKind,
    /// First sector, in 512-byte units whatever `blk_size` is (5.2.6).
    pub sector: u64,
    /// The non-empty data buffers, in order, each inside guest memory.
    pub data: Vec<(GuestAddress, usize)>,
    /// Their total length.
    pub data_len: u64,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

impl Request {
    /// Checks `chain` (from `mem`) and reads its header; an error means the chain is
    /// dropped and nothing of it executed.
    pub fn parse(
        chain: DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
    ) -> Result<Request, RequestError> {
        let mut descs: Vec<Descriptor> = Vec::new();
        let mut open_end = false;
        // virtio-queue's iterator stops a loop after queue-size descriptors, but an
        // indirect table may hold 65535; stop at the limit instead of walking it.
        for desc in chain {
            if descs.len() == MAX_DESCRIPTORS {
                return Err(RequestError::TooManyDescriptors);
            }
            open_end = desc.has_next();
            descs.push(desc);
        }
        if open_end {
            return Err(RequestError::Unterminated);
        }
        let (header, rest) = descs.split_first().ok_or(RequestError::Empty)?;
        let (status, data) = rest.split_last().ok_or(RequestError::NoStatus)?;
        if header.is_write_only() || header.len() != HEADER_LEN {
            return Err(RequestError::BadHeader);
        }
        let hdr: [u8; HEADER_LEN as usize] = mem
            .read_obj(header.addr())
            .map_err(|_| RequestError::OutsideMemory)?;
        if !status.is_write_only() || status.len() != 1 {
            return Err(RequestError::BadStatus);
        }
        if !mem.check_range(status.addr(), 1) {
            return Err(RequestError::OutsideMemory);
        }
        // struct virtio_blk_req: le32 type, le32 reserved, le64 sector (5.2.6).
        let mut type_bytes = [0u8; 4];
        type_bytes.copy_from_slice(&hdr[0..4]);
        let mut sector_bytes = [0u8; 8];
        sector_bytes.copy_from_slice(&hdr[8..16]);
        let request_type = u32::from_le_bytes(type_bytes);
        let kind = RequestKind::from_type(request_type);

        let mut bufs = Vec::with_capacity(data.len());
        let mut data_len = 0u64;
        for desc in data {
            data_len += u64::from(desc.len());
            if data_len > MAX_DATA_LEN {
                return Err(RequestError::TooLarge);
            }
            let Some(writable) = kind.data_writable() else {
                continue;
            };
            if desc.is_write_only() != writable {
                return Err(RequestError::WrongDirection(request_type));
            }
            let len = desc.len() as usize;
            if !mem.check_range(desc.addr(), len) {
                return Err(RequestError::OutsideMemory);
            }
            if len > 0 {
                bufs.push((desc.addr(), len));
            }
        }
        if kind.data_writable().is_none() {
            data_len = 0;
        }
        Ok(Request {
            kind,
            sector: u64::from_le_bytes(sector_bytes),
            data: bufs,
            data_len,
            status: status.addr(),
        })
    }

    /// Carries the request out. Returns the bytes written into the driver's data
    /// buffers (IN and GET_ID), which with the status byte make the used length
    /// (2.7.8: the bytes written into the device-writable part; see also 5.2.6.4).
    pub fn execute<B: BlockBackend>(
        &self,
        mem: &GuestMemoryMmap,
        disk: &mut B,
        ctx: &ExecContext<'_>,
    ) -> Result<u32, RequestError> {
        match self.kind {
            RequestKind::In => {
                let offset = self.check_range(disk)?;
                disk.read_at(&self.slices(mem)?, offset)
                    .map_err(RequestError::Io)?;
                // At most MAX_DATA_LEN, which fits.
                Ok(self.data_len as u32)
            }
            RequestKind::Out => {
                // Refused before anything else, and nothing written (5.2.6.2).
                if ctx.read_only {
                    return Err(RequestError::ReadOnly);
                }
                let offset = self.check_range(disk)?;
                disk.write_at(&self.slices(mem)?, offset)
                    .map_err(RequestError::Io)?;
                if ctx.writethrough {
                    disk.flush().map_err(RequestError::Io)?;
                }
                Ok(0)
            }
            RequestKind::Flush => {
                disk.flush().map_err(RequestError::Io)?;
                Ok(0)
            }
            RequestKind::GetId => {
                // The ID is NUL-padded to 20 bytes; a shorter buffer gets its start.
                let mut left = &ctx.id[..ID_BYTES.min(self.data_len as usize)];
                let written = left.len() as u32;
                for &(addr, len) in &self.data {
                    if left.is_empty() {
                        break;
                    }
                    let n = len.min(left.len());
                    mem.write_slice(&left[..n], addr)
                        .map_err(|e| RequestError::Io(io::Error::other(e)))?;
                    left = &left[n..];
                }
                Ok(written)
            }
            RequestKind::Unsupported(t) => Err(RequestError::Unsupported(t)),
        }
    }

    /// Writes the status byte, the last thing the device does with a request.
    pub fn complete(&self, mem: &GuestMemoryMmap, status: u8) {
        // Checked against guest memory in `parse`, which cannot shrink.
        let _ = mem.write_obj(status, self.status);
    }

    /// The byte offset of an IN or OUT after checking that it is whole sectors inside
    /// the disk.
    fn check_range<B: BlockBackend>(&self, disk: &B) -> Result<u64, RequestError> {
        if !self.data_len.is_multiple_of(SECTOR_SIZE) {
            return Err(RequestError::Unaligned(self.data_len));
        }
        let offset = self.sector.checked_mul(SECTOR_SIZE);
        let end = offset.and_then(|o| o.checked_add(self.data_len));
        match (offset, end) {
            (Some(offset), Some(end)) if end <= disk.sectors().saturating_mul(SECTOR_SIZE) => {
                Ok(offset)
            }
            _ => Err(RequestError::PastEnd {
                sector: self.sector,
                len: self.data_len,
            }),
        }
    }

    /// The data buffers as volatile slices of guest memory, split where a buffer
    /// crosses from one memory region into the next.
    fn slices<'m>(&self, mem: &'m GuestMemoryMmap) -> Result<Vec<VolatileSlice<'m>>, RequestError> {
        let mut out = Vec::with_capacity(self.data.len());
        for &(addr, len) in &self.data {
            for slice in mem.get_slices(addr, len) {
                out.push(slice.map_err(|e| RequestError::Io(io::Error::other(e)))?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error() {
        assert_eq!(RequestError::ReadOnly.status(), Some(request_status::IOERR));
        assert_eq!(
            RequestError::Unaligned(3).status(),
            Some(request_status::IOERR)
        );
        assert_eq!(
            RequestError::Unsupported(11).status(),
            Some(request_status::UNSUPP)
        );
        for dropped in [
            RequestError::Unterminated,
            RequestError::BadStatus,
            RequestError::TooLarge,
            RequestError::OutsideMemory,
            RequestError::WrongDirection(0),
        ] {
            assert_eq!(dropped.status(), None, "{dropped}");
        }
    }

    #[test]
    fn types_map_to_kinds() {
        assert_eq!(RequestKind::from_type(0), RequestKind::In);
        assert_eq!(RequestKind::from_type(1), RequestKind::Out);
        assert_eq!(RequestKind::from_type(4), RequestKind::Flush);
        assert_eq!(RequestKind::from_type(8), RequestKind::GetId);
        assert_eq!(RequestKind::from_type(11), RequestKind::Unsupported(11));
        assert_eq!(RequestKind::Flush.data_writable(), None);
    }
}

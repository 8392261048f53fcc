//! virtio-blk (virtio 1.2, section 5.2) over a disk image or a host block device.
//!
//! - [`disk`]: the backing store: [`DiskFile`] opens (or adopts) an image, checks
//!   that it is a whole number of sectors and takes an advisory lock, then serves
//!   vectored `preadv`/`pwritev` straight into guest memory and `fdatasync`;
//! - [`request`]: checking one descriptor chain into a request and carrying it out, so
//!   a hostile driver's chains are dropped rather than followed;
//! - [`device`]: the device model: features, config space, the request queue;
//! - [`event_handler`]: the VMM thread's event-manager subscriber that runs the queue
//!   when the guest notifies and when the device is activated.
//!
//! The device is synchronous: each request completes on the VMM thread before the
//! next is read. One queue, no multiqueue, no indirect descriptors offered.

pub mod device;
pub mod disk;
pub mod event_handler;
pub mod request;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;

pub use device::{Block, BlockCounters};
pub use disk::{BlockBackend, DiskError, DiskFile};
pub use event_handler::BlockEventHandler;

/// Device type of a block device (virtio 1.2, 5).
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// The device has one request queue (5.2.2; VIRTIO_BLK_F_MQ is not offered).
pub const NUM_QUEUES: usize = 1;
/// Index of the request queue.
pub const REQUEST_QUEUE: usize = 0;
/// The request queue has this many descriptors.
pub const QUEUE_SIZE: u16 = 256;
/// Sectors are always 512 bytes in the protocol, whatever `blk_size` says (5.2.5).
pub const SECTOR_SIZE: u64 = 512;
/// Length of the request header: type, reserved, sector (5.2.6).
pub const HEADER_LEN: u32 = 16;
/// Length of the device ID string answered to GET_ID (5.2.6).
pub const ID_BYTES: usize = 20;
/// Most data segments in one request (`seg_max`): a request is a header, the data
/// and a status descriptor, and without indirect descriptors a chain can be at most
/// the queue size long.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Largest data segment (`size_max`). Offered so that the driver splits its I/O:
/// Linux sets no request size limit of its own (max_hw_sectors is UINT_MAX), so
/// without it no cap on a request's length could be one an honest driver respects.
pub const SIZE_MAX: u32 = 64 * 1024;
/// Most data bytes in one request: `seg_max` segments of `size_max` bytes (16 MiB
/// less 128 KiB). A longer chain is hostile and is dropped.
pub const MAX_DATA_LEN: u64 = SEG_MAX as u64 * SIZE_MAX as u64;

/// Request types (5.2.6). GET_ID needs no feature bit.
pub mod request_type {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
}

/// Values of the status byte the device writes last (5.2.6).
pub mod request_status {
    pub const OK: u8 = 0;
    pub const IOERR: u8 = 1;
    pub const UNSUPP: u8 = 2;
}

/// Feature bits (virtio 1.2, 5.2.3). VIRTIO_F_VERSION_1 comes from the parent module.
pub mod features {
    /// Maximum size of any single segment is in `size_max`.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// Maximum number of segments in a request is in `seg_max`.
    pub const SEG_MAX: u64 = 1 << 2;
    /// Device is read-only.
    pub const RO: u64 = 1 << 5;
    /// Block size of the disk is in `blk_size`.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// Cache flush command support (the device has a volatile write cache).
    pub const FLUSH: u64 = 1 << 9;
}

/// Errors from creating a block device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("device ID {id:?} is {len} bytes long; virtio-blk IDs are at most 20 bytes")]
    IdTooLong { id: String, len: usize },
}

impl From<BlockError> for std::io::Error {
    fn from(e: BlockError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_together() {
        // A chain of seg_max data descriptors plus header and status fits the queue.
        assert_eq!(SEG_MAX as usize + 2, QUEUE_SIZE as usize);
        // Whole sectors, and well inside what preadv takes in one iovec array.
        assert!(MAX_DATA_LEN.is_multiple_of(SECTOR_SIZE));
        assert!(SEG_MAX as usize <= 1024, "IOV_MAX");
    }

    #[test]
    fn id_error_is_invalid_input() {
        let e: std::io::Error = BlockError::IdTooLong {
            id: "x".repeat(21),
            len: 21,
        }
        .into();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("at most 20 bytes"));
    }
}

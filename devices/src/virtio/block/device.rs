//! The virtio-blk device model (virtio 1.2, 5.2): one request queue, capacity and
//! limits in config space, requests carried out synchronously on the VMM thread.
//!
//! Features offered: VERSION_1, SEG_MAX, SIZE_MAX (so an honest driver never exceeds
//! the request size cap, see [`super::SIZE_MAX`]), BLK_SIZE, FLUSH, and RO for a
//! read-only disk. FLUSH means writes land in the host's page cache and a flush request
//! makes them durable; a driver that does not negotiate it gets every write made
//! durable before it completes (5.2.6.2).
//!
//! Hostile drivers: see [`super::request`] for what makes a chain be dropped. A dropped
//! chain is returned with used length 0 and reported, rate-limited per kind; the queue goes on.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::disk::{BlockBackend, DiskFile};
use super::request::{ExecContext, Request, RequestError, RequestKind};
use super::{
    features, request_status, BlockError, ID_BYTES, NUM_QUEUES, QUEUE_SIZE, SECTOR_SIZE, SEG_MAX,
    SIZE_MAX, VIRTIO_ID_BLOCK,
};
use crate::virtio::{
    ActivateError, ActiveQueues, Interrupt, VirtioDevice, Warnings, VIRTIO_F_VERSION_1,
};
use crate::EVENTFD_FLAGS;

/// Length of the config space the device fills: capacity to blk_size (5.2.4). The
/// fields after it belong to features not offered and read as zero.
const CONFIG_LEN: usize = 24;

// Warning kinds.
const WARN_NOT_ACTIVE: u32 = 0;
const WARN_CHAIN: u32 = 1;
const WARN_RANGE: u32 = 2;
const WARN_READ_ONLY: u32 = 3;
const WARN_UNSUPPORTED: u32 = 4;
const WARN_IO: u32 = 5;

/// Request counters, for benchmarks and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockCounters {
    /// Requests answered with a status byte, whatever the status.
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// FLUSH requests carried out.
    pub flushes: u64,
    /// Requests answered IOERR or UNSUPP.
    pub errors: u64,
    /// Malformed chains returned without a status.
    pub dropped: u64,
}

struct Active {
    mem: GuestMemoryMmap,
    queue: Queue,
    interrupt: Arc<Interrupt>,
    writethrough: bool,
}

/// A virtio-blk device.
pub struct Block<B: BlockBackend = DiskFile> {
    name: String,
    backend: B,
    read_only: bool,
    id: [u8; ID_BYTES],
    config: [u8; CONFIG_LEN],
    queue_evt: EventFd,
    activate_evt: EventFd,
    active: Option<Active>,
    counters: BlockCounters,
    warnings: Warnings,
}

impl<B: BlockBackend> Block<B> {
    /// Creates the device `name` (e.g. "blk0") over `backend`. `id` is what GET_ID
    /// answers, at most 20 bytes; by default the name (cut to 20 bytes).
    pub fn new(name: &str, backend: B, read_only: bool, id: Option<String>) -> io::Result<Self> {
        let id_bytes = match &id {
            Some(id) if id.len() > ID_BYTES => {
                return Err(BlockError::IdTooLong {
                    id: id.clone(),
                    len: id.len(),
                }
                .into())
            }
            Some(id) => id.as_bytes(),
            None => &name.as_bytes()[..name.len().min(ID_BYTES)],
        };
        let mut id = [0u8; ID_BYTES];
        id[..id_bytes.len()].copy_from_slice(id_bytes);
        // struct virtio_blk_config (5.2.4), little endian; geometry stays zero.
        let mut config = [0u8; CONFIG_LEN];
        config[0..8].copy_from_slice(&backend.sectors().to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        Ok(Self {
            name: name.to_string(),
            backend,
            read_only,
            id,
            config,
            queue_evt: EventFd::new(EVENTFD_FLAGS)?,
            activate_evt: EventFd::new(EVENTFD_FLAGS)?,
            active: None,
            counters: BlockCounters::default(),
            warnings: Warnings::default(),
        })
    }

    /// The eventfd the VMM registers as the request queue's ioeventfd.
    pub fn queue_evt(&self) -> &EventFd {
        &self.queue_evt
    }

    /// Written when the driver activates the device.
    pub fn activate_evt(&self) -> &EventFd {
        &self.activate_evt
    }

    /// The disk's fd.
    pub fn backend_fd(&self) -> RawFd {
        self.backend.raw_fd()
    }

    /// Requests so far.
    pub fn counters(&self) -> BlockCounters {
        self.counters
    }

    /// Whether the driver has activated the device.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    fn warn(&mut self, kind: u32, message: std::fmt::Arguments<'_>) {
        self.warnings.warn(kind, &self.name, message);
    }

    /// The guest queued requests.
    pub fn on_queue_notify(&mut self) {
        if self.active.is_none() {
            self.warn(
                WARN_NOT_ACTIVE,
                format_args!("queue notification before DRIVER_OK; ignored"),
            );
            return;
        }
        self.process_queue();
    }

    /// The VMM thread saw the activation: requests may have been queued with the
    /// notification before the device was ready for it.
    pub fn on_activated(&mut self) {
        self.process_queue();
    }

    /// Carries out every available request in order, then interrupts once if the
    /// driver wants to hear about it.
    pub fn process_queue(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = active.mem.clone();
        let ctx = ExecContext {
            read_only: self.read_only,
            writethrough: active.writethrough,
            id: &self.id,
        };
        let mut used_any = false;
        while let Some(chain) = active.queue.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            let used_len = match Request::parse(chain, &mem) {
                Ok(request) => {
                    let (status, used_len) = match request.execute(&mem, &mut self.backend, &ctx) {
                        Ok(written) => {
                            record_success(&mut self.counters, &request);
                            (request_status::OK, written + 1)
                        }
                        Err(e) => {
                            self.counters.errors += 1;
                            let kind = warn_kind(&e);
                            self.warnings.warn(kind, &self.name, format_args!("{e}"));
                            (e.status().unwrap_or(request_status::IOERR), 1)
                        }
                    };
                    request.complete(&mem, status);
                    self.counters.requests += 1;
                    used_len
                }
                Err(e) => {
                    self.counters.dropped += 1;
                    self.warnings.warn(
                        WARN_CHAIN,
                        &self.name,
                        format_args!("malformed request chain dropped: {e}"),
                    );
                    0
                }
            };
            // Fails only if the used ring left guest memory; the driver broke its
            // own queue and will see nothing more from it.
            let _ = active.queue.add_used(&mem, head, used_len);
            used_any = true;
        }
        if used_any && active.queue.needs_notification(&mem).unwrap_or(true) {
            active.interrupt.signal_used();
        }
    }
}

fn record_success(counters: &mut BlockCounters, request: &Request) {
    match request.kind {
        RequestKind::In => counters.bytes_read += request.data_len,
        RequestKind::Out => counters.bytes_written += request.data_len,
        RequestKind::Flush => counters.flushes += 1,
        RequestKind::GetId | RequestKind::Unsupported(_) => {}
    }
}

fn warn_kind(e: &RequestError) -> u32 {
    match e {
        RequestError::PastEnd { .. } | RequestError::Unaligned(_) => WARN_RANGE,
        RequestError::ReadOnly => WARN_READ_ONLY,
        RequestError::Unsupported(_) => WARN_UNSUPPORTED,
        _ => WARN_IO,
    }
}

impl<B: BlockBackend> VirtioDevice for Block<B> {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only { features::RO } else { 0 };
        VIRTIO_F_VERSION_1
            | features::SEG_MAX
            | features::SIZE_MAX
            | features::BLK_SIZE
            | features::FLUSH
            | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; NUM_QUEUES]
    }

    /// Config space (5.2.4): capacity, size_max, seg_max, geometry (zero), blk_size.
    fn config_space(&self) -> &[u8] {
        &self.config
    }

    /// Nothing is writable without VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) -> bool {
        false
    }

    fn activate(
        &mut self,
        active: ActiveQueues,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError> {
        let ActiveQueues {
            mem,
            mut queues,
            acked_features,
        } = active;
        if queues.len() != NUM_QUEUES {
            return Err(ActivateError::QueueCount {
                got: queues.len(),
                want: NUM_QUEUES,
            });
        }
        let queue = queues.pop().expect("one queue");
        self.active = Some(Active {
            mem,
            queue,
            interrupt,
            writethrough: acked_features & features::FLUSH == 0,
        });
        // The VMM thread runs requests queued before it saw the activation.
        let _ = self.activate_evt.write(1);
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    /// Requests complete synchronously on the VMM thread, each before the next is
    /// read, so none is in flight between events: the queue's indexes are all the
    /// state there is, and the disk's contents are the image's.
    fn queue_states(&self) -> Option<Vec<QueueState>> {
        Some(vec![self.active.as_ref()?.queue.state()])
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;

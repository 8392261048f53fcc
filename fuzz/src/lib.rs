//! Shared pieces of the fuzz targets: a scripted stand-in for the tap, guest memory
//! laid out like a small guest, and a virtio-net device behind its MMIO transport
//! wired the way vmm/src/net.rs wires it; [`block`] does the same for virtio-blk, and
//! [`driver`] plays the guest driver's side for the queue targets; [`snapshot`] is
//! the `snapshot_state` target's body, with its seeds.

pub mod block;
pub mod driver;
pub mod snapshot;
pub use block::BlockRig;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use devices::virtio::mmio::MmioTransport;
use devices::virtio::net::{Net, NetBackend, MAX_FRAME_LEN};
use devices::virtio::Interrupt;
use devices::EventFdTrigger;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM for the device targets: 64 KiB at 0 and one page at 0x20000, so that
/// buffers and rings can straddle the hole between them or the end of RAM.
pub const RAM: [(u64, usize); 2] = [(0, 0x1_0000), (0x2_0000, 0x1000)];

/// Makes the guest memory of [`RAM`].
pub fn guest_memory() -> GuestMemoryMmap {
    let ranges: Vec<(GuestAddress, usize)> =
        RAM.iter().map(|&(a, l)| (GuestAddress(a), l)).collect();
    GuestMemoryMmap::from_ranges(&ranges).expect("small guest memory")
}

/// One scripted answer of the fake tap to a read.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A frame, vnet header first; cut to the reader's buffer as a tap would.
    Frame(Vec<u8>),
    /// A read error of this kind (`Interrupted` is retried by the device).
    Error(io::ErrorKind),
}

/// What the fake tap holds; shared with the target so it can add frames later.
#[derive(Debug, Default)]
pub struct TapState {
    pub inbound: VecDeque<Inbound>,
    pub fail_writes: bool,
    pub fail_offload: bool,
    pub sent_frames: usize,
    pub sent_bytes: usize,
}

/// A tap stand-in driven by the fuzz input.
#[derive(Debug, Clone, Default)]
pub struct FakeTap(pub Arc<Mutex<TapState>>);

impl FakeTap {
    /// Queues a read answer.
    pub fn push(&self, answer: Inbound) {
        self.0.lock().unwrap().inbound.push_back(answer);
    }
}

impl NetBackend for FakeTap {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.lock().unwrap().inbound.pop_front() {
            Some(Inbound::Frame(f)) => {
                // A tap read returns at most the buffer's size (the rest is lost).
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                Ok(n)
            }
            Some(Inbound::Error(kind)) => Err(kind.into()),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_frame(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        assert!(
            buf.len() <= MAX_FRAME_LEN,
            "the device sent an oversized frame"
        );
        if s.fail_writes {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        s.sent_frames += 1;
        s.sent_bytes += buf.len();
        Ok(buf.len())
    }

    fn set_offload(&mut self, _flags: u32) -> io::Result<()> {
        if self.0.lock().unwrap().fail_offload {
            return Err(io::Error::other("offload refused"));
        }
        Ok(())
    }

    fn raw_fd(&self) -> RawFd {
        -1
    }
}

/// A virtio-net device with a fake tap behind an MMIO transport, plus what the VMM
/// would hold on to: the IRQ eventfd and the tap script.
pub struct NetRig {
    pub transport: MmioTransport<Net<FakeTap>>,
    pub tap: FakeTap,
    pub mem: GuestMemoryMmap,
    pub irq: EventFdTrigger,
}

impl NetRig {
    /// A DMA-like write of up to 4 KiB of fuzzer bytes into guest memory; partly
    /// outside RAM is fine: the write stops there.
    pub fn poke(&self, addr: u32, bytes: &[u8]) {
        let _ = self.mem.write_slice(
            &bytes[..bytes.len().min(4096)],
            GuestAddress(u64::from(addr)),
        );
    }

    /// Queues a `len`-byte frame of `fill` bytes behind a zeroed vnet header.
    pub fn push_frame(&self, len: u16, fill: u8) {
        let mut frame = vec![fill; usize::from(len)];
        for b in frame.iter_mut().take(12) {
            *b = 0;
        }
        self.tap.push(Inbound::Frame(frame));
    }

    pub fn new() -> NetRig {
        let mem = guest_memory();
        let tap = FakeTap::default();
        let net = Net::new("net0", tap.clone(), [0x06, 0x73, 0x76, 0x6d, 0, 1]).expect("eventfds");
        let irq = EventFdTrigger::new().expect("eventfd");
        let interrupt = Arc::new(Interrupt::new(irq.try_clone().expect("eventfd")));
        let transport = MmioTransport::new(net, "net0", mem.clone(), interrupt);
        NetRig {
            transport,
            tap,
            mem,
            irq,
        }
    }

    /// What the VMM thread's event loop does when the device's activation event fires
    /// (`NetEventHandler::process`): only after the transport really activated it.
    pub fn run_activation_event(&mut self) {
        let net = self.transport.device_mut();
        if net.activate_evt().read().is_ok() {
            net.on_activated();
        }
    }

    /// A guest write to QueueNotify with queue index `queue`: KVM's ioeventfd (with
    /// datamatch 0 or 1) takes it and the event loop runs the queue; any other value
    /// reaches the transport as an ordinary register write.
    pub fn notify(&mut self, queue: u32) {
        use devices::bus::BusDevice;
        let net = self.transport.device_mut();
        match queue {
            0 => {
                let _ = net.queue_evt(0).write(1);
                let _ = net.queue_evt(0).read();
                net.on_rx_notify();
            }
            1 => {
                let _ = net.queue_evt(1).write(1);
                let _ = net.queue_evt(1).read();
                net.on_tx_notify();
            }
            other => self.transport.write(
                0xd000_0000,
                devices::virtio::mmio::QUEUE_NOTIFY_OFFSET,
                &other.to_le_bytes(),
            ),
        }
    }

    /// The interrupt line, as the guest would see it being raised; drained so the
    /// eventfd counter cannot saturate in a long run.
    pub fn drain_irq(&self) {
        let _ = self.irq.read();
    }
}

impl Default for NetRig {
    fn default() -> Self {
        Self::new()
    }
}

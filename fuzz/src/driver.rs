//! The driver's side of a virtio-mmio device, as the queue targets play it: queue
//! placement from the input, the bring-up of virtio 1.2 §3.1.1 through the transport's
//! registers (§4.2.2), and descriptors and available-ring entries written straight
//! into guest memory (§2.7).

use devices::bus::BusDevice;
use devices::virtio::mmio::MmioTransport;
use devices::virtio::{status, VirtioDevice, VIRTIO_F_VERSION_1};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where the transport sits (the first virtio-mmio slot).
pub const BASE: u64 = 0xd000_0000;

/// A queue as the input places it.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct QueueSetup {
    /// Queue size 2^(n % 9): 1 to 256.
    pub size_log2: u8,
    pub desc: u16,
    pub avail: u16,
    pub used: u16,
}

/// A queue's size and ring addresses, aligned as §2.7 requires.
pub struct Layout {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
}

impl Layout {
    pub fn of(q: QueueSetup) -> Layout {
        Layout {
            size: 1 << (q.size_log2 % 9),
            desc: u64::from(q.desc) & !0xf,
            avail: u64::from(q.avail) & !1,
        }
    }

    /// Writes descriptor `index` (modulo the size).
    pub fn write_desc(
        &self,
        mem: &GuestMemoryMmap,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = self.desc + 16 * u64::from(index % self.size);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        let _ = mem.write_slice(&d, GuestAddress(at));
    }

    /// Makes descriptor `head` available and publishes it (avail->idx + 1).
    pub fn publish(&self, mem: &GuestMemoryMmap, avail_idx: &mut u16, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(*avail_idx % self.size);
        let _ = mem.write_obj(head, GuestAddress(slot));
        *avail_idx = avail_idx.wrapping_add(1);
        let _ = mem.write_obj(*avail_idx, GuestAddress(self.avail + 2));
    }
}

fn write32<D: VirtioDevice>(transport: &mut MmioTransport<D>, offset: u64, value: u32) {
    transport.write(BASE, offset, &value.to_le_bytes());
}

/// Brings the device up to DRIVER_OK: the input's features (within what the device
/// offers, so the fuzzer follows any change to it) and queue `i` at `queues[i]`. The
/// caller then runs the activation event, as the VMM thread would.
pub fn bring_up<D: VirtioDevice>(
    transport: &mut MmioTransport<D>,
    features: u64,
    queues: &[QueueSetup],
) {
    let acked = (features & transport.device().features()) | VIRTIO_F_VERSION_1;
    write32(transport, 0x70, 0);
    write32(transport, 0x70, status::ACKNOWLEDGE);
    write32(transport, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    write32(transport, 0x24, 0);
    write32(transport, 0x20, acked as u32);
    write32(transport, 0x24, 1);
    write32(transport, 0x20, (acked >> 32) as u32);
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write32(transport, 0x70, s);
    for (index, q) in queues.iter().enumerate() {
        let l = Layout::of(*q);
        write32(transport, 0x30, index as u32);
        write32(transport, 0x38, u32::from(l.size));
        write32(transport, 0x80, l.desc as u32);
        write32(transport, 0x84, 0);
        write32(transport, 0x90, l.avail as u32);
        write32(transport, 0x94, 0);
        write32(transport, 0xa0, u32::from(q.used) & !3);
        write32(transport, 0xa4, 0);
        write32(transport, 0x44, 1);
    }
    write32(transport, 0x70, s | status::DRIVER_OK);
}

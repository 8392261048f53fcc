//! Reading virtio-net descriptor chains (virtio 1.2, 2.7.4 and 5.1.6) defensively.
//!
//! Every descriptor is checked before use: an RX chain must be all device-writable and
//! a TX chain all device-readable, every buffer must lie inside guest memory, a TX
//! frame may not exceed the largest frame, and a chain must end (a descriptor whose
//! NEXT flag is still set when virtio-queue's iterator stops means a loop or a link
//! outside the table). A chain that fails any check is dropped by the caller.

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{MAX_FRAME_LEN, VNET_HDR_LEN};

/// Why a descriptor chain was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainError {
    WrongDirection,
    OutsideMemory,
    TooLarge,
    TooShort,
    /// The chain ended on a descriptor that still points onwards: it loops, or links
    /// to a descriptor outside the table, and virtio-queue's iterator stopped it.
    Unterminated,
}

/// An RX chain claimed for a frame: its head and its checked buffers.
pub type RxChain = (u16, Vec<(GuestAddress, usize)>);

/// Writes `frame` across the buffers of `chains` in order; returns each chain's head
/// with the bytes written into it, for the used ring.
pub fn scatter(mem: &GuestMemoryMmap, frame: &[u8], chains: &[RxChain]) -> Vec<(u16, u32)> {
    let mut offset = 0;
    let mut used_lengths = Vec::with_capacity(chains.len());
    for (head, bufs) in chains {
        let mut used = 0u32;
        for (addr, size) in bufs {
            let n = (*size).min(frame.len() - offset);
            if n == 0 {
                break;
            }
            // Ranges were checked against guest memory when the chain was parsed.
            if mem.write_slice(&frame[offset..offset + n], *addr).is_err() {
                break;
            }
            offset += n;
            used += n as u32;
        }
        used_lengths.push((*head, used));
    }
    used_lengths
}

/// The writable buffers of an RX chain, checked against guest memory.
pub fn writable_buffers(
    chain: DescriptorChain<&GuestMemoryMmap>,
) -> Result<Vec<(GuestAddress, usize)>, ChainError> {
    let mem = chain.memory();
    let mut bufs = Vec::new();
    let mut total = 0usize;
    let mut open_end = false;
    for desc in chain.clone() {
        open_end = desc.has_next();
        if !desc.is_write_only() {
            return Err(ChainError::WrongDirection);
        }
        let len = desc.len() as usize;
        total = total.checked_add(len).ok_or(ChainError::TooLarge)?;
        if !vm_memory::GuestMemory::check_range(
            mem,
            desc.addr(),
            len,
            vm_memory::Permissions::Write,
        ) {
            return Err(ChainError::OutsideMemory);
        }
        bufs.push((desc.addr(), len));
    }
    if open_end {
        return Err(ChainError::Unterminated);
    }
    Ok(bufs)
}

/// Copies a TX chain (vnet header and frame) into `out`.
pub fn gather(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    out: &mut Vec<u8>,
) -> Result<(), ChainError> {
    out.clear();
    let mut open_end = false;
    for desc in chain {
        open_end = desc.has_next();
        if desc.is_write_only() {
            return Err(ChainError::WrongDirection);
        }
        let len = desc.len() as usize;
        let start = out.len();
        if start + len > MAX_FRAME_LEN {
            return Err(ChainError::TooLarge);
        }
        out.resize(start + len, 0);
        mem.read_slice(&mut out[start..], desc.addr())
            .map_err(|_| ChainError::OutsideMemory)?;
    }
    if open_end {
        return Err(ChainError::Unterminated);
    }
    if out.len() < VNET_HDR_LEN {
        return Err(ChainError::TooShort);
    }
    Ok(())
}

//! virtio-net (virtio 1.2, section 5.1) with a tap back-end.
//!
//! - [`tap`]: opening a tap (or adopting one handed in) with `IFF_VNET_HDR`, so the
//!   12-byte `virtio_net_hdr` passes straight through between guest and host;
//! - [`device`]: the device model: features, config space, RX and TX processing over
//!   virtio-queue;
//! - [`chain`]: checking and reading descriptor chains, so a hostile driver's chains
//!   are dropped rather than followed;
//! - [`event_handler`]: the VMM thread's event-manager subscriber that runs RX when the
//!   tap is readable or the guest adds buffers, and TX when the guest notifies.

pub mod chain;
pub mod device;
pub mod event_handler;
pub mod tap;

pub use device::Net;
pub use event_handler::NetEventHandler;
pub use tap::{NetBackend, Tap, TapError};

/// Device type of a network card (virtio 1.2, 5).
pub const VIRTIO_ID_NET: u32 = 1;
/// Receive queue index.
pub const RX_QUEUE: usize = 0;
/// Transmit queue index.
pub const TX_QUEUE: usize = 1;
/// Both queues have this many descriptors.
pub const QUEUE_SIZE: u16 = 256;
/// Size of `struct virtio_net_hdr` with VIRTIO_F_VERSION_1 (5.1.6): flags, gso_type,
/// hdr_len, gso_size, csum_start, csum_offset and num_buffers.
pub const VNET_HDR_LEN: usize = 12;
/// Largest frame: a 64 KiB GSO packet plus its Ethernet header, plus the vnet header.
pub const MAX_FRAME_LEN: usize = 65562 + VNET_HDR_LEN;

/// Feature bits (virtio 1.2, 5.1.3).
pub mod features {
    /// Device handles packets with partial checksum (guest → host).
    pub const CSUM: u64 = 1 << 0;
    /// Driver handles packets with partial checksum (host → guest).
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// Device has a MAC address in config space.
    pub const MAC: u64 = 1 << 5;
    /// Driver can receive TSOv4 / TSOv6.
    pub const GUEST_TSO4: u64 = 1 << 7;
    pub const GUEST_TSO6: u64 = 1 << 8;
    /// Device can receive TSOv4 / TSOv6 (the guest may send them).
    pub const HOST_TSO4: u64 = 1 << 11;
    pub const HOST_TSO6: u64 = 1 << 12;
}

/// A MAC address.
pub type MacAddr = [u8; 6];

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &MacAddr) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`; rejects multicast addresses, which no NIC may have.
pub fn parse_mac(text: &str) -> Option<MacAddr> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    (parts.next().is_none() && mac[0] & 1 == 0).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = parse_mac("52:54:00:ab:CD:0f").unwrap();
        assert_eq!(mac, [0x52, 0x54, 0, 0xab, 0xcd, 0x0f]);
        assert_eq!(format_mac(&mac), "52:54:00:ab:cd:0f");
    }

    #[test]
    fn bad_macs() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
            "01:00:5e:00:00:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}

//! The MP configuration table (Intel MultiProcessor Specification 1.4), which tells a
//! guest without ACPI how many CPUs it has and how the ISA IRQs reach the IOAPIC.
//!
//! Layout written at the EBDA (0x9fc00, where Linux's `smp_scan_config` looks):
//! the MP floating pointer structure (4.1), then the configuration table header (4.2)
//! followed by its entries (4.3): one processor entry per vCPU, the ISA bus, the IOAPIC,
//! an I/O interrupt entry per ISA IRQ (IRQ n on IOAPIC pin n) and the two local
//! interrupt entries (ExtINT on LINT0, NMI on LINT1).
//!
//! Entries are serialised field by field into a byte vector, which keeps the code
//! free of packed structs and `unsafe`.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::memory::{APIC_START, EBDA_START, HIMEM_START, IOAPIC_START};

const MPF_SIGNATURE: &[u8; 4] = b"_MP_";
const MPC_SIGNATURE: &[u8; 4] = b"PCMP";
const MP_SPEC_REV: u8 = 4; // 1.4
const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// Family 6 in the CPU signature; FPU and APIC in the feature flags.
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);

const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// Polarity and trigger "conforming to the bus" (ISA: active high, edge).
const IRQ_FLAGS_DEFAULT: u16 = 0;
/// ISA IRQs routed through the IOAPIC (pins 0-15) plus the PCI-style pins 16-23 that
/// virtio-mmio devices use.
const IOAPIC_PINS: u8 = 24;

/// Errors from writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    #[error("{0} vCPUs do not fit in an MP table (at most 254)")]
    TooManyCpus(u8),
    #[error("the MP table does not fit below high memory")]
    TooLarge,
    #[error("cannot write the MP table into guest memory")]
    Write,
}

/// Serialises the floating pointer and the table for `cpus` processors, to be placed
/// at `base`.
pub fn build(cpus: u8, base: u64) -> Result<Vec<u8>, MpTableError> {
    if cpus == 0 || cpus == u8::MAX {
        return Err(MpTableError::TooManyCpus(cpus));
    }
    let ioapic_id = cpus; // the first APIC ID after the CPUs'
    let mut entries = Vec::new();
    for cpu in 0..cpus {
        entries.extend_from_slice(&[ENTRY_PROCESSOR, cpu, APIC_VERSION]);
        entries.push(CPU_ENABLED | if cpu == 0 { CPU_BSP } else { 0 });
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        let kind = if pin == 0 {
            INT_TYPE_EXTINT
        } else {
            INT_TYPE_INT
        };
        entries.extend_from_slice(&[ENTRY_IO_INTERRUPT, kind]);
        entries.extend_from_slice(&IRQ_FLAGS_DEFAULT.to_le_bytes());
        entries.extend_from_slice(&[0, pin, ioapic_id, pin]);
    }
    for (kind, lint, dest) in [(INT_TYPE_EXTINT, 0, 0), (INT_TYPE_NMI, 1, 0xff)] {
        entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, kind]);
        entries.extend_from_slice(&IRQ_FLAGS_DEFAULT.to_le_bytes());
        entries.extend_from_slice(&[0, 0, dest, lint]);
    }
    let entry_count = cpus as u16 + 2 + u16::from(IOAPIC_PINS) + 2;

    let table_len = HEADER_LEN + entries.len();
    let mut table = Vec::with_capacity(FLOATING_LEN + table_len);
    // Floating pointer (MP spec 4.1).
    let table_addr = base + FLOATING_LEN as u64;
    table.extend_from_slice(MPF_SIGNATURE);
    table.extend_from_slice(&(table_addr as u32).to_le_bytes());
    table.extend_from_slice(&[1, MP_SPEC_REV, 0, 0, 0, 0, 0, 0]); // length in 16-byte units
    table[10] = checksum(&table[..FLOATING_LEN]);
    // Configuration table header (MP spec 4.2).
    let header_start = table.len();
    table.extend_from_slice(MPC_SIGNATURE);
    table.extend_from_slice(&(table_len as u16).to_le_bytes());
    table.extend_from_slice(&[MP_SPEC_REV, 0]);
    table.extend_from_slice(b"SANDVMM ");
    table.extend_from_slice(b"000000000000");
    table.extend_from_slice(&0u32.to_le_bytes()); // no OEM table
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&entry_count.to_le_bytes());
    table.extend_from_slice(&(APIC_START as u32).to_le_bytes());
    table.extend_from_slice(&0u32.to_le_bytes()); // extended table length and checksum
    table.extend_from_slice(&entries);
    table[header_start + 7] = checksum(&table[header_start..]);
    Ok(table)
}

/// Writes the MP table for `cpus` processors at the EBDA.
pub fn setup_mptable(mem: &GuestMemoryMmap, cpus: u8) -> Result<(), MpTableError> {
    let table = build(cpus, EBDA_START)?;
    if EBDA_START + table.len() as u64 > HIMEM_START {
        return Err(MpTableError::TooLarge);
    }
    mem.write_slice(&table, GuestAddress(EBDA_START))
        .map_err(|_| MpTableError::Write)
}

/// The byte that makes `bytes` (with that byte itself still zero) sum to 0 mod 256.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_sub(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn checksums_and_pointers_are_consistent() {
        let t = build(2, EBDA_START).unwrap();
        assert_eq!(&t[..4], MPF_SIGNATURE);
        assert_eq!(sum(&t[..FLOATING_LEN]), 0);
        let physptr = u32::from_le_bytes(t[4..8].try_into().unwrap()) as u64;
        assert_eq!(physptr, EBDA_START + FLOATING_LEN as u64);
        let header = &t[FLOATING_LEN..];
        assert_eq!(&header[..4], MPC_SIGNATURE);
        let len = u16::from_le_bytes(header[4..6].try_into().unwrap()) as usize;
        assert_eq!(len, header.len());
        assert_eq!(sum(header), 0);
    }

    #[test]
    fn one_processor_entry_per_cpu_and_only_cpu0_is_bsp() {
        let t = build(3, EBDA_START).unwrap();
        let entries = &t[FLOATING_LEN + HEADER_LEN..];
        let count = u16::from_le_bytes(t[FLOATING_LEN + 34..FLOATING_LEN + 36].try_into().unwrap());
        assert_eq!(count, 3 + 2 + 24 + 2);
        for cpu in 0..3usize {
            let e = &entries[cpu * 20..cpu * 20 + 20];
            assert_eq!((e[0], e[1]), (ENTRY_PROCESSOR, cpu as u8));
            assert_eq!(e[3] & CPU_BSP != 0, cpu == 0);
            assert_ne!(e[3] & CPU_ENABLED, 0);
        }
        // The IOAPIC takes the first ID after the CPUs.
        let ioapic = &entries[3 * 20 + 8..3 * 20 + 16];
        assert_eq!((ioapic[0], ioapic[1]), (ENTRY_IOAPIC, 3));
        assert_eq!(
            u32::from_le_bytes(ioapic[4..8].try_into().unwrap()) as u64,
            IOAPIC_START
        );
    }

    #[test]
    fn rejects_impossible_cpu_counts() {
        assert!(matches!(
            build(0, EBDA_START),
            Err(MpTableError::TooManyCpus(0))
        ));
        assert!(matches!(
            build(255, EBDA_START),
            Err(MpTableError::TooManyCpus(255))
        ));
        assert!(build(254, EBDA_START).is_ok());
    }
}

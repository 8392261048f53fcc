//! The boot GDT and its conversion into KVM segment registers.
//!
//! The Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot
//! Protocol") asks the loader for a flat 64-bit code segment in CS and flat data
//! segments in DS, ES and SS, described by a GDT the kernel may read before it loads
//! its own. Ours is null, code (0x08), data (0x10), TSS (0x18).

use kvm_bindings::kvm_segment;

/// Selector of the 64-bit code segment.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the flat data segment.
pub const DATA_SELECTOR: u16 = 0x10;
/// Selector of the (unused but valid) TSS.
pub const TSS_SELECTOR: u16 = 0x18;

/// Packs a descriptor from the access/flags word (`flags`: bits 0-7 access byte,
/// bits 12-15 G/DB/L/AVL), a base and a 20-bit limit (Intel SDM vol. 3, 3.4.5).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The boot GDT: null, 64-bit code (present, DPL 0, execute/read, L=1, G=1),
/// data (read/write, D/B=1, G=1) and a 32-bit busy TSS.
pub const BOOT_GDT: [u64; 4] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// The KVM view of descriptor `index` of `table`.
pub fn segment(table: &[u64], index: usize) -> kvm_segment {
    let entry = table[index];
    let g = ((entry >> 55) & 1) as u8;
    let raw_limit = (((entry >> 48) & 0xf) << 16) as u32 | (entry & 0xffff) as u32;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        // With G=1 the limit counts 4 KiB pages; KVM wants it in bytes.
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: (index * 8) as u16,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segment_is_flat_64_bit() {
        let cs = segment(&BOOT_GDT, 1);
        assert_eq!(cs.selector, CODE_SELECTOR);
        assert_eq!((cs.base, cs.limit), (0, 0xffff_ffff));
        assert_eq!(
            (cs.l, cs.db, cs.g, cs.present, cs.s, cs.dpl),
            (1, 0, 1, 1, 1, 0)
        );
        assert_eq!(cs.type_, 0xb); // execute/read, accessed
    }

    #[test]
    fn data_and_tss_segments() {
        let ds = segment(&BOOT_GDT, 2);
        assert_eq!(ds.selector, DATA_SELECTOR);
        assert_eq!((ds.l, ds.db, ds.type_), (0, 1, 0x3));
        let tr = segment(&BOOT_GDT, 3);
        assert_eq!(tr.selector, TSS_SELECTOR);
        assert_eq!((tr.s, tr.type_), (0, 0xb)); // system segment, busy 32-bit TSS
    }

    #[test]
    fn base_and_limit_round_trip() {
        let e = gdt_entry(0x4093, 0x1234_5678, 0xabcde);
        let s = segment(&[e], 0);
        assert_eq!(s.base, 0x1234_5678);
        assert_eq!(s.limit, 0xabcde); // G=0: byte granular
    }
}

//! The test kernel's `serial-flood` scenario seen from the host: its payload rule
//! (images/testkernel/scenarios.c) and the check that a run's output carries every
//! payload byte, in order, with the checksum the guest printed.

/// The first `n` payload bytes: 64-byte lines of 63 letters and a newline, line L
/// starting at 'a' + L % 26.
pub fn payload(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + ((i / 64 + i % 64) % 26) as u8
            }
        })
        .collect()
}

/// FNV-1a, 32 bits, as the guest computes it.
pub fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Checks that `out` holds a whole flood of `bytes` bytes: begin line, the exact
/// payload, and an end line whose checksum matches the payload.
pub fn assert_complete(out: &[u8], bytes: usize) {
    let begin = format!("SANDVMM-TEST: flood begin bytes={bytes}\n");
    let end_line = b"\nSANDVMM-TEST: flood end fnv=";
    let start = find(out, begin.as_bytes()).expect("no flood begin line") + begin.len();
    let end = start + find(&out[start..], end_line).expect("no flood end line");
    let payload = &out[start..end];
    assert_eq!(payload.len(), bytes, "payload length");
    assert!(
        payload == self::payload(bytes).as_slice(),
        "payload differs from the pattern"
    );
    let printed = &out[end + end_line.len()..][..8];
    assert_eq!(
        printed,
        format!("{:08x}", fnv1a(payload)).as_bytes(),
        "guest checksum"
    );
}

//! The snapshot state file, which `--restore` reads as untrusted input (issue 16):
//! `Snapshot::decode` on the raw bytes, on the bytes as a body given its correct
//! header, and the devices' restores on whatever decodes, including the bytes read as
//! the `devices` member alone. Errors are fine; panics are not. The body is
//! `sandvmm_fuzz::snapshot::run` (fuzz/src/snapshot.rs), so that a unit test there can
//! run it on the seeds and their mutations without libFuzzer.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sandvmm_fuzz::snapshot::run(data);
});

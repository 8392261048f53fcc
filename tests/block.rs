//! virtio-blk end to end: the test kernel's driver (images/testkernel/blk.c) against
//! `--disk` images in a scratch directory. The guest's scenarios check what they read
//! back; these tests also check the image files themselves from the host: the pattern
//! at the right offsets and nothing anywhere else, read-only images untouched, each of
//! two disks written only through its own device; and the chaos scenario's random block
//! requests under the enforcing sandbox. The lock and bad `--disk` inputs are in
//! tests/disk_inputs.rs.

use sandvmm_harness as common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::netns::{NetNs, TAP};
use common::*;
use sha2::{Digest, Sha256};

/// blk-rw takes about 1.5 s on the emulating test hosts.
const BOOT: Duration = Duration::from_secs(60);
/// A chaos run with a disk takes about 30 s there.
const CHAOS: Duration = Duration::from_secs(240);
const SECTOR: usize = 512;
const MIB: usize = 1 << 20;

/// Word `w` of sector `sector` of blk-rw's pattern (images/testkernel/blkscenarios.c).
fn pattern_word(seed: u64, sector: u64, w: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (sector * 64 + w);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

fn pattern_sector(seed: u64, sector: u64) -> Vec<u8> {
    (0..64)
        .flat_map(|w| pattern_word(seed, sector, w).to_le_bytes())
        .collect()
}

/// The runs of sectors blk-rw writes on a disk of `c` sectors, as (first, count).
fn rw_extents(c: u64) -> [(u64, u64); 8] {
    [
        (0, 1),
        (c - 1, 1),
        (c / 8, 16),
        (c / 4 + 1, 24),
        (c / 2 - 3, 8),
        (5 * c / 8 + 7, 200),
        (7 * c / 8 - 64, 128),
        (c - 17, 16),
    ]
}

/// Checks that `image` holds blk-rw's pattern for `seed` in exactly the sectors blk-rw
/// writes, and zeros everywhere else.
fn assert_pattern_in_image(image: &Path, seed: u64) {
    let data = fs::read(image).unwrap();
    let c = (data.len() / SECTOR) as u64;
    let mut written = vec![false; c as usize];
    for (first, count) in rw_extents(c) {
        for s in first..first + count {
            let at = s as usize * SECTOR;
            assert!(
                data[at..at + SECTOR] == pattern_sector(seed, s)[..],
                "{}: sector {s} does not hold the pattern",
                image.display()
            );
            written[s as usize] = true;
        }
    }
    for (s, _) in written.iter().enumerate().filter(|(_, w)| !**w) {
        assert!(
            data[s * SECTOR..(s + 1) * SECTOR].iter().all(|b| *b == 0),
            "{}: sector {s} was written but blk-rw does not write it",
            image.display()
        );
    }
    assert_eq!(written.iter().filter(|w| **w).count(), 394);
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(fs::read(path).unwrap()).to_vec()
}

#[test]
fn blk_rw_pattern_lands_at_the_right_offsets() {
    let dir = Scratch::new("blk-rw");
    let img = zero_image(&dir, "disk.img", 4 * MIB);
    let run = boot_with_disks(
        "blk-rw",
        "seed=7 blk_id=scratch-disk",
        &[format!("path={},id=scratch-disk", img.display())],
        BOOT,
    );
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-rw sectors=8192 written=394 bytes=201728");
    // The guest saw the size, the limits and the flush feature sandvmm offers.
    assert!(
        run.stdout.contains(
            "blk ready index=0 capacity=8192 blk_size=512 seg_max=254 size_max=65536 ro=0 flush=1"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("id=\"scratch-disk\""), "{}", run.stdout);
    // Both reads past the end were refused; nothing else went wrong.
    assert!(run
        .stdout
        .contains("blk: requests=21 ok=19 ioerr=2 unsupp=0"));
    assert_pattern_in_image(&img, 7);
}

#[test]
fn blk_rw_through_an_image_fd_handed_in() {
    let dir = Scratch::new("blk-fd");
    let img = zero_image(&dir, "disk.img", 2 * MIB);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    // The strict profile is for this deployment: every disk handed in as an fd.
    let run = boot_with_disk_fd(
        &file,
        &[
            "--disk",
            "fd=5",
            "--sandbox-profile",
            "strict",
            "--cmdline",
            "scenario=blk-rw seed=3",
        ],
        BOOT,
    );
    // sandvmm names the device disk0, and that is its ID when none is given.
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-rw sectors=4096 written=394");
    assert!(run.stdout.contains("id=\"disk0\""), "{}", run.stdout);
    assert_pattern_in_image(&img, 3);
}

#[test]
fn a_read_only_disk_refuses_writes_and_stays_unchanged() {
    let dir = Scratch::new("blk-ro");
    // Not zeros, so that a write of zeros would show too.
    let contents: Vec<u8> = (0..4 * MIB).map(|i| (i * 31 + i / 4096) as u8).collect();
    let img = dir.file("ro.img", &contents);
    let before = sha256(&img);
    let spec = format!("path={},readonly=on", img.display());

    let ro = boot_with_disks("blk-ro", "", std::slice::from_ref(&spec), BOOT);
    ro.assert_guest_printed("SANDVMM-TEST: PASS blk-ro sectors=8192 write=ioerr");
    assert!(ro.stdout.contains("ro=1"), "{}", ro.stdout);
    assert!(
        ro.stdout
            .contains("write to the read-only disk: ioerr used-len=1"),
        "{}",
        ro.stdout
    );

    // blk-rw's first write is refused, and it says so.
    let rw = boot_with_disks("blk-rw", "", &[spec], BOOT);
    assert!(
        rw.stdout.contains("SANDVMM-TEST: FAIL blk-rw write-ioerr"),
        "{}",
        rw.stdout
    );
    assert_eq!(rw.status.code(), Some(0), "{}", rw.stderr);
    assert!(
        rw.stderr.contains("read-only disk was refused"),
        "{}",
        rw.stderr
    );

    assert_eq!(sha256(&img), before, "the read-only image changed");
}

#[test]
fn blk_ro_fails_on_a_writable_disk() {
    let dir = Scratch::new("blk-ro-rw");
    let img = zero_image(&dir, "rw.img", MIB);
    let run = boot_with_disks("blk-ro", "", &[format!("path={}", img.display())], BOOT);
    assert!(
        run.stdout
            .contains("SANDVMM-TEST: FAIL blk-ro not-read-only"),
        "{}",
        run.stdout
    );
    assert!(fs::read(&img).unwrap().iter().all(|b| *b == 0));
}

#[test]
fn two_disks_each_with_its_own_id() {
    let dir = Scratch::new("blk-two");
    let first = zero_image(&dir, "first.img", 4 * MIB);
    let second = zero_image(&dir, "second.img", 2 * MIB);
    let disks = [
        format!("path={},id=alpha", first.display()),
        format!("path={},id=beta", second.display()),
    ];

    // blk_index=1 is the second disk: its ID, its size, its file.
    let run = boot_with_disks("blk-rw", "blk_index=1 blk_id=beta seed=11", &disks, BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-rw sectors=4096 written=394");
    assert!(
        run.stdout
            .contains("virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("base=0xd0001000"), "{}", run.stdout);
    assert_pattern_in_image(&second, 11);
    assert!(
        fs::read(&first).unwrap().iter().all(|b| *b == 0),
        "the first disk was written"
    );

    // And blk_index=0 the first, leaving the second as it was.
    let second_before = sha256(&second);
    let run = boot_with_disks("blk-rw", "blk_index=0 blk_id=alpha seed=12", &disks, BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-rw sectors=8192 written=394");
    assert_pattern_in_image(&first, 12);
    assert_eq!(sha256(&second), second_before);

    // A wrong expectation is caught: the second disk does not answer "alpha".
    let run = boot_with_disks("blk-rw", "blk_index=1 blk_id=alpha", &disks, BOOT);
    assert!(
        run.stdout.contains("SANDVMM-TEST: FAIL blk-rw wrong-id"),
        "{}",
        run.stdout
    );

    // There is no third block device.
    let run = boot_with_disks("blk-rw", "blk_index=2", &disks, BOOT);
    assert!(
        run.stdout.contains("SANDVMM-TEST: FAIL blk-rw no-device"),
        "{}",
        run.stdout
    );
}

#[test]
fn no_disk_is_a_clean_failure() {
    let run = boot_scenario("blk-rw", "", &[], BOOT);
    assert!(
        run.stdout.contains("SANDVMM-TEST: FAIL blk-rw no-device"),
        "{}",
        run.stdout
    );
    assert_eq!(run.status.code(), Some(0));
}

/// Boots the test kernel with a net device (in a namespace of its own) in the first
/// virtio window and the disk `disk` after it.
fn with_a_net_device(disk: &str, cmdline: &str, timeout: Duration) -> Finished {
    let ns = NetNs::new(true);
    let tap = format!("tap={TAP}");
    let args = ["--net", &tap, "--disk", disk, "--cmdline", cmdline];
    boot_command(ns.command(sandvmm()), &args, timeout)
}

#[test]
fn the_disk_is_found_after_a_net_device() {
    let dir = Scratch::new("blk-net");
    let img = zero_image(&dir, "disk.img", 4 * MIB);
    let disk = format!("path={},id=after-net", img.display());
    let run = with_a_net_device(&disk, "scenario=blk-rw blk_id=after-net seed=5", BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-rw sectors=8192 written=394");
    // The net device has the first window; the driver passed over it.
    assert!(run.stdout.contains("base=0xd0001000"), "{}", run.stdout);
    assert_pattern_in_image(&img, 5);
}

/// The counters of the "chaos blk" line.
fn chaos_blk_counters(stdout: &str) -> HashMap<String, u64> {
    guest_counters(stdout, "SANDVMM-TEST: chaos blk ")
}

fn assert_chaos_blk(run: &Finished, seed: u64, image: &Path) {
    run.assert_guest_printed("SANDVMM-TEST: PASS chaos");
    assert!(
        run.stdout.contains(&format!("chaos seed={seed} ")) && run.stdout.contains("blk=yes"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // The register-level rounds reached the device in the first window and brought it
    // up to DRIVER_OK, whichever device it is.
    let chaos = guest_counters(&run.stdout, "SANDVMM-TEST: chaos done ");
    for key in ["mmio", "chains", "kicks", "bringups", "active"] {
        assert!(chaos[key] > 0, "{key} did not move: {chaos:?}");
    }
    let c = chaos_blk_counters(&run.stdout);
    eprintln!("seed {seed}: {c:?}");
    // The block rounds brought the disk up, and requests of every outcome came back:
    // the device ran the good ones, refused the bad ones with a status, and dropped
    // the malformed chains.
    for key in [
        "rounds", "bringups", "requests", "hostile", "ok", "ioerr", "unsupp", "dropped",
    ] {
        assert!(c[key] > 0, "{key} did not move: {c:?}");
    }
    // Only the chains whose head lies out of the ring stay away (1 request in 64).
    assert!(c["lost"] * 16 < c["requests"], "{c:?}");
    // The random writes reached the image.
    assert!(fs::read(image).unwrap().iter().any(|b| *b != 0));
}

fn chaos_with_disk(seed: u64) {
    let dir = Scratch::new(&format!("blk-chaos-{seed}"));
    let img = zero_image(&dir, "chaos.img", 4 * MIB);
    let run = boot_with_disks(
        "chaos",
        &format!("seed={seed}"),
        &[format!("path={}", img.display())],
        CHAOS,
    );
    assert_chaos_blk(&run, seed, &img);
}

#[test]
fn chaos_seed_1_with_disk() {
    chaos_with_disk(1);
}

#[test]
fn chaos_seed_2_with_disk() {
    chaos_with_disk(2);
}

#[test]
fn chaos_seed_42_with_disk() {
    chaos_with_disk(42);
}

/// With a net device in the first window, the register-level chaos hits the net device
/// and the block requests go to the disk in the second.
#[test]
fn chaos_with_net_and_disk() {
    let seed = 3;
    let dir = Scratch::new("blk-chaos-net");
    let img = zero_image(&dir, "chaos.img", 4 * MIB);
    let disk = format!("path={}", img.display());
    let run = with_a_net_device(&disk, &format!("scenario=chaos seed={seed}"), CHAOS);
    assert!(run.stdout.contains("virtio=yes"), "{}", run.stdout);
    assert_chaos_blk(&run, seed, &img);
    // The block device is not the first window, so it is only ever brought up by the
    // block rounds: once, and again after each lost request.
    let c = chaos_blk_counters(&run.stdout);
    assert!(c["bringups"] <= 1 + c["lost"], "{c:?}");
}

/// blk-bench runs to the end and reports its three figures (never checked for speed).
#[test]
fn blk_bench_reports_rates() {
    let dir = Scratch::new("blk-bench");
    let img = zero_image(&dir, "bench.img", 4 * MIB);
    let run = boot_with_disks(
        "blk-bench",
        "bytes=2097152 rand_reads=200",
        &[format!("path={}", img.display())],
        BOOT,
    );
    run.assert_guest_printed("SANDVMM-TEST: PASS blk-bench write_KiB/s=");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("SANDVMM-TEST: PASS blk-bench"))
        .unwrap();
    for key in ["write_KiB/s=", "read_KiB/s=", "rand4k_iops="] {
        let value: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} missing: {line}"))
            .parse()
            .unwrap();
        assert!(value > 0, "{line}");
    }
    eprintln!("{line}");
}

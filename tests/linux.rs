//! Boots the Linux guest built by images/linux/build.sh: a patched Linux 6.1 with a
//! tiny init that prints a marker and reboots, which must end sandvmm with status 0.
//!
//! On the emulating test hosts a Linux boot takes 10-15 s (images/README.md), and the
//! bzImage boot about 35 s (its decompressor runs as emulated guest code), so the
//! timeouts are generous.

mod common;

use std::time::Duration;

use common::*;

const LINUX_BOOT: Duration = Duration::from_secs(180);

fn boot_linux(kernel: &str, cpus: &str) -> Finished {
    let kernel = image(kernel);
    let initrd = image("initramfs-init.cpio");
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--cpus",
            cpus,
        ],
        LINUX_BOOT,
    )
}

#[test]
fn linux_vmlinux_reaches_init_and_reboots() {
    let run = boot_linux("vmlinux", "1");
    run.assert_guest_printed("SANDVMM-LINUX: init ok");
    assert!(
        run.stderr.contains("the guest reset the machine"),
        "{}",
        run.stderr
    );
}

#[test]
fn linux_smp_reaches_init() {
    let run = boot_linux("vmlinux", "2");
    run.assert_guest_printed("SANDVMM-LINUX: init ok");
}

#[test]
fn linux_bzimage_reaches_init() {
    let run = boot_linux("bzImage", "1");
    run.assert_guest_printed("SANDVMM-LINUX: init ok");
}

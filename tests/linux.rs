//! Boots the Linux guest built by images/linux/build.sh: a patched Linux 6.1 with a
//! tiny init that prints a marker and reboots, which must end sandvmm with status 0.
//! With `sandvmm.net=` on its command line the init also brings eth0 up and waits for
//! a ping from the host (images/linux/README.md).
//!
//! On the emulating test hosts a Linux boot takes 10-15 s (images/README.md), and the
//! bzImage boot about 30 s (its decompressor runs as emulated guest code), so the
//! timeouts are generous.

mod common;

use std::time::Duration;

use common::netns::{NetNs, GUEST_IP, TAP};
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

#[test]
fn linux_guest_brings_up_eth0_and_answers_ping() {
    let ns = NetNs::new(true);
    let kernel = image("vmlinux");
    let initrd = image("initramfs-init.cpio");
    let mut cmd = ns.command(sandvmm());
    cmd.args(["--kernel", kernel.to_str().unwrap()])
        .args(["--initrd", initrd.to_str().unwrap()])
        .args(["--net", &format!("tap={TAP}")])
        .args(["--cmdline", &format!("sandvmm.net={GUEST_IP}/24")]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.wait_for("SANDVMM-LINUX: eth0 up", LINUX_BOOT);
    let ping = ns
        .command("ping")
        .args(["-c", "3", "-W", "10", GUEST_IP])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "ping failed:\n{text}");
    assert!(text.contains("3 received"), "{text}");
    // The init answers until no request has come for 3 s, then reboots.
    let run = vm.wait_exit(LINUX_BOOT);
    run.assert_guest_printed("SANDVMM-LINUX: net ok");
    assert!(
        run.stdout.contains("net ok echo_requests=3"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("eth0 up ip={GUEST_IP}/24 mac=06:73:76:6d:00:01")),
        "{}",
        run.stdout
    );
}

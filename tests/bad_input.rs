//! Every bad input gets one line on stderr and a non-zero status, never a panic or a
//! hang: bad flags (status 2), bad kernels and initrds, a tap sandvmm may not create,
//! and a host without usable KVM (status 1). The net flags (a duplicate MAC, an fd that
//! is not a tap, a busy tap) are in tests/net.rs; policy files in tests/sandbox.rs.

use sandvmm_harness as common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

const QUICK: Duration = Duration::from_secs(30);

fn sandvmm_with(kernel: &str, extra: &[&str]) -> Finished {
    let mut args = vec!["--kernel", kernel];
    args.extend_from_slice(extra);
    run(&args, QUICK)
}

fn with_testkernel(extra: &[&str]) -> Finished {
    let kernel = testkernel();
    sandvmm_with(kernel.to_str().unwrap(), extra)
}

#[test]
fn missing_kernel_flag() {
    let r = run::<&str>(&[], QUICK);
    r.assert_one_line_error(2, "required arguments were not provided: --kernel");
}

#[test]
fn unknown_flag() {
    with_testkernel(&["--frobnicate"])
        .assert_one_line_error(2, "unexpected argument '--frobnicate'");
}

#[test]
fn bad_memory_sizes() {
    with_testkernel(&["--memory", "0"]).assert_one_line_error(2, "at least 16 MiB");
    with_testkernel(&["--memory", "lots"]).assert_one_line_error(2, "invalid --memory \"lots\"");
    with_testkernel(&["--memory", "16385K"]).assert_one_line_error(2, "4 KiB pages");
}

#[test]
fn bad_cpu_counts() {
    with_testkernel(&["--cpus", "0"]).assert_one_line_error(2, "invalid --cpus 0");
    with_testkernel(&["--cpus", "300"]).assert_one_line_error(2, "invalid --cpus 300");
    with_testkernel(&["--cpus", "two"]).assert_one_line_error(2, "invalid value 'two'");
}

#[test]
fn bad_serial_target() {
    with_testkernel(&["--serial", "tcp:1234"]).assert_one_line_error(2, "invalid --serial");
    with_testkernel(&["--serial", "file:/nonexistent-dir/console.log"]).assert_one_line_error(
        1,
        "cannot open serial output file /nonexistent-dir/console.log",
    );
}

#[test]
fn missing_kernel_file() {
    sandvmm_with("/nonexistent/vmlinux", &[])
        .assert_one_line_error(1, "cannot open kernel /nonexistent/vmlinux");
}

#[test]
fn kernel_that_is_a_directory() {
    sandvmm_with("/tmp", &[]).assert_one_line_error(1, "cannot read kernel /tmp");
}

#[test]
fn kernel_that_is_neither_elf_nor_bzimage() {
    let dir = Scratch::new("not-a-kernel");
    for (name, bytes) in [
        ("text", b"just some text\n".to_vec()),
        ("empty", Vec::new()),
        ("zeros", vec![0; 8192]),
    ] {
        let path = dir.file(name, &bytes);
        sandvmm_with(path.to_str().unwrap(), &[])
            .assert_one_line_error(1, "is neither an ELF vmlinux nor a bzImage");
    }
}

#[test]
fn truncated_elf() {
    let dir = Scratch::new("truncated-elf");
    let elf = fs::read(testkernel()).unwrap();
    for len in [20, 64, 200, elf.len() / 2] {
        let path = dir.file(&format!("cut{len}"), &elf[..len]);
        sandvmm_with(path.to_str().unwrap(), &[]).assert_one_line_error(1, "cannot load kernel");
    }
}

#[test]
fn elf_for_another_machine_or_class() {
    let dir = Scratch::new("wrong-elf");
    let mut elf = fs::read(testkernel()).unwrap();
    elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    let path = dir.file("arm64", &elf);
    sandvmm_with(path.to_str().unwrap(), &[])
        .assert_one_line_error(1, "ELF for machine 183, not x86-64");
    elf[4] = 1; // ELFCLASS32
    let path = dir.file("elf32", &elf);
    sandvmm_with(path.to_str().unwrap(), &[]).assert_one_line_error(1, "is a 32-bit ELF");
}

#[test]
fn truncated_bzimage() {
    let dir = Scratch::new("truncated-bz");
    let bz = fs::read(image("testkernel.bzImage")).unwrap();
    let path = dir.file("cut", &bz[..0x300]);
    sandvmm_with(path.to_str().unwrap(), &[]).assert_one_line_error(1, "cannot load kernel");
}

#[test]
fn bzimage_without_a_64_bit_entry() {
    let dir = Scratch::new("old-bz");
    let bz = fs::read(image("testkernel.bzImage")).unwrap();
    // Boot protocol 2.11 predates xloadflags.
    let mut old = bz.clone();
    old[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
    let path = dir.file("proto-2.11", &old);
    sandvmm_with(path.to_str().unwrap(), &[])
        .assert_one_line_error(1, "uses boot protocol 2.11 without a 64-bit entry point");
    // 2.12 without XLF_KERNEL_64 (xloadflags at 0x236).
    let mut no64 = bz;
    no64[0x236..0x238].copy_from_slice(&0u16.to_le_bytes());
    let path = dir.file("no-xlf-kernel-64", &no64);
    sandvmm_with(path.to_str().unwrap(), &[])
        .assert_one_line_error(1, "uses boot protocol 2.12 without a 64-bit entry point");
}

#[test]
fn initrd_problems() {
    let dir = Scratch::new("initrd");
    with_testkernel(&["--initrd", "/nonexistent/initrd"])
        .assert_one_line_error(1, "cannot open initrd /nonexistent/initrd");
    let empty = dir.file("empty.cpio", b"");
    with_testkernel(&["--initrd", empty.to_str().unwrap()]).assert_one_line_error(1, "is empty");
    // A sparse file larger than the guest: found out before any byte is copied.
    let huge = dir.0.join("huge.cpio");
    fs::File::create(&huge).unwrap().set_len(200 << 20).unwrap();
    with_testkernel(&["--initrd", huge.to_str().unwrap(), "--memory", "128M"])
        .assert_one_line_error(1, "does not fit in guest memory");
}

#[test]
fn an_initrd_that_fits_is_handed_to_the_kernel() {
    let dir = Scratch::new("initrd-ok");
    let rd = dir.file("small.cpio", &[0x5a; 10000]);
    let run = boot_scenario("hello", "", &["--initrd", rd.to_str().unwrap()], QUICK);
    run.assert_guest_printed("SANDVMM-TEST: PASS hello");
}

#[test]
fn command_line_too_long() {
    let long = "x".repeat(3000);
    with_testkernel(&["--cmdline", &long]).assert_one_line_error(1, "invalid kernel command line");
}

#[test]
fn a_tap_it_may_not_create() {
    // Root without CAP_NET_ADMIN, in a namespace of its own: TUNSETIFF cannot create
    // the tap (EPERM), and nothing is left behind either way.
    let ns = common::netns::NetNs::new(false);
    let kernel = testkernel();
    let mut cmd = ns.command("setpriv");
    cmd.args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(sandvmm())
        .args(["--kernel", kernel.to_str().unwrap(), "--net", "tap=tapx"]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    vm.wait_exit(QUICK).assert_one_line_error(
        1,
        "cannot set up net0 (--net tap=tapx): not permitted to use tap tapx",
    );
}

/// Runs sandvmm inside a private mount namespace after `setup` (a shell snippet) has
/// changed what /dev/kvm is. Needs root and `unshare`; where either is missing it says
/// the test was skipped (or fails, under CI) and returns None.
fn in_mount_namespace(setup: &str) -> Option<Finished> {
    let kernel = testkernel();
    let script = format!("{setup} && exec \"$0\" --kernel \"$1\"");
    if !is_root() {
        skip("needs root to make a mount namespace");
        return None;
    }
    match Command::new("unshare").args(["-m", "true"]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            skip(&format!("`unshare -m true` failed here ({s})"));
            return None;
        }
        Err(e) => {
            skip(&format!("no unshare to run: {e}"));
            return None;
        }
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        sandvmm(),
        kernel.to_str().unwrap(),
    ]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    Some(vm.wait_exit(QUICK))
}

#[test]
fn no_dev_kvm() {
    if let Some(r) = in_mount_namespace("mount -t tmpfs none /dev") {
        r.assert_one_line_error(1, "/dev/kvm does not exist");
    }
}

#[test]
fn dev_kvm_that_is_not_kvm() {
    if let Some(r) = in_mount_namespace("mount --bind /dev/null /dev/kvm") {
        r.assert_one_line_error(1, "/dev/kvm answers KVM API version -1");
    }
}

#[test]
fn dev_kvm_without_permission() {
    if !is_root() {
        skip("needs root to drop to another user");
        return;
    }
    let kernel = testkernel();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        sandvmm(),
        "--kernel",
    ])
    .arg(&kernel);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    let r = vm.wait_exit(QUICK);
    r.assert_one_line_error(1, "permission denied on /dev/kvm");
}

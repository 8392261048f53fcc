//! `--disk` inputs that are not a usable disk, each a one-line error: an image another
//! VM holds (the flock), missing files, directories, sizes that are not whole sectors,
//! pipes, and fds opened with O_APPEND or O_DIRECT; and read-only users sharing an
//! image. tests/block.rs has the device itself.

use sandvmm_harness as common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

/// blk-rw takes about 1.5 s on the emulating test hosts.
const BOOT: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;

/// A VM that holds the disk `spec` (and its lock) while its guest idles.
fn idle_with_disk(spec: &str) -> Vm {
    let kernel = testkernel();
    let mut vm = Vm::start(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--disk",
        spec,
        "--cmdline",
        "scenario=idle",
    ]);
    vm.wait_for("SANDVMM-TEST: idle", BOOT);
    vm
}

#[test]
fn a_locked_image_is_refused_while_its_vm_runs() {
    let dir = Scratch::new("blk-lock");
    let img = zero_image(&dir, "disk.img", MIB);
    let spec = format!("path={}", img.display());
    let first = idle_with_disk(&spec);

    let needle = format!(
        "disk {} is in use by another process (locked)",
        img.display()
    );
    // Neither a writer nor a reader may share a disk someone writes.
    for second_spec in [spec.clone(), format!("{spec},readonly=on")] {
        let second = boot_with_disks("hello", "", &[second_spec], BOOT);
        second.assert_one_line_error(1, &needle);
        assert!(!second.stdout.contains("SANDVMM-TEST"), "{}", second.stdout);
    }
    drop(first);

    // The lock goes with the process.
    let again = boot_with_disks("hello", "", &[spec], BOOT);
    again.assert_guest_printed("SANDVMM-TEST: PASS hello");
}

#[test]
fn read_only_users_share_an_image() {
    let dir = Scratch::new("blk-shared");
    let img = zero_image(&dir, "disk.img", MIB);
    let spec = format!("path={},readonly=on", img.display());
    // Held to the end: its shared lock stays.
    let _first = idle_with_disk(&spec);
    let second = boot_with_disks("blk-ro", "", &[spec], BOOT);
    second.assert_guest_printed("SANDVMM-TEST: PASS blk-ro");
    // But a writer is refused.
    let writer = boot_with_disks("hello", "", &[format!("path={}", img.display())], BOOT);
    writer.assert_one_line_error(1, "is in use by another process (locked)");
}

#[test]
fn bad_disks_are_one_line_errors() {
    let dir = Scratch::new("blk-bad");
    let odd = dir.file("odd.img", &[0u8; 1000]);
    let empty = dir.file("empty.img", &[]);
    let missing = dir.0.join("missing.img");
    let cases = [
        (
            format!("path={}", missing.display()),
            format!("disk {} does not exist", missing.display()),
        ),
        (
            format!("path={}", dir.0.display()),
            format!("disk {} is a directory, not a disk image", dir.0.display()),
        ),
        (
            format!("path={}", odd.display()),
            "is 1000 bytes; a disk must hold a non-zero whole number of 512-byte sectors"
                .to_string(),
        ),
        (
            format!("path={}", empty.display()),
            "is 0 bytes".to_string(),
        ),
        (
            "path=/dev/null".to_string(),
            "disk /dev/null is not a regular file or a block device".to_string(),
        ),
    ];
    for (spec, needle) in cases {
        let run = boot_with_disks("hello", "", std::slice::from_ref(&spec), BOOT);
        run.assert_one_line_error(1, &needle);
        assert!(run.error_lines()[0].contains(&format!("(--disk {spec})")));
    }
    // Spec errors are usage errors.
    for (spec, needle) in [
        ("readonly=on", "expected path=FILE or fd=N"),
        ("path=/x,id=", "id= takes 1 to 20 bytes"),
        (
            "path=/x,id=abcdefghijklmnopqrstu",
            "id= takes 1 to 20 bytes",
        ),
        ("path=/x,readonly=yes", "readonly= takes on or off"),
        ("path=/x,fd=4", "give one of path= or fd="),
        ("fd=1", "fd= takes a descriptor number above 2"),
        ("path=/x,cache=none", "unknown item"),
    ] {
        boot_with_disks("hello", "", &[spec.to_string()], BOOT).assert_one_line_error(2, needle);
    }
}

#[test]
fn a_pipe_is_not_a_disk() {
    let mut fds = [0; 2];
    // Close-on-exec, so that no other test's sandvmm inherits them; inherit_fd gives
    // this test's sandvmm its copy.
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let kernel = testkernel();
    let run_with = |spec: &str, fd: i32| {
        let mut cmd = Command::new(sandvmm());
        cmd.args([
            "--kernel",
            kernel.to_str().unwrap(),
            "--disk",
            spec,
            "--cmdline",
            "scenario=hello",
        ]);
        inherit_fd(&mut cmd, fd, 7);
        let mut vm = Vm::start_command(&mut cmd);
        vm.close_stdin();
        vm.wait_exit(BOOT)
    };
    // The read end passes the access-mode check and is refused by type.
    run_with("fd=7,readonly=on", fds[0])
        .assert_one_line_error(1, "disk fd 7 is not a regular file or a block device");
    // For a writable disk it is refused for its mode first.
    run_with("fd=7", fds[0]).assert_one_line_error(1, "fd 7 is open read-only");
    run_with("fd=7,readonly=on", fds[1]).assert_one_line_error(1, "fd 7 is open write-only");
    // Nothing is open at fd 999 in sandvmm.
    boot_with_disks("hello", "", &["fd=999".to_string()], BOOT)
        .assert_one_line_error(1, "fd 999 is not an open file descriptor");
    for fd in fds {
        // SAFETY: closing the pipe this test opened.
        unsafe { libc::close(fd) };
    }
}

/// An fd whose O_APPEND would send every guest write to the end of the image, or whose
/// O_DIRECT would fail every unaligned guest buffer, is refused at start.
#[test]
fn fds_with_append_or_direct_io_are_refused() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = Scratch::new("blk-fd-flags");
    let img = zero_image(&dir, "disk.img", MIB);
    let run_with = |file: &fs::File| {
        let args = ["--disk", "fd=5", "--cmdline", "scenario=blk-rw"];
        boot_with_disk_fd(file, &args, BOOT)
    };
    let append = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&img)
        .unwrap();
    run_with(&append).assert_one_line_error(1, "fd 5 is open with O_APPEND");
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&img)
    {
        Ok(direct) => run_with(&direct).assert_one_line_error(1, "fd 5 is open with O_DIRECT"),
        Err(e) => eprintln!(
            "no O_DIRECT in {}: {e}; that case is skipped",
            dir.0.display()
        ),
    }
    assert_eq!(fs::metadata(&img).unwrap().len(), MIB as u64);
    assert!(fs::read(&img).unwrap().iter().all(|b| *b == 0));
}

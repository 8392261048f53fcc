//! Boots the sandvmm test kernel through the `sandvmm` binary and checks what the guest
//! printed and how sandvmm exited: hello (ELF and bzImage), echo, a prompt without a
//! newline, serial flood, SMP,
//! serial to a file, and the ways a guest can end.

use sandvmm_harness as common;

use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);

#[test]
fn hello_elf() {
    let run = boot_scenario("hello", "", &[], BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS hello");
    // The kernel read its command line from boot_params: ours, then the user's text.
    assert!(run
        .stdout
        .contains("cmdline=\"console=ttyS0 reboot=k panic=1 pci=off"));
    assert!(run.stdout.contains("hello from the sandvmm test kernel"));
    assert!(
        run.stderr.contains("the guest reset the machine"),
        "{}",
        run.stderr
    );
}

#[test]
fn hello_bzimage() {
    let kernel = image("testkernel.bzImage");
    let run = run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "scenario=hello",
        ],
        BOOT,
    );
    run.assert_guest_printed("SANDVMM-TEST: PASS hello");
}

#[test]
fn echo_returns_every_line() {
    let kernel = testkernel();
    let mut vm = Vm::start(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "scenario=echo",
    ]);
    vm.wait_for("SANDVMM-TEST: echo ready", BOOT);
    vm.send(b"first line\n");
    vm.wait_for("echo: first line", BOOT);
    // Carriage returns end lines too, as a terminal in raw mode sends them.
    vm.send(b"second\r");
    vm.wait_for("echo: second", BOOT);
    // More than the 64-byte receive FIFO at once: paced, nothing lost.
    let long: String = (0..200)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    vm.send(format!("{long}\nquit\n").as_bytes());
    let run = vm.wait_exit(BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS echo");
    assert!(run.stdout.contains(&format!("echo: {long}")));
}

/// Output without a newline waits in the UART's buffer; the VMM thread's flush timer
/// must still write it out while the guest waits (a shell prompt, an echoed key).
#[test]
fn a_prompt_without_a_newline_shows_while_the_guest_waits() {
    let kernel = testkernel();
    let mut vm = Vm::start(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "scenario=prompt",
    ]);
    vm.wait_for("SANDVMM-TEST: prompt> ", BOOT);
    assert!(
        !vm.output().contains("answered"),
        "the guest waits for input"
    );
    vm.send(b"y");
    let run = vm.wait_exit(BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS prompt");
    assert!(run
        .stdout
        .contains("SANDVMM-TEST: prompt> \nSANDVMM-TEST: prompt answered\n"));
}

#[test]
fn serial_flood_of_one_mib_arrives_complete() {
    const BYTES: usize = 1 << 20;
    let run = boot_scenario(
        "serial-flood",
        &format!("bytes={BYTES}"),
        &[],
        Duration::from_secs(300),
    );
    run.assert_guest_printed("SANDVMM-TEST: PASS serial-flood");
    common::flood::assert_complete(run.stdout.as_bytes(), BYTES);
}

#[test]
fn smp_brings_up_the_second_vcpu() {
    let run = boot_scenario("smp", "", &["--cpus", "2"], BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS smp");
    assert!(run.stdout.contains("SANDVMM-TEST: cpu1 online"));
}

#[test]
fn smp_with_one_vcpu_fails_in_the_guest_not_the_vmm() {
    let run = boot_scenario("smp", "", &["--cpus", "1"], BOOT);
    run.assert_guest_printed("SANDVMM-TEST: FAIL smp");
}

#[test]
fn serial_output_can_go_to_a_file() {
    let dir = Scratch::new("serial-file");
    let log = dir.0.join("console.log");
    let target = format!("file:{}", log.display());
    let run = boot_scenario("hello", "", &["--serial", &target], BOOT);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "", "nothing on stdout with --serial file:");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("SANDVMM-TEST: PASS hello"), "{logged}");
}

/// `--serial file:PATH,max=SIZE`: a guest printing 64 KiB into a 4 KiB limit leaves
/// exactly the first 4 KiB in the file, one line on stderr, and runs to its end.
#[test]
fn serial_file_output_is_cut_at_its_limit() {
    const BYTES: usize = 64 << 10;
    const MAX: usize = 4 << 10;
    let dir = Scratch::new("serial-max");
    let log = dir.0.join("console.log");
    let target = format!("file:{},max=4K", log.display());
    let run = boot_scenario(
        "serial-flood",
        &format!("bytes={BYTES}"),
        &["--serial", &target],
        BOOT,
    );
    // The guest finished the flood and reset the machine itself.
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("the guest reset the machine"),
        "{}",
        run.stderr
    );
    let cut: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("serial output reached its limit of 4096 bytes"))
        .collect();
    assert_eq!(cut.len(), 1, "one line about the cut: {}", run.stderr);
    let logged = std::fs::read(&log).unwrap();
    assert_eq!(logged.len(), MAX, "file size");
    // What is there is the start of the output, byte for byte.
    let begin = format!("SANDVMM-TEST: flood begin bytes={BYTES}\n");
    let start =
        common::flood::find(&logged, begin.as_bytes()).expect("no flood begin line") + begin.len();
    assert!(
        logged[start..] == common::flood::payload(BYTES)[..MAX - start],
        "the file is not the start of the flood"
    );
}

/// Output that fits its limit arrives whole, and nothing is said about a limit.
#[test]
fn serial_file_output_under_its_limit_is_complete() {
    let dir = Scratch::new("serial-max-fits");
    let log = dir.0.join("console.log");
    let target = format!("file:{},max=1M", log.display());
    let run = boot_scenario("serial-flood", "bytes=65536", &["--serial", &target], BOOT);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("limit"), "{}", run.stderr);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("SANDVMM-TEST: PASS serial-flood"),
        "{}",
        &logged[logged.len().saturating_sub(300)..]
    );
}

#[test]
fn serial_none_discards_output_but_the_guest_still_runs() {
    let run = boot_scenario("hello", "", &["--serial", "none"], BOOT);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("the guest reset the machine"));
}

#[test]
fn user_cmdline_is_appended() {
    let run = boot_scenario("hello", "marker=one-two", &[], BOOT);
    run.assert_guest_printed("SANDVMM-TEST: PASS hello");
    assert!(
        run.stdout
            .contains("pci=off scenario=hello marker=one-two\""),
        "{}",
        run.stdout
    );
}

#[test]
fn host_adaptation_is_for_linux_only_and_can_be_turned_off() {
    // The bzImage wrapper counts as Linux; the plain test kernel ELF does not.
    let bz = image("testkernel.bzImage");
    let adapted = run(
        &[
            "--kernel",
            bz.to_str().unwrap(),
            "--cmdline",
            "scenario=hello",
        ],
        BOOT,
    );
    adapted.assert_guest_printed("SANDVMM-TEST: PASS hello");
    assert_eq!(adapted.stdout.contains("pvm_native"), emulating_host());
    let plain = run(
        &[
            "--kernel",
            bz.to_str().unwrap(),
            "--cmdline",
            "scenario=hello",
            "--no-host-adapt",
        ],
        BOOT,
    );
    plain.assert_guest_printed("SANDVMM-TEST: PASS hello");
    assert!(!plain.stdout.contains("pvm_native"));
    let elf = boot_scenario("hello", "", &[], BOOT);
    assert!(!elf.stdout.contains("pvm_native"));
}

#[test]
fn triple_fault_ends_the_vm_with_status_zero() {
    let run = boot_scenario("triple-fault", "", &[], BOOT);
    assert!(
        run.stdout.contains("SANDVMM-TEST: triple-fault now"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("the guest triple-faulted"),
        "{}",
        run.stderr
    );
}

#[test]
fn emulation_failure_is_one_line_with_rip_and_bytes() {
    let run = boot_scenario("emulation-failure", "", &[], BOOT);
    assert!(run.stdout.contains("SANDVMM-TEST: emulation-failure now"));
    if !emulating_host() {
        // Real hardware runs POPCNT in kernel mode, so the scenario simply passes.
        run.assert_guest_printed("SANDVMM-TEST: PASS emulation-failure");
        return;
    }
    run.assert_one_line_error(1, "vcpu0: KVM could not emulate the instruction at RIP 0x");
    let line = run.error_lines()[0];
    assert!(line.contains("(bytes: f3 0f b8 c7 c3"), "{line}");
    assert!(
        line.contains("kvm_pvm"),
        "the hint names the host KVM: {line}"
    );
}

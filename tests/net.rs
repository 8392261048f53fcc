//! virtio-net end to end: the test kernel's driver and network stack against a tap in
//! a network namespace of the test's own, through `--net tap=` and `--net fd=`. The
//! host side is the real `ping` command and UDP sockets opened inside the namespace.

use sandvmm_harness as common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::netns::{open_tap_fd, NetNs, GUEST_IP, HOST_IP, TAP};
use common::*;

const READY: Duration = Duration::from_secs(60);
const GUEST_IP_ARGS: &str = "guest_ip=10.0.0.2 host_ip=10.0.0.1";

/// Launches the test kernel's `scenario` inside `ns` with `--net NET` and the guest
/// addresses on its command line.
fn launch_in(ns: &NetNs, net: &str, scenario: &str, extra: &str) -> Vm {
    let kernel = testkernel();
    let cmdline = format!("scenario={scenario} {GUEST_IP_ARGS} {extra}");
    let mut cmd = ns.command(sandvmm());
    cmd.args([
        "--kernel",
        kernel.to_str().unwrap(),
        "--net",
        net,
        "--cmdline",
        &cmdline,
    ]);
    Vm::start_command(&mut cmd)
}

/// Starts `scenario` on tap0 and waits for the guest's network to be up.
fn start_in(ns: &NetNs, scenario: &str, extra: &str) -> Vm {
    let mut vm = launch_in(ns, &format!("tap={TAP}"), scenario, extra);
    vm.wait_for("SANDVMM-TEST: net ready", READY);
    vm
}

/// A UDP socket in the namespace, bound to the host address.
fn host_socket(port: u16) -> UdpSocket {
    let sock = UdpSocket::bind((HOST_IP, port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock
}

fn send_quit(sock: &UdpSocket) {
    sock.send_to(b"quit", (GUEST_IP, 7)).unwrap();
}

/// Sends `count` datagrams one at a time and checks every echo; returns the rate.
fn echo_round_trips(sock: &UdpSocket, count: u32, size: usize) -> f64 {
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    for seq in 0..count {
        let payload: Vec<u8> = (0..size)
            .map(|j| {
                if j < 4 {
                    seq.to_be_bytes()[j]
                } else {
                    (seq as usize + j) as u8
                }
            })
            .collect();
        sock.send_to(&payload, (GUEST_IP, 7)).unwrap();
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no echo for datagram {seq}: {e}"));
        assert_eq!(from.ip().to_string(), GUEST_IP);
        assert_eq!(&buf[..n], &payload[..], "echo of datagram {seq} differs");
    }
    f64::from(count) / start.elapsed().as_secs_f64()
}

#[test]
fn host_pings_the_guest() {
    let ns = NetNs::new(true);
    let vm = start_in(&ns, "net-ping", "");
    let ping = ns
        .command("ping")
        .args(["-c", "3", "-W", "10", GUEST_IP])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "ping failed:\n{text}");
    assert!(text.contains("3 received"), "{text}");
    ns.enter(|| send_quit(&host_socket(0)));
    let run = vm.wait_exit(READY);
    run.assert_guest_printed("SANDVMM-TEST: PASS net-ping");
    assert!(run.stdout.contains("net-ping answered=3"), "{}", run.stdout);
}

#[test]
fn udp_echo_of_10000_datagrams_over_tap() {
    let ns = NetNs::new(true);
    let vm = start_in(&ns, "net-echo", "");
    let (small, large) = ns.enter(|| {
        let sock = host_socket(0);
        let small = echo_round_trips(&sock, 5000, 64);
        let large = echo_round_trips(&sock, 5000, 1400);
        send_quit(&sock);
        (small, large)
    });
    eprintln!("udp echo: {small:.0} round trips/s at 64 B, {large:.0} at 1400 B");
    let run = vm.wait_exit(READY);
    run.assert_guest_printed("SANDVMM-TEST: PASS net-echo");
    assert!(
        run.stdout.contains("net-echo echoed=10001"),
        "{}",
        run.stdout
    );
}

#[test]
fn udp_echo_over_a_tap_fd_handed_in() {
    let ns = NetNs::new(false);
    let kernel = testkernel();
    // Play the management layer: open the tap in the namespace, hand sandvmm the fd.
    let vm = ns.enter(|| {
        let fd = open_tap_fd(TAP).expect("open tap");
        ns.configure_tap();
        let mut cmd = std::process::Command::new(sandvmm());
        // The strict profile is for exactly this deployment: every fd handed in.
        cmd.args([
            "--kernel",
            kernel.to_str().unwrap(),
            "--net",
            &format!("fd={fd}"),
            "--sandbox-profile",
            "strict",
        ])
        .args(["--cmdline", &format!("scenario=net-echo {GUEST_IP_ARGS}")]);
        let vm = Vm::start_command(&mut cmd);
        // SAFETY: the child has its copy; the test's copy is closed.
        unsafe { libc::close(fd) };
        vm
    });
    let mut vm = vm;
    vm.wait_for("SANDVMM-TEST: net ready", READY);
    ns.enter(|| {
        let sock = host_socket(0);
        echo_round_trips(&sock, 500, 512);
        send_quit(&sock);
    });
    vm.wait_exit(READY)
        .assert_guest_printed("SANDVMM-TEST: PASS net-echo");
}

#[test]
fn net_blast_arrives_complete_and_in_order() {
    const COUNT: u32 = 2000;
    const SIZE: usize = 1400;
    let ns = NetNs::new(true);
    let sock = ns.enter(|| host_socket(9000));
    let vm = launch_in(
        &ns,
        &format!("tap={TAP}"),
        "net-blast",
        &format!("count={COUNT} size={SIZE} port=9000"),
    );
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    sock.set_read_timeout(Some(READY)).unwrap();
    for seq in 0..COUNT {
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {seq} missing: {e}"));
        assert_eq!(n, SIZE, "datagram {seq} size");
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()),
            seq,
            "out of order or lost"
        );
        for (j, b) in buf[4..n].iter().enumerate() {
            assert_eq!(
                *b,
                (seq as usize + j + 4) as u8,
                "datagram {seq} byte {}",
                j + 4
            );
        }
    }
    let rate = f64::from(COUNT) / start.elapsed().as_secs_f64();
    eprintln!("net-blast: {rate:.0} datagrams/s of {SIZE} B (including boot)");
    let run = vm.wait_exit(READY);
    run.assert_guest_printed("SANDVMM-TEST: PASS net-blast");
    assert!(run.stdout.contains(&format!("net-blast sent={COUNT}")));
}

#[test]
fn a_busy_tap_is_a_one_line_error() {
    let ns = NetNs::new(true);
    let kernel = testkernel();
    let run = ns.enter(|| {
        // Hold the tap open: a second attach is refused with EBUSY.
        let fd = open_tap_fd(TAP).expect("open tap");
        let mut vm = Vm::start(&[
            "--kernel",
            kernel.to_str().unwrap(),
            "--net",
            &format!("tap={TAP}"),
        ]);
        vm.close_stdin();
        let run = vm.wait_exit(READY);
        // SAFETY: closing the fd opened above.
        unsafe { libc::close(fd) };
        run
    });
    run.assert_one_line_error(1, "cannot set up net0 (--net tap=tap0): tap tap0 is busy");
}

#[test]
fn an_fd_that_is_not_a_tap_is_a_one_line_error() {
    let kernel = testkernel();
    let null = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    // SAFETY: clearing FD_CLOEXEC on our own fd so the child inherits it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let r = run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--net",
            &format!("fd={fd}"),
        ],
        READY,
    );
    r.assert_one_line_error(1, &format!("fd {fd} is not an open tap device"));
    let r = run(
        &["--kernel", kernel.to_str().unwrap(), "--net", "fd=987"],
        READY,
    );
    r.assert_one_line_error(1, "fd 987 is not an open tap device");
}

#[test]
fn bad_net_flags_are_one_line_errors() {
    let kernel = testkernel();
    let k = kernel.to_str().unwrap();
    run(&["--kernel", k, "--net", "tap"], READY).assert_one_line_error(2, "invalid --net \"tap\"");
    run(
        &[
            "--kernel",
            k,
            "--net",
            "tap=a,mac=06:00:00:00:00:01",
            "--net",
            "tap=b,mac=06:00:00:00:00:01",
        ],
        READY,
    )
    .assert_one_line_error(2, "which another --net already has");
}

/// Writes an executable shell script.
fn script(dir: &Scratch, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.file(name, format!("#!/bin/sh\n{body}\n").as_bytes());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn ifup_script_runs_through_the_helper_up_and_down() {
    let ns = NetNs::new(true);
    let dir = Scratch::new("ifup");
    // The helper runs scripts as the jail user, which needs a log it may append to.
    let log = dir.file("log", b"");
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    // The script reports what it runs with: its uid, capabilities, environment and
    // fds (stdin and stdout /dev/null, no socket: the helper's stays with the helper).
    let up = script(
        &dir,
        "ifup.sh",
        &format!(
            "out=$(readlink /proc/$$/fd/1)\n\
             exec >> {} 2>&1\n\
             echo \"$1 $2 uid=$(id -u) $(grep CapEff /proc/$$/status | tr -d '\\t') \
             secret=${{SANDVMM_TEST_SECRET:-none}} in=$(readlink /proc/$$/fd/0) out=$out \
             sockets=$(ls -l /proc/$$/fd | grep -c socket:)\"",
            log.display()
        ),
    );
    let mut cmd = ns.command(sandvmm());
    let cmdline = format!("scenario=hello {GUEST_IP_ARGS}");
    cmd.env("SANDVMM_TEST_SECRET", "leaked").args([
        "--kernel",
        testkernel().to_str().unwrap(),
        "--net",
        &format!("tap={TAP},script={up}"),
        "--cmdline",
        &cmdline,
    ]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.close_stdin();
    // The sandboxed VMM asked the helper for `down` after its filter was installed.
    vm.wait_exit(READY)
        .assert_guest_printed("SANDVMM-TEST: PASS hello");
    let uid = uid_of(JAIL_USER);
    let want =
        format!("tap0 {{}} uid={uid} CapEff:0000000000001000 secret=none in=/dev/null out=/dev/null sockets=0\n");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        want.replace("{}", "up") + &want.replace("{}", "down")
    );
}

#[test]
fn a_failing_ifup_script_is_a_one_line_error() {
    let ns = NetNs::new(true);
    let dir = Scratch::new("ifup-fail");
    let bad = script(&dir, "ifup.sh", "exit 3");
    let mut vm = launch_in(&ns, &format!("tap={TAP},script={bad}"), "hello", "");
    vm.close_stdin();
    vm.wait_exit(READY)
        .assert_one_line_error(1, "tap0 up exited with status 3");
}

/// The pid of the script helper sandvmm `vmm` forked: its child whose command line names
/// `script` (the helper is a fork, not an exec, of sandvmm).
fn helper_of(vmm: u32, script: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (ppid == vmm.to_string() && String::from_utf8_lossy(&cmdline).contains(script))
            .then_some(pid)
    })
}

#[test]
fn the_helper_keeps_only_what_a_script_needs_and_dies_with_the_vmm() {
    let ns = NetNs::new(true);
    let dir = Scratch::new("helper-process");
    let up = script(&dir, "ifup.sh", "exit 0");
    let kernel = testkernel();
    let cmdline = format!("scenario=echo {GUEST_IP_ARGS}");
    let mut cmd = ns.command(sandvmm());
    cmd.env("SANDVMM_TEST_SECRET", "leaked").args([
        "--kernel",
        kernel.to_str().unwrap(),
        "--net",
        &format!("tap={TAP},script={up}"),
        "--cmdline",
        &cmdline,
    ]);
    let mut vm = Vm::start_command(&mut cmd);
    vm.wait_for("SANDVMM-TEST: echo ready", READY);
    let helper = helper_of(vm.pid(), &up).expect("no script helper process");
    let status = std::fs::read_to_string(format!("/proc/{helper}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap()
            .trim()
            .to_string()
    };
    let uid = uid_of(JAIL_USER);
    assert_eq!(field("Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    for caps in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            field(caps),
            "0000000000001000",
            "{caps}: CAP_NET_ADMIN only"
        );
    }
    assert_eq!(field("NoNewPrivs"), "1");
    // Its fds: /dev/null in and out, the launcher's stderr, its socket to the VMM.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{helper}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            format!("{}:{}", e.file_name().to_str().unwrap(), target.display())
        })
        .collect();
    let mut kinds: Vec<&str> = fds
        .iter()
        .map(|f| match f.split_once(':').unwrap().1 {
            "/dev/null" => "null",
            t if t.starts_with("socket:") => "socket",
            t if t.starts_with("pipe:") => "stderr",
            _ => "other",
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["null", "null", "socket", "stderr"], "{fds:?}");
    // Nothing of the launcher's environment (which had SANDVMM_TEST_SECRET) is left,
    // not even in the helper's memory.
    let environ = std::fs::read(format!("/proc/{helper}/environ")).unwrap();
    assert!(
        environ.iter().all(|b| *b == 0),
        "the helper kept an environment"
    );
    // A VMM killed outright takes its helper with it (PR_SET_PDEATHSIG).
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(vm.pid() as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{helper}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{helper}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(Instant::now() < deadline, "the helper outlived the VMM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

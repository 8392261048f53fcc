//! A hostile guest must not bring sandvmm down. The test kernel's `scenario=chaos`
//! (images/testkernel/chaos.c) writes pseudo-random values to every device register
//! (COM1, the i8042, the virtio-mmio window), sets up queues with random sizes and
//! addresses, and kicks random descriptor chains, all under the enforcing sandbox (the
//! default). It passes when the guest reaches its PASS line and sandvmm exits 0: a
//! panic, a SIGSYS kill (status 159), an error exit or a hang all fail.
//!
//! Each seed runs without a net device and with `--net tap=tap0` in a private network
//! namespace, where the host side also sends broadcast datagrams into the tap so that
//! RX runs over the guest's random chains too.
//!
//! Surviving is not enough: the counters of the guest's summary line must show that
//! each device was exercised (for virtio-net: brought up to DRIVER_OK, chains made
//! available and kicked), and the tap's counters that the net device really processed
//! TX chains. A device the scenario never reached must not pass.

use sandvmm_harness as common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::netns::{NetNs, HOST_IP, TAP};
use common::*;

/// A chaos run takes 5-20 s on the emulating test hosts.
const CHAOS: Duration = Duration::from_secs(180);

/// The counters of the guest's "chaos done" line (images/testkernel/chaos.c).
fn chaos_counters(stdout: &str) -> HashMap<String, u64> {
    guest_counters(stdout, "SANDVMM-TEST: chaos done ")
}

/// The virtio counters: all of them move when a device is there, none without one.
const VIRTIO_COUNTERS: [&str; 7] = [
    "mmio", "status", "queue", "chains", "kicks", "bringups", "active",
];

/// Checks the run passed and the guest exercised what it had: COM1 and the i8042
/// always, and the virtio device (`active`: bring-ups the device accepted with
/// DRIVER_OK) when `virtio`.
fn assert_survived(run: &Finished, seed: u64, virtio: bool) {
    run.assert_guest_printed("SANDVMM-TEST: PASS chaos");
    assert!(
        run.stdout.contains(&format!("chaos seed={seed} ")),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let c = chaos_counters(&run.stdout);
    eprintln!("seed {seed}: {c:?}");
    for key in ["serial", "kbd"] {
        assert!(c[key] > 0, "seed {seed}: {key} did not move: {c:?}");
    }
    for key in VIRTIO_COUNTERS {
        assert_eq!(
            c[key] > 0,
            virtio,
            "seed {seed}: {key} with virtio={virtio}: {c:?}"
        );
    }
}

fn chaos_without_net(seed: u64) {
    let run = boot_scenario("chaos", &format!("seed={seed}"), &[], CHAOS);
    assert!(run.stdout.contains("virtio=no"), "{}", run.stdout);
    assert_survived(&run, seed, false);
}

/// A counter of tap0 in `ns`, from the host's side.
fn tap_counter(ns: &NetNs, name: &str) -> u64 {
    let path = format!("/sys/class/net/{TAP}/statistics/{name}");
    // `ip netns exec` mounts the namespace's own /sys.
    let out = output_within(ns.command("cat").arg(&path), Duration::from_secs(30));
    assert!(out.status.success(), "cat {path}: {}", out.stderr);
    out.stdout.trim().parse().unwrap()
}

/// Sets its flag when dropped, so that the sender thread stops however the VM's run
/// ends: a panic (timeout, failed assertion) included. Without it the scope would wait
/// for the sender forever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn chaos_with_net(seed: u64) {
    let ns = NetNs::new(true);
    let kernel = testkernel();
    let cmdline = format!("scenario=chaos seed={seed}");
    let run = ns.enter(|| {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let _stop = StopOnDrop(&stop);
            // Threads started here are in the namespace too: traffic for RX.
            s.spawn(|| {
                let sock = UdpSocket::bind((HOST_IP, 0)).unwrap();
                sock.set_broadcast(true).unwrap();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let payload = vec![n as u8; (n * 97) % 1473];
                    // Before sandvmm attaches the tap is down; a failed send is fine.
                    let _ = sock.send_to(&payload, ("10.0.0.255", 9));
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let mut vm = Vm::start(&[
                "--kernel",
                kernel.to_str().unwrap(),
                "--net",
                &format!("tap={TAP}"),
                "--cmdline",
                &cmdline,
            ]);
            vm.close_stdin();
            vm.wait_exit(CHAOS)
        })
    });
    assert!(run.stdout.contains("virtio=yes"), "{}", run.stdout);
    assert_survived(&run, seed, true);
    // Every frame sandvmm wrote to the tap (a TX chain the device processed) counts on
    // the tap's receive side, as a packet, or as dropped or malformed when the guest's
    // random bytes make no frame the host takes.
    let written: u64 = ["rx_packets", "rx_dropped", "rx_errors", "rx_frame_errors"]
        .iter()
        .map(|c| tap_counter(&ns, c))
        .sum();
    eprintln!("seed {seed}: {written} frames written to the tap");
    assert!(
        written > 0,
        "seed {seed}: the net device wrote no frame to the tap"
    );
}

macro_rules! seeds {
    ($($seed:literal => $plain:ident, $net:ident;)*) => {$(
        #[test]
        fn $plain() {
            chaos_without_net($seed);
        }

        #[test]
        fn $net() {
            chaos_with_net($seed);
        }
    )*};
}

seeds! {
    1 => chaos_seed_1, chaos_seed_1_with_net;
    2 => chaos_seed_2, chaos_seed_2_with_net;
    3 => chaos_seed_3, chaos_seed_3_with_net;
    42 => chaos_seed_42, chaos_seed_42_with_net;
    1234 => chaos_seed_1234, chaos_seed_1234_with_net;
}

/// The smallest guest sandvmm accepts still has room for chaos's buffers.
#[test]
fn chaos_in_the_smallest_guest() {
    let run = boot_scenario("chaos", "seed=7 iters=5000", &["--memory", "16M"], CHAOS);
    assert_survived(&run, 7, false);
}

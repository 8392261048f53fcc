//! The body of the `snapshot_state` target: a snapshot's state file is untrusted
//! input (issue 16), so its parser, its validation and the device restores behind it
//! must answer every input with `Ok` or an error, never a panic.
//!
//! Random bytes almost never carry a correct SHA-256, so one input is tried three
//! ways, each reaching further in:
//! 1. as a whole state file (header line and body): `Snapshot::decode`;
//! 2. as the JSON body, given the header that matches it
//!    (`vmm::snapshot::format::encode_body`), so the strict parse and `validate` see
//!    the fuzzer's bytes;
//! 3. as the `devices` member alone (`DeviceStates`), so the device restores see
//!    mutations of a small input rather than of an 18 KiB body that is mostly KVM hex.
//!
//! Whatever decodes is applied as `vmm::snapshot::setup::restore_devices` applies it,
//! to fresh devices and without KVM: the serial state onto a `SerialDevice`, each net
//! state onto the virtio-net rig and each disk state onto the virtio-blk rig of this
//! crate. A restore that succeeds must read back as the state given; then the guest
//! and the event loop touch the restored devices (register reads, the activation
//! event, queue kicks), since a restored state the devices cannot run with is a bug
//! too, only a later one.
//!
//! [`seeds`] makes the seed corpus in `seeds/snapshot_state/`, one seed per way.

use devices::bus::BusDevice;
use devices::serial::{SerialDevice, SerialOut, SerialSnapshot, FIFO_SIZE};
use devices::virtio::mmio::MmioTransport;
use devices::virtio::{MmioSnapshot, VirtioDevice};
use devices::EventFdTrigger;
use vmm::config::MAX_VIRTIO_DEVICES;
use vmm::snapshot::format::{encode_body, DeviceStates, Machine, VcpuState, VmState};
use vmm::snapshot::Snapshot;

use crate::driver::{bring_up, QueueSetup, BASE};
use crate::{BlockRig, NetRig};

/// Sectors of the disk each disk state is restored onto; its capacity is in the
/// config space a restore compares, so the seeds' disk states come from the same disk.
pub const DISK_SECTORS: u64 = 64;

/// The target's body: the three readings of the module documentation. Returns how
/// many device restores succeeded, so the unit test can tell it reached them.
pub fn run(data: &[u8]) -> usize {
    let mut restored = 0;
    if let Ok(snapshot) = Snapshot::decode(data) {
        restored += restore_devices(&snapshot.devices);
    }
    if let Ok(snapshot) = Snapshot::decode(&encode_body(data)) {
        restored += restore_devices(&snapshot.devices);
    }
    if let Ok(states) = serde_json::from_slice::<DeviceStates>(data) {
        // `validate` allows no more than this; the run's time should not grow with a
        // list of thousands of devices, which a real state file never reaches.
        if states.nets.len() + states.disks.len() <= MAX_VIRTIO_DEVICES {
            restored += restore_devices(&states);
        }
    }
    restored
}

/// Applies `states` to fresh devices, serial first, then nets, then disks, as a
/// restore does; every restore is tried, whatever the ones before it answered.
/// Returns how many succeeded, for the seeds' test.
pub fn restore_devices(states: &DeviceStates) -> usize {
    let mut restored = usize::from(restore_serial(&states.serial));
    for state in &states.nets {
        let mut rig = NetRig::new();
        if restore_mmio(&mut rig.transport, state) {
            restored += 1;
            rig.run_activation_event();
            rig.notify(0);
            rig.notify(1);
            rig.transport.device_mut().on_backend_readable();
            rig.drain_irq();
            read_registers(&mut rig.transport);
        }
    }
    for state in &states.disks {
        let mut rig = BlockRig::new(DISK_SECTORS, false);
        if restore_mmio(&mut rig.transport, state) {
            restored += 1;
            rig.run_activation_event();
            rig.notify(0);
            rig.drain_irq();
            read_registers(&mut rig.transport);
        }
    }
    restored
}

/// Restores `state` onto `transport`; on success checks that it reads back as given.
fn restore_mmio<D: VirtioDevice>(transport: &mut MmioTransport<D>, state: &MmioSnapshot) -> bool {
    if transport.restore(state).is_err() {
        return false;
    }
    assert_eq!(
        &transport.snapshot(),
        state,
        "a restored transport reads back"
    );
    true
}

/// The driver looks at every register after the restore; identification never changes.
fn read_registers<D: VirtioDevice>(transport: &mut MmioTransport<D>) {
    for offset in (0..0x100).step_by(4) {
        let mut word = [0u8; 4];
        transport.read(BASE, offset, &mut word);
    }
    let mut config = [0u8; 64];
    transport.read(BASE, 0x100, &mut config);
    let mut magic = [0u8; 4];
    transport.read(BASE, 0, &mut magic);
    assert_eq!(&magic, b"virt");
}

/// Restores `state` onto a fresh COM1, checks it, then lets the guest read and write.
fn restore_serial(state: &SerialSnapshot) -> bool {
    let irq = EventFdTrigger::new().expect("eventfd");
    let mut serial = SerialDevice::new(irq, SerialOut::discard(), None);
    if serial.restore(state).is_err() {
        return false;
    }
    // The restore may move queued input into the FIFO (and so change the line status
    // and interrupt identification), but it may neither lose nor reorder input, and
    // the registers the guest wrote stay as they were.
    let back = serial.snapshot();
    let registers = |s: &SerialSnapshot| {
        [
            s.baud_divisor_low,
            s.baud_divisor_high,
            s.interrupt_enable,
            s.line_control,
            s.modem_control,
            s.modem_status,
            s.scratch,
        ]
    };
    assert_eq!(registers(&back), registers(state), "registers read back");
    let input = |s: &SerialSnapshot| [&s.in_buffer[..], &s.pending_input[..]].concat();
    assert_eq!(input(&back), input(state), "queued input reads back");

    for offset in 0..8 {
        let mut byte = [0u8];
        serial.read(0, offset, &mut byte);
    }
    // A FIFO's worth and one more through RBR, then a byte of output.
    let mut drain = [0u8; FIFO_SIZE + 1];
    serial.read(0, 0, &mut drain);
    serial.write(0, 0, b"x");
    serial.queue_input(b"y");
    true
}

/// The seed corpus of `seeds/snapshot_state/`, as (file name, bytes): a whole state
/// file, its body alone, and its `devices` member alone. Its devices are those of
/// this crate's rigs, some brought up by a driver, so every restore succeeds.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let snapshot = sample();
    let body = serde_json::to_vec(&snapshot).expect("serializes");
    let devices = serde_json::to_vec(&snapshot.devices).expect("serializes");
    vec![
        ("state", snapshot.encode()),
        ("body.json", body),
        ("devices.json", devices),
    ]
}

/// A small but complete snapshot, as format_tests.rs's `sample`, with real device
/// states: COM1 with input in its FIFO and queued behind it, one active net, one
/// active disk and one disk the driver has not touched.
pub fn sample() -> Snapshot {
    let irq = EventFdTrigger::new().expect("eventfd");
    let mut serial = SerialDevice::new(irq, SerialOut::discard(), None);
    // 8N1 at 115200 baud, receive interrupts on, then 80 bytes of input: 64 fill the
    // FIFO and 16 wait.
    for (offset, value) in [(3, 0x80), (0, 1), (1, 0), (3, 3), (1, 1), (4, 0x0b)] {
        serial.write(0, offset, &[value]);
    }
    serial.queue_input(&[b'k'; 80]);

    let queue = |at: u16| QueueSetup {
        size_log2: 3,
        desc: at,
        avail: at + 0x100,
        used: at + 0x200,
    };
    let mut net = NetRig::new();
    bring_up(&mut net.transport, !0, &[queue(0x1000), queue(0x2000)]);
    net.run_activation_event();
    let mut disk = BlockRig::new(DISK_SECTORS, false);
    bring_up(&mut disk.transport, !0, &[queue(0x3000)]);
    disk.run_activation_event();
    let idle = BlockRig::new(DISK_SECTORS, false);

    Snapshot {
        machine: Machine {
            memory_bytes: 128 << 20,
            vcpus: 1,
            cpu_vendor: "GenuineIntel".into(),
            written_by: "sandvmm fuzz seed".into(),
        },
        vm: VmState::zeroed(),
        vcpus: vec![VcpuState {
            msrs: vec![(0x10, 42), (0xc000_0080, 0xd01)],
            ..VcpuState::zeroed()
        }],
        devices: DeviceStates {
            serial: serial.snapshot(),
            nets: vec![net.transport.snapshot()],
            disks: vec![disk.transport.snapshot(), idle.transport.snapshot()],
        },
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;

use super::*;

/// A small but complete snapshot: one vCPU, no virtio devices.
fn sample() -> Snapshot {
    Snapshot {
        machine: Machine {
            memory_bytes: 128 << 20,
            vcpus: 1,
            cpu_vendor: "GenuineIntel".into(),
            written_by: "sandvmm test".into(),
        },
        vm: VmState {
            clock: Raw(kvm_clock_data {
                clock: 123_456_789,
                ..Default::default()
            }),
            ..VmState::zeroed()
        },
        vcpus: vec![VcpuState {
            cpuid: vec![Raw(kvm_cpuid_entry2 {
                function: 0,
                eax: 0xd,
                ..Default::default()
            })],
            regs: Raw(kvm_regs {
                rip: 0x1000_0000,
                rax: u64::MAX,
                ..Default::default()
            }),
            msrs: vec![(0x10, 42), (0xc000_0080, 0xd01)],
            ..VcpuState::zeroed()
        }],
        devices: DeviceStates {
            serial: devices::serial::SerialSnapshot {
                baud_divisor_low: 12,
                baud_divisor_high: 0,
                interrupt_enable: 0,
                interrupt_identification: 1,
                line_control: 3,
                line_status: 0x60,
                modem_control: 8,
                modem_status: 0xb0,
                scratch: 0,
                in_buffer: vec![],
                pending_input: vec![],
            },
            nets: vec![],
            disks: vec![],
        },
    }
}

#[test]
fn a_snapshot_reads_back_as_written() {
    let bytes = sample().encode();
    let back = Snapshot::decode(&bytes).unwrap();
    assert_eq!(back.machine, sample().machine);
    assert_eq!(back.vcpus[0].regs.0.rip, 0x1000_0000);
    assert_eq!(back.vcpus[0].regs.0.rax, u64::MAX);
    assert_eq!(back.vcpus[0].msrs, sample().vcpus[0].msrs);
    assert_eq!(back.vm.clock.0.clock, 123_456_789);
    assert_eq!(back.encode(), bytes, "encoding is deterministic");
}

#[test]
fn the_header_names_format_version_length_and_checksum() {
    let bytes = sample().encode();
    let line = bytes.split(|&b| b == b'\n').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(line).unwrap();
    assert_eq!(header["format"], FORMAT);
    assert_eq!(header["version"], VERSION);
    assert_eq!(header["length"], bytes.len() - line.len() - 1);
    assert_eq!(header["sha256"].as_str().unwrap().len(), 64);
}

fn corrupt(bytes: &[u8]) -> String {
    match Snapshot::decode(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn a_flipped_byte_or_a_cut_is_refused() {
    let bytes = sample().encode();
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 1;
    assert!(corrupt(&flipped).contains("checksum"));
    assert!(corrupt(&bytes[..bytes.len() - 1]).contains("the header says"));
    assert!(corrupt(&bytes[..20]).contains("no header line"));
    assert!(corrupt(b"").contains("no header line"));
}

/// Re-encodes a body edited as JSON with a matching header, so that only the edit is
/// judged.
fn with_body(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut body = serde_json::to_value(sample()).unwrap();
    edit(&mut body);
    encode_body(&serde_json::to_vec(&body).unwrap())
}

#[test]
fn the_body_is_read_strictly() {
    assert!(Snapshot::decode(&with_body(|_| {})).is_ok());
    let unknown = with_body(|b| b["machine"]["extra"] = 1.into());
    assert!(corrupt(&unknown).contains("unknown field"));
    let short = with_body(|b| b["vcpus"][0]["regs"] = "00ff".into());
    assert!(corrupt(&short).contains("2 bytes where"));
    let odd = with_body(|b| b["vcpus"][0]["regs"] = "0".into());
    assert!(corrupt(&odd).contains("not a hex string"));
    let missing = with_body(|b| {
        b["vm"].as_object_mut().unwrap().remove("pit");
    });
    assert!(corrupt(&missing).contains("missing field"));
}

#[test]
fn inconsistent_state_is_refused() {
    let vcpus = with_body(|b| b["machine"]["vcpus"] = 2.into());
    assert!(corrupt(&vcpus).contains("names 2 vCPUs and holds 1"));
    let memory = with_body(|b| b["machine"]["memory_bytes"] = 12345.into());
    assert!(corrupt(&memory).contains("impossible memory size"));
    let cpuid = with_body(|b| b["vcpus"][0]["cpuid"] = serde_json::json!([]));
    assert!(corrupt(&cpuid).contains("0 CPUID entries"));
}

#[test]
fn another_format_or_version_is_named() {
    let bytes = sample().encode();
    let text = String::from_utf8(bytes).unwrap();
    let v2 = text.replacen("\"version\":1", "\"version\":2", 1);
    let err = Snapshot::decode(v2.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
    let other = text.replacen(FORMAT, "qemu-savevm", 1);
    assert!(corrupt(other.as_bytes()).contains("not a sandvmm snapshot"));
}

#[test]
fn hex_round_trips() {
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
    assert_eq!(unhex("zz"), None);
    assert_eq!(unhex("abc"), None);
}

//! The snapshot's state file: what it holds, how it is written, and how it is read
//! back as untrusted input.
//!
//! A snapshot directory holds two files:
//! - `memory`: guest RAM, raw, every RAM range in guest-physical order (the layout of
//!   `memory::ram_ranges`); its length is the guest's memory size.
//! - `state`: one header line, then the JSON body.
//!
//! ```text
//! {"format":"sandvmm-snapshot","version":1,"length":24917,"sha256":"9f2c..."}
//! {"machine":{...},"vm":{...},"vcpus":[...],"devices":{...}}
//! ```
//!
//! The header names the format and its version, and the body's length and SHA-256, so
//! a truncated or altered file is refused before its body is parsed. The body is
//! parsed strictly (unknown fields are errors), then checked for consistency
//! ([`Snapshot::validate`]). KVM's state structs are stored as hex strings of their
//! exact size ([`Raw`]); docs/ARCHITECTURE.md describes every member.

use devices::serial::SerialSnapshot;
use devices::virtio::MmioSnapshot;
use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SnapshotError;

/// The `format` member of every header.
pub const FORMAT: &str = "sandvmm-snapshot";
/// The version this sandvmm writes and the only one it reads.
pub const VERSION: u32 = 1;
/// Largest state file body accepted: far above any real one (about 40 KiB per vCPU).
pub const MAX_BODY: usize = 16 << 20;

/// The first line of a state file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    length: usize,
    sha256: String,
}

/// Everything in a snapshot but guest memory.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub machine: Machine,
    pub vm: VmState,
    pub vcpus: Vec<VcpuState>,
    pub devices: DeviceStates,
}

/// What a restore must match: the guest's shape and the host CPU it ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub memory_bytes: u64,
    pub vcpus: u8,
    /// CPUID leaf 0's vendor string ("GenuineIntel", "AuthenticAMD").
    pub cpu_vendor: String,
    /// The sandvmm that wrote it, for messages only.
    pub written_by: String,
}

/// The in-kernel interrupt controllers, the PIT and the KVM clock.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    pub pic_master: Raw<kvm_irqchip>,
    pub pic_slave: Raw<kvm_irqchip>,
    pub ioapic: Raw<kvm_irqchip>,
    pub pit: Raw<kvm_pit_state2>,
    pub clock: Raw<kvm_clock_data>,
}

/// One vCPU, as KVM reports it while the vCPU is out of `KVM_RUN`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuState {
    pub cpuid: Vec<Raw<kvm_cpuid_entry2>>,
    pub regs: Raw<kvm_regs>,
    pub sregs: Raw<kvm_sregs>,
    pub xsave: Raw<kvm_xsave>,
    pub xcrs: Raw<kvm_xcrs>,
    pub debugregs: Raw<kvm_debugregs>,
    pub lapic: Raw<kvm_lapic_state>,
    pub mp_state: Raw<kvm_mp_state>,
    pub events: Raw<kvm_vcpu_events>,
    /// (index, value) of every MSR KVM lists and lets the VMM read.
    pub msrs: Vec<(u32, u64)>,
}

/// The devices, in bus order: COM1, then the virtio-mmio slots (nets, then disks).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceStates {
    pub serial: SerialSnapshot,
    pub nets: Vec<MmioSnapshot>,
    pub disks: Vec<MmioSnapshot>,
}

impl VmState {
    /// All-zero state, the shape of a real one (for tests and fuzz seeds).
    pub fn zeroed() -> VmState {
        VmState {
            pic_master: Raw(Default::default()),
            pic_slave: Raw(Default::default()),
            ioapic: Raw(Default::default()),
            pit: Raw(Default::default()),
            clock: Raw(Default::default()),
        }
    }
}

impl VcpuState {
    /// All-zero state with one CPUID entry and no MSR, the shape of a real one (for
    /// tests and fuzz seeds).
    pub fn zeroed() -> VcpuState {
        VcpuState {
            cpuid: vec![Raw(Default::default())],
            regs: Raw(Default::default()),
            sregs: Raw(Default::default()),
            xsave: Raw(Default::default()),
            xcrs: Raw(Default::default()),
            debugregs: Raw(Default::default()),
            lapic: Raw(Default::default()),
            mp_state: Raw(Default::default()),
            events: Raw(Default::default()),
            msrs: Vec::new(),
        }
    }
}

/// A KVM state struct stored as the hex of its bytes.
///
/// Only the KVM structs named in this file are used with it: plain C structs of
/// integers and integer arrays (and unions of such), for which every byte pattern is a
/// valid value, which is what [`Raw::from_bytes`] relies on.
pub struct Raw<T>(pub T);

impl<T> Raw<T> {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `T` is one of this module's KVM structs (see the type's comment):
        // reading its bytes, padding included, is what KVM itself does; the slice
        // borrows `self` and covers exactly the value.
        unsafe {
            std::slice::from_raw_parts((&self.0 as *const T).cast(), std::mem::size_of::<T>())
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != std::mem::size_of::<T>() {
            return None;
        }
        // SAFETY: the length is exactly `size_of::<T>()`, `read_unaligned` copes with
        // any alignment, and every byte pattern is a valid `T` (see the type's comment).
        Some(Raw(unsafe {
            std::ptr::read_unaligned(bytes.as_ptr().cast::<T>())
        }))
    }
}

impl<T> std::fmt::Debug for Raw<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw<{} bytes>", std::mem::size_of::<T>())
    }
}

impl<T> Serialize for Raw<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(self.as_bytes()))
    }
}

impl<'de, T> Deserialize<'de> for Raw<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = unhex(&text).ok_or_else(|| serde::de::Error::custom("not a hex string"))?;
        Raw::from_bytes(&bytes).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{} bytes where {} are needed",
                bytes.len(),
                std::mem::size_of::<T>()
            ))
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// A state file around a body already serialized: the header line that names the
/// format, the version and the body's length and SHA-256, then `body` as it is.
/// [`Snapshot::encode`] uses it; so do the fuzz target (fuzz/README.md) and tests, to
/// give a body of their own the header that lets [`Snapshot::decode`] parse it.
pub fn encode_body(body: &[u8]) -> Vec<u8> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        length: body.len(),
        sha256: sandbox::policy::text_sha256(body),
    };
    let mut out = serde_json::to_vec(&header).expect("the header always serializes");
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

impl Snapshot {
    /// The state file's bytes: header line and body.
    pub fn encode(&self) -> Vec<u8> {
        encode_body(&serde_json::to_vec(self).expect("snapshot state always serializes"))
    }

    /// Reads a state file's bytes: header, checksum, strict parse, then [`validate`].
    ///
    /// [`validate`]: Snapshot::validate
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let bad = |why: String| SnapshotError::Corrupt(why);
        let newline = bytes
            .iter()
            .take(512)
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no header line".into()))?;
        let header: Header = serde_json::from_slice(&bytes[..newline])
            .map_err(|e| bad(format!("bad header: {e}")))?;
        if header.format != FORMAT {
            return Err(bad(format!("not a sandvmm snapshot ({:?})", header.format)));
        }
        if header.version != VERSION {
            return Err(SnapshotError::Version(header.version));
        }
        let body = &bytes[newline + 1..];
        if header.length > MAX_BODY || body.len() != header.length {
            return Err(bad(format!(
                "the header says {} bytes of state, the file has {}",
                header.length,
                body.len()
            )));
        }
        if sandbox::policy::text_sha256(body) != header.sha256 {
            return Err(bad("its checksum does not match".into()));
        }
        let snapshot: Snapshot =
            serde_json::from_slice(body).map_err(|e| bad(format!("bad state: {e}")))?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Consistency checks the parser cannot make; KVM and the devices check the rest
    /// when the state is applied.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let bad = |why: String| Err(SnapshotError::Corrupt(why));
        let m = &self.machine;
        if m.vcpus == 0 || usize::from(m.vcpus) != self.vcpus.len() {
            return bad(format!(
                "it names {} vCPUs and holds {}",
                m.vcpus,
                self.vcpus.len()
            ));
        }
        if m.memory_bytes < crate::memory::MIN_MEMORY
            || !m.memory_bytes.is_multiple_of(crate::memory::PAGE_SIZE)
            || m.memory_bytes > 1 << 46
        {
            return bad(format!("impossible memory size {}", m.memory_bytes));
        }
        let devices = self.devices.nets.len() + self.devices.disks.len();
        if devices > crate::config::MAX_VIRTIO_DEVICES {
            return bad(format!("{devices} virtio devices"));
        }
        for (index, vcpu) in self.vcpus.iter().enumerate() {
            if vcpu.cpuid.is_empty() || vcpu.cpuid.len() > kvm_bindings::KVM_MAX_CPUID_ENTRIES {
                return bad(format!(
                    "vCPU {index} has {} CPUID entries",
                    vcpu.cpuid.len()
                ));
            }
            if vcpu.msrs.len() > kvm_bindings::KVM_MAX_MSR_ENTRIES {
                return bad(format!("vCPU {index} has {} MSRs", vcpu.msrs.len()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;

//! The validated VM configuration, made from the run flags of [`crate::cli`].
//!
//! [`RunArgs::into_config`] checks what clap cannot (sizes, counts, net and disk specs,
//! sandbox options) so that the builder only ever sees a configuration that makes
//! sense. The device specs are parsed in `specs.rs`; `--serial` is parsed by clap
//! itself, with the parser in `serial.rs`.

use std::path::PathBuf;

use devices::virtio::net::format_mac;
use sandbox::jail::JailUser;
use sandbox::{Mode, Optimize, Profile};

mod serial;
mod specs;

pub use crate::cli::RunArgs;
pub use serial::{parse_serial, SerialError, SerialParser, SerialTarget, DEFAULT_SERIAL_MAX};
pub use specs::{
    default_mac, parse_disk, parse_net, DiskBackend, DiskConfig, NetBackend, NetConfig,
    MAX_VIRTIO_DEVICES,
};

use crate::memory::{MIN_MEMORY, PAGE_SIZE};
pub use crate::snapshot::SnapshotConfig;

/// The command line appended to by `--cmdline`.
///
/// `console=ttyS0` sends the console to our 8250; `reboot=k` makes Linux reset through
/// the i8042, which is how a guest ends the VM; `panic=1` turns a panic into a reset
/// after one second instead of a hang; `pci=off` skips probing a bus we don't have.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off";

/// Largest vCPU count the MP table can describe (APIC IDs are 8 bits; one ID is the IOAPIC's).
pub const MAX_VCPUS: u8 = 254;

/// A checked VM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub extra_cmdline: Option<String>,
    pub vcpus: u8,
    pub memory_bytes: u64,
    pub serial: SerialTarget,
    pub nets: Vec<NetConfig>,
    /// Virtio-blk devices, after the net devices in the MMIO slots.
    pub disks: Vec<DiskConfig>,
    pub host_adapt: bool,
    pub sandbox: SandboxConfig,
    pub jail: JailConfig,
    /// The escape demonstration port is present.
    pub demo_escape: bool,
    /// `--snapshot-to` and its companions.
    pub snapshot: Option<SnapshotConfig>,
    /// `--restore`: the snapshot directory to start from. `kernel` is then empty, and
    /// `vcpus` and `memory_bytes` are the snapshot's ([`VmConfig::restored`]).
    pub restore: Option<PathBuf>,
}

/// Whether and how the jail goes on (docs/SANDBOX.md, "The jail").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailConfig {
    pub enabled: bool,
    /// `--jail-user`: who to become when started as root.
    pub user: JailUser,
}

/// How the sandbox runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    pub mode: Mode,
    pub profile: Profile,
    pub optimize: Optimize,
    /// A policy file replacing the built-in one.
    pub policy_file: Option<PathBuf>,
    /// `--sandbox-report`: where trap-mode reports also go, as JSON.
    pub report_file: Option<PathBuf>,
}

/// Errors in the command-line values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid --memory {0:?}: expected a size such as 128M, 1G or 65536K")]
    MemorySyntax(String),
    #[error("invalid --memory {0:?}: the guest needs at least 16 MiB")]
    MemoryTooSmall(String),
    #[error("invalid --memory {0:?}: not a whole number of 4 KiB pages")]
    MemoryUnaligned(String),
    #[error("invalid --cpus {0}: must be between 1 and {MAX_VCPUS}")]
    Cpus(u32),
    #[error("invalid --net {0:?}: {1}")]
    Net(String, &'static str),
    #[error("--net {spec:?} uses MAC {mac}, which another --net already has")]
    DuplicateMac { spec: String, mac: String },
    #[error(
        "{0} virtio devices given (--net and --disk); at most {MAX_VIRTIO_DEVICES} are supported"
    )]
    TooManyDevices(usize),
    #[error("invalid --disk {0:?}: {1}")]
    Disk(String, &'static str),
    #[error("--disk {spec:?} uses id {id:?}, which another --disk already has")]
    DuplicateDiskId { spec: String, id: String },
    #[error("--kernel is required")]
    NoKernel,
    #[error("--demo-escape cannot be combined with snapshots (--snapshot-to, --restore)")]
    EscapeSnapshot,
    #[error("--snapshot-on-serial needs some text to wait for")]
    EmptySnapshotText,
    #[error("invalid {flag}: {message}")]
    Sandbox { flag: &'static str, message: String },
    #[error(
        "--sandbox-profile strict takes taps only as fds (--net fd=N); {0:?} opens one by name"
    )]
    StrictNeedsFd(String),
    #[error(
        "--sandbox-profile strict takes disks only as fds (--disk fd=N); {0:?} opens one by path"
    )]
    StrictNeedsDiskFd(String),
}

impl RunArgs {
    /// Validates the parsed flags.
    pub fn into_config(self) -> Result<VmConfig, ConfigError> {
        if self.cpus == 0 || self.cpus > u32::from(MAX_VCPUS) {
            return Err(ConfigError::Cpus(self.cpus));
        }
        if self.net.len() + self.disk.len() > MAX_VIRTIO_DEVICES {
            return Err(ConfigError::TooManyDevices(
                self.net.len() + self.disk.len(),
            ));
        }
        let mut nets: Vec<NetConfig> = Vec::with_capacity(self.net.len());
        for (index, spec) in self.net.iter().enumerate() {
            let net = parse_net(spec, index)?;
            if nets.iter().any(|other| other.mac == net.mac) {
                return Err(ConfigError::DuplicateMac {
                    spec: spec.clone(),
                    mac: format_mac(&net.mac),
                });
            }
            nets.push(net);
        }
        let mut disks: Vec<DiskConfig> = Vec::with_capacity(self.disk.len());
        for (index, spec) in self.disk.iter().enumerate() {
            let disk = parse_disk(spec)?;
            let id = disk.id.clone().unwrap_or_else(|| format!("disk{index}"));
            let taken = disks
                .iter()
                .enumerate()
                .any(|(i, d)| d.id.clone().unwrap_or_else(|| format!("disk{i}")) == id);
            if taken {
                return Err(ConfigError::DuplicateDiskId {
                    spec: spec.clone(),
                    id,
                });
            }
            disks.push(disk);
        }
        let sandbox = SandboxConfig {
            mode: if self.sandbox_trace {
                Mode::Trace
            } else {
                self.sandbox.into()
            },
            profile: self.sandbox_profile.into(),
            optimize: self.sandbox_optimize.into(),
            policy_file: self.sandbox_policy,
            report_file: self.sandbox_report,
        };
        if sandbox.profile == Profile::Strict {
            if let Some(net) = nets
                .iter()
                .find(|n| matches!(n.backend, NetBackend::Tap(_)))
            {
                return Err(ConfigError::StrictNeedsFd(net.spec.clone()));
            }
            if let Some(disk) = disks
                .iter()
                .find(|d| matches!(d.backend, DiskBackend::Path(_)))
            {
                return Err(ConfigError::StrictNeedsDiskFd(disk.spec.clone()));
            }
        }
        if self.demo_escape && (self.snapshot_to.is_some() || self.restore.is_some()) {
            return Err(ConfigError::EscapeSnapshot);
        }
        if self.snapshot_on_serial.as_deref() == Some("") {
            return Err(ConfigError::EmptySnapshotText);
        }
        let snapshot = self.snapshot_to.map(|dir| SnapshotConfig {
            dir,
            on_serial: self.snapshot_on_serial,
            continue_after: self.snapshot_continue,
        });
        let kernel = match (&self.restore, self.kernel) {
            (Some(_), _) => PathBuf::new(),
            (None, kernel) => kernel.ok_or(ConfigError::NoKernel)?,
        };
        Ok(VmConfig {
            snapshot,
            restore: self.restore,
            sandbox,
            jail: JailConfig {
                enabled: self.jail == crate::cli::Switch::On,
                user: match self.jail_user.as_deref() {
                    None => JailUser::default(),
                    Some(spec) => spec.parse().map_err(|message| ConfigError::Sandbox {
                        flag: "--jail-user",
                        message,
                    })?,
                },
            },
            demo_escape: self.demo_escape,
            memory_bytes: parse_memory(&self.memory)?,
            serial: self.serial,
            nets,
            disks,
            kernel,
            initrd: self.initrd,
            extra_cmdline: self.cmdline.filter(|c| !c.trim().is_empty()),
            vcpus: self.cpus as u8,
            host_adapt: !self.no_host_adapt,
        })
    }
}

/// Parses a size, `128`, `128M`, `128MiB`, `1G`, `65536K`, into bytes: binary units,
/// and a plain number means MiB. `None` for anything else, or a size past `u64`.
impl VmConfig {
    /// This configuration with the guest's shape taken from a snapshot's.
    pub fn restored(&self, machine: &crate::snapshot::format::Machine) -> VmConfig {
        VmConfig {
            vcpus: machine.vcpus,
            memory_bytes: machine.memory_bytes,
            ..self.clone()
        }
    }
}

pub fn parse_size(text: &str) -> Option<u64> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "k" | "kib" => 10,
        "" | "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// Parses `--memory`: a size ([`parse_size`]) of at least [`MIN_MEMORY`], in pages.
pub fn parse_memory(text: &str) -> Result<u64, ConfigError> {
    let bytes = parse_size(text).ok_or_else(|| ConfigError::MemorySyntax(text.to_string()))?;
    if bytes < MIN_MEMORY {
        return Err(ConfigError::MemoryTooSmall(text.to_string()));
    }
    if bytes % PAGE_SIZE != 0 {
        return Err(ConfigError::MemoryUnaligned(text.to_string()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;

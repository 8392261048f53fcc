//! The validated VM configuration, made from the run flags of [`crate::cli`].
//!
//! [`RunArgs::into_config`] checks what clap cannot (sizes, counts, serial targets, net
//! specs, sandbox options) so that the builder only ever sees a configuration that
//! makes sense.

use std::path::PathBuf;

use devices::virtio::net::{format_mac, parse_mac, MacAddr};
use sandbox::jail::JailUser;
use sandbox::{Mode, Optimize, Profile};

pub use crate::cli::RunArgs;

use crate::memory::{MIN_MEMORY, PAGE_SIZE};

/// The command line appended to by `--cmdline`.
///
/// `console=ttyS0` sends the console to our 8250; `reboot=k` makes Linux reset through
/// the i8042, which is how a guest ends the VM; `panic=1` turns a panic into a reset
/// after one second instead of a hang; `pci=off` skips probing a bus we don't have.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off";

/// Largest vCPU count the MP table can describe (APIC IDs are 8 bits; one ID is the IOAPIC's).
pub const MAX_VCPUS: u8 = 254;

/// Where serial output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialTarget {
    /// stdout, with stdin as input.
    Stdio,
    /// A file, created or truncated; no input.
    File(PathBuf),
    /// Nowhere.
    None,
}

/// The host end of a virtio-net device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetBackend {
    /// A tap opened by name.
    Tap(String),
    /// A tap fd handed in.
    Fd(i32),
}

/// One `--net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub backend: NetBackend,
    pub mac: MacAddr,
    /// A script the helper process runs with the tap's name and `up` once the tap is
    /// open, and with `down` when the VM ends (the ifup case of the 2012 review).
    pub script: Option<PathBuf>,
    /// The flag's text, for messages.
    pub spec: String,
}

/// Most virtio-net devices: one IRQ each, from 5 to 23 (the IOAPIC's last pin).
pub const MAX_NET_DEVICES: usize = 19;

/// The MAC of the `index`-th device when none is given: locally administered
/// (0x06: unicast, local bit set), "svm", then the index.
pub fn default_mac(index: usize) -> MacAddr {
    [0x06, b's', b'v', b'm', 0, index as u8 + 1]
}

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
    pub host_adapt: bool,
    pub sandbox: SandboxConfig,
    pub jail: JailConfig,
    /// The escape demonstration port is present.
    pub demo_escape: bool,
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
    #[error("invalid --serial {0:?}: expected stdio, file:PATH or none")]
    Serial(String),
    #[error("invalid --net {0:?}: {1}")]
    Net(String, &'static str),
    #[error("--net {spec:?} uses MAC {mac}, which another --net already has")]
    DuplicateMac { spec: String, mac: String },
    #[error("{0} --net devices given; at most {MAX_NET_DEVICES} are supported")]
    TooManyNets(usize),
    #[error("--kernel is required")]
    NoKernel,
    #[error("invalid {flag}: {message}")]
    Sandbox { flag: &'static str, message: String },
    #[error(
        "--sandbox-profile strict takes taps only as fds (--net fd=N); {0:?} opens one by name"
    )]
    StrictNeedsFd(String),
}

impl RunArgs {
    /// Validates the parsed flags.
    pub fn into_config(self) -> Result<VmConfig, ConfigError> {
        if self.cpus == 0 || self.cpus > u32::from(MAX_VCPUS) {
            return Err(ConfigError::Cpus(self.cpus));
        }
        if self.net.len() > MAX_NET_DEVICES {
            return Err(ConfigError::TooManyNets(self.net.len()));
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
        let sandbox = SandboxConfig {
            mode: if self.sandbox_trace {
                Mode::Trace
            } else {
                self.sandbox
                    .parse()
                    .map_err(|message| ConfigError::Sandbox {
                        flag: "--sandbox",
                        message,
                    })?
            },
            profile: self
                .sandbox_profile
                .parse()
                .map_err(|message| ConfigError::Sandbox {
                    flag: "--sandbox-profile",
                    message,
                })?,
            optimize: self
                .sandbox_optimize
                .parse()
                .map_err(|message| ConfigError::Sandbox {
                    flag: "--sandbox-optimize",
                    message,
                })?,
            policy_file: self.sandbox_policy,
        };
        if sandbox.profile == Profile::Strict {
            if let Some(net) = nets
                .iter()
                .find(|n| matches!(n.backend, NetBackend::Tap(_)))
            {
                return Err(ConfigError::StrictNeedsFd(net.spec.clone()));
            }
        }
        Ok(VmConfig {
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
            serial: parse_serial(&self.serial)?,
            nets,
            kernel: self.kernel.ok_or(ConfigError::NoKernel)?,
            initrd: self.initrd,
            extra_cmdline: self.cmdline.filter(|c| !c.trim().is_empty()),
            vcpus: self.cpus as u8,
            host_adapt: !self.no_host_adapt,
        })
    }
}

/// Parses `128`, `128M`, `128MiB`, `1G`, `65536K` into bytes.
pub fn parse_memory(text: &str) -> Result<u64, ConfigError> {
    let syntax = || ConfigError::MemorySyntax(text.to_string());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| syntax())?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "k" | "kib" => 10,
        "" | "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(syntax()),
    };
    let bytes = number.checked_mul(1 << shift).ok_or_else(syntax)?;
    if bytes < MIN_MEMORY {
        return Err(ConfigError::MemoryTooSmall(text.to_string()));
    }
    if bytes % PAGE_SIZE != 0 {
        return Err(ConfigError::MemoryUnaligned(text.to_string()));
    }
    Ok(bytes)
}

/// Parses `tap=NAME[,mac=MAC]` or `fd=N[,mac=MAC]` for the `index`-th device.
pub fn parse_net(spec: &str, index: usize) -> Result<NetConfig, ConfigError> {
    let bad = |reason| ConfigError::Net(spec.to_string(), reason);
    let mut backend = None;
    let mut mac = None;
    let mut script = None;
    for item in spec.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad("expected key=value items"))?;
        match key {
            "tap" | "fd" if backend.is_some() => return Err(bad("give one of tap= or fd=")),
            "tap" if value.is_empty() || value.len() > 15 => {
                return Err(bad("a tap name has 1 to 15 bytes"))
            }
            "tap" => backend = Some(NetBackend::Tap(value.to_string())),
            "fd" => {
                let fd = value.parse::<i32>().ok().filter(|fd| *fd > 2);
                backend =
                    Some(NetBackend::Fd(fd.ok_or_else(|| {
                        bad("fd= takes a descriptor number above 2")
                    })?));
            }
            "mac" if mac.is_some() => return Err(bad("mac= given twice")),
            "mac" => {
                mac =
                    Some(parse_mac(value).ok_or_else(|| {
                        bad("mac= takes a unicast address like 06:00:00:00:00:01")
                    })?)
            }
            "script" if script.is_some() => return Err(bad("script= given twice")),
            "script" if value.is_empty() => return Err(bad("script= takes a path")),
            "script" => script = Some(PathBuf::from(value)),
            _ => return Err(bad("unknown item; expected tap=, fd=, mac= or script=")),
        }
    }
    let backend = backend.ok_or_else(|| bad("expected tap=NAME or fd=N"))?;
    if script.is_some() && matches!(backend, NetBackend::Fd(_)) {
        return Err(bad(
            "script= goes with tap=NAME: whoever opened the fd configures the tap",
        ));
    }
    Ok(NetConfig {
        backend,
        mac: mac.unwrap_or_else(|| default_mac(index)),
        script,
        spec: spec.to_string(),
    })
}

fn parse_serial(text: &str) -> Result<SerialTarget, ConfigError> {
    match text {
        "stdio" => Ok(SerialTarget::Stdio),
        "none" => Ok(SerialTarget::None),
        _ => match text.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SerialTarget::File(PathBuf::from(path))),
            _ => Err(ConfigError::Serial(text.to_string())),
        },
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

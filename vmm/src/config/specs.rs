//! `--net` and `--disk` specs: `key=value` items, checked into [`NetConfig`] and
//! [`DiskConfig`].

use std::path::PathBuf;

use devices::virtio::net::{parse_mac, MacAddr};

use super::ConfigError;

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

/// Most virtio devices (net and disks together): one IRQ each, from 5 to 23 (the
/// IOAPIC's last pin).
pub const MAX_VIRTIO_DEVICES: usize = 19;

/// The MAC of the `index`-th device when none is given: locally administered
/// (0x06: unicast, local bit set), "svm", then the index.
pub fn default_mac(index: usize) -> MacAddr {
    [0x06, b's', b'v', b'm', 0, index as u8 + 1]
}

/// Where a virtio-blk device's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskBackend {
    /// A raw image file or a block device, opened by path.
    Path(PathBuf),
    /// An fd handed in.
    Fd(i32),
}

/// One `--disk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub backend: DiskBackend,
    /// The guest may not write (VIRTIO_BLK_F_RO; the image is opened read-only).
    pub read_only: bool,
    /// The serial the guest reads with GET_ID (at most 20 bytes; default: `diskN`).
    pub id: Option<String>,
    /// The flag's text, for messages.
    pub spec: String,
}

/// Parses `path=FILE` or `fd=N`, with `readonly=on|off` and `id=ID`.
pub fn parse_disk(spec: &str) -> Result<DiskConfig, ConfigError> {
    let bad = |reason| ConfigError::Disk(spec.to_string(), reason);
    let (mut backend, mut read_only, mut id) = (None, None, None);
    for item in spec.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad("expected key=value items"))?;
        match key {
            "path" | "fd" if backend.is_some() => return Err(bad("give one of path= or fd=")),
            "path" if value.is_empty() => return Err(bad("path= takes a file name")),
            "path" => backend = Some(DiskBackend::Path(PathBuf::from(value))),
            "fd" => {
                let fd = value.parse::<i32>().ok().filter(|fd| *fd > 2);
                let fd = fd.ok_or_else(|| bad("fd= takes a descriptor number above 2"))?;
                backend = Some(DiskBackend::Fd(fd));
            }
            "readonly" if read_only.is_some() => return Err(bad("readonly= given twice")),
            "readonly" => {
                read_only = Some(match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad("readonly= takes on or off")),
                })
            }
            "id" if id.is_some() => return Err(bad("id= given twice")),
            "id" if value.is_empty() || value.len() > 20 => {
                return Err(bad("id= takes 1 to 20 bytes"))
            }
            "id" => id = Some(value.to_string()),
            _ => return Err(bad("unknown item; expected path=, fd=, readonly= or id=")),
        }
    }
    Ok(DiskConfig {
        backend: backend.ok_or_else(|| bad("expected path=FILE or fd=N"))?,
        read_only: read_only.unwrap_or(false),
        id,
        spec: spec.to_string(),
    })
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

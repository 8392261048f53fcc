//! Snapshot and restore: a running guest written to a directory, and a new sandvmm
//! process that goes on from it.
//!
//! - format.rs: the state file, its header and checksum, and its strict reading;
//! - kvm_state.rs: vCPU and VM state, read and written in the order KVM needs;
//! - pause.rs: parking the vCPUs out of `KVM_RUN`;
//! - files.rs: the snapshot files, opened before the jail and the filters;
//! - take.rs: taking a snapshot on the VMM thread;
//! - load.rs: reading one back and mapping its memory for `--restore`.
//!
//! docs/ARCHITECTURE.md ("Snapshots") gives the format and the restore order;
//! docs/SANDBOX.md says what is opened when.

pub mod files;
pub mod format;
pub mod kvm_state;
pub mod load;
pub mod pause;
pub mod setup;
pub mod take;

use std::path::PathBuf;

pub use files::SnapshotFiles;
pub use format::Snapshot;
pub use kvm_state::KvmStateError;
pub use load::{load, Loaded};
pub use pause::{Pause, PauseError};
pub use take::Snapshotter;

/// How a run takes snapshots (`--snapshot-to` and its companions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    /// `--snapshot-on-serial`: the first time the guest prints this.
    pub on_serial: Option<String>,
    /// `--snapshot-continue`: keep running afterwards instead of exiting.
    pub continue_after: bool,
}

/// Errors from taking or restoring a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot state is corrupt: {0}")]
    Corrupt(String),
    #[error("the snapshot is format version {0}; this sandvmm reads version {v}", v = format::VERSION)]
    Version(u32),
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the snapshot's memory file has {len} bytes, its state says {want}: truncated or from another snapshot")]
    MemoryFile { len: u64, want: u64 },
    #[error("the snapshot was taken on a {snapshot} CPU; this host has a {host} CPU")]
    CpuVendor { snapshot: String, host: String },
    #[error("this host's KVM lacks the {0} capability, which snapshots need")]
    KvmCap(&'static str),
    #[error("cannot open the snapshot directory {path}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the snapshot to {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pause(#[from] PauseError),
    #[error("cannot save vCPU {index}")]
    SaveVcpu {
        index: u8,
        #[source]
        error: KvmStateError,
    },
    #[error("cannot read the VM's state")]
    Vm(#[source] KvmStateError),
    #[error("cannot restore the VM's state")]
    RestoreVm(#[source] KvmStateError),
    #[error("cannot restore vCPU {index}")]
    RestoreVcpu {
        index: u8,
        #[source]
        error: KvmStateError,
    },
    #[error("cannot restore the serial port: {0}")]
    Serial(devices::serial::SerialError),
    #[error("cannot watch the serial output for --snapshot-on-serial: {0}")]
    Watch(devices::serial::SerialError),
    #[error("the snapshot has {snapshot} {what}, the command line gives {given} (--{flag})")]
    DeviceCount {
        what: &'static str,
        flag: &'static str,
        snapshot: usize,
        given: usize,
    },
    #[error("--{flag} {spec:?} does not match the snapshot's {name}: {why}")]
    DeviceMismatch {
        flag: &'static str,
        spec: String,
        name: String,
        why: String,
    },
}

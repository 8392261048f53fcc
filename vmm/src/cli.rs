//! The command line: running a VM (the default) and the `sandbox` subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sandbox::{Mode, Optimize, Profile, ThreadKind};

use crate::config::{SerialParser, SerialTarget};

/// The exit statuses, for `--help` (and README.md, "Exit status"; main.rs's header).
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0    the guest ended itself (reset, power-off, triple fault) or you quit (Ctrl-A x)
  1    an error, including a guest the host KVM cannot run
  2    a bad command line
  100  a call blocked in --sandbox trap (the handler names it and its thread)
  159  as a shell shows it: killed by SIGSYS after a call blocked in --sandbox enforce";

/// sandvmm: a small KVM virtual machine monitor with a seccomp sandbox built in.
///
/// Boots a Linux kernel (ELF vmlinux or bzImage) or the sandvmm test kernel with a serial
/// console and virtio-net, every thread under its own seccomp filter. The VM ends when
/// the guest resets (Linux: `reboot` with `reboot=k`), powers off or triple-faults;
/// sandvmm then exits with status 0. On a terminal, type Ctrl-A x to quit.
#[derive(Debug, Parser)]
#[command(
    name = "sandvmm",
    about,
    long_about,
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SANDVMM_GIT_COMMIT"), ")"),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_long_help = EXIT_STATUS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the sandbox's layers and policy, prove the compiled filters, or measure a
    /// workload's system calls.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

/// `sandvmm sandbox ...`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Print the rules, or the compiled filter, of a thread kind; or, with --layers,
    /// every confinement layer a run would set up on this host.
    Show {
        /// Describe the layers (seccomp, the jail's fds, identity, namespaces, root,
        /// capabilities, Landlock, limits) instead of the rules.
        #[arg(long)]
        layers: bool,
        /// Thread kind (default: both).
        #[arg(long, value_enum, value_name = "KIND")]
        thread: Option<ThreadArg>,
        /// What to print.
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ShowFormat::Table)]
        format: ShowFormat,
        /// Profile to show.
        #[arg(long, value_enum, value_name = "PROFILE", default_value_t = SandboxProfile::Default)]
        profile: SandboxProfile,
        /// BPF layout.
        #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = SandboxOptimize::Priority)]
        optimize: SandboxOptimize,
        /// A policy file instead of the built-in one.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Check every compiled filter (each mode, profile, layout and thread kind) against
    /// its policy with an independent BPF interpreter, over every syscall number and
    /// argument edge case; exit 1 listing the cases where they disagree.
    Verify {
        /// A policy file instead of the built-in one.
        #[arg(long = "sandbox-policy", visible_alias = "policy", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Run a VM (the arguments after `--`) and count each thread's system calls
    /// after set-up, to regenerate the priorities table.
    Profile {
        /// Write the table here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Add the counts to this existing table.
        #[arg(long, value_name = "FILE")]
        merge: Option<PathBuf>,
        /// sandvmm run arguments, e.g. `-- --kernel K --cmdline scenario=hello`.
        #[arg(last = true, required = true, value_name = "RUN-ARGS")]
        run_args: Vec<String>,
    },
}

/// A flag that is `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// How much sandvmm logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Only what went wrong on the host.
    Error,
    /// Also what a guest did wrong (rate-limited) and degraded layers.
    Warn,
    /// Also notices about the host (an emulating KVM, say).
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    /// The `log` crate's filter for this level.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
        }
    }
}

/// `--sandbox`: the values of [`sandbox::Mode`] a user may choose (`trace` is
/// `sandvmm sandbox profile`'s own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxMode {
    /// Kill the process on any call outside the policy.
    Enforce,
    /// Name the call and thread, then exit with status 100.
    Trap,
    /// Allow the call and have the kernel log it.
    Log,
    /// Install no filter.
    Off,
}

impl From<SandboxMode> for Mode {
    fn from(mode: SandboxMode) -> Mode {
        match mode {
            SandboxMode::Enforce => Mode::Enforce,
            SandboxMode::Trap => Mode::Trap,
            SandboxMode::Log => Mode::Log,
            SandboxMode::Off => Mode::Off,
        }
    }
}

/// `--sandbox-profile`: [`sandbox::Profile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxProfile {
    /// Every rule of the policy.
    Default,
    /// For deployments that hand every tap and disk in as an fd: no taps or disks
    /// opened by name, no helper process, no terminal.
    Strict,
}

impl From<SandboxProfile> for Profile {
    fn from(profile: SandboxProfile) -> Profile {
        match profile {
            SandboxProfile::Default => Profile::Default,
            SandboxProfile::Strict => Profile::Strict,
        }
    }
}

/// `--sandbox-optimize`: [`sandbox::Optimize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxOptimize {
    /// Linear checks, ordered by measured syscall frequency.
    Priority,
    /// A binary search over syscall numbers.
    Tree,
}

impl From<SandboxOptimize> for Optimize {
    fn from(optimize: SandboxOptimize) -> Optimize {
        match optimize {
            SandboxOptimize::Priority => Optimize::Priority,
            SandboxOptimize::Tree => Optimize::Tree,
        }
    }
}

/// `sandbox show --thread`: [`sandbox::ThreadKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThreadArg {
    /// The VMM thread (set-up, then the event loop).
    Vmm,
    /// A vCPU thread.
    Vcpu,
}

impl From<ThreadArg> for ThreadKind {
    fn from(thread: ThreadArg) -> ThreadKind {
        match thread {
            ThreadArg::Vmm => ThreadKind::Vmm,
            ThreadArg::Vcpu => ThreadKind::Vcpu,
        }
    }
}

/// `sandbox show --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// The rules with their reasons and priorities.
    Table,
    /// libseccomp's pseudo filter code.
    Pfc,
    /// The raw BPF program, one instruction per line.
    Bpf,
}

/// The flags that describe a VM and how to run it.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest kernel: an uncompressed ELF vmlinux (entered through the 64-bit boot
    /// protocol) or a bzImage.
    #[arg(long, value_name = "PATH", required_unless_present = "restore")]
    pub kernel: Option<PathBuf>,

    /// Initial ramdisk (an initramfs cpio archive), placed at the top of low memory.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,

    /// Text appended to the default kernel command line
    /// ("console=ttyS0 reboot=k panic=1 pci=off").
    #[arg(long, value_name = "STR")]
    pub cmdline: Option<String>,

    /// Number of vCPUs (1 to what KVM supports on this host).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,

    /// Guest memory: a number with an optional K, M or G suffix (binary units);
    /// a plain number means MiB.
    #[arg(long, value_name = "SIZE", default_value = "128M")]
    pub memory: String,

    /// Where the guest's serial console goes.
    #[arg(long, value_name = "TARGET", default_value = "stdio", value_parser = SerialParser)]
    pub serial: SerialTarget,

    /// A virtio-net device: `tap=NAME[,mac=MAC][,script=PATH]` attaches to (or, with
    /// CAP_NET_ADMIN, creates) tap NAME; `fd=N[,mac=MAC]` adopts tap fd N, opened by
    /// whoever started sandvmm with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR. `script=PATH` forks
    /// a helper before the sandbox that runs `PATH NAME up` once the tap is open and
    /// `PATH NAME down` at exit. Repeat for more devices.
    #[arg(long, value_name = "SPEC")]
    pub net: Vec<String>,

    /// A virtio-blk device: `path=FILE` (a raw image or a block device, locked with
    /// flock) or `fd=N` (one handed in), with `readonly=on` and `id=ID` (the serial
    /// the guest sees, at most 20 bytes). Repeat for more disks: /dev/vda, /dev/vdb, ...
    #[arg(long, value_name = "SPEC")]
    pub disk: Vec<String>,

    /// Do not adapt the guest to an emulating host KVM (kvm_pvm): no extra kernel
    /// command-line items, no CPUID changes.
    #[arg(long)]
    pub no_host_adapt: bool,

    /// The seccomp sandbox: what a call outside the policy does.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SandboxMode::Enforce)]
    pub sandbox: SandboxMode,

    /// Which rules apply (docs/SANDBOX.md).
    #[arg(long, value_enum, value_name = "PROFILE", default_value_t = SandboxProfile::Default)]
    pub sandbox_profile: SandboxProfile,

    /// The BPF layout of the filters.
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = SandboxOptimize::Priority)]
    pub sandbox_optimize: SandboxOptimize,

    /// A policy file to use instead of the built-in one (format: docs/SANDBOX.md).
    #[arg(long, value_name = "FILE")]
    pub sandbox_policy: Option<PathBuf>,

    /// Adds the escape demonstration port (0x5ec): the guest can make sandvmm attempt
    /// forbidden actions (execve, open, socket, ...) to show the sandbox stopping them.
    /// For demonstrations and tests only.
    #[arg(long)]
    pub demo_escape: bool,

    /// Where a snapshot of the running guest goes: DIR (created if needed) gets the
    /// files `state` and `memory`, opened (and truncated) at start-up. A snapshot is
    /// taken on --snapshot-on-serial or on SIGUSR1; sandvmm then exits 0 unless
    /// --snapshot-continue is given.
    #[arg(long, value_name = "DIR")]
    pub snapshot_to: Option<PathBuf>,

    /// Takes the snapshot the first time the guest's serial output contains TEXT
    /// (for example its shell prompt).
    #[arg(long, value_name = "TEXT", requires = "snapshot_to")]
    pub snapshot_on_serial: Option<String>,

    /// Keeps the guest running after a snapshot.
    #[arg(long, requires = "snapshot_to")]
    pub snapshot_continue: bool,

    /// Starts from the snapshot in DIR instead of booting a kernel. The memory size,
    /// vCPUs and guest state come from the snapshot; give --net and --disk again, in
    /// the same order and matching the snapshot's devices.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["kernel", "initrd", "cmdline", "cpus", "memory"]
    )]
    pub restore: Option<PathBuf>,

    /// The jail around the seccomp filters: `on` closes inherited fds, drops root for
    /// the jail user, enters new user, mount, IPC, UTS, network and cgroup namespaces
    /// with an empty root, drops every capability and applies Landlock; `off` for hosts
    /// that cannot (docs/SANDBOX.md).
    #[arg(long, value_enum, value_name = "SWITCH", default_value_t = Switch::On)]
    pub jail: Switch,

    /// Who sandvmm becomes when started as root: a user name or UID:GID (default: the
    /// dedicated `sandvmm` user).
    #[arg(long, value_name = "USER|UID:GID")]
    pub jail_user: Option<String>,

    /// Also write each call blocked in `--sandbox trap` mode to FILE, as one JSON object
    /// per line (syscall, number, ABI, thread, arguments, mode, policy identity). The
    /// file is created (or truncated) before any filter; docs/SANDBOX.md has the format.
    #[arg(long, value_name = "FILE")]
    pub sandbox_report: Option<PathBuf>,

    /// The most detailed messages to log: `error`, `warn`, `info` or `debug`.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Warn)]
    pub log_level: LogLevel,

    /// Append log messages to FILE (created with mode 0600) instead of stderr. The line
    /// saying how the run ended always goes to stderr.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Installs trace filters for `sandvmm sandbox profile`.
    #[arg(long, hide = true)]
    pub sandbox_trace: bool,
}

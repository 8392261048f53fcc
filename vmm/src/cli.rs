//! The command line: running a VM (the default) and the `sandbox` subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sandvmm: a small KVM virtual machine monitor with a seccomp sandbox built in.
///
/// Boots a Linux kernel (ELF vmlinux or bzImage) or the sandvmm test kernel with a serial
/// console and virtio-net, every thread under its own seccomp filter. The VM ends when
/// the guest resets (Linux: `reboot` with `reboot=k`), powers off or triple-faults;
/// sandvmm then exits with status 0. On a terminal, type Ctrl-A x to quit.
#[derive(Debug, Parser)]
#[command(
    name = "sandvmm",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
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
        /// Thread kind: vmm or vcpu (default: both).
        #[arg(long, value_name = "KIND")]
        thread: Option<String>,
        /// `table` (rules with reasons and priorities), `pfc` (libseccomp's pseudo
        /// filter code) or `bpf` (the raw program, one instruction per line).
        #[arg(long, value_name = "FORMAT", default_value = "table")]
        format: String,
        /// Profile to show: default or strict.
        #[arg(long, value_name = "PROFILE", default_value = "default")]
        profile: String,
        /// BPF layout: priority or tree.
        #[arg(long, value_name = "LAYOUT", default_value = "priority")]
        optimize: String,
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
    Error,
    Warn,
    Info,
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

/// The flags that describe a VM and how to run it.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest kernel: an uncompressed ELF vmlinux (entered through the 64-bit boot
    /// protocol) or a bzImage.
    #[arg(long, value_name = "PATH", required = true)]
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

    /// Where the guest's serial console goes: `stdio` (input from stdin, raw mode on a
    /// terminal), `file:PATH` (output only), or `none`.
    #[arg(long, value_name = "TARGET", default_value = "stdio")]
    pub serial: String,

    /// A virtio-net device: `tap=NAME[,mac=MAC]` attaches to (or, with CAP_NET_ADMIN,
    /// creates) tap NAME; `fd=N[,mac=MAC]` adopts tap fd N, opened by whoever started
    /// sandvmm with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR. Repeat for more devices.
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

    /// Seccomp sandbox: `enforce` kills the process on any call outside the policy,
    /// `trap` names the call and thread and exits with status 100, `log` allows it and
    /// has the kernel log it, `off` installs nothing.
    #[arg(long, value_name = "MODE", default_value = "enforce")]
    pub sandbox: String,

    /// `default`, or `strict` for deployments that hand every tap in as an fd
    /// (`--net fd=`): no taps opened by name, no helper process (docs/SANDBOX.md).
    #[arg(long, value_name = "PROFILE", default_value = "default")]
    pub sandbox_profile: String,

    /// BPF layout: `priority` (linear, ordered by measured syscall frequency) or
    /// `tree` (a binary search over syscall numbers).
    #[arg(long, value_name = "LAYOUT", default_value = "priority")]
    pub sandbox_optimize: String,

    /// A policy file to use instead of the built-in one (format: docs/SANDBOX.md).
    #[arg(long, value_name = "FILE")]
    pub sandbox_policy: Option<PathBuf>,

    /// Adds the escape demonstration port (0x5ec): the guest can make sandvmm attempt
    /// forbidden actions (execve, open, socket, ...) to show the sandbox stopping them.
    /// For demonstrations and tests only.
    #[arg(long)]
    pub demo_escape: bool,

    /// The jail around the seccomp filters: `on` closes inherited fds, drops root for
    /// the jail user, enters new user, mount, IPC, UTS, network and cgroup namespaces
    /// with an empty root, drops every capability and applies Landlock; `off` for hosts
    /// that cannot (docs/SANDBOX.md).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::On)]
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

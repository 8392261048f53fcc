//! [`run`]: the whole life of a VM from a checked configuration. What must happen
//! before the VM is built, in order (the launcher's fds noted, the jail user resolved,
//! the script helper forked while the process is single-threaded, the stop signals
//! blocked, the policy loaded, the `--sandbox-report` file opened), then the build and
//! [`crate::Vmm::run`].

use std::os::fd::AsRawFd;

use sandbox::jail::{self, Identity};
use sandbox::Sandbox;

use crate::config::{self, VmConfig};
use crate::event_loop::Outcome;
use crate::host::Host;
use crate::signals::StopSignals;
use crate::{builder, helper, snapshot, Confinement, Error, JailSetup};

/// Builds and runs a VM. `trace_boot` prints start-up timestamps on stderr.
pub fn run(config: &VmConfig, trace_boot: bool) -> Result<Outcome, Error> {
    // Before anything is opened: which fds are the launcher's.
    let jail = match config.jail.enabled {
        false => None,
        true => Some(JailSetup {
            inherited_fds: jail::fds::inherited(),
            user: if jail::identity::started_as_root() {
                config.jail.user.resolve()?
            } else {
                Identity::current()
            },
        }),
    };
    let host = Host::detect(config.host_adapt);
    // The helper is forked first, while this process is single-threaded and holds no
    // KVM fd, tap or guest memory.
    let scripts: Vec<helper::Script> = config
        .nets
        .iter()
        .filter_map(|net| match (&net.backend, &net.script) {
            (config::NetBackend::Tap(tap), Some(path)) => Some(helper::Script {
                path: path.clone(),
                tap: tap.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut helper = if scripts.is_empty() {
        None
    } else {
        let jail_user = jail.as_ref().map(|j| j.user);
        Some(helper::Helper::spawn(scripts, jail_user)?)
    };
    // From here on a stop signal waits for the event loop, which ends the run cleanly
    // (signals.rs); the helper, forked before, keeps the default dispositions.
    let signals = StopSignals::block(config.snapshot.is_some()).map_err(Error::StopSignals)?;
    // A bad policy file is an error before anything is built.
    let sb = &config.sandbox;
    let sandbox = Sandbox::load(sb.mode, sb.profile, sb.optimize, sb.policy_file.as_deref())?;
    if sb.mode == sandbox::Mode::Trap {
        sandbox::report::install_trap_handler().map_err(Error::TrapHandler)?;
    }
    let report = sb.report_file.as_deref().map(open_report).transpose()?;
    if let Some(file) = &report {
        sandbox::report::set_report_file(file.as_raw_fd(), &report_context(sb))?;
    }
    // A snapshot to restore is read and checked before anything is built; the guest's
    // shape (memory, vCPUs) is its.
    let loaded = config.restore.as_deref().map(snapshot::load).transpose()?;
    let restored = loaded
        .as_ref()
        .map(|l| config.restored(&l.snapshot.machine));
    let config = restored.as_ref().unwrap_or(config);
    let vmm = builder::build(config, host, trace_boot, loaded)?;
    if sb.mode == sandbox::Mode::Trap {
        crate::serial_flush::flush_on_trap(vmm.serial.clone())?;
    }
    if let Some(helper) = helper.as_mut() {
        for index in 0..helper.len() {
            helper.run(index, helper::Phase::Up)?;
        }
    }
    // Said only once the VM is built, so that a bad-input error stays a single line.
    if let Some(notice) = host.notice() {
        log::info!("{notice}");
    }
    vmm.run(
        Confinement {
            sandbox,
            jail,
            report,
        },
        helper,
        signals,
    )
}

/// Creates (or truncates) the `--sandbox-report` file; it is written only from the
/// trap handler, which needs no path once it is open.
fn open_report(path: &std::path::Path) -> Result<std::fs::File, Error> {
    std::fs::File::create(path).map_err(|source| Error::Report {
        path: path.display().to_string(),
        source,
    })
}

/// The JSON members every report carries: the mode, and which policy judged the call
/// (its file, or `builtin`, and the SHA-256 of its text).
fn report_context(sb: &config::SandboxConfig) -> String {
    let (file, text) = match &sb.policy_file {
        Some(path) => (
            serde_json::Value::from(path.display().to_string()),
            std::fs::read(path).unwrap_or_default(),
        ),
        None => (
            "builtin".into(),
            sandbox::policy::BUILTIN.as_bytes().to_vec(),
        ),
    };
    let sha256 = sandbox::policy::text_sha256(&text);
    let policy = serde_json::json!({
        "file": file,
        "sha256": sha256,
        "profile": match sb.profile {
            sandbox::Profile::Default => "default",
            sandbox::Profile::Strict => "strict",
        },
    });
    let mode = match sb.mode {
        sandbox::Mode::Enforce => "enforce",
        sandbox::Mode::Trap => "trap",
        sandbox::Mode::Log => "log",
        sandbox::Mode::Off => "off",
        sandbox::Mode::Trace => "trace",
    };
    format!("\"mode\":\"{mode}\",\"policy\":{policy}")
}

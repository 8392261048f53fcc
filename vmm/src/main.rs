//! The `sandvmm` command: parse the command line, run the VM (or a `sandbox`
//! subcommand), turn the result into one line on stderr and an exit status.
//!
//! Exit status: 0 when the guest ended itself (reset, power-off, triple fault), the
//! user quit, or a stop signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT) ended the run; 1 for any error; 2 for a bad command line; 100 after a call blocked in
//! `--sandbox trap` mode; a process killed by the enforcing sandbox dies of SIGSYS
//! (a shell shows 159). `--help` lists them too (`cli.rs`, `EXIT_STATUS_HELP`).

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use vmm::cli::{Cli, Command, SandboxCommand};
use vmm::event_loop::Outcome;
use vmm::sandbox_cmd;
use vmm::vcpu::StopReason;

/// Set to 1 to print start-up timestamps (CLOCK_MONOTONIC) on stderr, for benchmarks.
const TRACE_ENV: &str = "SANDVMM_TRACE_BOOT";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "sandvmm: {}; see sandvmm --help",
                clap_summary(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Sandbox(cmd)) => sandbox_command(cmd),
        None => run_vm(cli.run),
    }
}

fn run_vm(args: vmm::cli::RunArgs) -> ExitCode {
    let args_log = (args.log_level.filter(), args.log_file.clone());
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sandvmm: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = vmm::logger::init(args_log.0, args_log.1.as_deref()) {
        eprintln!("sandvmm: {}", chain(&e));
        return ExitCode::FAILURE;
    }
    let trace = std::env::var_os(TRACE_ENV).is_some_and(|v| v == "1");
    match vmm::run(&config, trace) {
        Ok(Outcome::Guest(reason)) => {
            eprintln!("sandvmm: {}", describe(reason));
            ExitCode::SUCCESS
        }
        Ok(Outcome::UserQuit) => {
            eprintln!("sandvmm: quit from the console");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Signal(signal)) => {
            eprintln!("sandvmm: stopped by {}", vmm::signals::name(signal));
            ExitCode::SUCCESS
        }
        Ok(Outcome::Snapshot) => ExitCode::SUCCESS,
        Ok(Outcome::VcpuFailed { index, error }) => {
            eprintln!("sandvmm: vcpu{index}: {}", chain(&error));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sandvmm: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn sandbox_command(cmd: SandboxCommand) -> ExitCode {
    let result = match cmd {
        SandboxCommand::Show { layers: true, .. } => {
            print!("{}", sandbox_cmd::layers());
            Ok(())
        }
        SandboxCommand::Verify { policy } => {
            return match sandbox_cmd::verify(policy.as_deref()) {
                Ok((text, agrees)) => {
                    print!("{text}");
                    ExitCode::from(if agrees { 0 } else { 1 })
                }
                Err(e) => {
                    eprintln!("sandvmm: {}", chain(&e));
                    ExitCode::FAILURE
                }
            };
        }
        SandboxCommand::Show {
            thread,
            format,
            profile,
            optimize,
            policy,
            ..
        } => sandbox_cmd::show(
            thread.map(Into::into),
            format,
            profile.into(),
            optimize.into(),
            policy.as_deref(),
        )
        .map(|out| {
            let _ = std::io::stdout().write_all(&out);
        }),
        SandboxCommand::Profile {
            out,
            merge,
            run_args,
        } => sandbox_cmd::profile(&run_args, merge.as_ref()).and_then(|profiled| {
            let sandbox_cmd::Profiled {
                table,
                summary,
                outside,
            } = profiled;
            eprintln!("sandvmm: profiled: {summary}");
            eprintln!("sandvmm: outside the policy: {outside}");
            match out {
                Some(path) => std::fs::write(&path, table).map_err(|source| {
                    sandbox_cmd::SandboxCmdError::Write {
                        path: path.display().to_string(),
                        source,
                    }
                }),
                None => {
                    print!("{table}");
                    Ok(())
                }
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandvmm: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn describe(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Reset => "the guest reset the machine",
        StopReason::PowerOff => "the guest powered off",
        StopReason::TripleFault => "the guest triple-faulted (a reset on real hardware)",
    }
}

/// An error and its sources on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Clap's multi-line error as one line: the message and its indented details, without
/// the usage block and tips that follow the first blank line.
fn clap_summary(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.trim().trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ")
}

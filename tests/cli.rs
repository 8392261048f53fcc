//! The command line itself, without booting anything: every enum-valued flag rejects a
//! bad value with status 2 and clap's one line, `--help` lists the possible values, the
//! exit statuses and the README's flags, and `--version` names the git commit.

use sandvmm_harness as common;

use std::process::Command;
use std::time::Duration;

use common::*;

const QUICK: Duration = Duration::from_secs(30);

/// `sandvmm ARGS` run to completion: (status, stdout, stderr).
fn sandvmm_output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(sandvmm()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_bad_enum_value_is_a_one_line_status_2_error() {
    // (flag, bad value, what the line must say). No kernel is booted: clap rejects
    // the value before sandvmm opens anything.
    let run_flags = [
        (
            "--sandbox",
            "paranoid",
            "invalid value 'paranoid' for '--sandbox <MODE>'",
        ),
        (
            "--sandbox",
            "trace",
            "[possible values: enforce, trap, log, off]",
        ),
        (
            "--sandbox-profile",
            "lax",
            "[possible values: default, strict]",
        ),
        (
            "--sandbox-optimize",
            "fast",
            "[possible values: priority, tree]",
        ),
        ("--jail", "maybe", "[possible values: on, off]"),
        ("--serial", "tcp:1234", "invalid --serial \"tcp:1234\""),
        (
            "--serial",
            "file:",
            "expected stdio, file:PATH[,max=SIZE] or none",
        ),
        ("--serial", "file:/tmp/x,max=lots", "max= takes a size"),
    ];
    for (flag, value, needle) in run_flags {
        run(&["--kernel", "/nonexistent", flag, value], QUICK).assert_one_line_error(2, needle);
    }
    let show_flags = [
        ("--thread", "gpu", "[possible values: vmm, vcpu]"),
        ("--format", "xml", "[possible values: table, pfc, bpf]"),
        ("--profile", "lax", "[possible values: default, strict]"),
        ("--optimize", "fast", "[possible values: priority, tree]"),
    ];
    for (flag, value, needle) in show_flags {
        run(&["sandbox", "show", flag, value], QUICK).assert_one_line_error(2, needle);
    }
}

#[test]
fn help_lists_the_possible_values() {
    let (code, short, _) = sandvmm_output(&["-h"]);
    assert_eq!(code, Some(0));
    for values in [
        "[possible values: enforce, trap, log, off]",
        "[possible values: default, strict]",
        "[possible values: priority, tree]",
        "[possible values: stdio, file:PATH[,max=SIZE], none]",
        "[possible values: on, off]",
    ] {
        assert!(short.contains(values), "-h lacks {values:?}:\n{short}");
    }
    let (code, show, _) = sandvmm_output(&["sandbox", "show", "-h"]);
    assert_eq!(code, Some(0));
    for values in [
        "[possible values: vmm, vcpu]",
        "[possible values: table, pfc, bpf]",
    ] {
        assert!(
            show.contains(values),
            "sandbox show -h lacks {values:?}:\n{show}"
        );
    }
}

#[test]
fn long_help_matches_the_readme() {
    let (code, help, _) = sandvmm_output(&["--help"]);
    assert_eq!(code, Some(0));
    for needle in [
        "tap=NAME[,mac=MAC][,script=PATH]",
        "`PATH NAME up`",
        "fd=N[,mac=MAC]",
        "--jail <SWITCH>",
        "--jail-user",
        "default 64M",
        "Exit status:",
        "  2    a bad command line",
        "  100  a call blocked in --sandbox trap",
        "  159  ",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    // Every flag the README's Usage block names is one --help describes.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let usage = readme
        .split("## Usage")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("README.md has a Usage block");
    let flags: Vec<&str> = usage
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.len() > 15, "{flags:?}");
    let mut helps = help.clone();
    for sub in ["show", "verify", "profile"] {
        helps.push_str(&sandvmm_output(&["sandbox", sub, "--help"]).1);
    }
    for flag in flags {
        // Help lines read `  --flag <V>` or `  -h, --help`.
        let described = helps.lines().flat_map(|line| line.split(", ")).any(|part| {
            part.trim_start().strip_prefix(flag).is_some_and(|rest| {
                !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            })
        });
        assert!(
            described,
            "README's Usage names {flag}, which no --help describes"
        );
    }
}

#[test]
fn version_names_the_commit() {
    let (code, out, _) = sandvmm_output(&["--version"]);
    assert_eq!(code, Some(0));
    let version = env!("CARGO_PKG_VERSION");
    let commit = out
        .trim_end()
        .strip_prefix(&format!("sandvmm {version} ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version printed {out:?}"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash == "unknown" || (hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    // Built from a git checkout (as the tests are), it is HEAD's commit.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|h| h.status.success());
    if let Some(head) = head {
        assert_eq!(hash, String::from_utf8_lossy(&head.stdout).trim());
    }
}

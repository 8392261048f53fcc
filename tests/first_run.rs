//! The README's two set-up commands (tests/run.sh, tests/demo.sh) on a machine that
//! lacks what they need: before doing anything, each says in one line what is missing
//! and how to get it (tests/preflight.sh).
//!
//! They run from a copy of the scripts in a scratch folder that holds nothing else but
//! Cargo.toml (for its rust-version): had the preflight let a run through, its next step
//! (tests/install-deps.sh) would not be there to install anything, and the test fails
//! on what it printed. Nothing here installs or builds.

use sandvmm_harness as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The preflight reads a few files; it never takes long.
const QUICK: Duration = Duration::from_secs(60);

const SCRIPTS: [&str; 2] = ["tests/run.sh", "tests/demo.sh"];

/// A scratch folder with the two scripts, the preflight and Cargo.toml, readable by
/// everyone (the non-root run is another user's).
fn copy_of_the_scripts(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    std::fs::create_dir(dir.0.join("tests")).unwrap();
    for file in [
        "tests/run.sh",
        "tests/demo.sh",
        "tests/preflight.sh",
        "Cargo.toml",
    ] {
        std::fs::copy(root().join(file), dir.0.join(file)).unwrap();
    }
    dir
}

/// Every path under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(tree(&path));
        }
        all.push(path);
    }
    all.sort();
    all
}

/// The workspace's rust-version, as Cargo.toml gives it.
fn rust_version() -> String {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("no rust-version in Cargo.toml")
        .to_string()
}

/// Whether this host has everything but what a test takes away: /dev/kvm and Debian 12
/// (where the other preflight lines would join the one under test).
fn host_passes_the_other_checks() -> bool {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    Path::new("/dev/kvm").exists()
        && os.lines().any(|l| l == "ID=debian")
        && os.lines().any(|l| l == "VERSION_CODENAME=bookworm")
}

/// `script` of the copy in `dir`, as root, with only `path` to find programs and
/// `home` as HOME (nothing else of this environment: no CARGO_HOME, no rustup).
fn as_root_with(dir: &Scratch, script: &str, path: &str, home: &Path) -> Finished {
    let mut cmd = Command::new(dir.0.join(script));
    cmd.env_clear().env("PATH", path).env("HOME", home);
    output_within(&mut cmd, QUICK)
}

/// Asserts `run` printed exactly the one preflight `line` and nothing else, and failed.
fn assert_only(run: &Finished, line: &str) {
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(run.stderr, format!("{line}\n"), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
}

#[test]
fn without_root_each_command_says_so_in_one_line_and_does_nothing() {
    if !is_root() {
        skip("needs root to run the scripts as the ordinary user sandvmm-test");
        return;
    }
    uid_of(TEST_USER);
    let dir = copy_of_the_scripts("first-run-user");
    let before = tree(&dir.0);
    for script in SCRIPTS {
        let mut cmd = as_test_user(dir.0.join(script).to_str().unwrap());
        cmd.current_dir("/");
        let run = output_within(&mut cmd, QUICK);
        assert_only(&run, &format!("sandvmm: run as root: sudo {script}"));
    }
    assert_eq!(tree(&dir.0), before, "the runs left files behind");
}

#[test]
fn without_cargo_each_command_says_which_cargo_it_needs() {
    if !is_root() {
        skip("needs root: as another user the root check comes first");
        return;
    }
    if ["/usr/bin/cargo", "/bin/cargo"]
        .iter()
        .any(|c| Path::new(c).exists())
    {
        skip("a cargo in /usr/bin: a PATH without cargo cannot be made here");
        return;
    }
    if !host_passes_the_other_checks() {
        skip("no /dev/kvm or not Debian 12: more than the cargo line would be printed");
        return;
    }
    let dir = copy_of_the_scripts("first-run-no-cargo");
    // An empty HOME: no ~/.cargo/bin, where rustup puts cargo, to fall back on.
    let home = Scratch::new("first-run-empty-home");
    let want = rust_version();
    for script in SCRIPTS {
        let run = as_root_with(&dir, script, "/usr/bin:/bin", &home.0);
        assert_only(
            &run,
            &format!(
                "sandvmm: cargo {want} or newer is needed (found none): \
                 install it with rustup https://rustup.rs"
            ),
        );
    }
}

/// A fake `cargo` at `bin`/cargo that reports `version`.
fn fake_cargo(bin: &Path, version: &str) -> PathBuf {
    std::fs::create_dir_all(bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\necho 'cargo {version} (fake 2020-01-01)'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    cargo
}

#[test]
fn an_old_cargo_is_named_and_a_new_one_in_dot_cargo_is_found() {
    if !is_root() {
        skip("needs root: as another user the root check comes first");
        return;
    }
    if !host_passes_the_other_checks() {
        skip("no /dev/kvm or not Debian 12: more than the cargo line would be printed");
        return;
    }
    let dir = copy_of_the_scripts("first-run-old-cargo");
    let want = rust_version();
    let old = Scratch::new("first-run-old-cargo-bin");
    let cargo = fake_cargo(&old.0, "1.60.0");
    let path = format!("{}:/usr/bin:/bin", old.0.display());
    let home = Scratch::new("first-run-home");
    let run = as_root_with(&dir, "tests/run.sh", &path, &home.0);
    assert_only(
        &run,
        &format!(
            "sandvmm: cargo {want} or newer is needed (found 1.60.0, {}): \
             update it with rustup update, or install rustup https://rustup.rs",
            cargo.display()
        ),
    );
    // rustup's cargo in ~/.cargo/bin, which sudo's PATH leaves out, is found and new
    // enough: the preflight passes, and the run goes on to install-deps.sh, which the
    // copy does not have.
    let rustup_home = Scratch::new("first-run-rustup-home");
    fake_cargo(&rustup_home.0.join(".cargo/bin"), "1.999.0");
    let run = as_root_with(&dir, "tests/run.sh", "/usr/bin:/bin", &rustup_home.0);
    assert!(!run.stderr.contains("sandvmm:"), "{run:?}");
    assert!(
        run.stderr.contains("tests/install-deps.sh: No such file"),
        "{run:?}"
    );
    assert_eq!(run.status.code(), Some(127), "{run:?}");
}

#[test]
fn without_dev_kvm_each_command_says_so() {
    if !is_root() {
        skip("needs root to make a mount namespace without /dev/kvm");
        return;
    }
    let dir = copy_of_the_scripts("first-run-no-kvm");
    for script in SCRIPTS {
        // A private /dev (an empty tmpfs) hides /dev/kvm from this run only.
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs none /dev && exec \"$0\"")
            .arg(dir.0.join(script));
        let run = output_within(&mut cmd, QUICK);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(
            lines.contains(
                &"sandvmm: /dev/kvm is missing: run on a host with KVM (load kvm_intel or \
                  kvm_amd; in a VM, enable nested virtualisation)"
            ),
            "{run:?}"
        );
        assert!(lines.iter().all(|l| l.starts_with("sandvmm: ")), "{run:?}");
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
    }
}

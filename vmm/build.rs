//! Puts the git commit sandvmm is built from into `SANDVMM_GIT_COMMIT`, which
//! `sandvmm --version` prints: the short hash, with `-dirty` when the work tree has
//! uncommitted changes, or `unknown` outside a git checkout (a source tarball).
//!
//! Cargo reruns this only when HEAD moves (`.git/HEAD`, and the branch ref it points
//! to), so an ordinary rebuild does not rerun it; the `-dirty` mark is therefore as of
//! the last commit or checkout.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = commit != "unknown"
        && git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=SANDVMM_GIT_COMMIT={commit}{suffix}");
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch_head(Path::new(&git_dir));
    }
    // Without any rerun-if-changed line Cargo would rerun this on every change in the
    // package; with only the ones above, outside git it would never rerun.
    println!("cargo:rerun-if-changed=build.rs");
}

/// Registers HEAD and the ref it points to. A worktree's HEAD lives in its own git
/// directory, while branch refs live in the common one (`git rev-parse
/// --git-common-dir`); a packed ref changes `packed-refs` instead.
fn watch_head(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    // git prints a relative common dir relative to where it ran: this package.
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(|d| Path::new(env!("CARGO_MANIFEST_DIR")).join(d))
        .unwrap_or_else(|| git_dir.to_path_buf());
    let branch = std::fs::read_to_string(&head)
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| common.join(r.trim())));
    // Cargo reruns a script on every build while a watched file is missing, and a
    // branch ref lives either in its own file or in packed-refs: watch those that exist.
    for path in branch.into_iter().chain([common.join("packed-refs")]) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `git ARGS` run in this package's directory: its trimmed output, or `None` when git
/// is missing or fails (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

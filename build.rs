//! Rebuild when a built-in role changes (include_dir cannot see files added to roles/), and give
//! `--version` the revision and target triple the binary was built from, so that an issue report
//! tells which binary ran.
//!
//! Nothing here may fail the build: without git, outside a checkout or with an unreadable value,
//! the revision is left out of the version line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=roles");
    // Image builds have no .git in their context: the Dockerfile passes its REVISION this way.
    println!("cargo:rerun-if-env-changed=ROLECALL_REVISION");

    let revision = match std::env::var("ROLECALL_REVISION") {
        Ok(given) => usable(&given),
        Err(_) => git_revision(),
    };
    let target = std::env::var("TARGET").unwrap_or_default();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let built = match revision {
        Some(revision) => format!("rev {revision}, {target}"),
        None => target,
    };
    println!("cargo:rustc-env=ROLECALL_VERSION={version} ({built})");
}

/// A revision fit for the version line: one printable word without the line's comma. "unknown"
/// is what the Dockerfile passes when it was not told. A full commit hash is cut to 12 digits:
/// still unambiguous, and short enough to read.
fn usable(revision: &str) -> Option<String> {
    let revision = revision.trim();
    let word = !revision.is_empty()
        && revision.len() <= 64
        && revision.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if !word || revision == "unknown" {
        return None;
    }
    if revision.len() > 12 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(revision[..12].to_string());
    }
    Some(revision.to_string())
}

/// The short hash of HEAD when this package is the top of a git checkout (not a crate unpacked
/// inside some other repository), after asking cargo to run this again when HEAD moves.
fn git_revision() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let toplevel = git(&dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // HEAD moves by a checkout (HEAD itself changes) or a commit (the branch's ref changes: a
    // loose ref file, or packed-refs once packed; HEAD's reflog, where kept, records both). In a
    // worktree these live in different git directories; `--git-path` knows where. A path that
    // does not exist is not watched, since cargo would then rerun this script on every build.
    let mut watched = vec!["HEAD".to_string(), "logs/HEAD".to_string()];
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    watched.push("packed-refs".to_string());
    for name in watched {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(&dir, &["rev-parse", "--short", "HEAD"]).and_then(|rev| usable(&rev))
}

/// The trimmed output of a successful git command in `dir`.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let stdout = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !stdout.trim().is_empty()).then(|| stdout.trim().to_string())
}

//! Pack the built-in roles into the binary, and give `--version` the revision and target triple
//! the binary was built from, so that an issue report tells which binary ran.
//!
//! Each directory of roles/ becomes one deflate stream (src/role/builtin.rs unpacks the one role a
//! run asks for): the roles are 64 KB of text that compress to a third, and the binary is the
//! whole init-container image. A role that cannot be packed (unreadable, not UTF-8, a name that is
//! not a plain word) fails the build. Nothing else here may: without git, outside a checkout or
//! with an unreadable value, the revision is left out of the version line.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // A directory: cargo reruns this when any file under it changes, is added or is removed.
    println!("cargo:rerun-if-changed=roles");
    pack_roles();
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

/// Writes `$OUT_DIR/roles.rs`: the table `PACKED` of the built-in roles, sorted by name, each
/// with its files (sorted by name) as records `u32 LE name length, name, u32 LE text length,
/// text`, deflated into `$OUT_DIR/roles/NAME.deflate`. Directories and files whose names start
/// with a dot are left out, as are subdirectories of a role (a role is one flat directory, like a
/// ConfigMap mount).
fn pack_roles() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("roles");
    fs::create_dir_all(&out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    let mut table = String::from("static PACKED: &[Packed] = &[\n");
    for (role, dir) in entries(&manifest.join("roles"), true) {
        let mut archive = Vec::new();
        for (file, path) in entries(&dir, false) {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("built-in role file {}: {e}", path.display()));
            for field in [file.as_bytes(), text.as_bytes()] {
                let len = u32::try_from(field.len()).expect("a built-in role file under 4 GiB");
                archive.extend_from_slice(&len.to_le_bytes());
                archive.extend_from_slice(field);
            }
        }
        let packed = out.join(format!("{role}.deflate"));
        fs::write(&packed, miniz_oxide::deflate::compress_to_vec(&archive, 10))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", packed.display()));
        let path = packed.to_str().expect("OUT_DIR is UTF-8");
        writeln!(
            table,
            "    Packed {{ name: {role:?}, size: {}, deflate: include_bytes!({path:?}) }},",
            archive.len()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let rs = out.with_file_name("roles.rs");
    fs::write(&rs, table).unwrap_or_else(|e| panic!("cannot write {}: {e}", rs.display()));
}

/// The entries of `dir` that are directories (`dirs`) or regular files, by name, without the
/// hidden ones. Each name must be a plain word: it becomes a `--role` value or a template key.
fn entries(dir: &Path, dirs: bool) -> Vec<(String, PathBuf)> {
    let read = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut found = Vec::new();
    for entry in read {
        let entry = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", entry.path().display()));
        let Ok(name) = entry.file_name().into_string() else {
            panic!(
                "{}: a built-in role name must be UTF-8",
                entry.path().display()
            );
        };
        if name.starts_with('.')
            || (if dirs {
                !kind.is_dir()
            } else {
                !kind.is_file()
            })
        {
            continue;
        }
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        assert!(
            plain,
            "{}: not a plain name (letters, digits, - _ .)",
            entry.path().display()
        );
        found.push((name, entry.path()));
    }
    found.sort();
    found
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

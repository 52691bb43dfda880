//! `--dry-run`: each file that would be written, with a unified diff against what is there.
//! Writes nothing, and fails where the render would fail to write.

use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context as _, bail};
use similar::algorithms::{Capture, Replace, myers};
use similar::udiff::UnifiedHunkHeader;

use crate::names::check_file_name;
use crate::write::{Change, Existing, OutFile, Owner, change, existing};

/// What `--dry-run` prints: each file with a unified diff against what is there. Writes nothing.
pub fn preview(
    dir: &Path,
    files: &[OutFile],
    owner: Option<Owner>,
) -> anyhow::Result<(String, Vec<(String, Change)>)> {
    let mut out = String::new();
    let mut changes = Vec::new();
    let dir_exists = out_dir_exists(dir)?;
    for file in files {
        check_file_name(&file.name)?;
        let path = dir.join(&file.name);
        let shown = path.display();
        // A missing output directory is fine: nothing is there yet.
        let existing = if dir_exists {
            existing(dir, &file.name, None)?
        } else {
            Existing::Missing
        };
        let change = change(&existing, file, owner);
        let new = String::from_utf8_lossy(&file.content);
        let mode_change = |old: u32| {
            if old == file.mode {
                String::new()
            } else {
                format!(" (mode {old:04o} -> {:04o})", file.mode)
            }
        };
        match (&existing, change) {
            (_, Change::Unchanged) => out.push_str(&format!("unchanged: {shown}\n")),
            (Existing::Missing, _) => {
                out.push_str(&format!("create: {shown} (mode {:04o})\n", file.mode));
                out.push_str(&unified_diff("", &new, "/dev/null", &shown.to_string()));
            }
            (Existing::File { content, mode, .. }, _) => {
                let mode_change = mode_change(*mode);
                out.push_str(&format!("update: {shown}{mode_change}\n"));
                let old = String::from_utf8_lossy(content);
                let name = shown.to_string();
                out.push_str(&unified_diff(&old, &new, &name, &name));
            }
            (Existing::Unread { size, mode }, _) => {
                let mode_change = mode_change(*mode);
                out.push_str(&format!(
                    "update: {shown}{mode_change} (the old file, {size} bytes, is not shown: \
                     too large or unreadable)\n"
                ));
                out.push_str(&unified_diff("", &new, "/dev/null", &shown.to_string()));
            }
            (Existing::Other(what), _) => {
                out.push_str(&format!(
                    "replace: {shown} ({what}; replaced, not followed)\n"
                ));
                out.push_str(&unified_diff("", &new, "/dev/null", &shown.to_string()));
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        changes.push((file.name.clone(), change));
    }
    Ok((out, changes))
}

/// Whether `dir` exists; an error where `write_all` could not create or use it (a file or a
/// dangling symlink on the way), so a dry run fails where the render would.
fn out_dir_exists(dir: &Path) -> anyhow::Result<bool> {
    let mut path = dir;
    loop {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Ok(path == dir),
            Ok(_) if path == dir => bail!("output {} is not a directory", dir.display()),
            Ok(_) => bail!(
                "cannot create output directory {}: {} is not a directory",
                dir.display(),
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    bail!(
                        "cannot create output directory {}: {} is a symlink to nothing",
                        dir.display(),
                        path.display()
                    );
                }
                match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => path = parent,
                    _ => return Ok(false),
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot inspect {}", path.display()));
            }
        }
    }
}

/// A unified diff of two texts by line, as `diff -u` prints it (3 lines of context, and the
/// `\ No newline at end of file` marker). Calls Myers directly: similar's `TextDiff` front end
/// picks the algorithm at run time, so it links every algorithm for every line type and costs
/// about 200 KiB of the static binary for the same output.
fn unified_diff(old: &str, new: &str, from: &str, to: &str) -> String {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let mut hook = Replace::new(Capture::new());
    let Ok(()) = myers::diff(
        &mut hook,
        &old_lines,
        0..old_lines.len(),
        &new_lines,
        0..new_lines.len(),
    );
    let mut out = String::new();
    for hunk in similar::group_diff_ops(hook.into_inner().into_ops(), 3) {
        if hunk.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str(&format!("--- {from}\n+++ {to}\n"));
        }
        out.push_str(&format!("{}\n", UnifiedHunkHeader::new(&hunk)));
        for change in hunk
            .iter()
            .flat_map(|op| op.iter_changes(&old_lines, &new_lines))
        {
            out.push_str(&format!("{}{}", change.tag(), change.value()));
            if !change.value().ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::file;

    #[test]
    fn preview_shows_a_diff_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x=1\n").unwrap();
        let (text, _) = preview(dir.path(), &[file("a", "x=2\n"), file("b", "y\n")], None).unwrap();
        assert!(text.contains("-x=1\n+x=2\n"), "{text}");
        assert!(text.contains("create: "), "{text}");
        assert!(!dir.path().join("b").exists());
    }

    /// A file whose mode alone changes is an update naming both modes; one whose mode stays says
    /// nothing of it.
    #[test]
    fn preview_names_a_mode_change() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [("a", 0o600), ("b", 0o644)] {
            fs::write(dir.path().join(name), "x\n").unwrap();
            fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        let files = [file("a", "x\n"), file("b", "y\n")];
        let (text, changes) = preview(dir.path(), &files, None).unwrap();
        let shown = |name: &str| dir.path().join(name).display().to_string();
        assert!(
            text.contains(&format!("update: {} (mode 0600 -> 0644)\n", shown("a"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("update: {}\n", shown("b"))),
            "{text}"
        );
        assert_eq!(
            changes,
            [("a".into(), Change::Updated), ("b".into(), Change::Updated)]
        );
    }

    #[test]
    fn unified_diff_prints_what_similar_text_diff_prints() {
        let long: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let edited = long
            .replace("line 5\n", "line five\n")
            .replace("line 30\n", "");
        let cases = [
            ("", ""),
            ("", "a\nb\n"),
            ("a\nb\n", ""),
            ("x=1\n", "x=2\n"),
            ("a\nb\nc\n", "a\nB\nc\nd\n"),
            ("no newline", "no newline either"),
            ("a\nlast", "a\nlast\n"),
            ("a\nlast\n", "a\nlast"),
            ("same\n", "same\n"),
            (long.as_str(), edited.as_str()),
            (edited.as_str(), long.as_str()),
        ];
        for (old, new) in cases {
            let want = similar::TextDiff::from_lines(old, new)
                .unified_diff()
                .header("old", "new")
                .to_string();
            assert_eq!(
                unified_diff(old, new, "old", "new"),
                want,
                "{old:?} -> {new:?}"
            );
        }
    }
}

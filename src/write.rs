//! Writing the output directory: all files or none, each replaced atomically, nothing outside it.
//!
//! Every changed file is first written in full to a temporary file in the output directory and
//! synced; only when all of them are ready are they renamed over their targets, then the
//! directory is synced. (`Durability::Unsynced` leaves out the syncs, not the renames: each file
//! is still replaced whole, but a power cut may lose what was written.) A failure before the renames leaves every existing file as it was. A
//! rename replaces a planted symlink itself, never what it points at. Temporary files a killed
//! run left behind are removed by the next run.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context as _, bail};
use similar::algorithms::{Capture, Replace, myers};
use similar::udiff::UnifiedHunkHeader;

use crate::names::check_file_name;

/// Prefix and suffix of rolecall's temporary files; the next run removes leftovers.
const TEMP_PREFIX: &str = ".rolecall-";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `write_all` syncs what it writes to disk before and after the renames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync each file before it is renamed into place, and the directory after: the new files
    /// survive a power cut once `write_all` returns.
    Synced,
    /// No fsync: each file is still replaced whole, so a killed rolecall leaves old or new
    /// content; only a crash of the whole machine may lose what was written.
    Unsynced,
}

/// A file to write: its name in the output directory, content and mode.
#[derive(Clone, Debug)]
pub struct OutFile {
    pub name: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Owner of the written files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// What happened to each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// What is at a file's place in the output directory now.
enum Existing {
    Missing,
    File {
        content: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A symlink, fifo, socket: replaced, never followed.
    Other(String),
}

fn existing(dir: &Path, name: &str) -> anyhow::Result<Existing> {
    let path = dir.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        bail!(
            "{} is a directory; rolecall will not replace it with a file",
            path.display()
        );
    }
    if kind.is_symlink() {
        let target = fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return Ok(Existing::Other(format!("a symlink to {target}")));
    }
    if !kind.is_file() {
        return Ok(Existing::Other("not a regular file".into()));
    }
    // O_NOFOLLOW: if a symlink was swapped in since the check, fail rather than read through it.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Existing::File {
        content,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

fn change(existing: &Existing, file: &OutFile, owner: Option<Owner>) -> Change {
    match existing {
        Existing::Missing => Change::Created,
        Existing::File {
            content,
            mode,
            uid,
            gid,
        } => {
            let same_owner = owner.is_none_or(|o| (o.uid, o.gid) == (*uid, *gid));
            if *content == file.content && *mode == file.mode && same_owner {
                Change::Unchanged
            } else {
                Change::Updated
            }
        }
        Existing::Other(_) => Change::Updated,
    }
}

/// Writes every file into `dir` (created if missing), all or nothing.
pub fn write_all(
    dir: &Path,
    files: &[OutFile],
    owner: Option<Owner>,
    durability: Durability,
) -> anyhow::Result<Vec<(String, Change)>> {
    for file in files {
        check_file_name(&file.name)?;
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory {}", dir.display()))?;
    if !dir.is_dir() {
        bail!("output {} is not a directory", dir.display());
    }
    remove_stale_temporaries(dir)?;

    let mut changes = Vec::new();
    let mut staged = Vec::new();
    for file in files {
        let change = change(&existing(dir, &file.name)?, file, owner);
        if change != Change::Unchanged {
            staged.push((stage(dir, file, owner, durability)?, file.name.as_str()));
        }
        changes.push((file.name.clone(), change));
    }
    // Everything is on disk in full; now swap it all in.
    for (temp, name) in staged {
        let target = dir.join(name);
        temp.persist(&target)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    if durability == Durability::Synced {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync output directory {}", dir.display()))?;
    }
    Ok(changes)
}

/// Writes one file's new content to a temporary file beside its target (synced if asked).
fn stage(
    dir: &Path,
    file: &OutFile,
    owner: Option<Owner>,
    durability: Durability,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let context = || format!("cannot write {}", dir.join(&file.name).display());
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .with_context(context)?;
    temp.write_all(&file.content).with_context(context)?;
    let handle = temp.as_file();
    handle
        .set_permissions(Permissions::from_mode(file.mode))
        .with_context(context)?;
    if let Some(Owner { uid, gid }) = owner {
        std::os::unix::fs::fchown(handle, Some(uid), Some(gid)).with_context(|| {
            format!(
                "cannot give {} to {uid}:{gid}",
                dir.join(&file.name).display()
            )
        })?;
    }
    if durability == Durability::Synced {
        handle.sync_all().with_context(context)?;
    }
    Ok(temp)
}

/// Removes temporary files a killed run left behind, so they cannot pile up or be mistaken for
/// output.
fn remove_stale_temporaries(dir: &Path) -> anyhow::Result<()> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list output directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(entry.path()).with_context(|| {
                format!(
                    "cannot remove stale temporary file {}",
                    entry.path().display()
                )
            })?;
        }
    }
    Ok(())
}

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
            existing(dir, &file.name)?
        } else {
            Existing::Missing
        };
        let change = change(&existing, file, owner);
        let new = String::from_utf8_lossy(&file.content);
        match (&existing, change) {
            (_, Change::Unchanged) => out.push_str(&format!("unchanged: {shown}\n")),
            (Existing::Missing, _) => {
                out.push_str(&format!("create: {shown} (mode {:04o})\n", file.mode));
                out.push_str(&unified_diff("", &new, "/dev/null", &shown.to_string()));
            }
            (Existing::File { content, mode, .. }, _) => {
                let mode_change = if *mode == file.mode {
                    String::new()
                } else {
                    format!(" (mode {mode:04o} -> {:04o})", file.mode)
                };
                out.push_str(&format!("update: {shown}{mode_change}\n"));
                let old = String::from_utf8_lossy(content);
                let name = shown.to_string();
                out.push_str(&unified_diff(&old, &new, &name, &name));
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
    use std::os::unix::fs::symlink;

    fn file(name: &str, content: &str) -> OutFile {
        OutFile {
            name: name.into(),
            content: content.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn writes_then_leaves_unchanged_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let changes = write_all(
            &out,
            &[file("a", "1"), file("b", "2")],
            None,
            Durability::Synced,
        )
        .unwrap();
        assert!(changes.iter().all(|(_, c)| *c == Change::Created));
        let inode = fs::metadata(out.join("a")).unwrap().ino();
        let changes = write_all(
            &out,
            &[file("a", "1"), file("b", "3")],
            None,
            Durability::Synced,
        )
        .unwrap();
        assert_eq!(
            changes,
            [
                ("a".into(), Change::Unchanged),
                ("b".into(), Change::Updated)
            ]
        );
        assert_eq!(
            fs::metadata(out.join("a")).unwrap().ino(),
            inode,
            "unchanged file was rewritten"
        );
        assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "3");
    }

    #[test]
    fn applies_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = file("run.sh", "#!/bin/sh\n");
        f.mode = 0o755;
        write_all(dir.path(), &[f], None, Durability::Synced).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("run.sh")).unwrap().mode() & 0o7777,
            0o755
        );
    }

    #[test]
    fn planted_symlinks_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        symlink(&victim, out.join("a")).unwrap();
        write_all(&out, &[file("a", "new")], None, Durability::Synced).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(out.join("a")).unwrap().is_file());
    }

    #[test]
    fn stale_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".rolecall-abc123.tmp"), "half").unwrap();
        write_all(dir.path(), &[file("a", "1")], None, Durability::Synced).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_directory_in_the_way_fails_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "old").unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        assert!(
            write_all(
                dir.path(),
                &[file("a", "new"), file("b", "x")],
                None,
                Durability::Synced
            )
            .is_err()
        );
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "old");
    }

    #[test]
    fn preview_shows_a_diff_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x=1\n").unwrap();
        let (text, _) = preview(dir.path(), &[file("a", "x=2\n"), file("b", "y\n")], None).unwrap();
        assert!(text.contains("-x=1\n+x=2\n"), "{text}");
        assert!(text.contains("create: "), "{text}");
        assert!(!dir.path().join("b").exists());
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

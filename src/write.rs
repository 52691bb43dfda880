//! Writing the output directory: all files or none, each replaced atomically, nothing outside it.
//!
//! Renders of one directory are serialised by a lock on the directory itself (`flock`), so a
//! temporary file found while holding it belongs to a writer that is gone, and is removed. Every
//! changed file is first written in full to a temporary file in the output directory and synced.
//! Then each file it replaces is set aside (a hard link, or a copy where links fail), so that a
//! rename that fails midway (a subPath mount, an immutable file) can be undone: the files already
//! renamed are put back and the error names what failed. Only then the directory is synced.
//! (`Durability::Unsynced` leaves out the syncs, not the renames: each file is still replaced
//! whole, but a power cut may lose what was written.) A rename replaces a planted symlink
//! itself, never what it points at.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use crate::names::check_file_name;

/// Prefix of rolecall's own files in the output directory; the suffix says which kind.
const TEMP_PREFIX: &str = ".rolecall-";
/// A file being written, renamed over its target when all are ready.
const TEMP_SUFFIX: &str = ".tmp";
/// An old file set aside while the new ones are renamed in.
const OLD_SUFFIX: &str = ".old";
/// How long a render waits for another render of the same directory to finish.
const LOCK_WAIT: Duration = Duration::from_secs(60);

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
pub(crate) enum Existing {
    Missing,
    File {
        content: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A regular file that is replaced without being read: another size than the new one (or,
    /// for a preview, too large to show), or unreadable (a mode without read permission for
    /// this user).
    Unread {
        size: u64,
        mode: u32,
    },
    /// A symlink, fifo, socket: replaced, never followed.
    Other(String),
}

/// The largest old file a preview reads to show a diff.
const PREVIEW_READ: u64 = 16 << 20;

/// What is at `name` in `dir`. With `same_size` (the new content's length), content is read only
/// when the size matches: a file of another size is replaced unread, however large it is.
/// Without, as for a preview, it is read up to 16 MiB.
pub(crate) fn existing(
    dir: &Path,
    name: &str,
    same_size: Option<usize>,
) -> anyhow::Result<Existing> {
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
    let unread = Existing::Unread {
        size: meta.len(),
        mode: meta.mode() & 0o7777,
    };
    let read_up_to = match same_size {
        Some(size) if meta.len() != size as u64 => return Ok(unread),
        Some(size) => size as u64,
        None if meta.len() > PREVIEW_READ => return Ok(unread),
        None => PREVIEW_READ,
    };
    // O_NOFOLLOW: if a symlink was swapped in since the check, fail rather than read through it.
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(unread),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut content = Vec::new();
    Read::by_ref(&mut file)
        .take(read_up_to + 1)
        .read_to_end(&mut content)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Existing::File {
        content,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

pub(crate) fn change(existing: &Existing, file: &OutFile, owner: Option<Owner>) -> Change {
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
        Existing::Unread { .. } | Existing::Other(_) => Change::Updated,
    }
}

/// A changed file, staged: its new content in a temporary file, and where the old one is kept
/// while the renames run.
struct Staged<'a> {
    name: &'a str,
    temp: Option<tempfile::NamedTempFile>,
    /// The file it replaces, set aside; `None` when there was none.
    old: Option<PathBuf>,
    renamed: bool,
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
    let _lock = lock(dir, LOCK_WAIT)?;
    remove_stale_files(dir)?;

    let mut changes = Vec::new();
    let mut staged = Vec::new();
    for file in files {
        let existing = existing(dir, &file.name, Some(file.content.len()))?;
        let change = change(&existing, file, owner);
        if change != Change::Unchanged {
            staged.push(Staged {
                name: &file.name,
                temp: Some(stage(dir, file, owner, durability)?),
                old: None,
                renamed: false,
            });
        }
        changes.push((file.name.clone(), change));
    }
    if staged.is_empty() {
        return Ok(changes);
    }
    // Everything new is on disk in full. Keep every old file it replaces, then swap it all in;
    // any failure puts back what was already swapped.
    let result = set_aside(dir, &mut staged).and_then(|()| swap_in(dir, &mut staged));
    if let Err(e) = result {
        return Err(match undo(dir, &mut staged) {
            Ok(()) => e,
            Err(undo) => e.context(format!(
                "and putting the old files back failed too: {undo:#}"
            )),
        });
    }
    for old in staged.iter().filter_map(|s| s.old.as_ref()) {
        // Left behind, the next run removes it.
        let _ = fs::remove_file(old);
    }
    if durability == Durability::Synced {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync output directory {}", dir.display()))?;
        #[cfg(test)]
        DIRECTORY_SYNCS.with(|n| n.set(n.get() + 1));
    }
    Ok(changes)
}

/// Holds the directory's lock, waiting up to `wait` for another render of it to finish. The
/// lock is on the directory itself, so it needs no file and works on a read-only `--out`.
fn lock(dir: &Path, wait: Duration) -> anyhow::Result<File> {
    let handle = File::open(dir)
        .with_context(|| format!("cannot open output directory {}", dir.display()))?;
    let start = Instant::now();
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(handle),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another rolecall has been writing {} for {}s; it holds the directory's lock",
                dir.display(),
                wait.as_secs()
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", dir.display()));
            }
        }
    }
}

/// Keeps each file about to be replaced under a name of its own: a hard link, or where the file
/// system refuses one, a copy.
fn set_aside(dir: &Path, staged: &mut [Staged]) -> anyhow::Result<()> {
    for file in staged.iter_mut() {
        let target = dir.join(file.name);
        if fs::symlink_metadata(&target).is_err() {
            continue;
        }
        let kept = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(OLD_SUFFIX)
            .make_in(dir, |old| {
                fs::hard_link(&target, old).or_else(|link| {
                    copy_aside(&target, old).map_err(|copy| {
                        io::Error::other(format!("no hard link ({link}), no copy ({copy})"))
                    })
                })
            })
            .with_context(|| format!("cannot keep {} while it is replaced", target.display()))?;
        let old = kept
            .into_temp_path()
            .keep()
            .with_context(|| format!("cannot keep {} while it is replaced", target.display()))?;
        file.old = Some(old);
    }
    Ok(())
}

/// A copy of a regular file or a symlink, for file systems without hard links.
fn copy_aside(target: &Path, old: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(target)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(target)?, old)
    } else if meta.is_file() {
        let mut from = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(target)?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.mode() & 0o7777)
            .open(old)?;
        io::copy(&mut from, &mut to).map(drop)
    } else {
        Err(io::Error::other("it is neither a file nor a symlink"))
    }
}

fn swap_in(dir: &Path, staged: &mut [Staged]) -> anyhow::Result<()> {
    for file in staged.iter_mut() {
        let target = dir.join(file.name);
        let Some(temp) = file.temp.take() else {
            continue;
        };
        temp.persist(&target)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot replace {}", target.display()))?;
        file.renamed = true;
    }
    Ok(())
}

/// Puts back every file already replaced: the kept old file, or nothing where there was none.
fn undo(dir: &Path, staged: &mut [Staged]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for file in staged.iter_mut() {
        let target = dir.join(file.name);
        let put_back = match (&file.old, file.renamed) {
            (Some(old), true) => fs::rename(old, &target),
            (None, true) => fs::remove_file(&target),
            (Some(old), false) => fs::remove_file(old),
            (None, false) => Ok(()),
        };
        if let Err(e) = put_back {
            failed.push(format!("{}: {e}", target.display()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("; ")))
    }
}

#[cfg(test)]
thread_local! {
    /// Unit tests: the number of files `stage` writes before it fails, as a full disk would.
    static STAGE_FAILS_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    /// Unit tests: how often the output directory was synced.
    static DIRECTORY_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Writes one file's new content to a temporary file beside its target (synced if asked). The
/// owner is set before the mode: a chown clears setuid and setgid bits.
fn stage(
    dir: &Path,
    file: &OutFile,
    owner: Option<Owner>,
    durability: Durability,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let context = || format!("cannot write {}", dir.join(&file.name).display());
    #[cfg(test)]
    if STAGE_FAILS_AFTER.with(|left| {
        let now = left.get();
        left.set(now.map(|n| n.saturating_sub(1)));
        now == Some(0)
    }) {
        return Err(io::Error::from(io::ErrorKind::StorageFull)).with_context(context);
    }
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .with_context(context)?;
    temp.write_all(&file.content).with_context(context)?;
    let handle = temp.as_file();
    if let Some(Owner { uid, gid }) = owner {
        std::os::unix::fs::fchown(handle, Some(uid), Some(gid)).with_context(|| {
            format!(
                "cannot give {} to {uid}:{gid}",
                dir.join(&file.name).display()
            )
        })?;
    }
    handle
        .set_permissions(Permissions::from_mode(file.mode))
        .with_context(context)?;
    if durability == Durability::Synced {
        handle.sync_all().with_context(context)?;
    }
    Ok(temp)
}

/// Removes what a killed run left behind (temporary files and old files set aside), so they
/// cannot pile up or be mistaken for output. Called with the directory's lock held: no live
/// writer owns them.
fn remove_stale_files(dir: &Path) -> anyhow::Result<()> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list output directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(TEMP_PREFIX)
            && (name.ends_with(TEMP_SUFFIX) || name.ends_with(OLD_SUFFIX));
        // A symlink or directory named like ours is the operator's: left alone.
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if ours && is_file {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove stale file {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Tests: a file of text with mode 0644.
#[cfg(test)]
pub(crate) fn file(name: &str, content: &str) -> OutFile {
    OutFile {
        name: name.into(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
    fn a_held_lock_is_waited_for_then_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), LOCK_WAIT).unwrap();
        let started = Instant::now();
        let err = lock(dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            format!("{err:#}").contains("it holds the directory's lock"),
            "{err:#}"
        );
        drop(held);
        lock(dir.path(), Duration::ZERO).unwrap();
    }

    #[test]
    fn stale_files_are_removed_only_once_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let stale = [".rolecall-abc123.tmp", ".rolecall-def456.old"];
        for name in stale {
            fs::write(dir.path().join(name), "another writer's").unwrap();
        }
        let held = lock(dir.path(), LOCK_WAIT).unwrap();
        let path = dir.path().to_path_buf();
        let render = std::thread::spawn(move || {
            write_all(&path, &[file("a", "1")], None, Durability::Synced).unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        for name in stale {
            assert!(
                dir.path().join(name).exists(),
                "{name} removed under a held lock"
            );
        }
        assert!(!dir.path().join("a").exists(), "written under a held lock");
        drop(held);
        render.join().unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_copy_keeps_a_file_or_a_symlink_where_a_hard_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        fs::write(&target, "old content").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let old = dir.path().join(".rolecall-x.old");
        copy_aside(&target, &old).unwrap();
        assert_eq!(fs::read_to_string(&old).unwrap(), "old content");
        let mode = fs::metadata(&old).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("a", &link).unwrap();
        let old_link = dir.path().join(".rolecall-y.old");
        copy_aside(&link, &old_link).unwrap();
        assert_eq!(fs::read_link(&old_link).unwrap(), Path::new("a"));
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

    /// A later file that cannot be staged (a full disk) leaves every file as it was and none of
    /// the earlier files' temporaries behind.
    #[test]
    fn a_failure_while_staging_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let old = [file("a", "1"), file("b", "2"), file("c", "3")];
        write_all(dir.path(), &old, None, Durability::Synced).unwrap();
        STAGE_FAILS_AFTER.with(|n| n.set(Some(2)));
        let new = [file("a", "10"), file("b", "20"), file("c", "30")];
        let err = write_all(dir.path(), &new, None, Durability::Synced).unwrap_err();
        STAGE_FAILS_AFTER.with(|n| n.set(None));
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        for (name, content) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(fs::read_to_string(dir.path().join(name)).unwrap(), content);
        }
    }

    /// The directory is synced after the renames, unless durability is left out; and only when
    /// something changed.
    #[test]
    fn the_directory_is_synced_once_after_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = || DIRECTORY_SYNCS.with(|n| n.get());
        let before = syncs();
        write_all(dir.path(), &[file("a", "1")], None, Durability::Synced).unwrap();
        assert_eq!(syncs(), before + 1);
        write_all(dir.path(), &[file("a", "1")], None, Durability::Synced).unwrap();
        assert_eq!(syncs(), before + 1, "nothing changed, nothing to sync");
        write_all(dir.path(), &[file("a", "2")], None, Durability::Unsynced).unwrap();
        assert_eq!(syncs(), before + 1);
    }
}

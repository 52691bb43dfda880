//! Reading a mounted ConfigMap directory: its keys and their bytes.
//!
//! A ConfigMap volume holds `..data -> ..2024_01_01_00_00_00.123` and one symlink per key into
//! `..data`. The kubelet updates it by writing a new timestamped directory and swapping the
//! `..data` link, so rolecall resolves `..data` once and reads every key from that one snapshot;
//! if the snapshot vanishes mid-read (a swap and clean-up), it starts over.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context as _, bail};

/// Keys of a config directory and their contents.
pub type Keys = BTreeMap<String, Vec<u8>>;

/// The link a ConfigMap volume points at its current snapshot.
const DATA_LINK: &str = "..data";
/// How often to start over when a ConfigMap update races the read.
const ATTEMPTS: usize = 5;
/// No config file is this large; a larger "key" is a mistake (a ConfigMap holds 1 MiB in all).
const MAX_KEY_BYTES: u64 = 16 << 20;

/// Reads every key of `dir`: names starting with `..` are skipped, subdirectories are skipped,
/// symlinks are followed only while they stay inside `dir`.
pub fn read(dir: &Path) -> anyhow::Result<Keys> {
    let root = fs::canonicalize(dir)
        .with_context(|| format!("cannot open config dir {}", dir.display()))?;
    if !root.is_dir() {
        bail!("config dir {} is not a directory", dir.display());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read_snapshot(dir, &root) {
            Err(e) if attempt < ATTEMPTS && is_vanished(&e) => continue,
            result => return result,
        }
    }
}

/// A file or directory disappeared under us: the ConfigMap was updated while we read it.
fn is_vanished(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::NotFound)
}

fn read_snapshot(dir: &Path, root: &Path) -> anyhow::Result<Keys> {
    let data = root.join(DATA_LINK);
    // With a `..data` link, read the snapshot it points at now, not each key's own link.
    let source = match fs::symlink_metadata(&data) {
        Ok(_) => {
            let snapshot = fs::canonicalize(&data)
                .with_context(|| format!("cannot resolve {}", dir.join(DATA_LINK).display()))?;
            if !snapshot.starts_with(root) || !snapshot.is_dir() {
                bail!(
                    "{} does not point at a directory inside the config dir",
                    dir.join(DATA_LINK).display()
                );
            }
            snapshot
        }
        Err(_) => root.to_path_buf(),
    };
    let mut keys = Keys::new();
    let entries = fs::read_dir(&source)
        .with_context(|| format!("cannot list config dir {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list config dir {}", dir.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            bail!(
                "config dir {} has a key whose name is not UTF-8: {:?}",
                dir.display(),
                entry.file_name()
            );
        };
        if name.starts_with("..") {
            continue;
        }
        if let Some(bytes) = read_key(root, &entry.path(), &dir.join(&name))? {
            keys.insert(name, bytes);
        }
    }
    Ok(keys)
}

/// Reads one key; `None` for a subdirectory, which is not a key.
fn read_key(root: &Path, path: &Path, shown: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let target = fs::canonicalize(path)
        .with_context(|| format!("cannot resolve config key {}", shown.display()))?;
    if !target.starts_with(root) {
        bail!(
            "config key {} links to {}, outside the config dir; rolecall reads only files inside it",
            shown.display(),
            target.display()
        );
    }
    let meta = fs::metadata(&target)
        .with_context(|| format!("cannot read config key {}", shown.display()))?;
    if meta.is_dir() {
        return Ok(None);
    }
    if !meta.is_file() {
        bail!("config key {} is not a regular file", shown.display());
    }
    let mut bytes = Vec::new();
    fs::File::open(&target)
        .and_then(|f| f.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read config key {}", shown.display()))?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        bail!(
            "config key {} is larger than {} MiB",
            shown.display(),
            MAX_KEY_BYTES >> 20
        );
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Lays out a directory the way the kubelet mounts a ConfigMap.
    fn configmap(keys: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("..2026_11_22_03_31_00.000000001");
        fs::create_dir(&stamp).unwrap();
        for (key, text) in keys {
            fs::write(stamp.join(key), text).unwrap();
            symlink(format!("..data/{key}"), dir.path().join(key)).unwrap();
        }
        symlink(stamp.file_name().unwrap(), dir.path().join(DATA_LINK)).unwrap();
        dir
    }

    #[test]
    fn reads_a_configmap_mount_through_its_links() {
        let dir = configmap(&[("a.cnf", "A"), ("b.cnf", "B")]);
        let keys = read(dir.path()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a.cnf", "b.cnf"]);
        assert_eq!(keys["a.cnf"], b"A");
    }

    #[test]
    fn reads_the_snapshot_data_points_at() {
        let dir = configmap(&[("a.cnf", "old")]);
        let new = dir.path().join("..2026_11_22_04_00_00.000000002");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("a.cnf"), "new").unwrap();
        fs::remove_file(dir.path().join(DATA_LINK)).unwrap();
        symlink(new.file_name().unwrap(), dir.path().join(DATA_LINK)).unwrap();
        // The key's own link still names the old snapshot: only `..data` says which is current.
        fs::remove_file(dir.path().join("a.cnf")).unwrap();
        symlink(
            "..2026_11_22_03_31_00.000000001/a.cnf",
            dir.path().join("a.cnf"),
        )
        .unwrap();
        assert_eq!(read(dir.path()).unwrap()["a.cnf"], b"new");
    }

    #[test]
    fn plain_directories_work_and_skip_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("zoo.cfg"), "x").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let keys = read(dir.path()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["zoo.cfg"]);
    }

    #[test]
    fn links_out_of_the_directory_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path().join("secret"), dir.path().join("key")).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("outside the config dir"),
            "{err:#}"
        );
    }

    #[test]
    fn a_missing_dir_is_an_error_naming_it() {
        let err = read(Path::new("/nonexistent/cm")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/cm"), "{err:#}");
    }

    /// Names starting with `..` are the kubelet's, not keys, even with no `..data` link: a
    /// hostile `..foo` symlink out of the directory is skipped, not refused.
    #[test]
    fn dot_dot_names_are_skipped_without_a_data_link() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("zoo.cfg"), "x").unwrap();
        symlink(outside.path().join("secret"), dir.path().join("..foo")).unwrap();
        fs::write(dir.path().join("..bar"), "y").unwrap();
        let keys = read(dir.path()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["zoo.cfg"]);
    }
}

//! The built-in roles as build.rs packed them from roles/: one deflate stream per role, inflated
//! only for the role a run asks for (a few KB, microseconds).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, ensure};

/// One built-in role: its name (the directory under roles/), the length of its archive and the
/// archive deflated.
struct Packed {
    name: &'static str,
    size: usize,
    deflate: &'static [u8],
}

// `static PACKED: &[Packed]`, sorted by name.
include!(concat!(env!("OUT_DIR"), "/roles.rs"));

/// The names of the built-in roles, sorted.
pub fn names() -> Vec<&'static str> {
    PACKED.iter().map(|p| p.name).collect()
}

/// The files of the built-in role `name` (role.toml and its templates) by file name, or None for
/// no such role.
pub fn files(name: &str) -> Option<anyhow::Result<BTreeMap<String, String>>> {
    let packed = PACKED.iter().find(|p| p.name == name)?;
    Some(unpack(packed).map_err(|e| anyhow!("built-in role {name} is damaged in this binary: {e}")))
}

fn unpack(packed: &Packed) -> anyhow::Result<BTreeMap<String, String>> {
    let archive = miniz_oxide::inflate::decompress_to_vec_with_limit(packed.deflate, packed.size)
        .map_err(|e| anyhow!("cannot inflate it: {e}"))?;
    ensure!(
        archive.len() == packed.size,
        "{} bytes, not {}",
        archive.len(),
        packed.size
    );
    let mut rest = archive.as_slice();
    let mut files = BTreeMap::new();
    while !rest.is_empty() {
        let name = field(&mut rest)?;
        let text = field(&mut rest)?;
        files.insert(name, text);
    }
    Ok(files)
}

/// The next field of an archive: a u32 LE length, then that many bytes of UTF-8.
fn field(rest: &mut &[u8]) -> anyhow::Result<String> {
    let Some((len, tail)) = rest.split_first_chunk::<4>() else {
        bail!("a field is cut short");
    };
    let len = usize::try_from(u32::from_le_bytes(*len))?;
    ensure!(len <= tail.len(), "a field is cut short");
    let (bytes, tail) = tail.split_at(len);
    *rest = tail;
    Ok(String::from_utf8(bytes.to_vec())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every role directory of roles/ is packed, and unpacks to exactly the files on disk.
    #[test]
    fn every_role_unpacks_to_its_files() {
        let roles = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("roles");
        let mut on_disk: Vec<String> = std::fs::read_dir(&roles)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        assert_eq!(names(), on_disk);
        for name in names() {
            let files = files(name).unwrap().unwrap();
            let dir = roles.join(name);
            let mut expected = BTreeMap::new();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let file = entry.file_name().into_string().unwrap();
                expected.insert(file, std::fs::read_to_string(entry.path()).unwrap());
            }
            assert_eq!(files, expected, "{name}");
        }
        assert!(files("no-such-role").is_none());
    }

    #[test]
    fn a_damaged_archive_is_an_error() {
        let archive = [3, 0, 0, 0, b'a', b'b', b'c', 9, 0, 0, 0, b'x'];
        let deflate: &'static [u8] =
            Box::leak(miniz_oxide::deflate::compress_to_vec(&archive, 6).into_boxed_slice());
        let cut = Packed {
            name: "cut",
            size: archive.len(),
            deflate,
        };
        assert!(unpack(&cut).unwrap_err().to_string().contains("cut short"));
        // A whole archive of another length than the table says.
        let whole = [1, 0, 0, 0, b'a', 1, 0, 0, 0, b'x'];
        let deflate: &'static [u8] =
            Box::leak(miniz_oxide::deflate::compress_to_vec(&whole, 6).into_boxed_slice());
        let exact = Packed {
            name: "exact",
            size: whole.len(),
            deflate,
        };
        assert_eq!(unpack(&exact).unwrap()["a"], "x");
        let wrong_size = Packed {
            name: "big",
            size: whole.len() + 1,
            deflate,
        };
        let err = unpack(&wrong_size).unwrap_err().to_string();
        assert_eq!(err, "10 bytes, not 11");
        let garbage = Packed {
            name: "garbage",
            size: 10,
            deflate: b"not deflate",
        };
        assert!(unpack(&garbage).is_err());
    }
}

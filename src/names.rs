//! Name rules and limits of the domain: what Kubernetes allows as a pod, set, Service or
//! namespace name, what a var and an output file may be called, and how large a set may be.
//! Pure; the command line imports these for its range checks, never the reverse.

use anyhow::ensure;

/// Kubernetes ordinals are int32.
pub const MAX_ORDINAL: i64 = i32::MAX as i64;

/// The largest set rolecall accepts: far above any real StatefulSet, small enough that a typo
/// (`--replicas 30000000`) cannot make a render take minutes and gigabytes.
pub const MAX_REPLICAS: i64 = 10_000;

/// Files rolecall writes for every pod, whatever the role: no template may take these names.
pub const RESERVED_FILES: [&str; 2] = ["peers", "rolecall.env"];

/// The name of the pod with this ordinal, as the StatefulSet controller names it.
pub fn pod_name(name: &str, ordinal: u32) -> String {
    format!("{name}-{ordinal}")
}

/// A set's name, and how its pods are named: the text around the ordinal of this pod's own
/// hostname. A StatefulSet names its pods `NAME-ORDINAL`; another naming scheme read with
/// `--ordinal-regex` (`broker-x9`) names its peers alike (`broker-x0`), never rebuilt as
/// `NAME-ORDINAL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetName {
    pub name: String,
    prefix: String,
    suffix: String,
}

impl SetName {
    /// A StatefulSet's pods: `NAME-ORDINAL`.
    pub fn statefulset(name: &str) -> SetName {
        SetName {
            name: name.to_string(),
            prefix: format!("{name}-"),
            suffix: String::new(),
        }
    }

    /// Pods named like `hostname`, whose ordinal is `hostname[ordinal]`.
    pub fn like(name: &str, hostname: &str, ordinal: std::ops::Range<usize>) -> SetName {
        SetName {
            name: name.to_string(),
            prefix: hostname[..ordinal.start].to_string(),
            suffix: hostname[ordinal.end..].to_string(),
        }
    }

    /// The name of the pod with this ordinal.
    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}{ordinal}{}", self.prefix, self.suffix)
    }

    /// The ordinal of a pod of this set from its name (`web-3` -> 3); `None` for another name.
    pub fn ordinal_of(&self, pod: &str) -> Option<u32> {
        let digits = pod.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        canonical.then(|| digits.parse().ok()).flatten()
    }
}

/// An RFC 1123 label: what Kubernetes allows as a pod hostname or a namespace.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS name of labels like `cluster.local`.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A Kubernetes label value: empty, or at most 63 letters, digits, `-`, `_` and `.`, starting and
/// ending with a letter or digit. Nothing in it needs quoting in any format a role writes.
pub fn is_label_value(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// A name that works as a tera identifier and, upper-cased, as a shell variable name.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A file name that stays inside the output directory: one path component, not hidden.
pub fn check_file_name(name: &str) -> anyhow::Result<()> {
    ensure!(!name.is_empty(), "a file name is empty");
    ensure!(
        !name.contains('/') && !name.contains('\0'),
        "file name `{}` contains `/`; templates and output files are single names in one directory",
        name.escape_debug()
    );
    ensure!(
        !name.starts_with('.') && !name.chars().any(char::is_control),
        "file name `{}` starts with `.` or has control characters; use a plain file name",
        name.escape_debug()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_name("cluster.local"));
        assert!(is_dns_name("example.internal"));
        assert!(!is_dns_name("cluster..local"));
        assert!(!is_dns_name("Cluster.local"));
        assert!(!is_dns_name(""));
        assert!(is_dns_label("web-0"));
        assert!(!is_dns_label("web-"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn pod_names_give_their_ordinal_back() {
        let set = SetName::statefulset("etcd");
        assert_eq!(set.ordinal_of("etcd-3"), Some(3));
        assert_eq!(set.ordinal_of(&set.pod(0)), Some(0));
        for other in [
            "etcd-",
            "etcd-03",
            "etcd-x",
            "etcdx-1",
            "web-1",
            "etcd-1.etcd",
            "",
        ] {
            assert_eq!(set.ordinal_of(other), None, "{other}");
        }
        let odd = SetName::like("broker", "broker-x9", 8..9);
        assert_eq!(odd.ordinal_of("broker-x12"), Some(12));
    }

    #[test]
    fn label_values() {
        for good in [
            "",
            "a",
            "europe-west1-b",
            "us_east.1",
            "Z9",
            &"a".repeat(63),
        ] {
            assert!(is_label_value(good), "{good}");
        }
        for bad in [
            "-a",
            "a-",
            ".a",
            "a b",
            "a\nb",
            "a\"b",
            "a'b",
            "a:b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn identifiers() {
        for good in ["a", "_x", "group_id", "A1"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "1x", "a-b", "a.b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn file_names_stay_in_the_directory() {
        for good in ["zoo.cfg", "my id", "a..b"] {
            assert!(check_file_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "../x", ".hidden", "..", "a\nb", "a\0b"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}

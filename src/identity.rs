//! Who this pod is: the set name and ordinal from its hostname, and its index in the set.
//! Pure: the hostname and the settings come in, nothing is read here.

use anyhow::{bail, ensure};
use regex_lite::Regex;

use crate::names::{MAX_ORDINAL, SetName, is_dns_label};

/// This pod's place in its StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The pod name, e.g. `web-2`: the hostname (its first label), never rebuilt.
    pub hostname: String,
    /// The set name, e.g. `web`, and how its pods are named.
    pub set: SetName,
    pub ordinal: u32,
    /// `ordinal - start ordinal`: 0 for the first pod of the set.
    pub index: u32,
}

/// What identity needs to know besides the hostname.
#[derive(Clone, Debug)]
pub struct Shape {
    pub start_ordinal: u32,
    pub replicas: Option<u32>,
}

/// Splits a hostname into set name and ordinal, checks the pod-index label agrees, and places
/// the ordinal in the set.
pub fn resolve(
    hostname: &str,
    regex: &Regex,
    pod_index: Option<u32>,
    shape: &Shape,
) -> anyhow::Result<Identity> {
    let (set, ordinal) = split(hostname, regex)?;
    if let Some(label) = pod_index {
        ensure!(
            label == ordinal,
            "pod-index label says {label} but hostname `{hostname}` says ordinal {ordinal}; \
             they must agree (check --pod-index / ROLECALL_POD_INDEX)"
        );
    }
    let index = index_of(ordinal, shape)?;
    Ok(Identity {
        hostname: set.pod(ordinal),
        set,
        ordinal,
        index,
    })
}

/// Compiles `--ordinal-regex`, with regex-lite: its classes are ASCII (`\d` is `[0-9]`, `\w` is
/// `[0-9A-Za-z_]`, `(?i)` folds ASCII only). A pod hostname is a DNS label, so that matches exactly
/// what Unicode classes would, for a fraction of the static binary the `regex` crate takes.
/// Unicode classes (`\p{..}`) are refused with a message saying so.
pub fn ordinal_regex(pattern: &str) -> anyhow::Result<Regex> {
    // Shown as given: escaping would double every backslash of the pattern.
    let shown = pattern;
    let regex = match Regex::new(pattern) {
        Ok(regex) => regex,
        Err(e) if e.to_string().contains("Unicode") => bail!(
            "--ordinal-regex `{shown}` is not supported: it has a Unicode class (\\p{{..}}), and \
             rolecall matches hostnames, which are ASCII DNS labels, with ASCII classes only; \
             use classes like [a-z], [0-9], \\d or \\w"
        ),
        Err(e) => bail!("--ordinal-regex `{shown}` is not a valid regex: {e}"),
    };
    ensure!(
        regex.capture_names().any(|n| n == Some("ordinal")),
        "--ordinal-regex `{shown}` has no named group `ordinal`; write it like `^(?P<name>.+)-(?P<ordinal>[0-9]+)$`"
    );
    Ok(regex)
}

/// Splits `web-2` (or `web-2.web.ns.svc.cluster.local`) into set `web` and ordinal 2.
pub fn split(hostname: &str, regex: &Regex) -> anyhow::Result<(SetName, u32)> {
    ensure!(
        !hostname.is_empty(),
        "the hostname is empty; pass --hostname NAME-N or set POD_NAME"
    );
    // With setHostnameAsFQDN the kernel hostname is the pod's FQDN; the pod name is its first label.
    let short = hostname.split('.').next().unwrap_or(hostname);
    let shown = hostname.escape_debug();
    let Some(caps) = regex.captures(short) else {
        bail!(
            "hostname `{shown}` has no ordinal suffix (it does not match `{}`); \
             pass --hostname NAME-N, or --ordinal-regex for another naming scheme",
            regex.as_str()
        );
    };
    let Some(digits) = caps.name("ordinal") else {
        bail!(
            "hostname `{shown}`: the `ordinal` group of `{}` did not take part in the match",
            regex.as_str()
        );
    };
    let ordinal = parse_ordinal(digits.as_str()).map_err(|why| {
        anyhow::anyhow!(
            "hostname `{shown}`: ordinal `{}` {why}",
            digits.as_str().escape_debug()
        )
    })?;
    let name = match caps.name("name") {
        Some(name) => name.as_str(),
        None => short[..digits.start()].trim_end_matches(['-', '_', '.']),
    };
    ensure!(
        is_dns_label(short),
        "hostname `{shown}`: pod name `{}` is not a DNS label (lowercase letters, digits and `-`, \
         at most 63 characters), as StatefulSet pod names are",
        short.escape_debug()
    );
    // The set name is also the default Service name, a DNS label of every pod's FQDN.
    ensure!(
        is_dns_label(name),
        "hostname `{shown}`: set name `{}` is not a DNS label (it must start and end with a \
         letter or digit), so no StatefulSet has it; check the hostname or --ordinal-regex",
        name.escape_debug()
    );
    Ok((SetName::like(name, short, digits.range()), ordinal))
}

fn parse_ordinal(digits: &str) -> Result<u32, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a number".into());
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err("has a leading zero; StatefulSet ordinals never do".into());
    }
    match digits.parse::<u32>() {
        Ok(n) if i64::from(n) <= MAX_ORDINAL => Ok(n),
        _ => Err(format!(
            "is larger than {MAX_ORDINAL}, the largest Kubernetes ordinal"
        )),
    }
}

/// Places an ordinal in `[start, start + replicas)`.
pub fn index_of(ordinal: u32, shape: &Shape) -> anyhow::Result<u32> {
    let start = shape.start_ordinal;
    ensure!(
        ordinal >= start,
        "ordinal {ordinal} is below the start ordinal {start}; check --start-ordinal (spec.ordinals.start)"
    );
    if let Some(replicas) = shape.replicas {
        ensure!(
            replicas > 0,
            "the set is scaled to 0 (--replicas 0): it includes no pod, not ordinal {ordinal}"
        );
        let end = u64::from(start) + u64::from(replicas);
        ensure!(
            u64::from(ordinal) < end,
            "ordinal {ordinal} is outside the set: {replicas} replicas from ordinal {start} end at {}; \
             check --replicas and --start-ordinal",
            end - 1
        );
    }
    Ok(ordinal - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_regex() -> Regex {
        ordinal_regex(r"^(?P<name>.+)-(?P<ordinal>[0-9]+)$").unwrap()
    }

    fn shape(start: u32, replicas: Option<u32>) -> Shape {
        Shape {
            start_ordinal: start,
            replicas,
        }
    }

    #[test]
    fn splits_statefulset_hostnames() {
        let re = default_regex();
        for (host, name, ordinal) in [
            ("web-0", "web", 0),
            ("web-12", "web", 12),
            ("my-db-3", "my-db", 3),
            ("zk-2.zk.default.svc.cluster.local", "zk", 2),
            ("a-2147483647", "a", 2147483647),
        ] {
            let (set, got) = split(host, &re).unwrap();
            assert_eq!((set.name.as_str(), got), (name, ordinal), "{host}");
            assert_eq!(set.pod(ordinal), host.split('.').next().unwrap());
        }
    }

    #[test]
    fn rejects_hostnames_that_are_not_pod_names() {
        let re = default_regex();
        for (host, says) in [
            ("", "empty"),
            ("web", "no ordinal suffix"),
            ("-", "no ordinal suffix"),
            ("web-", "no ordinal suffix"),
            ("web-01", "leading zero"),
            ("web-2147483648", "larger than"),
            ("web-99999999999999999999", "larger than"),
            ("Web-1", "not a DNS label"),
            ("wéb-1", "not a DNS label"),
            ("web\n-1", "no ordinal suffix"),
            (&format!("{}-1", "a".repeat(300)), "not a DNS label"),
        ] {
            let err = split(host, &re).unwrap_err().to_string();
            assert!(err.contains(says), "{host:?}: {err}");
        }
    }

    #[test]
    fn a_regex_without_a_name_group_takes_the_prefix() {
        let re = ordinal_regex(r"(?P<ordinal>[0-9]+)$").unwrap();
        let (set, ordinal) = split("kafka-broker-7", &re).unwrap();
        assert_eq!((set.name.as_str(), ordinal), ("kafka-broker", 7));
    }

    #[test]
    fn ordinal_regex_uses_ascii_classes_and_case_folding() {
        for pattern in [
            r"^(?P<name>\w+)-(?P<ordinal>\d+)$",
            r"(?i)^(?P<name>WEB)-(?P<ordinal>\d+)$",
            r"^(?P<name>[[:alpha:]]+)\b-(?P<ordinal>[0-9]+)\s*$",
        ] {
            let re = ordinal_regex(pattern).unwrap();
            let (set, ordinal) = split("web-12", &re).unwrap();
            assert_eq!((set.name.as_str(), ordinal), ("web", 12), "{pattern}");
        }
        // ASCII `\d` does not take other scripts' digits for an ordinal.
        let re = ordinal_regex(r"^(?P<name>.+)-(?P<ordinal>\d+)$").unwrap();
        assert!(split("web-\u{663}", &re).is_err());
    }

    #[test]
    fn unicode_classes_in_the_ordinal_regex_are_refused_with_a_clear_message() {
        for pattern in [
            r"^(?P<name>\pL+)-(?P<ordinal>[0-9]+)$",
            r"^(?P<name>\p{Greek}+)-(?P<ordinal>[0-9]+)$",
            r"^(?P<name>[\p{L}-]+)-(?P<ordinal>\d+)$",
        ] {
            let err = format!("{:#}", ordinal_regex(pattern).unwrap_err());
            assert!(err.contains("is not supported"), "{pattern}: {err}");
            assert!(err.contains("ASCII"), "{pattern}: {err}");
        }
        let err = ordinal_regex(r"^(?P<ordinal>[0-9").unwrap_err().to_string();
        assert!(err.contains("not a valid regex"), "{err}");
        let err = ordinal_regex(r"^(.+)-(\d+)$").unwrap_err().to_string();
        assert!(err.contains("no named group `ordinal`"), "{err}");
        // `(?u)` is accepted but brings no Unicode classes: `\w` stays ASCII.
        let re = ordinal_regex(r"(?u)^(?P<name>\w+)-(?P<ordinal>\d+)$").unwrap();
        assert!(split("w\u{e9}b-1", &re).is_err());
    }

    #[test]
    fn non_ascii_hostnames_are_rejected_not_panicked() {
        for (pattern, host) in [
            (r"^(?P<name>.)(?P<ordinal>.+)$", "w\u{e9}-1"),
            (r"^(?P<name>.+)-(?P<ordinal>[0-9]+)$", "\u{e9}-1"),
            (r"(?P<ordinal>[0-9]+)", "\u{e9}\u{e9}1"),
        ] {
            let re = ordinal_regex(pattern).unwrap();
            assert!(split(host, &re).is_err(), "{pattern} {host}");
        }
    }

    #[test]
    fn index_counts_from_the_start_ordinal() {
        let re = default_regex();
        let id = resolve("web-7", &re, None, &shape(5, Some(3))).unwrap();
        assert_eq!((id.ordinal, id.index), (7, 2));
        assert!(resolve("web-8", &re, None, &shape(5, Some(3))).is_err());
        assert!(resolve("web-4", &re, None, &shape(5, Some(3))).is_err());
        assert_eq!(
            resolve("web-9", &re, None, &shape(5, None)).unwrap().index,
            4
        );
    }

    /// A set scaled to 0 places no pod, and says so: it has no last ordinal to name.
    #[test]
    fn a_set_scaled_to_zero_places_no_pod() {
        let err = resolve("web-0", &default_regex(), None, &shape(0, Some(0)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the set is scaled to 0"), "{err}");
    }

    #[test]
    fn pod_index_must_agree() {
        let re = default_regex();
        assert!(resolve("web-2", &re, Some(2), &shape(0, None)).is_ok());
        let err = resolve("web-2", &re, Some(3), &shape(0, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pod-index"), "{err}");
    }

    /// Another naming scheme names every peer like this pod: the hostname around its ordinal,
    /// never `NAME-ORDINAL` rebuilt.
    #[test]
    fn pods_are_named_like_the_hostname() {
        let re = ordinal_regex(r"^(?P<name>[a-z]+)(?P<ordinal>[0-9]+)$").unwrap();
        let id = resolve("web1", &re, None, &shape(0, Some(3))).unwrap();
        assert_eq!(
            (id.hostname.as_str(), id.set.name.as_str()),
            ("web1", "web")
        );
        assert_eq!(id.set.pod(2), "web2");
        let re = ordinal_regex(r"^(?P<name>.+)-x(?P<ordinal>\d+)$").unwrap();
        let id = resolve("broker-x9", &re, None, &shape(0, None)).unwrap();
        assert_eq!(
            (id.hostname.as_str(), id.set.pod(0)),
            ("broker-x9", "broker-x0".into())
        );
    }

    #[test]
    fn a_set_name_that_is_no_dns_label_is_refused() {
        let err = split("web--1", &default_regex()).unwrap_err().to_string();
        assert!(err.contains("set name `web-` is not a DNS label"), "{err}");
    }
}

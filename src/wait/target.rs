//! What a `--for` target names: a pod of the set (leader, previous, peers=N, all) or an address.

use std::fmt;

use anyhow::{anyhow, bail, ensure};

/// One `--for` value, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// The first pod with the role's leader role.
    Leader(Option<u16>),
    /// The pod with ordinal - 1.
    Previous(Option<u16>),
    /// At least N of the other pods of the set (this pod is never counted).
    Peers(u32, Option<u16>),
    /// Every other pod of the set.
    All(Option<u16>),
    /// Any address.
    Address(Endpoint),
}

impl Spec {
    /// Whether the target names pods of the set, so this pod's identity is needed.
    pub fn names_pods(&self) -> bool {
        !matches!(self, Spec::Address(_))
    }
}

/// `leader`, `previous`, `peers=N`, `all`, each with an optional `:PORT`; else `HOST:PORT`.
pub fn parse_target(text: &str) -> anyhow::Result<Spec> {
    let shown = text.escape_debug();
    ensure!(
        !text.is_empty(),
        "a wait target is empty; use leader, previous, peers=N, all or HOST:PORT"
    );
    let (word, port) = match text.rsplit_once(':') {
        Some((word, port)) if is_keyword(word) => (word, Some(parse_port(port, text)?)),
        _ => (text, None),
    };
    match word {
        "leader" => return Ok(Spec::Leader(port)),
        "previous" => return Ok(Spec::Previous(port)),
        "all" => return Ok(Spec::All(port)),
        _ => {}
    }
    if let Some(n) = word.strip_prefix("peers=") {
        let n = n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            anyhow!(
                "wait target `{shown}`: peers=N needs a whole number N of at least 1 (other pods)"
            )
        })?;
        return Ok(Spec::Peers(n, port));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        bail!(
            "wait target `{shown}` is not a target; use leader, previous, peers=N, all or HOST:PORT"
        );
    };
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(|| {
            anyhow!("wait target `{shown}`: an IPv6 address goes in brackets, like [fd00::1]:5432")
        })?,
        None if host.contains(':') => {
            bail!("wait target `{shown}`: write an IPv6 address in brackets, like [fd00::1]:5432")
        }
        None => host,
    };
    ensure!(
        !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c.is_control()),
        "wait target `{shown}`: `{}` is not a host name or address",
        host.escape_debug()
    );
    Ok(Spec::Address(Endpoint {
        host: host.to_string(),
        port: parse_port(port, text)?,
    }))
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "leader" | "previous" | "all") || word.starts_with("peers=")
}

fn parse_port(port: &str, target: &str) -> anyhow::Result<u16> {
    port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
        anyhow!(
            "wait target `{}`: `{}` is not a port (1-65535)",
            target.escape_debug(),
            port.escape_debug()
        )
    })
}

/// A name (or address) and a port to connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, port: u16) -> Spec {
        Spec::Address(Endpoint {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn targets_parse() {
        for (text, spec) in [
            ("leader", Spec::Leader(None)),
            ("leader:8080", Spec::Leader(Some(8080))),
            ("previous", Spec::Previous(None)),
            ("previous:3307", Spec::Previous(Some(3307))),
            ("peers=2", Spec::Peers(2, None)),
            ("peers=2:2181", Spec::Peers(2, Some(2181))),
            ("all", Spec::All(None)),
            ("all:1", Spec::All(Some(1))),
            ("db.example.com:5432", endpoint("db.example.com", 5432)),
            ("10.0.0.7:80", endpoint("10.0.0.7", 80)),
            ("[fd00::1]:443", endpoint("fd00::1", 443)),
            // A host that happens to be called like a keyword is still a host with a port.
            ("leaders:80", endpoint("leaders", 80)),
        ] {
            assert_eq!(parse_target(text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn bad_targets_say_what_to_write() {
        for (text, says) in [
            ("", "a wait target is empty"),
            ("leader:", "`` is not a port"),
            ("leader:0", "`0` is not a port"),
            ("peers=0", "at least 1"),
            ("peers=-1", "at least 1"),
            ("peers=", "at least 1"),
            ("peers", "is not a target"),
            (
                "db",
                "is not a target; use leader, previous, peers=N, all or HOST:PORT",
            ),
            ("db:65536", "`65536` is not a port"),
            (":80", "`` is not a host"),
            ("a\tb:80", "is not a host"),
            ("fd00::1", "in brackets"),
            ("[fd00::1:80", "in brackets"),
        ] {
            let err = parse_target(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}

//! ZooKeeper's dynamic configuration as data: the `server.N=` lines and version of
//! `/zookeeper/config`, the `zoo.cfg.dynamic.VERSION` files ZooKeeper writes beside zoo.cfg
//! (the version in the name, never inside), and the mark of a data dir that has a history.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail};

/// What the file names of ZooKeeper's dynamic config files start with, beside zoo.cfg.
pub const DYNAMIC_PREFIX: &str = "zoo.cfg.dynamic.";

/// One ZooKeeper server of the ensemble's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    /// `participant` or `observer`.
    pub role: String,
    pub client_port: u16,
}

impl Server {
    /// The spec `reconfig -add` takes and ZooKeeper writes: `server.N=HOST:Q:E:ROLE;PORT`.
    pub fn line(&self) -> String {
        format!(
            "server.{}={}:{}:{}:{};{}",
            self.id, self.host, self.quorum_port, self.election_port, self.role, self.client_port
        )
    }
}

/// A configuration as `/zookeeper/config` holds it: `server.N=` lines and `version=HEX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub version: u64,
    pub servers: BTreeMap<u64, Server>,
}

/// Parses one `server.N=HOST:Q:E[:ROLE][;[ADDR:]PORT]` line (ZooKeeper's own format).
fn parse_server(key: &str, value: &str) -> anyhow::Result<Server> {
    let id: u64 = key
        .strip_prefix("server.")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("`{key}` is not a server id"))?;
    let (quorum, client) = value.split_once(';').unwrap_or((value, ""));
    let parts: Vec<&str> = quorum.trim().split(':').collect();
    let port = |s: &str| -> anyhow::Result<u16> {
        s.trim()
            .parse()
            .map_err(|_| anyhow!("server.{id}: `{s}` is not a port"))
    };
    if parts.len() < 3 || parts.len() > 4 {
        bail!("server.{id}: `{value}` is not HOST:PORT:PORT[:ROLE]");
    }
    let role = parts.get(3).map_or("participant", |r| r.trim()).to_string();
    if role != "participant" && role != "observer" {
        bail!("server.{id}: role `{role}` is neither participant nor observer");
    }
    let client_port = match client.trim() {
        "" => 0,
        c => port(c.rsplit(':').next().unwrap_or(c))?,
    };
    Ok(Server {
        id,
        host: parts[0].trim().to_string(),
        quorum_port: port(parts[1])?,
        election_port: port(parts[2])?,
        role,
        client_port,
    })
}

impl Config {
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let mut config = Config {
            version: 0,
            servers: BTreeMap::new(),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| anyhow!("`{line}` is not KEY=VALUE"))?;
            let key = key.trim();
            if key == "version" {
                config.version = u64::from_str_radix(value.trim(), 16)
                    .map_err(|_| anyhow!("version `{value}` is not hexadecimal"))?;
            } else {
                let server = parse_server(key, value)?;
                config.servers.insert(server.id, server);
            }
        }
        Ok(config)
    }

    /// The dynamic config file's content: the server lines, sorted, no version (ZooKeeper
    /// refuses a version inside the file: it is in the file's name).
    pub fn file_content(&self) -> String {
        let mut lines: Vec<String> = self.servers.values().map(Server::line).collect();
        lines.sort();
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    pub fn file_name(&self) -> String {
        format!("{DYNAMIC_PREFIX}{:x}", self.version)
    }

    /// The voting members' ids.
    pub fn voters(&self) -> Vec<u64> {
        self.servers
            .values()
            .filter(|s| s.role == "participant")
            .map(|s| s.id)
            .collect()
    }
}

/// The newest committed configuration ZooKeeper wrote beside zoo.cfg in `dir`
/// (`zoo.cfg.dynamic.VERSION`; not `.next`, which holds a proposal).
pub fn newest_local(dir: &Path) -> anyhow::Result<Option<Config>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A data dir rolecall may not look into is not an empty one.
        Err(e) => bail!("cannot read the data dir {}: {e}", dir.display()),
    };
    let newest = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let version = u64::from_str_radix(name.strip_prefix(DYNAMIC_PREFIX)?, 16).ok()?;
            Some((version, e.path()))
        })
        .max_by_key(|(version, _)| *version);
    let Some((version, path)) = newest else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let mut config = Config::parse(&text).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
    config.version = version;
    Ok(Some(config))
}

/// ZooKeeper keeps its snapshots and logs in `DATA/version-2`: a server without it has no
/// history (a new or lost volume). A data dir rolecall may not look into is an error, never
/// taken for an empty one.
pub fn has_zookeeper_data(data_dir: &Path) -> anyhow::Result<bool> {
    let path = data_dir.join("version-2");
    match std::fs::metadata(&path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => bail!(
            "cannot look into the data dir {}: {e}; give rolecall the data volume's group",
            data_dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As ZooKeeper 3.8 answers `/zookeeper/config` after a reconfig -add (measured).
    const CONFIG: &str = "server.1=127.0.1.1:2888:3888:participant;127.0.1.1:2181\n\
        server.2=127.0.1.2:2888:3888:participant;127.0.1.2:2181\n\
        server.3=127.0.1.3:2888:3888:participant;127.0.1.3:2181\n\
        server.4=127.0.1.4:2888:3888:observer;0.0.0.0:2181\n\
        version=100000006";

    #[test]
    fn the_config_node_parses_with_its_version() {
        let config = Config::parse(CONFIG).unwrap();
        assert_eq!(config.version, 0x100000006);
        assert_eq!(config.voters(), [1, 2, 3]);
        assert_eq!(config.servers[&4].role, "observer");
        assert_eq!(config.servers[&4].client_port, 2181);
        assert_eq!(config.file_name(), "zoo.cfg.dynamic.100000006");
        assert_eq!(
            config.file_content().lines().nth(3),
            Some("server.4=127.0.1.4:2888:3888:observer;2181")
        );
        assert!(!config.file_content().contains("version"));
    }

    #[test]
    fn malformed_server_lines_are_refused() {
        for bad in [
            "server.x=a:1:2",
            "server.1=a:1",
            "server.1=a:1:2:leader",
            "server.1=a:b:2",
            "version=zz",
            "nonsense",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
        let plain = Config::parse("server.7=h:1:2").unwrap();
        assert_eq!(plain.servers[&7].role, "participant");
        assert_eq!(plain.version, 0);
    }

    #[test]
    fn the_newest_local_file_wins_and_next_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_local(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join("zoo.cfg.dynamic.0"), "server.1=a:1:2\n").unwrap();
        std::fs::write(
            dir.path().join("zoo.cfg.dynamic.100000000"),
            "server.1=a:1:2\nserver.2=b:1:2\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("zoo.cfg.dynamic.next"), "server.9=z:1:2\n").unwrap();
        let newest = newest_local(dir.path()).unwrap().unwrap();
        assert_eq!(newest.version, 0x100000000);
        assert_eq!(newest.voters(), [1, 2]);
        assert!(!has_zookeeper_data(dir.path()).unwrap());
        std::fs::create_dir(dir.path().join("version-2")).unwrap();
        assert!(has_zookeeper_data(dir.path()).unwrap());
        assert_eq!(newest_local(&dir.path().join("absent")).unwrap(), None);
    }
}

//! ZooKeeper's membership by dynamic reconfiguration (ZooKeeper 3.5 and later, role.toml
//! `membership = "zookeeper"`). Before a render, with `--data-dir`: read the ensemble's committed
//! configuration (`sync`, then `/zookeeper/config`) from any serving server; add this pod's
//! server with `reconfig -add` when the ensemble lacks it, remove it and add it again when its
//! volume was lost, and remove servers the set no longer includes; then hand the server exactly
//! the configuration the ensemble committed, as the dynamic config file ZooKeeper itself would
//! write (`zoo.cfg.dynamic.VERSION`). A server is never given a list of servers that the
//! ensemble has not committed, so no two majorities can exist: that is what splits an ensemble
//! whose static `server.N` lines a rolling update changes. Before a pod goes (`rolecall leave`):
//! `reconfig -remove` its server when the set no longer includes it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;

use super::CallError;
use super::zk_client::{CONFIG_NODE, Session};
pub use super::zk_config::{Config, Server, has_zookeeper_data, newest_local};
use super::{Left, includes, retry, stays, tell};
use crate::model::{Cluster, Member, Model};

/// How long one connection may take to open: a pod that is not there must not hold a start.
const CONNECT: Duration = Duration::from_millis(1000);
/// How long one call may take; a reconfig waits for a quorum to commit it.
const CALL: Duration = Duration::from_secs(10);
/// How long a pod that may bootstrap waits for running servers to elect a leader and serve.
const ELECTION_GRACE: Duration = Duration::from_secs(30);

/// What the templates get as `membership`: the dynamic config file to name in zoo.cfg and the
/// superuser digest the servers check reconfigs against.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Dynamic {
    /// `zoo.cfg.dynamic.VERSION`, written beside zoo.cfg.
    pub dynamic_config: String,
    /// `super:BASE64(SHA1(super:PASSWORD))`.
    pub super_digest: String,
    /// The servers of that configuration, one `server.N=...` line each, sorted.
    #[serde(skip)]
    pub servers: String,
}

/// One ZooKeeper pod of the set, as the membership actions see it.
pub struct ZkPod<'a, 'r> {
    /// The pods up to this one at least.
    pub cluster: &'a Cluster<'r>,
    /// spec.replicas now.
    pub set_size: u32,
    pub index: u32,
    pub client_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
    /// Only pods with an index below this bootstrap an ensemble when no server answers.
    pub bootstrap_size: u32,
    /// The password of ZooKeeper's `super` user.
    pub password: String,
    pub timeout: Duration,
    pub quiet: bool,
}

impl ZkPod<'_, '_> {
    fn say(&self, line: &str) {
        tell(self.quiet, line);
    }

    fn model(&self) -> &Model<'_> {
        &self.cluster.model
    }

    fn me(&self) -> &Member {
        &self.cluster.members[self.index as usize]
    }

    /// The server a pod of this set is: its id, FQDN, ports and role.
    fn server_of(&self, member: &Member) -> Server {
        Server {
            id: member.server_id,
            host: member.fqdn.clone(),
            quorum_port: self.quorum_port,
            election_port: self.election_port,
            role: if member.role == "observer" {
                "observer"
            } else {
                "participant"
            }
            .to_string(),
            client_port: self.client_port,
        }
    }

    pub fn digest(&self) -> String {
        super::zk_client::digest("super", &self.password)
    }

    /// The pod a server stands for: by its host's first label, else by its id.
    fn ordinal_of(&self, server: &Server) -> Option<u32> {
        let set = &self.model().set;
        if let Some(ordinal) = server
            .host
            .split('.')
            .next()
            .and_then(|h| set.ordinal_of(h))
        {
            return Some(ordinal);
        }
        let first = self.cluster.members.first()?;
        let offset = first.server_id.checked_sub(u64::from(first.ordinal))?;
        u32::try_from(server.id.checked_sub(offset)?).ok()
    }

    fn in_set(&self, ordinal: u32) -> bool {
        includes(self.model(), self.set_size, ordinal)
    }

    /// The client endpoints of the set's other pods (and of this pod's own server first, for a
    /// preStop, which runs beside it), then of servers the configuration lists beyond them.
    fn endpoints(&self, with_me: bool, listed: Option<&Config>) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .cluster
            .members
            .iter()
            .filter(|m| m.index != self.index)
            .map(|m| m.fqdn.clone())
            .collect();
        if with_me {
            hosts.insert(0, self.me().fqdn.clone());
        }
        for server in listed.iter().flat_map(|c| c.servers.values()) {
            if !hosts.contains(&server.host) && server.id != self.me().server_id {
                hosts.push(server.host.clone());
            }
        }
        hosts
            .into_iter()
            .map(|h| format!("{h}:{}", self.client_port))
            .collect()
    }

    /// A session with the first serving server of `endpoints`, with the committed
    /// configuration read after a `sync`.
    fn find(&self, endpoints: &[String]) -> Option<(Session, Config)> {
        endpoints.iter().find_map(|endpoint| {
            let mut session = Session::open(endpoint, CONNECT, CALL).ok()?;
            session.sync(CONFIG_NODE).ok()?;
            let data = session.get_data(CONFIG_NODE).ok()?;
            let config = Config::parse(&String::from_utf8_lossy(&data)).ok()?;
            Some((session, config))
        })
    }

    /// Runs one reconfig through the first serving server, again while ZooKeeper says "not
    /// now" (another reconfig in progress, no synced quorum yet, a lost connection), until the
    /// deadline; each attempt first reads the configuration, and stops once `done` holds.
    fn reconfigure(
        &self,
        what: &str,
        deadline: Instant,
        endpoints: &[String],
        done: impl Fn(&Config) -> bool,
        joining: Option<&str>,
        leaving: Option<&str>,
    ) -> anyhow::Result<Config> {
        retry(what, deadline, || {
            let Some((mut session, config)) = self.find(endpoints) else {
                return Err(CallError::Unreachable(anyhow!(
                    "no server is serving clients"
                )));
            };
            if done(&config) {
                return Ok(config);
            }
            // A wrong password is refused for good (AuthFailed, or NoAuth on the reconfig).
            session.auth_digest(&format!("super:{}", self.password))?;
            let data = session.reconfig(joining, leaving)?;
            let config = Config::parse(&String::from_utf8_lossy(&data))
                .map_err(|e| CallError::Refused(e.context("the reconfig's answer")))?;
            // Closing is a transaction after the reconfig: once it is answered, the new
            // configuration is in force (zookeeperReconfig.md, "Progress guarantees").
            session.close()?;
            Ok(config)
        })
    }
}

/// Before a render: makes this pod's server a member of the running ensemble (or decides to
/// bootstrap one) and returns the configuration its server starts with, which the caller writes
/// beside zoo.cfg under `Dynamic::dynamic_config`.
pub fn prepare_zookeeper(pod: &ZkPod, data_dir: &Path) -> anyhow::Result<Dynamic> {
    let deadline = Instant::now() + pod.timeout;
    let me = pod.me();
    let mine = pod.server_of(me);
    let local = newest_local(data_dir)?;
    let has_data = has_zookeeper_data(data_dir)?;
    let endpoints = pod.endpoints(false, local.as_ref());
    let may_bootstrap = pod.index < pod.bootstrap_size;
    // A first boot bootstraps at once while no other server runs. One that runs but does not
    // serve may be an ensemble electing a leader, which this pod must join rather than found
    // a second one beside: it waits for it, up to ELECTION_GRACE (servers of a new ensemble
    // whose other pods are still starting never serve alone).
    let waiting_since = Instant::now();
    let found = loop {
        let running = || endpoints.iter().any(|e| Session::listening(e, CONNECT));
        match pod.find(&endpoints) {
            Some((_, config)) => break Some(config),
            None if local.is_some() => break None,
            None if may_bootstrap
                && (waiting_since.elapsed() >= ELECTION_GRACE.min(pod.timeout) || !running()) =>
            {
                break None;
            }
            None if Instant::now() >= deadline => bail!(
                "no ZooKeeper server is serving clients within --timeout; {} (index {}) is \
                 beyond the bootstrap size {} and never starts an ensemble of its own: start \
                 the first pods of the set",
                me.hostname,
                pod.index,
                pod.bootstrap_size
            ),
            None => std::thread::sleep(Duration::from_secs(1)),
        }
    };
    let config = match (found, local) {
        (None, Some(local)) => {
            pod.say(&format!(
                "no server is serving; {} starts from the configuration it last had (version \
                 {:x}, voters {:?})",
                me.hostname,
                local.version,
                local.voters()
            ));
            local
        }
        (None, None) => {
            let servers = pod
                .cluster
                .members
                .iter()
                .take(pod.bootstrap_size as usize)
                .map(|m| {
                    let s = pod.server_of(m);
                    (s.id, s)
                })
                .collect();
            pod.say(&format!(
                "no server is serving; bootstrapping an ensemble of the first {} pods as {}",
                pod.bootstrap_size.min(pod.cluster.members.len() as u32),
                me.hostname
            ));
            Config {
                version: 0,
                servers,
            }
        }
        (Some(config), local) => join(pod, &mine, has_data, config, local, deadline)?,
    };
    Ok(Dynamic {
        dynamic_config: config.file_name(),
        super_digest: pod.digest(),
        servers: config.file_content(),
    })
}

/// The ensemble answers with `config`: prune servers outside the set, then add, keep or
/// replace this pod's server.
fn join(
    pod: &ZkPod,
    mine: &Server,
    has_data: bool,
    config: Config,
    local: Option<Config>,
    deadline: Instant,
) -> anyhow::Result<Config> {
    let me = pod.me();
    let endpoints = pod.endpoints(false, Some(&config));
    let outside: Vec<u64> = config
        .servers
        .values()
        .filter(|s| s.id != mine.id && pod.ordinal_of(s).is_some_and(|o| !pod.in_set(o)))
        .map(|s| s.id)
        .collect();
    let mut config = config;
    if !outside.is_empty() {
        let ids: Vec<String> = outside.iter().map(u64::to_string).collect();
        pod.say(&format!(
            "removing servers {} from the ensemble: the set of {} no longer includes them",
            ids.join(","),
            pod.set_size
        ));
        config = pod.reconfigure(
            &format!("remove servers {}", ids.join(",")),
            deadline,
            &endpoints,
            |c| outside.iter().all(|id| !c.servers.contains_key(id)),
            None,
            Some(&ids.join(",")),
        )?;
    }
    let listed = config.servers.get(&mine.id).cloned();
    match listed {
        Some(ref s) if s == mine && has_data => {
            pod.say(&format!(
                "{} is server {} of the ensemble (configuration version {:x}); starting from \
                 its data",
                me.hostname, mine.id, config.version
            ));
        }
        Some(_) if !has_data => {
            // Its history is gone: as a voter it could help elect a server that lacks
            // transactions it had acknowledged. Removing it first makes every remaining voter
            // of the new configuration acknowledge the removal, so all of them are up to
            // date before it votes again.
            pod.say(&format!(
                "replacing lost server {} ({}): its data dir has no version-2; removing it, \
                 then adding it back",
                mine.id, me.hostname
            ));
            let id = mine.id.to_string();
            pod.reconfigure(
                &format!("remove server {id}"),
                deadline,
                &endpoints,
                |c| !c.servers.contains_key(&mine.id),
                None,
                Some(&id),
            )?;
            config = add(pod, mine, deadline, &endpoints)?;
        }
        Some(_) => {
            pod.say(&format!(
                "server {} is listed with other ports or role; updating it to {}",
                mine.id,
                mine.line()
            ));
            config = add(pod, mine, deadline, &endpoints)?;
        }
        None => {
            pod.say(&format!(
                "joining the ensemble of voters {:?} as server {} ({})",
                config.voters(),
                mine.id,
                mine.role
            ));
            config = add(pod, mine, deadline, &endpoints)?;
        }
    }
    // A server that saw a newer committed configuration than the one read (which follows a
    // sync, so this only happens with another ensemble answering) keeps its own.
    if let Some(local) = local.filter(|l| l.version > config.version) {
        pod.say(&format!(
            "keeping the newer configuration {:x} found beside zoo.cfg",
            local.version
        ));
        return Ok(local);
    }
    Ok(config)
}

fn add(
    pod: &ZkPod,
    mine: &Server,
    deadline: Instant,
    endpoints: &[String],
) -> anyhow::Result<Config> {
    let line = mine.line();
    pod.reconfigure(
        &format!("add {line}"),
        deadline,
        endpoints,
        |c| c.servers.get(&mine.id) == Some(mine),
        Some(&line),
        None,
    )
}

/// `rolecall leave`: removes this pod's server from the ensemble when the set (of
/// `set_size` pods now) no longer includes it.
pub fn leave_zookeeper(pod: &ZkPod) -> anyhow::Result<Left> {
    let me = pod.me();
    let replicas = pod.set_size;
    if let Some(left) = stays(
        me,
        pod.model(),
        replicas,
        pod.quiet,
        "staying in the ensemble",
    ) {
        return Ok(left);
    }
    let deadline = Instant::now() + pod.timeout;
    // Others first: this server may be the leader, whose clients lose their connection when
    // it hands leadership over.
    let mut endpoints = pod.endpoints(false, None);
    endpoints.push(format!("{}:{}", me.fqdn, pod.client_port));
    let config = loop {
        match pod.find(&endpoints) {
            Some((_, config)) => break config,
            None if Instant::now() >= deadline => bail!(
                "leaving: no ZooKeeper server is serving clients within --timeout; server {} \
                 stays listed, and the next pod start that reaches the ensemble removes it",
                me.server_id
            ),
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    if !config.servers.contains_key(&me.server_id) {
        pod.say(&format!(
            "leaving: the ensemble does not list server {}; nothing to remove",
            me.server_id
        ));
        return Ok(Left::NotAMember);
    }
    pod.say(&format!(
        "leaving: the set shrank to {replicas}; removing server {} ({})",
        me.server_id, me.hostname
    ));
    let id = me.server_id.to_string();
    let config = pod.reconfigure(
        &format!("remove server {id}"),
        deadline,
        &endpoints,
        |c| !c.servers.contains_key(&me.server_id),
        None,
        Some(&id),
    )?;
    pod.say(&format!(
        "leaving: removed; the ensemble's voters are {:?} (configuration version {:x})",
        config.voters(),
        config.version
    ));
    Ok(Left::Removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::tests::nowhere;
    use crate::model::test_model;
    use crate::role::Role;

    fn zk_pod<'a, 'r>(cluster: &'a Cluster<'r>, set_size: u32, index: u32) -> ZkPod<'a, 'r> {
        ZkPod {
            cluster,
            set_size,
            index,
            client_port: 2181,
            quorum_port: 2888,
            election_port: 3888,
            bootstrap_size: 3,
            password: "secret".into(),
            timeout: Duration::ZERO,
            quiet: true,
        }
    }

    fn server(id: u64, host: &str) -> Server {
        Server {
            id,
            host: host.into(),
            quorum_port: 2888,
            election_port: 3888,
            role: "participant".into(),
            client_port: 2181,
        }
    }

    #[test]
    fn servers_stand_for_pods_by_host_or_by_id() {
        let role = Role::builtin("zookeeper").unwrap();
        // Ordinals 5 to 9 are servers 6 to 10; the set of 3 is 5, 6 and 7.
        let cluster = test_model(&role, &role.spec.vars, "zk", nowhere("zk"), 5)
            .cluster(5)
            .unwrap();
        let pod = zk_pod(&cluster, 3, 1);
        let mine = pod.server_of(pod.me());
        assert_eq!(
            mine.line(),
            "server.7=zk-6.zk.nowhere.svc.invalid:2888:3888:participant;2181"
        );
        assert_eq!(
            pod.ordinal_of(&server(1, "zk-8.zk.nowhere.svc.invalid")),
            Some(8)
        );
        assert_eq!(pod.ordinal_of(&server(10, "10.0.0.9")), Some(9));
        assert_eq!(
            pod.ordinal_of(&server(0, "10.0.0.5")),
            None,
            "below the offset"
        );
        let inside: Vec<u32> = (0..12).filter(|o| pod.in_set(*o)).collect();
        assert_eq!(inside, [5, 6, 7]);
    }

    #[test]
    fn zookeeper_leave_decides_from_the_set_size_before_any_call() {
        let role = Role::builtin("zookeeper").unwrap();
        let cluster = test_model(&role, &role.spec.vars, "zk", nowhere("zk"), 0)
            .cluster(4)
            .unwrap();
        let leave = |set_size, index| leave_zookeeper(&zk_pod(&cluster, set_size, index));
        assert_eq!(leave(0, 3).unwrap(), Left::Paused);
        assert_eq!(leave(4, 3).unwrap(), Left::Stays);
        assert_eq!(leave(3, 2).unwrap(), Left::Stays);
        let beyond = leave(3, 3).unwrap_err();
        assert!(
            format!("{beyond:#}").contains("no ZooKeeper server is serving clients"),
            "{beyond:#}"
        );
    }
}

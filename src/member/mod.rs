//! Membership actions on day 2, for roles whose cluster does not take a new pod by itself
//! (role.toml `membership = "etcd"`; `"zookeeper"` is in [`zookeeper`]). Before a render, with `--data-dir`: make this pod a member
//! of the running cluster (join on scale-up, replace a member whose volume was lost, set aside
//! the data of a member the cluster no longer has), or bootstrap when no member answers. Before
//! a pod goes (`rolecall leave`, a preStop hook): leave the cluster when the set no longer
//! includes this pod. Every call is bounded; every decision is said in one line.

pub mod etcd;
pub mod zk_client;
pub mod zk_config;
pub mod zookeeper;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail};

use crate::model::{Cluster, Model};
use crate::output::say;
use etcd::{Endpoint, Member};

/// How long one call may take to connect: a pod that is not there must not hold a start.
const CONNECT: Duration = Duration::from_millis(1000);
/// How long one call may take in all.
const CALL: Duration = Duration::from_secs(5);
/// The longest pause between attempts at a refused ("unhealthy cluster") membership change.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a member restarting from its data tries to remove members left behind before it
/// starts anyway: a cluster that lacks quorum without it cannot remove them.
const PRUNE_ON_RESTART: Duration = Duration::from_secs(10);

/// What the templates get as `membership` when this pod bootstraps a cluster or joins a
/// running one: `membership.state` and `membership.initial_cluster`; `null` when it starts from
/// its data as it is.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct Joined {
    /// `new` for a bootstrap, `existing` for a join.
    pub state: &'static str,
    /// etcd's `initial-cluster`: `NAME=PEER-URL,...`.
    pub initial_cluster: String,
}

/// One etcd pod of the set, as the membership actions see it.
pub struct EtcdPod<'a, 'r> {
    /// The pods up to this one at least: the set, or more when this pod is beyond it.
    pub cluster: &'a Cluster<'r>,
    /// spec.replicas now: the pods from the start ordinal on that the set includes.
    pub set_size: u32,
    /// This pod's index in the set.
    pub index: u32,
    pub client_port: u16,
    pub peer_port: u16,
    /// Only pods with an index below this bootstrap a cluster when no member answers.
    pub bootstrap_size: u32,
    /// How long to keep trying: to reach a member, and to get a change accepted.
    pub timeout: Duration,
    /// Say nothing but failures.
    pub quiet: bool,
}

/// One decision, said on stderr unless quiet.
fn tell(quiet: bool, line: &str) {
    if !quiet {
        say(&format!("rolecall: {line}"));
    }
}

/// Whether the set, of `set_size` pods from the start ordinal, includes the pod at `ordinal`.
fn includes(model: &Model, set_size: u32, ordinal: u32) -> bool {
    let start = model.start_ordinal;
    (start..start + set_size).contains(&ordinal)
}

/// What `leave` decides before any call, the same for every role: a set scaled to 0 is a pause
/// and a set that still includes the pod (a restart, a rolling update) keeps it, each said
/// with `staying`. `None`: the set shrank past the pod, which leaves.
fn stays(
    me: &crate::model::Member,
    model: &Model,
    set_size: u32,
    quiet: bool,
    staying: &str,
) -> Option<Left> {
    if set_size == 0 {
        tell(
            quiet,
            &format!("the set is scaled to 0: a pause, {staying}"),
        );
        return Some(Left::Paused);
    }
    if includes(model, set_size, me.ordinal) {
        tell(
            quiet,
            &format!(
                "the set of {set_size} still includes {}: {staying}",
                me.hostname
            ),
        );
        return Some(Left::Stays);
    }
    None
}

impl EtcdPod<'_, '_> {
    fn say(&self, line: &str) {
        tell(self.quiet, line);
    }

    fn model(&self) -> &Model<'_> {
        &self.cluster.model
    }

    fn me(&self) -> &crate::model::Member {
        &self.cluster.members[self.index as usize]
    }

    fn peer_url_of(&self, fqdn: &str) -> String {
        format!("http://{fqdn}:{}", self.peer_port)
    }

    fn my_peer_url(&self) -> String {
        self.peer_url_of(&self.me().fqdn)
    }

    /// The client endpoints of the other pods of the set, then this pod's own (a preStop runs
    /// beside this pod's own etcd).
    fn endpoints(&self, with_me: bool) -> Vec<Endpoint> {
        let mut urls: Vec<String> = self
            .cluster
            .members
            .iter()
            .filter(|m| m.index != self.index)
            .map(|m| format!("http://{}:{}", m.fqdn, self.client_port))
            .collect();
        if with_me {
            urls.insert(0, format!("http://{}:{}", self.me().fqdn, self.client_port));
        }
        urls.iter()
            .map(|url| Endpoint::new(url, CONNECT, CALL))
            .collect()
    }

    /// Whether a member is this pod's: by name, or (not started yet) by peer URL.
    fn is_me(&self, member: &Member) -> bool {
        member.name == self.me().hostname || member.peer_urls.contains(&self.my_peer_url())
    }

    /// The pod of this set a member stands for, by name or (not started yet) by peer URL: its
    /// ordinal. Members of other sets (or added by hand) are `None`.
    fn ordinal_of(&self, member: &Member) -> Option<u32> {
        if !member.name.is_empty() {
            return self.model().set.ordinal_of(&member.name);
        }
        self.ordinal_of_peer_url(member.peer_urls.first()?)
    }

    /// The ordinal of the pod of this set whose peer URL (`http://POD.SERVICE...:PORT`) this is.
    fn ordinal_of_peer_url(&self, url: &str) -> Option<u32> {
        let host = url.split("://").nth(1)?.split([':', '/']).next()?;
        self.model().set.ordinal_of(host.split('.').next()?)
    }

    /// The pod name a member not started yet stands for, from its peer URL.
    fn name_of_peer_url(&self, url: &str) -> Option<String> {
        self.ordinal_of_peer_url(url)
            .map(|o| self.model().set.pod(o))
    }

    fn in_set(&self, ordinal: u32) -> bool {
        includes(self.model(), self.set_size, ordinal)
    }
}

/// A cluster found through one of its members.
struct Found {
    endpoint: Endpoint,
    members: Vec<Member>,
}

/// Asks each endpoint for the member list until one answers; `None` if none does.
fn find(endpoints: &[Endpoint]) -> Option<Found> {
    endpoints.iter().find_map(|endpoint| {
        endpoint.members().ok().map(|members| Found {
            endpoint: endpoint.clone(),
            members,
        })
    })
}

/// What went wrong with a call to a member (etcd's gateway or a ZooKeeper server): whether
/// trying again later may help.
#[derive(Debug)]
pub enum CallError {
    /// Nothing answered: no address, refused, timed out. The member may come up.
    Unreachable(anyhow::Error),
    /// The cluster answered no for now: a membership change too soon after a member
    /// (re)connected (etcd's "unhealthy cluster"), no leader, another reconfig in progress, not
    /// enough started members. Retry.
    Busy(anyhow::Error),
    /// The cluster answered no for good, or did not answer as the server it should be.
    Refused(anyhow::Error),
}

impl CallError {
    pub fn into_inner(self) -> anyhow::Error {
        match self {
            CallError::Unreachable(e) | CallError::Busy(e) | CallError::Refused(e) => e,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) | CallError::Busy(e) | CallError::Refused(e) => {
                write!(f, "{e:#}")
            }
        }
    }
}

/// Retries `call` while the cluster says "not now" (or the member does not answer), until
/// `deadline`.
pub(crate) fn retry<T>(
    what: &str,
    deadline: Instant,
    mut call: impl FnMut() -> Result<T, CallError>,
) -> anyhow::Result<T> {
    let mut pause = Duration::from_millis(100);
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(CallError::Refused(e)) => return Err(e.context(format!("cannot {what}"))),
            Err(e) if Instant::now() + pause >= deadline => {
                return Err(e.into_inner().context(format!(
                    "cannot {what}: the cluster did not accept it in time (--timeout)"
                )));
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Whether the data dir holds a member's data (etcd keeps it in `DATA/member`). A data dir
/// rolecall cannot look into is an error, never "empty": taken for empty, a healthy member
/// would be replaced.
pub fn has_etcd_data(data_dir: &Path) -> anyhow::Result<bool> {
    let member = data_dir.join("member");
    match std::fs::metadata(&member) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot look into etcd's data dir {} (run the init container as the data's \
                 owner, or give the pod an fsGroup)",
                data_dir.display()
            )
        }),
    }
}

/// Moves a data dir the cluster no longer knows aside, in the same volume, never deleting it.
fn set_aside(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = data_dir
        .file_name()
        .ok_or_else(|| anyhow!("data dir {} has no name", data_dir.display()))?;
    let aside = data_dir.with_file_name(format!("{}.removed-{stamp}", name.to_string_lossy()));
    std::fs::rename(data_dir, &aside).with_context(|| {
        format!(
            "cannot move {} aside to {}",
            data_dir.display(),
            aside.display()
        )
    })?;
    Ok(aside)
}

/// Before a render: makes this pod a member of its running cluster, or decides to bootstrap.
/// `None`: start from the data as it is (a restart), the templates decide.
pub fn prepare_etcd(pod: &EtcdPod, data_dir: &Path) -> anyhow::Result<Option<Joined>> {
    let deadline = Instant::now() + pod.timeout;
    let me = pod.me();
    let my_url = pod.my_peer_url();
    let endpoints = pod.endpoints(false);
    let has_data = has_etcd_data(data_dir)?;
    // A pod that may not bootstrap keeps looking for the cluster until the deadline.
    let may_bootstrap = pod.index < pod.bootstrap_size;
    let found = loop {
        match find(&endpoints) {
            Some(found) => break Some(found),
            None if has_data || may_bootstrap => break None,
            None if Instant::now() >= deadline => bail!(
                "no member of the etcd cluster answered within --timeout; {} (index {}) is \
                 beyond the bootstrap size {} and never starts a cluster of its own: start the \
                 first pods of the set",
                me.hostname,
                pod.index,
                pod.bootstrap_size
            ),
            None => std::thread::sleep(Duration::from_secs(1)),
        }
    };
    let Some(Found {
        endpoint,
        mut members,
    }) = found
    else {
        if has_data {
            pod.say(&format!(
                "no other member answers; {} starts from its data",
                me.hostname
            ));
            return Ok(None);
        }
        let first: Vec<String> = pod
            .cluster
            .members
            .iter()
            .take(pod.bootstrap_size as usize)
            .map(|m| format!("{}={}", m.hostname, pod.peer_url_of(&m.fqdn)))
            .collect();
        pod.say(&format!(
            "no member answers; bootstrapping a new cluster of {} as {}",
            first.len(),
            me.hostname
        ));
        return Ok(Some(Joined {
            state: "new",
            initial_cluster: first.join(","),
        }));
    };
    if has_data {
        match members.iter().find(|m| pod.is_me(m)) {
            Some(m) if m.started() => {
                // A member restarting from its data may be one the cluster needs for quorum
                // (members left behind count against it): removing them must not hold its
                // start, or the cluster never gets its quorum back. It tries for a while, and
                // a later start tries again.
                let soon = deadline.min(Instant::now() + PRUNE_ON_RESTART);
                if let Err(e) = prune(pod, &endpoint, &mut members, soon) {
                    pod.say(&format!(
                        "warning: {e:#}; {} starts from its data all the same (the cluster may \
                         need it for quorum) and a later start removes them",
                        me.hostname
                    ));
                }
                return Ok(None);
            }
            _ => {
                let aside = set_aside(data_dir)?;
                pod.say(&format!(
                    "the cluster has no member {} with this data (it left); moved the \
                     data aside to {} and joining anew",
                    me.hostname,
                    aside.display()
                ));
            }
        }
    }
    // From here on the data dir is empty: this pod joins, or joins again.
    prune(pod, &endpoint, &mut members, deadline)?;
    if let Some(old) = members
        .iter()
        .find(|m| m.started() && pod.is_me(m))
        .cloned()
    {
        pod.say(&format!(
            "replacing lost member {} (id {}): its data dir is empty",
            me.hostname,
            etcd::show_id(old.id)
        ));
        retry(
            &format!("remove member {} (id {})", old.name, etcd::show_id(old.id)),
            deadline,
            || endpoint.remove(old.id),
        )?;
        members.retain(|m| m.id != old.id);
    }
    let started = members.iter().filter(|m| m.started()).count();
    if members.iter().any(|m| !m.started() && pod.is_me(m)) {
        pod.say(&format!(
            "{} was added before but has not started; joining the cluster of {started}",
            me.hostname
        ));
    } else {
        pod.say(&format!(
            "joining existing cluster of {started} as {}",
            me.hostname
        ));
        members = retry(
            &format!("add member {} ({my_url})", me.hostname),
            deadline,
            || endpoint.add(&my_url),
        )?;
    }
    Ok(Some(Joined {
        state: "existing",
        initial_cluster: etcd::initial_cluster(&members, |url| pod.name_of_peer_url(url)),
    }))
}

/// Removes the members that stand for pods outside the set (left behind by a preStop that
/// never ran), when the cluster can change.
fn prune(
    pod: &EtcdPod,
    endpoint: &Endpoint,
    members: &mut Vec<Member>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let outside: Vec<(Member, u32)> = members
        .iter()
        .filter_map(|m| {
            let ordinal = pod.ordinal_of(m).filter(|o| !pod.in_set(*o))?;
            Some((m.clone(), ordinal))
        })
        .collect();
    for (member, ordinal) in outside {
        let name = pod.model().set.pod(ordinal);
        pod.say(&format!(
            "removing member {name} (id {}): the set of {} no longer includes it",
            etcd::show_id(member.id),
            pod.set_size
        ));
        retry(&format!("remove member {name}"), deadline, || {
            endpoint.remove(member.id)
        })?;
        members.retain(|m| m.id != member.id);
    }
    Ok(())
}

/// What `leave` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// The set still includes this pod (a restart or a rolling update): nothing to do.
    Stays,
    /// The set is scaled to 0: a pause, the members keep their data and membership.
    Paused,
    /// The cluster does not list this pod (already removed).
    NotAMember,
    Removed,
}

/// `rolecall leave`: removes this pod's member when the set (of `replicas` pods now) no longer
/// includes its ordinal. Leadership is handed to another member first, so writes pause for a
/// leadership transfer rather than an election.
pub fn leave_etcd(pod: &EtcdPod) -> anyhow::Result<Left> {
    let me = pod.me();
    let replicas = pod.set_size;
    if let Some(left) = stays(me, pod.model(), replicas, pod.quiet, "staying a member") {
        return Ok(left);
    }
    let deadline = Instant::now() + pod.timeout;
    let endpoints = pod.endpoints(true);
    let found = loop {
        match find(&endpoints) {
            Some(found) => break found,
            None if Instant::now() >= deadline => bail!(
                "leaving: no member of the etcd cluster answered within --timeout; {} stays \
                 listed, and the next pod start that reaches the cluster removes it",
                me.hostname
            ),
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    let Some(member) = found.members.iter().find(|m| pod.is_me(m)).cloned() else {
        pod.say(&format!(
            "leaving: the cluster does not list {}; nothing to remove",
            me.hostname
        ));
        return Ok(Left::NotAMember);
    };
    pod.say(&format!(
        "leaving: the set shrank to {replicas}; removing member {} (id {})",
        me.hostname,
        etcd::show_id(member.id)
    ));
    hand_over_leadership(pod, &member, &found.members, deadline);
    // Asked of another member when one answers: this one stops serving once removed.
    let others: Vec<Endpoint> = pod.endpoints(false);
    let endpoint = find(&others).map_or(found.endpoint, |f| f.endpoint);
    retry(
        &format!(
            "remove member {} (id {})",
            me.hostname,
            etcd::show_id(member.id)
        ),
        deadline,
        || match endpoint.remove(member.id) {
            // Removed by an earlier, interrupted attempt.
            Err(CallError::Refused(e)) if format!("{e}").contains("member not found") => Ok(()),
            other => other,
        },
    )?;
    Ok(Left::Removed)
}

/// When this member leads, asks it to hand leadership to another started member. Best effort:
/// a removal works without it, only with a longer pause in writes.
fn hand_over_leadership(pod: &EtcdPod, me: &Member, members: &[Member], deadline: Instant) {
    let local = Endpoint::new(
        &format!("http://{}:{}", pod.me().fqdn, pod.client_port),
        CONNECT,
        CALL,
    );
    let Ok((answering, leader)) = local.status() else {
        return;
    };
    if answering != me.id || leader != me.id {
        return;
    }
    let Some(to) = members
        .iter()
        .find(|m| m.id != me.id && m.started())
        .map(|m| m.id)
    else {
        return;
    };
    if retry("hand over leadership", deadline, || local.move_leader(to)).is_ok() {
        pod.say(&format!(
            "leaving: handed leadership to member {}",
            etcd::show_id(to)
        ));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Placement, test_model};
    use crate::role::Role;

    /// Names that resolve nowhere: a call that should not be made fails at once.
    pub(super) fn nowhere(service: &str) -> Placement {
        Placement {
            service: service.into(),
            namespace: "nowhere".into(),
            cluster_domain: "invalid".into(),
        }
    }

    fn etcd_pod<'a, 'r>(cluster: &'a Cluster<'r>, set_size: u32, index: u32) -> EtcdPod<'a, 'r> {
        EtcdPod {
            cluster,
            set_size,
            index,
            client_port: 2379,
            peer_port: 2380,
            bootstrap_size: 3,
            timeout: Duration::ZERO,
            quiet: true,
        }
    }

    fn member(name: &str, peer_url: &str) -> Member {
        Member {
            id: 1,
            name: name.into(),
            peer_urls: vec![peer_url.into()],
            client_urls: Vec::new(),
        }
    }

    #[test]
    fn members_stand_for_pods_by_name_or_by_peer_url() {
        let role = Role::builtin("etcd").unwrap();
        // Ordinals 5 to 9; the set of 3 is 5, 6 and 7.
        let cluster = test_model(&role, &role.spec.vars, "etcd", nowhere("etcd"), 5)
            .cluster(5)
            .unwrap();
        let pod = etcd_pod(&cluster, 3, 1);
        let url = |o: u32| format!("http://etcd-{o}.etcd.nowhere.svc.invalid:2380");
        assert_eq!(pod.my_peer_url(), url(6));
        assert_eq!(pod.ordinal_of(&member("", &url(8))), Some(8));
        assert_eq!(pod.ordinal_of(&member("etcd-9", "http://x:2380")), Some(9));
        assert_eq!(
            pod.ordinal_of(&member("other-8", &url(8))),
            None,
            "a name wins"
        );
        assert_eq!(pod.ordinal_of(&member("", "http://other-8.o:2380")), None);
        assert_eq!(pod.name_of_peer_url(&url(8)).as_deref(), Some("etcd-8"));
        assert!(pod.is_me(&member("etcd-6", "http://x:2380")));
        assert!(pod.is_me(&member("", &url(6))));
        assert!(!pod.is_me(&member("", &url(7))));
        let inside: Vec<u32> = (0..12).filter(|o| pod.in_set(*o)).collect();
        assert_eq!(inside, [5, 6, 7]);
    }

    #[test]
    fn retry_waits_out_busy_answers_and_stops_at_a_refusal_or_the_deadline() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut calls = 0;
        let value = retry("add", far, || {
            calls += 1;
            match calls {
                1 => Err(CallError::Unreachable(anyhow!("down"))),
                2 => Err(CallError::Busy(anyhow!("unhealthy cluster"))),
                _ => Ok(calls),
            }
        });
        assert_eq!(value.unwrap(), 3);
        let mut calls = 0;
        let refused = retry::<()>("add", far, || {
            calls += 1;
            Err(CallError::Refused(anyhow!("no")))
        });
        assert_eq!(
            (calls, format!("{:#}", refused.unwrap_err())),
            (1, "cannot add: no".into())
        );
        let soon = Instant::now() + Duration::from_millis(150);
        let late = retry::<()>("add", soon, || Err(CallError::Busy(anyhow!("busy"))));
        assert!(Instant::now() < soon + Duration::from_secs(5));
        let late = format!("{:#}", late.unwrap_err());
        assert!(late.contains("did not accept it in time"), "{late}");
    }

    #[test]
    fn etcd_data_is_a_member_dir_and_is_set_aside_never_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        assert!(!has_etcd_data(&data).unwrap(), "no data dir");
        std::fs::create_dir(&data).unwrap();
        assert!(!has_etcd_data(&data).unwrap(), "an empty data dir");
        std::fs::write(data.join("member"), "").unwrap();
        assert!(!has_etcd_data(&data).unwrap(), "member is not a dir");
        std::fs::remove_file(data.join("member")).unwrap();
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        assert!(has_etcd_data(&data).unwrap());
        let aside = set_aside(&data).unwrap();
        assert!(!data.exists());
        assert_eq!(aside.parent(), Some(tmp.path()));
        let name = aside.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("data.removed-"), "{name}");
        assert!(aside.join("member/wal").is_dir(), "the data is kept");
    }

    #[test]
    fn etcd_leave_decides_from_the_set_size_before_any_call() {
        let role = Role::builtin("etcd").unwrap();
        let cluster = test_model(&role, &role.spec.vars, "etcd", nowhere("etcd"), 0)
            .cluster(4)
            .unwrap();
        assert_eq!(leave_etcd(&etcd_pod(&cluster, 0, 3)).unwrap(), Left::Paused);
        assert_eq!(leave_etcd(&etcd_pod(&cluster, 4, 3)).unwrap(), Left::Stays);
        assert_eq!(leave_etcd(&etcd_pod(&cluster, 3, 2)).unwrap(), Left::Stays);
        let beyond = leave_etcd(&etcd_pod(&cluster, 3, 3)).unwrap_err();
        assert!(
            format!("{beyond:#}").contains("no member of the etcd cluster answered"),
            "{beyond:#}"
        );
    }
}

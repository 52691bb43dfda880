//! The cluster model: every pod's server id, role, name and address, and the leader; and
//! [`View`], the one description of a pod that templates, `env`, `get` and `plan` read.
//! Pure: built from the identity, the role and the settings; touches no file system.

use anyhow::{anyhow, bail, ensure};
use serde::Serialize;

use crate::names::{SetName, is_dns_label};
use crate::role::{Bound, FileSpec, Role, Var, Vars};
use crate::topology::Topology;

mod leader;

/// Where the pods of the set live in DNS.
#[derive(Clone, Debug, Serialize)]
pub struct Placement {
    pub service: String,
    pub namespace: String,
    pub cluster_domain: String,
}

/// One pod of the set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub ordinal: u32,
    pub index: u32,
    pub server_id: u64,
    pub hostname: String,
    pub fqdn: String,
    pub port: Option<u16>,
    /// `fqdn:port`, or just the FQDN when the role has no port.
    pub address: String,
    pub role: String,
    /// Which rule of the role gave this pod its role.
    #[serde(skip)]
    pub rule: usize,
}

/// A role rule with its var bounds looked up.
#[derive(Clone, Debug)]
struct Condition {
    index: Option<u32>,
    from: Option<u32>,
    below: Option<u32>,
    /// A bound var is empty: the rule matches no pod.
    disabled: bool,
}

impl Condition {
    fn matches(&self, index: u32) -> bool {
        !self.disabled
            && self.index.is_none_or(|i| index == i)
            && self.from.is_none_or(|f| index >= f)
            && self.below.is_none_or(|b| index < b)
    }
}

/// Everything that decides each pod's identity, ready to place pods.
#[derive(Debug)]
pub struct Model<'r> {
    role: &'r Role,
    conditions: Vec<Condition>,
    /// The set name, and how its pods are named.
    pub set: SetName,
    pub placement: Placement,
    pub start_ordinal: u32,
}

/// The whole set: every pod, in ordinal order.
#[derive(Debug)]
pub struct Cluster<'r> {
    pub model: Model<'r>,
    pub replicas: u32,
    pub members: Vec<Member>,
    /// Index into `members` of the first pod with the leader role.
    pub leader: Option<usize>,
    /// Things that work but are unwise, e.g. an even-sized quorum.
    pub warnings: Vec<String>,
}

impl<'r> Model<'r> {
    pub fn new(
        role: &'r Role,
        vars: &Vars,
        set: SetName,
        placement: Placement,
        start_ordinal: u32,
    ) -> anyhow::Result<Self> {
        let conditions = role
            .spec
            .rules
            .iter()
            .map(|rule| {
                let mut disabled = false;
                let mut bound = |b: &Option<Bound>| -> anyhow::Result<Option<u32>> {
                    match b {
                        None => Ok(None),
                        Some(Bound::Index(i)) => Ok(Some(*i)),
                        Some(Bound::Var(var)) => match resolve_bound(vars, var)? {
                            Some(i) => Ok(Some(i)),
                            None => {
                                disabled = true;
                                Ok(None)
                            }
                        },
                    }
                };
                let (index, from, below) =
                    (bound(&rule.index)?, bound(&rule.from)?, bound(&rule.below)?);
                Ok(Condition {
                    index,
                    from,
                    below,
                    disabled,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Model {
            role,
            conditions,
            set,
            placement,
            start_ordinal,
        })
    }

    pub fn role(&self) -> &'r Role {
        self.role
    }

    /// The pod at `index`: its server id (checked against the role's range) and its role.
    pub fn member(&self, index: u32) -> anyhow::Result<Member> {
        let spec = &self.role.spec;
        let ordinal = self
            .start_ordinal
            .checked_add(index)
            .ok_or_else(|| anyhow!("ordinal {} + {index} overflows", self.start_ordinal))?;
        let ids = &spec.server_id;
        let server_id = ids
            .offset
            .checked_add(u64::from(ordinal))
            .filter(|id| (ids.min..=ids.max).contains(id));
        let Some(server_id) = server_id else {
            bail!(
                "server id of ordinal {ordinal} (id offset {} + ordinal) is outside the range {}..={} of role {}; \
                 change --id-offset, --start-ordinal or --replicas",
                ids.offset,
                ids.min,
                ids.max,
                self.role.name
            );
        };
        let Some(rule) = self.conditions.iter().position(|c| c.matches(index)) else {
            bail!(
                "no rule of role {} matches the pod at index {index}; add a rule without conditions last",
                self.role.name
            );
        };
        let hostname = self.set.pod(ordinal);
        ensure!(
            is_dns_label(&hostname),
            "pod name `{hostname}` of ordinal {ordinal} is not a DNS label (at most 63 characters)"
        );
        let Placement {
            service,
            namespace,
            cluster_domain,
        } = &self.placement;
        let fqdn = format!("{hostname}.{service}.{namespace}.svc.{cluster_domain}");
        let port = spec.port;
        Ok(Member {
            ordinal,
            index,
            server_id,
            address: match port {
                Some(port) => format!("{fqdn}:{port}"),
                None => fqdn.clone(),
            },
            hostname,
            fqdn,
            port,
            role: spec.rules[rule].role.clone(),
            rule,
        })
    }

    /// The templates this pod renders: the role's common files, then its rule's.
    pub fn files(&self, member: &Member) -> impl Iterator<Item = &'r FileSpec> + use<'r> {
        let spec = &self.role.spec;
        spec.files.iter().chain(&spec.rules[member.rule].files)
    }

    /// Places every pod of a set of `replicas` pods.
    pub fn cluster(self, replicas: u32) -> anyhow::Result<Cluster<'r>> {
        let sizes = &self.role.spec.replicas;
        ensure!(
            (sizes.min..=sizes.max).contains(&replicas),
            "role {} runs with {}..={} replicas, not {replicas}",
            self.role.name,
            sizes.min,
            sizes.max
        );
        let members = (0..replicas)
            .map(|i| self.member(i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let leader_role = self.role.leader_role();
        let leader = members.iter().position(|m| m.role == leader_role);
        let mut warnings = Vec::new();
        if sizes.warn_even && replicas.is_multiple_of(2) {
            warnings.push(format!(
                "role {}: {replicas} members tolerate no more failures than {} would; an odd number is better",
                self.role.name,
                replicas - 1
            ));
        }
        Ok(Cluster {
            model: self,
            replicas,
            members,
            leader,
            warnings,
        })
    }
}

/// Reads a rule bound from a var: a whole number, or empty for "this rule is off".
fn resolve_bound(vars: &Vars, var: &str) -> anyhow::Result<Option<u32>> {
    let value = vars
        .get(var)
        .ok_or_else(|| anyhow!("rule bound var `{var}` has no value"))?;
    let parsed = match value {
        Var::Int(i) => u32::try_from(*i).ok(),
        Var::Str(s) if s.is_empty() => return Ok(None),
        Var::Str(s) => s.parse().ok(),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        anyhow!("var `{var}` = `{value}` bounds a rule, so it must be a whole number from 0 (or empty for none)")
    })
}

/// A peer as templates see it: a member, plus whether it is the pod being rendered.
#[derive(Serialize)]
pub struct Peer<'a> {
    #[serde(flatten)]
    pub member: &'a Member,
    pub is_leader: bool,
    pub is_self: bool,
}

/// One pod as the outside sees it: the template context, and (flattened, see `output::fields`)
/// what `env` exports and `get` prints, in this order. Adding a field here adds it everywhere.
/// The fields that need the set's size ([`SET_FIELDS`]) are absent while it is unknown.
/// `is_leader` is not one of them: whether a pod leads depends only on the pods before it.
#[derive(Serialize)]
pub struct View<'a> {
    pub hostname: &'a str,
    pub name: &'a str,
    pub ordinal: u32,
    pub index: u32,
    pub start_ordinal: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    pub server_id: u64,
    pub role: &'a str,
    pub is_leader: bool,
    pub service: &'a str,
    pub namespace: &'a str,
    pub cluster_domain: &'a str,
    pub fqdn: &'a str,
    pub port: Option<u16>,
    pub address: &'a str,
    /// Every pod of the set, in ordinal order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Peer<'a>>>,
    /// The first pod with the leader role; `Some(None)` when no pod has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<Option<Peer<'a>>>,
    /// The leader's address; empty when no pod has the leader role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_address: Option<&'a str>,
    pub first_boot: bool,
    /// The node's zone and region, empty when unknown.
    pub topology: &'a Topology,
    pub vars: &'a Vars,
}

/// The fields of [`View`] that only a known set size gives.
pub const SET_FIELDS: [&str; 4] = ["replicas", "peers", "leader", "leader_address"];

/// What a view says about a pod besides its place in the set: the role's vars, whether its data
/// dir is new, and where its node is.
#[derive(Clone, Copy)]
pub struct PodFacts<'a> {
    pub vars: &'a Vars,
    pub first_boot: bool,
    pub topology: &'a Topology,
}

impl<'r> Model<'r> {
    /// The view of `me` alone, without the set's fields.
    pub fn view<'a>(&'a self, me: &'a Member, facts: PodFacts<'a>) -> View<'a> {
        let placement = &self.placement;
        View {
            hostname: &me.hostname,
            name: &self.set.name,
            ordinal: me.ordinal,
            index: me.index,
            start_ordinal: self.start_ordinal,
            replicas: None,
            server_id: me.server_id,
            role: &me.role,
            is_leader: self.is_leader(me.index),
            service: &placement.service,
            namespace: &placement.namespace,
            cluster_domain: &placement.cluster_domain,
            fqdn: &me.fqdn,
            port: me.port,
            address: &me.address,
            peers: None,
            leader: None,
            leader_address: None,
            first_boot: facts.first_boot,
            topology: facts.topology,
            vars: facts.vars,
        }
    }
}

impl Cluster<'_> {
    /// The view of the pod at `index`, with the whole set.
    pub fn view<'a>(&'a self, index: u32, facts: PodFacts<'a>) -> View<'a> {
        let peer = |(i, member): (usize, &'a Member)| Peer {
            member,
            is_leader: Some(i) == self.leader,
            is_self: i == index as usize,
        };
        let leader = self.leader();
        View {
            replicas: Some(self.replicas),
            is_leader: self.leader == Some(index as usize),
            peers: Some(self.members.iter().enumerate().map(peer).collect()),
            leader: Some(self.leader.map(|i| peer((i, &self.members[i])))),
            leader_address: Some(leader.map_or("", |l| l.address.as_str())),
            ..self.model.view(&self.members[index as usize], facts)
        }
    }

    pub fn leader(&self) -> Option<&Member> {
        self.leader.map(|i| &self.members[i])
    }
}

/// Tests: the model of the StatefulSet `name`.
#[cfg(test)]
pub(crate) fn test_model<'r>(
    role: &'r Role,
    vars: &Vars,
    name: &str,
    placement: Placement,
    start: u32,
) -> Model<'r> {
    Model::new(role, vars, SetName::statefulset(name), placement, start).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::{IdSpec, Role};

    fn placement() -> Placement {
        Placement {
            service: "zk".into(),
            namespace: "db".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    fn mysql() -> Role {
        Role::builtin("mysql").unwrap()
    }

    fn facts<'a>(vars: &'a Vars, topology: &'a Topology) -> PodFacts<'a> {
        PodFacts {
            vars,
            first_boot: true,
            topology,
        }
    }

    #[test]
    fn server_id_is_offset_plus_ordinal() {
        let role = mysql();
        let model = test_model(&role, &role.spec.vars, "mysql", placement(), 0);
        let cluster = model.cluster(3).unwrap();
        let ids: Vec<_> = cluster.members.iter().map(|m| m.server_id).collect();
        assert_eq!(ids, [100, 101, 102]);
    }

    #[test]
    fn first_pod_leads_and_the_rest_follow() {
        let role = mysql();
        let cluster = test_model(&role, &role.spec.vars, "mysql", placement(), 5)
            .cluster(3)
            .unwrap();
        let roles: Vec<_> = cluster
            .members
            .iter()
            .map(|m| (m.ordinal, m.role.as_str()))
            .collect();
        assert_eq!(roles, [(5, "primary"), (6, "replica"), (7, "replica")]);
        assert_eq!(cluster.leader().unwrap().hostname, "mysql-5");
        assert_eq!(cluster.members[1].fqdn, "mysql-6.zk.db.svc.cluster.local");
        assert_eq!(
            cluster.members[1].address,
            "mysql-6.zk.db.svc.cluster.local:3306"
        );
    }

    #[test]
    fn id_out_of_range_is_an_error() {
        let mut role = Role::builtin("zookeeper").unwrap();
        let vars = role.spec.vars.clone();
        // myid 1..=255: ordinal 254 is myid 255, ordinal 255 would be 256.
        let model = test_model(&role, &vars, "zk", placement(), 254);
        assert_eq!(model.member(0).unwrap().server_id, 255);
        let err = model.member(1).unwrap_err().to_string();
        assert!(err.contains("outside the range 1..=255"), "{err}");
        role.spec.server_id = IdSpec {
            offset: 0,
            min: 1,
            max: 10,
        };
        let model = test_model(&role, &vars, "zk", placement(), 0);
        assert!(model.member(0).is_err(), "id 0 is below min 1");
    }

    #[test]
    fn var_bounds_pick_roles_and_empty_disables() {
        let role = Role::builtin("zookeeper").unwrap();
        let mut vars = role.spec.vars.clone();
        vars.insert("observers_from".into(), Var::Str("3".into()));
        let cluster = test_model(&role, &vars, "zk", placement(), 0)
            .cluster(5)
            .unwrap();
        let roles: Vec<_> = cluster.members.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            [
                "participant",
                "participant",
                "participant",
                "observer",
                "observer"
            ]
        );
        vars.insert("observers_from".into(), Var::Str(String::new()));
        let cluster = test_model(&role, &vars, "zk", placement(), 0)
            .cluster(5)
            .unwrap();
        assert!(cluster.members.iter().all(|m| m.role == "participant"));
        vars.insert("observers_from".into(), Var::Str("x".into()));
        assert!(Model::new(&role, &vars, SetName::statefulset("zk"), placement(), 0).is_err());
    }

    #[test]
    fn set_size_is_checked_against_the_role() {
        let role = Role::builtin("zookeeper").unwrap();
        let model = test_model(&role, &role.spec.vars, "zk", placement(), 0);
        assert!(model.cluster(256).is_err());
    }

    #[test]
    fn view_marks_self_and_leader() {
        let role = mysql();
        let vars = role.spec.vars.clone();
        let cluster = test_model(&role, &vars, "mysql", placement(), 0)
            .cluster(3)
            .unwrap();
        let topology = Topology::default();
        let view = cluster.view(2, facts(&vars, &topology));
        assert!(!view.is_leader);
        let flags: Vec<_> = view
            .peers
            .unwrap()
            .iter()
            .map(|p| (p.is_self, p.is_leader))
            .collect();
        assert_eq!(flags, [(false, true), (false, false), (true, false)]);
        assert_eq!(view.leader.unwrap().unwrap().member.hostname, "mysql-0");
    }

    /// `get` tells "needs the set's size" from "no such field" by SET_FIELDS: it must name
    /// exactly the fields a view without the set lacks.
    #[test]
    fn set_fields_are_what_a_view_without_the_set_lacks() {
        let role = mysql();
        let vars = role.spec.vars.clone();
        let cluster = test_model(&role, &vars, "mysql", placement(), 0)
            .cluster(3)
            .unwrap();
        let keys = |view: &View| match serde_json::to_value(view).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect::<Vec<_>>(),
            other => panic!("{other}"),
        };
        let topology = Topology::default();
        let all = keys(&cluster.view(1, facts(&vars, &topology)));
        let alone = keys(
            &cluster
                .model
                .view(&cluster.members[1], facts(&vars, &topology)),
        );
        let lacking: Vec<_> = all.iter().filter(|k| !alone.contains(k)).collect();
        assert_eq!(lacking, SET_FIELDS);
    }

    fn rules_role(rules: &str) -> Role {
        Role::new(
            "t".into(),
            &format!("description = 't'\nleader = 'lead'\n{rules}"),
            Default::default(),
        )
        .unwrap()
    }

    /// The leader is the first pod whose rule gives it the leader role, wherever that pod is.
    #[test]
    fn the_leader_is_the_first_pod_with_the_leader_role() {
        let role = rules_role(
            "[[rules]]\nrole = 'spare'\nindex = 0\n[[rules]]\nrole = 'lead'\nbelow = 3\n\
             [[rules]]\nrole = 'other'\n",
        );
        let vars = Vars::new();
        let cluster = test_model(&role, &vars, "t", placement(), 0)
            .cluster(4)
            .unwrap();
        assert_eq!(cluster.leader, Some(1));
        assert_eq!(cluster.leader().unwrap().hostname, "t-1");
        let topology = Topology::default();
        let view = cluster.view(2, facts(&vars, &topology));
        assert!(!view.is_leader);
        assert_eq!(
            view.leader_address,
            Some(cluster.members[1].address.as_str())
        );
        assert!(cluster.view(1, facts(&vars, &topology)).is_leader);
    }

    /// `below = N` takes the indexes before N and not N itself; `from = N` takes N on.
    #[test]
    fn below_and_from_bounds_are_exclusive_and_inclusive() {
        let role = rules_role(
            "[[rules]]\nrole = 'lead'\nbelow = 2\n[[rules]]\nrole = 'late'\nfrom = 3\n\
             [[rules]]\nrole = 'middle'\n",
        );
        let vars = Vars::new();
        let cluster = test_model(&role, &vars, "t", placement(), 7)
            .cluster(5)
            .unwrap();
        let roles: Vec<_> = cluster.members.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["lead", "lead", "middle", "late", "late"]);
    }
}

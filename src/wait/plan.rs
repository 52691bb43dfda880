//! A wait's plan: each target resolved to the addresses it counts and how many must answer.

use std::collections::HashMap;

use anyhow::anyhow;

use super::probe::{States, ready};
use super::target::{Endpoint, Spec};
use crate::model::{Cluster, Member, Model};

/// Why no plan can be made. Each is the user's to fix, so it comes before any waiting; the
/// command turns each kind into its exit code.
#[derive(Debug)]
pub enum PlanError {
    /// The target names pods of the whole set, and its size is not known.
    NeedsSetSize(String),
    /// The role cannot give what the target names (no pod has the leader role; a pod it cannot
    /// place).
    Role(anyhow::Error),
    /// The flags ask for what the set cannot give: no port, more peers than it has.
    Usage(anyhow::Error),
    /// A target naming pods was planned without this pod's identity: a bug.
    Internal(anyhow::Error),
}

type Result<T> = std::result::Result<T, PlanError>;

/// What the wait needs: each target and the addresses it counts.
#[derive(Debug)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// Every address to probe, once even if several targets name it.
    pub endpoints: Vec<Endpoint>,
}

/// One `--for`, resolved to addresses.
#[derive(Debug)]
pub struct Target {
    /// As given: `leader`, `peers=2`, `db:5432`.
    pub label: String,
    /// What it stands for here, to follow the label: ` mysql-0.mysql.default.svc.cluster.local:3306`,
    /// ` (2 of 4 other pods)`, ` (this pod is the leader)`.
    pub detail: String,
    /// Indexes into `Plan::endpoints`.
    pub endpoints: Vec<usize>,
    /// How many of them must be ready; 0 when there is nothing to wait for.
    pub need: usize,
}

impl Target {
    pub(super) fn describe(&self) -> String {
        format!("{}{}", self.label, self.detail)
    }
}

impl Plan {
    /// The targets not ready yet.
    pub(super) fn waiting<'p>(&'p self, states: &'p States) -> impl Iterator<Item = &'p Target> {
        self.targets.iter().filter(|t| !t.is_ready(states))
    }

    /// What each target not ready yet misses, naming at most `shown` of its addresses.
    pub(super) fn missing(&self, states: &States, shown: usize) -> Vec<String> {
        self.waiting(states)
            .map(|t| t.missing(self, states, shown))
            .collect()
    }
}

/// The pods a target can name: this pod in its model, or in the whole set when --replicas is
/// known (leader, peers and all need it).
pub enum Pods<'a, 'r> {
    /// Only HOST:PORT targets: who this pod is does not matter.
    Unknown,
    Model {
        model: &'a Model<'r>,
        index: u32,
    },
    Cluster {
        cluster: &'a Cluster<'r>,
        index: u32,
    },
}

impl<'r> Pods<'_, 'r> {
    fn cluster(&self, label: &str) -> Result<(&Cluster<'r>, u32)> {
        match self {
            Pods::Cluster { cluster, index } => Ok((cluster, *index)),
            _ => Err(PlanError::NeedsSetSize(format!("wait target `{label}`"))),
        }
    }

    fn member(&self, index: u32) -> Result<Member> {
        match self {
            Pods::Cluster { cluster, .. } => Ok(cluster.members[index as usize].clone()),
            Pods::Model { model, .. } => model.member(index).map_err(PlanError::Role),
            Pods::Unknown => Err(no_identity()),
        }
    }

    fn index(&self) -> Option<u32> {
        match self {
            Pods::Unknown => None,
            Pods::Model { index, .. } | Pods::Cluster { index, .. } => Some(*index),
        }
    }
}

fn no_identity() -> PlanError {
    PlanError::Internal(anyhow!(
        "a target naming pods was planned without this pod's identity"
    ))
}

/// Resolves every target to the addresses it counts. Errors here are the user's to fix (no
/// port, more peers than the set has), so they come before any waiting.
pub fn plan(specs: &[(String, Spec)], pods: &Pods) -> Result<Plan> {
    let mut plan = Plan {
        targets: Vec::new(),
        endpoints: Vec::new(),
    };
    let mut seen: HashMap<Endpoint, usize> = HashMap::new();
    let mut add = |endpoint: Endpoint| {
        *seen.entry(endpoint.clone()).or_insert_with(|| {
            plan.endpoints.push(endpoint);
            plan.endpoints.len() - 1
        })
    };
    let mut targets = Vec::new();
    for (label, spec) in specs {
        // Messages show a pod target without its `:PORT`: the address that follows has it.
        let name = match spec {
            Spec::Address(_) => label.as_str(),
            _ => label.split(':').next().unwrap_or(label),
        };
        let port_of = |member: &Member, port: Option<u16>| -> Result<Endpoint> {
            let Some(port) = port.or(member.port) else {
                return Err(PlanError::Usage(anyhow!(
                    "wait target `{label}`: the role has no port; pass --port PORT or write `{label}:PORT`"
                )));
            };
            Ok(Endpoint {
                host: member.fqdn.clone(),
                port,
            })
        };
        let target = match spec {
            Spec::Address(endpoint) => Target {
                label: label.clone(),
                detail: String::new(),
                endpoints: vec![add(endpoint.clone())],
                need: 1,
            },
            Spec::Leader(port) => {
                let (cluster, index) = pods.cluster(label)?;
                let Some(leader) = cluster.leader else {
                    return Err(PlanError::Role(anyhow!(
                        "wait target `{label}`: no pod of the set has the leader role `{}` of role {}",
                        cluster.model.role().leader_role(),
                        cluster.model.role().name
                    )));
                };
                if leader == index as usize {
                    itself(name, "this pod is the leader")
                } else {
                    let endpoint = port_of(&cluster.members[leader], *port)?;
                    one(name, &endpoint, add(endpoint.clone()))
                }
            }
            Spec::Previous(port) => match pods.index() {
                Some(0) => itself(name, "this is the first pod"),
                Some(index) => {
                    let endpoint = port_of(&pods.member(index - 1)?, *port)?;
                    one(name, &endpoint, add(endpoint.clone()))
                }
                None => return Err(no_identity()),
            },
            Spec::Peers(_, port) | Spec::All(port) => {
                let (cluster, index) = pods.cluster(label)?;
                let others = cluster
                    .members
                    .iter()
                    .filter(|m| m.index != index)
                    .map(|m| port_of(m, *port).map(&mut add))
                    .collect::<Result<Vec<_>>>()?;
                let count = others.len();
                let need = match spec {
                    Spec::Peers(n, _) => {
                        let n = *n as usize;
                        if count == 0 {
                            return Err(PlanError::Usage(anyhow!(
                                "wait target `{label}`: this pod is the only one of the set, it has no peers; \
                                     drop the target or use `all`"
                            )));
                        }
                        if n > count {
                            return Err(PlanError::Usage(anyhow!(
                                "wait target `{label}`: a set of {} pods has only {count} other {}; ask for at most peers={count}",
                                cluster.replicas,
                                if count == 1 { "pod" } else { "pods" }
                            )));
                        }
                        n
                    }
                    _ => count,
                };
                if count == 0 {
                    itself(name, "this pod is the only one")
                } else {
                    let pods = if count == 1 {
                        "other pod"
                    } else {
                        "other pods"
                    };
                    let detail = match spec {
                        Spec::Peers(..) => format!(" ({need} of {count} {pods})"),
                        _ => format!(" ({count} {pods})"),
                    };
                    Target {
                        label: name.to_string(),
                        detail,
                        endpoints: others,
                        need,
                    }
                }
            }
        };
        targets.push(target);
    }
    plan.targets = targets;
    Ok(plan)
}

/// A target that points at this pod: ready at once, it cannot wait for itself.
fn itself(label: &str, why: &str) -> Target {
    Target {
        label: label.to_string(),
        detail: format!(" ({why})"),
        endpoints: Vec::new(),
        need: 0,
    }
}

fn one(label: &str, endpoint: &Endpoint, index: usize) -> Target {
    Target {
        label: label.to_string(),
        detail: format!(" {endpoint}"),
        endpoints: vec![index],
        need: 1,
    }
}

impl Target {
    pub(super) fn ready_count(&self, states: &States) -> usize {
        self.endpoints
            .iter()
            .filter(|&&i| ready(&states[i]))
            .count()
    }

    pub(super) fn is_ready(&self, states: &States) -> bool {
        self.ready_count(states) >= self.need
    }

    /// `leader mysql-0...:3306: connection refused`, `peers=2: 1 ready of 2 needed; zk-2...: ...`.
    pub(super) fn missing(&self, plan: &Plan, states: &States, shown: usize) -> String {
        let not_ready: Vec<_> = self
            .endpoints
            .iter()
            .filter_map(|&i| Some((&plan.endpoints[i], states[i].as_ref()?)))
            .collect();
        if self.endpoints.len() == 1
            && let Some((_, reason)) = not_ready.first()
        {
            return format!("{}: {reason}", self.describe());
        }
        let mut text = format!(
            "{}: {} ready of {} needed",
            self.label,
            self.ready_count(states),
            self.need
        );
        for (endpoint, reason) in not_ready.iter().take(shown) {
            text.push_str(&format!("; {endpoint}: {reason}"));
        }
        if not_ready.len() > shown {
            text.push_str(&format!("; {} more not ready", not_ready.len() - shown));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Placement, test_model};
    use crate::role::Role;
    use crate::wait::target::parse_target;

    fn placement() -> Placement {
        Placement {
            service: "db".into(),
            namespace: "prod".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    fn specs(texts: &[&str]) -> Vec<(String, Spec)> {
        texts
            .iter()
            .map(|t| (t.to_string(), parse_target(t).unwrap()))
            .collect()
    }

    fn addresses(plan: &Plan, target: usize) -> Vec<String> {
        plan.targets[target]
            .endpoints
            .iter()
            .map(|&i| plan.endpoints[i].to_string())
            .collect()
    }

    #[test]
    fn pod_targets_resolve_to_pod_addresses() {
        let role = Role::builtin("mysql").unwrap();
        let cluster = test_model(&role, &role.spec.vars, "mysql", placement(), 0)
            .cluster(4)
            .unwrap();
        let pods = Pods::Cluster {
            cluster: &cluster,
            index: 2,
        };
        let plan = plan(
            &specs(&["leader", "previous:3307", "peers=2", "all", "db:1"]),
            &pods,
        )
        .unwrap();
        let fqdn = |o: u32| format!("mysql-{o}.db.prod.svc.cluster.local");
        assert_eq!(addresses(&plan, 0), [format!("{}:3306", fqdn(0))]);
        assert_eq!(addresses(&plan, 1), [format!("{}:3307", fqdn(1))]);
        let others = [0, 1, 3].map(|o| format!("{}:3306", fqdn(o)));
        assert_eq!(addresses(&plan, 2), others);
        assert_eq!(addresses(&plan, 3), others);
        assert_eq!(addresses(&plan, 4), ["db:1"]);
        let needs: Vec<_> = plan.targets.iter().map(|t| t.need).collect();
        assert_eq!(needs, [1, 1, 2, 3, 1]);
        // Each address is probed once however many targets name it.
        assert_eq!(plan.endpoints.len(), 5);
        assert_eq!(
            plan.targets[1].describe(),
            format!("previous {}:3307", fqdn(1))
        );
        assert_eq!(plan.targets[2].describe(), "peers=2 (2 of 3 other pods)");
    }

    #[test]
    fn targets_naming_this_pod_need_nothing() {
        let role = Role::builtin("mysql").unwrap();
        let cluster = test_model(&role, &role.spec.vars, "mysql", placement(), 7)
            .cluster(1)
            .unwrap();
        let pods = Pods::Cluster {
            cluster: &cluster,
            index: 0,
        };
        let plan = plan(&specs(&["leader", "previous", "all"]), &pods).unwrap();
        assert!(plan.endpoints.is_empty());
        assert!(plan.targets.iter().all(|t| t.need == 0));
        let err = super::plan(&specs(&["peers=1"]), &pods).unwrap_err();
        assert!(matches!(err, PlanError::Usage(_)), "{err:?}");
    }

    #[test]
    fn previous_needs_no_replicas_but_leader_does() {
        let role = Role::builtin("mysql").unwrap();
        let model = test_model(&role, &role.spec.vars, "mysql", placement(), 0);
        let pods = Pods::Model {
            model: &model,
            index: 3,
        };
        let plan = plan(&specs(&["previous"]), &pods).unwrap();
        assert_eq!(
            addresses(&plan, 0),
            ["mysql-2.db.prod.svc.cluster.local:3306"]
        );
        for target in ["leader", "peers=1", "all"] {
            let err = super::plan(&specs(&[target]), &pods).unwrap_err();
            assert!(
                matches!(err, PlanError::NeedsSetSize(_)),
                "{target}: {err:?}"
            );
        }
    }
}

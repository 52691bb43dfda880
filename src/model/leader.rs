//! Whether a pod leads: the first pod with the leader role. That depends only on the pods before
//! it, so it is known without the set's size.

use super::Model;

impl Model<'_> {
    /// Whether the pod at `index` is the leader: the first pod with the leader role. That needs
    /// only the pods before it, never the set's size. The rule that matches stays the same
    /// between the bounds the conditions name, so only those bounds are looked at, however large
    /// the index.
    pub fn is_leader(&self, index: u32) -> bool {
        let leader_role = self.role.leader_role();
        let rule_at = |i: u32| self.conditions.iter().position(|c| c.matches(i));
        let mut starts: Vec<u32> = vec![0, index];
        for c in self.conditions.iter().filter(|c| !c.disabled) {
            starts.extend(c.index.into_iter().flat_map(|i| [i, i.saturating_add(1)]));
            starts.extend(c.from.into_iter().chain(c.below));
        }
        starts.retain(|&i| i <= index);
        starts.sort_unstable();
        starts.dedup();
        let first = starts
            .into_iter()
            .find(|&i| rule_at(i).is_some_and(|r| self.role.spec.rules[r].role == leader_role));
        first == Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Placement;
    use super::*;
    use crate::names::SetName;
    use crate::role::{Role, Var, Vars};

    fn placement() -> Placement {
        Placement {
            service: "s".into(),
            namespace: "db".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    /// Whether a pod leads, worked out from the pods before it alone, is what the whole set
    /// says, for every built-in role, rule layouts with var bounds, and from late start ordinals.
    #[test]
    fn a_pod_knows_whether_it_leads_without_the_set_size() {
        let mut cases: Vec<(Role, Vec<(&str, &str)>)> = crate::role::builtin_names()
            .iter()
            .map(|name| (Role::builtin(name).unwrap(), vec![]))
            .collect();
        let zk = || Role::builtin("zookeeper").unwrap();
        cases.push((zk(), vec![("observers_from", "0")]));
        cases.push((zk(), vec![("observers_from", "2")]));
        let adhoc = Role::ad_hoc(Some("leader.conf"), Some("follower.conf"), &[], None).unwrap();
        cases.push((adhoc, vec![]));
        // The leader role first comes after other roles: at a rule's bound, not at index 0.
        let spare_first = "[[rules]]\nrole = 'spare'\nindex = 0\n[[rules]]\nrole = 'lead'\n\
                           below = 3\n[[rules]]\nrole = 'other'\n";
        cases.push((rules_role(spare_first), vec![]));
        let late = "[vars]\nleaders_from = 2\n[[rules]]\nrole = 'other'\nbelow = 'leaders_from'\n\
                    [[rules]]\nrole = 'lead'\n";
        cases.push((rules_role(late), vec![]));
        cases.push((rules_role(late), vec![("leaders_from", "4")]));
        for (role, sets) in &cases {
            let mut vars = role.spec.vars.clone();
            for (key, value) in sets {
                vars.insert(key.to_string(), Var::Str(value.to_string()));
            }
            let sizes = &role.spec.replicas;
            for (start, replicas) in [0, 5]
                .into_iter()
                .flat_map(|s| (sizes.min.max(1)..=sizes.max.min(12)).map(move |n| (s, n)))
            {
                let set = SetName::statefulset("s");
                let model = Model::new(role, &vars, set, placement(), start).unwrap();
                let Ok(cluster) = model.cluster(replicas) else {
                    continue;
                };
                for index in 0..replicas {
                    assert_eq!(
                        cluster.model.is_leader(index),
                        cluster.leader == Some(index as usize),
                        "role {} {sets:?}: index {index} of {replicas}",
                        role.name
                    );
                }
            }
        }
    }

    #[test]
    fn is_leader_of_a_late_pod_looks_at_the_bounds_only() {
        let role = Role::builtin("zookeeper").unwrap();
        let vars = role.spec.vars.clone();
        let model = Model::new(&role, &vars, SetName::statefulset("zk"), placement(), 0).unwrap();
        assert!(model.is_leader(0));
        assert!(!model.is_leader(u32::MAX - 1));
        // The first leader four billion pods in: found at once, and the pods after it follow.
        let role =
            rules_role("[[rules]]\nrole = 'other'\nbelow = 4000000000\n[[rules]]\nrole = 'lead'\n");
        let vars = Vars::new();
        let model = Model::new(&role, &vars, SetName::statefulset("t"), placement(), 0).unwrap();
        let leads: Vec<_> = [0, 3_999_999_999, 4_000_000_000, 4_000_000_001, u32::MAX]
            .map(|i| model.is_leader(i))
            .into();
        assert_eq!(leads, [false, false, true, false, false]);
    }

    fn rules_role(rules: &str) -> Role {
        let text = format!("description = 't'\nleader = 'lead'\n{rules}");
        Role::new("t".into(), &text, Default::default()).unwrap()
    }
}

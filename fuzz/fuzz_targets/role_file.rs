//! Fuzzes the role.toml parser and what is built from a role: `Role::new` on any text, then the
//! model of a small set, every pod's files, the template context and the printed outputs.
//! The first two bytes pick the set size and start ordinal; the rest is the role file.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rolecall::model::{Model, Placement, PodFacts};
use rolecall::names::{SetName, check_file_name};
use rolecall::output;
use rolecall::role::Role;
use rolecall::topology::Topology;

fuzz_target!(|data: &[u8]| {
    let [replicas, start, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let replicas = u32::from(*replicas % 16) + 1;
    let start = u32::from(*start);
    let role = match Role::new("fuzz".into(), text, BTreeMap::new()) {
        Ok(role) => role,
        Err(e) => {
            assert!(format!("{e:#}").contains("invalid role file fuzz"), "{e:#}");
            return;
        }
    };
    // A role that loads has rules, and every file name it renders stays inside --out.
    assert!(!role.leader_role().is_empty());
    for file in role.all_files() {
        check_file_name(file.name()).unwrap();
    }
    let placement = Placement {
        service: "fz".into(),
        namespace: "ns".into(),
        cluster_domain: "cluster.local".into(),
    };
    let vars = role.spec.vars.clone();
    let Ok(model) = Model::new(&role, &vars, SetName::statefulset("fz"), placement, start) else {
        return;
    };
    let Ok(cluster) = model.cluster(replicas) else {
        return;
    };
    let ids = &role.spec.server_id;
    assert_eq!(cluster.members.len(), replicas as usize);
    for (i, member) in cluster.members.iter().enumerate() {
        assert_eq!(member.index as usize, i);
        assert_eq!(member.ordinal, start + i as u32);
        assert!((ids.min..=ids.max).contains(&member.server_id));
        let topology = Topology::default();
        let facts = PodFacts {
            vars: &vars,
            first_boot: true,
            topology: &topology,
        };
        let view = cluster.view(member.index, facts);
        assert_eq!(view.peers.as_ref().map(Vec::len), Some(replicas as usize));
        let fields = output::fields(&view);
        // Every value survives shell quoting: the words of rolecall.env are `export NAME=VALUE`.
        let env = output::shell_env(&fields);
        let words = shlex::split(&env).expect("rolecall.env is valid shell words");
        assert_eq!(words.len(), 2 * fields.len(), "{env}");
        for ((name, value), pair) in fields.iter().zip(words.chunks(2)) {
            assert_eq!(pair[0], "export");
            assert_eq!(pair[1], format!("{}={value}", output::env_name(name)));
        }
    }
    if let Some(leader) = cluster.leader() {
        assert_eq!(leader.role, role.leader_role());
    }
    output::plan_table(&cluster);
    output::plan_json(&cluster);
});

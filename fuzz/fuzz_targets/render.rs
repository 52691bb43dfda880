//! Fuzzes a full render: a ConfigMap key with any template text (and a second key it may
//! include) rendered for any pod of a small set, with any `--set` vars. Besides "never panics",
//! checks the output cap and that text without template syntax comes out byte-identical.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rolecall::model::{Model, Placement};
use rolecall::names::{SetName, is_identifier};
use rolecall::render::{MAX_OUTPUT_BYTES, Templates};
use rolecall::role::{Role, apply_sets};

/// A role with a var of every type and a rule bound by a var, so `--set` can move roles.
const ROLE: &str = r#"
description = "fuzz"
port = 7000
files = ["main.cfg"]

[[rules]]
role = "leader"
index = 0

[[rules]]
role = "late"
from = "late_from"
files = ["extra.cfg"]

[[rules]]
role = "follower"

[vars]
late_from = ""
text = "a"
count = 3
ratio = 0.5
flag = true
"#;

#[derive(Arbitrary, Debug)]
struct Input {
    main: String,
    extra: String,
    sets: Vec<(String, String)>,
    index: u8,
    replicas: u8,
}

fuzz_target!(|input: Input| {
    let role = Role::new("fuzz".into(), ROLE, BTreeMap::new()).unwrap();
    // What `--set` parsing lets through: identifier keys, values without NUL.
    let sets: Vec<_> = input
        .sets
        .iter()
        .filter(|(k, v)| is_identifier(k) && !v.contains('\0'))
        .cloned()
        .collect();
    let Ok((vars, _)) = apply_sets(&role.spec.vars, &role.spec.var_rules, &sets) else {
        return;
    };
    let replicas = u32::from(input.replicas % 8) + 1;
    let index = u32::from(input.index) % replicas;
    let placement = Placement {
        service: "fz".into(),
        namespace: "ns".into(),
        cluster_domain: "cluster.local".into(),
    };
    let Ok(model) = Model::new(&role, &vars, SetName::statefulset("fz"), placement, 0) else {
        return;
    };
    let cluster = model.cluster(replicas).unwrap();
    let keys = BTreeMap::from([
        ("main.cfg".to_string(), input.main.clone().into_bytes()),
        ("extra.cfg".to_string(), input.extra.clone().into_bytes()),
    ]);
    let dir = Path::new("/config-map");
    let templates = match Templates::load(&role, Some((dir, &keys))) {
        Ok(t) => t,
        Err(e) => {
            assert!(!format!("{e:#}").is_empty());
            return;
        }
    };
    let me = &cluster.members[index as usize];
    if templates.check_files(role.all_files(), Some(dir)).is_err() {
        return;
    }
    let view = cluster.view(index, &vars, true);
    let files: Vec<_> = cluster.model.files(me).collect();
    if let Ok(rendered) = templates.render(files, &view, None) {
        let main = &rendered[0];
        assert_eq!(main.name, "main.cfg");
        assert!(main.content.len() <= MAX_OUTPUT_BYTES);
        let plain = |t: &str| !t.contains("{{") && !t.contains("{%") && !t.contains("{#");
        if plain(&input.main) {
            assert_eq!(
                main.content,
                input.main.as_bytes(),
                "plain text must be unchanged"
            );
        }
    }
});

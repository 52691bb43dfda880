//! The Kubernetes examples in examples/ROLE/: valid for Kubernetes 1.31 (kubernetes-validate
//! --strict, which rejects unknown fields), wired together (Service, ConfigMap and volumes the
//! StatefulSet names exist), the rolecall init container fit for the restricted Pod Security
//! Standard, and its ConfigMap's templates rendering with the role for the example's set.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod common;

use common::{can_load_yaml, can_run_without, missing, scratch};

const KUBERNETES_VERSION: &str = "1.31.0";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every example's YAML files, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in fs::read_dir(examples_dir()).unwrap() {
        let dir = dir.unwrap().path();
        for file in fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "yaml") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

fn can_validate(test: &str) -> bool {
    can_run_without(
        test,
        &missing(&[(
            "kubernetes-validate",
            "none; PyPI kubernetes-validate==1.37.0, see .ci/run",
        )]),
    )
}

#[test]
fn examples_pass_kubernetes_validate_strict() {
    if !can_validate("examples_pass_kubernetes_validate_strict") {
        return;
    }
    let files = example_files();
    let out = kubernetes_validate(&files);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    // One `passed` per resource: every file was read, none skipped.
    let documents: usize = files
        .iter()
        .map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("apiVersion:"))
                .count()
        })
        .sum();
    assert_eq!(report.matches(" passed ").count(), documents, "{report}");
}

#[test]
fn kubernetes_validate_strict_rejects_an_unknown_field() {
    if !can_validate("kubernetes_validate_strict_rejects_an_unknown_field") {
        return;
    }
    // The control for the test above: a typo in a field must fail, or passing means nothing.
    let dir = scratch();
    let service = fs::read_to_string(examples_dir().join("etcd/service.yaml")).unwrap();
    let broken = dir.path().join("service.yaml");
    fs::write(
        &broken,
        service.replace("publishNotReadyAddresses", "publishNotReadyAdresses"),
    )
    .unwrap();
    let out = kubernetes_validate(&[broken]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn every_role_has_an_example() {
    let roles: BTreeSet<String> = common::Program::tested()
        .builtin_roles()
        .into_iter()
        .collect();
    let examples: BTreeSet<String> = fs::read_dir(examples_dir())
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(roles, examples);
}

/// An example's resources, read with PyYAML into JSON.
struct Example {
    role: String,
    service: Value,
    configmap: Value,
    statefulset: Value,
    /// The rest, by kind: the RBAC objects of an example that uses --from-api.
    others: BTreeMap<String, Value>,
}

fn load_examples() -> Vec<Example> {
    let files = example_files();
    let script = "import json, sys, yaml\n\
                  for path in sys.argv[1:]:\n    \
                      with open(path) as f:\n        \
                          for doc in yaml.safe_load_all(f):\n            \
                              print(json.dumps([path, doc]))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut by_role: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let [path, doc]: [Value; 2] = serde_json::from_str(line).unwrap();
        let path = PathBuf::from(path.as_str().unwrap());
        let role = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let kind = doc["kind"].as_str().unwrap().to_string();
        let previous = by_role
            .entry(role.to_string())
            .or_default()
            .insert(kind, doc);
        assert!(previous.is_none(), "{role}: two resources of one kind");
    }
    by_role
        .into_iter()
        .map(|(role, mut kinds)| {
            let mut take = |kind: &str| {
                kinds
                    .remove(kind)
                    .unwrap_or_else(|| panic!("examples/{role} has no {kind}"))
            };
            Example {
                service: take("Service"),
                configmap: take("ConfigMap"),
                statefulset: take("StatefulSet"),
                others: kinds,
                role,
            }
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag` in an argument list.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[test]
fn examples_are_wired_and_the_rolecall_container_is_restricted() {
    if !can_load_yaml("examples_are_wired_and_the_rolecall_container_is_restricted") {
        return;
    }
    for ex in load_examples() {
        let role = &ex.role;
        let sts = &ex.statefulset;
        let spec = &sts["spec"];
        let pod = &spec["template"]["spec"];
        // The headless Service of the set, publishing pods before they are ready.
        assert_eq!(ex.service["spec"]["clusterIP"], json!("None"), "{role}");
        assert_eq!(
            ex.service["spec"]["publishNotReadyAddresses"],
            json!(true),
            "{role}"
        );
        assert_eq!(
            spec["serviceName"], ex.service["metadata"]["name"],
            "{role}"
        );
        let labels = &spec["template"]["metadata"]["labels"];
        for (key, value) in ex.service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[key], value, "{role}: service selector");
        }
        assert_eq!(spec["selector"]["matchLabels"], *labels, "{role}");

        // The rolecall init container: the role of its directory, the downward API, and
        // ROLECALL_REPLICAS equal to spec.replicas.
        let init = &pod["initContainers"][0];
        assert_eq!(init["name"], json!("rolecall"), "{role}");
        assert_eq!(init["image"], json!("rolecall"), "{role}");
        let args = strings(&init["args"]);
        assert_eq!(args[0], "render", "{role}");
        assert_eq!(flag(&args, "--role"), Some(role.as_str()));
        let env: BTreeMap<&str, &Value> = init["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e))
            .collect();
        let field = |name: &str| env[name]["valueFrom"]["fieldRef"]["fieldPath"].clone();
        assert_eq!(field("POD_NAME"), json!("metadata.name"), "{role}");
        assert_eq!(
            field("POD_NAMESPACE"),
            json!("metadata.namespace"),
            "{role}"
        );
        assert_eq!(
            field("ROLECALL_POD_INDEX"),
            json!("metadata.labels['apps.kubernetes.io/pod-index']"),
            "{role}"
        );
        if args.iter().any(|a| a == "--from-api") {
            assert!(
                !env.contains_key("ROLECALL_REPLICAS"),
                "{role}: --from-api reads spec.replicas; ROLECALL_REPLICAS would override it"
            );
            check_api_access(&ex, &env);
        } else {
            assert_eq!(
                env["ROLECALL_REPLICAS"]["value"],
                json!(spec["replicas"].as_u64().unwrap().to_string()),
                "{role}: ROLECALL_REPLICAS must equal spec.replicas"
            );
            assert!(ex.others.is_empty(), "{role}: RBAC without --from-api");
        }

        // Restricted Pod Security Standard, on the container itself.
        let sc = &init["securityContext"];
        assert_eq!(sc["runAsNonRoot"], json!(true), "{role}");
        assert_ne!(sc["runAsUser"], json!(0), "{role}");
        assert_eq!(sc["readOnlyRootFilesystem"], json!(true), "{role}");
        assert_eq!(sc["allowPrivilegeEscalation"], json!(false), "{role}");
        assert_eq!(sc["capabilities"], json!({ "drop": ["ALL"] }), "{role}");
        assert_eq!(
            sc["seccompProfile"]["type"],
            json!("RuntimeDefault"),
            "{role}"
        );

        // Every mount names a volume; the ConfigMap is the example's; rolecall's --config-dir
        // is that ConfigMap and its --out a volume a server container mounts too.
        let mut volumes: BTreeMap<String, Value> = pod["volumes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for claim in spec["volumeClaimTemplates"].as_array().unwrap() {
            let name = claim["metadata"]["name"].as_str().unwrap().to_string();
            volumes.insert(name, json!({ "persistentVolumeClaim": {} }));
        }
        let containers: Vec<&Value> = pod["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["containers"].as_array().unwrap())
            .collect();
        for container in &containers {
            for mount in container["volumeMounts"].as_array().unwrap() {
                let name = mount["name"].as_str().unwrap();
                assert!(volumes.contains_key(name), "{role}: no volume `{name}`");
            }
        }
        let mount_of = |container: &Value, path: &str| -> Option<String> {
            container["volumeMounts"]
                .as_array()?
                .iter()
                .find(|m| m["mountPath"] == json!(path))
                .map(|m| m["name"].as_str().unwrap().to_string())
        };
        let config_dir = flag(&args, "--config-dir").expect("--config-dir");
        let templates = mount_of(init, config_dir).expect("--config-dir is mounted");
        assert_eq!(
            volumes[&templates]["configMap"]["name"], ex.configmap["metadata"]["name"],
            "{role}"
        );
        let out = flag(&args, "--out").expect("--out");
        let out_volume = mount_of(init, out).expect("--out is mounted");
        assert!(
            pod["containers"].as_array().unwrap().iter().any(|c| {
                c["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == json!(out_volume))
            }),
            "{role}: no server container mounts rolecall's output"
        );
    }
}

/// The API access of an example whose rolecall runs with --from-api: a service account whose
/// Role lets it get this one StatefulSet and nothing else, its token mounted into the rolecall
/// container alone (as the kubelet would mount it: token, the cluster's CA, the namespace); and,
/// where NODE_NAME names the node, a ClusterRole to get nodes bound to that account.
fn check_api_access(ex: &Example, env: &BTreeMap<&str, &Value>) {
    let role = &ex.role;
    let set = ex.statefulset["metadata"]["name"].as_str().unwrap();
    let pod = &ex.statefulset["spec"]["template"]["spec"];
    let kind = |k: &str| {
        ex.others
            .get(k)
            .unwrap_or_else(|| panic!("examples/{role}: --from-api without a {k}"))
    };
    let account = kind("ServiceAccount")["metadata"]["name"].clone();
    assert_eq!(pod["serviceAccountName"], account, "{role}");
    assert_eq!(pod["automountServiceAccountToken"], json!(false), "{role}");
    let rules = &kind("Role")["rules"];
    assert_eq!(
        *rules,
        json!([{ "apiGroups": ["apps"], "resources": ["statefulsets"],
                 "resourceNames": [set], "verbs": ["get"] }]),
        "{role}: the Role allows get on this StatefulSet only"
    );
    let binding = kind("RoleBinding");
    assert_eq!(binding["roleRef"]["kind"], json!("Role"), "{role}");
    assert_eq!(
        binding["roleRef"]["name"],
        kind("Role")["metadata"]["name"],
        "{role}"
    );
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": account }]),
        "{role}"
    );
    // The token: only where rolecall runs: the rolecall init container, and a main container
    // whose preStop hook runs `rolecall leave` or `rolecall get replicas` (it reads the set's
    // size now); in no other.
    const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.get("projected").is_some())
        .unwrap_or_else(|| panic!("examples/{role}: no projected token volume"));
    let sources = &volume["projected"]["sources"];
    assert_eq!(
        sources[0]["serviceAccountToken"]["path"],
        json!("token"),
        "{role}"
    );
    assert_eq!(
        sources[1]["configMap"]["name"],
        json!("kube-root-ca.crt"),
        "{role}"
    );
    assert_eq!(
        sources[1]["configMap"]["items"],
        json!([{ "key": "ca.crt", "path": "ca.crt" }]),
        "{role}"
    );
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["path"],
        json!("namespace")
    );
    let containers = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["containers"].as_array().unwrap());
    for container in containers {
        let mounts_token = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == volume["name"]);
        // rolecall run by the hook itself or by its shell script, asking the API.
        let pre_stop = strings(&container["lifecycle"]["preStop"]["exec"]["command"]).join(" ");
        let asks_api = pre_stop.contains("/rolecall/rolecall ") && pre_stop.contains(" --from-api");
        let is_rolecall = container["name"] == json!("rolecall") || asks_api;
        assert_eq!(mounts_token, is_rolecall, "{role}: {}", container["name"]);
        if is_rolecall {
            let mount = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == volume["name"])
                .unwrap();
            assert_eq!(mount["mountPath"], json!(SA_DIR), "{role}");
            assert_eq!(mount["readOnly"], json!(true), "{role}");
        }
    }
    // The node's topology: NODE_NAME from spec.nodeName, and a ClusterRole to get nodes.
    match env.get("NODE_NAME") {
        Some(node) => {
            assert_eq!(
                node["valueFrom"]["fieldRef"]["fieldPath"],
                json!("spec.nodeName"),
                "{role}"
            );
            assert_eq!(
                kind("ClusterRole")["rules"],
                json!([{ "apiGroups": [""], "resources": ["nodes"], "verbs": ["get"] }]),
                "{role}"
            );
            let binding = kind("ClusterRoleBinding");
            assert_eq!(binding["roleRef"]["kind"], json!("ClusterRole"), "{role}");
            assert_eq!(
                binding["roleRef"]["name"],
                kind("ClusterRole")["metadata"]["name"],
                "{role}"
            );
            assert_eq!(binding["subjects"][0]["kind"], json!("ServiceAccount"));
            assert_eq!(binding["subjects"][0]["name"], account, "{role}");
            assert!(binding["subjects"][0]["namespace"].is_string(), "{role}");
        }
        None => assert!(
            !ex.others.contains_key("ClusterRole"),
            "{role}: a ClusterRole for nodes, but no NODE_NAME"
        ),
    }
}

/// The examples read the set from the API, and those that take the node's zone. A static
/// ZooKeeper server list must not follow `kubectl scale` (it splits the ensemble): zookeeper
/// reads the API only with --data-dir, where rolecall reconfigures the ensemble. The roles whose
/// membership rolecall changes (etcd, zookeeper) leave in a preStop hook that reads the set's new
/// size from the API, and render with --data-dir.
#[test]
fn the_examples_read_the_set_from_the_api() {
    if !can_load_yaml("the_examples_read_the_set_from_the_api") {
        return;
    }
    let mut from_api = Vec::new();
    let mut topology = Vec::new();
    let mut membership = Vec::new();
    for ex in load_examples() {
        let pod = &ex.statefulset["spec"]["template"]["spec"];
        let init = &pod["initContainers"][0];
        let args = strings(&init["args"]);
        if args.iter().any(|a| a == "--from-api") {
            from_api.push(ex.role.clone());
        }
        if init["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == json!("NODE_NAME"))
        {
            topology.push(ex.role.clone());
        }
        let leave = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| strings(&c["lifecycle"]["preStop"]["exec"]["command"]))
            .find(|c| c.iter().any(|a| a == "leave"));
        if let Some(leave) = leave {
            membership.push(ex.role.clone());
            assert!(
                flag(&args, "--data-dir").is_some(),
                "{}: leave without --data-dir",
                ex.role
            );
            assert_eq!(flag(&leave, "--role"), Some(ex.role.as_str()));
            assert!(leave.iter().any(|a| a == "--from-api"), "{}", ex.role);
            // What the render is given that the leave needs too (the super password).
            for set in args
                .iter()
                .filter(|a| a.starts_with("super_password_file="))
            {
                assert!(leave.contains(set), "{}: leave without {set}", ex.role);
            }
        }
    }
    assert_eq!(
        from_api,
        [
            "cassandra",
            "elasticsearch",
            "etcd",
            "kafka",
            "mongodb",
            "mysql",
            "raft",
            "redis",
            "redis-cluster",
            "zookeeper"
        ]
    );
    assert_eq!(membership, ["etcd", "zookeeper"]);
    assert_eq!(topology, ["cassandra", "elasticsearch", "kafka"]);
}

/// A template without its `# >>> example` ... `# <<< example` blocks.
fn without_example_blocks(text: &str) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("# >>> example") {
            inside = true;
        } else if line.starts_with("# <<< example") {
            inside = false;
        } else if !inside {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

#[test]
fn example_configmaps_render_with_their_role() {
    if !can_load_yaml("example_configmaps_render_with_their_role") {
        return;
    }
    for ex in load_examples() {
        let role = &ex.role;
        let spec = &ex.statefulset["spec"];
        let init = &spec["template"]["spec"]["initContainers"][0];
        let args = strings(&init["args"]);
        let dir = scratch();
        let data = ex.configmap["data"].as_object().unwrap();
        assert!(!data.is_empty(), "{role}: empty ConfigMap");
        for (key, text) in data {
            let text = text.as_str().unwrap();
            assert!(
                text.contains("# >>> example"),
                "{role}/{key}: no example block"
            );
            // Apart from its example blocks, the copy is the role's own template: a change to
            // the built-in template must reach the example.
            let builtin = fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("roles/{role}/{key}")),
            )
            .unwrap_or_else(|_| panic!("{role}: ConfigMap key {key} is no template of the role"));
            assert_eq!(
                without_example_blocks(text),
                builtin,
                "examples/{role}/configmap.yaml {key} differs from roles/{role}/{key}"
            );
            fs::write(dir.path().join(key), text).unwrap();
        }
        // `rolecall check` with the example's own flags: every pod of the set renders.
        let mut check: Vec<String> = vec!["check".into(), "--role".into(), role.clone()];
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if arg == "--set" {
                check.push(arg.clone());
                check.push(rest.next().unwrap().clone());
            }
        }
        check.extend(
            [
                "--config-dir",
                dir.path().to_str().unwrap(),
                "--name",
                ex.statefulset["metadata"]["name"].as_str().unwrap(),
                "--replicas",
                &spec["replicas"].as_u64().unwrap().to_string(),
                "--namespace",
                "default",
                "--cluster-domain",
                "cluster.local",
            ]
            .map(str::to_string),
        );
        let out = common::rolecall_std().args(&check).output().unwrap();
        assert!(
            out.status.success(),
            "rolecall {}: {}",
            check.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The VOLUMEs each example's server image declares, from its Dockerfile: apache/kafka
/// (apache/kafka docker/jvm/Dockerfile), cassandra (docker-library/cassandra 4.1 and 5.0),
/// mongo (docker-library/mongo 7.0 and 8.0). The Elasticsearch image declares none.
const IMAGE_VOLUMES: &[(&str, &[&str])] = &[
    (
        "apache/kafka",
        &[
            "/etc/kafka/secrets",
            "/var/lib/kafka/data",
            "/mnt/shared/config",
        ],
    ),
    ("cassandra", &["/var/lib/cassandra"]),
    ("mongo", &["/data/db", "/data/configdb"]),
];

/// A persistent volume mounted above an image's VOLUME does not hold what is written there:
/// containerd (and CRI-O) drop an image volume only for a mount at exactly its path
/// (`isInCRIMounts`, containerd#3511) and mount a throwaway volume over the rest. Each claim of
/// an example is mounted at an image volume's path or away from all of them, and the kafka
/// example's log.dirs lie inside, not at the root of, its data volume (lost+found).
#[test]
fn persistent_volumes_are_mounted_where_the_images_keep_their_data() {
    if !can_load_yaml("persistent_volumes_are_mounted_where_the_images_keep_their_data") {
        return;
    }
    let mut checked = 0;
    for ex in load_examples() {
        let spec = &ex.statefulset["spec"];
        let claims: BTreeSet<String> = spec["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        for container in spec["template"]["spec"]["containers"].as_array().unwrap() {
            let image = container["image"].as_str().unwrap();
            let repository = image.split(':').next().unwrap();
            let Some((_, volumes)) = IMAGE_VOLUMES.iter().find(|(r, _)| *r == repository) else {
                continue;
            };
            for mount in container["volumeMounts"].as_array().unwrap() {
                if !claims.contains(mount["name"].as_str().unwrap()) {
                    continue;
                }
                let path = Path::new(mount["mountPath"].as_str().unwrap());
                for volume in *volumes {
                    let volume = Path::new(volume);
                    assert!(
                        path == volume || !volume.starts_with(path),
                        "examples/{}: claim mounted at {} in {image}, whose VOLUME {} beneath \
                         it would be a throwaway volume; mount it at {}",
                        ex.role,
                        path.display(),
                        volume.display(),
                        volume.display()
                    );
                }
                checked += 1;
                if ex.role == "kafka" {
                    let out = common::rolecall_std()
                        .args([
                            "get",
                            "vars.log_dirs",
                            "--role",
                            "kafka",
                            "--hostname",
                            "kafka-0",
                        ])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{out:?}");
                    let log_dirs = String::from_utf8(out.stdout).unwrap();
                    for dir in log_dirs.trim().split(',') {
                        let dir = Path::new(dir);
                        assert!(
                            dir.starts_with(path) && dir != path,
                            "kafka log.dirs {} is not inside the data volume at {}",
                            dir.display(),
                            path.display()
                        );
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3, "the kafka, cassandra and mongodb data volumes");
}

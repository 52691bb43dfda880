//! Every built-in role rendered across a grid of set sizes and start ordinals, each pod's files
//! compared whole against the text checked in under tests/expected/ROLE/: by the tested binary,
//! and by the image's static binaries (x86_64 and aarch64, a foreign one under qemu-user).
//!
//! The expected files were reviewed by hand against the documentation named in `ROLES` below
//! (it is also written atop each expected file). To regenerate them after a deliberate change,
//! run `ROLECALL_BLESS=1 cargo test --test roles` and review every line of `git diff tests/expected`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{AARCH64, PodSpec, Program, StaticTarget, X86_64, tell};

/// Set sizes every role is rendered for, and the start ordinals (spec.ordinals.start).
const SIZES: [u32; 3] = [1, 3, 5];
const STARTS: [u32; 2] = [0, 5];

/// A built-in role: the documentation its expected files were checked against, extra set sizes
/// beyond `SIZES`, and extra cases with vars.
#[derive(Clone)]
struct RoleCases {
    name: &'static str,
    docs: &'static str,
    extra_sizes: &'static [u32],
    /// Sizes of the grid the role must refuse with an error.
    refused: &'static [u32],
    extra: &'static [Extra],
}

/// A case beyond the grid: a size, a start ordinal and `--set` vars, named by `tag`.
struct Extra {
    tag: &'static str,
    replicas: u32,
    start: u32,
    sets: &'static [&'static str],
    /// Render as a restarted pod: `--data-dir` names a directory that holds data.
    restart: bool,
}

/// A data dir that holds data, as a restarted pod's volume does (first_boot = false).
const USED_DATA_DIR: &str = "tests/support/used-data-dir";

/// A downward-API labels file with a node's zone and region, as the kubelet writes it.
const LABELS_FILE: &str = "tests/support/labels-europe-west1-b";

/// The roles that use the topology, each rendered once more with `--labels-file LABELS_FILE`
/// (3 pods from 0, tag `topology`): `topology.zone` as Cassandra's rack, Kafka's broker.rack and
/// Elasticsearch's zone attribute. Without a labels file every role renders as before.
const TOPOLOGY_ROLES: [&str; 3] = ["cassandra", "elasticsearch", "kafka"];

const ROLES: &[RoleCases] = &[
    RoleCases {
        name: "etcd",
        docs: "etcd op-guide/configuration.md and op-guide/clustering.md (3.4, Debian etcd-server; \
               same keys in 3.5)",
        extra_sizes: &[2],
        refused: &[],
        extra: &[
            Extra {
                tag: "ipv6-token-existing",
                replicas: 3,
                start: 0,
                sets: &[
                    "listen_host=::",
                    "cluster_token=prod-etcd",
                    "cluster_state=existing",
                ],
                restart: false,
            },
            Extra {
                tag: "restarted",
                replicas: 3,
                start: 5,
                sets: &[],
                restart: true,
            },
            Extra {
                tag: "bad-state",
                replicas: 1,
                start: 0,
                sets: &["cluster_state=old"],
                restart: false,
            },
        ],
    },
    RoleCases {
        name: "redis",
        docs: "redis.conf of Redis 7.0 (self-documented; Debian redis-server) and \
               redis.io/docs/management/replication",
        extra_sizes: &[],
        refused: &[],
        extra: &[Extra {
            tag: "include-no-aof",
            replicas: 2,
            start: 0,
            sets: &["include=/etc/redis-auth/auth.conf", "appendonly=false"],
            restart: false,
        }],
    },
    RoleCases {
        name: "redis-cluster",
        docs: "redis.conf of Redis 7.0 (REDIS CLUSTER and CLUSTER DOCKER/NAT sections), \
               `redis-cli --cluster help` and redis.io/docs/management/scaling",
        extra_sizes: &[6],
        refused: &[1, 3, 5],
        extra: &[Extra {
            tag: "no-replicas",
            replicas: 3,
            start: 5,
            sets: &["replicas_per_master=0"],
            restart: false,
        }],
    },
    RoleCases {
        name: "mysql",
        docs: "kubernetes.io/docs/tasks/run-application/run-replicated-stateful-application, \
               the MySQL 8.0 reference manual (server_id, log_bin, super_read_only) and the \
               MariaDB 10.11 server system variables (read_only; no super_read_only)",
        extra_sizes: &[],
        refused: &[],
        extra: &[
            Extra {
                tag: "mariadb",
                replicas: 3,
                start: 0,
                sets: &["flavor=mariadb", "clone_port=3399"],
                restart: false,
            },
            Extra {
                tag: "bad-flavor",
                replicas: 2,
                start: 0,
                sets: &["flavor=percona"],
                restart: false,
            },
        ],
    },
    RoleCases {
        name: "zookeeper",
        docs: "ZooKeeper 3.8 Administrator's Guide (configuration parameters, cluster options, \
               myid) and the Observers guide",
        extra_sizes: &[256],
        refused: &[256],
        extra: &[Extra {
            tag: "observers-from-3",
            replicas: 5,
            start: 0,
            sets: &["observers_from=3"],
            restart: false,
        }],
    },
    RoleCases {
        name: "raft",
        docs: "Apache Ratis RaftGroupId / RaftPeer (id, address) and its examples' peer lists",
        extra_sizes: &[],
        refused: &[],
        extra: &[Extra {
            tag: "listeners-from-3",
            replicas: 5,
            start: 5,
            sets: &["listeners_from=3"],
            restart: false,
        }],
    },
    RoleCases {
        name: "mongodb",
        docs: "MongoDB 7.0/8.0 manual: configuration file options (storage.dbPath, net.bindIpAll \
               and its warning, security.keyFile, replication.replSetName), Replica Set \
               Configuration (members[n]._id: any integer >= 0 from 5.0; at most 50 members, 7 \
               voting; non-voting members need priority 0), replSetInitiate, rs.add, hello, \
               Localhost Exception, Keyfiles; docker-library/mongo 7.0/8.0 docker-entrypoint.sh",
        extra_sizes: &[],
        refused: &[],
        extra: &[
            Extra {
                tag: "non-voting",
                replicas: 9,
                start: 0,
                sets: &[
                    "replica_set=rs0",
                    "data_dir=/data/mongo",
                    "key_file=/run/secrets/mongodb-keyfile",
                ],
                restart: false,
            },
            Extra {
                tag: "bad-name",
                replicas: 1,
                start: 0,
                sets: &["replica_set=my set"],
                restart: false,
            },
            Extra {
                tag: "no-key-file",
                replicas: 3,
                start: 0,
                sets: &["key_file="],
                restart: false,
            },
            Extra {
                tag: "bad-data-dir",
                replicas: 1,
                start: 0,
                sets: &["data_dir=/data/db\nnet:"],
                restart: false,
            },
        ],
    },
    RoleCases {
        name: "cassandra",
        docs: "Cassandra 4.1/5.0 cassandra.yaml (seed_provider, listen_address, \
               broadcast_address, rpc_address, endpoint_snitch: GossipingPropertyFileSnitch \
               for production, a full repair after a snitch change), StorageService \
               (shouldBootstrap: seeds never bootstrap), Gossiper.doShadowRound (a node outside \
               its own seed list needs a live seed or peer) and docker-library/cassandra 4.1 \
               and 5.0 (Dockerfile, docker-entrypoint.sh: the CASSANDRA_* variables)",
        extra_sizes: &[],
        refused: &[],
        extra: &[
            Extra {
                tag: "dc-rack",
                replicas: 5,
                start: 5,
                sets: &[
                    "cluster_name=Test Cluster",
                    "dc=eu-west",
                    "rack=r2",
                    "seeds=3",
                ],
                restart: false,
            },
            Extra {
                tag: "one-seed-data-dir",
                replicas: 3,
                start: 0,
                sets: &["seeds=1", "data_dir=/cassandra"],
                restart: false,
            },
            Extra {
                tag: "no-seeds",
                replicas: 3,
                start: 0,
                sets: &["seeds=0"],
                restart: false,
            },
            Extra {
                tag: "no-dc",
                replicas: 3,
                start: 0,
                sets: &["dc="],
                restart: false,
            },
            Extra {
                tag: "bad-name",
                replicas: 1,
                start: 0,
                sets: &["cluster_name=a/b"],
                restart: false,
            },
            Extra {
                tag: "bad-rack",
                replicas: 1,
                start: 0,
                sets: &["rack=r1\ndc=other"],
                restart: false,
            },
        ],
    },
    RoleCases {
        name: "elasticsearch",
        docs: "Elasticsearch 8 and 9 references: Bootstrapping a cluster (initial masters by \
               node.name, only on master-eligible nodes, the same list wherever set, never \
               again once formed), discovery and cluster formation settings, node.roles, \
               Bootstrap checks (production mode, max map count, TLS with security) and \
               Virtual memory (node.store.allow_mmap); the server's BootstrapChecks and \
               ClusterBootstrapService",
        extra_sizes: &[],
        // The first `masters` (3) pods are master-eligible: never fewer pods than that.
        refused: &[1],
        extra: &[
            Extra {
                tag: "restarted",
                replicas: 5,
                start: 5,
                sets: &[],
                restart: true,
            },
            Extra {
                tag: "one-master",
                replicas: 3,
                start: 0,
                sets: &["masters=1", "cluster_name=logs"],
                restart: false,
            },
            Extra {
                tag: "no-masters",
                replicas: 3,
                start: 0,
                sets: &["masters=0"],
                restart: false,
            },
            Extra {
                tag: "formed-mmap",
                replicas: 3,
                start: 5,
                sets: &["bootstrap=false", "mmap=true"],
                restart: false,
            },
            Extra {
                tag: "security",
                replicas: 3,
                start: 0,
                sets: &["security=true"],
                restart: false,
            },
            Extra {
                tag: "bad-cluster-name",
                replicas: 3,
                start: 0,
                sets: &["cluster_name=logs\ncluster.initial_master_nodes: [x]"],
                restart: false,
            },
        ],
    },
    RoleCases {
        name: "kafka",
        docs: "Kafka 3.9 documentation: KRaft (Static versus Dynamic KRaft Quorums, Provisioning \
               Nodes, Replace KRaft Controller Disk; process.roles, node.id, \
               controller.quorum.voters, controller.listener.names) and broker configs \
               (listeners, advertised.listeners, listener.security.protocol.map, log.dirs, \
               offsets.topic.replication.factor, transaction.state.log.*); kafka-storage.sh \
               format and kafka-metadata-quorum.sh describe --replication of 3.9 (StorageTool, \
               Formatter, MetadataQuorumCommand)",
        extra_sizes: &[],
        // The static quorum is the first `controllers` (3) pods: never fewer pods than that.
        refused: &[1],
        extra: &[
            Extra {
                tag: "one-controller",
                replicas: 3,
                start: 5,
                sets: &["controllers=1", "log_dirs=/kafka/logs"],
                restart: false,
            },
            Extra {
                tag: "no-controllers",
                replicas: 3,
                start: 0,
                sets: &["controllers=0"],
                restart: false,
            },
            Extra {
                tag: "even-controllers",
                replicas: 5,
                start: 0,
                sets: &["controllers=2"],
                restart: false,
            },
            Extra {
                tag: "own-cluster-id-two-log-dirs",
                replicas: 3,
                start: 0,
                sets: &[
                    "cluster_id=4L6g3nShT-eMCtK--X86sw",
                    "log_dirs=/kafka/a,/kafka/b",
                    "format_wait=120",
                ],
                restart: false,
            },
            Extra {
                tag: "bad-cluster-id",
                replicas: 3,
                start: 0,
                sets: &["cluster_id=-L6g3nShT-eMCtK--X86sw"],
                restart: false,
            },
            Extra {
                tag: "bad-log-dirs",
                replicas: 3,
                start: 0,
                sets: &["log_dirs=/data\nauto.create.topics.enable=true"],
                restart: false,
            },
        ],
    },
];

/// Where the pods of a case live: the default namespace and domain from ordinal 0, others
/// from ordinal 5, so both kinds of names are covered.
fn placement(start: u32) -> (&'static str, &'static str) {
    if start == 0 {
        ("default", "cluster.local")
    } else {
        ("prod", "corp.example")
    }
}

struct Case {
    role: &'static str,
    replicas: u32,
    start: u32,
    sets: &'static [&'static str],
    restart: bool,
    /// `--labels-file`, for the topology.
    labels: Option<&'static str>,
    file: String,
}

fn cases(role: &RoleCases) -> Vec<Case> {
    let mut cases = Vec::new();
    for &replicas in SIZES.iter().chain(role.extra_sizes) {
        for &start in &STARTS {
            cases.push(Case {
                role: role.name,
                replicas,
                start,
                sets: &[],
                restart: false,
                labels: None,
                file: format!("{replicas}-pods-from-{start}.txt"),
            });
        }
    }
    for extra in role.extra {
        cases.push(Case {
            role: role.name,
            replicas: extra.replicas,
            start: extra.start,
            sets: extra.sets,
            restart: extra.restart,
            labels: None,
            file: format!(
                "{}-pods-from-{}-{}.txt",
                extra.replicas, extra.start, extra.tag
            ),
        });
    }
    if TOPOLOGY_ROLES.contains(&role.name) {
        cases.push(Case {
            role: role.name,
            replicas: 3,
            start: 0,
            sets: &[],
            restart: false,
            labels: Some(LABELS_FILE),
            file: "3-pods-from-0-topology.txt".into(),
        });
    }
    cases
}

fn rolecall(program: &Program, args: &[String]) -> Output {
    program.command().args(args).output().expect("run rolecall")
}

/// The flags that place a case's set; the caller adds the subcommand's own.
fn set_args(case: &Case) -> Vec<String> {
    let (namespace, domain) = placement(case.start);
    let spec = PodSpec {
        role: case.role,
        name: case.role,
        ordinal: case.start,
        replicas: case.replicas,
        start: case.start,
        namespace,
        domain,
    };
    let mut args = spec.set_args(case.sets);
    if case.restart {
        args.push("--data-dir".into());
        args.push(USED_DATA_DIR.into());
    }
    if let Some(labels) = case.labels {
        args.push("--labels-file".into());
        args.push(labels.into());
    }
    args
}

/// Renders every pod of the case and lays out all files as one readable text: a header with
/// the command, then `==> POD/FILE <==` and the whole file, for each pod in ordinal order.
/// A set the role rejects gives the error `rolecall check` prints instead.
fn render_case(program: &Program, case: &Case, docs: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let args = set_args(case);
    let mut text = format!(
        "# rolecall render {}\n# checked against: {docs}\n",
        args.join(" ")
    );
    let mut check = vec!["check".to_string(), "--name".into(), case.role.into()];
    check.extend(args.iter().cloned());
    let out = rolecall(program, &check);
    let stderr = String::from_utf8(out.stderr).unwrap();
    if !out.status.success() {
        let code = out.status.code().unwrap_or(-1);
        write!(
            text,
            "\nrolecall check fails with exit code {code}:\n{stderr}"
        )
        .unwrap();
        return text;
    }
    for line in stderr.lines() {
        writeln!(text, "{line}").unwrap();
    }
    for index in 0..case.replicas {
        let pod = format!("{}-{}", case.role, case.start + index);
        let dir = tmp.path().join(&pod);
        let mut render = vec![
            "render".to_string(),
            "--quiet".into(),
            "--hostname".into(),
            pod.clone(),
            "--out".into(),
            dir.display().to_string(),
        ];
        render.extend(args.iter().cloned());
        let out = rolecall(program, &render);
        assert!(
            out.status.success(),
            "check passed but render of {pod} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, content, mode) in role_files(&dir) {
            let mode = if mode == 0o644 {
                String::new()
            } else {
                format!(" (mode {mode:04o})")
            };
            write!(text, "\n==> {pod}/{name}{mode} <==\n{content}").unwrap();
            if !content.ends_with('\n') {
                text.push_str("\n(no newline at end of file)\n");
            }
        }
    }
    text
}

/// The files a role wrote, by name: everything but rolecall's own `peers` and `rolecall.env`.
fn role_files(dir: &Path) -> Vec<(String, String, u32)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| entry.file_name().into_string().unwrap())
        .filter(|name| name != "peers" && name != "rolecall.env")
        .map(|name| {
            let path = dir.join(&name);
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            (name, fs::read_to_string(&path).unwrap(), mode)
        })
        .collect();
    files.sort();
    files
}

fn expected_dir(role: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(role)
}

/// Whether ROLECALL_BLESS=1 asks to rewrite the expected files rather than compare with them;
/// under ROLECALL_CI=1, where every render must be compared, a failure.
fn blessing() -> bool {
    let bless = std::env::var_os("ROLECALL_BLESS").is_some_and(|v| v == "1");
    assert!(
        !(bless && common::ci()),
        "ROLECALL_BLESS=1 compares nothing, and ROLECALL_CI=1 allows no such run"
    );
    bless
}

/// Renders every case of a role with `program` and compares it with its expected file; with
/// `bless`, writes the expected files instead. Expected files no case produces are an error too.
fn check_role(program: &Program, role: &RoleCases, bless: bool) {
    let name = role.name;
    let dir = expected_dir(name);
    let mut failures = String::new();
    let mut produced = BTreeSet::new();
    for case in cases(role) {
        let path = dir.join(&case.file);
        produced.insert(case.file.clone());
        let actual = render_case(program, &case, role.docs);
        if bless {
            fs::create_dir_all(&dir).unwrap();
            if fs::read_to_string(&path).ok().as_deref() != Some(actual.as_str()) {
                fs::write(&path, &actual).unwrap();
                tell(&format!("blessed {}", path.display()));
            }
            continue;
        }
        match fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => {
                let diff = similar::TextDiff::from_lines(&expected, &actual);
                write!(
                    failures,
                    "\n{} differs (- expected, + rendered):\n{}",
                    path.display(),
                    diff.unified_diff().context_radius(2)
                )
                .unwrap();
            }
            Err(_) => write!(
                failures,
                "\n{} is missing; run with ROLECALL_BLESS=1, then review it\n",
                path.display()
            )
            .unwrap(),
        }
    }
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries {
            let file = entry.unwrap().file_name().into_string().unwrap();
            if !produced.contains(&file) {
                write!(
                    failures,
                    "\n{} belongs to no case; delete it\n",
                    dir.join(&file).display()
                )
                .unwrap();
            }
        }
    }
    assert!(failures.is_empty(), "role {name}:{failures}");
}

/// The tested binary renders every built-in role as expected; ROLECALL_BLESS=1 writes the
/// expected files instead.
#[test]
fn every_builtin_role_renders_as_expected() {
    every_role_renders_as_expected(&Program::tested(), blessing());
}

/// The image's static binaries render every role as the expected files say, as the tested binary
/// does; a binary foreign to this machine (aarch64 on x86_64) runs under qemu-user, where a
/// render costs about 80 ms of CPU rather than 1 ms. Needs the musl targets and, for the foreign
/// one, qemu-user-static; with ROLECALL_CI=1 a skip is a failure.
fn static_binary_renders_every_role_as_expected(test: &str, target: &StaticTarget) {
    if blessing() {
        common::skip(
            test,
            "the expected files are being rewritten (ROLECALL_BLESS=1)",
        );
        return;
    }
    if common::can_run_without(test, &target.lacking()) {
        every_role_renders_as_expected(&target.program(), false);
    }
}

#[test]
fn static_x86_64_binary_renders_every_role_as_expected() {
    static_binary_renders_every_role_as_expected(
        "static_x86_64_binary_renders_every_role_as_expected",
        &X86_64,
    );
}

#[test]
fn static_aarch64_binary_renders_every_role_as_expected() {
    static_binary_renders_every_role_as_expected(
        "static_aarch64_binary_renders_every_role_as_expected",
        &AARCH64,
    );
}

/// Every built-in role, found by asking the binary, renders as its expected files say: a role
/// added without cases in `ROLES` is still rendered over the grid and fails until its expected
/// files exist (and are reviewed). Roles render in parallel.
fn every_role_renders_as_expected(program: &Program, bless: bool) {
    let listed = program.builtin_roles();
    let unknown: Vec<_> = ROLES
        .iter()
        .filter(|r| !listed.iter().any(|l| l == r.name))
        .map(|r| r.name)
        .collect();
    assert!(unknown.is_empty(), "ROLES names unknown roles: {unknown:?}");
    let roles: Vec<RoleCases> = listed
        .iter()
        .map(|name| match ROLES.iter().find(|r| r.name == name) {
            Some(role) => role.clone(),
            None => RoleCases {
                name: name.clone().leak(),
                docs: "(no entry in ROLES: add one naming the documentation checked)",
                extra_sizes: &[],
                refused: &[],
                extra: &[],
            },
        })
        .collect();
    std::thread::scope(|scope| {
        let checks: Vec<_> = roles
            .iter()
            .map(|role| (role.name, scope.spawn(|| check_role(program, role, bless))))
            .collect();
        let failed: Vec<_> = checks
            .into_iter()
            .filter_map(|(name, check)| check.join().is_err().then_some(name))
            .collect();
        assert!(
            failed.is_empty(),
            "roles not as expected: {failed:?} (see above)"
        );
    });
    assert!(
        ROLES.len() == listed.len(),
        "built-in roles without an entry in ROLES: add one for each"
    );
}

/// `rolecall check --role NAME --replicas N` passes for every role at every size of the grid,
/// except the sizes the role must refuse (their expected files show the error).
#[test]
fn check_passes_for_every_role() {
    for role in ROLES {
        for case in cases(role).iter().filter(|c| c.sets.is_empty()) {
            let mut args = vec!["check".to_string(), "--name".into(), role.name.into()];
            args.extend(set_args(case));
            let out = rolecall(&Program::tested(), &args);
            if role.refused.contains(&case.replicas) {
                assert_eq!(
                    out.status.code(),
                    Some(4),
                    "rolecall {} must refuse the size",
                    args.join(" ")
                );
                continue;
            }
            assert!(
                out.status.success(),
                "rolecall {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert!(stdout.starts_with("rolecall: check ok"), "{stdout}");
        }
    }
}

/// A new ext4 volume holds `lost+found`: mounted as the data dir, it is still a first boot, and
/// the master-eligible pods of a new Elasticsearch cluster get `cluster.initial_master_nodes`
/// (without it, no master is ever elected). Anything else in the volume makes it a restart.
#[test]
fn a_data_dir_holding_only_lost_found_is_a_first_boot() {
    let tmp = common::scratch();
    let data = tmp.path().join("volume");
    fs::create_dir_all(data.join("lost+found")).unwrap();
    let data_dir = data.display().to_string();
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--data-dir".to_string(), data_dir.clone()]);
        let out = rolecall(&Program::tested(), &all);
        assert!(out.status.success(), "rolecall {all:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let first_boot = || run(&["get", "first_boot", "--hostname", "elasticsearch-0"]);
    let config = |dir: &Path| {
        let out = dir.display().to_string();
        run(&[
            "render",
            "--quiet",
            "--role",
            "elasticsearch",
            "--hostname",
            "elasticsearch-0",
            "--replicas",
            "3",
            "--out",
            &out,
        ]);
        fs::read_to_string(dir.join("elasticsearch.yml")).unwrap()
    };
    assert_eq!(first_boot(), "true\n");
    let yml = config(&tmp.path().join("first"));
    assert!(
        yml.contains("cluster.initial_master_nodes:\n  - elasticsearch-0\n"),
        "{yml}"
    );
    // Elasticsearch's own files in the volume: a restart, never bootstrapped again.
    fs::create_dir(data.join("_state")).unwrap();
    assert_eq!(first_boot(), "false\n");
    let yml = config(&tmp.path().join("restart"));
    assert!(!yml.contains("cluster.initial_master_nodes"), "{yml}");
}

/// `base64_uuid(name=...)`, the template function the kafka role derives its cluster id with:
/// Kafka's form of a UUID (22 characters of URL-safe base64, 16 bytes), the same value for the
/// same name in every version (values computed independently of rolecall), distinct names
/// distinct ids, and never a leading `-`, which kafka-storage.sh would take for an option
/// (`n270` is a name whose hash starts with one).
#[test]
fn base64_uuid_is_stable_distinct_and_never_starts_with_a_dash() {
    let tmp = common::scratch();
    let role = tmp.path().join("role");
    fs::create_dir(&role).unwrap();
    fs::write(
        role.join("role.toml"),
        "description = \"ids\"\nfiles = [\"ids\"]\n[[rules]]\nrole = \"any\"\n",
    )
    .unwrap();
    fs::write(
        role.join("ids"),
        "{{ base64_uuid(name=\"kafka.default.svc.cluster.local\") }}\n\
         {{ base64_uuid(name=\"n270\") }}\n\
         {% for i in range(end=3000) %}{{ base64_uuid(name=\"n\" ~ i) }}\n{% endfor %}",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let render = rolecall(
        &Program::tested(),
        &[
            "render",
            "--quiet",
            "--role",
            role.join("role.toml").to_str().unwrap(),
            "--hostname",
            "x-0",
            "--replicas",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(str::to_string),
    );
    assert!(render.status.success(), "{render:?}");
    let text = fs::read_to_string(out.join("ids")).unwrap();
    let ids: Vec<&str> = text.lines().collect();
    assert_eq!(ids[0], "GbGohQDziyKMjgh12O3ATg");
    assert_eq!(ids[1], "eyT28uiZjLmwpA9CGqk_jw");
    let generated = &ids[2..];
    assert_eq!(generated.len(), 3000);
    assert_eq!(generated[270], ids[1]);
    let distinct: BTreeSet<&str> = generated.iter().copied().collect();
    assert_eq!(distinct.len(), 3000, "two names gave one id");
    for id in generated {
        assert!(!id.starts_with('-'), "{id}");
        let bytes = base64url(id).unwrap_or_else(|| panic!("`{id}` is not 16 bytes of base64url"));
        assert_eq!(bytes[6] >> 4, 8, "{id}: RFC 9562 version 8");
        assert_eq!(bytes[8] >> 6, 0b10, "{id}: RFC 9562 variant");
    }
}

/// Decodes 22 characters of unpadded URL-safe base64 into the 16 bytes they hold.
fn base64url(text: &str) -> Option<[u8; 16]> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if text.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, c) in text.chars().enumerate() {
        let six = ALPHABET.find(c)? as u128;
        if i < 21 {
            bits = (bits << 6) | six;
        } else if six & 0b1111 != 0 {
            return None;
        } else {
            bits = (bits << 2) | (six >> 4);
        }
    }
    Some(bits.to_be_bytes())
}

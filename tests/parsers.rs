//! Rendered files of the systems that cannot be installed here (MongoDB, Cassandra,
//! Elasticsearch, Kafka, and the generic Raft role), plus the YAML, JSON and shell files of the
//! others, fed to the parsers that read them: PyYAML for YAML (etcd, mongod and Elasticsearch
//! read YAML 1.1/1.2; the files use only what both agree on), serde_json for JSON,
//! java.util.Properties (what Kafka, Cassandra and Ratis load .properties with), and sh (dash)
//! and bash for scripts and env files. Each parsed file is then checked for what the server
//! needs from it. The scripts that decide something (Kafka's format-storage.sh, MongoDB's
//! init-replica-set.sh and join-replica-set.sh, the first Cassandra pod's cassandra.env) run
//! against stand-ins for the programs and peers they ask. Whole-file text is compared in
//! tests/roles.rs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod common;

use common::{PodSpec, can_load_yaml, can_run_without, missing, scratch};

/// One rendered pod: where it is and where its files went.
struct Pod {
    index: u32,
    ordinal: u32,
    hostname: String,
    fqdn: String,
    dir: PathBuf,
}

/// A rendered set: `replicas` pods from ordinal `start`, in namespace prod of corp.example
/// when `start` is not 0 (as in tests/roles.rs).
struct Set {
    role: &'static str,
    replicas: u32,
    pods: Vec<Pod>,
}

impl Set {
    fn render(role: &'static str, replicas: u32, start: u32, sets: &[&str], root: &Path) -> Set {
        let (namespace, domain) = if start == 0 {
            ("default", "cluster.local")
        } else {
            ("prod", "corp.example")
        };
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let pods = (0..replicas)
            .map(|index| {
                let spec = PodSpec {
                    role,
                    name: role,
                    ordinal: start + index,
                    replicas,
                    start,
                    namespace,
                    domain,
                };
                let dir = root.join(format!("{role}-{replicas}-{start}/{}", spec.hostname()));
                spec.render(&dir, &sets);
                Pod {
                    index,
                    ordinal: spec.ordinal,
                    hostname: spec.hostname(),
                    fqdn: spec.fqdn(),
                    dir,
                }
            })
            .collect();
        Set {
            role,
            replicas,
            pods,
        }
    }

    /// The sizes and start ordinals of the grid, rendered.
    fn grid(role: &'static str, root: &Path) -> Vec<Set> {
        let mut sets = Vec::new();
        for replicas in [1, 3, 5] {
            for start in [0, 5] {
                sets.push(Set::render(role, replicas, start, &[], root));
            }
        }
        sets
    }
}

fn paths<'a>(sets: &'a [Set], file: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
    sets.iter()
        .flat_map(|set| &set.pods)
        .map(move |pod| pod.dir.join(file))
        .filter(|path| path.exists())
}

/// Runs a parser and returns its stdout; a parser that fails fails the test with its output.
fn run(program: &str, args: &[&str], files: &[PathBuf]) -> String {
    let out = Command::new(program)
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} rejected a rendered file:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// YAML, with PyYAML's safe loader.

/// Loads every file with `yaml.safe_load` and returns each document as JSON, by path.
fn load_yaml(files: Vec<PathBuf>) -> BTreeMap<PathBuf, Value> {
    assert!(!files.is_empty());
    let script = "import json, sys, yaml\n\
                  for path in sys.argv[1:]:\n    \
                      with open(path) as f:\n        \
                          print(json.dumps(yaml.safe_load(f)))\n";
    let out = run("python3", &["-c", script], &files);
    files
        .into_iter()
        .zip(out.lines().map(|line| serde_json::from_str(line).unwrap()))
        .collect()
}

#[test]
fn etcd_config_loads_as_yaml_with_every_member() {
    if !can_load_yaml("etcd_config_loads_as_yaml_with_every_member") {
        return;
    }
    let root = scratch();
    let sets = Set::grid("etcd", root.path());
    let docs = load_yaml(paths(&sets, "etcd.conf.yml").collect());
    for set in &sets {
        let cluster: Vec<String> = set
            .pods
            .iter()
            .map(|p| format!("{}=http://{}:2380", p.hostname, p.fqdn))
            .collect();
        for pod in &set.pods {
            let doc = &docs[&pod.dir.join("etcd.conf.yml")];
            assert_eq!(doc["name"], json!(pod.hostname));
            assert_eq!(doc["initial-cluster"], json!(cluster.join(",")));
            assert_eq!(
                doc["initial-advertise-peer-urls"],
                json!(format!("http://{}:2380", pod.fqdn))
            );
            assert_eq!(doc["initial-cluster-state"], json!("new"));
            assert_eq!(doc["log-outputs"], json!(["stderr"]));
        }
    }
}

#[test]
fn mongod_config_loads_as_yaml_with_the_replica_set() {
    if !can_load_yaml("mongod_config_loads_as_yaml_with_the_replica_set") {
        return;
    }
    let root = scratch();
    let sets = Set::grid("mongodb", root.path());
    let docs = load_yaml(paths(&sets, "mongod.conf").collect());
    for pod in sets.iter().flat_map(|s| &s.pods) {
        assert_eq!(
            docs[&pod.dir.join("mongod.conf")],
            json!({
                "storage": { "dbPath": "/data/db" },
                "net": { "port": 27017, "bindIpAll": true },
                // Every interface, so members authenticate with a key (and clients with a user).
                "security": { "keyFile": "/etc/mongodb/keyfile" },
                "replication": { "replSetName": "mongodb" },
            })
        );
    }
}

#[test]
fn elasticsearch_config_loads_as_yaml_with_seeds_and_initial_masters() {
    if !can_load_yaml("elasticsearch_config_loads_as_yaml_with_seeds_and_initial_masters") {
        return;
    }
    let root = scratch();
    // A set smaller than `masters` is refused (tests/roles.rs): one pod has one master.
    let sets = vec![
        Set::render("elasticsearch", 1, 0, &["masters=1"], root.path()),
        Set::render("elasticsearch", 1, 5, &["masters=1"], root.path()),
        Set::render("elasticsearch", 3, 0, &[], root.path()),
        Set::render("elasticsearch", 3, 5, &[], root.path()),
        Set::render("elasticsearch", 5, 0, &[], root.path()),
        Set::render("elasticsearch", 5, 5, &[], root.path()),
    ];
    let docs = load_yaml(paths(&sets, "elasticsearch.yml").collect());
    for set in &sets {
        let masters = &set.pods[..set.pods.len().min(3)];
        let seeds: Vec<_> = masters.iter().map(|p| format!("{}:9300", p.fqdn)).collect();
        let names: Vec<_> = masters.iter().map(|p| p.hostname.clone()).collect();
        for pod in &set.pods {
            let doc = &docs[&pod.dir.join("elasticsearch.yml")];
            let master = pod.index < 3;
            let mut want = json!({
                "cluster.name": "elasticsearch",
                "node.name": pod.hostname,
                "node.roles": if master {
                    json!(["master", "data", "ingest"])
                } else {
                    json!(["data", "ingest"])
                },
                "network.host": "0.0.0.0",
                "discovery.seed_hosts": seeds,
                // No mmap, no vm.max_map_count bootstrap check (BootstrapChecks.MaxMapCountCheck).
                "node.store.allow_mmap": false,
                "xpack.security.enabled": false,
            });
            // Only master-eligible nodes bootstrap; these render as a first boot.
            if master {
                want["cluster.initial_master_nodes"] = json!(names);
            }
            assert_eq!(doc, &want, "{}", pod.hostname);
        }
    }
}

// JSON: the rs.initiate() document.

#[test]
fn mongodb_replica_set_document_has_every_member_and_at_most_seven_voters() {
    let root = scratch();
    let set = Set::render("mongodb", 9, 5, &[], root.path());
    let first = &set.pods[0].dir;
    let doc: Value =
        serde_json::from_str(&fs::read_to_string(first.join("replica-set.json")).unwrap())
            .expect("replica-set.json is JSON");
    assert_eq!(doc["_id"], json!("mongodb"));
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 9);
    for (member, pod) in members.iter().zip(&set.pods) {
        let mut want = json!({ "_id": pod.ordinal, "host": format!("{}:27017", pod.fqdn) });
        // MongoDB allows 7 voting members; non-voting ones must have priority 0.
        if pod.index >= 7 {
            want["votes"] = json!(0);
            want["priority"] = json!(0);
        }
        assert_eq!(member, &want);
    }
    // Only the first pod initiates.
    assert!(!set.pods[1].dir.join("replica-set.json").exists());
}

// .properties, with java.util.Properties.

const PARSE_PROPERTIES: &str = r#"
import java.io.FileReader;
import java.util.Properties;
import java.util.TreeSet;

public class ParseProperties {
    public static void main(String[] args) throws Exception {
        for (String path : args) {
            Properties properties = new Properties();
            try (FileReader reader = new FileReader(path)) {
                properties.load(reader);
            }
            for (String key : new TreeSet<>(properties.stringPropertyNames())) {
                System.out.println(path + "\t" + key + "\t" + properties.getProperty(key));
            }
        }
    }
}
"#;

type Properties = BTreeMap<PathBuf, BTreeMap<String, String>>;

/// Loads every file with java.util.Properties, in one JVM.
fn load_properties(files: Vec<PathBuf>, scratch: &Path) -> Properties {
    let source = scratch.join("ParseProperties.java");
    fs::write(&source, PARSE_PROPERTIES).unwrap();
    let out = run("java", &[source.to_str().unwrap()], &files);
    let mut loaded: Properties = files.into_iter().map(|f| (f, BTreeMap::new())).collect();
    for line in out.lines() {
        let mut fields = line.splitn(3, '\t');
        let (path, key, value) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        loaded
            .get_mut(Path::new(path))
            .unwrap()
            .insert(key.to_string(), value.to_string());
    }
    loaded
}

fn can_run_java(test: &str) -> bool {
    can_run_without(test, &missing(&[("java", "default-jre-headless")]))
}

#[test]
fn kafka_properties_load_with_a_consistent_kraft_quorum() {
    if !can_run_java("kafka_properties_load_with_a_consistent_kraft_quorum") {
        return;
    }
    let root = scratch();
    // (set, controllers): a set smaller than `controllers` is refused (tests/roles.rs).
    let sets = [
        (
            Set::render("kafka", 1, 0, &["controllers=1"], root.path()),
            1,
        ),
        (
            Set::render("kafka", 1, 5, &["controllers=1"], root.path()),
            1,
        ),
        (Set::render("kafka", 3, 0, &[], root.path()), 3),
        (Set::render("kafka", 3, 5, &[], root.path()), 3),
        (Set::render("kafka", 5, 0, &[], root.path()), 3),
        (Set::render("kafka", 5, 5, &[], root.path()), 3),
        (
            Set::render("kafka", 4, 5, &["controllers=1"], root.path()),
            1,
        ),
    ];
    let files: Vec<PathBuf> = sets
        .iter()
        .flat_map(|(set, _)| &set.pods)
        .map(|pod| pod.dir.join("server.properties"))
        .collect();
    let loaded = load_properties(files, root.path());
    for (set, controllers) in &sets {
        let voters: Vec<String> = set.pods[..*controllers]
            .iter()
            .map(|p| format!("{}@{}:9093", p.ordinal, p.fqdn))
            .collect();
        let copies = set.replicas.min(3).to_string();
        for pod in &set.pods {
            let props = &loaded[&pod.dir.join("server.properties")];
            let controller = (pod.index as usize) < *controllers;
            let get = |key: &str| props.get(key).map(String::as_str);
            assert_eq!(get("node.id"), Some(pod.ordinal.to_string().as_str()));
            assert_eq!(
                get("process.roles"),
                Some(if controller {
                    "broker,controller"
                } else {
                    "broker"
                })
            );
            assert_eq!(
                get("controller.quorum.voters"),
                Some(voters.join(",").as_str())
            );
            assert_eq!(
                get("listeners"),
                Some(if controller {
                    "PLAINTEXT://:9092,CONTROLLER://:9093"
                } else {
                    "PLAINTEXT://:9092"
                })
            );
            assert_eq!(
                get("advertised.listeners"),
                Some(format!("PLAINTEXT://{}:9092", pod.fqdn).as_str())
            );
            assert_eq!(get("controller.listener.names"), Some("CONTROLLER"));
            // Inside the image's volume /var/lib/kafka/data, not its root (lost+found).
            assert_eq!(get("log.dirs"), Some("/var/lib/kafka/data/logs"));
            assert_eq!(
                get("offsets.topic.replication.factor"),
                Some(copies.as_str())
            );
            assert_eq!(
                get("transaction.state.log.replication.factor"),
                Some(copies.as_str())
            );
        }
    }
}

// Scripts run against stand-ins for the programs they call.

/// A stand-in for Kafka's bin/ (KAFKA_HOME): kafka-storage.sh records its arguments;
/// kafka-metadata-quorum.sh records its arguments and prints the next of `answers`, then fails
/// as it does when no controller answers or none leads.
struct FakeKafka {
    home: PathBuf,
}

impl FakeKafka {
    fn new(home: &Path, answers: &[&str]) -> FakeKafka {
        let bin = home.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let storage = "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$KAFKA_HOME/storage.log\"\n";
        let quorum = "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$KAFKA_HOME/quorum.log\"\n\
                      n=$(wc -l < \"$KAFKA_HOME/quorum.log\")\n\
                      [ -f \"$KAFKA_HOME/answer-$n\" ] || exit 1\n\
                      cat \"$KAFKA_HOME/answer-$n\"\n";
        for (name, text) in [
            ("kafka-storage.sh", storage),
            ("kafka-metadata-quorum.sh", quorum),
        ] {
            fs::write(bin.join(name), text).unwrap();
            fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (i, answer) in answers.iter().enumerate() {
            fs::write(home.join(format!("answer-{}", i + 1)), answer).unwrap();
        }
        FakeKafka {
            home: home.to_path_buf(),
        }
    }

    /// Runs `script` with sh for at most `seconds`: its exit code (124 when cut off) and stderr.
    fn run(&self, script: &Path, seconds: u32) -> (i32, String) {
        let out = Command::new("timeout")
            .arg(seconds.to_string())
            .arg("sh")
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KAFKA_HOME", &self.home)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn lines(&self, log: &str) -> Vec<String> {
        fs::read_to_string(self.home.join(log))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// `describe --replication` as kafka-metadata-quorum.sh 3.9 prints it (ToolsUtils.prettyPrintTable
/// of MetadataQuorumCommand): the leader kafka-0 at `leader`, kafka-2 at `other`, kafka-1 (the
/// node being formatted) never seen, a broker observing.
fn replication(leader: u64, other: u64) -> String {
    format!(
        "NodeId  DirectoryId             LogEndOffset  Lag  LastFetchTimestamp  LastCaughtUpTimestamp  Status\n\
         0       AAAAAAAAAAAAAAAAAAAAAA  {leader:<12}  0    1729000000000       1729000000000          Leader\n\
         2       AAAAAAAAAAAAAAAAAAAAAA  {other:<12}  {lag:<3}  1729000000000       1728999990000          Follower\n\
         1       AAAAAAAAAAAAAAAAAAAAAA  -1            {leader:<3}  -1                  -1                     Follower\n\
         3       AAAAAAAAAAAAAAAAAAAAAA  {leader:<12}  0    1729000000000       1729000000000          Observer\n",
        lag = leader.saturating_sub(other)
    )
}

#[test]
fn kafka_format_storage_formats_new_storage_only_and_waits_for_the_quorum() {
    let programs = [("sh", "dash"), ("timeout", "coreutils"), ("awk", "mawk")];
    if !can_run_without(
        "kafka_format_storage_formats_new_storage_only_and_waits_for_the_quorum",
        &missing(&programs),
    ) {
        return;
    }
    let root = scratch();
    let mut case = 0;
    // Renders a 5-pod set (3 controllers) whose pods keep their logs under `volume`, and returns
    // pod `index`'s script with a fake Kafka that gives `answers`.
    let mut setup = |index: usize, sets: &[&str], answers: &[&str]| {
        case += 1;
        let dir = root.path().join(format!("case-{case}"));
        let volume = dir.join("volume");
        let mut all = vec![format!("log_dirs={}/logs", volume.display())];
        all.extend(
            sets.iter()
                .map(|s| s.replace("VOLUME", &volume.display().to_string())),
        );
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let set = Set::render("kafka", 5, 0, &all, &dir);
        let fake = FakeKafka::new(&dir.join("kafka"), answers);
        let script = set.pods[index].dir.join("format-storage.sh");
        (fake, script, volume)
    };
    let format = |fake: &FakeKafka, config: &Path| {
        // The cluster id every pod of `kafka` in default/cluster.local formats with.
        vec![format!(
            "format --ignore-formatted --cluster-id GbGohQDziyKMjgh12O3ATg --config {}",
            config.display()
        )]
        .into_iter()
        .eq(fake.lines("storage.log"))
    };

    // A broker formats new storage at once; the quorum is none of its business.
    let (fake, script, _) = setup(3, &[], &[]);
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );
    assert!(fake.lines("quorum.log").is_empty());

    // Formatted storage is left alone.
    let (fake, script, volume) = setup(1, &[], &[]);
    fs::create_dir_all(volume.join("logs")).unwrap();
    fs::write(volume.join("logs/meta.properties"), "cluster.id=x\n").unwrap();
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert!(fake.lines("storage.log").is_empty(), "{err}");
    assert!(err.contains("nothing to do"), "{err}");

    // The cluster's first boot: a controller with new storage, no leader among the others for
    // format_wait seconds.
    let (fake, script, _) = setup(1, &["format_wait=0"], &[]);
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );
    assert_eq!(
        fake.lines("quorum.log"),
        [
            "--bootstrap-controller kafka-0.kafka.default.svc.cluster.local:9093,\
          kafka-2.kafka.default.svc.cluster.local:9093 describe --replication"
        ]
    );
    assert!(err.contains("the cluster's first boot"), "{err}");

    // A controller whose volume was lost, or that starts after the others formed the quorum:
    // once a leader is seen, only a majority of caught-up voters lets it format, never the
    // deadline. kafka-2 lags at first (40 of 100), then has caught up.
    let (fake, script, _) = setup(
        1,
        &["format_wait=0"],
        &[&replication(100, 40), &replication(130, 100)],
    );
    let (code, err) = fake.run(&script, 20);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fake.lines("quorum.log").len(), 2, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );
    assert!(
        err.contains("waiting until 2 of the other voters have offset 100 (1 have)"),
        "{err}"
    );
    assert!(!err.contains("first boot"), "{err}");

    // Columns are found by name: the table of Kafka before 3.9 has no DirectoryId.
    let old = "NodeId LogEndOffset Lag LastFetchTimestamp LastCaughtUpTimestamp Status\n\
               0 55 0 1 1 Leader\n2 55 0 1 1 Follower\n1 -1 56 -1 -1 Follower\n";
    let (fake, script, _) = setup(1, &["format_wait=0"], &[old]);
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fake.lines("quorum.log").len(), 1, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );

    // The metadata log is new but another log directory was formatted: not a first boot, so
    // without a leader it waits, whatever format_wait says (cut off here after 7 s).
    let (fake, script, volume) = setup(
        1,
        &["format_wait=0", "log_dirs=VOLUME/logs,VOLUME/more"],
        &[],
    );
    fs::create_dir_all(volume.join("more")).unwrap();
    fs::write(volume.join("more/meta.properties"), "cluster.id=x\n").unwrap();
    let (code, err) = fake.run(&script, 7);
    assert_eq!(code, 124, "{err}");
    assert!(fake.lines("storage.log").is_empty(), "{err}");
    assert!(fake.lines("quorum.log").len() >= 2, "{err}");

    // The metadata log is kept and only another directory is new (a log directory added):
    // formatted at once.
    let (fake, script, volume) = setup(1, &["log_dirs=VOLUME/logs,VOLUME/more"], &[]);
    fs::create_dir_all(volume.join("logs")).unwrap();
    fs::write(volume.join("logs/meta.properties"), "cluster.id=x\n").unwrap();
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );
    assert!(fake.lines("quorum.log").is_empty());

    // A single controller has no one to ask.
    let (fake, script, _) = setup(0, &["controllers=1"], &[]);
    let (code, err) = fake.run(&script, 10);
    assert_eq!(code, 0, "{err}");
    assert!(
        format(&fake, &script.with_file_name("server.properties")),
        "{err}"
    );
    assert!(fake.lines("quorum.log").is_empty());
}

/// Sources the first pod's cassandra.env with bash in its own network and mount namespace:
/// /etc/hosts from `hosts`, and when `answering` is set, something listening on the CQL port
/// 9042 at 127.0.0.1, which `hosts` gives that pod's name. Returns CASSANDRA_SEEDS and stderr.
fn seeds_in_a_pod(env: &Path, hosts: &Path, answering: bool) -> (String, String) {
    let script = r#"set -eu
ip link set lo up
mount --bind "$1" /etc/hosts
if [ "$2" = yes ]; then
    python3 -c 'import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 9042))
s.listen(8)
time.sleep(30)' &
    tries=0
    until (exec 3<>/dev/tcp/127.0.0.1/9042) 2>/dev/null; do
        tries=$((tries + 1)); [ "$tries" -lt 100 ] || exit 9; sleep 0.1
    done
fi
bash -c '. "$1"; printf "%s\n" "$CASSANDRA_SEEDS"' bash "$3"
[ "$2" != yes ] || kill %1"#;
    let out = Command::new("unshare")
        .args(["-n", "-m", "bash", "-c", script, "pod"])
        .arg(hosts)
        .arg(if answering { "yes" } else { "no" })
        .arg(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cassandra_first_pod_founds_the_ring_or_joins_the_one_that_runs() {
    let test = "cassandra_first_pod_founds_the_ring_or_joins_the_one_that_runs";
    let mut lacking = missing(&[
        ("unshare", "util-linux"),
        ("ip", "iproute2"),
        ("bash", "bash"),
        ("timeout", "coreutils"),
        ("python3", "python3"),
    ]);
    if !nix::unistd::Uid::effective().is_root() {
        lacking.push("root, for network and mount namespaces".into());
    }
    if !can_run_without(test, &lacking) {
        return;
    }
    let root = scratch();
    let volume = root.path().join("volume");
    fs::create_dir_all(&volume).unwrap();
    let data_dir = format!("data_dir={}", volume.display());
    let set = Set::render("cassandra", 3, 0, &[&data_dir], root.path());
    let env = set.pods[0].dir.join("cassandra.env");
    let (first, second, third) = (&set.pods[0].fqdn, &set.pods[1].fqdn, &set.pods[2].fqdn);
    // cassandra-2 answers at 127.0.0.1; cassandra-1 is a TEST-NET-1 address nothing answers.
    let hosts = root.path().join("hosts");
    fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n192.0.2.1 {second}\n127.0.0.1 {third}\n192.0.2.9 {first}\n"),
    )
    .unwrap();
    let founding = format!("{first},{second}");

    // A new volume and no other node: the ring's first boot, cassandra-0 is its own seed.
    let (seeds, err) = seeds_in_a_pod(&env, &hosts, false);
    assert_eq!(seeds, founding, "{err}");

    // A new volume while cassandra-2 answers CQL: a replaced volume. cassandra-0 must not be
    // its own seed, so that it bootstraps (streams its data) through the running ring.
    let (seeds, err) = seeds_in_a_pod(&env, &hosts, true);
    assert_eq!(seeds, format!("{third},{second}"), "{err}");
    assert!(err.contains("joining the ring through it"), "{err}");

    // Its system keyspace on the volume: a restart, the node of the first boot, its own seed
    // again (it will not bootstrap anyway), whoever answers.
    fs::create_dir_all(volume.join("data/system")).unwrap();
    let (seeds, err) = seeds_in_a_pod(&env, &hosts, true);
    assert_eq!(seeds, founding, "{err}");
}

/// A stand-in for mongosh, as the mongodb scripts call it (`mongosh --quiet URI --eval JS`): it
/// logs what was asked of which host and answers from files in `dir`: `down-HOST` (no answer),
/// `setname-HOST` (what db.hello().setName prints), `state-HOST` (none, member or `absent NAME`,
/// what join-replica-set.sh's check prints), `initiate-N` (the Nth replSetInitiate succeeds).
fn fake_mongosh(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
uri=$2
js=$4
host=${uri#mongodb://}
host=${host%%:*}
case "$js" in
*replSetInitiate*) kind=initiate ;;
*passives*) kind=state ;;
*setName*) kind=setname ;;
*ping*) kind=ping ;;
*) kind=unknown ;;
esac
printf '%s %s\n' "$kind" "$host" >> "$FAKE/calls"
[ ! -e "$FAKE/down-$host" ] || exit 1
case $kind in
initiate)
    n=$(grep -c '^initiate ' "$FAKE/calls")
    if [ -e "$FAKE/initiate-$n" ]; then echo "replSetInitiate: ok"; exit 0; fi
    echo "replSetInitiate: NodeNotFound: not all members answered"; exit 1 ;;
state) cat "$FAKE/state-$host" 2>/dev/null || echo none ;;
setname) cat "$FAKE/setname-$host" 2>/dev/null || echo ;;
ping) echo 1 ;;
*) exit 2 ;;
esac
"#;
    fs::write(bin.join("mongosh"), script).unwrap();
    fs::set_permissions(bin.join("mongosh"), fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs `script` with the fake mongosh of `dir` for at most 20 s: exit code, stderr, and the
/// calls it made (`KIND HOST` lines).
fn run_with_fake_mongosh(script: &Path, dir: &Path) -> (i32, String, Vec<String>) {
    let bin = fake_mongosh(dir);
    let _ = fs::remove_file(dir.join("calls"));
    let out = Command::new("timeout")
        .args(["20", "sh"])
        .arg(script)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("FAKE", dir)
        .output()
        .unwrap();
    let calls = fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        calls,
    )
}

#[test]
fn mongodb_scripts_initiate_once_retry_and_refuse_unlisted_pods() {
    let programs = [("sh", "dash"), ("timeout", "coreutils"), ("grep", "grep")];
    if !can_run_without(
        "mongodb_scripts_initiate_once_retry_and_refuse_unlisted_pods",
        &missing(&programs),
    ) {
        return;
    }
    let root = scratch();
    let set = Set::render("mongodb", 3, 0, &[], root.path());
    let fqdn = |i: usize| set.pods[i].fqdn.clone();
    let init = set.pods[0].dir.join("init-replica-set.sh");
    let fake = |name: &str, files: &[(String, &str)]| {
        let dir = root.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            fs::write(dir.join(file), text).unwrap();
        }
        dir
    };

    // The set's first boot: every member answers, none has a config; one replSetInitiate.
    let dir = fake("first-boot", &[("initiate-1".into(), "")]);
    let (code, err, calls) = run_with_fake_mongosh(&init, &dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("initiate "))
            .collect::<Vec<_>>(),
        ["initiate 127.0.0.1"],
        "{err}"
    );
    for i in 0..3 {
        assert!(calls.contains(&format!("ping {}", fqdn(i))), "{calls:?}");
    }
    assert!(err.contains("replica set mongodb initiated"), "{err}");

    // A replSetInitiate that fails is tried again (here it succeeds the second time).
    let dir = fake("retry", &[("initiate-2".into(), "")]);
    let (code, err, calls) = run_with_fake_mongosh(&init, &dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("initiate ")).count(),
        2,
        "{err}"
    );
    assert!(err.contains("trying again"), "{err}");

    // Another member already has the set: the first pod's volume is new; no replSetInitiate
    // (it would make a second set), this member syncs from the others.
    let dir = fake("replaced", &[(format!("setname-{}", fqdn(2)), "mongodb\n")]);
    let (code, err, calls) = run_with_fake_mongosh(&init, &dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        !calls.iter().any(|c| c.starts_with("initiate ")),
        "{calls:?}"
    );
    assert!(err.contains("is a member of replica set mongodb"), "{err}");

    // This member has it: a restart; nothing asked of the others.
    let dir = fake("restart", &[("setname-127.0.0.1".into(), "mongodb\n")]);
    let (code, err, calls) = run_with_fake_mongosh(&init, &dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(calls, ["setname 127.0.0.1"], "{err}");

    // join-replica-set.sh: a pod the running set lists starts, also when a member is down.
    let join = |pod: usize| set.pods[pod].dir.join("join-replica-set.sh");
    let dir = fake(
        "listed",
        &[
            (format!("down-{}", fqdn(0)), ""),
            (format!("state-{}", fqdn(1)), "member\n"),
        ],
    );
    let (code, err, _) = run_with_fake_mongosh(&join(2), &dir);
    assert_eq!(code, 0, "{err}");
    // The set's first boot: no member has a config.
    let dir = fake("no-config", &[]);
    let (code, err, calls) = run_with_fake_mongosh(&join(1), &dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(calls.len(), 2, "{calls:?}");
    // The set grew: a running set that does not list the pod refuses it, and says how to add it.
    let grown = Set::render("mongodb", 9, 0, &[], &root.path().join("grown"));
    let dir = fake(
        "unlisted",
        &[(format!("state-{}", fqdn(0)), "absent mongodb\n")],
    );
    let (code, err, _) =
        run_with_fake_mongosh(&grown.pods[8].dir.join("join-replica-set.sh"), &dir);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not list mongodb-8"), "{err}");
    assert!(
        err.contains(&format!(
            "rs.add({{ _id: 8, host: \"{}:27017\", votes: 0, priority: 0 }})",
            grown.pods[8].fqdn
        )),
        "{err}"
    );
}

#[test]
fn raft_and_cassandra_properties_load_with_java() {
    if !can_run_java("raft_and_cassandra_properties_load_with_java") {
        return;
    }
    let root = scratch();
    let raft = Set::grid("raft", root.path());
    let cassandra = vec![
        Set::render("cassandra", 3, 0, &[], root.path()),
        Set::render("cassandra", 3, 5, &["dc=eu-west", "rack=r2"], root.path()),
    ];
    let mut files: Vec<PathBuf> = paths(&raft, "raft.properties").collect();
    files.extend(paths(&cassandra, "cassandra-rackdc.properties"));
    let loaded = load_properties(files, root.path());
    for set in &raft {
        let peers: Vec<_> = set
            .pods
            .iter()
            .map(|p| format!("n{}={}:9872", p.ordinal, p.fqdn))
            .collect();
        for pod in &set.pods {
            let props = &loaded[&pod.dir.join("raft.properties")];
            assert_eq!(props["raft.server.id"], format!("n{}", pod.ordinal));
            assert_eq!(props["raft.server.address"], format!("{}:9872", pod.fqdn));
            assert_eq!(props["raft.peers"], peers.join(","));
            assert_eq!(props["raft.listeners"], "");
        }
    }
    for (set, dc, rack) in [
        (&cassandra[0], "datacenter1", "rack1"),
        (&cassandra[1], "eu-west", "r2"),
    ] {
        for pod in &set.pods {
            let props = &loaded[&pod.dir.join("cassandra-rackdc.properties")];
            let want: BTreeMap<String, String> = [("dc", dc), ("rack", rack)]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into();
            assert_eq!(props, &want, "{}", set.role);
        }
    }
}

// Shell: scripts parsed by sh (dash on Debian) and bash, env files sourced by both.

const SHELLS: [(&str, &str); 2] = [("sh", "dash"), ("bash", "bash")];

#[test]
fn scripts_parse_with_sh_and_bash() {
    if !can_run_without("scripts_parse_with_sh_and_bash", &missing(&SHELLS)) {
        return;
    }
    let root = scratch();
    let sets = [
        Set::render("redis-cluster", 6, 0, &[], root.path()),
        Set::render("redis-cluster", 8, 5, &[], root.path()),
        Set::render("mongodb", 3, 0, &[], root.path()),
        Set::render("mongodb", 9, 5, &[], root.path()),
        Set::render("kafka", 5, 0, &[], root.path()),
        Set::render("kafka", 3, 5, &["log_dirs=/a,/b"], root.path()),
    ];
    let scripts: Vec<PathBuf> = paths(&sets, "create-cluster.sh")
        .chain(paths(&sets, "init-replica-set.sh"))
        .collect();
    assert_eq!(scripts.len(), 4, "one script per set, on its first pod");
    // And the scripts every pod gets.
    let every_pod: Vec<PathBuf> = paths(&sets, "join-replica-set.sh")
        .chain(paths(&sets, "format-storage.sh"))
        .chain(paths(&sets, "join-cluster.sh"))
        .chain(paths(&sets, "leave-cluster.sh"))
        .chain(paths(&sets, "ready.sh"))
        .collect();
    assert_eq!(
        every_pod.len(),
        3 + 9 + 5 + 3 + 3 * (6 + 8),
        "one script of each kind per pod"
    );
    let scripts = [scripts, every_pod].concat();
    for (shell, _) in SHELLS {
        for script in &scripts {
            run(shell, &["-n"], std::slice::from_ref(script));
        }
    }
}

/// Sources `file` with `shell` (unset variables an error) and prints the variables named.
fn source(shell: &str, file: &Path, names: &[&str]) -> Vec<String> {
    let script = format!(
        "set -eu; . \"$1\"; printf '%s\\n' {}",
        names
            .iter()
            .map(|n| format!("\"${n}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(shell)
        .args(["-c", &script, shell])
        .arg(file)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell} cannot source {file:?}: {out:?}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn env_files_source_with_sh_and_bash() {
    if !can_run_without("env_files_source_with_sh_and_bash", &missing(&SHELLS)) {
        return;
    }
    let root = scratch();
    let cassandra = Set::render(
        "cassandra",
        5,
        5,
        &["cluster_name=Test Cluster", "dc=eu-west"],
        root.path(),
    );
    let mysql = Set::render("mysql", 3, 5, &[], root.path());
    let (first, second) = (&cassandra.pods[0].fqdn, &cassandra.pods[1].fqdn);
    for (shell, _) in SHELLS {
        for pod in &cassandra.pods {
            // No pod is its own seed but the first, which founds the ring (here no other pod
            // answers, so the first pod, whose volume is new, founds it).
            let seeds = match pod.index {
                0 => format!("{first},{second}"),
                1 => first.clone(),
                _ => format!("{first},{second}"),
            };
            let values = source(
                shell,
                &pod.dir.join("cassandra.env"),
                &[
                    "CASSANDRA_CLUSTER_NAME",
                    "CASSANDRA_SEEDS",
                    "CASSANDRA_LISTEN_ADDRESS",
                    "CASSANDRA_BROADCAST_ADDRESS",
                    "CASSANDRA_ENDPOINT_SNITCH",
                    "CASSANDRA_DC",
                    "CASSANDRA_RACK",
                ],
            );
            assert_eq!(
                values,
                [
                    "Test Cluster",
                    &seeds,
                    &pod.fqdn,
                    &pod.fqdn,
                    "GossipingPropertyFileSnitch",
                    "eu-west",
                    "rack1"
                ]
            );
        }
        for pod in &mysql.pods[1..] {
            let values = source(
                shell,
                &pod.dir.join("replication.env"),
                &["CLONE_FROM_HOST", "PRIMARY_HOST", "PRIMARY_PORT"],
            );
            let previous = &mysql.pods[pod.index as usize - 1];
            assert_eq!(values, [&previous.fqdn, &mysql.pods[0].fqdn, "3306"]);
        }
    }
}

//! Rendered configs fed to the real servers (Debian packages): each test renders a pod's files
//! with the built-in role, starts the server from them and proves the server took them, by
//! asking it what it runs with. Each server runs alone in its own network and mount namespace
//! (a simulated pod): every port is free there, its FQDN resolves to itself through a private
//! /etc/hosts, and its peers resolve to TEST-NET-1 addresses (RFC 5737) that nothing answers.
//! Forming whole clusters is not this file's job.
//!
//! Needs root (namespaces) and the programs; without them a test is skipped with a message, or
//! fails when ROLECALL_CI=1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

mod common;

use common::{PodSpec, can_run_without, missing, scratch};

/// How long a server may take to answer: JVMs and MariaDB on a busy 2-core machine are slow.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The programs a simulated pod needs, whatever runs in it.
const SANDBOX: [(&str, &str); 4] = [
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("mount", "mount"),
    ("ip", "iproute2"),
];

/// Whether a server test can run: root (for namespaces), the sandbox's programs and its own.
fn can_run(test: &str, programs: &[(&str, &str)]) -> bool {
    let mut lacking = missing(&SANDBOX);
    lacking.extend(missing(programs));
    if !nix::unistd::Uid::effective().is_root() {
        lacking.push("root, for network and mount namespaces".into());
    }
    can_run_without(test, &lacking)
}

/// A server running in its own network and mount namespace; killed when dropped, so a failing
/// test leaves nothing behind.
struct Pod {
    child: Child,
    log: PathBuf,
    what: String,
    /// More processes started in the same namespaces, as in a pod with several containers.
    others: Vec<Child>,
}

impl Pod {
    /// Starts `argv` in a new network namespace (only loopback, brought up) and mount
    /// namespace (with `hosts` over /etc/hosts and a private /tmp). Output goes to a log file
    /// in `dir`.
    fn start(what: &str, dir: &Path, hosts: &str, argv: &[String]) -> Pod {
        let hosts_file = dir.join("hosts");
        fs::write(&hosts_file, hosts).unwrap();
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let log = dir.join(format!("{what}.log"));
        let out = fs::File::create(&log).unwrap();
        let script = "ip link set lo up && mount --bind \"$1\" /etc/hosts && \
                      mount --bind \"$2\" /tmp && shift 2 && exec \"$@\"";
        // Without --fork, unshare execs sh, which execs the server: one pid all along.
        let child = Command::new("unshare")
            .args(["--net", "--mount", "--", "sh", "-c", script, "sh"])
            .arg(&hosts_file)
            .arg(&tmp)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Pod {
            child,
            log,
            what: what.to_string(),
            others: Vec::new(),
        }
    }

    /// Starts one more long-running process in the pod's namespaces, logging to `log`.
    fn spawn(&mut self, log: &Path, argv: &[String]) {
        let out = fs::File::create(log).unwrap();
        let child = Command::new("nsenter")
            .args([
                "--target",
                &self.child.id().to_string(),
                "--net",
                "--mount",
                "--",
            ])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.others.push(child);
    }

    /// Runs a command inside the pod's namespaces.
    fn exec(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .args([
                "--target",
                &self.child.id().to_string(),
                "--net",
                "--mount",
                "--",
            ])
            .args(argv)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap()
    }

    /// Runs a command in the pod and returns its stdout if it succeeds.
    fn ok(&self, argv: &[&str]) -> Option<String> {
        let out = self.exec(argv);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sends `request` to a TCP port in the pod and returns everything it answers.
    fn tcp(&self, port: u16, request: &str) -> Option<String> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf '%s' \"$1\" >&3 && timeout 5 cat <&3"
        );
        self.ok(&["bash", "-c", &script, "bash", request])
    }

    fn log(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `probe` until it gives a value; fails with the server's log if the server exits
    /// or the time runs out.
    fn wait_for<T>(&mut self, what: &str, mut probe: impl FnMut(&Pod) -> Option<T>) -> T {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before {what}; its log:\n{}",
                    self.what,
                    self.log()
                );
            }
            if let Some(value) = probe(self) {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not reach {what} within {START_TIMEOUT:?}; its log:\n{}",
                    self.what,
                    self.log()
                );
            }
            sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for child in self.others.iter_mut().chain([&mut self.child]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// etcd: Debian etcd-server 3.4, reading the rendered file with --config-file.

const ETCD: [(&str, &str); 2] = [("etcd", "etcd-server"), ("etcdctl", "etcd-client")];

fn start_etcd(spec: &PodSpec, dir: &Path) -> Pod {
    let out = dir.join("out");
    spec.render(&out, &[format!("data_dir={}", dir.join("data").display())]);
    let config = out.join("etcd.conf.yml").display().to_string();
    Pod::start(
        &spec.hostname(),
        dir,
        &spec.hosts(),
        &strings(&["etcd", "--config-file", &config]),
    )
}

#[test]
fn etcd_serves_from_a_rendered_one_member_config() {
    if !can_run("etcd_serves_from_a_rendered_one_member_config", &ETCD) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "etcd",
        name: "etcd",
        ordinal: 5,
        replicas: 1,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let mut pod = start_etcd(&spec, dir.path());
    let endpoints = "--endpoints=http://127.0.0.1:2379";
    pod.wait_for("a healthy endpoint", |pod| {
        pod.ok(&["etcdctl", endpoints, "endpoint", "health"])
    });
    pod.ok(&["etcdctl", endpoints, "put", "rolecall", "accepted"])
        .expect("etcdctl put");
    let value = pod
        .ok(&[
            "etcdctl",
            endpoints,
            "get",
            "rolecall",
            "--print-value-only",
        ])
        .expect("etcdctl get");
    assert_eq!(value.trim(), "accepted");
    // The member runs under the rendered name, with the rendered advertised URLs.
    let members = pod
        .ok(&["etcdctl", endpoints, "member", "list"])
        .expect("etcdctl member list");
    let fields: Vec<_> = members.trim().split(", ").skip(1).collect();
    let fqdn = spec.fqdn();
    assert_eq!(
        fields,
        [
            "started",
            "etcd-5",
            &format!("http://{fqdn}:2380"),
            &format!("http://{fqdn}:2379"),
            "false"
        ],
        "member list: {members}"
    );
}

#[test]
fn etcd_starts_as_one_member_of_a_rendered_three_member_cluster() {
    if !can_run(
        "etcd_starts_as_one_member_of_a_rendered_three_member_cluster",
        &ETCD,
    ) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "etcd",
        name: "etcd",
        ordinal: 6,
        replicas: 3,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let mut pod = start_etcd(&spec, dir.path());
    // Without quorum etcd serves no clients, but its peer port already answers /members with
    // the cluster it bootstrapped from initial-cluster: proof it parsed the file, and that its
    // name and advertised peer URL matched its own initial-cluster entry (else it exits).
    let members = pod.wait_for("peer /members", |pod| {
        let reply = pod.tcp(2380, "GET /members HTTP/1.0\r\n\r\n")?;
        let body = reply.split("\r\n\r\n").nth(1)?;
        serde_json::from_str::<serde_json::Value>(body).ok()
    });
    let mut got: Vec<(String, String)> = members
        .as_array()
        .expect("a JSON array of members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["peerURLs"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<_> = (5..8)
        .map(|o| {
            (
                format!("etcd-{o}"),
                format!("http://{}:2380", spec.fqdn_of(o)),
            )
        })
        .collect();
    assert_eq!(got, want);
}

// Redis: Debian redis-server 7.0, started as `redis-server FILE`.

const REDIS: [(&str, &str); 2] = [
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
];

fn start_redis(spec: &PodSpec, dir: &Path, sets: &[String]) -> Pod {
    let out = dir.join("out");
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut sets = sets.to_vec();
    sets.push(format!("data_dir={}", data.display()));
    spec.render(&out, &sets);
    let config = out.join("redis.conf").display().to_string();
    Pod::start(
        &spec.hostname(),
        dir,
        &spec.hosts(),
        &strings(&["redis-server", &config]),
    )
}

fn redis(pod: &Pod, args: &[&str]) -> String {
    let mut argv = vec!["redis-cli", "-p", "6379"];
    argv.extend(args);
    pod.ok(&argv)
        .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
}

fn wait_for_pong(pod: &mut Pod) {
    pod.wait_for("PONG", |pod| {
        pod.ok(&["redis-cli", "-p", "6379", "ping"])
            .filter(|reply| reply.trim() == "PONG")
    });
}

#[test]
fn redis_primary_serves_from_its_rendered_config() {
    if !can_run("redis_primary_serves_from_its_rendered_config", &REDIS) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "redis",
        name: "redis",
        ordinal: 0,
        replicas: 3,
        start: 0,
        namespace: "default",
        domain: "cluster.local",
    };
    let mut pod = start_redis(&spec, dir.path(), &[]);
    wait_for_pong(&mut pod);
    let info = redis(&pod, &["info", "replication"]);
    assert!(info.contains("role:master"), "{info}");
    assert_eq!(
        redis(&pod, &["config", "get", "appendonly"]),
        "appendonly\nyes\n"
    );
    assert_eq!(redis(&pod, &["set", "rolecall", "accepted"]).trim(), "OK");
    assert_eq!(redis(&pod, &["get", "rolecall"]).trim(), "accepted");
}

#[test]
fn redis_replica_follows_the_rendered_primary_by_name() {
    if !can_run("redis_replica_follows_the_rendered_primary_by_name", &REDIS) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "redis",
        name: "redis",
        ordinal: 6,
        replicas: 3,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let mut pod = start_redis(&spec, dir.path(), &[]);
    wait_for_pong(&mut pod);
    let info = redis(&pod, &["info", "replication"]);
    let primary = spec.fqdn_of(5);
    for line in [
        "role:slave".to_string(),
        format!("master_host:{primary}"),
        "master_port:6379".to_string(),
    ] {
        assert!(info.contains(&line), "no `{line}` in:\n{info}");
    }
    assert_eq!(
        redis(&pod, &["config", "get", "replica-announce-ip"]),
        format!("replica-announce-ip\n{}\n", spec.fqdn())
    );
    let write = redis(&pod, &["set", "rolecall", "refused"]);
    assert!(write.starts_with("READONLY"), "{write}");
}

#[test]
fn redis_cluster_forms_from_rendered_configs_and_create_script() {
    if !can_run(
        "redis_cluster_forms_from_rendered_configs_and_create_script",
        &REDIS,
    ) {
        return;
    }
    // Six pods in one network namespace, each node bound to its own loopback address (var
    // bind), which the private /etc/hosts gives its FQDN: the create script and redis-cli
    // find every member by name, as in a cluster. On one loopback the kernel would send every
    // node's cluster-bus connections from 127.0.0.1, and the nodes would take each other for
    // one; so each node also gets `bind-source-addr`, through the role's include var, as a
    // pod's own IP would be in a real cluster.
    let dir = scratch();
    let spec = |ordinal| PodSpec {
        role: "redis-cluster",
        name: "redis-cluster",
        ordinal,
        replicas: 6,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let address = |ordinal: u32| format!("127.0.0.{}", ordinal - 4);
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for ordinal in 5..11 {
        hosts.push_str(&format!("{} {}\n", address(ordinal), spec(ordinal).fqdn()));
    }
    let mut pod: Option<Pod> = None;
    for ordinal in 5..11 {
        let node = dir.path().join(format!("node-{ordinal}"));
        let data = node.join("data");
        fs::create_dir_all(&data).unwrap();
        let source = node.join("source.conf");
        fs::write(&source, format!("bind-source-addr {}\n", address(ordinal))).unwrap();
        spec(ordinal).render(
            &node.join("out"),
            &[
                format!("data_dir={}", data.display()),
                format!("bind={}", address(ordinal)),
                format!("include={}", source.display()),
            ],
        );
        let argv = strings(&[
            "redis-server",
            &node.join("out/redis.conf").display().to_string(),
        ]);
        match &mut pod {
            None => pod = Some(Pod::start("redis-cluster-5", dir.path(), &hosts, &argv)),
            Some(pod) => pod.spawn(&node.join("redis.log"), &argv),
        }
    }
    let mut pod = pod.unwrap();
    let script = dir.path().join("node-5/out/create-cluster.sh");
    let script = script.display().to_string();
    // Run as the pod would: by path, so its shebang and mode count. It waits for every member
    // itself; `timeout` bounds it if one never answers.
    let created = pod.exec(&["timeout", "60", &script]);
    assert!(
        created.status.success(),
        "create-cluster.sh failed: {}{}\nnode log:\n{}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr),
        pod.log()
    );
    // Replicas turn up as such a moment after the slots are assigned.
    let nodes = pod.wait_for("cluster_state:ok and 3 replicas", |pod| {
        let info = pod.ok(&["redis-cli", "-h", "127.0.0.1", "cluster", "info"])?;
        let nodes = pod.ok(&["redis-cli", "-h", "127.0.0.1", "cluster", "nodes"])?;
        (info.contains("cluster_state:ok") && nodes.matches(" slave ").count() == 3)
            .then_some(nodes)
    });
    // Every node announces its FQDN; redis-cli made the first three masters.
    let mut roles: Vec<(String, &str)> = nodes
        .lines()
        .map(|line| {
            let fields: Vec<_> = line.split(' ').collect();
            let hostname = fields[1].split(',').nth(1).unwrap_or("").to_string();
            let role = if fields[2].contains("master") {
                "master"
            } else {
                "replica"
            };
            (hostname, role)
        })
        .collect();
    roles.sort();
    let mut want: Vec<(String, &str)> = (5..11)
        .map(|o| (spec(o).fqdn(), if o < 8 { "master" } else { "replica" }))
        .collect();
    want.sort();
    assert_eq!(roles, want, "cluster nodes:\n{nodes}");
    // A second run, as after a restart of the first pod, leaves the cluster alone.
    let again = pod.exec(&["timeout", "60", &script]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && said.contains("already knows 6 nodes"),
        "second run: {said}"
    );
}

// MySQL role on MariaDB: Debian mariadb-server 10.11 with the role's `flavor=mariadb` (MariaDB
// has read_only but no super_read_only; the default `mysql` flavor's replica.cnf is checked
// against the MySQL manual only). The rendered files are the server's conf.d, as in the
// tutorial; the my.cnf around them stands for the image's own.

const MARIADB: [(&str, &str); 4] = [
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
    ("bash", "bash"),
];

/// Starts MariaDB with the pod's rendered files as conf.d and returns the pod and the path of
/// the my.cnf that clients use too.
fn start_mariadb(spec: &PodSpec, dir: &Path) -> (Pod, String) {
    let out = dir.join("out");
    spec.render(&out, &["flavor=mariadb".to_string()]);
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let my_cnf = dir.join("my.cnf");
    fs::write(
        &my_cnf,
        format!(
            "[mysqld]\ndatadir={}\nsocket=/tmp/mysqld.sock\npid-file=/tmp/mysqld.pid\nuser=root\n\
             !includedir {}\n[client]\nsocket=/tmp/mysqld.sock\n",
            data.display(),
            out.display()
        ),
    )
    .unwrap();
    let my_cnf = my_cnf.display().to_string();
    // mariadb-install-db wants --defaults-file first.
    let script = format!(
        "mariadb-install-db --defaults-file={my_cnf} --skip-test-db >/dev/null && \
         exec mariadbd --defaults-file={my_cnf}"
    );
    let pod = Pod::start(
        &spec.hostname(),
        dir,
        &spec.hosts(),
        &strings(&["sh", "-c", &script]),
    );
    (pod, my_cnf)
}

/// `SELECT @@server_id, @@log_bin, @@read_only` once the server answers.
fn mariadb_settings(pod: &mut Pod, my_cnf: &str) -> String {
    let defaults = format!("--defaults-file={my_cnf}");
    pod.wait_for("a query answered", |pod| {
        pod.ok(&[
            "mariadb",
            &defaults,
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT @@server_id, @@log_bin, @@read_only",
        ])
    })
}

#[test]
fn mariadb_primary_runs_with_the_rendered_server_id_and_binlog() {
    if !can_run(
        "mariadb_primary_runs_with_the_rendered_server_id_and_binlog",
        &MARIADB,
    ) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "mysql",
        name: "mysql",
        ordinal: 5,
        replicas: 3,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let (mut pod, my_cnf) = start_mariadb(&spec, dir.path());
    assert_eq!(mariadb_settings(&mut pod, &my_cnf), "105\t1\t0\n");
}

#[test]
fn mariadb_replica_runs_read_only_and_knows_whom_to_clone() {
    if !can_run(
        "mariadb_replica_runs_read_only_and_knows_whom_to_clone",
        &MARIADB,
    ) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "mysql",
        name: "mysql",
        ordinal: 7,
        replicas: 3,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let (mut pod, my_cnf) = start_mariadb(&spec, dir.path());
    assert_eq!(mariadb_settings(&mut pod, &my_cnf), "107\t0\t1\n");
    // replication.env is sourced by bash with unset variables an error.
    let env = dir.path().join("out/replication.env");
    let sourced = Command::new("bash")
        .args([
            "-c",
            "set -eu; . \"$1\"; echo \"$CLONE_FROM_HOST:$CLONE_FROM_PORT $PRIMARY_HOST:$PRIMARY_PORT\"",
            "bash",
        ])
        .arg(&env)
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{sourced:?}");
    assert_eq!(
        String::from_utf8_lossy(&sourced.stdout),
        format!("{}:3307 {}:3306\n", spec.fqdn_of(6), spec.fqdn_of(5))
    );
}

// ZooKeeper: Debian zookeeper 3.8, its JVM started directly (Debian's wrapper scripts ignore
// another config dir), reading the rendered zoo.cfg and, from dataDir, the rendered myid.

const ZOOKEEPER: [(&str, &str); 4] = [
    ("java", "default-jre-headless"),
    ("bash", "bash"),
    ("/usr/share/java/zookeeper.jar", "zookeeper"),
    ("/usr/share/java/log4j-1.2.jar", "liblog4j1.2-java"),
];

const ZOOKEEPER_CLASSPATH: [&str; 3] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];

/// Renders the pod's files into its data dir (where ZooKeeper looks for myid) and starts
/// QuorumPeerMain with the rendered zoo.cfg, logging to the console.
fn start_zookeeper(spec: &PodSpec, dir: &Path, sets: &[&str]) -> Pod {
    let data = dir.join("data");
    let mut sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    sets.push(format!("data_dir={}", data.display()));
    spec.render(&data, &sets);
    let log4j = dir.join("log4j.properties");
    fs::write(
        &log4j,
        "log4j.rootLogger=INFO, CONSOLE\n\
         log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
         log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.CONSOLE.layout.ConversionPattern=%-5p [%t:%C{1}@%L] - %m%n\n",
    )
    .unwrap();
    let classpath = ZOOKEEPER_CLASSPATH.join(":");
    Pod::start(
        &spec.hostname(),
        dir,
        &spec.hosts(),
        &strings(&[
            "java",
            &format!("-Dlog4j.configuration=file:{}", log4j.display()),
            "-cp",
            &classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            &data.join("zoo.cfg").display().to_string(),
        ]),
    )
}

/// The answer to a four-letter-word command (only `srvr` is allowed by default).
fn four_letters(pod: &Pod, command: &str) -> Option<String> {
    pod.tcp(2181, command).filter(|reply| !reply.is_empty())
}

#[test]
fn zookeeper_serves_standalone_from_a_rendered_one_server_config() {
    if !can_run(
        "zookeeper_serves_standalone_from_a_rendered_one_server_config",
        &ZOOKEEPER,
    ) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "zookeeper",
        name: "zookeeper",
        ordinal: 0,
        replicas: 1,
        start: 0,
        namespace: "default",
        domain: "cluster.local",
    };
    let mut pod = start_zookeeper(&spec, dir.path(), &[]);
    // Until it serves, srvr says "not currently serving requests".
    let srvr = pod.wait_for("srvr showing a mode", |pod| {
        four_letters(pod, "srvr").filter(|reply| reply.contains("Mode:"))
    });
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
}

/// Waits until every line of `want` is in the server's log.
fn wait_for_log(pod: &mut Pod, want: &[String]) {
    let log = pod.log.clone();
    pod.wait_for("the expected log lines", |_| {
        let text = fs::read_to_string(&log).ok()?;
        want.iter()
            .all(|line| text.contains(line.as_str()))
            .then_some(())
    });
}

#[test]
fn zookeeper_starts_as_one_server_of_a_rendered_ensemble() {
    if !can_run(
        "zookeeper_starts_as_one_server_of_a_rendered_ensemble",
        &ZOOKEEPER,
    ) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "zookeeper",
        name: "zookeeper",
        ordinal: 6,
        replicas: 3,
        start: 5,
        namespace: "prod",
        domain: "corp.example",
    };
    let mut pod = start_zookeeper(&spec, dir.path(), &[]);
    // It runs as quorum peer 7 (the rendered myid, found in the server list), looks for a
    // leader, and dials the election port of each peer at its FQDN: the server lines parsed.
    let mut want = vec![
        "Starting quorum peer, myid=7".to_string(),
        "LOOKING".to_string(),
    ];
    for (id, ordinal) in [(6, 5), (8, 7)] {
        want.push(format!(
            "Cannot open channel to {id} at election address {}/",
            spec.fqdn_of(ordinal)
        ));
    }
    wait_for_log(&mut pod, &want);
    let srvr = pod.wait_for("srvr answered", |pod| four_letters(pod, "srvr"));
    assert!(srvr.contains("not currently serving requests"), "{srvr}");
}

/// ZooKeeper's own config parser (the one QuorumPeerMain runs), as a Java source file.
const PARSE_ZOO_CFG: &str = r#"
import org.apache.zookeeper.server.quorum.QuorumPeer.QuorumServer;
import org.apache.zookeeper.server.quorum.QuorumPeerConfig;

public class ParseZooCfg {
    public static void main(String[] args) throws Exception {
        QuorumPeerConfig config = new QuorumPeerConfig();
        config.parse(args[0]);
        System.out.println("myid " + config.getServerId());
        System.out.println("peerType " + config.getPeerType());
        for (QuorumServer server : config.getQuorumVerifier().getAllMembers().values()) {
            System.out.println("server " + server);
        }
    }
}
"#;

#[test]
fn zookeeper_observer_is_parsed_as_one_and_starts() {
    if !can_run("zookeeper_observer_is_parsed_as_one_and_starts", &ZOOKEEPER) {
        return;
    }
    let dir = scratch();
    let spec = PodSpec {
        role: "zookeeper",
        name: "zookeeper",
        ordinal: 3,
        replicas: 4,
        start: 0,
        namespace: "default",
        domain: "cluster.local",
    };
    let mut pod = start_zookeeper(&spec, dir.path(), &["observers_from=3"]);
    // An observer looks for a leader before it observes; with no peers it keeps looking.
    wait_for_log(
        &mut pod,
        &[
            "Starting quorum peer, myid=4".to_string(),
            "LOOKING".to_string(),
        ],
    );
    let log = fs::read_to_string(&pod.log).unwrap();
    assert!(!log.contains("doesn't match peerType"), "{log}");
    // peerType and the `:observer` server line, as ZooKeeper's parser reads them.
    let source = dir.path().join("ParseZooCfg.java");
    fs::write(&source, PARSE_ZOO_CFG).unwrap();
    let parsed = Command::new("java")
        .arg("-cp")
        .arg(ZOOKEEPER_CLASSPATH.join(":"))
        .arg(&source)
        .arg(dir.path().join("data/zoo.cfg"))
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{parsed:?}");
    let mut want = "myid 4\npeerType OBSERVER\n".to_string();
    for ordinal in 0..4 {
        let kind = if ordinal < 3 {
            "participant"
        } else {
            "observer"
        };
        want.push_str(&format!(
            "server {}:2888:3888:{kind}\n",
            spec.fqdn_of(ordinal)
        ));
    }
    assert_eq!(String::from_utf8_lossy(&parsed.stdout), want);
}

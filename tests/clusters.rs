//! Real clusters in simulated pods: the built rolecall runs as each pod's init step with no
//! identity flags, then the real servers (Debian packages) start from exactly the files it
//! wrote and must form a cluster. tests/sim/statefulset.sh says what a pod is here. As root
//! with the packages present these run; otherwise they say why they are skipped (and fail
//! with ROLECALL_CI=1).

mod common;
// The API server and host address of the simulation serve only the day-2 tests of etcd.
#[cfg_attr(not(all(feature = "member", feature = "kube")), allow(dead_code))]
mod sim;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use sim::{Pods, StatefulSet, can_run, report, secs, wait_for};

/// The IPv4 address of the pod's eth0, as the pod itself sees it.
fn pod_address(pods: &Pods, ordinal: u32) -> String {
    let out = pods
        .sh(ordinal, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap_or_else(|e| panic!("ip addr in {}: {e}", pods.hostname(ordinal)));
    let cidr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no inet address in {out:?}"));
    cidr.split('/').next().unwrap_or_default().to_string()
}

#[test]
fn pods_find_their_identity_from_hostname_namespace_and_resolv_conf() {
    if !can_run("simulated pods", &["getent"]) {
        return;
    }
    let mut set = StatefulSet::new("web", 3);
    set.start_ordinal = 3;
    set.namespace = "shop".into();
    set.cluster_domain = "corp.example".into();
    let pods = Pods::up(set);
    let fqdns: Vec<String> = pods.ordinals().map(|o| pods.fqdn(o)).collect();
    let addresses: Vec<String> = pods.ordinals().map(|o| pod_address(&pods, o)).collect();
    assert_eq!(
        addresses.iter().collect::<BTreeSet<_>>().len(),
        3,
        "every pod has its own address: {addresses:?}"
    );

    for (index, ordinal) in pods.ordinals().enumerate() {
        let host = pods.hostname(ordinal);
        // Exactly what a pod spec would set, nothing that names the pod.
        let env = pods.sh(ordinal, &["env"]).expect("env in the pod");
        let names: BTreeSet<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "HOME",
                "PATH",
                "POD_NAMESPACE",
                "ROLECALL_REPLICAS",
                "ROLECALL_START_ORDINAL"
            ]),
            "environment of {host}"
        );

        let json = pods
            .sh(ordinal, &[&pods.rolecall(), "env", "--format", "json"])
            .unwrap_or_else(|e| panic!("rolecall env in {host}: {e}"));
        let view: Value = serde_json::from_str(&json).expect("rolecall env --format json");
        assert_eq!(view["hostname"], host.as_str(), "from the UTS namespace");
        assert_eq!(view["ordinal"], ordinal);
        assert_eq!(view["index"], index);
        assert_eq!(view["start_ordinal"], 3);
        assert_eq!(view["replicas"], 3);
        assert_eq!(view["namespace"], "shop", "from POD_NAMESPACE");
        assert_eq!(
            view["cluster_domain"], "corp.example",
            "from the search line of the pod's resolv.conf"
        );
        assert_eq!(view["fqdn"], fqdns[index].as_str());
        let peers: Vec<&str> = view["peers"]
            .as_array()
            .expect("peers")
            .iter()
            .map(|p| p["fqdn"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(peers, fqdns, "peers of {host}");

        // Every name of every pod resolves, in every pod, to that pod's own address.
        for (j, peer) in pods.ordinals().enumerate() {
            let short = format!("{}.web", pods.hostname(peer));
            for name in [fqdns[j].as_str(), short.as_str()] {
                let found = pods
                    .sh(ordinal, &["getent", "hosts", name])
                    .unwrap_or_else(|e| panic!("{name} does not resolve in {host}: {e}"));
                assert_eq!(
                    found.split_whitespace().next(),
                    Some(addresses[j].as_str()),
                    "{name} in {host}"
                );
            }
        }
    }
    pods.down();
}

/// Runs etcdctl (API v3) in pod `ordinal` against `endpoints`.
fn etcdctl_run(pods: &Pods, ordinal: u32, endpoints: &[&str], args: &[&str]) -> sim::Run {
    let endpoints = endpoints.join(",");
    let mut argv = vec![
        "etcdctl",
        "--endpoints",
        &endpoints,
        "--dial-timeout=2s",
        "--command-timeout=5s",
    ];
    argv.extend(args);
    let mut env = pods.pod_env();
    env.push(("ETCDCTL_API".into(), "3".into()));
    pods.exec(ordinal, &env, &argv, Duration::from_secs(20))
}

/// etcdctl's stdout, or a message with all it said.
fn etcdctl(pods: &Pods, ordinal: u32, endpoints: &[&str], args: &[&str]) -> Result<String, String> {
    etcdctl_run(pods, ordinal, endpoints, args)
        .ok()
        .map(str::to_string)
}

/// `endpoint health` of every endpoint: Ok only if each one is healthy.
fn etcd_healthy(pods: &Pods, ordinal: u32, endpoints: &[&str]) -> Result<(), String> {
    let run = etcdctl_run(
        pods,
        ordinal,
        endpoints,
        &["endpoint", "health", "-w", "json"],
    );
    let health: Value =
        serde_json::from_str(&run.stdout).map_err(|e| format!("endpoint health: {e}: {run:?}"))?;
    for endpoint in endpoints {
        let healthy = health
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["endpoint"] == *endpoint && h["health"] == true);
        if !healthy {
            return Err(format!("{endpoint} is not healthy: {health}"));
        }
    }
    Ok(())
}

/// `member list` as (name, status, peer URL, client URL) per member, sorted by name; with
/// the member ids.
fn etcd_members(pods: &Pods, ordinal: u32, endpoint: &str) -> Vec<[String; 5]> {
    let out = etcdctl(pods, ordinal, &[endpoint], &["member", "list"])
        .unwrap_or_else(|e| panic!("member list: {e}"));
    let mut members: Vec<[String; 5]> = out
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(", ").collect();
            assert_eq!(f.len(), 6, "member list line {line:?}");
            [f[2], f[1], f[3], f[4], f[0]].map(String::from)
        })
        .collect();
    members.sort();
    members
}

/// The client URL of the member that leads, from `endpoint status`.
fn etcd_leader(pods: &Pods, ordinal: u32, endpoints: &[&str]) -> Result<String, String> {
    let out = etcdctl(
        pods,
        ordinal,
        endpoints,
        &["endpoint", "status", "-w", "json"],
    )?;
    let status: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    status
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .and_then(|s| s["Endpoint"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no leader in {out}"))
}

#[test]
fn etcd_members_form_a_cluster_keep_quorum_and_rejoin_after_a_restart() {
    if !can_run("etcd cluster", &["etcd", "etcdctl"]) {
        return;
    }
    // A non-zero start ordinal, a non-default namespace and cluster domain.
    let mut set = StatefulSet::new("etcd", 3);
    set.start_ordinal = 2;
    set.namespace = "kv-store".into();
    set.cluster_domain = "k8s.test".into();
    // The role's data_dir: each pod gets its own.
    set.volumes = vec!["/var/lib/etcd".into()];
    let made = Instant::now();
    let mut pods = Pods::up(set);
    let made = made.elapsed();
    let ordinals: Vec<u32> = pods.ordinals().collect();
    let urls: Vec<String> = ordinals
        .iter()
        .map(|&o| format!("http://{}:2379", pods.fqdn(o)))
        .collect();
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let config = |pods: &Pods, o: u32| pods.config_dir(o).join("etcd.conf.yml");

    let init = Instant::now();
    for &o in &ordinals {
        let summary = pods.init(o, "etcd", &[]);
        assert!(
            summary.contains(&format!("{} -> ordinal {o}", pods.hostname(o)))
                && summary.contains("etcd.conf.yml"),
            "init summary of {}: {summary}",
            pods.hostname(o)
        );
    }
    let init = init.elapsed();
    let serve = Instant::now();
    for &o in &ordinals {
        let file = config(&pods, o);
        pods.start(o, &["etcd", "--config-file", file.to_str().unwrap()]);
    }
    wait_for(
        "every etcd endpoint healthy",
        Duration::from_secs(60),
        || etcd_healthy(&pods, ordinals[0], &all),
    );
    let bring_up = serve.elapsed();
    report(&format!(
        "etcd: 3 members healthy {} after start (pods made in {}, init steps {})",
        secs(bring_up),
        secs(made),
        secs(init)
    ));

    // Three members, named for their pods, at their FQDNs, each writing into its own volume.
    let members = etcd_members(&pods, ordinals[1], all[1]);
    for (member, &o) in members.iter().zip(&ordinals) {
        let fqdn = pods.fqdn(o);
        assert_eq!(
            member[..4],
            [
                pods.hostname(o),
                "started".into(),
                format!("http://{fqdn}:2380"),
                format!("http://{fqdn}:2379")
            ],
            "member list: {members:?}"
        );
        let wal = pods.pod_dir(o).join("vol/var_lib_etcd/data/member/wal");
        assert!(
            wal.is_dir(),
            "{} has no data in its volume",
            pods.hostname(o)
        );
    }
    assert_eq!(members.len(), 3, "{members:?}");

    // Written on one member, read on another.
    let first = etcdctl(
        &pods,
        ordinals[0],
        &all[..1],
        &["put", "rolecall/first", "one"],
    );
    assert_eq!(first.as_deref().map(str::trim), Ok("OK"));
    let read = etcdctl(
        &pods,
        ordinals[2],
        &all[2..],
        &["get", "rolecall/first", "--print-value-only"],
    );
    assert_eq!(read.as_deref().map(str::trim), Ok("one"));

    // Stop the leader: the other two elect a new one and still serve.
    let leader = etcd_leader(&pods, ordinals[0], &all).expect("a leader");
    let down = urls
        .iter()
        .position(|u| *u == leader)
        .expect("leader is a member");
    let down_ordinal = ordinals[down];
    let stopped = pods.stop(down_ordinal, Duration::from_secs(20));
    let alive: Vec<&str> = (0..3).filter(|&i| i != down).map(|i| all[i]).collect();
    let alive_ordinals: Vec<u32> = (0..3).filter(|&i| i != down).map(|i| ordinals[i]).collect();
    assert!(
        etcd_healthy(&pods, alive_ordinals[0], &all[down..=down]).is_err(),
        "{leader} still answers after its server was stopped"
    );
    let quorum = Instant::now();
    wait_for(
        "the two members left serve",
        Duration::from_secs(30),
        || {
            etcd_healthy(&pods, alive_ordinals[0], &alive)?;
            etcdctl(
                &pods,
                alive_ordinals[0],
                &alive[..1],
                &["put", "rolecall/while-down", "two"],
            )
        },
    );
    let read = etcdctl(
        &pods,
        alive_ordinals[1],
        &alive[1..],
        &["get", "rolecall/while-down", "--print-value-only"],
    );
    assert_eq!(read.as_deref().map(str::trim), Ok("two"));
    let quorum = quorum.elapsed();

    // The init step again, as a restarted pod runs it: nothing changes on disk.
    let before = sim::snapshot(&config(&pods, down_ordinal));
    let summary = pods.init(down_ordinal, "etcd", &[]);
    assert!(
        summary.contains("all unchanged"),
        "rerun of rolecall in {}: {summary}",
        pods.hostname(down_ordinal)
    );
    assert!(
        sim::snapshot(&config(&pods, down_ordinal)) == before,
        "etcd.conf.yml was rewritten"
    );

    // The same files again: the member rejoins and catches up on what it missed.
    let rejoin = Instant::now();
    let file = config(&pods, down_ordinal);
    pods.start(
        down_ordinal,
        &["etcd", "--config-file", file.to_str().unwrap()],
    );
    wait_for(
        "the restarted member is healthy and has the key written while it was down",
        Duration::from_secs(60),
        || {
            etcd_healthy(&pods, down_ordinal, &all)?;
            let value = etcdctl(
                &pods,
                down_ordinal,
                &all[down..=down],
                // Serializable: answered from this member's own copy of the data.
                &[
                    "get",
                    "rolecall/while-down",
                    "--print-value-only",
                    "--consistency=s",
                ],
            )?;
            (value.trim() == "two")
                .then_some(())
                .ok_or(format!("read {value:?}"))
        },
    );
    let rejoin = rejoin.elapsed();
    assert_eq!(
        etcd_members(&pods, down_ordinal, all[down]),
        members,
        "the same three members, with the same ids"
    );
    report(&format!(
        "etcd: leader {} stopped in {}, the other two served within {}, it rejoined in {}",
        pods.hostname(down_ordinal),
        secs(stopped),
        secs(quorum),
        secs(rejoin)
    ));
    pods.down();
}

/// Runs redis-cli in pod `ordinal` against `host`.
fn redis_cli(pods: &Pods, ordinal: u32, host: &str, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["redis-cli", "-h", host, "-p", "6379"];
    argv.extend(args);
    let run = pods.exec(ordinal, &pods.pod_env(), &argv, Duration::from_secs(20));
    run.ok().map(|out| out.replace('\r', ""))
}

/// The `key:value` lines of an INFO section.
fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
}

#[test]
fn redis_replicas_follow_the_primary_and_serve_its_writes() {
    if !can_run("Redis replication", &["redis-server", "redis-cli"]) {
        return;
    }
    // Four pods, of which the set has 3 until its day 2 below scales it to 4.
    let mut set = StatefulSet::new("redis", 4);
    set.namespace = "cache".into();
    set.volumes = vec!["/var/lib/redis".into()];
    let made = Instant::now();
    let mut pods = Pods::up(set);
    let made = made.elapsed();
    pods.set.replicas = 3;
    let ordinals: Vec<u32> = pods.ordinals().collect();
    let fqdns: Vec<String> = ordinals.iter().map(|&o| pods.fqdn(o)).collect();

    let init = Instant::now();
    for &o in &ordinals {
        // The role's data_dir is /data, where a pod mounts its volume; this machine has no
        // /data to mount over, so the pods' volume is at /var/lib/redis.
        let summary = pods.init(o, "redis", &["--set", "data_dir=/var/lib/redis"]);
        let role = if o == 0 {
            "role primary"
        } else {
            "role replica"
        };
        assert!(
            summary.contains(role) && summary.contains("redis.conf"),
            "init summary of {}: {summary}",
            pods.hostname(o)
        );
    }
    let init = init.elapsed();
    let serve = Instant::now();
    for &o in &ordinals {
        let file = pods.config_dir(o).join("redis.conf");
        pods.start(o, &["redis-server", file.to_str().unwrap()]);
    }
    let leader = fqdns[0].as_str();
    let replicas = &fqdns[1..];
    wait_for(
        "the primary reports 2 replicas online",
        Duration::from_secs(60),
        || {
            let info = redis_cli(&pods, ordinals[1], leader, &["INFO", "replication"])?;
            let online = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count();
            (info_field(&info, "connected_slaves") == Some("2") && online == 2)
                .then_some(())
                .ok_or(info)
        },
    );
    let bring_up = serve.elapsed();
    report(&format!(
        "redis: primary with 2 replicas online {} after start (pods made in {}, init steps {})",
        secs(bring_up),
        secs(made),
        secs(init)
    ));

    let info = redis_cli(&pods, ordinals[0], leader, &["INFO", "replication"]).unwrap();
    assert_eq!(info_field(&info, "role"), Some("master"), "{info}");
    // The replicas announce their stable names (replica-announce-ip), not their addresses.
    let mut announced: Vec<&str> = (0..2)
        .filter_map(|i| info_field(&info, &format!("slave{i}")))
        .filter_map(|fields| fields.split(',').find_map(|f| f.strip_prefix("ip=")))
        .collect();
    announced.sort();
    assert_eq!(announced, replicas, "{info}");
    for (replica, &o) in replicas.iter().zip(&ordinals[1..]) {
        let info = redis_cli(&pods, o, replica, &["INFO", "replication"]).unwrap();
        assert_eq!(
            info_field(&info, "role"),
            Some("slave"),
            "{replica}: {info}"
        );
        assert_eq!(
            info_field(&info, "master_host"),
            Some(leader),
            "{replica}: {info}"
        );
        assert_eq!(
            info_field(&info, "master_link_status"),
            Some("up"),
            "{replica}: {info}"
        );
    }

    // Written on the primary, read on both replicas; a replica refuses writes.
    let set_reply = redis_cli(
        &pods,
        ordinals[0],
        leader,
        &["SET", "rolecall:key", "primary"],
    );
    assert_eq!(set_reply.as_deref().map(str::trim), Ok("OK"));
    for (replica, &o) in replicas.iter().zip(&ordinals[1..]) {
        wait_for(
            &format!("{replica} has the key"),
            Duration::from_secs(10),
            || {
                let value = redis_cli(&pods, o, replica, &["GET", "rolecall:key"])?;
                (value.trim() == "primary")
                    .then_some(())
                    .ok_or(format!("GET gave {value:?}"))
            },
        );
        let refused = redis_cli(&pods, o, replica, &["SET", "rolecall:key", "replica"]);
        assert!(
            refused.as_deref().is_ok_and(|r| r.contains("READONLY")),
            "{replica} accepted a write: {refused:?}"
        );
    }

    // Day 2 (the README's row: nothing to do on a scale; a replica whose volume was lost
    // resyncs). Scale 3 -> 4: the new pod renders as a replica and copies the primary's data.
    pods.set.replicas = 4;
    let summary = pods.init(3, "redis", &["--set", "data_dir=/var/lib/redis"]);
    assert!(
        summary.contains("role replica"),
        "init summary of redis-3: {summary}"
    );
    let file = pods.config_dir(3).join("redis.conf");
    pods.start(3, &["redis-server", file.to_str().unwrap()]);
    let online = |pods: &Pods, want: usize| {
        wait_for(
            &format!("the primary reports {want} replicas online"),
            Duration::from_secs(60),
            || {
                let info = redis_cli(pods, 0, leader, &["INFO", "replication"])?;
                let online = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                    .count();
                (online == want).then_some(()).ok_or(info)
            },
        )
    };
    let has_key = |pods: &Pods, o: u32| {
        let fqdn = pods.fqdn(o);
        wait_for(
            &format!("{fqdn} has the key"),
            Duration::from_secs(30),
            || {
                let value = redis_cli(pods, o, &fqdn, &["GET", "rolecall:key"])?;
                (value.trim() == "primary")
                    .then_some(())
                    .ok_or(format!("GET gave {value:?}"))
            },
        )
    };
    online(&pods, 3);
    has_key(&pods, 3);
    // A replica's volume lost: the pod comes back empty, renders as before and resyncs.
    pods.stop(2, Duration::from_secs(10));
    pods.lose_volume(2, "/var/lib/redis").unwrap();
    let summary = pods.init(2, "redis", &["--set", "data_dir=/var/lib/redis"]);
    assert!(
        summary.contains("role replica"),
        "init summary of redis-2: {summary}"
    );
    let file = pods.config_dir(2).join("redis.conf");
    pods.start(2, &["redis-server", file.to_str().unwrap()]);
    online(&pods, 3);
    has_key(&pods, 2);
    // Scale 4 -> 3: the pod goes, the primary serves on with the others.
    pods.stop(3, Duration::from_secs(10));
    pods.set.replicas = 3;
    online(&pods, 2);
    report("redis day 2: a 4th replica synced; a replica with a lost volume resynced; 4 -> 3");
    pods.set.replicas = 4;
    pods.down();
}

// ---------------------------------------------------------------------------------------------
// Day 2 for etcd: scale up, scale down, a lost volume, returning volumes, a killed join; every
// step done as the StatefulSet controller does it, with a writer recording acknowledged puts.

// rolecall's membership changes (cargo feature `member`) and `--from-api` (`kube`).
#[cfg(all(feature = "member", feature = "kube"))]
mod etcd_day2 {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::{Value, json};

    use crate::sim::controller::{
        Acks, App, Background, Controller, NoPreStop, Policy, Table, Template,
    };
    use crate::sim::{Pods, StatefulSet, can_run, report, report_said, secs, wait_for};

    const VOLUME: &str = "/var/lib/etcd";
    const DATA_DIR: &str = "/var/lib/etcd/data";
    const PREFIX: &str = "day2/";

    fn agent(timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into()
    }

    /// A call to etcd's JSON gateway at `address` (a pod's IP, reached from this machine).
    fn gateway(address: &str, path: &str, body: Value, timeout: Duration) -> Result<Value, String> {
        let url = format!("http://{address}:2379/v3/{path}");
        let mut response = agent(timeout)
            .post(&url)
            .content_type("application/json")
            .send(body.to_string())
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
    }

    /// The etcd containers of the set: rolecall as the init container (with --data-dir, so it
    /// makes the membership calls), etcd as the main container, `rolecall leave` as preStop.
    struct Etcd;

    impl Etcd {
        fn config(pods: &Pods, ordinal: u32) -> String {
            pods.config_dir(ordinal)
                .join("etcd.conf.yml")
                .display()
                .to_string()
        }
    }

    impl App for Etcd {
        fn init(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
        ) -> Result<(), String> {
            let out = pods.config_dir(ordinal).display().to_string();
            let rolecall = pods.rolecall();
            let run = pods.exec(
                ordinal,
                env,
                &[
                    &rolecall,
                    "render",
                    "--role",
                    "etcd",
                    "--out",
                    &out,
                    "--data-dir",
                    DATA_DIR,
                    "--set",
                    "bootstrap_size=3",
                    "--timeout",
                    "60s",
                ],
                Duration::from_secs(90),
            );
            report_said("init", &pods.hostname(ordinal), run.stderr.trim().lines());
            run.ok().map(drop)
        }

        fn start(&mut self, pods: &mut Pods, ordinal: u32, env: &[(String, String)]) {
            let config = Etcd::config(pods, ordinal);
            pods.start_with_env(ordinal, env, &["etcd", "--config-file", &config]);
        }

        fn ready(&mut self, pods: &Pods, ordinal: u32) -> bool {
            let url = format!("http://{}:2379/health", pods.address(ordinal));
            agent(Duration::from_secs(1))
                .get(&url)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|body| body.contains("\"true\""))
        }

        fn pre_stop(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
            _: u32,
        ) -> Result<(), String> {
            // The pod's environment has no set size: `leave` asks the API server (--from-api
            // in the environment) what spec.replicas is now.
            let rolecall = pods.rolecall();
            let run = pods.exec(
                ordinal,
                env,
                &[&rolecall, "leave", "--role", "etcd", "--timeout", "20s"],
                Duration::from_secs(30),
            );
            report_said(
                "preStop",
                &pods.hostname(ordinal),
                run.stderr.trim().lines(),
            );
            run.ok().map(drop)
        }
    }

    /// Puts sequential keys through whichever member answers, and records each acknowledged put.
    struct Writer {
        acks: Acks,
        endpoints: Arc<Mutex<Vec<String>>>,
        thread: Background,
    }

    impl Writer {
        fn start(endpoints: Vec<String>) -> Writer {
            let acks = Acks::default();
            let endpoints = Arc::new(Mutex::new(endpoints));
            let (mut key, mut next) = (0u64, 0usize);
            let thread = Background::spawn({
                let (acks, endpoints) = (acks.clone(), endpoints.clone());
                move || {
                    let list = endpoints.lock().unwrap().clone();
                    if list.is_empty() {
                        std::thread::sleep(Duration::from_millis(50));
                        return;
                    }
                    let address = &list[next % list.len()];
                    let body = json!({
                        "key": B64.encode(format!("{PREFIX}{key:08}")),
                        "value": B64.encode(key.to_string()),
                    });
                    match gateway(address, "kv/put", body, Duration::from_secs(1)) {
                        Ok(_) => {
                            acks.push(key);
                            key += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => next += 1,
                    }
                }
            });
            Writer {
                acks,
                endpoints,
                thread,
            }
        }

        fn set_endpoints(&self, endpoints: Vec<String>) {
            *self.endpoints.lock().unwrap() = endpoints;
        }
    }

    /// Checks the set after a step: the member list is exactly the set's pods, all started;
    /// every member is healthy; every acknowledged key is in every member's own copy.
    fn check(ctl: &Controller, writer: &Writer) -> Result<(), String> {
        let pods = &ctl.pods;
        let addresses: Vec<String> = ctl.ordinals().map(|o| pods.address(o)).collect();
        let list = gateway(
            &addresses[0],
            "cluster/member/list",
            json!({}),
            Duration::from_secs(5),
        )?;
        let mut names: Vec<String> = list["members"]
            .as_array()
            .ok_or("no members")?
            .iter()
            .map(|m| m["name"].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        let mut want: Vec<String> = ctl.ordinals().map(|o| pods.hostname(o)).collect();
        want.sort();
        if names != want {
            return Err(format!(
                "members {names:?}, the set is {want:?} (an empty name: not started)"
            ));
        }
        let acked: BTreeSet<String> = writer
            .acks
            .keys()
            .into_iter()
            .map(|k| format!("{PREFIX}{k:08}"))
            .collect();
        for (o, address) in ctl.ordinals().zip(&addresses) {
            let health = agent(Duration::from_secs(2))
                .get(&format!("http://{address}:2379/health"))
                .call()
                .map_err(|e| e.to_string())?
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?;
            if !health.contains("\"true\"") {
                return Err(format!("{} unhealthy: {health}", pods.hostname(o)));
            }
            let range = gateway(
                address,
                "kv/range",
                json!({
                    "key": B64.encode(PREFIX),
                    "range_end": B64.encode("day20"),
                    "keys_only": true,
                    "serializable": true,
                }),
                Duration::from_secs(10),
            )?;
            let have: BTreeSet<String> = range["kvs"]
                .as_array()
                .map(|kvs| {
                    kvs.iter()
                        .filter_map(|kv| kv["key"].as_str())
                        .filter_map(|k| B64.decode(k).ok())
                        .filter_map(|k| String::from_utf8(k).ok())
                        .collect()
                })
                .unwrap_or_default();
            let lost: Vec<_> = acked.difference(&have).take(5).collect();
            if !lost.is_empty() {
                return Err(format!(
                    "{} lacks {} acknowledged keys, e.g. {lost:?}",
                    pods.hostname(o),
                    acked.difference(&have).count()
                ));
            }
        }
        Ok(())
    }

    /// The members' names and ids, as the first pod of the set lists them.
    fn member_ids(ctl: &Controller) -> Result<Vec<(String, String)>, String> {
        let list = gateway(
            &ctl.pods.address(ctl.pods.set.start_ordinal),
            "cluster/member/list",
            json!({}),
            Duration::from_secs(5),
        )?;
        let mut ids: Vec<(String, String)> = list["members"]
            .as_array()
            .ok_or("no members")?
            .iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap_or_default().to_string();
                (name, m["ID"].as_str().unwrap_or_default().to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The pod template: the namespace from the downward API and what reads the set from the
    /// API server. No set size: changing spec.replicas changes no template, so nothing rolls.
    fn template(namespace: &str, api: &[(String, String)]) -> Template {
        let mut env = vec![("POD_NAMESPACE".to_string(), namespace.to_string())];
        env.extend(api.iter().cloned());
        Template { revision: 1, env }
    }

    /// One step: what it did, how long it took, the longest pause in acknowledged writes.
    fn step(
        name: &str,
        ctl: &mut Controller,
        writer: &Writer,
        table: &mut Table,
        action: impl FnOnce(&mut Controller) -> Result<(), String>,
    ) {
        let step = ctl.step(
            name,
            &writer.acks,
            Duration::from_secs(60),
            |ctl| {
                action(ctl)?;
                writer.set_endpoints(ctl.ordinals().map(|o| ctl.pods.address(o)).collect());
                Ok(())
            },
            |ctl| check(ctl, writer),
        );
        table.row(&[name, &secs(step.took), &secs(step.gap)]);
    }

    #[test]
    fn etcd_scales_both_ways_and_replaces_members_without_losing_an_acknowledged_write() {
        if !can_run("etcd day 2", &["etcd"]) {
            return;
        }
        let namespace = "kv";
        let mut set = StatefulSet::new("etcd", 5);
        set.namespace = namespace.into();
        set.volumes = vec![VOLUME.into()];
        set.host_address = true;
        let pods = Pods::up(set);
        let mut ctl = Controller::new(pods, Policy::Parallel, template(namespace, &[]));
        let api = ctl.serve_api();
        let tpl = template(namespace, &api);
        let mut app = Etcd;
        let mut table = Table::new(
            &["step", "time", "longest gap between acknowledged writes"],
            &["---", "---:", "---:"],
        );
        let writer = Writer::start(Vec::new());
        let scale = |to: u32| {
            let tpl = tpl.clone();
            move |ctl: &mut Controller| ctl.scale(&mut Etcd, to, tpl)
        };

        step("bootstrap 3", &mut ctl, &writer, &mut table, scale(3));
        step(
            "scale 3 -> 5 (pods 3 and 4 join)",
            &mut ctl,
            &writer,
            &mut table,
            scale(5),
        );
        step(
            "scale 5 -> 3 (preStop leave on 4, then 3)",
            &mut ctl,
            &writer,
            &mut table,
            scale(3),
        );
        step(
            "replace etcd-1 (volume lost)",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| {
                ctl.delete(&mut app, 1)?;
                ctl.recreate_with_lost_volume(&mut app, 1, VOLUME)
            },
        );
        // A pause: every pod goes, none leaves; back at 3 the same members restart from their
        // data. (The writer has no member to write to while the set is at 0.)
        step(
            "scale 3 -> 0 -> 3 (a pause)",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| {
                let before = member_ids(ctl)?;
                scale(0)(ctl)?;
                scale(3)(ctl)?;
                let after = wait_for(
                    "the members after the pause",
                    Duration::from_secs(60),
                    || member_ids(ctl),
                );
                if before != after {
                    return Err(format!(
                        "members before the pause {before:?}, after {after:?}"
                    ));
                }
                Ok(())
            },
        );
        step(
            "scale 3 -> 5 with the old volumes of 3 and 4",
            &mut ctl,
            &writer,
            &mut table,
            scale(5),
        );
        // The old data was set aside inside each returning volume, not deleted.
        for o in [3, 4] {
            let kept = std::fs::read_dir(ctl.pods.volume(o, VOLUME))
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("data.removed-"));
            assert!(kept, "etcd-{o}: the old data dir was not kept aside");
        }
        step(
            "scale 5 -> 3 again",
            &mut ctl,
            &writer,
            &mut table,
            scale(3),
        );
        step(
            "a join killed right after the member add, then rerun",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| {
                // What a kill right after `member add` leaves: etcd-3 added, never started.
                let peer = format!("http://{}:2380", ctl.pods.fqdn(3));
                let leader = ctl.pods.address(0);
                wait_for("member add of etcd-3", Duration::from_secs(30), || {
                    gateway(
                        &leader,
                        "cluster/member/add",
                        json!({ "peerURLs": [peer] }),
                        Duration::from_secs(5),
                    )
                });
                ctl.pods.lose_volume(3, VOLUME)?;
                scale(4)(ctl)
            },
        );
        // A rolling update (a new pod template): each pod's preStop sees the set still includes
        // it and stays; each restarts from its data as the same member.
        let mut next = tpl.clone();
        next.revision += 1;
        step(
            "a rolling update of 4 (3, 2, 1, 0 restart)",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| {
                let before = member_ids(ctl)?;
                ctl.scale(&mut Etcd, 4, next)?;
                let after = member_ids(ctl)?;
                if before != after {
                    return Err(format!(
                        "members before the rolling update {before:?}, after {after:?}"
                    ));
                }
                Ok(())
            },
        );
        // A member left behind: pod 4 goes with no preStop (a force delete, a lost node), so
        // etcd-4 stays listed. The rolling update's first start that has quorum without itself
        // (etcd-3: 0, 1 and 2 of 5 run) removes it.
        step("scale 4 -> 5", &mut ctl, &writer, &mut table, scale(5));
        let mut after_next = tpl.clone();
        after_next.revision += 2;
        step(
            "scale 5 -> 4 with no preStop, then a rolling update (etcd-3's start removes etcd-4)",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| ctl.scale(&mut NoPreStop(&mut Etcd), 4, after_next.clone()),
        );
        // With etcd-3 left behind, 3 of 4 members run: each member the rolling update restarts
        // is one the quorum needs, so its removal of etcd-3 cannot commit before it starts, and
        // it must not wait for that: it starts from its data (the removal may still commit once
        // the quorum is back, or wait for a later start). Back at 4, etcd-3 returns as a member,
        // with its data or anew.
        let mut last = tpl.clone();
        last.revision += 3;
        step(
            "scale 4 -> 3 with no preStop and a rolling update (no quorum without the restarting member), then 3 -> 4",
            &mut ctl,
            &writer,
            &mut table,
            |ctl| {
                ctl.scale(&mut NoPreStop(&mut Etcd), 3, last.clone())?;
                ctl.scale(&mut Etcd, 4, last)
            },
        );
        let total = writer.acks.keys().len();
        writer.thread.finish();
        report(&format!(
            "{total} acknowledged puts, every one read back from every member"
        ));
        table.report();
        ctl.pods.down();
    }
}

// ---------------------------------------------------------------------------------------------
// Day 2 for ZooKeeper: 3 -> 5 -> 3 and a lost volume, each done as the StatefulSet controller
// does it, with Debian's ZooKeeper 3.8, a writer recording acknowledged creates (kazoo, a client
// independent of rolecall's), and every server's mode polled throughout: never two leaders.

// rolecall's ZooKeeper reconfig (cargo feature `member`).
#[cfg(feature = "member")]
mod zookeeper_day2 {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use crate::sim::controller::{
        Acks, App, Background, Controller, NoPreStop, Policy, Table, Template,
    };
    use crate::sim::{Pods, StatefulSet, can_run, report, report_said, secs, wait_for};

    /// The pods' data volume, the role's data_dir: zoo.cfg, myid and the dynamic config files
    /// live there, beside ZooKeeper's version-2.
    const VOLUME: &str = "/var/lib/zookeeper";
    const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sim/zookeeper.py");
    /// ZooKeeper's logging, to each pod's server log.
    const LOG4J: &str = "log4j.rootLogger=INFO, CONSOLE\n\
                         log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
                         log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
                         log4j.appender.CONSOLE.layout.ConversionPattern=\
                         %d{HH:mm:ss,SSS} %-5p [%t:%C{1}@%L] - %m%n\n";
    const CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:\
                             /usr/share/java/log4j-1.2.jar";

    /// The answer of a four-letter command, or None when the server does not answer.
    fn four_letters(address: &str, command: &str) -> Option<String> {
        let addr: SocketAddr = format!("{address}:2181").parse().ok()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(command.as_bytes()).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// `leader`, `follower`, `observer` from srvr; None when the server does not serve.
    fn mode(address: &str) -> Option<String> {
        let srvr = four_letters(address, "srvr")?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    }

    /// The containers of a ZooKeeper pod: rolecall as the init container (with --data-dir, so
    /// it makes the membership calls), ZooKeeper's JVM as the main container, `rolecall leave`
    /// as its preStop hook.
    struct Zk {
        /// A file in every pod with the super user's password (a Secret's file, in a cluster).
        password_file: String,
        log4j: String,
        /// Without --data-dir: the static server list of every pod, no membership actions.
        static_list: bool,
    }

    impl App for Zk {
        fn init(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
        ) -> Result<(), String> {
            let rolecall = pods.rolecall();
            let password = format!("super_password_file={}", self.password_file);
            let mut argv = vec![
                rolecall.as_str(),
                "render",
                "--role",
                "zookeeper",
                "--out",
                VOLUME,
            ];
            if !self.static_list {
                argv.extend([
                    "--data-dir",
                    VOLUME,
                    "--set",
                    &password,
                    "--set",
                    "bootstrap_size=3",
                    "--set",
                    "observers_from=4",
                    "--timeout",
                    "90s",
                ]);
            }
            let run = pods.exec(ordinal, env, &argv, Duration::from_secs(120));
            report_said("init", &pods.hostname(ordinal), run.stderr.trim().lines());
            run.ok().map(drop)
        }

        fn start(&mut self, pods: &mut Pods, ordinal: u32, env: &[(String, String)]) {
            let config = format!("{VOLUME}/zoo.cfg");
            let log4j = format!("-Dlog4j.configuration=file:{}", self.log4j);
            pods.start_with_env(
                ordinal,
                env,
                &[
                    "java",
                    "-Xmx192m",
                    "-XX:+UseSerialGC",
                    &log4j,
                    "-cp",
                    CLASSPATH,
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    &config,
                ],
            );
        }

        fn ready(&mut self, pods: &Pods, ordinal: u32) -> bool {
            mode(&pods.address(ordinal))
                .is_some_and(|m| ["leader", "follower", "observer"].contains(&m.as_str()))
        }

        fn pre_stop(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
            spec_replicas: u32,
        ) -> Result<(), String> {
            if self.static_list {
                return Ok(());
            }
            let replicas = spec_replicas.to_string();
            let rolecall = pods.rolecall();
            let password = format!("super_password_file={}", self.password_file);
            let run = pods.exec(
                ordinal,
                env,
                &[
                    &rolecall,
                    "leave",
                    "--role",
                    "zookeeper",
                    "--replicas",
                    &replicas,
                    "--set",
                    &password,
                    "--timeout",
                    "20s",
                ],
                Duration::from_secs(30),
            );
            report_said(
                "preStop",
                &pods.hostname(ordinal),
                run.stderr.trim().lines(),
            );
            run.ok().map(drop)
        }
    }

    /// Rounds of the poll with more than one leader: when, and which ordinals.
    type Doubles = Arc<Mutex<Vec<(Instant, Vec<u32>)>>>;

    /// Polls every pod's server (all at once, every 100 ms) and keeps each round's leaders.
    struct Modes {
        doubles: Doubles,
        rounds: Arc<Mutex<u64>>,
        thread: Background,
    }

    impl Modes {
        fn start(addresses: Vec<(u32, String)>) -> Modes {
            let doubles = Doubles::default();
            let rounds = Arc::new(Mutex::new(0));
            let thread = Background::spawn({
                let (doubles, rounds) = (doubles.clone(), rounds.clone());
                move || {
                    let leaders: Vec<u32> = std::thread::scope(|s| {
                        let polls: Vec<_> = addresses
                            .iter()
                            .map(|(o, a)| s.spawn(move || (*o, mode(a))))
                            .collect();
                        polls
                            .into_iter()
                            .filter_map(|p| p.join().ok())
                            .filter(|(_, m)| m.as_deref() == Some("leader"))
                            .map(|(o, _)| o)
                            .collect()
                    });
                    *rounds.lock().unwrap() += 1;
                    if leaders.len() > 1 {
                        doubles.lock().unwrap().push((Instant::now(), leaders));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            Modes {
                doubles,
                rounds,
                thread,
            }
        }

        fn doubles_since(&self, from: Instant) -> Vec<(Instant, Vec<u32>)> {
            self.doubles
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, _)| *t >= from)
                .cloned()
                .collect()
        }

        fn rounds(&self) -> u64 {
            *self.rounds.lock().unwrap()
        }
    }

    /// The kazoo writer: creates sequential znodes through any serving server and records each
    /// acknowledged create.
    struct Writer {
        child: Child,
        acks: Acks,
        reader: Option<JoinHandle<()>>,
    }

    impl Writer {
        fn start(hosts: &str) -> Writer {
            let mut child = Command::new("python3")
                .args([HELPER, "write", hosts])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 tests/sim/zookeeper.py write");
            let stdout = child.stdout.take().expect("piped stdout");
            let acks = Acks::default();
            let reader = {
                let acks = acks.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        if let Some(key) = line.strip_prefix("ack ").and_then(|k| k.parse().ok()) {
                            acks.push(key);
                        }
                    }
                })
            };
            Writer {
                child,
                acks,
                reader: Some(reader),
            }
        }

        fn finish(mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn helper(args: &[&str]) -> Result<String, String> {
        let out = Command::new("python3")
            .arg(HELPER)
            .args(args)
            .output()
            .map_err(|e| format!("python3 {HELPER}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "zookeeper.py {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The pods from this index on are observers (`--set observers_from=4`).
    const OBSERVERS_FROM: u32 = 4;

    /// After a step: the ensemble's configuration lists exactly the set's pods with ids
    /// ordinal + 1, the first four as voters and ens-4 as an observer; each of them serves, as
    /// its role says, and exactly one leads; each has every acknowledged create (read from that
    /// server after a sync).
    fn check(ctl: &Controller, writer: &Writer) -> Result<(), String> {
        let pods = &ctl.pods;
        let role = |o: u32| {
            if o >= OBSERVERS_FROM {
                "observer"
            } else {
                "participant"
            }
        };
        let want: BTreeSet<String> = ctl
            .ordinals()
            .map(|o| format!("server.{}={}:2888:3888:{}", o + 1, pods.fqdn(o), role(o)))
            .collect();
        for o in ctl.ordinals() {
            let config = helper(&["config", &format!("{}:2181", pods.address(o))])?;
            let servers: BTreeSet<String> = config
                .lines()
                .filter(|l| l.starts_with("server."))
                .map(|l| l.split(';').next().unwrap_or_default().to_string())
                .collect();
            if servers != want {
                return Err(format!(
                    "{} has the configuration {servers:?}; the set is {want:?}",
                    pods.hostname(o)
                ));
            }
        }
        let modes: BTreeMap<u32, Option<String>> = ctl
            .ordinals()
            .map(|o| (o, mode(&pods.address(o))))
            .collect();
        let leaders = modes
            .values()
            .filter(|m| m.as_deref() == Some("leader"))
            .count();
        let as_its_role = modes.iter().all(|(&o, m)| match role(o) {
            "observer" => m.as_deref() == Some("observer"),
            _ => matches!(m.as_deref(), Some("leader" | "follower")),
        });
        if leaders != 1 || !as_its_role {
            return Err(format!("modes {modes:?}"));
        }
        let hosts: Vec<String> = ctl
            .ordinals()
            .map(|o| format!("{}:2181", pods.address(o)))
            .collect();
        let host_args: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let acked: BTreeSet<String> = writer
            .acks
            .keys()
            .into_iter()
            .map(|k| format!("k{k:08}"))
            .collect();
        let mut args = vec!["read"];
        args.extend(&host_args);
        let read = helper(&args)?;
        for (o, host) in ctl.ordinals().zip(&hosts) {
            let have: BTreeSet<&str> = read
                .lines()
                .filter_map(|l| l.strip_prefix(host.as_str()))
                .map(str::trim)
                .collect();
            let lost: Vec<&String> = acked
                .iter()
                .filter(|k| !have.contains(k.as_str()))
                .collect();
            if !lost.is_empty() {
                return Err(format!(
                    "{} lacks {} of {} acknowledged creates, e.g. {:?}",
                    pods.hostname(o),
                    lost.len(),
                    acked.len(),
                    &lost[..lost.len().min(5)]
                ));
            }
        }
        Ok(())
    }

    /// One step: what it did, how long it took, the longest pause in acknowledged writes, the
    /// leader polls. Two leaders in one poll round fail the step, except the one ZooKeeper
    /// itself makes when a reconfig removes the leader: the removed server commits nothing
    /// more (`allowedToCommit=false`) and keeps saying `leader` until it notices its followers
    /// left, within syncLimit ticks; `leaving` are the ordinals this step removes.
    #[allow(clippy::too_many_arguments)]
    fn step(
        name: &str,
        ctl: &mut Controller,
        writer: &Writer,
        modes: &Modes,
        leaving: &[u32],
        table: &mut Table,
        action: impl FnOnce(&mut Controller) -> Result<(), String>,
    ) {
        let rounds = modes.rounds();
        let step = ctl.step(name, &writer.acks, Duration::from_secs(90), action, |ctl| {
            check(ctl, writer)
        });
        let doubles = modes.doubles_since(step.started);
        let (handoffs, split): (Vec<_>, Vec<_>) = doubles.iter().partition(|(_, leaders)| {
            leaders.len() == 2 && leaders.iter().any(|o| leaving.contains(o))
        });
        assert!(
            split.is_empty(),
            "{name}: two leaders at once, neither being removed: {:?}",
            split.iter().map(|(_, l)| l).collect::<Vec<_>>()
        );
        let handoff = match (handoffs.first(), handoffs.last()) {
            (Some(first), Some(last)) => last.0 - first.0 + Duration::from_millis(100),
            _ => Duration::ZERO,
        };
        assert!(
            handoff < Duration::from_secs(10),
            "{name}: a removed leader kept saying `leader` for {handoff:?}, longer than \
             syncLimit x tickTime"
        );
        let polled = modes.rounds() - rounds;
        table.row(&[
            name,
            &secs(step.took),
            &secs(step.gap),
            &format!(
                "{polled} rounds, {} with the removed leader still stepping down ({})",
                handoffs.len(),
                secs(handoff)
            ),
        ]);
    }

    #[test]
    fn zookeeper_scales_both_ways_and_replaces_a_server_with_one_leader_throughout() {
        if !can_run("ZooKeeper day 2", &["java", "python3"]) {
            return;
        }
        let kazoo = Command::new("python3")
            .args(["-c", "import kazoo"])
            .status()
            .is_ok_and(|s| s.success());
        if !kazoo
            && !crate::common::skip(
                "ZooKeeper day 2",
                "needs kazoo for python3 (.ci/run installs it into /opt/rolecall-ci)",
            )
        {
            return;
        }
        if crate::common::find_program("/usr/share/java/zookeeper.jar").is_none()
            && !crate::common::skip("ZooKeeper day 2", "needs the Debian package zookeeper")
        {
            return;
        }
        let wall = Instant::now();
        let namespace = "coord";
        let mut set = StatefulSet::new("ens", 5);
        set.namespace = namespace.into();
        set.volumes = vec![VOLUME.into()];
        set.host_address = true;
        let pods = Pods::up(set);
        // The Secret and the logging setup, where every pod sees them.
        let shared = pods.pod_dir(0).parent().unwrap().to_path_buf();
        let password_file = shared.join("zk-super-password");
        std::fs::write(&password_file, "s3cret: with spaces\n").unwrap();
        let log4j = shared.join("log4j.properties");
        std::fs::write(&log4j, LOG4J).unwrap();
        let addresses: Vec<(u32, String)> = (0..5).map(|o| (o, pods.address(o))).collect();
        let hosts: Vec<String> = addresses.iter().map(|(_, a)| format!("{a}:2181")).collect();
        let mut ctl = Controller::new(pods, Policy::Parallel, Template::sized(1, 3, namespace));
        ctl.ready_timeout = Duration::from_secs(120);
        let mut app = Zk {
            password_file: password_file.display().to_string(),
            log4j: log4j.display().to_string(),
            static_list: false,
        };
        let mut table = Table::new(
            &[
                "step",
                "time",
                "longest gap between acknowledged writes",
                "leader polls",
            ],
            &["---", "---:", "---:", "---"],
        );
        let modes = Modes::start(addresses);
        let writer = Writer::start(&hosts.join(","));

        step(
            "bootstrap 3",
            &mut ctl,
            &writer,
            &modes,
            &[],
            &mut table,
            |ctl| ctl.scale(&mut app, 3, Template::sized(1, 3, namespace)),
        );
        step(
            "scale 3 -> 5 (add 3, 4; roll 2, 1, 0)",
            &mut ctl,
            &writer,
            &modes,
            &[],
            &mut table,
            |ctl| ctl.scale(&mut app, 5, Template::sized(2, 5, namespace)),
        );
        step(
            "scale 5 -> 3 (remove 4, 3; roll 2, 1, 0)",
            &mut ctl,
            &writer,
            &modes,
            &[3, 4],
            &mut table,
            |ctl| ctl.scale(&mut app, 3, Template::sized(3, 3, namespace)),
        );
        step(
            "replace ens-1 (volume lost)",
            &mut ctl,
            &writer,
            &modes,
            &[],
            &mut table,
            |ctl| {
                ctl.delete(&mut app, 1)?;
                ctl.recreate_with_lost_volume(&mut app, 1, VOLUME)
            },
        );
        step(
            "scale 3 -> 5 with the old volumes of 3 and 4",
            &mut ctl,
            &writer,
            &modes,
            &[],
            &mut table,
            |ctl| ctl.scale(&mut app, 5, Template::sized(4, 5, namespace)),
        );
        // A server left behind: ens-4 goes with no preStop (a force delete, a lost node), so
        // the ensemble still lists it; a start of the rolling update that finds the ensemble
        // serving removes it (a start that finds none serving starts from its last
        // configuration, as a restart does).
        step(
            "scale 5 -> 4 with no preStop (ens-4 left behind; roll 3, 2, 1, 0)",
            &mut ctl,
            &writer,
            &modes,
            &[],
            &mut table,
            |ctl| {
                ctl.scale(
                    &mut NoPreStop(&mut app),
                    4,
                    Template::sized(5, 4, namespace),
                )
            },
        );
        step(
            "scale 4 -> 3 (remove 3; roll 2, 1, 0)",
            &mut ctl,
            &writer,
            &modes,
            &[3],
            &mut table,
            |ctl| ctl.scale(&mut app, 3, Template::sized(6, 3, namespace)),
        );
        let total = writer.acks.keys().len();
        writer.finish();
        modes.thread.finish();
        report(&format!(
            "{total} acknowledged creates, every one read back from every server; wall time {}",
            secs(wall.elapsed())
        ));
        table.report();
        ctl.pods.down();
    }

    /// The control: what the poll above would see if the ensemble split. Without --data-dir the
    /// role renders every pod's static server list, and a user raising ROLECALL_REPLICAS from 3
    /// to 5 splits a running ensemble whose leader is zks-2: the new servers follow it, and when
    /// the rolling update restarts it with the 5-server list, zks-0 and zks-1 (a majority of the
    /// 3-server list they still have) elect one leader while zks-2, zks-3 and zks-4 (a majority
    /// of the 5-server list) elect another. The same poll must see two leaders here; were it
    /// blind, `zookeeper_scales_both_ways...` above would prove nothing.
    #[test]
    fn the_poll_sees_the_split_a_static_server_list_makes() {
        if !can_run("ZooKeeper static split", &["java"]) {
            return;
        }
        if crate::common::find_program("/usr/share/java/zookeeper.jar").is_none()
            && !crate::common::skip(
                "ZooKeeper static split",
                "needs the Debian package zookeeper",
            )
        {
            return;
        }
        let namespace = "coord";
        let mut set = StatefulSet::new("zks", 5);
        set.namespace = namespace.into();
        set.volumes = vec![VOLUME.into()];
        set.host_address = true;
        let pods = Pods::up(set);
        let log4j = pods.pod_dir(0).parent().unwrap().join("log4j.properties");
        std::fs::write(&log4j, LOG4J).unwrap();
        let addresses: Vec<(u32, String)> = (0..5).map(|o| (o, pods.address(o))).collect();
        let mut ctl = Controller::new(pods, Policy::Parallel, Template::sized(1, 3, namespace));
        ctl.ready_timeout = Duration::from_secs(120);
        let mut app = Zk {
            password_file: String::new(),
            log4j: log4j.display().to_string(),
            static_list: true,
        };
        ctl.scale(&mut app, 3, Template::sized(1, 3, namespace))
            .unwrap_or_else(|e| panic!("bootstrap: {e}"));
        // zks-2 must lead, as it does when the three start together (FastLeaderElection
        // prefers the highest id among equal histories): restart whoever leads until it does.
        let leader = |ctl: &Controller| {
            wait_for("a leader", Duration::from_secs(60), || {
                ctl.ordinals()
                    .find(|&o| mode(&ctl.pods.address(o)).as_deref() == Some("leader"))
                    .ok_or_else(|| "no leader".to_string())
            })
        };
        for _ in 0..4 {
            let l = leader(&ctl);
            if l == 2 {
                break;
            }
            ctl.delete(&mut app, l).unwrap();
            ctl.create(&mut app, l).unwrap();
            ctl.wait_ready(&mut app, l).unwrap();
        }
        assert_eq!(leader(&ctl), 2, "zks-2 does not lead");
        let modes = Modes::start(addresses);
        // The user's change, as the controller makes it: zks-3 and zks-4 with the 5-server list,
        // then the rolling update's first pod, zks-2.
        ctl.replicas = 5;
        ctl.template = Template::sized(2, 5, namespace);
        for o in [3, 4] {
            ctl.create(&mut app, o).unwrap();
        }
        for o in [3, 4] {
            ctl.wait_ready(&mut app, o).unwrap();
        }
        let rolled = Instant::now();
        ctl.delete(&mut app, 2).unwrap();
        ctl.create(&mut app, 2).unwrap();
        let split = wait_for("two leaders at once", Duration::from_secs(60), || {
            modes
                .doubles_since(rolled)
                .first()
                .map(|(t, leaders)| (*t - rolled, leaders.clone()))
                .ok_or_else(|| "one leader so far".to_string())
        });
        std::thread::sleep(Duration::from_secs(5));
        let rounds = modes.doubles_since(rolled).len();
        modes.thread.finish();
        report(&format!(
            "static server lists: two leaders {:?} seen {} after zks-2 was rolled; {rounds} \
             poll rounds with two leaders in the next 5 s",
            split.1,
            secs(split.0)
        ));
        assert!(rounds >= 2, "the split was seen in one round only");
        ctl.pods.down();
    }
}

// ---------------------------------------------------------------------------------------------
// Day 2 for Redis Cluster: 6 -> 8 -> 6 by whole shards and a lost volume, each done as the
// StatefulSet controller does it, with Debian's Redis 7.0, the role's scripts in the Redis
// container (create-cluster.sh, join-cluster.sh) and its preStop (leave-cluster.sh), and a
// writer setting keys spread over all 16384 slots through the cluster's redirections.

mod redis_cluster_day2 {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::sim::controller::{Acks, App, Background, Controller, Policy, Table, Template};
    use crate::sim::{Pods, StatefulSet, can_run, report, report_said, secs, wait_for};

    const VOLUME: &str = "/var/lib/redis";
    const SLOTS: u16 = 16384;

    /// Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = key.find('{').and_then(|open| {
            let close = key[open + 1..].find('}')? + open + 1;
            (close > open + 1).then(|| &bytes[open + 1..close])
        });
        let mut crc: u16 = 0;
        for &b in tagged.unwrap_or(bytes) {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % SLOTS
    }

    /// For each slot, a hash tag that lands in it: key N goes to slot N * 7919 mod 16384, so
    /// consecutive keys visit every slot.
    fn tags() -> Vec<String> {
        let mut tags = vec![String::new(); SLOTS as usize];
        let mut missing = SLOTS as usize;
        let mut n = 0u64;
        while missing > 0 {
            let tag = format!("t{n}");
            let s = slot(&tag) as usize;
            if tags[s].is_empty() {
                tags[s] = tag;
                missing -= 1;
            }
            n += 1;
        }
        tags
    }

    fn key(tags: &[String], n: u64) -> String {
        let s = (n * 7919 % u64::from(SLOTS)) as usize;
        format!("{{{}}}:{n}", tags[s])
    }

    /// A RESP reply.
    #[derive(Debug, PartialEq)]
    enum Reply {
        Status(String),
        Error(String),
        Int(i64),
        Bulk(Option<String>),
        Array(Vec<Reply>),
    }

    /// One connection to one node.
    struct Conn {
        reader: BufReader<TcpStream>,
    }

    impl Conn {
        fn open(address: &str) -> Result<Conn, String> {
            let addr: SocketAddr = format!("{address}:6379")
                .parse()
                .map_err(|e| format!("{address}: {e}"))?;
            let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .map_err(|e| format!("{address}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            Ok(Conn {
                reader: BufReader::new(stream),
            })
        }

        fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
            let mut out = format!("*{}\r\n", args.len());
            for a in args {
                out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            self.reader
                .get_mut()
                .write_all(out.as_bytes())
                .map_err(|e| e.to_string())?;
            self.read()
        }

        fn read(&mut self) -> Result<Reply, String> {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let line = line.trim_end_matches(['\r', '\n']);
            let (kind, rest) = line.split_at_checked(1).ok_or("connection closed")?;
            match kind {
                "+" => Ok(Reply::Status(rest.into())),
                "-" => Ok(Reply::Error(rest.into())),
                ":" => rest.parse().map(Reply::Int).map_err(|e| e.to_string()),
                "$" => {
                    let len: i64 = rest.parse().map_err(|_| format!("bad bulk {rest}"))?;
                    if len < 0 {
                        return Ok(Reply::Bulk(None));
                    }
                    let mut buf = vec![0u8; len as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut buf)
                        .map_err(|e| e.to_string())?;
                    buf.truncate(len as usize);
                    Ok(Reply::Bulk(Some(String::from_utf8_lossy(&buf).into())))
                }
                "*" => {
                    let len: i64 = rest.parse().map_err(|_| format!("bad array {rest}"))?;
                    (0..len.max(0))
                        .map(|_| self.read())
                        .collect::<Result<_, _>>()
                        .map(Reply::Array)
                }
                _ => Err(format!("not RESP: {line}")),
            }
        }
    }

    /// A command to one node; its text (status or bulk), or an error.
    fn command(address: &str, args: &[&str]) -> Result<String, String> {
        match Conn::open(address)?.call(args)? {
            Reply::Status(s) | Reply::Bulk(Some(s)) => Ok(s),
            other => Err(format!("{args:?} on {address}: {other:?}")),
        }
    }

    /// A client of the whole cluster, from this machine: follows MOVED and ASK, whose
    /// announced hostnames it maps to the pods' addresses.
    struct ClusterClient {
        addresses: BTreeMap<String, String>,
        route: HashMap<u16, String>,
        conns: HashMap<String, Conn>,
        next: usize,
    }

    impl ClusterClient {
        fn new(pods: &Pods, ordinals: std::ops::Range<u32>) -> ClusterClient {
            ClusterClient {
                addresses: ordinals
                    .map(|o| (pods.hostname(o), pods.address(o)))
                    .collect(),
                route: HashMap::new(),
                conns: HashMap::new(),
                next: 0,
            }
        }

        fn address_of(&self, target: &str) -> Option<String> {
            let host = target.rsplit_once(':')?.0;
            self.addresses
                .get(host.split('.').next()?)
                .cloned()
                .or_else(|| Some(host.to_string()))
        }

        /// Runs a one-key command until a node answers it, at most `attempts` times.
        fn call(&mut self, key: &str, args: &[&str], attempts: u32) -> Result<Reply, String> {
            let s = slot(key);
            let mut asking: Option<String> = None;
            let mut last = String::new();
            for _ in 0..attempts {
                let address = match (&asking, self.route.get(&s)) {
                    (Some(a), _) => a.clone(),
                    (None, Some(a)) => a.clone(),
                    (None, None) => {
                        self.next += 1;
                        let all: Vec<&String> = self.addresses.values().collect();
                        all[self.next % all.len()].clone()
                    }
                };
                if !self.conns.contains_key(&address) {
                    match Conn::open(&address) {
                        Ok(c) => {
                            self.conns.insert(address.clone(), c);
                        }
                        Err(e) => {
                            last = e;
                            self.route.remove(&s);
                            asking = None;
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                }
                let conn = self.conns.get_mut(&address).expect("just opened");
                if asking.is_some() {
                    let _ = conn.call(&["ASKING"]);
                }
                let reply = conn.call(args);
                asking = None;
                match reply {
                    Err(e) => {
                        last = e;
                        self.conns.remove(&address);
                        self.route.remove(&s);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(Reply::Error(e)) => {
                        let mut words = e.split_whitespace();
                        match (words.next(), words.nth(1)) {
                            (Some("MOVED"), Some(target)) => {
                                if let Some(a) = self.address_of(target) {
                                    self.route.insert(s, a);
                                }
                            }
                            (Some("ASK"), Some(target)) => asking = self.address_of(target),
                            _ => {
                                // TRYAGAIN, CLUSTERDOWN, LOADING, READONLY: not now.
                                self.route.remove(&s);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                        last = e;
                    }
                    Ok(reply) => {
                        self.route.insert(s, address);
                        return Ok(reply);
                    }
                }
            }
            Err(format!(
                "{args:?}: no answer after {attempts} attempts; last: {last}"
            ))
        }
    }

    /// The containers of a Redis Cluster pod: rolecall as the init container, redis-server as
    /// the main container with the role's scripts in its background, ready.sh as the readiness
    /// probe, leave-cluster.sh as the preStop hook.
    struct Redis;

    impl App for Redis {
        fn init(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
        ) -> Result<(), String> {
            let out = pods.config_dir(ordinal).display().to_string();
            let rolecall = pods.rolecall();
            let data_dir = format!("data_dir={VOLUME}");
            let run = pods.exec(
                ordinal,
                env,
                &[
                    &rolecall,
                    "render",
                    "--role",
                    "redis-cluster",
                    "--out",
                    &out,
                    "--set",
                    &data_dir,
                ],
                Duration::from_secs(30),
            );
            run.ok().map(drop)
        }

        fn start(&mut self, pods: &mut Pods, ordinal: u32, env: &[(String, String)]) {
            // As the example's container command: the scripts in the background, the server in
            // front.
            let config = pods.config_dir(ordinal).display().to_string();
            let script = format!(
                "c={config}; $c/join-cluster.sh before-start; \
                 if [ -x $c/create-cluster.sh ]; then $c/create-cluster.sh & fi; \
                 $c/join-cluster.sh & exec redis-server $c/redis.conf"
            );
            pods.start_with_env(ordinal, env, &["sh", "-c", &script]);
        }

        /// The role's readiness probe, ready.sh: a member serving slots or replicating.
        fn ready(&mut self, pods: &Pods, ordinal: u32) -> bool {
            let probe = pods.config_dir(ordinal).join("ready.sh");
            pods.exec(
                ordinal,
                &pods.pod_env(),
                &[probe.to_str().unwrap()],
                Duration::from_secs(20),
            )
            .status
            .success()
        }

        fn pre_stop(
            &mut self,
            pods: &Pods,
            ordinal: u32,
            env: &[(String, String)],
            spec_replicas: u32,
        ) -> Result<(), String> {
            let script = pods.config_dir(ordinal).join("leave-cluster.sh");
            let replicas = spec_replicas.to_string();
            let run = pods.exec(
                ordinal,
                env,
                &[script.to_str().unwrap(), &replicas],
                Duration::from_secs(150),
            );
            report_said(
                "preStop",
                &pods.hostname(ordinal),
                run.stderr
                    .lines()
                    .filter_map(|l| l.find("leave-cluster:").map(|i| &l[i..])),
            );
            run.ok().map(drop)
        }
    }

    /// Sets key N to N through the cluster, and records each acknowledged SET.
    struct Writer {
        acks: Acks,
        /// Asked to pause; and whether the writer has (no SET in flight).
        pause: Arc<AtomicBool>,
        idle: Arc<AtomicBool>,
        thread: Background,
    }

    impl Writer {
        fn start(mut client: ClusterClient, tags: Arc<Vec<String>>) -> Writer {
            let acks = Acks::default();
            let pause = Arc::new(AtomicBool::new(false));
            let idle = Arc::new(AtomicBool::new(false));
            let mut n = 0u64;
            let thread = Background::spawn({
                let (acks, pause, idle) = (acks.clone(), pause.clone(), idle.clone());
                move || {
                    if pause.load(Ordering::SeqCst) {
                        idle.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        return;
                    }
                    idle.store(false, Ordering::SeqCst);
                    let k = key(&tags, n);
                    let value = n.to_string();
                    if let Ok(Reply::Status(ok)) = client.call(&k, &["SET", &k, &value], 5)
                        && ok == "OK"
                    {
                        acks.push(n);
                        n += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            });
            Writer {
                acks,
                pause,
                idle,
                thread,
            }
        }

        /// Stops writing until `resume`, once the SET in flight is answered.
        fn pause(&self) {
            self.pause.store(true, Ordering::SeqCst);
            wait_for("the writer pauses", Duration::from_secs(30), || {
                self.idle
                    .load(Ordering::SeqCst)
                    .then_some(())
                    .ok_or_else(|| "a SET in flight".to_string())
            });
        }

        fn resume(&self) {
            self.pause.store(false, Ordering::SeqCst);
        }
    }

    /// One line of CLUSTER NODES: id, announced hostname, flags, master id, slot ranges.
    fn parse_nodes(text: &str) -> Vec<(String, String, String, String, usize)> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let host = f[1].split(',').nth(1).unwrap_or_default().to_string();
                (
                    f[0].to_string(),
                    host,
                    f[2].to_string(),
                    f[3].to_string(),
                    f.len().saturating_sub(8),
                )
            })
            .collect()
    }

    /// After a step: every node of the set sees exactly the set's pods as healthy nodes, half
    /// of them masters with one replica each, all 16384 slots served; every acknowledged key
    /// reads back with its value.
    fn check(ctl: &Controller, writer: &Writer, tags: &[String]) -> Result<(), String> {
        let pods = &ctl.pods;
        let want: BTreeSet<String> = ctl.ordinals().map(|o| pods.fqdn(o)).collect();
        for o in ctl.ordinals() {
            let address = pods.address(o);
            let info = command(&address, &["CLUSTER", "INFO"])?;
            for line in [
                "cluster_state:ok",
                "cluster_slots_assigned:16384",
                "cluster_slots_ok:16384",
            ] {
                if !info.lines().any(|l| l.trim() == line) {
                    return Err(format!("{}: no {line} in CLUSTER INFO", pods.hostname(o)));
                }
            }
            let nodes = parse_nodes(&command(&address, &["CLUSTER", "NODES"])?);
            let hosts: BTreeSet<String> = nodes.iter().map(|n| n.1.clone()).collect();
            if hosts != want || nodes.len() != want.len() {
                return Err(format!(
                    "{} knows the nodes {hosts:?} ({}); the set is {want:?}",
                    pods.hostname(o),
                    nodes.len()
                ));
            }
            if let Some(bad) = nodes
                .iter()
                .find(|n| n.2.contains("fail") || n.2.contains("handshake"))
            {
                return Err(format!("{}: node {bad:?}", pods.hostname(o)));
            }
            let masters: Vec<&String> = nodes
                .iter()
                .filter(|n| n.2.contains("master"))
                .map(|n| &n.0)
                .collect();
            let replicas_of = |id: &String| nodes.iter().filter(|n| &n.3 == id).count();
            if masters.len() != want.len() / 2
                || masters.iter().any(|m| replicas_of(m) != 1)
                || nodes.iter().any(|n| n.2.contains("master") && n.4 == 0)
            {
                return Err(format!(
                    "{}: not {} masters with slots and one replica each: {nodes:?}",
                    pods.hostname(o),
                    want.len() / 2
                ));
            }
        }
        let mut client = ClusterClient::new(pods, ctl.ordinals());
        for n in writer.acks.keys() {
            let k = key(tags, n);
            match client.call(&k, &["GET", &k], 20)? {
                Reply::Bulk(Some(v)) if v == n.to_string() => {}
                other => return Err(format!("GET {k}: {other:?}, acknowledged as {n}")),
            }
        }
        Ok(())
    }

    /// One step: what it did, how long it took, the longest pause in acknowledged writes.
    fn step(
        name: &str,
        ctl: &mut Controller,
        writer: &Writer,
        tags: &[String],
        table: &mut Table,
        action: impl FnOnce(&mut Controller) -> Result<(), String>,
    ) {
        let step = ctl.step(
            name,
            &writer.acks,
            Duration::from_secs(180),
            action,
            |ctl| check(ctl, writer, tags),
        );
        table.row(&[name, &secs(step.took), &secs(step.gap)]);
    }

    /// What the role's scripts said in the pod's log.
    fn script_lines(pods: &Pods, ordinal: u32) -> Vec<String> {
        pods.log(ordinal)
            .lines()
            .filter_map(|l| {
                let at = l
                    .find("join-cluster:")
                    .or_else(|| l.find("create-cluster:"))?;
                Some(l[at..].to_string())
            })
            .collect()
    }

    #[test]
    fn redis_cluster_scales_by_whole_shards_and_replaces_a_node_without_losing_a_write() {
        if !can_run(
            "Redis Cluster day 2",
            &["redis-server", "redis-cli", "timeout", "awk"],
        ) {
            return;
        }
        let wall = Instant::now();
        let namespace = "cache";
        let mut set = StatefulSet::new("rc", 8);
        set.namespace = namespace.into();
        set.volumes = vec![VOLUME.into()];
        set.host_address = true;
        let pods = Pods::up(set);
        let tags = Arc::new(tags());
        let client = ClusterClient::new(&pods, 0..8);
        let mut ctl = Controller::new(pods, Policy::Parallel, Template::sized(1, 6, namespace));
        // terminationGracePeriodSeconds above leave_timeout (120 s).
        ctl.grace = Duration::from_secs(150);
        let mut app = Redis;
        let mut table = Table::new(
            &["step", "time", "longest gap between acknowledged writes"],
            &["---", "---:", "---:"],
        );
        let writer = Writer::start(client, tags.clone());

        step(
            "create 6 (3 shards)",
            &mut ctl,
            &writer,
            &tags,
            &mut table,
            |ctl| ctl.scale(&mut app, 6, Template::sized(1, 6, namespace)),
        );
        step(
            "scale 6 -> 8 (shard of 6, 7; rebalance; roll 5..0)",
            &mut ctl,
            &writer,
            &tags,
            &mut table,
            |ctl| ctl.scale(&mut app, 8, Template::sized(2, 8, namespace)),
        );
        for o in [6, 7] {
            report(&format!(
                "  {}: {:?}",
                ctl.pods.hostname(o),
                script_lines(&ctl.pods, o)
            ));
        }
        step(
            "scale 8 -> 6 (7 leaves, 6 moves its slots and leaves; roll 5..0)",
            &mut ctl,
            &writer,
            &tags,
            &mut table,
            |ctl| ctl.scale(&mut app, 6, Template::sized(3, 6, namespace)),
        );
        // A master lost with its node (no preStop, SIGKILL) and its volume: its replica must
        // take over before the new node may start. Redis replicates asynchronously, so a SET
        // its master acknowledged just before dying may never reach the replica (Redis Cluster
        // does not promise otherwise); the writer pauses around the crash, until the replica
        // has every acknowledged SET, so that the check measures the replacement alone.
        let nodes = parse_nodes(&command(&ctl.pods.address(0), &["CLUSTER", "NODES"]).unwrap());
        let master_of = |o: u32| {
            nodes
                .iter()
                .find(|n| n.1 == ctl.pods.fqdn(o) && n.2.contains("master"))
                .map(|n| n.0.clone())
        };
        let crashed = ctl.ordinals().find(|&o| master_of(o).is_some()).unwrap();
        let crashed_id = master_of(crashed).unwrap();
        step(
            &format!("replace rc-{crashed}, a master lost with its node (failover first)"),
            &mut ctl,
            &writer,
            &tags,
            &mut table,
            |ctl| {
                let address = ctl.pods.address(crashed);
                writer.pause();
                wait_for(
                    "the replica has every write",
                    Duration::from_secs(30),
                    || {
                        let info = command(&address, &["INFO", "replication"])?;
                        let master = info
                            .lines()
                            .find_map(|l| l.trim().strip_prefix("master_repl_offset:"))
                            .ok_or("no offset")?
                            .to_string();
                        info.lines()
                            .any(|l| {
                                l.starts_with("slave0:") && l.contains(&format!("offset={master},"))
                            })
                            .then_some(())
                            .ok_or(info)
                    },
                );
                ctl.existing.remove(&crashed);
                ctl.pods.crash(crashed);
                writer.resume();
                ctl.recreate_with_lost_volume(&mut app, crashed, VOLUME)
            },
        );
        report(&format!(
            "  rc-{crashed}: {:?}",
            script_lines(&ctl.pods, crashed)
        ));
        // A pod deleted as usual (its preStop hands a master's slots over), its volume lost.
        let deleted = ctl.ordinals().find(|&o| o != crashed).unwrap();
        let deleted_id =
            parse_nodes(&command(&ctl.pods.address(crashed), &["CLUSTER", "NODES"]).unwrap())
                .into_iter()
                .find(|n| n.1 == ctl.pods.fqdn(deleted))
                .map(|n| n.0)
                .unwrap();
        step(
            &format!("replace rc-{deleted} (deleted, volume lost)"),
            &mut ctl,
            &writer,
            &tags,
            &mut table,
            |ctl| {
                ctl.delete(&mut app, deleted)?;
                ctl.recreate_with_lost_volume(&mut app, deleted, VOLUME)
            },
        );
        report(&format!(
            "  rc-{deleted}: {:?}",
            script_lines(&ctl.pods, deleted)
        ));
        // New node ids took the old ones' places; no node remembers an old id.
        for o in ctl.ordinals() {
            let nodes = command(&ctl.pods.address(o), &["CLUSTER", "NODES"]).unwrap();
            for old in [&crashed_id, &deleted_id] {
                assert!(
                    !nodes.contains(old.as_str()),
                    "rc-{o} still knows the lost node {old}:\n{nodes}"
                );
            }
        }
        let total = writer.acks.keys().len();
        writer.thread.finish();
        report(&format!(
            "{total} acknowledged SETs over all slots, every one read back; wall time {}",
            secs(wall.elapsed())
        ));
        table.report();
        ctl.pods.down();
    }
}

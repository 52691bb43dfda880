//! The CLI contract, through the real binary: identity, placement, rendering, writing, reporting,
//! every subcommand and every exit code of the core.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

mod common;

use common::{configmap, names_in, rolecall};

fn require_root(test: &str) -> bool {
    common::require_root(test, "namespaces / chown")
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const MASTER_CNF: &str = "# Apply this config only on the primary.\n[mysqld]\nlog-bin\n";
const SLAVE_CNF: &str = "# Apply this config only on replicas.\n[mysqld]\nsuper-read-only\n";

// ---------------------------------------------------------------------------------------------
// 1. Identity

#[test]
fn mysql_tutorial_configmap_works_without_a_role_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(
        &tmp.path().join("cm"),
        &[("master.cnf", MASTER_CNF), ("slave.cnf", SLAVE_CNF)],
    );
    for (host, file, id) in [
        ("mysql-0", "master.cnf", 100),
        ("mysql-2", "slave.cnf", 102),
    ] {
        let out = tmp.path().join(host);
        rolecall()
            .args([
                "render",
                "--hostname",
                host,
                "--replicas",
                "3",
                "--config-dir",
            ])
            .arg(&cm)
            .arg("--out")
            .arg(&out)
            .args([
                "--id-offset",
                "100",
                "--leader-file",
                "master.cnf",
                "--follower-file",
                "slave.cnf",
            ])
            .assert()
            .success();
        let mut expected_names = [file, "peers", "rolecall.env", "server-id.cnf"];
        expected_names.sort();
        assert_eq!(names_in(&out), expected_names);
        let expected = if file == "master.cnf" {
            MASTER_CNF
        } else {
            SLAVE_CNF
        };
        assert_eq!(
            read(out.join(file)),
            expected,
            "{host}: the tutorial's file must come out unchanged"
        );
        assert_eq!(
            read(out.join("server-id.cnf")),
            format!("[mysqld]\nserver-id={id}\n")
        );
    }
}

/// The MySQL tutorial's job as the issue that built the core spelled it, without --replicas:
/// nothing in it needs the set. Each pod gets its role's file and its id file exactly as with the
/// set's size, no `peers`, and a rolecall.env without the set's fields; `role` and `is_leader`
/// are known, as the first pod leads whatever the set's size. One line says what was left out.
#[test]
fn the_mysql_tutorial_job_needs_no_set_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(
        &tmp.path().join("cm"),
        &[("master.cnf", MASTER_CNF), ("slave.cnf", SLAVE_CNF)],
    );
    let job = |host: &str, out: &Path, size: &[&str]| {
        let output = rolecall()
            .args(["render", "--config-dir"])
            .arg(&cm)
            .arg("--out")
            .arg(out)
            .args(["--id-offset", "100", "--leader-file", "master.cnf"])
            .args(["--follower-file", "slave.cnf", "--hostname", host])
            .args(size)
            .output()
            .unwrap();
        assert!(output.status.success(), "{host}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    for (host, file, role, leads) in [
        ("mysql-0", "master.cnf", "leader", "true"),
        ("mysql-2", "slave.cnf", "follower", "false"),
    ] {
        let out = tmp.path().join(host);
        let stderr = job(host, &out, &[]);
        assert_eq!(
            stderr,
            format!(
                "rolecall: the set's size is unknown (no --replicas, no --from-api) and no \
                 template needs it: no peers file, and rolecall.env without ROLECALL_REPLICAS, \
                 PEERS, LEADER and LEADER_ADDRESS\n\
                 rolecall: {host} -> ordinal {}, server-id 10{}, role {role}; wrote \
                 server-id.cnf, {file}, rolecall.env\n",
                &host[6..],
                &host[6..]
            )
        );
        let mut names = [file, "rolecall.env", "server-id.cnf"];
        names.sort();
        assert_eq!(names_in(&out), names, "{host}: no peers file");
        let env = read(out.join("rolecall.env"));
        assert!(
            env.contains(&format!("export ROLECALL_ROLE={role}\n")),
            "{env}"
        );
        assert!(
            env.contains(&format!("export ROLECALL_IS_LEADER={leads}\n")),
            "{env}"
        );
        // The same pod rendered with the set's size: the same role files, and a rolecall.env
        // that has just the set's fields more.
        let sized = tmp.path().join(format!("{host}-sized"));
        job(host, &sized, &["--replicas", "3"]);
        for name in [file, "server-id.cnf"] {
            assert_eq!(
                read(out.join(name)),
                read(sized.join(name)),
                "{host}/{name}"
            );
        }
        let set_lines = ["REPLICAS=", "PEERS=", "LEADER=", "LEADER_ADDRESS="];
        let without_set: String = read(sized.join("rolecall.env"))
            .lines()
            .filter(|l| {
                !set_lines
                    .iter()
                    .any(|f| l.starts_with(&format!("export ROLECALL_{f}")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(env, without_set, "{host}");
        assert_eq!(
            env.lines().count() + 4,
            read(sized.join("rolecall.env")).lines().count()
        );
        // Rendered again without the size, the pod's directory still holds the sized run's
        // peers file: the line says so.
        let again = job(host, &sized, &[]);
        assert!(
            again.contains(&format!(
                "; {} is left from an earlier render\n",
                sized.join("peers").display()
            )),
            "{again}"
        );
    }
    rolecall()
        .args(["get", "is_leader", "--hostname", "mysql-0"])
        .assert()
        .success()
        .stdout("true\n");
    rolecall()
        .args([
            "get",
            "is_leader",
            "--hostname",
            "mysql-1",
            "--role",
            "mysql",
        ])
        .assert()
        .success()
        .stdout("false\n");
}

/// Without the set's size, a template that reads `peers`, `leader`, `leader_address` or
/// `replicas` fails on every pod, naming itself and the flag, even where the field is read only
/// under an `if` (where tera would take it for false) or through an included key, and even on
/// a pod that does not render it. Nothing is written.
#[test]
fn a_template_that_reads_the_set_needs_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    for (key, text, field) in [
        ("slave.cnf", "{% if leader %}x{% endif %}\n", "leader"),
        ("slave.cnf", "{% include \"part\" %}", "replicas"),
        ("slave.cnf", "{{ leader_address }}\n", "leader_address"),
        (
            "slave.cnf",
            "{% for p in peers %}{{ p.fqdn }}{% endfor %}",
            "peers",
        ),
    ] {
        let cm = configmap(
            &tempfile::tempdir_in(tmp.path()).unwrap().keep(),
            &[
                ("master.cnf", MASTER_CNF),
                (key, text),
                ("part", "{{ replicas }}\n"),
            ],
        );
        for host in ["mysql-0", "mysql-1"] {
            let out = tmp.path().join("out");
            rolecall()
                .args(["render", "--config-dir"])
                .arg(&cm)
                .arg("--out")
                .arg(&out)
                .args([
                    "--leader-file",
                    "master.cnf",
                    "--follower-file",
                    "slave.cnf",
                ])
                .args(["--hostname", host])
                .assert()
                .code(3)
                .stderr(contains(format!(
                    "rolecall: template `slave.cnf` ({}) uses `{field}`, which needs the size of \
                     the set; pass --replicas N",
                    cm.join("slave.cnf").display()
                )));
            assert!(!out.exists(), "{host}: nothing written");
        }
    }
}

#[test]
fn hostname_comes_from_flag_then_env_then_pod_name() {
    let get = |cmd: &mut Command| String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    let ordinal = || {
        let mut cmd = rolecall();
        cmd.args(["get", "ordinal"]).env("POD_NAME", "web-4");
        cmd
    };
    assert_eq!(get(ordinal().env("ROLECALL_HOSTNAME", "web-3")), "3\n");
    assert_eq!(get(&mut ordinal()), "4\n");
    assert_eq!(get(ordinal().args(["--hostname", "web-5"])), "5\n");
}

#[test]
fn kernel_hostname_is_read_when_nothing_else_names_the_pod() {
    if !require_root("kernel_hostname_is_read_when_nothing_else_names_the_pod") {
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin!("rolecall");
    let out = common::without_pod_env(&mut StdCommand::new("unshare"))
        .args([
            "--uts",
            "sh",
            "-c",
            r#"hostname kafka-7 && exec "$0" get hostname"#,
        ])
        .arg(bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kafka-7\n");
}

#[test]
fn hostname_without_ordinal_is_rejected() {
    rolecall()
        .args(["get", "ordinal", "--hostname", "web"])
        .assert()
        .code(3)
        .stderr(
            contains("hostname `web` has no ordinal suffix").and(contains("--hostname NAME-N")),
        );
}

#[test]
fn fqdn_hostname_uses_its_first_label() {
    rolecall()
        .args([
            "get",
            "name",
            "--hostname",
            "web-2.web.ns.svc.cluster.local",
        ])
        .assert()
        .success()
        .stdout("web\n");
}

#[test]
fn ordinal_regex_splits_other_naming_schemes() {
    rolecall()
        .args([
            "get",
            "name",
            "--hostname",
            "broker-x9",
            "--ordinal-regex",
            r"^(?P<name>.+)-x(?P<ordinal>\d+)$",
        ])
        .assert()
        .success()
        .stdout("broker\n");
    rolecall()
        .args([
            "get",
            "ordinal",
            "--hostname",
            "web-1",
            "--ordinal-regex",
            r"^(.+)-(\d+)$",
        ])
        .assert()
        .code(2)
        .stderr(contains("no named group `ordinal`"));
    rolecall()
        .args([
            "get",
            "ordinal",
            "--hostname",
            "web-1",
            "--ordinal-regex",
            r"^(?P<ordinal>[0-9",
        ])
        .assert()
        .code(2)
        .stderr(contains("not a valid regex"));
    rolecall()
        .args([
            "get",
            "ordinal",
            "--hostname",
            "web-1",
            "--ordinal-regex",
            r"^(?P<name>\p{L}+)-(?P<ordinal>[0-9]+)$",
        ])
        .assert()
        .code(2)
        .stderr(contains("is not supported").and(contains("ASCII")));
}

#[test]
fn pod_index_label_must_agree_with_the_hostname() {
    rolecall()
        .args(["get", "ordinal", "--hostname", "web-2", "--pod-index", "2"])
        .assert()
        .success()
        .stdout("2\n");
    rolecall()
        .args(["get", "ordinal", "--hostname", "web-2"])
        .env("ROLECALL_POD_INDEX", "1")
        .assert()
        .code(3)
        .stderr(contains(
            "pod-index label says 1 but hostname `web-2` says ordinal 2",
        ));
}

#[test]
fn start_ordinal_shifts_index_and_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    rolecall()
        .args(["render", "--role", "mysql", "--hostname", "db-5", "--start-ordinal", "5", "--replicas", "3", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr("rolecall: db-5 -> ordinal 5, server-id 105, role primary; wrote server-id.cnf, primary.cnf, peers, rolecall.env\n");
    assert_eq!(
        read(out.join("peers")),
        "db-5.db.default.svc.cluster.local:3306\ndb-6.db.default.svc.cluster.local:3306\ndb-7.db.default.svc.cluster.local:3306\n"
    );
    let env = read(out.join("rolecall.env"));
    assert!(env.contains("export ROLECALL_INDEX=0\n"), "{env}");
    assert!(env.contains("export ROLECALL_START_ORDINAL=5\n"), "{env}");
    rolecall()
        .args([
            "get",
            "role",
            "--role",
            "mysql",
            "--hostname",
            "db-7",
            "--start-ordinal",
            "5",
        ])
        .assert()
        .success()
        .stdout("replica\n");
}

#[test]
fn ordinal_outside_the_set_is_rejected() {
    for (host, says) in [
        ("db-4", "below the start ordinal 5"),
        (
            "db-8",
            "outside the set: 3 replicas from ordinal 5 end at 7",
        ),
    ] {
        rolecall()
            .args([
                "env",
                "--hostname",
                host,
                "--start-ordinal",
                "5",
                "--replicas",
                "3",
            ])
            .assert()
            .code(3)
            .stderr(contains(says));
    }
}

#[test]
fn replicas_are_never_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    // A render whose templates read the set (zoo.cfg lists every peer) needs its size.
    rolecall()
        .args([
            "render",
            "--role",
            "zookeeper",
            "--hostname",
            "web-1",
            "--out",
        ])
        .arg(tmp.path().join("out"))
        .assert()
        .code(3)
        .stderr(contains(
            "template `zoo.cfg` (built-in role zookeeper: zoo.cfg) uses `peers`, which needs the \
             size of the set; pass --replicas N, set ROLECALL_REPLICAS (spec.replicas), or read \
             it from the StatefulSet with --from-api",
        ));
    assert!(!tmp.path().join("out").exists());
    rolecall()
        .args(["env", "--hostname", "web-1"])
        .assert()
        .code(3);
    rolecall()
        .args(["get", "peers", "--hostname", "web-1"])
        .assert()
        .code(3)
        .stderr(contains("--replicas"));
    // What does not need the set works without it.
    rolecall()
        .args([
            "get",
            "server_id",
            "--hostname",
            "web-1",
            "--role",
            "zookeeper",
        ])
        .assert()
        .success()
        .stdout("2\n");
    rolecall()
        .args(["get", "replicas", "--hostname", "web-1"])
        .env("ROLECALL_REPLICAS", "4")
        .assert()
        .success()
        .stdout("4\n");
}

#[test]
fn replicas_out_of_bounds_are_usage_errors() {
    for n in ["0", "-1", "10001", "abc"] {
        rolecall()
            .args(["get", "ordinal", "--hostname", "web-1", "--replicas", n])
            .assert()
            .code(2);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Where the pods live

#[test]
fn service_defaults_to_the_set_name_and_flags_place_the_fqdn() {
    rolecall()
        .args([
            "get",
            "fqdn",
            "--hostname",
            "zk-1",
            "--namespace",
            "db",
            "--cluster-domain",
            "corp.example",
        ])
        .assert()
        .success()
        .stdout("zk-1.zk.db.svc.corp.example\n");
    rolecall()
        .args(["get", "fqdn", "--hostname", "zk-1", "--service", "zk-hs"])
        .env("POD_NAMESPACE", "prod")
        .env("ROLECALL_CLUSTER_DOMAIN", "k8s.internal")
        .assert()
        .success()
        .stdout("zk-1.zk-hs.prod.svc.k8s.internal\n");
    rolecall()
        .args(["get", "fqdn", "--hostname", "zk-1", "--namespace", "Bad_NS"])
        .assert()
        .code(2);
    rolecall()
        .args(["get", "fqdn", "--hostname", "zk-1", "--service", "a.b"])
        .assert()
        .code(2);
}

/// Runs rolecall in a private mount namespace where /run (thus /var/run) and /etc/resolv.conf are
/// replaced, so the pod's own files can be laid out without touching the machine's.
fn in_pod_mounts(
    resolv_conf: &str,
    namespace_file: Option<&str>,
    args: &str,
) -> std::process::Output {
    let tmp = tempfile::tempdir().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    fs::write(&resolv, resolv_conf).unwrap();
    let sa = match namespace_file {
        Some(ns) => format!(
            "mkdir -p /run/secrets/kubernetes.io/serviceaccount && printf %s '{ns}' > /run/secrets/kubernetes.io/serviceaccount/namespace && "
        ),
        None => String::new(),
    };
    let script = format!(
        r#"mount -t tmpfs tmpfs /run && mount --bind "$1" /etc/resolv.conf && {sa}exec "$0" {args}"#
    );
    common::without_pod_env(&mut StdCommand::new("unshare"))
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(assert_cmd::cargo::cargo_bin!("rolecall"))
        .arg(&resolv)
        .output()
        .unwrap()
}

#[test]
fn namespace_and_domain_are_found_in_the_pods_own_files() {
    if !require_root("namespace_and_domain_are_found_in_the_pods_own_files") {
        return;
    }
    let resolv = "search team-a.svc.k8s.corp svc.k8s.corp k8s.corp\nnameserver 10.96.0.10\noptions ndots:5\n";
    let out = in_pod_mounts(resolv, Some("team-a\n"), "get fqdn --hostname etcd-2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "etcd-2.etcd.team-a.svc.k8s.corp\n"
    );

    let out = in_pod_mounts("nameserver 1.1.1.1\n", None, "get fqdn --hostname etcd-2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "etcd-2.etcd.default.svc.cluster.local\n",
        "defaults"
    );
}

// ---------------------------------------------------------------------------------------------
// 3 + 4. Model and rendering

/// A role file whose one template prints every name of the template context.
const CONTEXT_ROLE: &str = r#"
description = "prints the context"
port = 7000
files = ["context.txt"]

[server_id]
offset = 10

[[rules]]
role = "boss"
index = 0

[[rules]]
role = "worker"

[vars]
colour = "blue"
size = 3
"#;

const CONTEXT_TEMPLATE: &str = "\
hostname={{ hostname }} name={{ name }} ordinal={{ ordinal }} index={{ index }}
start_ordinal={{ start_ordinal }} replicas={{ replicas }} server_id={{ server_id }}
role={{ role }} is_leader={{ is_leader }} first_boot={{ first_boot }}
service={{ service }} namespace={{ namespace }} cluster_domain={{ cluster_domain }}
fqdn={{ fqdn }} port={{ port }} address={{ address }}
leader={{ leader.hostname }} {{ leader.address }} {{ leader.server_id }}
vars={{ vars.colour }} {{ vars.size + 1 }} {{ vars.extra }}
env={{ get_env(name=\"ROLECALL_TEST_VALUE\") }} {{ get_env(name=\"ROLECALL_TEST_UNSET\", default=\"dflt\") }}
{% for p in peers -%}
peer {{ p.ordinal }} {{ p.index }} {{ p.server_id }} {{ p.hostname }} {{ p.fqdn }} {{ p.port }} {{ p.address }} {{ p.role }} self={{ p.is_self }} leader={{ p.is_leader }}
{% endfor -%}
";

#[test]
fn every_context_name_reaches_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let role_dir = tmp.path().join("myrole");
    fs::create_dir(&role_dir).unwrap();
    fs::write(role_dir.join("role.toml"), CONTEXT_ROLE).unwrap();
    fs::write(role_dir.join("context.txt"), CONTEXT_TEMPLATE).unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("VERSION"), "3").unwrap();
    let out = tmp.path().join("out");
    rolecall()
        .args([
            "render",
            "--hostname",
            "app-6",
            "--start-ordinal",
            "5",
            "--replicas",
            "2",
            "--namespace",
            "ns1",
        ])
        .args([
            "--cluster-domain",
            "example.internal",
            "--service",
            "app-hs",
            "--set",
            "extra=x y",
            "--set",
            "size=4",
        ])
        .arg("--role")
        .arg(role_dir.join("role.toml"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env("ROLECALL_TEST_VALUE", "from-env")
        .assert()
        .success();
    let expected = "\
hostname=app-6 name=app ordinal=6 index=1
start_ordinal=5 replicas=2 server_id=16
role=worker is_leader=false first_boot=false
service=app-hs namespace=ns1 cluster_domain=example.internal
fqdn=app-6.app-hs.ns1.svc.example.internal port=7000 address=app-6.app-hs.ns1.svc.example.internal:7000
leader=app-5 app-5.app-hs.ns1.svc.example.internal:7000 15
vars=blue 5 x y
env=from-env dflt
peer 5 0 15 app-5 app-5.app-hs.ns1.svc.example.internal 7000 app-5.app-hs.ns1.svc.example.internal:7000 boss self=false leader=true
peer 6 1 16 app-6 app-6.app-hs.ns1.svc.example.internal 7000 app-6.app-hs.ns1.svc.example.internal:7000 worker self=true leader=false
";
    assert_eq!(read(out.join("context.txt")), expected);
}

#[test]
fn first_boot_is_true_while_the_data_dir_is_absent_or_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first_boot = || {
        let out = rolecall()
            .args(["get", "first_boot", "--hostname", "web-0", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(first_boot(), "true\n");
    fs::create_dir(&data).unwrap();
    assert_eq!(first_boot(), "true\n");
    fs::write(data.join("member"), "").unwrap();
    assert_eq!(first_boot(), "false\n");
}

#[test]
fn configmap_keys_override_builtin_templates_and_plain_files_come_out_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    // No template syntax: CRLF, tabs, trailing spaces, shell variables, no final newline.
    let plain = "# user's own primary.cnf\r\n[mysqld]\r\nlog-bin\t= mysql-bin \r\nbind-address=$HOST_IP\r\n#{not a tag}\n100% done";
    let cm = configmap(
        &tmp.path().join("cm"),
        &[
            ("primary.cnf", plain),
            ("unrelated.sh", "echo ${#array[@]}\n"),
        ],
    );
    let out = tmp.path().join("out");
    rolecall()
        .args([
            "render",
            "--role",
            "mysql",
            "--hostname",
            "mysql-0",
            "--replicas",
            "2",
            "--config-dir",
        ])
        .arg(&cm)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(fs::read(out.join("primary.cnf")).unwrap(), plain.as_bytes());
    // Built-in templates the ConfigMap does not override still render.
    assert_eq!(read(out.join("server-id.cnf")), "[mysqld]\nserver-id=100\n");
    // A key that is not a template (bash's `${#` opens a tera comment) is fine while unused.
    assert!(!out.join("unrelated.sh").exists());
}

#[test]
fn configmap_dotdot_entries_and_subdirectories_are_not_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(&tmp.path().join("cm"), &[("leader.conf", "L\n")]);
    fs::create_dir(cm.join("nested")).unwrap();
    fs::write(cm.join("nested/x"), "x").unwrap();
    let out = tmp.path().join("out");
    rolecall()
        .args([
            "render",
            "--hostname",
            "a-0",
            "--replicas",
            "1",
            "--leader-file",
            "leader.conf",
            "--no-id-file",
        ])
        .arg("--config-dir")
        .arg(&cm)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(names_in(&out), ["leader.conf", "peers", "rolecall.env"]);
    rolecall()
        .args([
            "render",
            "--hostname",
            "a-0",
            "--replicas",
            "1",
            "--leader-file",
            "nested/x",
        ])
        .arg("--config-dir")
        .arg(&cm)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("contains `/`"));
}

#[test]
fn configmap_symlink_out_of_the_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("secret"), "s3cret").unwrap();
    let cm = tmp.path().join("cm");
    fs::create_dir(&cm).unwrap();
    symlink(tmp.path().join("secret"), cm.join("leader.conf")).unwrap();
    rolecall()
        .args([
            "render",
            "--hostname",
            "a-0",
            "--replicas",
            "1",
            "--leader-file",
            "leader.conf",
            "--config-dir",
        ])
        .arg(&cm)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .assert()
        .code(4)
        .stderr(contains("outside the config dir"));
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn template_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(
        &tmp.path().join("cm"),
        &[
            ("syntax.cfg", "a=1\nb={{ oops\n"),
            ("undefined.cfg", "a=1\nb=2\nc={{ vars.missing }}\n"),
        ],
    );
    for (file, line, says) in [
        ("syntax.cfg", "syntax.cfg:2:", "rendering"),
        ("undefined.cfg", "undefined.cfg:3:", "not defined"),
    ] {
        rolecall()
            .args([
                "render",
                "--hostname",
                "a-0",
                "--replicas",
                "1",
                "--leader-file",
                file,
                "--config-dir",
            ])
            .arg(&cm)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .assert()
            .code(4)
            .stderr(
                contains(line)
                    .and(contains(format!("{}/{file}", cm.display())))
                    .and(contains(says).or(contains("error"))),
            );
    }
}

#[test]
fn a_missing_template_is_reported_with_where_it_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(&tmp.path().join("cm"), &[("slave.cnf", SLAVE_CNF)]);
    // mysql-1 renders only slave.cnf, but the set's leader file is missing: report it anyway.
    rolecall()
        .args([
            "render",
            "--hostname",
            "mysql-1",
            "--replicas",
            "2",
            "--leader-file",
            "master.cnf",
            "--follower-file",
            "slave.cnf",
        ])
        .arg("--config-dir")
        .arg(&cm)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .assert()
        .code(4)
        .stderr(
            contains("template `master.cnf` not found in config dir")
                .and(contains("add a key `master.cnf`")),
        );
}

#[test]
fn role_file_errors_are_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let role = tmp.path().join("role.toml");
    fs::write(
        &role,
        "description = 'x'\nport = 1\npurgeInteval = 3\n[[rules]]\nrole = 'a'\n",
    )
    .unwrap();
    rolecall()
        .args(["get", "role", "--hostname", "a-0", "--role"])
        .arg(&role)
        .assert()
        .code(4)
        .stderr(contains("purgeInteval"));
    rolecall()
        .args(["get", "role", "--hostname", "a-0", "--role", "no-such-role"])
        .assert()
        .code(4)
        .stderr(contains("built-in: "));
    // A server id outside the role's range.
    rolecall()
        .args([
            "get",
            "server_id",
            "--hostname",
            "zk-255",
            "--role",
            "zookeeper",
        ])
        .assert()
        .code(4)
        .stderr(contains("outside the range 1..=255"));
}

#[test]
fn set_values_are_typed_by_the_roles_defaults() {
    rolecall()
        .args([
            "get",
            "vars.tick_time",
            "--hostname",
            "zk-0",
            "--role",
            "zookeeper",
            "--set",
            "tick_time=3000",
        ])
        .assert()
        .success()
        .stdout("3000\n");
    rolecall()
        .args([
            "get",
            "role",
            "--hostname",
            "zk-0",
            "--role",
            "zookeeper",
            "--set",
            "tick_time=fast",
        ])
        .assert()
        .code(2)
        .stderr(contains("`tick_time` is an integer"));
    rolecall()
        .args([
            "get",
            "role",
            "--hostname",
            "zk-0",
            "--role",
            "zookeeper",
            "--set",
            "tick_tim=3",
        ])
        .assert()
        .success()
        .stderr(contains(
            "warning: --set tick_tim: role zookeeper declares no var `tick_tim`",
        ));
    rolecall()
        .args(["get", "role", "--hostname", "zk-0", "--set", "bad-key=1"])
        .assert()
        .code(2);
    rolecall()
        .args(["get", "role", "--hostname", "zk-0", "--set", "novalue"])
        .assert()
        .code(2);
}

/// Every command enters through the same inputs: an undeclared `--set` var is warned about
/// before any command fails for want of the set's size, and by each command alike.
#[test]
fn every_command_warns_about_an_unknown_var_before_it_fails() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().display().to_string();
    let warning = "rolecall: warning: --set tick_tme: role zookeeper declares no var `tick_tme`";
    for (command, code) in [
        (vec!["render", "--out", &out], 3),
        (vec!["env"], 3),
        (vec!["env", "--format", "json"], 3),
        (vec!["plan"], 3),
        (vec!["check"], 3),
        (vec!["wait", "--for", "leader", "--timeout", "0"], 3),
        (vec!["get", "role"], 0),
    ] {
        let output = rolecall()
            .args(&command)
            .args(["--role", "zookeeper", "--hostname", "zk-0"])
            .args(["--set", "tick_tme=1"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "{command:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        let mut lines = stderr.lines();
        assert!(
            lines.next().is_some_and(|l| l.starts_with(warning)),
            "{command:?}: {stderr}"
        );
        if code != 0 {
            let error = lines.next().unwrap_or_default();
            assert!(
                error.contains("needs the size of the set; pass --replicas N"),
                "{command:?}: {stderr}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Writing

fn render_zk(out: &Path, host: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    rolecall()
        .args([
            "render",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--hostname",
            host,
            "--out",
        ])
        .arg(out)
        .args(extra)
        .assert()
}

#[test]
fn out_is_created_and_holds_files_peers_and_env() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("deep/er/out");
    render_zk(&out, "zk-1", &[]).success();
    assert_eq!(names_in(&out), ["myid", "peers", "rolecall.env", "zoo.cfg"]);
    assert_eq!(read(out.join("myid")), "2\n");
    assert_eq!(
        read(out.join("peers")),
        "zk-0.zk.default.svc.cluster.local:2181\nzk-1.zk.default.svc.cluster.local:2181\nzk-2.zk.default.svc.cluster.local:2181\n"
    );
    let env = rolecall()
        .args([
            "env",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--hostname",
            "zk-1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        read(out.join("rolecall.env")),
        String::from_utf8(env.stdout).unwrap(),
        "rolecall.env == `rolecall env`"
    );
}

#[test]
fn rerun_leaves_files_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    render_zk(&out, "zk-1", &[]).success();
    let before: Vec<_> = names_in(&out)
        .iter()
        .map(|n| fs::metadata(out.join(n)).unwrap())
        .map(|m| (m.ino(), m.mtime_nsec()))
        .collect();
    render_zk(&out, "zk-1", &[]).success().stderr(contains(
        "all unchanged (zoo.cfg, myid, peers, rolecall.env)",
    ));
    let after: Vec<_> = names_in(&out)
        .iter()
        .map(|n| fs::metadata(out.join(n)).unwrap())
        .map(|m| (m.ino(), m.mtime_nsec()))
        .collect();
    assert_eq!(before, after);
    // A change rewrites just what changed.
    render_zk(&out, "zk-1", &["--set", "tick_time=4000"])
        .success()
        .stderr(contains(
            "wrote zoo.cfg, rolecall.env; unchanged myid, peers",
        ));
    assert_eq!(
        names_in(&out),
        ["myid", "peers", "rolecall.env", "zoo.cfg"],
        "no temporary files left"
    );
}

#[test]
fn a_failed_render_leaves_existing_files_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    render_zk(&out, "zk-1", &[]).success();
    let before = read(out.join("zoo.cfg"));
    let cm = configmap(
        &tmp.path().join("cm"),
        &[("zoo.cfg", "tickTime={{ nope }}\n")],
    );
    render_zk(
        &out,
        "zk-1",
        &["--config-dir", cm.to_str().unwrap(), "--set", "tick_time=9"],
    )
    .code(4);
    assert_eq!(read(out.join("zoo.cfg")), before);
    assert!(
        read(out.join("rolecall.env")).contains("TICK_TIME=2000"),
        "rolecall.env must not change either"
    );
}

#[test]
fn output_errors_are_exit_5_and_damage_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "keep").unwrap();
    render_zk(&file, "zk-1", &[])
        .code(5)
        .stderr(contains("not-a-dir"));
    assert_eq!(read(&file), "keep");
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join("zoo.cfg")).unwrap();
    render_zk(&out, "zk-1", &[])
        .code(5)
        .stderr(contains("is a directory"));
    assert_eq!(
        names_in(&out),
        ["zoo.cfg"],
        "nothing was written beside the obstacle"
    );
}

#[test]
fn planted_symlinks_in_out_are_replaced_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let victim_dir = tmp.path().join("victim-dir");
    fs::create_dir(&victim_dir).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    symlink(&victim, out.join("zoo.cfg")).unwrap();
    symlink(&victim_dir, out.join("myid")).unwrap();
    render_zk(&out, "zk-1", &[]).success();
    assert_eq!(read(&victim), "precious");
    assert_eq!(names_in(&victim_dir), Vec::<String>::new());
    assert!(fs::symlink_metadata(out.join("zoo.cfg")).unwrap().is_file());
    assert_eq!(read(out.join("myid")), "2\n");
}

#[test]
fn mode_and_owner_apply_to_every_written_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    render_zk(&out, "zk-1", &["--mode", "0640"]).success();
    for name in names_in(&out) {
        assert_eq!(
            fs::metadata(out.join(&name)).unwrap().permissions().mode() & 0o7777,
            0o640,
            "{name}"
        );
    }
    render_zk(&out, "zk-1", &["--mode", "999"]).code(2);
    render_zk(&out, "zk-1", &["--owner", "zk"]).code(2);
    if !require_root("mode_and_owner_apply_to_every_written_file (owner part)") {
        return;
    }
    render_zk(&out, "zk-1", &["--mode", "0640", "--owner", "65532:65533"]).success();
    for name in names_in(&out) {
        let meta = fs::metadata(out.join(&name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65532, 65533), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Reporting

#[test]
fn summary_goes_to_stderr_and_quiet_silences_it() {
    let tmp = tempfile::tempdir().unwrap();
    render_zk(&tmp.path().join("out"), "zk-2", &[])
        .success()
        .stdout("")
        .stderr("rolecall: zk-2 -> ordinal 2, server-id 3, role participant; wrote zoo.cfg, myid, peers, rolecall.env\n");
    render_zk(&tmp.path().join("out2"), "zk-2", &["--quiet"])
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn dry_run_shows_diffs_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    render_zk(&out, "zk-1", &["--dry-run"])
        .success()
        .stdout(contains("create: ").and(contains(
            "+server.3=zk-2.zk.default.svc.cluster.local:2888:3888",
        )))
        .stderr(contains("would write zoo.cfg"));
    assert!(!out.exists(), "dry-run created the output directory");
    render_zk(&out, "zk-1", &[]).success();
    let before = read(out.join("zoo.cfg"));
    render_zk(&out, "zk-1", &["--dry-run", "--set", "tick_time=4000"])
        .success()
        .stdout(contains("-tickTime=2000\n+tickTime=4000\n").and(contains("unchanged: ")));
    assert_eq!(read(out.join("zoo.cfg")), before);
}

// ---------------------------------------------------------------------------------------------
// Subcommands

#[test]
fn env_output_survives_eval_with_hostile_values() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("pwned");
    let hostile = [
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        format!("'; touch {}; '", marker.display()),
        "double \" quote \\ backslash".to_string(),
        "line one\nline two\n".to_string(),
        "${HOME} $$ * ?".to_string(),
        String::new(),
    ];
    let mut cmd = rolecall();
    cmd.args(["env", "--hostname", "web-0", "--replicas", "1"]);
    for (i, value) in hostile.iter().enumerate() {
        cmd.arg("--set").arg(format!("v{i}={value}"));
    }
    let env = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    for (i, value) in hostile.iter().enumerate() {
        let out = StdCommand::new("sh")
            .args([
                "-c",
                &format!(r#"eval "$1" && printf '%s' "$ROLECALL_VAR_V{i}""#),
                "sh",
                &env,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            *value,
            "value {i} did not round-trip"
        );
    }
    // The same through a sourced rolecall.env, as a main container would.
    let envfile = tmp.path().join("rolecall.env");
    fs::write(&envfile, &env).unwrap();
    let out = StdCommand::new("sh")
        .args(["-c", ". \"$1\" && printf '%s' \"$ROLECALL_FQDN\"", "sh"])
        .arg(&envfile)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "web-0.web.default.svc.cluster.local"
    );
    assert!(!marker.exists(), "a value was executed");
}

#[test]
fn env_lists_the_documented_variables() {
    let out = rolecall()
        .args([
            "env",
            "--hostname",
            "web-1",
            "--replicas",
            "2",
            "--id-offset",
            "7",
            "--port",
            "80",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = "\
export ROLECALL_HOSTNAME=web-1
export ROLECALL_NAME=web
export ROLECALL_ORDINAL=1
export ROLECALL_INDEX=1
export ROLECALL_START_ORDINAL=0
export ROLECALL_REPLICAS=2
export ROLECALL_SERVER_ID=8
export ROLECALL_ROLE=follower
export ROLECALL_IS_LEADER=false
export ROLECALL_SERVICE=web
export ROLECALL_NAMESPACE=default
export ROLECALL_CLUSTER_DOMAIN=cluster.local
export ROLECALL_FQDN=web-1.web.default.svc.cluster.local
export ROLECALL_PORT=80
export ROLECALL_ADDRESS=web-1.web.default.svc.cluster.local:80
export ROLECALL_PEERS='web-0.web.default.svc.cluster.local:80,web-1.web.default.svc.cluster.local:80'
export ROLECALL_LEADER=web-0.web.default.svc.cluster.local
export ROLECALL_LEADER_ADDRESS=web-0.web.default.svc.cluster.local:80
export ROLECALL_FIRST_BOOT=true
";
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn env_json_is_the_template_context() {
    let out = rolecall()
        .args([
            "env",
            "--format",
            "json",
            "--hostname",
            "zk-0",
            "--replicas",
            "3",
            "--role",
            "zookeeper",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["server_id"], 1);
    assert_eq!(json["is_leader"], true);
    assert_eq!(json["peers"].as_array().unwrap().len(), 3);
    assert_eq!(
        json["peers"][2]["address"],
        "zk-2.zk.default.svc.cluster.local:2181"
    );
    assert_eq!(json["vars"]["tick_time"], 2000);
    assert_eq!(json["leader"]["hostname"], "zk-0");
}

#[test]
fn get_prints_one_field_for_shell_tests() {
    let get = |field: &str, host: &str| {
        let out = rolecall()
            .args([
                "get",
                field,
                "--hostname",
                host,
                "--replicas",
                "3",
                "--role",
                "mysql",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{field}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(get("role", "mysql-0"), "primary\n");
    assert_eq!(get("role", "mysql-1"), "replica\n");
    assert_eq!(get("is_leader", "mysql-1"), "false\n");
    assert_eq!(
        get("leader", "mysql-2"),
        "mysql-0.mysql.default.svc.cluster.local\n"
    );
    assert_eq!(get("server_id", "mysql-2"), "102\n");
    assert_eq!(
        get("address", "mysql-2"),
        "mysql-2.mysql.default.svc.cluster.local:3306\n"
    );
    rolecall()
        .args(["get", "colour", "--hostname", "mysql-0"])
        .assert()
        .code(2)
        .stderr(contains("no field `colour`"));
}

#[test]
fn plan_shows_every_pod_as_table_and_json() {
    rolecall()
        .args([
            "plan",
            "--name",
            "zk",
            "--replicas",
            "3",
            "--start-ordinal",
            "5",
            "--role",
            "zookeeper",
        ])
        .assert()
        .success()
        .stdout(
            "\
POD   ORDINAL  ID  ROLE          FQDN                               FILES
zk-5  5        6   participant*  zk-5.zk.default.svc.cluster.local  zoo.cfg,myid
zk-6  6        7   participant   zk-6.zk.default.svc.cluster.local  zoo.cfg,myid
zk-7  7        8   participant   zk-7.zk.default.svc.cluster.local  zoo.cfg,myid
(* = leader)
",
        );
    let out = rolecall()
        .args([
            "plan",
            "--hostname",
            "db-0",
            "--replicas",
            "2",
            "--role",
            "mysql",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["leader"], "db-0");
    assert_eq!(
        json["pods"][1]["files"],
        serde_json::json!(["server-id.cnf", "replica.cnf", "replication.env"])
    );
    assert_eq!(json["pods"][1]["server_id"], 101);
    rolecall()
        .args([
            "plan",
            "--name",
            "zk",
            "--replicas",
            "4",
            "--role",
            "zookeeper",
        ])
        .assert()
        .success()
        .stderr(contains("4 members tolerate no more failures than 3 would"));
}

#[test]
fn check_renders_every_pod_and_reports_every_error() {
    rolecall()
        .args([
            "check",
            "--name",
            "zk",
            "--replicas",
            "5",
            "--role",
            "zookeeper",
        ])
        .assert()
        .success()
        .stdout(contains("check ok: role zookeeper, 5 pods (zk-0 .. zk-4)"));
    let tmp = tempfile::tempdir().unwrap();
    let cm = configmap(
        &tmp.path().join("cm"),
        &[(
            "zoo.cfg",
            "{% if role == \"observer\" %}\npeerType={{ vars.nope }}\n{% endif %}\n",
        )],
    );
    rolecall()
        .args([
            "check",
            "--name",
            "zk",
            "--replicas",
            "5",
            "--role",
            "zookeeper",
            "--set",
            "observers_from=3",
        ])
        .arg("--config-dir")
        .arg(&cm)
        .assert()
        .code(4)
        .stderr(
            contains("check failed for 2 of 5 pods")
                .and(contains("zk-3: "))
                .and(contains("zk-4: "))
                .and(contains("zoo.cfg:2:")),
        );
}

#[test]
fn roles_are_listed_and_shown() {
    rolecall().arg("roles").assert().success().stdout(
        contains("mysql ")
            .and(contains("zookeeper "))
            .and(contains("raft ")),
    );
    rolecall()
        .args(["roles", "show", "zookeeper"])
        .assert()
        .success()
        .stdout(
            contains("# ==> roles/zookeeper/role.toml <==")
                .and(contains("# ==> roles/zookeeper/zoo.cfg <==")),
        );
    rolecall().args(["roles", "show", "nope"]).assert().code(4);
}

#[test]
fn exec_renders_then_becomes_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    rolecall()
        .args([
            "exec",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--hostname",
            "zk-2",
            "-q",
            "--out",
        ])
        .arg(&out)
        .args(["--", "cat"])
        .arg(out.join("myid"))
        .assert()
        .success()
        .stdout("3\n");
    rolecall()
        .args([
            "exec",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--hostname",
            "zk-2",
            "-q",
            "--out",
        ])
        .arg(&out)
        .args(["--", "/no/such/server"])
        .assert()
        .code(2)
        .stderr(contains("cannot execute `/no/such/server`"));
    rolecall()
        .args([
            "exec",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--hostname",
            "zk-2",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(2);
}

#[test]
fn usage_errors_are_exit_2() {
    rolecall().args(["render", "--bogus"]).assert().code(2);
    rolecall().arg("frobnicate").assert().code(2);
    rolecall()
        .args([
            "get",
            "role",
            "--hostname",
            "a-0",
            "--role",
            "mysql",
            "--leader-file",
            "x",
        ])
        .assert()
        .code(2);
    rolecall()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("rolecall "));
}

/// `--version` tells an issue report which binary ran: the version, the revision it was built
/// from and the target triple.
#[test]
fn version_names_the_revision_and_the_target() {
    let output = rolecall().arg("--version").output().unwrap();
    assert!(output.status.success());
    let line = String::from_utf8(output.stdout).unwrap();
    let (revision, triple) =
        common::version_parts(&line).unwrap_or_else(|| panic!("not a version line: {line:?}"));
    // These tests are built for the binary's target, so they know its architecture and OS.
    let (arch, os) = (std::env::consts::ARCH, std::env::consts::OS);
    assert!(
        triple.starts_with(&format!("{arch}-")) && triple.contains(&format!("-{os}")),
        "{triple} is not a {arch} {os} target"
    );
    // Told none by ROLECALL_REVISION, the build asks git for HEAD, in this checkout only.
    if std::env::var_os("ROLECALL_REVISION").is_some() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = StdCommand::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel", "HEAD"])
        .output();
    let head = git.ok().filter(|o| o.status.success()).and_then(|o| {
        let stdout = String::from_utf8(o.stdout).unwrap();
        let (toplevel, head) = stdout.trim().split_once('\n')?;
        let ours = Path::new(toplevel).canonicalize().ok()? == dir.canonicalize().unwrap();
        ours.then(|| head.to_string())
    });
    match (head, revision) {
        (Some(head), Some(revision)) => assert!(
            revision.len() >= 7 && head.starts_with(revision),
            "revision {revision} is not HEAD {head}"
        ),
        (head, revision) => assert_eq!(head.is_some(), revision.is_some(), "{line}"),
    }
}

#[test]
fn start_ordinal_and_replicas_must_stay_within_kubernetes_ordinals() {
    rolecall()
        .args([
            "plan",
            "--name",
            "web",
            "--start-ordinal",
            "2147483647",
            "--replicas",
            "2",
        ])
        .assert()
        .code(2)
        .stderr(contains("beyond the largest Kubernetes ordinal"));
    rolecall()
        .args([
            "get",
            "ordinal",
            "--hostname",
            "web-2147483647",
            "--start-ordinal",
            "2147483647",
            "--replicas",
            "1",
        ])
        .assert()
        .success()
        .stdout("2147483647\n");
    rolecall()
        .args([
            "get",
            "ordinal",
            "--hostname",
            "web-1",
            "--start-ordinal",
            "2147483648",
        ])
        .assert()
        .code(2);
}

#[test]
fn check_and_plan_off_a_pod_name_the_set_for_a_builtin_role() {
    if !require_root("check_and_plan_off_a_pod_name_the_set_for_a_builtin_role") {
        return;
    }
    // A workstation's hostname has no ordinal: a built-in role's set is named for the role.
    let run = |args: &str| {
        common::without_pod_env(&mut StdCommand::new("unshare"))
            .args([
                "--uts",
                "sh",
                "-c",
                &format!(r#"hostname laptop && exec "$0" {args}"#),
            ])
            .arg(assert_cmd::cargo::cargo_bin!("rolecall"))
            .output()
            .unwrap()
    };
    let out = run("check --role etcd --replicas 3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rolecall: check ok: role etcd, 3 pods (etcd-0 .. etcd-2), every file rendered\n"
    );
    let out = run("plan --role zookeeper --replicas 2");
    assert!(String::from_utf8_lossy(&out.stdout).contains("zookeeper-1  1        2"));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("2 members tolerate no more failures than 1 would")
    );
    // Without a built-in role there is no name to fall back on.
    let out = run("plan --replicas 2");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hostname `laptop` has no ordinal suffix")
    );
}

// ---------------------------------------------------------------------------------------------
// Day 2 commands: install and leave (the membership calls themselves run against real etcd in
// tests/clusters.rs)

#[test]
fn install_copies_the_binary_once_and_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tools");
    rolecall()
        .args(["install"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(contains("installed:"));
    let copy = dir.join("rolecall");
    let mode = fs::metadata(&copy).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert_eq!(fs::read(&copy).unwrap(), fs::read(common::BIN).unwrap());
    let inode = fs::metadata(&copy).unwrap().ino();
    rolecall()
        .args(["install"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(contains("already there"));
    assert_eq!(fs::metadata(&copy).unwrap().ino(), inode, "rewritten");
    std::process::Command::new(&copy)
        .arg("--version")
        .status()
        .map(|s| assert!(s.success()))
        .unwrap();
}

#[test]
fn leave_stays_while_the_set_includes_the_pod_and_needs_a_membership_role() {
    rolecall()
        .args([
            "leave",
            "--role",
            "etcd",
            "--hostname",
            "etcd-1",
            "--replicas",
            "3",
        ])
        .assert()
        .success()
        .stderr(contains(
            "the set of 3 still includes etcd-1: staying a member",
        ));
    rolecall()
        .args([
            "leave",
            "--role",
            "mysql",
            "--hostname",
            "mysql-1",
            "--replicas",
            "3",
        ])
        .assert()
        .code(2)
        .stderr(contains("role mysql has no membership actions"));
    rolecall()
        .args(["leave", "--role", "etcd", "--hostname", "etcd-1"])
        .assert()
        .code(3)
        .stderr(contains("leave needs the size of the set"));
}

/// A pod beyond the set with no member to answer: it gives up within --timeout, says the member
/// stays listed, exit 7. A pod beyond the bootstrap size with an empty data dir never starts a
/// cluster of its own: exit 7 too, nothing written.
#[test]
fn membership_calls_that_reach_no_member_end_with_exit_7() {
    let tmp = tempfile::tempdir().unwrap();
    // Names that resolve nowhere: each call fails at once.
    let names = ["--namespace", "nowhere", "--cluster-domain", "invalid"];
    rolecall()
        .args([
            "leave",
            "--role",
            "etcd",
            "--hostname",
            "etcd-3",
            "--replicas",
            "3",
        ])
        .args(names)
        .args(["--timeout", "1s"])
        .assert()
        .code(7)
        .stderr(contains("no member of the etcd cluster answered"))
        .stderr(contains("etcd-3 stays listed"));
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    rolecall()
        .args([
            "render",
            "--role",
            "etcd",
            "--hostname",
            "etcd-3",
            "--replicas",
            "5",
        ])
        .args(names)
        .args(["--set", "bootstrap_size=3", "--timeout", "1s", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(7)
        .stderr(contains(
            "beyond the bootstrap size 3 and never starts a cluster of its own",
        ));
    assert!(!out.exists(), "nothing is written when the join fails");
    // Within the bootstrap size: a static bootstrap of the first pods.
    rolecall()
        .args([
            "render",
            "--role",
            "etcd",
            "--hostname",
            "etcd-1",
            "--replicas",
            "5",
        ])
        .args(names)
        .args(["--set", "bootstrap_size=3", "--timeout", "1s", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(contains("bootstrapping a new cluster of 3 as etcd-1"));
    let config = fs::read_to_string(out.join("etcd.conf.yml")).unwrap();
    assert!(config.contains("initial-cluster-state: new"), "{config}");
    assert!(
        config.contains("etcd-2=http://etcd-2.etcd.nowhere.svc.invalid:2380\"")
            && !config.contains("etcd-3="),
        "{config}"
    );
}

/// ZooKeeper's membership keeps its dynamic config files beside zoo.cfg, in the data volume,
/// and needs the super user's password: without either, a render is a usage error (exit 2)
/// that writes nothing and calls no server.
#[test]
fn zookeeper_membership_needs_out_in_the_data_dir_and_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    fs::create_dir(&data).unwrap();
    let password = tmp.path().join("password");
    fs::write(&password, "secret\n").unwrap();
    let render = |out: &Path, sets: &[String]| {
        let mut cmd = rolecall();
        cmd.args([
            "render",
            "--role",
            "zookeeper",
            "--hostname",
            "zk-0",
            "--replicas",
            "3",
        ])
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(&data);
        for set in sets {
            cmd.args(["--set", set]);
        }
        cmd.assert()
    };
    let with_password = [format!("super_password_file={}", password.display())];
    render(&out, &with_password)
        .code(2)
        .stderr(contains("give --out the same directory as --data-dir"));
    assert!(!out.exists(), "nothing is written");
    render(&data, &[])
        .code(2)
        .stderr(contains("needs --set super_password_file=FILE"));
    let missing = [format!(
        "super_password_file={}",
        tmp.path().join("none").display()
    )];
    render(&data, &missing)
        .code(2)
        .stderr(contains("cannot read the super user's password"));
    let empty = tmp.path().join("empty");
    fs::write(&empty, "\n").unwrap();
    render(&data, &[format!("super_password_file={}", empty.display())])
        .code(2)
        .stderr(contains("the super user needs a password"));
    assert_eq!(names_in(&data), Vec::<String>::new(), "nothing is written");
    // Without --data-dir the role renders its static server list, as before.
    rolecall()
        .args([
            "render",
            "--role",
            "zookeeper",
            "--hostname",
            "zk-0",
            "--replicas",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let zoo = read(out.join("zoo.cfg"));
    assert!(
        zoo.contains("server.3=zk-2.zk.default.svc.cluster.local:2888:3888"),
        "{zoo}"
    );
    assert!(!zoo.contains("reconfigEnabled"), "{zoo}");
}

/// `rolecall leave` for ZooKeeper decides from the set's size before it calls any server: a
/// pod the set still includes (a restart, a rolling update) stays in the ensemble.
#[test]
fn zookeeper_leave_stays_while_the_set_includes_the_pod() {
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    fs::write(&password, "secret").unwrap();
    let set = format!("super_password_file={}", password.display());
    rolecall()
        .args([
            "leave",
            "--role",
            "zookeeper",
            "--hostname",
            "zk-2",
            "--replicas",
            "3",
        ])
        .args(["--set", &set])
        .assert()
        .success()
        .stderr(contains(
            "the set of 3 still includes zk-2: staying in the ensemble",
        ));
}

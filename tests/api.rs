//! `--from-api` against a local HTTPS server that answers as the Kubernetes API server does: a CA
//! and an IP-SAN server certificate made here, a service-account directory (token, ca.crt,
//! namespace) pointed at by ROLECALL_SERVICE_ACCOUNT_DIR, and objects laid out as the API serves
//! them (an apps/v1 StatefulSet and a v1 Node with the fields rolecall ignores, and Status
//! objects for errors). Every answer the issue lists: 200, 401, 403, 404, 500 then 200, 429 with
//! Retry-After, a wrong CA, a certificate for another name, a server that never answers, broken
//! JSON, and a token that changes between two requests; and a render from the API byte for byte
//! the render from flags.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::KeyPair;

mod common;

use common::apiserver::{self, Pki, Reply, Seen, Versions, node, ok, pki_with, status};
use common::rolecall_std;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.first-token.c2lnbmF0dXJl";
const ROTATED: &str = "eyJhbGciOiJSUzI1NiJ9.rotated-token.c2lnbmF0dXJl";

// ---------------------------------------------------------------------------------------------
// Certificates and the service-account directory

fn pki(names: &[&str]) -> Pki {
    pki_of("kubernetes", names)
}

/// A CA named `ca_name`, and a server certificate it signed for `names`.
fn pki_of(ca_name: &str, names: &[&str]) -> Pki {
    pki_with(ca_name, names, KeyPair::generate().unwrap())
}

/// A service account as Kubernetes mounts it: token, ca.crt and namespace.
fn service_account(dir: &Path, ca_pem: &str) -> PathBuf {
    let sa = dir.join("serviceaccount");
    fs::create_dir_all(&sa).unwrap();
    fs::write(sa.join("token"), TOKEN).unwrap();
    fs::write(sa.join("ca.crt"), ca_pem).unwrap();
    fs::write(sa.join("namespace"), "db").unwrap();
    sa
}

// ---------------------------------------------------------------------------------------------
// The server

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS connections accepted, handshakes that failed included.
    connections: Arc<Mutex<usize>>,
}

impl Server {
    /// Answers each request with the next reply (then 500s), after `before(n)` for the n-th.
    fn start(
        pki: &Pki,
        bind: &str,
        replies: Vec<Reply>,
        before: impl Fn(usize) + Send + 'static,
    ) -> Server {
        Server::start_with(pki, bind, replies, before, Versions::Default)
    }

    fn start_with(
        pki: &Pki,
        bind: &str,
        replies: Vec<Reply>,
        before: impl Fn(usize) + Send + 'static,
        versions: Versions,
    ) -> Server {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (seen_, connections_) = (seen.clone(), connections.clone());
        let mut replies = replies.into_iter();
        let addr = apiserver::serve(
            pki,
            bind,
            versions,
            move || *connections_.lock().unwrap() += 1,
            move |request| {
                let n = {
                    let mut seen = seen_.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                before(n);
                replies
                    .next()
                    .unwrap_or_else(|| status(500, "InternalError", "no more replies"))
            },
        );
        Server {
            addr,
            seen,
            connections,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

/// A server at 127.0.0.1, certified for that address, answering `replies`; and a pod that
/// trusts it.
fn serving(replies: Vec<Reply>) -> (Server, Pod) {
    let pki = pki(&["127.0.0.1"]);
    let server = Server::start(&pki, "127.0.0.1:0", replies, |_| {});
    (server, Pod::new(&pki))
}

fn statefulset(name: &str, replicas: u32, start: Option<u32>, service: &str) -> String {
    apiserver::statefulset_in("db", name, replicas, start, service)
}

// ---------------------------------------------------------------------------------------------
// Running rolecall against it

/// A scratch directory with a service account for `pki`'s CA.
struct Pod {
    tmp: tempfile::TempDir,
    sa: PathBuf,
}

impl Pod {
    fn new(pki: &Pki) -> Pod {
        let tmp = tempfile::tempdir().unwrap();
        let sa = service_account(tmp.path(), &pki.ca_pem);
        Pod { tmp, sa }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// rolecall with this pod's service account and the API server at `addr`.
    fn command(&self, addr: SocketAddr, args: &[&str]) -> Command {
        let mut cmd = rolecall_std();
        cmd.env("ROLECALL_SERVICE_ACCOUNT_DIR", &self.sa)
            .env("KUBERNETES_SERVICE_HOST", addr.ip().to_string())
            .env("KUBERNETES_SERVICE_PORT", addr.port().to_string())
            .args(args);
        cmd
    }

    fn run(&self, addr: SocketAddr, args: &[&str]) -> Output {
        self.command(addr, args).output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file of a directory, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn assert_code(out: &Output, code: i32, says: &[&str]) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    for part in says {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }
    assert!(
        !text.contains(TOKEN) && !text.contains(ROTATED),
        "the token was printed: {text}"
    );
}

const STS_PATH: &str = "/apis/apps/v1/namespaces/db/statefulsets/zk";

/// The set's size, asked from the API by pod zk-0.
const GET_REPLICAS: [&str; 5] = ["get", "replicas", "--hostname", "zk-0", "--from-api"];

// ---------------------------------------------------------------------------------------------
// 200: the render from the API is the render from flags

#[test]
fn a_render_from_the_api_is_the_render_from_the_same_flags() {
    let (server, pod) = serving(vec![ok(statefulset("zk", 5, Some(3), "zk-hs"))]);
    let from_api = pod.path("api");
    let out = pod.run(
        server.addr,
        &[
            "render",
            "--role",
            "zookeeper",
            "--hostname",
            "zk-4",
            "--from-api",
            "--out",
        ]
        .into_iter()
        .chain([from_api.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert_code(&out, 0, &["rolecall: zk-4 -> ordinal 4, server-id 5"]);
    let flags = pod.path("flags");
    let out = pod.run(
        server.addr,
        &[
            "render",
            "--role",
            "zookeeper",
            "--hostname",
            "zk-4",
            "--replicas",
            "5",
            "--start-ordinal",
            "3",
            "--service",
            "zk-hs",
            "--namespace",
            "db",
            "--out",
            flags.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0, &[]);
    let (api, flags) = (files(&from_api), files(&flags));
    assert_eq!(
        api.keys().collect::<Vec<_>>(),
        ["myid", "peers", "rolecall.env", "zoo.cfg"]
    );
    assert_eq!(api, flags, "the two renders differ");
    let zoo = String::from_utf8(api["zoo.cfg"].clone()).unwrap();
    assert!(
        zoo.contains("server.8=zk-7.zk-hs.db.svc.cluster.local:2888:3888"),
        "{zoo}"
    );
    // One GET of the StatefulSet, as Kubernetes' clients make it.
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, STS_PATH);
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen[0].headers["accept"], "application/json");
    assert!(seen[0].headers["user-agent"].starts_with("rolecall/"));
}

#[test]
fn the_node_gives_zone_and_region_as_a_labels_file_does() {
    let (server, pod) = serving(vec![
        ok(statefulset("kafka", 3, None, "kafka")),
        ok(node("gke-pool-1-abc", "europe-west1-b", "europe-west1")),
    ]);
    let api = pod.path("api");
    let out = pod.run(
        server.addr,
        &[
            "render",
            "--role",
            "kafka",
            "--hostname",
            "kafka-1",
            "--from-api",
            "--node-name",
            "gke-pool-1-abc",
            "--out",
            api.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0, &[]);
    assert_eq!(
        server.paths(),
        [
            "/apis/apps/v1/namespaces/db/statefulsets/kafka",
            "/api/v1/nodes/gke-pool-1-abc"
        ]
    );
    let labels = pod.path("labels");
    fs::write(
        &labels,
        "app.kubernetes.io/name=\"kafka\"\napps.kubernetes.io/pod-index=\"1\"\n\
         topology.kubernetes.io/region=\"europe-west1\"\ntopology.kubernetes.io/zone=\"europe-west1-b\"",
    )
    .unwrap();
    let flags = pod.path("flags");
    let out = pod.run(
        server.addr,
        &[
            "render",
            "--role",
            "kafka",
            "--hostname",
            "kafka-1",
            "--replicas",
            "3",
            "--namespace",
            "db",
            "--labels-file",
            labels.to_str().unwrap(),
            "--out",
            flags.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0, &[]);
    let (api, flags) = (files(&api), files(&flags));
    assert_eq!(api, flags, "the two renders differ");
    let properties = String::from_utf8(api["server.properties"].clone()).unwrap();
    assert!(
        properties.contains("\nbroker.rack=europe-west1-b\n"),
        "{properties}"
    );
    let env = String::from_utf8(api["rolecall.env"].clone()).unwrap();
    assert!(
        env.contains("export ROLECALL_TOPOLOGY_ZONE=europe-west1-b\n"),
        "{env}"
    );
    assert!(
        env.contains("export ROLECALL_TOPOLOGY_REGION=europe-west1\n"),
        "{env}"
    );
}

/// Every command that needs the set reads it the same way, and says once where a flag
/// disagrees; the flag wins.
#[test]
fn every_command_reads_the_set_alike_and_a_flag_still_wins() {
    let replies = vec![ok(statefulset("zk", 5, Some(3), "zk")); 12];
    let (server, pod) = serving(replies);
    let base = ["--role", "zookeeper", "--hostname", "zk-4", "--from-api"];
    for (command, expect) in [
        (vec!["get", "replicas"], "5\n"),
        (vec!["get", "start_ordinal"], "3\n"),
        (vec!["get", "index"], "1\n"),
        (vec!["env"], "export ROLECALL_REPLICAS=5\n"),
        (vec!["plan"], "zk-7"),
        (vec!["check"], "5 pods (zk-3 .. zk-7)"),
    ] {
        let mut args = command.clone();
        args.extend(base);
        let out = pod.run(server.addr, &args);
        assert_code(&out, 0, &[]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains(expect), "{command:?}: {stdout}");
    }
    let mut args = vec!["get", "replicas", "--replicas", "3"];
    args.extend(base);
    let out = pod.run(server.addr, &args);
    let warning = "rolecall: warning: --replicas (ROLECALL_REPLICAS) is 3 but StatefulSet `zk` \
                   has spec.replicas 5; using 3, as given\n";
    assert_code(&out, 0, &[warning]);
    assert_eq!(stderr(&out), warning, "one warning, once");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "3\n");
    let mut args = vec![
        "wait",
        "--for",
        "127.0.0.1:1",
        "--timeout",
        "0",
        "--replicas",
        "3",
    ];
    args.extend(base);
    let out = pod.run(server.addr, &args);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    assert_eq!(server.seen().len(), 8, "one GET per command");
}

// ---------------------------------------------------------------------------------------------
// Answers that are not 200

#[test]
fn a_refused_token_is_an_error_that_never_shows_the_token() {
    let (server, pod) = serving(vec![status(401, "Unauthorized", "Unauthorized")]);
    let out = pod.run(server.addr, &GET_REPLICAS);
    let token = pod.sa.join("token").display().to_string();
    assert_code(
        &out,
        8,
        &[
            "refused the service account token in",
            &token,
            "(401 Unauthorized)",
        ],
    );
    assert_eq!(server.seen().len(), 1, "a 401 is not retried");
}

#[test]
fn a_forbidden_read_names_the_rbac_rule_to_add() {
    let message = "statefulsets.apps \"zk\" is forbidden: User \"system:serviceaccount:db:zk\" \
                   cannot get resource \"statefulsets\" in API group \"apps\" in the namespace \"db\"";
    let (server, pod) = serving(vec![
        status(403, "Forbidden", message),
        ok(statefulset("zk", 3, None, "zk")),
        status(403, "Forbidden", "nodes \"n1\" is forbidden"),
    ]);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[
            "may not read the StatefulSet `zk` in namespace `db` (403 Forbidden)",
            "cannot get resource \\\"statefulsets\\\" in API group \\\"apps\\\"",
            "a Role in namespace `db` with the rule {apiGroups: [\"apps\"], resources: \
             [\"statefulsets\"], verbs: [\"get\"], resourceNames: [\"zk\"]} and a RoleBinding",
        ],
    );
    assert_eq!(server.seen().len(), 1, "a 403 is not retried");
    let out = pod.run(
        server.addr,
        &[
            "get",
            "replicas",
            "--hostname",
            "zk-0",
            "--from-api",
            "--node-name",
            "n1",
        ],
    );
    assert_code(
        &out,
        8,
        &[
            "may not read the node `n1` (403 Forbidden)",
            "a ClusterRole with the rule {apiGroups: [\"\"], resources: [\"nodes\"], verbs: \
             [\"get\"]} and a ClusterRoleBinding",
        ],
    );
}

#[test]
fn a_missing_set_names_the_set_and_the_namespace() {
    let (server, pod) = serving(vec![status(
        404,
        "NotFound",
        "statefulsets.apps \"zk\" not found",
    )]);
    let out = pod.run(server.addr, &["env", "--hostname", "zk-0", "--from-api"]);
    assert_code(
        &out,
        8,
        &[
            "there is no StatefulSet `zk` in namespace `db` (404 Not Found)",
            "hostname",
        ],
    );
    assert_eq!(server.seen().len(), 1, "a 404 is not retried");
}

#[test]
fn a_server_error_is_retried() {
    let (server, pod) = serving(vec![
        status(500, "InternalError", "etcdserver: leader changed"),
        ok(statefulset("zk", 3, None, "zk")),
    ]);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(&out, 0, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "3\n");
    assert_eq!(server.paths(), [STS_PATH, STS_PATH]);
}

#[test]
fn a_server_that_keeps_failing_is_given_up_on_after_five_attempts() {
    let (server, pod) = serving(vec![]);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[
            "gave up on the StatefulSet `zk` in namespace `db` after 5 attempts",
            "answered 500",
        ],
    );
    assert_eq!(server.seen().len(), 5);
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_says() {
    let retry = Reply {
        extra: "Retry-After: 2\r\n",
        ..status(429, "TooManyRequests", "too many requests")
    };
    let (server, pod) = serving(vec![retry, ok(statefulset("zk", 3, None, "zk"))]);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(&out, 0, &[]);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    // Without Retry-After the next attempt comes after 250 ms.
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, not 2s"
    );
}

#[test]
fn broken_json_is_an_error() {
    let pki = pki(&["127.0.0.1"]);
    let mut broken = statefulset("zk", 3, None, "zk");
    broken.truncate(broken.len() / 2);
    let server = Server::start(&pki, "127.0.0.1:0", vec![ok(broken)], |_| {});
    let pod = Pod::new(&pki);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[
            "the API server's answer for the StatefulSet `zk` in namespace `db` (GET \
           /apis/apps/v1/namespaces/db/statefulsets/zk) is not the object asked for",
        ],
    );
    let server = Server::start(
        &pki,
        "127.0.0.1:0",
        vec![
            ok(r#"{"kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": {}}"#.into()),
            ok(node("n1", "z", "r")),
        ],
        |_| {},
    );
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &["is not the object asked for", "missing field `spec`"],
    );
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &["the API server's answer for the StatefulSet `zk` in namespace `db` is a `Node`"],
    );
}

/// Projected tokens rotate: each request reads the token file afresh.
#[test]
fn a_token_that_changes_between_two_requests_is_read_again() {
    let pki = pki(&["127.0.0.1"]);
    let pod = Pod::new(&pki);
    let token = pod.sa.join("token");
    let server = Server::start(
        &pki,
        "127.0.0.1:0",
        vec![
            ok(statefulset("zk", 3, None, "zk")),
            status(500, "InternalError", "try again"),
            ok(node("n1", "z1", "r1")),
        ],
        move |n| {
            if n == 0 {
                fs::write(&token, format!("{ROTATED}\n")).unwrap();
            }
        },
    );
    let out = pod.run(
        server.addr,
        &[
            "get",
            "topology.zone",
            "--hostname",
            "zk-0",
            "--from-api",
            "--node-name",
            "n1",
        ],
    );
    assert_code(&out, 0, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "z1\n");
    let tokens: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.headers["authorization"].clone())
        .collect();
    assert_eq!(
        tokens,
        [
            format!("Bearer {TOKEN}"),
            format!("Bearer {ROTATED}"),
            format!("Bearer {ROTATED}")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// TLS and connections

#[test]
fn a_server_certificate_of_another_ca_is_refused_at_once() {
    let trusted = pki(&["127.0.0.1"]);
    let other = pki_of("another-cluster", &["127.0.0.1"]);
    let server = Server::start(
        &other,
        "127.0.0.1:0",
        vec![ok(statefulset("zk", 3, None, "zk"))],
        |_| {},
    );
    let pod = Pod::new(&trusted);
    let out = pod.run(server.addr, &GET_REPLICAS);
    let ca = pod.sa.join("ca.crt").display().to_string();
    assert_code(
        &out,
        8,
        &[
            &format!(
                "no trusted TLS connection to the Kubernetes API server at {}",
                server.addr
            ),
            "invalid peer certificate: UnknownIssuer",
            &format!("rolecall trusts only the CA in {ca}"),
        ],
    );
    assert!(server.seen().is_empty());
    assert_eq!(
        *server.connections.lock().unwrap(),
        1,
        "a TLS failure is not retried"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pki = pki(&["kubernetes.default.svc", "10.96.0.1"]);
    let server = Server::start(
        &pki,
        "127.0.0.1:0",
        vec![ok(statefulset("zk", 3, None, "zk"))],
        |_| {},
    );
    let pod = Pod::new(&pki);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[
            "no trusted TLS connection",
            "certificate not valid for name \"127.0.0.1\"",
        ],
    );
    assert!(server.seen().is_empty());
}

/// The client offers only what an API server needs (AES-GCM, P-256, the CA signatures
/// Kubernetes uses): an RSA server key, as kubeadm makes by default, and a server that speaks
/// TLS 1.2 only still work.
#[test]
fn an_rsa_certificate_and_tls_1_2_work() {
    let key = include_str!("support/api-server-rsa-key.pem");
    let key = KeyPair::from_pem_and_sign_algo(key, &rcgen::PKCS_RSA_SHA256).unwrap();
    let pki = pki_with("kubernetes", &["127.0.0.1"], key);
    for versions in [Versions::Default, Versions::Tls12Only] {
        let server = Server::start_with(
            &pki,
            "127.0.0.1:0",
            vec![ok(statefulset("zk", 3, None, "zk"))],
            |_| {},
            versions,
        );
        let pod = Pod::new(&pki);
        let out = pod.run(server.addr, &GET_REPLICAS);
        assert_code(&out, 0, &[]);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "3\n");
    }
}

#[test]
fn an_ipv6_service_host_is_put_in_brackets() {
    if TcpListener::bind("[::1]:0").is_err() {
        common::skip(
            "an_ipv6_service_host_is_put_in_brackets",
            "no IPv6 loopback here",
        );
        return;
    }
    let pki = pki(&["::1"]);
    let server = Server::start(
        &pki,
        "[::1]:0",
        vec![ok(statefulset("zk", 2, None, "zk"))],
        |_| {},
    );
    let pod = Pod::new(&pki);
    let out = pod.run(server.addr, &GET_REPLICAS);
    assert_code(&out, 0, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "2\n");
}

/// A server that accepts the connection and never says a word: bounded by --api-timeout.
#[test]
fn a_server_that_never_answers_is_bounded_by_the_timeout() {
    let pki = pki(&["127.0.0.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let held_ = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            held_.lock().unwrap().push(stream);
        }
    });
    let pod = Pod::new(&pki);
    let started = Instant::now();
    let mut child = pod
        .command(addr, &GET_REPLICAS)
        .args(["--api-timeout", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: the point is that it ends at all.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still waiting after 60 s: --api-timeout did not bound the request");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_code(
        &out,
        8,
        &[&format!(
            "the Kubernetes API server at {addr} did not answer for the StatefulSet `zk` in \
             namespace `db` within 2s (--api-timeout"
        )],
    );
    assert!(!held.lock().unwrap().is_empty(), "it connected");
}

/// Unreachable, the API is an error, unless --replicas is given: then a warning says why the
/// flags alone are used. Never a silent guess.
#[test]
fn an_unreachable_api_is_an_error_unless_replicas_is_given() {
    let pki = pki(&["127.0.0.1"]);
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pod = Pod::new(&pki);
    let out = pod.run(addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[&format!(
            "gave up on the StatefulSet `zk` in namespace `db` after 5 attempts: cannot reach the \
             Kubernetes API server at {addr} (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT)"
        )],
    );
    let out = pod.run(
        addr,
        &[
            "get",
            "replicas",
            "--hostname",
            "zk-0",
            "--from-api",
            "--replicas",
            "3",
        ],
    );
    assert_code(
        &out,
        0,
        &[
            "rolecall: warning: --from-api: gave up on the StatefulSet",
            "going on with --replicas",
        ],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "3\n");
}

#[test]
fn outside_a_pod_from_api_says_what_is_missing() {
    let pki = pki(&["127.0.0.1"]);
    let pod = Pod::new(&pki);
    let out = rolecall_std()
        .env("ROLECALL_SERVICE_ACCOUNT_DIR", &pod.sa)
        .args(GET_REPLICAS)
        .output()
        .unwrap();
    assert_code(&out, 8, &["KUBERNETES_SERVICE_HOST is not set"]);
    fs::remove_file(pod.sa.join("token")).unwrap();
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let out = pod.run(addr, &GET_REPLICAS);
    assert_code(
        &out,
        8,
        &[
            "cannot read the service account token",
            "automountServiceAccountToken",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// What the API says is checked like any input

/// `get replicas` is the set's size now, asked by a preStop hook: it answers in a pod the set no
/// longer includes and when the set is scaled to 0, where every field of the pod itself is an
/// identity error.
#[test]
fn get_replicas_answers_in_a_pod_beyond_the_set_and_at_0() {
    let (server, pod) = serving(vec![
        ok(statefulset("rc", 6, None, "rc")),
        ok(statefulset("rc", 6, None, "rc")),
        ok(statefulset("rc", 0, None, "rc")),
        ok(statefulset("rc", 0, None, "rc")),
    ]);
    let get = |field: &str| {
        let args = [
            "get",
            field,
            "--role",
            "redis-cluster",
            "--hostname",
            "rc-7",
            "--from-api",
        ];
        pod.run(server.addr, &args)
    };
    let out = get("replicas");
    assert_code(&out, 0, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "6\n");
    assert_code(&get("index"), 3, &["ordinal 7 is outside the set"]);
    let out = get("replicas");
    assert_code(&out, 0, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n");
    assert_code(&get("index"), 3, &["StatefulSet `rc` has spec.replicas 0"]);
    assert_eq!(server.seen().len(), 4, "one GET per command");
}

/// A preStop hook's `leave` at `spec.replicas: 0` is a pause: it ends well without a call to any
/// member (none runs here; a call would end with exit 7).
#[cfg(feature = "member")]
#[test]
fn leave_from_the_api_at_0_is_a_pause_for_etcd_and_zookeeper() {
    let (server, pod) = serving(vec![
        ok(statefulset("etcd", 0, None, "etcd")),
        ok(statefulset("zk", 0, None, "zk")),
    ]);
    let password = pod.path("super-password");
    std::fs::write(&password, "secret\n").unwrap();
    let super_password = format!("super_password_file={}", password.display());
    let leave = |role: &str, hostname: &str, extra: &[&str]| {
        let mut args = vec![
            "leave",
            "--role",
            role,
            "--hostname",
            hostname,
            "--from-api",
            "--timeout",
            "2s",
        ];
        args.extend(extra);
        pod.run(server.addr, &args)
    };
    assert_code(
        &leave("etcd", "etcd-2", &[]),
        0,
        &["the set is scaled to 0: a pause"],
    );
    assert_code(
        &leave("zookeeper", "zk-2", &["--set", &super_password]),
        0,
        &["the set is scaled to 0: a pause"],
    );
    assert_eq!(server.seen().len(), 2, "one GET per leave");
}

#[test]
fn a_set_or_a_node_rolecall_cannot_use_is_an_identity_error() {
    let (server, pod) = serving(vec![
        ok(statefulset("zk", 0, None, "zk")),
        ok(statefulset("zk", 3, None, "zk")),
        ok(node("n1", "zone a", "r")),
        ok(statefulset("zk", 3, None, "Not A Label")),
    ]);
    let get = |extra: &[&str]| {
        let mut args = vec!["get", "index", "--hostname", "zk-0", "--from-api"];
        args.extend(extra);
        pod.run(server.addr, &args)
    };
    assert_code(&get(&[]), 3, &["StatefulSet `zk` has spec.replicas 0"]);
    assert_code(
        &get(&["--node-name", "n1"]),
        3,
        &[
            "node `n1`: label topology.kubernetes.io/zone is `zone a`, which is no Kubernetes label value",
        ],
    );
    assert_code(
        &get(&[]),
        3,
        &["spec.serviceName `Not A Label`, which is not a DNS label"],
    );
}

#[test]
fn a_labels_file_value_that_is_no_label_value_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for value in ["a\\nb", "a b", "$(id)", "a\\\"b", "-a", "x'y"] {
        let file = tmp.path().join("labels");
        fs::write(&file, format!("topology.kubernetes.io/zone=\"{value}\"\n")).unwrap();
        let out = rolecall_std()
            .args([
                "render",
                "--role",
                "kafka",
                "--hostname",
                "kafka-0",
                "--replicas",
                "3",
            ])
            .args(["--out", tmp.path().join("out").to_str().unwrap()])
            .arg("--labels-file")
            .arg(&file)
            .output()
            .unwrap();
        assert_code(
            &out,
            3,
            &[&file.display().to_string(), "topology.kubernetes.io/zone"],
        );
        assert!(!tmp.path().join("out").exists(), "{value}: nothing written");
    }
}

//! `rolecall wait` and `render --wait-for`, through the real binary: listeners on loopback that
//! come up late or never, names that do not resolve, and (as root) pod names resolved from an
//! /etc/hosts bind-mounted in a private mount namespace, as a pod has it.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

mod common;

use common::{BIN, rolecall, skip};

/// A loopback port nothing listens on (connecting to it is refused).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts listening on 127.0.0.1:`port` after `delay`; the listener is returned by the join.
fn listen_later(port: u16, delay: Duration) -> thread::JoinHandle<TcpListener> {
    thread::spawn(move || {
        thread::sleep(delay);
        TcpListener::bind(("127.0.0.1", port)).unwrap()
    })
}

/// Whether a probe's connection reached the listener.
fn was_connected(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    listener.accept().is_ok()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn address_that_starts_listening_later_is_waited_for() {
    let port = free_port();
    let server = listen_later(port, Duration::from_millis(700));
    let started = Instant::now();
    let output = rolecall()
        .args(["wait", "--for", &format!("127.0.0.1:{port}")])
        .args(["--timeout", "20s", "--interval", "100ms"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let listener = server.join().unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        took >= Duration::from_millis(600),
        "returned after {took:?}, before the listener was up: {err}"
    );
    assert!(
        err.contains(&format!(
            "rolecall: waiting up to 20s for 127.0.0.1:{port}\n"
        )),
        "{err}"
    );
    assert!(err.contains("rolecall: ready after "), "{err}");
    assert!(was_connected(&listener), "no probe reached the listener");
}

#[test]
fn address_that_never_answers_times_out_with_exit_6() {
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let started = Instant::now();
    rolecall()
        .args([
            "wait",
            "--for",
            &target,
            "--timeout",
            "500ms",
            "--interval",
            "100ms",
        ])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("gave up after"))
        .stderr(predicate::str::contains(
            "(--timeout 500ms): 1 of 1 targets not ready",
        ))
        .stderr(predicate::str::contains(format!(
            "\n  {target}: connection refused"
        )));
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn timeout_message_lists_only_the_targets_not_ready() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = up.local_addr().unwrap().port();
    let down = format!("127.0.0.1:{}", free_port());
    let output = rolecall()
        .args([
            "wait",
            "--for",
            &format!("127.0.0.1:{up_port}"),
            "--for",
            &down,
        ])
        .args(["--timeout", "300ms", "--interval", "100ms"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    let message = err.split_once("rolecall: gave up").unwrap().1;
    assert!(message.contains("1 of 2 targets not ready"), "{err}");
    assert!(
        message.contains(&format!("  {down}: connection refused")),
        "{err}"
    );
    assert!(!message.contains(&format!(":{up_port}")), "{err}");
}

#[test]
fn refused_port_with_timeout_0_is_tried_once() {
    let target = format!("127.0.0.1:{}", free_port());
    let output = rolecall()
        .args(["wait", "--for", &target, "--timeout", "0"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert_eq!(
        err,
        format!(
            "rolecall: checking once: {target}\n\
             rolecall: not ready (--timeout 0 tries once): 1 of 1 targets not ready:\n  \
             {target}: connection refused\n"
        )
    );
}

#[test]
fn unresolvable_name_is_reported_as_no_dns_record() {
    // .invalid never resolves (RFC 6761): the resolver answers "no such name".
    rolecall()
        .args([
            "wait",
            "--for",
            "no-such-pod.invalid:3306",
            "--timeout",
            "0",
        ])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "\n  no-such-pod.invalid:3306: no DNS record (",
        ));
}

#[test]
fn quiet_prints_only_the_failure() {
    let target = format!("127.0.0.1:{}", free_port());
    let output = rolecall()
        .args(["wait", "--quiet", "--for", &target, "--timeout", "0"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6));
    assert!(err.starts_with("rolecall: not ready"), "{err}");
    let port = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = port.local_addr().unwrap().to_string();
    rolecall()
        .args(["wait", "-q", "--for", &target, "--timeout", "0"])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn leader_waiting_for_itself_is_ready_at_once() {
    rolecall()
        .args(["wait", "--hostname", "mysql-0", "--role", "mysql"])
        .args(["--replicas", "3", "--for", "leader", "--timeout", "0"])
        .assert()
        .success()
        .stderr("rolecall: nothing to wait for: leader (this pod is the leader)\n");
}

#[test]
fn previous_on_the_first_pod_is_ready_at_once() {
    // The first pod is the first of the set, whatever its ordinal; no --replicas needed.
    rolecall()
        .args(["wait", "--hostname", "web-5", "--start-ordinal", "5"])
        .args(["--port", "80", "--for", "previous", "--timeout", "2s"])
        .assert()
        .success()
        .stderr("rolecall: nothing to wait for: previous (this is the first pod)\n");
}

#[test]
fn only_pod_of_a_set_has_no_peers_to_wait_for() {
    rolecall()
        .args(["wait", "--hostname", "zk-0", "--role", "zookeeper"])
        .args(["--replicas", "1", "--for", "all", "--timeout", "2s"])
        .assert()
        .success()
        .stderr("rolecall: nothing to wait for: all (this pod is the only one)\n");
}

#[test]
fn bad_targets_and_durations_are_usage_errors() {
    for (args, says) in [
        (
            &["--for", "leadr"][..],
            "`leadr` is not a target; use leader",
        ),
        (
            &["--for", "peers=0"],
            "peers=N needs a whole number N of at least 1",
        ),
        (&["--for", "db:http"], "`http` is not a port (1-65535)"),
        (&["--for", "fd00::1:80"], "in brackets, like [fd00::1]:5432"),
        (
            &["--for", "db:1", "--timeout", "5x"],
            "--timeout `5x` is not a duration",
        ),
        (
            &["--for", "db:1", "--timeout", "1m30"],
            "is not a duration; use a number with ms, s, m or h",
        ),
        (
            &["--for", "db:1", "--interval", "0"],
            "--interval `0` is too short",
        ),
    ] {
        rolecall()
            .arg("wait")
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

#[test]
fn targets_the_set_cannot_satisfy_fail_before_waiting() {
    // No port: neither the role nor the flags give one.
    rolecall()
        .args([
            "wait",
            "--hostname",
            "web-1",
            "--replicas",
            "2",
            "--for",
            "leader",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "wait target `leader`: the role has no port; pass --port PORT or write `leader:PORT`",
        ));
    // More peers than the set has besides this pod.
    rolecall()
        .args([
            "wait",
            "--hostname",
            "zk-1",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
        ])
        .args(["--for", "peers=3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has only 2 other pods; ask for at most peers=2",
        ));
    // The leader is the first pod with the leader role: that needs the whole set.
    rolecall()
        .args([
            "wait",
            "--hostname",
            "mysql-1",
            "--role",
            "mysql",
            "--for",
            "leader",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "wait target `leader` needs the size of the set",
        ));
}

#[test]
fn render_that_times_out_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    rolecall()
        .args(["render", "--hostname", "mysql-1", "--role", "mysql", "--replicas", "2"])
        .args(["--namespace", "default", "--cluster-domain", "cluster.local"])
        .args(["--service", "no-such-service-for-rolecall-tests"])
        .arg("--out")
        .arg(&out)
        .args(["--wait-for", "leader", "--timeout", "0"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "\n  leader mysql-0.no-such-service-for-rolecall-tests.default.svc.cluster.local:3306: ",
        ));
    assert!(!out.exists(), "render wrote files although the wait failed");
}

#[test]
fn render_with_a_template_error_fails_before_waiting() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("leader.cnf"), "ok").unwrap();
    fs::write(dir.path().join("follower.cnf"), "{{ no_such_var }}").unwrap();
    let started = Instant::now();
    rolecall()
        .args(["render", "--hostname", "db-1", "--replicas", "2"])
        .args([
            "--leader-file",
            "leader.cnf",
            "--follower-file",
            "follower.cnf",
        ])
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("out"))
        .args([
            "--wait-for",
            &format!("127.0.0.1:{}", free_port()),
            "--timeout",
            "30s",
        ])
        .assert()
        .code(4);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited first"
    );
}

// --- As root: pod names resolved from a bind-mounted /etc/hosts, as in a pod. ---

/// Whether this test can use namespaces; says why it is skipped when not. Under CI
/// (ROLECALL_CI=1) a missing privilege is a failure, not a skip.
fn can_use_namespaces(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let unshare = std::process::Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && unshare {
        return true;
    }
    let why = if root {
        "`unshare` (util-linux) is not installed"
    } else {
        "it needs root for mount and network namespaces"
    };
    skip(test, why)
}

/// `rolecall ARGS` in a private mount namespace whose /etc/hosts is `hosts` and which looks
/// names up in files only (so a name missing there fails at once, whatever DNS the host has).
fn rolecall_in_pod(dir: &Path, hosts: &str) -> Command {
    rolecall_in_pod_with_dns(dir, hosts, None)
}

/// As `rolecall_in_pod`; with `resolv_conf`, names missing from /etc/hosts go to that DNS.
fn rolecall_in_pod_with_dns(dir: &Path, hosts: &str, resolv_conf: Option<&str>) -> Command {
    let hosts_file = dir.join("hosts");
    let nss_file = dir.join("nsswitch.conf");
    let resolv_file = dir.join("resolv.conf");
    fs::write(&hosts_file, hosts).unwrap();
    let nss = if resolv_conf.is_some() {
        "files dns"
    } else {
        "files"
    };
    fs::write(&nss_file, format!("hosts: {nss}\n")).unwrap();
    fs::write(&resolv_file, resolv_conf.unwrap_or("")).unwrap();
    let mut cmd = std::process::Command::new("unshare");
    common::without_pod_env(&mut cmd)
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(
            "mount --bind \"$1\" /etc/hosts; mount --bind \"$2\" /etc/nsswitch.conf; \
             mount --bind \"$3\" /etc/resolv.conf; shift 3; exec \"$@\"",
        )
        .arg("sh")
        .arg(&hosts_file)
        .arg(&nss_file)
        .arg(&resolv_file)
        .arg(BIN);
    Command::from_std(cmd)
}

const POD: [&str; 4] = [
    "--namespace",
    "default",
    "--cluster-domain",
    "cluster.local",
];

#[test]
fn render_waits_for_the_leader_then_renders() {
    if !can_use_namespaces("render_waits_for_the_leader_then_renders") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let server = listen_later(port, Duration::from_millis(600));
    let started = Instant::now();
    let output = rolecall_in_pod(
        dir.path(),
        "127.0.0.1 localhost\n127.0.0.1 mysql-0.mysql.default.svc.cluster.local\n",
    )
    .args([
        "render",
        "--hostname",
        "mysql-1",
        "--role",
        "mysql",
        "--replicas",
        "2",
    ])
    .args(POD)
    .args(["--port", &port.to_string()])
    .arg("--out")
    .arg(&out)
    .args([
        "--wait-for",
        "leader",
        "--timeout",
        "20s",
        "--interval",
        "100ms",
    ])
    .output()
    .unwrap();
    let took = started.elapsed();
    let listener = server.join().unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(took >= Duration::from_millis(500), "did not wait: {err}");
    assert!(was_connected(&listener), "no probe reached the leader");
    let leader = format!("mysql-0.mysql.default.svc.cluster.local:{port}");
    let waiting = err
        .find(&format!(
            "rolecall: waiting up to 20s for leader {leader}\n"
        ))
        .unwrap_or_else(|| panic!("{err}"));
    let ready = err.find("rolecall: ready after ").expect(&err);
    assert!(waiting < ready, "{err}");
    assert_eq!(
        fs::read_to_string(out.join("server-id.cnf")).unwrap(),
        "[mysqld]\nserver-id=101\n"
    );
    assert!(out.join("replica.cnf").exists());
    assert!(!out.join("primary.cnf").exists());
}

#[test]
fn peers_counts_other_pods_never_this_one() {
    if !can_use_namespaces("peers_counts_other_pods_never_this_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // zk-0 answers on 127.0.0.1; zk-1 resolves to 127.0.0.2, where nothing listens; zk-3 has no
    // record. zk-2 is this pod: it is not running yet, so counting it would be a lie.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let hosts = "127.0.0.1 zk-0.zk.default.svc.cluster.local\n\
                 127.0.0.2 zk-1.zk.default.svc.cluster.local\n\
                 127.0.0.1 zk-2.zk.default.svc.cluster.local\n";
    let wait = |target: &str, timeout: &str| {
        rolecall_in_pod(dir.path(), hosts)
            .args([
                "wait",
                "--hostname",
                "zk-2",
                "--role",
                "zookeeper",
                "--replicas",
                "4",
            ])
            .args(POD)
            .args(["--port", &port, "--for", target, "--timeout", timeout])
            .args(["--interval", "100ms"])
            .output()
            .unwrap()
    };
    let output = wait("peers=1", "5s");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("peers=1 (1 of 3 other pods)"),
        "{}",
        stderr(&output)
    );
    let output = wait("peers=2", "300ms");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert!(err.contains("\n  peers=2: 1 ready of 2 needed"), "{err}");
    assert!(
        err.contains(&format!(
            "; zk-1.zk.default.svc.cluster.local:{port}: connection refused"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "; zk-3.zk.default.svc.cluster.local:{port}: no DNS record ("
        )),
        "{err}"
    );
    assert!(!err.contains("zk-2.zk"), "this pod was probed: {err}");
    drop(listener);
}

#[test]
fn previous_pod_name_resolves_from_etc_hosts() {
    if !can_use_namespaces("previous_pod_name_resolves_from_etc_hosts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A custom port on `previous:PORT`; the role's own port (3306) would be refused.
    rolecall_in_pod(
        dir.path(),
        "127.0.0.1 mysql-1.mysql.default.svc.cluster.local mysql-1\n",
    )
    .args(["wait", "--hostname", "mysql-2", "--role", "mysql"])
    .args(POD)
    .args(["--for", &format!("previous:{port}"), "--timeout", "5s"])
    .assert()
    .success()
    .stderr(predicate::str::contains("rolecall: ready after "))
    .stderr(predicate::str::contains(format!(
        ": previous mysql-1.mysql.default.svc.cluster.local:{port}\n"
    )));
    assert!(
        was_connected(&listener),
        "no probe reached the previous pod"
    );
}

#[test]
fn connect_to_a_silent_address_times_out() {
    if !can_use_namespaces("connect_to_a_silent_address_times_out") {
        return;
    }
    // A veth whose other end is down: packets to 10.9.0.2 go out and nothing ever answers.
    Command::new("unshare")
        .args(["--net", "--", "sh", "-ec"])
        .arg(
            "ip link set lo up; ip link add v0 type veth peer name v1; \
             ip addr add 10.9.0.1/24 dev v0; ip link set v0 up; exec \"$@\"",
        )
        .arg("sh")
        .arg(BIN)
        .args([
            "wait",
            "--for",
            "10.9.0.2:80",
            "--timeout",
            "0",
            "--interval",
            "300ms",
        ])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "\n  10.9.0.2:80: timed out after 300ms\n",
        ));
}

/// A DNS server on port 53 of a free loopback address that answers every A query with
/// 127.0.0.1 (and AAAA with no address), each answer `delay` late. Returns its address (for a
/// `nameserver` line) and the number of queries it has seen.
fn slow_dns(delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // resolv.conf takes no port: find an address whose port 53 is free.
    let socket = (1..=250)
        .find_map(|n| std::net::UdpSocket::bind(format!("127.53.{n}.1:53")).ok())
        .expect("no free port 53 on 127.53.*.1");
    let addr = socket.local_addr().unwrap().ip().to_string();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            count.fetch_add(1, Ordering::SeqCst);
            // Header (12 bytes), then the question: name labels up to a 0 byte, type, class.
            let Some(end) = buf[12..len]
                .iter()
                .position(|b| *b == 0)
                .map(|p| 12 + p + 5)
            else {
                continue;
            };
            let is_a = buf[end - 4..end - 2] == [0, 1];
            let mut reply = buf[..end].to_vec();
            reply[2..4].copy_from_slice(&[0x81, 0x80]); // response, recursion available
            reply[6..8].copy_from_slice(&[0, u8::from(is_a)]); // answers
            reply[8..12].fill(0);
            if is_a {
                // Name (pointer to the question), A, IN, TTL 5, 4 bytes: 127.0.0.1.
                reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 1]);
            }
            let socket = socket.try_clone().unwrap();
            thread::spawn(move || {
                thread::sleep(delay);
                let _ = socket.send_to(&reply, from);
            });
        }
    });
    (addr, seen)
}

#[test]
fn dns_answer_slower_than_the_interval_still_counts() {
    if !can_use_namespaces("dns_answer_slower_than_the_interval_still_counts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Each lookup takes 700 ms, each attempt 200 ms: only an answer that arrives after its own
    // attempt ended can make the target ready.
    let (nameserver, queries) = slow_dns(Duration::from_millis(700));
    let started = Instant::now();
    let output = rolecall_in_pod_with_dns(
        dir.path(),
        "127.0.0.1 localhost\n",
        Some(&format!(
            "nameserver {nameserver}\noptions timeout:5 attempts:1\n"
        )),
    )
    .args(["wait", "--for", &format!("late.rolecall.test:{port}")])
    .args(["--timeout", "10s", "--interval", "200ms"])
    .output()
    .unwrap();
    let took = started.elapsed();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        took >= Duration::from_millis(700),
        "answered before the DNS did: {err}"
    );
    assert!(queries.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(was_connected(&listener), "no probe reached the listener");
}

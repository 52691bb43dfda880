//! A simulated StatefulSet for the real-cluster tests: drives tests/sim/statefulset.sh, which
//! makes the pods (network and UTS namespaces, /etc/hosts and resolv.conf, private /tmp and
//! volumes), and tears everything down when the handle drops, the test panics or the test
//! process dies.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _};
use std::ops::Range;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub mod controller;

/// The harness script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sim/statefulset.sh");
/// The binary under test. Pods run a copy in the set's directory (`Pods::rolecall`): a pod's
/// private /tmp would hide this one when the checkout lives under /tmp.
const ROLECALL: &str = env!("CARGO_BIN_EXE_rolecall");
/// What the harness itself needs besides root.
const HARNESS_TOOLS: [&str; 6] = ["ip", "unshare", "nsenter", "mount", "flock", "kill"];

/// Prints on the real stderr, bypassing libtest's capture: bring-up times must be seen in a
/// passing run too.
pub use crate::common::tell as report;

/// Whether this machine can run the test `what`, which needs `tools`. If not, says why and
/// returns false (the test is skipped, never silently passed); with ROLECALL_CI=1 it fails
/// instead, so that CI cannot skip the real clusters.
pub fn can_run(what: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (it makes network, UTS and mount namespaces)".to_string());
    }
    for tool in HARNESS_TOOLS.iter().chain(tools) {
        if !on_path(tool) {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    crate::common::skip(
        what,
        &format!(
            "needs {}; .ci/run installs the Debian packages and runs the tests as root",
            missing.join(", ")
        ),
    )
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The shape of a StatefulSet, as its spec and headless Service would give it.
#[derive(Clone, Debug)]
pub struct StatefulSet {
    pub name: String,
    pub replicas: u32,
    /// spec.ordinals.start
    pub start_ordinal: u32,
    pub namespace: String,
    pub cluster_domain: String,
    /// Directories of this machine each pod gets its own empty copy of, e.g. /var/lib/etcd.
    pub volumes: Vec<String>,
    /// Give this machine an address on the set's bridge, so that a test reaches the pods by
    /// their addresses (`Pods::address`).
    pub host_address: bool,
}

impl StatefulSet {
    pub fn new(name: &str, replicas: u32) -> Self {
        StatefulSet {
            name: name.into(),
            replicas,
            start_ordinal: 0,
            namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
            volumes: Vec::new(),
            host_address: false,
        }
    }
}

/// The output of a command run in a pod.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout, or a message with everything the command said.
    pub fn ok(&self) -> Result<&str, String> {
        if self.status.success() {
            Ok(&self.stdout)
        } else {
            Err(format!(
                "{}; stdout: {}; stderr: {}",
                self.status,
                self.stdout.trim(),
                self.stderr.trim()
            ))
        }
    }
}

/// A server started in a pod: its own process group, so that stopping it stops its children.
struct Server {
    ordinal: u32,
    child: Child,
}

/// The pods of one simulated StatefulSet. Dropping it removes them.
pub struct Pods {
    pub set: StatefulSet,
    dir: PathBuf,
    /// `statefulset.sh run`: holds the pods until its stdin closes.
    keeper: Child,
    keeper_stdin: Option<ChildStdin>,
    /// Kept open: the keeper must never write into a closed pipe.
    _keeper_stdout: BufReader<ChildStdout>,
    servers: Vec<Server>,
}

impl Pods {
    /// Makes the pods. Each gets a subnet and names no other set uses, so tests can run at once.
    pub fn up(set: StatefulSet) -> Pods {
        let mut cmd = Command::new(SCRIPT);
        cmd.arg("run")
            .args(["--name", &set.name])
            .args(["--replicas", &set.replicas.to_string()])
            .args(["--start-ordinal", &set.start_ordinal.to_string()])
            .args(["--namespace", &set.namespace])
            .args(["--cluster-domain", &set.cluster_domain]);
        if set.host_address {
            cmd.arg("--host-address");
        }
        for volume in &set.volumes {
            cmd.args(["--volume", volume]);
        }
        let mut keeper = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
        let keeper_stdin = keeper.stdin.take();
        let mut line = String::new();
        let mut stdout = BufReader::new(keeper.stdout.take().expect("piped stdout"));
        let _ = stdout.read_line(&mut line);
        let dir = PathBuf::from(line.trim());
        if !dir.is_absolute() {
            drop(keeper_stdin);
            let status = keeper.wait();
            panic!("{SCRIPT} run did not make the pods ({status:?}); its messages are above");
        }
        // The image's binary: copied where every pod sees it, whatever hides the build tree.
        let image_binary = dir.join("rolecall");
        if let Err(e) = std::fs::copy(ROLECALL, &image_binary) {
            drop(keeper_stdin);
            let _ = keeper.wait();
            panic!("cannot copy {ROLECALL} into {}: {e}", dir.display());
        }
        Pods {
            set,
            dir,
            keeper,
            keeper_stdin,
            _keeper_stdout: stdout,
            servers: Vec::new(),
        }
    }

    pub fn ordinals(&self) -> Range<u32> {
        self.set.start_ordinal..self.set.start_ordinal + self.set.replicas
    }

    pub fn hostname(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.set.name)
    }

    /// The pod's name under the headless Service (named like the set).
    pub fn fqdn(&self, ordinal: u32) -> String {
        format!(
            "{}.{}.{}.svc.{}",
            self.hostname(ordinal),
            self.set.name,
            self.set.namespace,
            self.set.cluster_domain
        )
    }

    /// The pod's address on the set's bridge (reachable from this machine with
    /// `StatefulSet::host_address`).
    pub fn address(&self, ordinal: u32) -> String {
        let id = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let octet = id.trim_start_matches("rcsim");
        let net = std::env::var("ROLECALL_SIM_NET").unwrap_or_else(|_| "10.213".into());
        format!("{net}.{octet}.{}", 10 + ordinal - self.set.start_ordinal)
    }

    /// This machine's address on the set's bridge (with `StatefulSet::host_address`).
    pub fn host_address(&self) -> String {
        let pod = self.address(self.set.start_ordinal);
        let (net, _) = pod.rsplit_once('.').expect("an IPv4 address");
        format!("{net}.1")
    }

    /// The set's directory on this machine, which every pod sees at the same path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pod's private copy of the volume mounted at `path` (e.g. /var/lib/etcd): what a PVC
    /// keeps when the pod goes.
    pub fn volume(&self, ordinal: u32, path: &str) -> PathBuf {
        self.pod_dir(ordinal)
            .join("vol")
            .join(path.trim_start_matches('/').replace('/', "_"))
    }

    /// The pod's own directory on this machine.
    pub fn pod_dir(&self, ordinal: u32) -> PathBuf {
        self.dir.join("pods").join(self.hostname(ordinal))
    }

    /// Where the init step writes the pod's config, and the server reads it.
    pub fn config_dir(&self, ordinal: u32) -> PathBuf {
        self.pod_dir(ordinal).join("config")
    }

    /// The environment a pod spec gives the init container: the namespace from the downward
    /// API and the set size; the start ordinal only when spec.ordinals.start is set, since no
    /// pod can read it. Nothing names the pod: rolecall finds its hostname and cluster domain.
    pub fn pod_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("POD_NAMESPACE".to_string(), self.set.namespace.clone()),
            (
                "ROLECALL_REPLICAS".to_string(),
                self.set.replicas.to_string(),
            ),
        ];
        if self.set.start_ordinal != 0 {
            env.push((
                "ROLECALL_START_ORDINAL".to_string(),
                self.set.start_ordinal.to_string(),
            ));
        }
        env
    }

    fn exec_command(&self, ordinal: u32, env: &[(String, String)], argv: &[&str]) -> Command {
        let mut cmd = Command::new(SCRIPT);
        cmd.arg("exec").arg(&self.dir).arg(ordinal.to_string());
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg("--").args(argv);
        cmd
    }

    /// Runs `argv` in pod `ordinal` with only `env` besides PATH and HOME; kills it after
    /// `timeout`.
    pub fn exec(
        &self,
        ordinal: u32,
        env: &[(String, String)],
        argv: &[&str],
        timeout: Duration,
    ) -> Run {
        let mut out = tempfile::tempfile().expect("temporary file");
        let mut err = tempfile::tempfile().expect("temporary file");
        let mut child = self
            .exec_command(ordinal, env, argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for a pod command") {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} in pod {}: no answer within {timeout:?}",
                    argv.join(" "),
                    self.hostname(ordinal)
                );
            }
            sleep(Duration::from_millis(10));
        };
        let read = |file: &mut File| {
            let mut text = String::new();
            file.rewind().expect("rewind");
            let _ = file.read_to_string(&mut text);
            text
        };
        Run {
            status,
            stdout: read(&mut out),
            stderr: read(&mut err),
        }
    }

    /// Runs `argv` in pod `ordinal` with the pod's environment; its stdout, or a message.
    pub fn sh(&self, ordinal: u32, argv: &[&str]) -> Result<String, String> {
        let run = self.exec(ordinal, &self.pod_env(), argv, Duration::from_secs(20));
        run.ok().map(str::to_string)
    }

    /// The rolecall binary as the pods run it (a copy of the one under test).
    pub fn rolecall(&self) -> String {
        self.dir
            .join("rolecall")
            .to_str()
            .expect("UTF-8 path")
            .to_string()
    }

    /// The init container: the real rolecall with the pod's environment and no identity flags,
    /// writing into the pod's config directory; `extra` are further arguments of the pod spec
    /// (`--set` of role vars). Returns its summary line (stderr).
    pub fn init(&self, ordinal: u32, role: &str, extra: &[&str]) -> String {
        let out = self.config_dir(ordinal);
        let out = out.to_str().expect("UTF-8 path");
        let rolecall = self.rolecall();
        let mut argv = vec![rolecall.as_str(), "render", "--role", role, "--out", out];
        argv.extend(extra);
        let run = self.exec(ordinal, &self.pod_env(), &argv, Duration::from_secs(20));
        if let Err(e) = run.ok() {
            panic!("init step of pod {} failed: {e}", self.hostname(ordinal));
        }
        run.stderr.trim().to_string()
    }

    /// Starts a server in pod `ordinal`, in its own process group, logging to server.log in
    /// the pod's directory.
    pub fn start(&mut self, ordinal: u32, argv: &[&str]) {
        let env = self.pod_env();
        self.start_with_env(ordinal, &env, argv);
    }

    /// Whether a server started in pod `ordinal` still runs.
    pub fn running(&mut self, ordinal: u32) -> bool {
        self.servers
            .iter_mut()
            .any(|s| s.ordinal == ordinal && matches!(s.child.try_wait(), Ok(None)))
    }

    /// As `start`, with the environment `env` (a pod template's).
    pub fn start_with_env(&mut self, ordinal: u32, env: &[(String, String)], argv: &[&str]) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.pod_dir(ordinal).join("server.log"))
            .expect("server log");
        let child = self
            .exec_command(ordinal, env, argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", argv.join(" ")));
        self.servers.push(Server { ordinal, child });
    }

    /// Stops the server of pod `ordinal` as Kubernetes stops a container: SIGTERM to its
    /// process group, SIGKILL after `grace`. Returns how long it took to exit.
    pub fn stop(&mut self, ordinal: u32, grace: Duration) -> Duration {
        let mut server = self.take_server(ordinal);
        let started = Instant::now();
        signal_group(&server.child, "TERM");
        loop {
            if server
                .child
                .try_wait()
                .expect("wait for a server")
                .is_some()
            {
                return started.elapsed();
            }
            if started.elapsed() > grace {
                signal_group(&server.child, "KILL");
                let _ = server.child.wait();
                return started.elapsed();
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server of pod `ordinal` at once (SIGKILL to its process group), as a node
    /// failure would: no preStop, no shutdown.
    pub fn crash(&mut self, ordinal: u32) {
        let mut server = self.take_server(ordinal);
        signal_group(&server.child, "KILL");
        let _ = server.child.wait();
    }

    /// The server started in pod `ordinal`, no longer counted as running there.
    fn take_server(&mut self, ordinal: u32) -> Server {
        let i = self
            .servers
            .iter()
            .position(|s| s.ordinal == ordinal)
            .unwrap_or_else(|| panic!("no server runs in pod {}", self.hostname(ordinal)));
        self.servers.remove(i)
    }

    /// Empties pod `ordinal`'s volume at `path`, as a new PVC in place of a lost one.
    pub fn lose_volume(&self, ordinal: u32, path: &str) -> Result<(), String> {
        let data = self.volume(ordinal, path);
        fs::remove_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))
    }

    /// The server log of pod `ordinal`.
    pub fn log(&self, ordinal: u32) -> String {
        fs::read_to_string(self.pod_dir(ordinal).join("server.log")).unwrap_or_default()
    }

    /// Removes the pods and checks that nothing is left: no namespace, link or /etc/netns entry
    /// of this set, no directory, no process of its servers.
    pub fn down(mut self) {
        let status = self.teardown();
        let id = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            status.is_some_and(|s| s.success()),
            "teardown of {id} failed: {status:?}"
        );
        let netns = command_output("ip", &["netns", "list"]);
        let links = command_output("ip", &["-o", "link", "show"]);
        let prefix = format!("{id}-");
        assert!(
            !netns.lines().any(|l| l.starts_with(&prefix)),
            "namespaces left: {netns}"
        );
        assert!(
            !links.contains(&format!(": {id}:")) && !links.contains(&format!(": {id}v")),
            "links left: {links}"
        );
        let etc_netns = fs::read_dir("/etc/netns")
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or(false);
        assert!(!etc_netns, "/etc/netns entries of {id} left");
        assert!(!self.dir.exists(), "{} left", self.dir.display());
    }

    /// Ends the keeper (which kills every process in the pods and removes them), then reaps
    /// our servers. Its exit status, the first time.
    fn teardown(&mut self) -> Option<ExitStatus> {
        let stdin = self.keeper_stdin.take()?;
        drop(stdin);
        let status = self.keeper.wait().ok();
        for server in &mut self.servers {
            let _ = server.child.wait();
        }
        self.servers.clear();
        status
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        if std::thread::panicking() && self.keeper_stdin.is_some() {
            // Shown with the failure: what each server said before the test gave up.
            for ordinal in self.ordinals() {
                let log = self.log(ordinal);
                let tail: Vec<_> = log.lines().rev().take(15).collect();
                eprintln!(
                    "--- last lines of {} server.log ---",
                    self.hostname(ordinal)
                );
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        self.teardown();
    }
}

fn signal_group(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `probe` until it returns Ok, for at most `timeout`; panics with its last error.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(e) if started.elapsed() > timeout => {
                panic!("{what}: not within {timeout:?}; last: {e}")
            }
            Err(_) => sleep(Duration::from_millis(100)),
        }
    }
}

/// Seconds, for the bring-up report.
pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Reports what a pod's container or hook said: `  WHAT POD: LINE`, the other lines below it.
pub fn report_said<'a>(what: &str, pod: &str, lines: impl IntoIterator<Item = &'a str>) {
    let lines: Vec<&str> = lines.into_iter().collect();
    report(&format!("  {what} {pod}: {}", lines.join("\n    ")));
}

/// The file's bytes and modification time, to show a rerun left it alone.
pub fn snapshot(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    (bytes, mtime)
}

//! Helpers shared by the integration tests: the rolecall binary, rendering one pod of a set,
//! and finding the programs a test needs (skipped with a message, or failed under
//! ROLECALL_CI=1, when they are missing).

#![allow(dead_code)] // each test crate uses its own part

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_rolecall");

/// Where a program is installed; for an absolute path, whether that file exists.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Servers live in sbin, which a non-login PATH may lack.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The programs of `programs` (name, Debian package) that are not installed, described.
pub fn missing(programs: &[(&str, &str)]) -> Vec<String> {
    programs
        .iter()
        .filter(|(program, _)| find_program(program).is_none())
        .map(|(program, package)| format!("`{program}` (Debian package {package})"))
        .collect()
}

/// Whether `test` can run, given what it lacks. When it cannot: under ROLECALL_CI=1 the test
/// fails, otherwise it says why on stderr (past the harness's capture) and is skipped.
pub fn can_run_without(test: &str, lacking: &[String]) -> bool {
    if lacking.is_empty() {
        return true;
    }
    let why = format!("{test} needs {}", lacking.join(", "));
    if std::env::var_os("ROLECALL_CI").is_some_and(|v| v == "1") {
        panic!("{why}; CI must provide it (see .ci/run)");
    }
    tell(&format!("SKIPPED {why}"));
    false
}

/// A scratch directory outside /tmp: simulated pods get a private /tmp, which would hide it.
/// Cargo's target tmp dir, unless the checkout itself lies under /tmp; then /var/tmp.
pub fn scratch() -> TempDir {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if target_tmp.starts_with("/tmp") {
        tempfile::Builder::new()
            .prefix("rolecall-test-")
            .tempdir_in("/var/tmp")
            .unwrap()
    } else {
        tempfile::tempdir_in(target_tmp).unwrap()
    }
}

/// One pod of a set: who it is and where its set lives.
pub struct PodSpec<'a> {
    pub role: &'a str,
    pub name: &'a str,
    pub ordinal: u32,
    pub replicas: u32,
    pub start: u32,
    pub namespace: &'a str,
    pub domain: &'a str,
}

impl PodSpec<'_> {
    pub fn hostname(&self) -> String {
        format!("{}-{}", self.name, self.ordinal)
    }

    pub fn fqdn_of(&self, ordinal: u32) -> String {
        format!(
            "{}-{ordinal}.{}.{}.svc.{}",
            self.name, self.name, self.namespace, self.domain
        )
    }

    pub fn fqdn(&self) -> String {
        self.fqdn_of(self.ordinal)
    }

    /// /etc/hosts for this pod: its own names are loopback, every peer an unreachable address.
    pub fn hosts(&self) -> String {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        hosts.push_str(&format!("127.0.0.1 {} {}\n", self.fqdn(), self.hostname()));
        for ordinal in self.start..self.start + self.replicas {
            if ordinal != self.ordinal {
                hosts.push_str(&format!(
                    "192.0.2.{} {}\n",
                    1 + ordinal % 250,
                    self.fqdn_of(ordinal)
                ));
            }
        }
        hosts
    }

    /// Renders this pod's files into `out` with the built-in role and `sets` vars.
    pub fn render(&self, out: &Path, sets: &[String]) {
        let mut args: Vec<String> = [
            "render",
            "--quiet",
            "--role",
            self.role,
            "--hostname",
            &self.hostname(),
            "--replicas",
            &self.replicas.to_string(),
            "--start-ordinal",
            &self.start.to_string(),
            "--namespace",
            self.namespace,
            "--cluster-domain",
            self.domain,
            "--out",
            &out.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for set in sets {
            args.push("--set".into());
            args.push(set.clone());
        }
        let output = Command::new(BIN).args(&args).env_clear().output().unwrap();
        assert!(
            output.status.success(),
            "rolecall {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Prints straight to stderr: the test harness swallows `eprintln!` of passing tests, and a skip
/// or a blessing must never pass unseen.
pub fn tell(message: &str) {
    let _ = std::io::stderr().write_all(format!("{message}\n").as_bytes());
}

/// The binary with none of the environment a pod (or the developer's shell) may have set:
/// nothing from the machine running the tests may stand in for a pod's settings.
pub fn rolecall() -> Command {
    let mut cmd = Command::new(BIN);
    without_pod_env(&mut cmd);
    cmd
}

/// Removes every `ROLECALL_*` and `POD_*` variable from `cmd`'s environment (for a command that
/// runs rolecall through another program, such as strace).
pub fn without_pod_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("ROLECALL_") || key.starts_with("POD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The timestamped directory `configmap` puts the keys in, as the kubelet names it.
pub const CONFIGMAP_STAMP: &str = "..2026_11_22_03_31_00.123456789";

/// Lays out `keys` the way the kubelet mounts a ConfigMap: a timestamped directory, `..data`
/// pointing at it, and one symlink per key through `..data`. Returns `dir`.
pub fn configmap<T: AsRef<[u8]>>(dir: &Path, keys: &[(&str, T)]) -> PathBuf {
    configmap_update(dir, CONFIGMAP_STAMP, keys);
    dir.to_path_buf()
}

/// Writes `keys` into the new snapshot `stamp` and swaps `..data` over to it, as the kubelet
/// updates a mounted ConfigMap; a key's symlink is made if it has none yet.
pub fn configmap_update<T: AsRef<[u8]>>(dir: &Path, stamp: &str, keys: &[(&str, T)]) {
    let data = dir.join(stamp);
    std::fs::create_dir_all(&data).unwrap();
    for (key, bytes) in keys {
        std::fs::write(data.join(key), bytes).unwrap();
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{key}"), link).unwrap();
        }
    }
    let _ = std::fs::remove_file(dir.join("..data"));
    std::os::unix::fs::symlink(stamp, dir.join("..data")).unwrap();
}

/// The names in a directory, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Whether a test that needs root (`for_what`: namespaces, mounts, chown) can run. Without root
/// it says why and is skipped; in CI, which runs as root, that is a failure.
pub fn require_root(test: &str, for_what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("ROLECALL_CI").is_none(),
        "{test}: needs root ({for_what}), and CI must run as root"
    );
    tell(&format!("SKIPPED {test}: needs root ({for_what})"));
    false
}

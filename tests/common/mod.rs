//! Helpers shared by the integration tests: the rolecall binary with a clean environment, the
//! command line that places one pod of a set, the one gate for tests that cannot run here
//! (skipped with a message, or failed under ROLECALL_CI=1), and the image's static binaries, one
//! per architecture (run through qemu-user when foreign to this machine).

#![allow(dead_code)] // each test crate uses its own part

pub mod apiserver;

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

/// Whether the tests run in CI (ROLECALL_CI=1, set by .ci/run), where nothing may be skipped.
pub fn ci() -> bool {
    std::env::var_os("ROLECALL_CI").is_some_and(|v| v == "1")
}

/// The one gate of a test that cannot run here, because of `why`: under CI a failure, otherwise
/// a skip said on stderr (past the harness's capture). Returns false, for `if !...`.
pub fn skip(test: &str, why: &str) -> bool {
    assert!(
        !ci(),
        "{test}: {why}; CI must provide it (see .ci/run), and ROLECALL_CI=1 allows no skip"
    );
    tell(&format!("SKIPPED {test}: {why}"));
    false
}

/// Whether `test` can run, given the programs it lacks (see `missing`).
pub fn can_run_without(test: &str, lacking: &[String]) -> bool {
    lacking.is_empty() || skip(test, &format!("needs {}", lacking.join(", ")))
}

/// Whether `test` can load YAML with PyYAML: python3 and its yaml module (see `can_run_without`).
pub fn can_load_yaml(test: &str) -> bool {
    let mut lacking = missing(&[("python3", "python3")]);
    if lacking.is_empty()
        && !Command::new("python3")
            .args(["-c", "import yaml"])
            .status()
            .is_ok_and(|s| s.success())
    {
        lacking.push("the Python module yaml (Debian package python3-yaml)".into());
    }
    can_run_without(test, &lacking)
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

    /// `rolecall COMMAND` with the flags that place this pod in its set, and `--set` for each
    /// of `sets`: the one command line the tests build for a pod.
    pub fn args(&self, command: &str, sets: &[impl AsRef<str>]) -> Vec<String> {
        let mut args = vec![command.to_string(), "--hostname".into(), self.hostname()];
        args.extend(self.set_args(sets));
        args
    }

    /// The flags that place the set, without the pod: role, size, start, namespace, domain and
    /// `--set` for each of `sets` (for `check` and `plan`, which take `--name` instead).
    pub fn set_args(&self, sets: &[impl AsRef<str>]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--role",
            self.role,
            "--replicas",
            &self.replicas.to_string(),
            "--start-ordinal",
            &self.start.to_string(),
            "--namespace",
            self.namespace,
            "--cluster-domain",
            self.domain,
        ]
        .map(str::to_string)
        .into();
        for set in sets {
            args.push("--set".into());
            args.push(set.as_ref().to_string());
        }
        args
    }

    /// Renders this pod's files into `out` with the built-in role and `sets` vars.
    pub fn render(&self, out: &Path, sets: &[impl AsRef<str>]) {
        let mut args = self.args("render", sets);
        args.extend(["--quiet".into(), "--out".into(), out.display().to_string()]);
        let output = rolecall_std().args(&args).output().unwrap();
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

/// The binary with none of the environment a pod (or the developer's shell) may have set, with
/// assert_cmd's assertions: nothing from the machine running the tests may stand in for a pod's
/// settings.
pub fn rolecall() -> assert_cmd::Command {
    assert_cmd::Command::from_std(rolecall_std())
}

/// `rolecall()` as a std Command, for tests that spawn it.
pub fn rolecall_std() -> Command {
    let mut cmd = Command::new(BIN);
    without_pod_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment every variable through which a pod tells rolecall who it
/// is (`ROLECALL_*`, `POD_*`, `NODE_NAME`) or where its API server is (`KUBERNETES_*`); also for
/// a command that runs rolecall through another program, such as strace. The one environment
/// cleaner of the tests.
pub fn without_pod_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if ["ROLECALL_", "POD_", "KUBERNETES_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
            || key == "NODE_NAME"
        {
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
    nix::unistd::geteuid().is_root() || skip(test, &format!("needs root ({for_what})"))
}

/// A rolecall program to run: the tested debug binary, or a static release binary run through
/// the qemu-user emulator when this machine has another architecture.
pub struct Program {
    argv: Vec<PathBuf>,
}

impl Program {
    /// The debug binary cargo built for these tests.
    pub fn tested() -> Program {
        Program {
            argv: vec![PathBuf::from(BIN)],
        }
    }

    /// A command that runs the program, with no pod environment (see `without_pod_env`); the
    /// caller adds rolecall's arguments.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        without_pod_env(&mut cmd);
        cmd
    }

    /// The built-in roles, as `rolecall roles` lists them (the first word of each line).
    pub fn builtin_roles(&self) -> Vec<String> {
        let out = self.command().arg("roles").output().unwrap();
        assert!(out.status.success(), "rolecall roles: {out:?}");
        let roles: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_string))
            .collect();
        assert!(!roles.is_empty(), "rolecall roles lists no role");
        roles
    }
}

/// One architecture of the image: its static musl release binary, built into target/static as
/// scripts/size.sh builds it, or taken from ROLECALL_STATIC_BIN_<ARCH> (X86_64, AARCH64).
pub struct StaticTarget {
    pub triple: &'static str,
    /// The ELF `e_machine` of its binaries.
    pub machine: u16,
}

pub const X86_64: StaticTarget = StaticTarget {
    triple: "x86_64-unknown-linux-musl",
    machine: 62,
};

pub const AARCH64: StaticTarget = StaticTarget {
    triple: "aarch64-unknown-linux-musl",
    machine: 183,
};

impl StaticTarget {
    pub fn arch(&self) -> &'static str {
        self.triple.split('-').next().unwrap_or(self.triple)
    }

    /// The binary named by ROLECALL_STATIC_BIN_<ARCH>, to test one built elsewhere.
    pub fn given_binary(&self) -> Option<PathBuf> {
        let var = format!("ROLECALL_STATIC_BIN_{}", self.arch().to_uppercase());
        std::env::var_os(var).map(PathBuf::from)
    }

    /// The qemu-user program that runs this target's binaries here, if this machine cannot run
    /// them itself: by name, for a test that copies it into a chroot. Called explicitly, as
    /// binfmt_misc may not be set up to run foreign binaries through it.
    pub fn emulator(&self) -> Option<String> {
        (self.arch() != std::env::consts::ARCH).then(|| format!("qemu-{}-static", self.arch()))
    }

    /// What this machine lacks to build and run the binary, for `can_run_without`.
    pub fn lacking(&self) -> Vec<String> {
        let mut lacking: Vec<String> = self.lacking_to_build().into_iter().collect();
        if let Some(emulator) = self.emulator() {
            lacking.extend(missing(&[(emulator.as_str(), "qemu-user-static")]));
        }
        lacking
    }

    /// Whether the Rust target is missing (unless the binary is given).
    pub fn lacking_to_build(&self) -> Option<String> {
        if self.given_binary().is_some() {
            return None;
        }
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let installed = sysroot.is_some_and(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(self.triple)
                .exists()
        });
        (!installed).then(|| {
            format!(
                "the {} Rust target (rustup target add {})",
                self.triple, self.triple
            )
        })
    }

    /// The static binary, built once per test process (a no-op after scripts/size.sh).
    pub fn binary(&self) -> PathBuf {
        if let Some(path) = self.given_binary() {
            return path;
        }
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        // Its own target dir: `cargo test` holds the lock of the default one while tests run.
        let target_dir = manifest_dir.join("target/static");
        let binary = target_dir.join(self.triple).join("release/rolecall");
        static BUILT: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !built.contains(&self.triple) {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(manifest_dir)
                .args(["build", "--release", "--locked", "--target", self.triple])
                .arg("--target-dir")
                .arg(&target_dir)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run cargo");
            assert!(
                status.success(),
                "building the {} binary failed",
                self.triple
            );
            built.push(self.triple);
        }
        binary
    }

    /// The static binary as a program, through its emulator when it needs one.
    pub fn program(&self) -> Program {
        let mut argv = Vec::new();
        if let Some(emulator) = self.emulator() {
            argv.push(find_program(&emulator).expect("the emulator, checked by `lacking`"));
        }
        argv.push(self.binary());
        Program { argv }
    }
}

/// The revision and target triple of a `--version` line, `rolecall VERSION (rev REV, TRIPLE)`
/// or `rolecall VERSION (TRIPLE)` when the build knew no revision; `None` for any other line.
pub fn version_parts(line: &str) -> Option<(Option<&str>, &str)> {
    let inner = line
        .strip_prefix(concat!("rolecall ", env!("CARGO_PKG_VERSION"), " ("))?
        .strip_suffix(")\n")?;
    match inner.split_once(", ") {
        Some((revision, triple)) => Some((Some(revision.strip_prefix("rev ")?), triple)),
        None => Some((None, inner)),
    }
}

//! The `FROM scratch` image, proven without Docker, on each of its architectures: the static
//! release binary for x86_64-unknown-linux-musl and for aarch64-unknown-linux-musl is checked to
//! be static, copied alone into an empty directory with a ConfigMap directory, an output directory
//! and the files the kubelet mounts into every container (/etc/hosts, /etc/resolv.conf), and run
//! there with `chroot` as uid:gid 65532:65532, as the image's `USER` line does. No shell, no libc,
//! no /etc beyond what is put there.
//!
//! A binary of another architecture than this machine's (the aarch64 one on x86_64) runs under
//! qemu-user: the static `qemu-aarch64-static` is copied into the root beside it and is the
//! program chroot starts, with the binary as its argument (binfmt_misc need not be set up).
//!
//! Each case runs once per architecture, as `x86_64::CASE` and `aarch64::CASE`. They need root
//! (chroot), the musl targets and, for the foreign one, qemu-user-static; without them they skip
//! with the reason, and with ROLECALL_CI=1 a skip is a failure. The binaries are built with
//! `cargo build --release --locked --target TRIPLE --target-dir target/static` (scripts/size.sh
//! builds the same ones first, so this is then a no-op), or taken from ROLECALL_STATIC_BIN_X86_64
//! and ROLECALL_STATIC_BIN_AARCH64.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{AARCH64, StaticTarget, X86_64};

/// The image's `USER`: the conventional nonroot uid and gid of distroless images.
const UID: u32 = 65532;
const GID: u32 = 65532;

const MASTER_CNF: &str = "# Apply this config only on the master.\n[mysqld]\nlog-bin\n";
const SLAVE_CNF: &str = "# Apply this config only on slaves.\n[mysqld]\nsuper-read-only\n";
/// What the kubelet writes into a pod of namespace `db` in a cluster whose domain is
/// `k8s.example`: rolecall must find the domain here, inside the empty root.
const RESOLV_CONF: &str = "search db.svc.k8s.example svc.k8s.example k8s.example\nnameserver 10.96.0.10\noptions ndots:5\n";
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                     10.244.1.7\tmysql-2.mysql.db.svc.k8s.example\tmysql-2\n";

/// Each case below is a function of its test name and architecture; this makes it a test per
/// architecture of the image, `ARCH::CASE`.
macro_rules! on_each_architecture {
    ([$($arch:ident => $target:path),*] $cases:tt) => {
        $(on_each_architecture!(@arch $arch $target $cases);)*
    };
    (@arch $arch:ident $target:path [$($case:ident),* $(,)?]) => {
        mod $arch {
            $(
                #[test]
                fn $case() {
                    super::$case(concat!(stringify!($arch), "::", stringify!($case)), &$target);
                }
            )*
        }
    };
}

on_each_architecture!([x86_64 => crate::X86_64, aarch64 => crate::AARCH64] [
    release_binary_is_static,
    version_names_the_target_in_an_empty_root,
    mysql_tutorial_job_renders_in_an_empty_root_as_nonroot,
    builtin_roles_and_shell_output_work_in_an_empty_root,
    bad_input_gets_its_exit_code_not_a_panic_in_an_empty_root,
    wait_resolves_the_leader_from_etc_hosts_in_an_empty_root,
]);

/// The static binary of one architecture and the emulator it needs on this machine, if any.
struct Image {
    binary: PathBuf,
    emulator: Option<PathBuf>,
}

/// The image of `target`, or `None` after saying why this test cannot run here. With
/// ROLECALL_CI=1 a skip is a failure.
fn runnable(test: &str, target: &StaticTarget) -> Option<Image> {
    let mut lacking = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        lacking.push("root (chroot)".to_string());
    }
    if chroot_program().is_none() {
        lacking.push("`chroot` (Debian package coreutils)".to_string());
    }
    lacking.extend(target.lacking());
    if !common::can_run_without(test, &lacking) {
        return None;
    }
    Some(Image {
        binary: target.binary(),
        emulator: target
            .emulator()
            .map(|name| common::find_program(&name).expect("checked by `lacking`")),
    })
}

/// coreutils' chroot, by full path: the child's environment, PATH included, is cleared.
fn chroot_program() -> Option<&'static Path> {
    ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()).into()
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Why an ELF file would need a dynamic loader: its PT_INTERP and DT_NEEDED entries.
fn dynamic_needs(elf: &[u8]) -> Vec<String> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "not a little-endian ELF file");
    let (phoff, phentsize, phnum) = (
        u64_at(elf, 0x20) as usize,
        u16_at(elf, 0x36),
        u16_at(elf, 0x38),
    );
    let mut needs = Vec::new();
    for i in 0..phnum {
        let ph = &elf[phoff + i * phentsize..];
        let kind = u32::from_le_bytes(ph[..4].try_into().unwrap());
        let (offset, size) = (u64_at(ph, 8) as usize, u64_at(ph, 32) as usize);
        match kind {
            // PT_INTERP: the path of the loader.
            3 => needs.push(format!(
                "PT_INTERP {}",
                String::from_utf8_lossy(&elf[offset..offset + size]).trim_end_matches('\0')
            )),
            // PT_DYNAMIC: a static-pie binary has one for its own relocations, but no DT_NEEDED.
            2 => {
                for entry in elf[offset..offset + size].chunks_exact(16) {
                    match u64_at(entry, 0) {
                        0 => break,
                        1 => needs.push(format!("DT_NEEDED (string {})", u64_at(entry, 8))),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    needs
}

/// An empty root holding only the binary, /etc/hosts, /etc/resolv.conf, a ConfigMap at /config
/// laid out as the kubelet mounts it, and an emptyDir at /out; and the emulator beside the binary
/// when it needs one here.
struct Root {
    dir: tempfile::TempDir,
    /// What chroot runs inside the root: `/rolecall`, or the emulator and `/rolecall`.
    program: Vec<String>,
}

impl Root {
    fn new(image: &Image, configmap: &[(&str, &str)]) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // tempdir makes the directory 0700; the root of an image is 0755.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        let install = |source: &Path, name: &str| {
            fs::copy(source, root.join(name)).unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o755)).unwrap();
            format!("/{name}")
        };
        let mut program = Vec::new();
        // qemu-user-static is itself static: alone in the root, it runs as the binary would.
        if let Some(emulator) = &image.emulator {
            program.push(install(
                emulator,
                emulator.file_name().unwrap().to_str().unwrap(),
            ));
        }
        program.push(install(&image.binary, "rolecall"));
        fs::create_dir(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), HOSTS).unwrap();
        fs::write(root.join("etc/resolv.conf"), RESOLV_CONF).unwrap();
        // A ConfigMap volume: keys are symlinks through `..data` to a timestamped directory.
        common::configmap(&root.join("config"), configmap);
        // An emptyDir: root-owned, world-writable.
        fs::create_dir(root.join("out")).unwrap();
        fs::set_permissions(root.join("out"), fs::Permissions::from_mode(0o777)).unwrap();
        Root { dir, program }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `/rolecall ARGS` inside the root as 65532:65532 with only `env` set, as a pod would.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let output = Command::new(chroot_program().unwrap())
            .arg(format!("--userspec={UID}:{GID}"))
            .arg(format!("--groups={GID}"))
            .arg(self.path())
            .args(&self.program)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        eprintln!(
            "rolecall {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn read(&self, path: &str) -> String {
        let path = self.path().join(path);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every path under the root with its owner, sorted.
    fn tree(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.push(format!("{name} {}:{}", meta.uid(), meta.gid()));
                if meta.is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }
}

/// The MySQL tutorial's ConfigMap and its init container's job, as a pod spec would pass it.
const MYSQL_ENV: [(&str, &str); 3] = [
    ("POD_NAME", "mysql-2"),
    ("POD_NAMESPACE", "db"),
    ("ROLECALL_REPLICAS", "3"),
];
const MYSQL_ARGS: [&str; 11] = [
    "render",
    "--config-dir",
    "/config",
    "--out",
    "/out",
    "--id-offset",
    "100",
    "--leader-file",
    "master.cnf",
    "--follower-file",
    "slave.cnf",
];

/// Static and built for its architecture: a binary of the wrong one would fail in a pod with
/// `exec format error`, and here could not run under the emulator of the right one.
fn release_binary_is_static(test: &str, target: &StaticTarget) {
    let lacking: Vec<String> = target.lacking_to_build().into_iter().collect();
    if !common::can_run_without(test, &lacking) {
        return;
    }
    let binary = target.binary();
    let elf = fs::read(&binary).unwrap();
    eprintln!("{}: {} bytes", binary.display(), elf.len());
    assert_eq!(
        dynamic_needs(&elf),
        Vec::<String>::new(),
        "{} needs a dynamic loader",
        binary.display()
    );
    // e_machine, in the header that dynamic_needs checked.
    assert_eq!(
        u16_at(&elf, 0x12),
        usize::from(target.machine),
        "{} is not a {} binary",
        binary.display(),
        target.triple
    );
}

/// `--version` names the binary's target, so that an issue report tells which binary ran, and
/// the revision the tested binary names: both were built from this tree.
fn version_names_the_target_in_an_empty_root(test: &str, target: &StaticTarget) {
    let Some(image) = runnable(test, target) else {
        return;
    };
    let root = Root::new(&image, &[]);
    let output = root.run(&[], &["--version"]);
    assert!(output.status.success());
    let line = String::from_utf8_lossy(&output.stdout);
    let (revision, triple) =
        common::version_parts(&line).unwrap_or_else(|| panic!("not a version line: {line:?}"));
    assert_eq!(triple, target.triple);

    let output = common::rolecall().arg("--version").output().unwrap();
    let tested = String::from_utf8_lossy(&output.stdout);
    let (tested_revision, _) = common::version_parts(&tested).unwrap();
    if target.given_binary().is_none() {
        assert_eq!(revision, tested_revision);
    }
}

fn mysql_tutorial_job_renders_in_an_empty_root_as_nonroot(test: &str, target: &StaticTarget) {
    let Some(image) = runnable(test, target) else {
        return;
    };
    let root = Root::new(
        &image,
        &[("master.cnf", MASTER_CNF), ("slave.cnf", SLAVE_CNF)],
    );
    let before = root.tree();

    let output = root.run(&MYSQL_ENV, &MYSQL_ARGS);
    assert!(output.status.success());
    assert_eq!(root.read("out/server-id.cnf"), "[mysqld]\nserver-id=102\n");
    assert_eq!(root.read("out/slave.cnf"), SLAVE_CNF);
    // The cluster domain comes from the root's /etc/resolv.conf.
    assert_eq!(
        root.read("out/peers"),
        "mysql-0.mysql.db.svc.k8s.example\nmysql-1.mysql.db.svc.k8s.example\n\
         mysql-2.mysql.db.svc.k8s.example\n"
    );
    let env = root.read("out/rolecall.env");
    for line in [
        "export ROLECALL_SERVER_ID=102\n",
        "export ROLECALL_ROLE=follower\n",
        "export ROLECALL_FQDN=mysql-2.mysql.db.svc.k8s.example\n",
        "export ROLECALL_LEADER=mysql-0.mysql.db.svc.k8s.example\n",
    ] {
        assert!(env.contains(line), "rolecall.env lacks {line:?}:\n{env}");
    }

    // Only the four files appeared, in /out, owned by the image's user; nothing else changed.
    let written = ["peers", "rolecall.env", "server-id.cnf", "slave.cnf"]
        .map(|name| format!("out/{name} {UID}:{GID}"));
    let mut expected = before.clone();
    expected.extend(written);
    expected.sort();
    assert_eq!(root.tree(), expected);
    for name in ["peers", "rolecall.env", "server-id.cnf", "slave.cnf"] {
        let mode = fs::metadata(root.path().join("out").join(name))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{name}");
    }

    // A restarted init container finds everything in place and changes nothing.
    let inode = fs::metadata(root.path().join("out/slave.cnf"))
        .unwrap()
        .ino();
    let output = root.run(&MYSQL_ENV, &MYSQL_ARGS);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("all unchanged"));
    assert_eq!(
        fs::metadata(root.path().join("out/slave.cnf"))
            .unwrap()
            .ino(),
        inode
    );
    assert_eq!(root.tree(), expected);
}

fn builtin_roles_and_shell_output_work_in_an_empty_root(test: &str, target: &StaticTarget) {
    let Some(image) = runnable(test, target) else {
        return;
    };
    let root = Root::new(&image, &[]);
    let env = [("POD_NAME", "zk-1"), ("POD_NAMESPACE", "db")];
    let output = root.run(
        &env,
        &[
            "render",
            "--role",
            "zookeeper",
            "--replicas",
            "3",
            "--out",
            "/out",
        ],
    );
    assert!(output.status.success());
    let zoo = root.read("out/zoo.cfg");
    for line in [
        "server.1=zk-0.zk.db.svc.k8s.example:2888:3888\n",
        "server.2=zk-1.zk.db.svc.k8s.example:2888:3888\n",
        "server.3=zk-2.zk.db.svc.k8s.example:2888:3888\n",
    ] {
        assert!(zoo.contains(line), "zoo.cfg lacks {line:?}:\n{zoo}");
    }
    assert_eq!(root.read("out/myid").trim(), "2");

    // The release binary renders what the tested debug binary renders.
    let reference = tempfile::tempdir().unwrap();
    let status = common::rolecall_std()
        .args(["render", "--role", "zookeeper", "--replicas", "3", "-q"])
        .args(["--hostname", "zk-1", "--namespace", "db"])
        .args(["--cluster-domain", "k8s.example", "--out"])
        .arg(reference.path())
        .status()
        .unwrap();
    assert!(status.success());
    for name in ["zoo.cfg", "myid", "peers", "rolecall.env"] {
        assert_eq!(
            root.read(&format!("out/{name}")),
            fs::read_to_string(reference.path().join(name)).unwrap(),
            "{name}"
        );
    }

    let output = root.run(&env, &["get", "role", "--role", "zookeeper"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "participant\n");
    let output = root.run(&env, &["env", "--role", "zookeeper", "--replicas", "3"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("export ROLECALL_SERVER_ID=2\n"), "{stdout}");
}

fn bad_input_gets_its_exit_code_not_a_panic_in_an_empty_root(test: &str, target: &StaticTarget) {
    let Some(image) = runnable(test, target) else {
        return;
    };
    let root = Root::new(
        &image,
        &[("master.cnf", MASTER_CNF), ("slave.cnf", SLAVE_CNF)],
    );
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    // The shipped binary has no Unicode tables: a Unicode class is a usage error that says so.
    let mut args = MYSQL_ARGS.to_vec();
    args.extend(["--ordinal-regex", r"^(?P<name>\p{L}+)-(?P<ordinal>[0-9]+)$"]);
    let output = root.run(&MYSQL_ENV, &args);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("is not supported"));
    assert!(stderr(&output).contains("ASCII"));
    // ASCII classes work.
    args.truncate(MYSQL_ARGS.len());
    args.extend([
        "--ordinal-regex",
        r"^(?P<name>\w+)-(?P<ordinal>\d+)$",
        "--dry-run",
    ]);
    let output = root.run(&MYSQL_ENV, &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("+server-id=102\n"));

    // The image's user cannot write outside its emptyDir: an output error, nothing written.
    let mut args = MYSQL_ARGS.to_vec();
    args[4] = "/config/out";
    let output = root.run(&MYSQL_ENV, &args);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("/config/out"),
        "{}",
        stderr(&output)
    );
    assert!(!root.path().join("config/out").exists());

    // A hostname without an ordinal: an identity error.
    let output = root.run(&[("POD_NAME", "mysql")], &MYSQL_ARGS);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        fs::read_dir(root.path().join("out"))
            .unwrap()
            .next()
            .is_none(),
        "a failed run wrote into /out"
    );
}

/// A DNS server on port 53 of a free loopback address that answers every query with NXDOMAIN.
/// Returns its address, for a `nameserver` line (which takes no port).
fn nxdomain_dns() -> String {
    let socket = (1..=250)
        .find_map(|n| std::net::UdpSocket::bind(format!("127.54.{n}.1:53")).ok())
        .expect("no free port 53 on 127.54.*.1");
    let addr = socket.local_addr().unwrap().ip().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if len < 12 {
                continue;
            }
            // The query back, flagged: response, recursion desired and available, NXDOMAIN.
            let mut reply = buf[..len].to_vec();
            reply[2..4].copy_from_slice(&[0x81, 0x83]);
            reply[6..12].fill(0);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

/// `rolecall wait` in the image: the static musl binary resolves the leader's FQDN from the pod's
/// /etc/hosts (the kubelet writes the headless-service names there only for the pod itself, so
/// here a test plants the leader's) and connects to it; a name in no hosts file and a refused port
/// are named in the timeout message.
fn wait_resolves_the_leader_from_etc_hosts_in_an_empty_root(test: &str, target: &StaticTarget) {
    let Some(image) = runnable(test, target) else {
        return;
    };
    let root = Root::new(&image, &[]);
    // chroot keeps the network namespace: a loopback listener is reachable from inside.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    fs::write(
        root.path().join("etc/hosts"),
        format!("{HOSTS}127.0.0.1\tmysql-0.mysql.db.svc.k8s.example\n"),
    )
    .unwrap();
    // The cluster DNS, standing in for kube-dns: it knows no name, so a name missing from
    // /etc/hosts gets its NXDOMAIN at once.
    fs::write(
        root.path().join("etc/resolv.conf"),
        format!(
            "search db.svc.k8s.example svc.k8s.example k8s.example\nnameserver {}\noptions ndots:5\n",
            nxdomain_dns()
        ),
    )
    .unwrap();
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    let leader = format!("leader:{port}");
    let output = root.run(&MYSQL_ENV, &["wait", "--for", &leader, "--timeout", "10s"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("mysql-0.mysql.db.svc.k8s.example:{port}")),
        "{}",
        stderr(&output)
    );
    // The wait connected to the listener: the connection is queued on it.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok(), "rolecall never connected");

    let refused_target = format!("leader:{refused}");
    let output = root.run(
        &MYSQL_ENV,
        &[
            "wait",
            "--for",
            &refused_target,
            "--for",
            "mysql-9.mysql.db.svc.k8s.example:3306",
            "--timeout",
            "0",
        ],
    );
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "mysql-0.mysql.db.svc.k8s.example:{refused}: connection refused"
        )),
        "{message}"
    );
    assert!(
        message.contains("mysql-9.mysql.db.svc.k8s.example:3306: no DNS record"),
        "{message}"
    );
}

/// The Dockerfile cannot be built here (no Docker engine): check that it builds an image for each
/// architecture the tests above run, cross-compiling on the build machine's own platform, that
/// each ships the static musl binary alone at /rolecall as 65532:65532, and that its build context
/// holds what its build stage copies.
#[test]
fn dockerfile_ships_what_these_tests_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    let (build, image) = dockerfile.rsplit_once("\nFROM ").unwrap();
    let build_lines: Vec<&str> = build
        .lines()
        .map(|l| l.trim_end_matches('\\').trim())
        .collect();

    // `docker buildx build --platform linux/amd64,linux/arm64`: the build stage runs once per
    // target platform, on the build machine's platform, so the compiler is never emulated.
    let from = build_lines.iter().find(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        from.starts_with("FROM --platform=$BUILDPLATFORM ") && from.ends_with(" AS build"),
        "the build stage must run on the build platform: {from}"
    );
    assert!(build_lines.contains(&"ARG TARGETARCH"));
    let config = fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    for (arch, target) in [("amd64", &X86_64), ("arm64", &AARCH64)] {
        let case = format!("{arch}) target={} ;;", target.triple);
        assert!(
            build_lines.contains(&case.as_str()),
            "linux/{arch} must build {}",
            target.triple
        );
        // Without its linker settings the cross build fails, or the binary is static-pie.
        assert!(
            config.contains(&format!("[target.{}]", target.triple)),
            ".cargo/config.toml does not configure {}",
            target.triple
        );
    }
    assert!(build_lines.contains(&"COPY .cargo ./.cargo"));
    // ring's C and assembly are compiled by clang for either target (.cargo/config.toml): the
    // build stage installs it.
    if config.contains("= \"clang\"") {
        assert!(
            build_lines.iter().any(|l| {
                l.contains("apt-get install") && l.split_whitespace().any(|w| w == "clang")
            }),
            "the build stage must install clang, which .cargo/config.toml names"
        );
    }
    for step in [
        r#"&& rustup target add "$target""#,
        r#"&& ROLECALL_REVISION="$REVISION" cargo build --release --locked --target "$target""#,
        r#"&& cp "target/$target/release/rolecall" /rolecall"#,
    ] {
        assert!(
            build_lines.contains(&step),
            "the build stage must build the tested static binary: {step}"
        );
    }
    // No .git in the build context: `--version` takes the revision from the build argument.
    assert!(build_lines.contains(&"ARG REVISION=unknown"));
    let image_lines: Vec<&str> = image.lines().collect();
    assert_eq!(image_lines[0], "scratch");
    let copies: Vec<_> = image_lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("COPY") || l.starts_with("ADD"))
        .collect();
    assert_eq!(copies, ["COPY --from=build /rolecall /rolecall"]);
    assert!(image_lines.contains(&format!("USER {UID}:{GID}").as_str()));
    assert!(image_lines.contains(&r#"ENTRYPOINT ["/rolecall"]"#));
    assert!(image_lines.contains(&format!("ARG VERSION={}", env!("CARGO_PKG_VERSION")).as_str()));

    let ignore = fs::read_to_string(dir.join(".dockerignore")).unwrap();
    for line in build.lines().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            let allowed = format!("!{}", source.trim_end_matches('/'));
            assert!(
                ignore.lines().any(|l| l.trim_end_matches('/') == allowed),
                ".dockerignore keeps {source} out of the build context"
            );
            assert!(dir.join(source).exists(), "{source} does not exist");
        }
    }
}

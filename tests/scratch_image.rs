//! The `FROM scratch` image, proven without Docker: the release binary for
//! x86_64-unknown-linux-musl is checked to be static, copied alone into an empty directory with a
//! ConfigMap directory, an output directory and the files the kubelet mounts into every container
//! (/etc/hosts, /etc/resolv.conf), and run there with `chroot` as uid:gid 65532:65532, as the
//! image's `USER` line does. No shell, no libc, no /etc beyond what is put there.
//!
//! Needs root (chroot) and the musl target; without them it skips with the reason, and with
//! ROLECALL_CI=1 a skip is a failure. The binary is built with
//! `cargo build --release --locked --target x86_64-unknown-linux-musl --target-dir target/static`
//! (scripts/size.sh builds the same one first, so this is then a no-op), or taken from
//! ROLECALL_STATIC_BIN.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const TARGET: &str = "x86_64-unknown-linux-musl";
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

/// The static binary, or `None` after saying why this test cannot run here. With ROLECALL_CI=1
/// a skip is a failure.
fn runnable(test: &str) -> Option<&'static Path> {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("needs root for chroot".to_string())
    } else if chroot_program().is_none() {
        Some("no chroot program (coreutils)".to_string())
    } else {
        static_binary().as_ref().err().cloned()
    };
    match why {
        None => Some(static_binary().as_ref().unwrap().as_path()),
        Some(why) => {
            assert!(
                std::env::var_os("ROLECALL_CI").is_none_or(|v| v != "1"),
                "{test}: cannot run ({why}), and ROLECALL_CI=1 allows no skip"
            );
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// coreutils' chroot, by full path: the child's environment, PATH included, is cleared.
fn chroot_program() -> Option<&'static Path> {
    ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
}

/// The static release binary, built once for all tests of this file.
fn static_binary() -> &'static Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("ROLECALL_STATIC_BIN") {
            return Ok(PathBuf::from(path));
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let sysroot = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| format!("cannot run rustc: {e}"))?;
        let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
        if !Path::new(&sysroot)
            .join("lib/rustlib")
            .join(TARGET)
            .exists()
        {
            return Err(format!(
                "the {TARGET} target is not installed (rustup target add {TARGET})"
            ));
        }
        // Its own target dir: `cargo test` holds the lock of the default one while tests run.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target_dir = manifest_dir.join("target/static");
        let status = Command::new(cargo)
            .current_dir(manifest_dir)
            .args(["build", "--release", "--locked", "--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        assert!(status.success(), "building the static binary failed");
        Ok(target_dir.join(TARGET).join("release/rolecall"))
    })
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
/// laid out as the kubelet mounts it, and an emptyDir at /out.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new(binary: &Path, configmap: &[(&str, &str)]) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // tempdir makes the directory 0700; the root of an image is 0755.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::copy(binary, root.join("rolecall")).unwrap();
        fs::set_permissions(root.join("rolecall"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), HOSTS).unwrap();
        fs::write(root.join("etc/resolv.conf"), RESOLV_CONF).unwrap();
        // A ConfigMap volume: keys are symlinks through `..data` to a timestamped directory.
        let config = root.join("config");
        let stamp = config.join("..2026_11_22_04_00_00.000000001");
        fs::create_dir_all(&stamp).unwrap();
        for (key, text) in configmap {
            fs::write(stamp.join(key), text).unwrap();
            symlink(format!("..data/{key}"), config.join(key)).unwrap();
        }
        symlink(stamp.file_name().unwrap(), config.join("..data")).unwrap();
        // An emptyDir: root-owned, world-writable.
        fs::create_dir(root.join("out")).unwrap();
        fs::set_permissions(root.join("out"), fs::Permissions::from_mode(0o777)).unwrap();
        Root { dir }
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
            .arg("/rolecall")
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

#[test]
fn release_binary_is_static() {
    let Some(binary) = runnable("release_binary_is_static") else {
        return;
    };
    let elf = fs::read(binary).unwrap();
    eprintln!("{}: {} bytes", binary.display(), elf.len());
    assert_eq!(
        dynamic_needs(&elf),
        Vec::<String>::new(),
        "{} needs a dynamic loader",
        binary.display()
    );
}

#[test]
fn mysql_tutorial_job_renders_in_an_empty_root_as_nonroot() {
    let Some(binary) = runnable("mysql_tutorial_job_renders_in_an_empty_root_as_nonroot") else {
        return;
    };
    let root = Root::new(
        binary,
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

#[test]
fn builtin_roles_and_shell_output_work_in_an_empty_root() {
    let Some(binary) = runnable("builtin_roles_and_shell_output_work_in_an_empty_root") else {
        return;
    };
    let root = Root::new(binary, &[]);
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
    let status = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(["render", "--role", "zookeeper", "--replicas", "3", "-q"])
        .args(["--hostname", "zk-1", "--namespace", "db"])
        .args(["--cluster-domain", "k8s.example", "--out"])
        .arg(reference.path())
        .env_remove("POD_NAME")
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

#[test]
fn bad_input_gets_its_exit_code_not_a_panic_in_an_empty_root() {
    let Some(binary) = runnable("bad_input_gets_its_exit_code_not_a_panic_in_an_empty_root") else {
        return;
    };
    let root = Root::new(
        binary,
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
#[test]
fn wait_resolves_the_leader_from_etc_hosts_in_an_empty_root() {
    let Some(binary) = runnable("wait_resolves_the_leader_from_etc_hosts_in_an_empty_root") else {
        return;
    };
    let root = Root::new(binary, &[]);
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

/// The Dockerfile cannot be built here (no Docker engine): check that it ships what the tests
/// above run, the static musl binary alone at /rolecall as 65532:65532, and that its build context
/// holds what its build stage copies.
#[test]
fn dockerfile_ships_what_these_tests_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    let (build, image) = dockerfile.rsplit_once("\nFROM ").unwrap();
    assert!(
        build.contains("cargo build --release --locked --target x86_64-unknown-linux-musl"),
        "the build stage must build the tested static binary"
    );
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

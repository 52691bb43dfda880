//! Hostile input, table-driven, through the real binary: every case has its exact exit code and
//! words its message must contain, runs within a time limit, and leaves --out unwritten. Then the
//! `--set` values that try to break out of shell quoting, round-tripped through every way a value
//! leaves rolecall.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{configmap, rolecall_std as rolecall};

/// No hostile input may take longer than this; a regex or template that runs away fails here.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Runs with a time limit; `None` when the process had to be killed.
fn run_limited(cmd: &mut Command) -> (Option<Output>, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rolecall runs");
    // Drain the pipes while waiting so a large message cannot block the child.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (out, err) = (drain(Box::new(stdout)), drain(Box::new(stderr)));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = Output {
                status,
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            };
            return (Some(output), start.elapsed());
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return (None, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One hostile input: what to run, the exact exit code, the words the message must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// role.toml text, written to `{tmp}/role/role.toml` with the templates `role_files`.
    role: Option<String>,
    role_files: Vec<(&'static str, String)>,
    /// ConfigMap keys, laid out as the kubelet mounts them at `{cm}`.
    keys: Vec<(&'static str, Vec<u8>)>,
    /// Anything else to plant before the run (`{tmp}` is its argument).
    setup: Option<fn(&Path)>,
    code: i32,
    says: Vec<String>,
}

fn case(name: &'static str, code: i32, says: &[&str], args: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        role: None,
        role_files: Vec::new(),
        keys: Vec::new(),
        setup: None,
        code,
        says: says.iter().map(|s| s.to_string()).collect(),
    }
}

impl Case {
    fn env(mut self, key: &'static str, value: &str) -> Case {
        self.env.push((key, value.to_string()));
        self
    }

    fn role(mut self, toml: &str) -> Case {
        self.role = Some(toml.to_string());
        self
    }

    fn role_file(mut self, name: &'static str, text: &str) -> Case {
        self.role_files.push((name, text.to_string()));
        self
    }

    fn key(mut self, name: &'static str, text: impl Into<Vec<u8>>) -> Case {
        self.keys.push((name, text.into()));
        self
    }

    fn setup(mut self, setup: fn(&Path)) -> Case {
        self.setup = Some(setup);
        self
    }
}

fn get_ordinal(hostname: &str) -> Vec<String> {
    ["get", "ordinal", "--hostname", hostname]
        .map(String::from)
        .to_vec()
}

fn host_case(name: &'static str, code: i32, says: &[&str], hostname: &str) -> Case {
    let mut c = case(name, code, says, &[]);
    c.args = get_ordinal(hostname);
    c
}

/// Ad-hoc render of the ConfigMap key `main.cfg` (add it with `.key("main.cfg", ...)`).
const RENDER_KEY: &[&str] = &[
    "render",
    "--hostname",
    "a-0",
    "--replicas",
    "1",
    "--leader-file",
    "main.cfg",
    "--no-id-file",
    "--config-dir",
    "{cm}",
    "--out",
    "{out}",
];

/// Render with the role file at `{tmp}/role/role.toml`.
const RENDER_ROLE: &[&str] = &[
    "render",
    "--hostname",
    "r-0",
    "--replicas",
    "1",
    "--role",
    "{tmp}/role/role.toml",
    "--out",
    "{out}",
];

const GOOD_ROLE: &str =
    "description = \"hostile\"\nfiles = [\"main.cfg\"]\n\n[[rules]]\nrole = \"member\"\n";

fn template_case(name: &'static str, says: &[&str], text: &str) -> Case {
    case(name, 4, says, RENDER_KEY).key("main.cfg", text)
}

fn role_case(name: &'static str, code: i32, says: &[&str], toml: &str) -> Case {
    case(name, code, says, RENDER_ROLE)
        .role(toml)
        .role_file("main.cfg", "ok\n")
}

fn cases() -> Vec<Case> {
    let long_name = format!("{}-1", "a".repeat(298));
    let label_64 = format!("{}-1", "a".repeat(62));
    let catastrophic_host = format!("{}!", "a".repeat(50_000));
    vec![
        // ---- hostnames
        host_case(
            "empty hostname",
            3,
            &["hostname is empty", "--hostname"],
            "",
        ),
        host_case(
            "hostname without digits",
            3,
            &["`web` has no ordinal suffix"],
            "web",
        ),
        host_case("hostname `-`", 3, &["`-` has no ordinal suffix"], "-"),
        host_case(
            "hostname ending in -",
            3,
            &["`web-` has no ordinal suffix"],
            "web-",
        ),
        case(
            "hostname `-1`",
            3,
            &["`-1` has no ordinal suffix"],
            &["get", "ordinal", "--hostname=-1"],
        ),
        host_case(
            "ordinal above int32",
            3,
            &["ordinal `2147483648` is larger than 2147483647"],
            "web-2147483648",
        ),
        host_case(
            "ordinal of 30 digits",
            3,
            &["is larger than 2147483647"],
            "web-999999999999999999999999999999",
        ),
        host_case(
            "ordinal with leading zero",
            3,
            &["`01` has a leading zero"],
            "web-01",
        ),
        host_case("ordinal 00", 3, &["leading zero"], "web-00"),
        host_case(
            "non-ASCII name",
            3,
            &["`wéb-1` is not a DNS label"],
            "wéb-1",
        ),
        host_case("non-ASCII digit", 3, &["no ordinal suffix"], "web-\u{0661}"),
        host_case("upper case", 3, &["`Web-1` is not a DNS label"], "Web-1"),
        host_case(
            "300 characters",
            3,
            &["is not a DNS label", "at most 63"],
            &long_name,
        ),
        host_case(
            "64-character pod name",
            3,
            &["is not a DNS label"],
            &label_64,
        ),
        host_case(
            "trailing newline",
            3,
            &["`web-1\\n` has no ordinal"],
            "web-1\n",
        ),
        host_case("newline inside", 3, &["`web\\n-1`"], "web\n-1"),
        host_case("escape sequence", 3, &["\\u{1b}[31m"], "\u{1b}[31mweb-1"),
        host_case(
            "trailing space",
            3,
            &["`web-1 ` has no ordinal suffix"],
            "web-1 ",
        ),
        host_case("underscore", 3, &["`web_1` has no ordinal suffix"], "web_1"),
        case(
            "POD_NAME without ordinal",
            3,
            &["`nginx` has no ordinal suffix"],
            &["get", "ordinal"],
        )
        .env("POD_NAME", "nginx"),
        case(
            "pod-index label disagrees",
            3,
            &["pod-index label says 3 but hostname `web-2` says ordinal 2"],
            &["get", "ordinal", "--hostname", "web-2", "--pod-index", "3"],
        ),
        case(
            "pod-index label negative",
            2,
            &["--pod-index"],
            &["get", "ordinal", "--hostname", "web-2", "--pod-index=-1"],
        ),
        // ---- replicas and start ordinal
        case(
            "replicas 0",
            2,
            &["--replicas", "0 is not in 1..=10000"],
            &["env", "--hostname", "web-0", "--replicas", "0"],
        ),
        case(
            "replicas negative",
            2,
            &["--replicas"],
            &["env", "--hostname", "web-0", "--replicas=-3"],
        ),
        case(
            "replicas above the maximum",
            2,
            &["10001 is not in 1..=10000"],
            &["env", "--hostname", "web-0", "--replicas", "10001"],
        ),
        case(
            "replicas absurdly large",
            2,
            &["--replicas", "too large"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "99999999999999999999999",
            ],
        ),
        case(
            "replicas not a number in env",
            2,
            &["--replicas", "'three'"],
            &["env", "--hostname", "web-0"],
        )
        .env("ROLECALL_REPLICAS", "three"),
        case(
            "api timeout not a duration",
            2,
            &["--api-timeout `soon` is not a duration"],
            &["get", "role", "--hostname", "web-0", "--from-api", "--api-timeout", "soon"],
        ),
        case(
            "from-api not a boolean",
            2,
            &["(from environment variable ROLECALL_FROM_API)"],
            &["get", "role", "--hostname", "web-0"],
        )
        .env("ROLECALL_FROM_API", "perhaps"),
        case(
            "from-api outside a pod",
            8,
            &["KUBERNETES_SERVICE_HOST is not set: --from-api reads the Kubernetes API from inside a pod"],
            &["get", "role", "--hostname", "web-0", "--from-api", "--namespace", "db"],
        ),
        case(
            "node name not a DNS name",
            2,
            &["node name `Node 1` (--node-name, NODE_NAME) is not a DNS name"],
            &["get", "role", "--hostname", "web-0"],
        )
        .env("NODE_NAME", "Node 1"),
        case(
            "labels file missing",
            3,
            &["cannot read the labels file /nonexistent/podinfo/labels"],
            &["get", "role", "--hostname", "web-0", "--labels-file", "/nonexistent/podinfo/labels"],
        ),
        case(
            "labels file zone with a quote",
            3,
            &["topology.kubernetes.io/zone is `a\\'b`, which is no Kubernetes label value"],
            &["get", "role", "--hostname", "web-0", "--labels-file", "{tmp}/labels"],
        )
        .setup(|tmp| fs::write(tmp.join("labels"), "topology.kubernetes.io/zone=\"a'b\"").unwrap()),
        case(
            "replicas missing",
            3,
            &["pass --replicas N, set ROLECALL_REPLICAS (spec.replicas), or read it from the \
               StatefulSet with --from-api"],
            &["env", "--hostname", "web-0"],
        ),
        case(
            "start ordinal above int32",
            2,
            &["--start-ordinal", "2147483648"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web-1",
                "--start-ordinal",
                "2147483648",
            ],
        ),
        case(
            "start ordinal plus replicas overflow",
            2,
            &["reaches ordinal 2147483648, beyond the largest Kubernetes ordinal"],
            &[
                "plan",
                "--name",
                "web",
                "--start-ordinal",
                "2147483647",
                "--replicas",
                "2",
            ],
        ),
        case(
            "start ordinal u32 max",
            2,
            &["--start-ordinal", "4294967295"],
            &[
                "plan",
                "--name",
                "web",
                "--start-ordinal",
                "4294967295",
                "--replicas",
                "1",
            ],
        ),
        case(
            "ordinal below start",
            3,
            &["ordinal 1 is below the start ordinal 5"],
            &[
                "get",
                "index",
                "--hostname",
                "web-1",
                "--start-ordinal",
                "5",
            ],
        ),
        case(
            "ordinal beyond the set",
            3,
            &["ordinal 9 is outside the set"],
            &["env", "--hostname", "web-9", "--replicas", "3"],
        ),
        case(
            "server id overflows u64",
            4,
            &["server id of ordinal 1", "outside the range"],
            &[
                "get",
                "server_id",
                "--hostname",
                "web-1",
                "--id-offset",
                "18446744073709551615",
            ],
        ),
        case(
            "set size the role cannot run",
            4,
            &["role zookeeper runs with 1..=255 replicas, not 256"],
            &[
                "plan",
                "--name",
                "zk",
                "--replicas",
                "256",
                "--role",
                "zookeeper",
            ],
        ),
        // ---- ordinal regex
        case(
            "regex without ordinal group",
            2,
            &["has no named group `ordinal`"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web-1",
                "--ordinal-regex",
                r"^(.+)-(\d+)$",
            ],
        ),
        case(
            "regex that does not compile",
            2,
            &["is not a valid regex"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web-1",
                "--ordinal-regex",
                "(?P<ordinal>[0-9",
            ],
        ),
        case(
            "regex too big to compile",
            2,
            &["is not a valid regex", "size limit"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web-1",
                "--ordinal-regex",
                r"(?P<ordinal>\d{1000}){1000}",
            ],
        ),
        Case {
            args: vec![
                "get".into(),
                "ordinal".into(),
                "--hostname".into(),
                catastrophic_host,
                "--ordinal-regex".into(),
                r"^(?P<name>(a+)+)-(?P<ordinal>[0-9]+)$".into(),
            ],
            ..case(
                "catastrophic regex on a 50000-character hostname",
                3,
                &["has no ordinal suffix"],
                &[],
            )
        },
        case(
            "regex whose ordinal is not digits",
            3,
            &["ordinal `x` is not a number"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web-x",
                "--ordinal-regex",
                r"^(?P<name>.+)-(?P<ordinal>.+)$",
            ],
        ),
        case(
            "regex whose ordinal group does not take part",
            3,
            &["the `ordinal` group", "did not take part"],
            &[
                "get",
                "ordinal",
                "--hostname",
                "web",
                "--ordinal-regex",
                r"^(?P<name>[a-z]+)(-(?P<ordinal>[0-9]+))?$",
            ],
        ),
        // ---- role files
        role_case(
            "role file that is not TOML",
            4,
            &["invalid role file", "role.toml"],
            "description = \"x\"\n[[rules]\nrole = ",
        ),
        role_case(
            "unknown top-level key",
            4,
            &["unknown field `purgeInteval`"],
            &format!("purgeInteval = 3\n{GOOD_ROLE}"),
        ),
        role_case(
            "unknown key in a rule",
            4,
            &["unknown field `rol`"],
            "description = \"x\"\nfiles = [\"main.cfg\"]\n[[rules]]\nrol = \"a\"\n",
        ),
        role_case(
            "unknown key in server_id",
            4,
            &["unknown field `ofset`"],
            &format!("{GOOD_ROLE}[server_id]\nofset = 1\n"),
        ),
        role_case(
            "unknown key in replicas",
            4,
            &["unknown field `warn_evn`"],
            &format!("{GOOD_ROLE}[replicas]\nwarn_evn = true\n"),
        ),
        role_case(
            "rules missing",
            4,
            &["missing field `rules`"],
            "description = \"x\"\nfiles = [\"main.cfg\"]\n",
        ),
        role_case(
            "rules empty",
            4,
            &["`rules` is empty"],
            "description = \"x\"\nrules = []\n",
        ),
        role_case(
            "duplicate key",
            4,
            &["duplicate key"],
            &format!("description = \"y\"\n{GOOD_ROLE}"),
        ),
        role_case(
            "port out of range",
            4,
            &["port"],
            &format!("port = 70000\n{GOOD_ROLE}"),
        ),
        role_case(
            "server id range inverted",
            4,
            &["server_id.min 10 is above server_id.max 5"],
            &format!("{GOOD_ROLE}[server_id]\nmin = 10\nmax = 5\n"),
        ),
        role_case(
            "server id range violated",
            4,
            &["outside the range 1..=2"],
            &format!("{GOOD_ROLE}[server_id]\noffset = 1\nmin = 1\nmax = 2\n"),
        )
        .args_replace("1", "3"),
        role_case(
            "replicas max above 10000",
            4,
            &["replicas.max 20000", "<= 10000"],
            &format!("{GOOD_ROLE}[replicas]\nmax = 20000\n"),
        ),
        role_case(
            "missing template",
            4,
            &["template `nope.cfg` not found"],
            "description = \"x\"\nfiles = [\"nope.cfg\"]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "file name escaping --out",
            4,
            &["`../x` contains `/`"],
            "description = \"x\"\nfiles = [\"../x\"]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "absolute file name",
            4,
            &["`/etc/passwd` contains `/`"],
            "description = \"x\"\nfiles = [\"/etc/passwd\"]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "file name with a newline",
            4,
            &["control characters"],
            "description = \"x\"\nfiles = [\"a\\nb\"]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "reserved file name",
            4,
            &["file `peers` is written by rolecall itself"],
            "description = \"x\"\nfiles = [\"peers\"]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "file mode too large",
            4,
            &["is not a file mode"],
            "description = \"x\"\nfiles = [{ name = \"main.cfg\", mode = 0o17777 }]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "rule role with a space",
            4,
            &["rule role `a b`"],
            "description = \"x\"\nfiles = [\"main.cfg\"]\n[[rules]]\nrole = \"a b\"\n",
        ),
        role_case(
            "rule bound by an undeclared var",
            4,
            &["refers to var `later`"],
            "description = \"x\"\nfiles = [\"main.cfg\"]\n[[rules]]\nrole = \"a\"\nfrom = \"later\"\n",
        ),
        role_case(
            "leader role of no rule",
            4,
            &["leader role `boss` is not the role of any rule"],
            &format!("leader = \"boss\"\n{GOOD_ROLE}"),
        ),
        role_case(
            "var of an unsupported type",
            4,
            &[
                "invalid role file",
                "list = [1, 2]",
                "a var default: a string",
            ],
            &format!("{GOOD_ROLE}[vars]\nlist = [1, 2]\n"),
        ),
        role_case(
            "unknown key in a file entry",
            4,
            &[
                "mod = 0o755",
                "{ name = \"NAME\", mode = 0o644 } (only these keys)",
            ],
            "description = \"x\"\nfiles = [{ name = \"main.cfg\", mod = 0o755 }]\n[[rules]]\nrole = \"a\"\n",
        ),
        role_case(
            "negative rule bound",
            4,
            &["from = -1", "a rule bound: a whole number from 0"],
            "description = \"x\"\nfiles = [\"main.cfg\"]\n[[rules]]\nrole = \"a\"\nfrom = -1\n",
        ),
        case(
            "role file missing",
            4,
            &["cannot read role file", "nope.toml"],
            &[
                "get",
                "role",
                "--hostname",
                "a-0",
                "--role",
                "{tmp}/nope.toml",
            ],
        ),
        case(
            "rule bound var set to a word",
            4,
            &["var `late` = `many` bounds a rule"],
            &[
                "plan",
                "--name",
                "zk",
                "--replicas",
                "3",
                "--role",
                "{tmp}/role/role.toml",
                "--set",
                "late=many",
            ],
        )
        .role("description = \"bound\"\n[[rules]]\nrole = \"late\"\nfrom = \"late\"\n[[rules]]\nrole = \"member\"\n[vars]\nlate = \"\"\n"),
        case(
            "a built-in role's rule bound set to a word",
            2,
            &["--set observers_from=`many`", "must match `^[0-9]+$`"],
            &[
                "plan",
                "--name",
                "zk",
                "--replicas",
                "3",
                "--role",
                "zookeeper",
                "--set",
                "observers_from=many",
            ],
        ),
        // ---- templates
        template_case(
            "template syntax error",
            &["template `main.cfg` cannot be used", "main.cfg:2:"],
            "a=1\nb={{ oops\n",
        )
        .setup(|_| ()),
        template_case(
            "undefined variable",
            &["main.cfg:1:", "`nope` is not defined"],
            "x={{ vars.nope }}\n",
        ),
        template_case(
            "include of a file outside the config dir",
            &["Unknown template `../secret`"],
            "{% include \"../secret\" %}",
        )
        .setup(|tmp| fs::write(tmp.join("secret"), "s3cret").unwrap()),
        template_case(
            "include of an absolute path",
            &["Unknown template `/etc/passwd`"],
            "{% include \"/etc/passwd\" %}",
        ),
        template_case(
            "include of itself",
            &["Circular include", "main.cfg"],
            "{% include \"main.cfg\" %}",
        ),
        template_case(
            "include of a key that is not a template",
            &[
                "template `main.cfg` cannot be used",
                "Unknown template `other.j2`",
                "note: ",
                "Unknown filter `tojson`",
            ],
            "{% include \"other.j2\" %}",
        )
        .key("other.j2", "{{ x | tojson }}"),
        template_case(
            "include cycle",
            &["template `main.cfg` cannot be used", "Circular include"],
            "{% include \"other.cfg\" %}",
        )
        .key("other.cfg", "{% include \"main.cfg\" %}"),
        template_case(
            "output larger than 16 MiB",
            &["main.cfg: output is larger than 16 MiB"],
            "{% for i in range(end=100000) %}{% for j in range(end=100000) %}0123456789{% endfor %}{% endfor %}",
        ),
        template_case(
            "range of a billion",
            &["would produce 1000000000 elements"],
            "{% for i in range(end=1000000000) %}x{% endfor %}",
        ),
        template_case(
            "range with step 0",
            &["`step_by` argument of 0"],
            "{% for i in range(end=10, step_by=0) %}x{% endfor %}",
        ),
        template_case("division by zero", &["Cannot divide by 0"], "{{ 1 / 0 }}"),
        template_case(
            "throw",
            &["main.cfg", "stop right there"],
            "{{ throw(message=\"stop right there\") }}",
        ),
        template_case(
            "get_env of an unset variable",
            &["environment variable `ROLECALL_TEST_UNSET_X` is not set"],
            "{{ get_env(name=\"ROLECALL_TEST_UNSET_X\") }}",
        ),
        template_case(
            "map over a missing attribute",
            &["map: item 0 has no attribute `nope`"],
            "{{ peers | map(attribute=\"nope\") | join(sep=\",\") }}",
        ),
        template_case("key that is not UTF-8", &["main.cfg is not UTF-8 text"], "")
            .setup(|tmp| fs::write(tmp.join("cm/..data/main.cfg"), b"\xff\xfe{{ x }}").unwrap()),
        case(
            "key larger than 16 MiB",
            4,
            &["config key", "main.cfg is larger than 16 MiB"],
            RENDER_KEY,
        )
        .key("main.cfg", vec![b'x'; (16 << 20) + 1]),
        // ---- ConfigMap keys and file names from flags
        case("key named ../x", 2, &["`../x` contains `/`"], RENDER_KEY)
            .key("main.cfg", "ok")
            .setup(|_| ())
            .args_replace("main.cfg", "../x"),
        case(
            "key given as an absolute path",
            2,
            &["contains `/`"],
            RENDER_KEY,
        )
        .key("main.cfg", "ok")
        .args_replace("main.cfg", "/etc/passwd"),
        case(
            "key name with a newline",
            2,
            &["`a\\nb`", "control characters"],
            RENDER_KEY,
        )
        .key("main.cfg", "ok")
        .args_replace("main.cfg", "a\nb"),
        case(
            "hidden key name",
            2,
            &["`.hidden` starts with `.`"],
            RENDER_KEY,
        )
        .key("main.cfg", "ok")
        .args_replace("main.cfg", ".hidden"),
        case(
            "key named peers",
            2,
            &["file `peers` is written by rolecall itself"],
            RENDER_KEY,
        )
        .key("main.cfg", "ok")
        .args_replace("main.cfg", "peers"),
        case(
            "key symlink pointing outside",
            4,
            &["config key", "main.cfg", "outside the config dir"],
            RENDER_KEY,
        )
        .key("other.cfg", "ok")
        .setup(|tmp| {
            fs::write(tmp.join("secret"), "s3cret").unwrap();
            // In the snapshot `..data` points at, where rolecall reads keys.
            symlink(tmp.join("secret"), tmp.join("cm/..data/main.cfg")).unwrap();
        }),
        case(
            "key symlink climbing out with ..",
            4,
            &["outside the config dir"],
            RENDER_KEY,
        )
        .key("other.cfg", "ok")
        .setup(|tmp| {
            fs::write(tmp.join("secret"), "s3cret").unwrap();
            symlink("../../secret", tmp.join("cm/..data/main.cfg")).unwrap();
        }),
        case(
            "..data pointing outside",
            4,
            &["..data does not point at a directory inside the config dir"],
            RENDER_KEY,
        )
        .setup(|tmp| {
            let cm = tmp.join("cm");
            fs::create_dir_all(tmp.join("elsewhere")).unwrap();
            fs::write(tmp.join("elsewhere/main.cfg"), "x").unwrap();
            fs::create_dir_all(&cm).unwrap();
            symlink(tmp.join("elsewhere"), cm.join("..data")).unwrap();
            symlink("..data/main.cfg", cm.join("main.cfg")).unwrap();
        }),
        case(
            "config dir missing",
            4,
            &["cannot open config dir", "no-cm"],
            RENDER_KEY,
        )
        .args_replace("{cm}", "{tmp}/no-cm"),
        // ---- --set
        case(
            "--set key starting with a digit",
            2,
            &["--set `1x`: KEY must be letters"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--set",
                "1x=y",
            ],
        ),
        case(
            "--set key with a dash",
            2,
            &["--set `a-b`: KEY"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--set",
                "a-b=1",
            ],
        ),
        case(
            "--set key with $(...)",
            2,
            &["KEY must be letters"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--set",
                "$(id)=1",
            ],
        ),
        case(
            "--set without =",
            2,
            &["needs the form KEY=VALUE"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--set",
                "novalue",
            ],
        ),
        case(
            "--set integer too large",
            2,
            &["`tick_time` is an integer"],
            &[
                "get",
                "role",
                "--hostname",
                "zk-0",
                "--role",
                "zookeeper",
                "--set",
                "tick_time=99999999999999999999",
            ],
        ),
        case(
            "--set keys differing only in case",
            2,
            &["vars `A` and `a` would both be exported as ROLECALL_VAR_A"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--set",
                "a=1",
                "--set",
                "A=2",
            ],
        ),
        role_case(
            "role vars differing only in case",
            4,
            &["vars `PORT_X` and `port_x` would both be exported as ROLECALL_VAR_PORT_X"],
            &format!("{GOOD_ROLE}[vars]\nport_x = 1\nPORT_X = 2\n"),
        ),
        // ---- output flags
        case(
            "--mode not octal",
            2,
            &["--mode `0999` is not an octal file mode"],
            &[
                "render",
                "--hostname",
                "a-0",
                "--replicas",
                "1",
                "--out",
                "{out}",
                "--mode",
                "0999",
            ],
        ),
        case(
            "--mode too large",
            2,
            &["--mode `17777`"],
            &[
                "render",
                "--hostname",
                "a-0",
                "--replicas",
                "1",
                "--out",
                "{out}",
                "--mode",
                "17777",
            ],
        ),
        case(
            "--owner by name",
            2,
            &["--owner `root:root` must be numeric UID:GID"],
            &[
                "render",
                "--hostname",
                "a-0",
                "--replicas",
                "1",
                "--out",
                "{out}",
                "--owner",
                "root:root",
            ],
        ),
        case(
            "--out empty",
            2,
            &["a value is required for '--out <DIR>'"],
            &[
                "render",
                "--hostname",
                "a-0",
                "--replicas",
                "1",
                "--out",
                "",
            ],
        ),
        // ---- names of the set and where it lives
        case(
            "--name with a slash",
            2,
            &["--name `a/b` is not a StatefulSet name"],
            &["plan", "--name", "a/b", "--replicas", "1"],
        ),
        case(
            "namespace with upper case",
            2,
            &["namespace `Prod` is not a DNS label"],
            &["env", "--hostname", "web-0", "--replicas", "1"],
        )
        .env("POD_NAMESPACE", "Prod"),
        case(
            "cluster domain with a space",
            2,
            &["cluster domain `cluster local` is not a DNS name"],
            &[
                "env",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--cluster-domain",
                "cluster local",
            ],
        ),
    ]
    .into_iter()
    .chain(round_two_cases())
    .collect()
}

/// Memory budgets, values from the environment, set names and owners, as cases.
fn round_two_cases() -> Vec<Case> {
    let huge = "{% set s = \"xxxxxxxxxxxxxxxx\" %}{% for i in range(end=40) %}\
                {% set_global s = s ~ s %}{% endfor %}{{ s|length }}";
    vec![
        template_case(
            "a short template that doubles a string 40 times",
            &["needs more memory than the budget", "budget 256 MiB", "--memory-limit"],
            huge,
        ),
        template_case(
            "the same under a smaller budget",
            &["budget 32 MiB", "ROLECALL_MEMORY_LIMIT"],
            huge,
        )
        .env("ROLECALL_MEMORY_LIMIT", "32Mi"),
        case(
            "a memory budget that is no size",
            2,
            &["--memory-limit `64mb` has an unknown unit `mb`"],
            &["get", "role", "--hostname", "web-0", "--memory-limit", "64mb"],
        ),
        case(
            "replicas from the environment that are no number",
            2,
            &["rolecall: invalid value 'abc' for '--replicas <N>' (from environment variable ROLECALL_REPLICAS)"],
            &["get", "role", "--hostname", "web-0"],
        )
        .env("ROLECALL_REPLICAS", "abc"),
        case(
            "a start ordinal from the environment out of range",
            2,
            &["rolecall: invalid value '-1'", "ROLECALL_START_ORDINAL"],
            &["get", "role", "--hostname", "web-0"],
        )
        .env("ROLECALL_START_ORDINAL", "-1"),
        case(
            "a boolean variable that is no boolean",
            2,
            &["rolecall: invalid value 'maybe'", "ROLECALL_NO_SYNC"],
            &["render", "--hostname", "web-0", "--replicas", "1", "--out", "{out}"],
        )
        .env("ROLECALL_NO_SYNC", "maybe"),
        host_case(
            "a hostname whose set name ends in a dash",
            3,
            &["set name `web-` is not a DNS label"],
            "web--1",
        ),
        // Past the budget outside the templates (a 12 MB role file parsed under 16 MiB).
        case(
            "a role file too big for the memory budget",
            1,
            &["rolecall needs more memory than the budget", "budget 16 MiB", "--memory-limit"],
            &["get", "role", "--hostname", "web-0", "--role", "{tmp}/role/role.toml", "--memory-limit", "16Mi"],
        )
        .role(&format!(
            "description = \"big\"\n[[rules]]\nrole = \"member\"\n[vars]\nbig = \"{}\"\n",
            "x".repeat(12_000_000)
        )),
        case(
            "a memory budget below the smallest",
            2,
            &["--memory-limit `15Mi` is below the smallest budget, 16 MiB"],
            &["get", "role", "--hostname", "web-0", "--memory-limit", "15Mi"],
        ),
        case(
            "zookeeper with every server an observer",
            4,
            &["var observers_from is `0`", "none could vote"],
            &["render", "--role", "zookeeper", "--hostname", "zk-0", "--replicas", "3", "--set", "observers_from=0", "--out", "{out}"],
        ),
        case(
            "raft with every member a listener",
            4,
            &["var listeners_from is `0`", "none could vote"],
            &["render", "--role", "raft", "--hostname", "r-0", "--replicas", "3", "--set", "listeners_from=0", "--out", "{out}"],
        ),
        // The cassandra image's entrypoint writes cluster_name, dc and rack into cassandra.yaml
        // unquoted: a value YAML reads as anything but a plain string is refused.
        case(
            "a cassandra cluster name that YAML reads as a list",
            4,
            &["`[a, b]` (var cluster_name, dc or rack) has `[`", "as a plain string"],
            &["render", "--role", "cassandra", "--hostname", "c-0", "--replicas", "3", "--set", "cluster_name=[a, b]", "--out", "{out}"],
        ),
        case(
            "a cassandra data center that YAML reads as a tag",
            4,
            &["`!!int 5` (var cluster_name, dc or rack) has `!`"],
            &["render", "--role", "cassandra", "--hostname", "c-0", "--replicas", "3", "--set", "dc=!!int 5", "--out", "{out}"],
        ),
        case(
            "a cassandra rack that YAML reads as an alias",
            4,
            &["`*x` (var cluster_name, dc or rack) has `*`"],
            &["render", "--role", "cassandra", "--hostname", "c-0", "--replicas", "3", "--set", "rack=*x", "--out", "{out}"],
        ),
        case(
            "a cassandra cluster name that starts a YAML sequence",
            4,
            &["has `-` first"],
            &["render", "--role", "cassandra", "--hostname", "c-0", "--replicas", "3", "--set", "cluster_name=- x", "--out", "{out}"],
        ),
        case(
            "a cassandra cluster name that YAML reads as null",
            4,
            &["`Null` (var cluster_name, dc or rack) is a word YAML reads as null"],
            &["render", "--role", "cassandra", "--hostname", "c-0", "--replicas", "3", "--set", "cluster_name=Null", "--out", "{out}"],
        ),
        case(
            "uid 4294967295, which chown reads as leave-as-is",
            2,
            &["--owner `4294967295:0`", "no user or group"],
            &["render", "--hostname", "web-0", "--replicas", "1", "--owner", "4294967295:0", "--out", "{out}"],
        ),
    ]
}

impl Case {
    /// Replaces one argument of the case (e.g. the key a render asks for).
    fn args_replace(mut self, from: &str, to: &str) -> Case {
        for arg in &mut self.args {
            if arg == from {
                *arg = to.to_string();
            }
        }
        self
    }
}

#[test]
fn hostile_inputs_get_their_exit_code_and_a_message_naming_the_problem() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, "");
    for c in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        if let Some(toml) = &c.role {
            let dir = root.join("role");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("role.toml"), toml).unwrap();
            for (name, text) in &c.role_files {
                fs::write(dir.join(name), text).unwrap();
            }
        }
        if !c.keys.is_empty() {
            configmap(&root.join("cm"), &c.keys);
        }
        if let Some(setup) = c.setup {
            setup(root);
        }
        let subst = |a: &String| {
            a.replace("{tmp}", &root.display().to_string())
                .replace("{cm}", &root.join("cm").display().to_string())
                .replace("{out}", &root.join("out").display().to_string())
        };
        let mut cmd = rolecall();
        cmd.args(c.args.iter().map(subst));
        for (key, value) in &c.env {
            cmd.env(key, value);
        }
        let (output, elapsed) = run_limited(&mut cmd);
        if c.name.starts_with("catastrophic") {
            // A backtracking engine would need about 2^50000 steps; Rust's regex is linear.
            eprintln!("{}: answered in {elapsed:?}", c.name);
        }
        if elapsed > slowest.0 {
            slowest = (elapsed, c.name);
        }
        let Some(output) = output else {
            failures.push(format!("{}: still running after {TIME_LIMIT:?}", c.name));
            continue;
        };
        let err = String::from_utf8_lossy(&output.stderr);
        let mut wrong = Vec::new();
        if output.status.code() != Some(c.code) {
            wrong.push(format!("exit {:?}, want {}", output.status, c.code));
        }
        for s in &c.says {
            if !err.contains(s.as_str()) {
                wrong.push(format!("message lacks {s:?}"));
            }
        }
        if err.contains("panicked") {
            wrong.push("panicked".into());
        }
        if root.join("out").exists() {
            wrong.push("--out was written".into());
        }
        if !wrong.is_empty() {
            let shown: String = err.chars().take(600).collect();
            failures.push(format!(
                "{}: {}\n    stderr: {shown}",
                c.name,
                wrong.join("; ")
            ));
        }
    }
    eprintln!(
        "{} hostile cases; slowest {:?} ({})",
        cases.len(),
        slowest.0,
        slowest.1
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Unused ConfigMap keys with hostile names, or that are broken templates (bad syntax, a filter
/// tera lacks, an include of a missing key, include cycles, a missing parent), are not rendered
/// and do not disturb a render: a ConfigMap may hold files for other programs.
#[test]
fn unused_hostile_or_broken_keys_do_not_disturb_a_render() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = tmp.path().join("cm");
    configmap(
        &cm,
        &[
            ("main.cfg", b"ok\n".to_vec()),
            ("a\nb", b"newline\n".to_vec()),
            ("$(touch pwned)", b"x\n".to_vec()),
            ("-rf", b"x\n".to_vec()),
            ("syntax.sh", b"echo ${#array[@]}\n".to_vec()),
            ("jinja.j2", b"{{ settings | tojson }}\n".to_vec()),
            ("includes-missing", b"{% include \"nope\" %}".to_vec()),
            (
                "includes-itself",
                b"{% include \"includes-itself\" %}".to_vec(),
            ),
            ("cycle-a", b"{% include \"cycle-b\" %}".to_vec()),
            ("cycle-b", b"{% include \"cycle-a\" %}".to_vec()),
            ("orphan", b"{% extends \"nope\" %}".to_vec()),
        ],
    );
    let out = tmp.path().join("out");
    let (result, _) = run_limited(
        rolecall()
            .args(RENDER_KEY.iter().map(|a| {
                a.replace("{cm}", &cm.display().to_string())
                    .replace("{out}", &out.display().to_string())
            }))
            .current_dir(tmp.path()),
    );
    let result = result.unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        common::names_in(&out),
        ["main.cfg", "peers", "rolecall.env"]
    );
    assert!(!tmp.path().join("pwned").exists());
}

/// Values that try to escape shell quoting, beyond the basic ones of tests/cli.rs, through every
/// way a value leaves rolecall: `eval "$(rolecall env)"` in sh and bash, a sourced rolecall.env
/// written by render, `rolecall get vars.KEY`, and a template. Unchanged everywhere; nothing runs.
#[test]
fn set_values_round_trip_through_eval_env_file_get_and_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("pwned");
    let m = marker.display().to_string();
    let hostile: Vec<String> = vec![
        "'".into(),
        "''".into(),
        "'\\''".into(),
        format!("'\"'\"'$(touch {m})"),
        "ends with a backslash\\".into(),
        "\\".into(),
        format!("\n$(touch {m})\n"),
        format!("$(touch {m}"),
        format!("${{IFS}}touch${{IFS}}{m}"),
        format!("x; touch {m}"),
        format!("x && touch {m}"),
        format!("x | touch {m}"),
        format!("> {m}"),
        format!("`touch {m}`\n`touch {m}`"),
        "tab\there, cr\rthere, crlf\r\n".into(),
        "\u{1b}[31mred\u{1b}[0m and a bell \u{7}".into(),
        "unicode: ünïcödé 日本 🦀 \u{202e}rtl".into(),
        "-n".into(),
        "-e \\n".into(),
        "*".into(),
        "~".into(),
        "!!".into(),
        "#not a comment".into(),
        "a=b c=d".into(),
        "export ROLECALL_ROLE=primary".into(),
        "$0 $1 $@ $* $# $? $$ $!".into(),
        "%s %n %%".into(),
        "{{ hostname }} {% raw %}".into(),
        " leading and trailing spaces ".into(),
        "x".repeat(100_000),
    ];
    let sets: Vec<String> = hostile
        .iter()
        .enumerate()
        .flat_map(|(i, v)| ["--set".to_string(), format!("v{i}={v}")])
        .collect();

    // `eval "$(rolecall env)"`, the documented use, in POSIX sh and bash.
    let env = rolecall()
        .args(["env", "--hostname", "web-0", "--replicas", "1"])
        .args(&sets)
        .output()
        .unwrap();
    assert!(env.status.success());
    let env = String::from_utf8(env.stdout).unwrap();
    for shell in ["sh", "bash"] {
        for (i, value) in hostile.iter().enumerate() {
            let out = Command::new(shell)
                .args([
                    "-euc",
                    &format!(r#"eval "$1"; printf '%s' "$ROLECALL_VAR_V{i}""#),
                    shell,
                    &env,
                ])
                .current_dir(tmp.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{shell} value {i}: {out:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                *value,
                "{shell}: value {i} did not round-trip"
            );
        }
    }

    // A template printing every value, and the rolecall.env render writes beside it.
    let cm = tmp.path().join("cm");
    let template: String = (0..hostile.len())
        .map(|i| format!("{{{{ vars.v{i} }}}}\u{0}"))
        .collect();
    configmap(&cm, &[("all.cfg", template.into_bytes())]);
    let out = tmp.path().join("out");
    let render = rolecall()
        .args([
            "render",
            "--hostname",
            "web-0",
            "--replicas",
            "1",
            "--no-id-file",
            "--leader-file",
            "all.cfg",
            "--config-dir",
        ])
        .arg(&cm)
        .arg("--out")
        .arg(&out)
        .args(&sets)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let rendered = fs::read_to_string(out.join("all.cfg")).unwrap();
    let parts: Vec<&str> = rendered.split('\u{0}').collect();
    for (i, value) in hostile.iter().enumerate() {
        assert_eq!(parts[i], value, "template: value {i} changed");
    }
    assert_eq!(fs::read_to_string(out.join("rolecall.env")).unwrap(), env);
    for (i, value) in hostile.iter().enumerate() {
        let sourced = Command::new("sh")
            .args([
                "-euc",
                &format!(r#". "$1"; printf '%s' "$ROLECALL_VAR_V{i}""#),
                "sh",
            ])
            .arg(out.join("rolecall.env"))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(sourced.stdout).unwrap(),
            *value,
            "sourced rolecall.env: value {i}"
        );
        let got = rolecall()
            .args(["get", &format!("vars.v{i}"), "--hostname", "web-0"])
            .args(&sets)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(got.stdout).unwrap(),
            format!("{value}\n"),
            "get vars.v{i}"
        );
    }
    assert!(!marker.exists(), "a value was executed");
}

// ---------------------------------------------------------------------------------------------
// Beyond the table: stderr, boolean spellings, naming schemes, wait, many keys, string vars

/// A full or closed stderr loses the message, never the outcome: the exit code stands and the
/// files are written.
#[test]
fn a_full_or_closed_stderr_keeps_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let render = |stderr: Stdio| {
        rolecall()
            .args(["render", "--hostname", "web-0", "--replicas", "1", "--out"])
            .arg(&out)
            .stderr(stderr)
            .status()
            .unwrap()
    };
    assert_eq!(render(full().into()).code(), Some(0));
    assert!(out.join("peers").is_file() && out.join("rolecall.env").is_file());
    let failing = |stderr: Stdio| {
        rolecall()
            .args(["get", "role", "--hostname", "web-x"])
            .stderr(stderr)
            .status()
            .unwrap()
    };
    assert_eq!(failing(full().into()).code(), Some(3));
    // A pipe whose reader is gone: the write fails with EPIPE (SIGPIPE is ignored).
    let closed = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        writer
    };
    assert_eq!(failing(closed().into()).code(), Some(3));
    fs::remove_dir_all(&out).unwrap();
    assert_eq!(render(closed().into()).code(), Some(0));
    assert!(out.join("peers").is_file());
    // A warning and a usage error alike.
    let status = rolecall()
        .args(["get", "role", "--hostname", "web-0", "--replicas", "zero"])
        .stderr(full())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

/// Every boolean environment variable takes the usual spellings, each meaning what it says:
/// ROLECALL_FROM_API, when true, asks for the API, which outside a pod is an error (exit 8);
/// ROLECALL_NO_SYNC takes the same spellings.
#[test]
fn boolean_variables_take_the_usual_spellings() {
    for (value, on) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("false", false),
        ("no", false),
        ("off", false),
    ] {
        let output = rolecall()
            .args(["get", "role", "--hostname", "web-0"])
            .env("ROLECALL_FROM_API", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(if on { 8 } else { 0 }),
            "ROLECALL_FROM_API={value}: {stderr}"
        );
        assert_eq!(
            stderr.contains("KUBERNETES_SERVICE_HOST is not set"),
            on,
            "ROLECALL_FROM_API={value}: {stderr}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let output = rolecall()
            .args([
                "render",
                "--hostname",
                "web-0",
                "--replicas",
                "1",
                "--dry-run",
                "--out",
            ])
            .arg(tmp.path())
            .env("ROLECALL_NO_SYNC", value)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ROLECALL_NO_SYNC={value}: {output:?}"
        );
    }
}

/// A POD_NAME that is not UTF-8 is an error, not a silent fall back to the kernel hostname.
#[test]
fn a_pod_name_that_is_not_utf8_is_an_error() {
    use std::os::unix::ffi::OsStrExt as _;
    let output = rolecall()
        .args(["get", "hostname"])
        .env("POD_NAME", std::ffi::OsStr::from_bytes(b"web-\xff1"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("POD_NAME") && stderr.contains("not UTF-8"),
        "{stderr}"
    );
}

/// With another naming scheme, the pod name is the hostname and the peers are named alike:
/// never rebuilt as NAME-ORDINAL.
#[test]
fn another_naming_scheme_names_this_pod_and_its_peers_like_the_hostname() {
    let output = rolecall()
        .args([
            "env",
            "--hostname",
            "web1",
            "--replicas",
            "3",
            "--port",
            "80",
        ])
        .args(["--ordinal-regex", "^(?P<name>[a-z]+)(?P<ordinal>[0-9]+)$"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let env = String::from_utf8(output.stdout).unwrap();
    assert!(env.contains("export ROLECALL_HOSTNAME=web1\n"), "{env}");
    assert!(
        env.contains("export ROLECALL_FQDN=web1.web.default.svc.cluster.local\n"),
        "{env}"
    );
    assert!(
        env.contains("export ROLECALL_PEERS='web0.web.default.svc.cluster.local:80,web1.web.default.svc.cluster.local:80,web2.web.default.svc.cluster.local:80'\n"),
        "{env}"
    );
}

/// A loopback port that takes no more connections and gives no answer: its listener's accept
/// queue is full, so a connect waits (the kernel drops the SYN). Keep the returned values alive.
fn silent_port() -> (std::net::TcpListener, Vec<std::net::TcpStream>, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(stream);
        assert!(queued.len() < 10_000, "the accept queue never filled");
    }
    (listener, queued, addr.port())
}

/// `--timeout 0` checks once, however long the interval: a silent peer does not hold it for the
/// interval (15 s here).
#[test]
fn wait_with_timeout_0_checks_once_and_returns() {
    let (_listener, _queued, port) = silent_port();
    let target = format!("127.0.0.1:{port}");
    let (output, elapsed) = run_limited(rolecall().args([
        "wait",
        "--for",
        &target,
        "--timeout",
        "0",
        "--interval",
        "15s",
    ]));
    let output = output.expect("answered within the time limit");
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// Two unused keys that define the same component, thousands of unused keys, thousands of unused
/// include cycles: none is loaded, none slows or breaks the render. (Each key used to be checked
/// against every key before it: 10,000 empty keys took over 120 s, 3,000 cycles 64 s.)
#[test]
fn unused_keys_cost_nothing_however_many() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = tmp.path().join("cm");
    let mut keys: Vec<(String, Vec<u8>)> = vec![
        ("main.cfg".into(), b"ok\n".to_vec()),
        (
            "comp-a".into(),
            b"{% component box() %}a{% endcomponent %}".to_vec(),
        ),
        (
            "comp-b".into(),
            b"{% component box() %}b{% endcomponent %}".to_vec(),
        ),
    ];
    for i in 0..10_000 {
        keys.push((format!("unused-{i:05}"), Vec::new()));
    }
    for i in 0..3_000 {
        keys.push((
            format!("cycle-{i}-a"),
            format!("{{% include \"cycle-{i}-b\" %}}").into_bytes(),
        ));
        keys.push((
            format!("cycle-{i}-b"),
            format!("{{% include \"cycle-{i}-a\" %}}").into_bytes(),
        ));
    }
    let keys: Vec<(&str, Vec<u8>)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    configmap(&cm, &keys);
    let out = tmp.path().join("out");
    let (result, elapsed) = run_limited(rolecall().args(RENDER_KEY.iter().map(|a| {
        a.replace("{cm}", &cm.display().to_string())
            .replace("{out}", &out.display().to_string())
    })));
    let result = result.expect("rendered within the time limit");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    eprintln!("16,003 unused keys: rendered in {elapsed:?}");
    assert_eq!(fs::read_to_string(out.join("main.cfg")).unwrap(), "ok\n");
}

/// How a rendered file is read by the program that consumes it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Yaml,
    Json,
    /// Sourced by a shell (`. file`): variables only.
    Sourced,
    /// Run by a shell.
    Script,
    /// Key-value lines (`.conf`, `.cnf`, `.cfg`, `.properties`, `myid`, `peers`).
    Lines,
}

fn format_of(file: &str) -> Format {
    match file {
        "etcd.conf.yml" | "elasticsearch.yml" | "mongod.conf" => Format::Yaml,
        _ if file.ends_with(".json") => Format::Json,
        _ if file.ends_with(".env") => Format::Sourced,
        _ if file.ends_with(".sh") => Format::Script,
        _ => Format::Lines,
    }
}

/// The string vars a built-in role declares, from its role.toml.
fn string_vars(role: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("roles/{role}/role.toml"));
    let spec: toml::Table = toml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let Some(vars) = spec.get("vars").and_then(|v| v.as_table()) else {
        return Vec::new();
    };
    vars.iter()
        .filter(|(_, decl)| decl.is_str() || decl.get("default").is_some_and(toml::Value::is_str))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Renders every pod of a 6-pod set of `role` with `--set var=value` into `dir`; the exit code
/// and stderr of `check` when the set is refused.
fn render_set(role: &str, var: &str, value: &str, dir: &Path) -> Result<(), (i32, String)> {
    let set = format!("{var}={value}");
    let check = rolecall()
        .args([
            "check",
            "--role",
            role,
            "--name",
            role,
            "--replicas",
            "6",
            "--set",
            &set,
        ])
        .output()
        .unwrap();
    if !check.status.success() {
        return Err((
            check.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&check.stderr).into_owned(),
        ));
    }
    for ordinal in 0..6 {
        let out = dir.join(ordinal.to_string());
        let output = rolecall()
            .args([
                "render",
                "-q",
                "--role",
                role,
                "--replicas",
                "6",
                "--set",
                &set,
            ])
            .args(["--hostname", &format!("{role}-{ordinal}"), "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{role} {set}: check passed, render failed: {output:?}"
        );
    }
    Ok(())
}

/// What a rendered file is, for the consumer: its structure (keys, variables), and whether
/// running it left a trace. Errors say why the file does not even parse.
fn structure(file: &Path) -> Result<String, String> {
    let name = file.file_name().unwrap().to_str().unwrap();
    let run_in = file.parent().unwrap();
    match format_of(name) {
        format @ (Format::Yaml | Format::Json | Format::Lines) => {
            let kind = match format {
                Format::Yaml => "yaml",
                Format::Json => "json",
                _ => "lines",
            };
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fingerprint.py");
            let out = Command::new("python3")
                .arg(script)
                .arg(format!("{kind}:{}", file.display()))
                .output()
                .unwrap();
            if out.status.success() {
                Ok(String::from_utf8(out.stdout).unwrap())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
        format @ (Format::Sourced | Format::Script) => {
            // Every command is "not found" and succeeds: what runs is only the shell's own work,
            // and a value that escaped its quotes leaves a file behind (`>PWNED`).
            let body = if format == Format::Sourced {
                format!(
                    "command_not_found_handle() {{ return 0; }}; before=$(compgen -v); \
                     . ./{name}; comm -13 <(printf '%s\\n' $before | sort) <(compgen -v | sort)"
                )
            } else {
                format!(
                    "command_not_found_handle() {{ return 0; }}; . ./{name} >/dev/null 2>&1; true"
                )
            };
            let bash = common::find_program("bash").unwrap();
            let out = Command::new(common::find_program("timeout").unwrap())
                .arg("10")
                .arg(&bash)
                .args(["--noprofile", "--norc", "-c", &body])
                .current_dir(run_in)
                .env_clear()
                .env("PATH", "")
                .output()
                .unwrap();
            let syntax = Command::new("bash")
                .args(["-n", name])
                .current_dir(run_in)
                .output()
                .unwrap();
            if !syntax.status.success() {
                return Err(String::from_utf8_lossy(&syntax.stderr).into_owned());
            }
            let traces: Vec<_> = common::names_in(run_in)
                .into_iter()
                .filter(|n| n.contains("PWNED"))
                .collect();
            if !traces.is_empty() {
                return Err(format!("running {name} created {traces:?}"));
            }
            let vars = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|v| !v.starts_with("BASH") && !["_", "before", "PIPESTATUS"].contains(v))
                .collect::<Vec<_>>()
                .join(" ");
            Ok(if format == Format::Sourced {
                vars
            } else {
                String::new()
            })
        }
    }
}

/// Every string var of every built-in role, set to values that try to add a line, a key, a
/// quote or a command: either refused (exit 2 or 4, naming the var), or rendered so that every
/// file has exactly the structure it has with a harmless value of the same length, and running
/// or sourcing the shell files leaves no trace.
#[test]
fn every_string_var_of_every_role_stays_data() {
    if !common::can_run_without(
        "every_string_var_of_every_role_stays_data",
        &common::missing(&[
            ("python3", "python3-yaml"),
            ("bash", "bash"),
            ("timeout", "coreutils"),
        ]),
    ) {
        return;
    }
    let hostile = [
        "a\nb: c",
        "a\rb",
        "a\"b",
        "a'b",
        "$(>PWNED)",
        "`>PWNED`",
        "${IFS}>PWNED",
        "a;>PWNED",
        "a\u{1b}b",
        "a\u{7f}b",
        "a\tb",
        "a: b",
        "a\\",
        "a b",
        "#a",
        "a=b",
        "- a",
        "{a}",
    ];
    let mut failures = Vec::new();
    let (mut vars, mut accepted) = (0, 0);
    for role in &common::Program::tested().builtin_roles() {
        for var in string_vars(role) {
            vars += 1;
            for value in hostile {
                let tmp = tempfile::tempdir().unwrap();
                let shown = format!("{role} --set {var}={}", value.escape_debug());
                match render_set(role, &var, value, &tmp.path().join("hostile")) {
                    Err((code, stderr)) => {
                        if ![2, 4].contains(&code) || !stderr.contains(var.as_str()) {
                            failures.push(format!(
                                "{shown}: exit {code} without naming the var: {stderr}"
                            ));
                        }
                        continue;
                    }
                    Ok(()) => accepted += 1,
                }
                // The same length, nothing but letters: the structure the file should have.
                let benign: String = value.chars().map(|_| 'x').collect();
                if render_set(role, &var, &benign, &tmp.path().join("benign")).is_err() {
                    failures.push(format!(
                        "{shown}: accepted, but the harmless `{benign}` is refused"
                    ));
                    continue;
                }
                for ordinal in 0..6 {
                    let pod = ordinal.to_string();
                    for file in common::names_in(&tmp.path().join("hostile").join(&pod)) {
                        let hostile_file = tmp.path().join("hostile").join(&pod).join(&file);
                        let benign_file = tmp.path().join("benign").join(&pod).join(&file);
                        match (structure(&hostile_file), structure(&benign_file)) {
                            (Ok(h), Ok(b)) if h == b => {}
                            (h, b) => failures.push(format!(
                                "{shown}: {role}-{ordinal}/{file}: {h:?}, with a harmless value {b:?}"
                            )),
                        }
                    }
                }
            }
        }
    }
    eprintln!("{accepted} hostile values accepted and proven to stay data");
    assert!(
        vars > 0,
        "no built-in role declares a string var: nothing was tried"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

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
            "replicas missing",
            3,
            &["pass --replicas N or set ROLECALL_REPLICAS"],
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
            &["var `observers_from` = `many` bounds a rule"],
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
    let mut names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["main.cfg", "peers", "rolecall.env"]);
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

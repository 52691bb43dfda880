//! Settings: flags, environment and the pod's own files become settings, once. Every default,
//! environment look-up and cross-check happens here; later stages take settings by reference.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use regex_lite::Regex;

use crate::cli::{PodArgs, RenderArgs, RoleArgs, WaitArgs};
use crate::configdir::{self, Keys};
use crate::duration::parse_duration;
use crate::error::{Exit, Failure, OrExit, Result};
use crate::identity::{self, Identity, Shape, ordinal_regex};
use crate::kube::{self, SetFlags};

mod api;

use crate::model::Placement;
use crate::names::{MAX_ORDINAL, SetName, is_dns_label, is_dns_name, is_identifier, pod_name};
use crate::role::{self, Role, Vars, apply_sets};
use crate::wait::{Spec, parse_target};
use crate::write::{Durability, Owner};
pub use api::ApiSettings;

/// Where a pod finds its cluster domain when none is given.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
const DEFAULT_NAMESPACE: &str = "default";
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Who this pod is and where its set lives, before the hostname is parsed.
#[derive(Debug)]
pub struct PodSettings {
    /// The pod's hostname: --hostname, else POD_NAME, else the kernel's.
    pub hostname: String,
    /// The hostname came from the kernel: nothing named the pod.
    pub hostname_from_kernel: bool,
    pub regex: Regex,
    pub pod_index: Option<u32>,
    pub shape: Shape,
    /// `--service`; the set name when absent.
    pub service: Option<String>,
    pub namespace: String,
    pub cluster_domain: String,
    /// The set's values as the flags gave them, before the StatefulSet is read.
    pub set_flags: SetFlags,
    /// `--from-api` and the node: how to read the API, and the topology known so far.
    pub api: ApiSettings,
    /// The service-account directory (token, ca.crt, namespace).
    pub service_account: PathBuf,
}

impl PodSettings {
    pub fn from_args(args: &PodArgs) -> Result<Self> {
        let regex = ordinal_regex(&args.ordinal_regex).or_exit(Exit::Usage)?;
        let hostname_from_kernel =
            args.hostname.is_none() && std::env::var_os("POD_NAME").is_none();
        let hostname = match (&args.hostname, std::env::var("POD_NAME")) {
            (Some(h), _) => h.clone(),
            (None, Ok(h)) => h,
            (None, Err(std::env::VarError::NotUnicode(h))) => crate::fail!(
                Exit::Identity,
                "POD_NAME `{}` is not UTF-8, so it is no pod name; set it from the downward API \
                 (metadata.name) or pass --hostname",
                h.to_string_lossy().escape_debug()
            ),
            (None, Err(std::env::VarError::NotPresent)) => nix::unistd::gethostname()
                .context("cannot read the kernel hostname")
                .or_exit(Exit::Identity)?
                .to_string_lossy()
                .into_owned(),
        };
        if let Some(service) = &args.service
            && !is_dns_label(service)
        {
            crate::fail!(
                Exit::Usage,
                "--service `{}` is not a DNS label (lowercase letters, digits, `-`)",
                service.escape_debug()
            );
        }
        let service_account = kube::service_account_dir();
        let namespace = match &args.namespace {
            Some(ns) => ns.clone(),
            None => read_trimmed(&service_account.join("namespace"))
                .or_exit(Exit::Identity)?
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        };
        if !is_dns_label(&namespace) {
            crate::fail!(
                Exit::Usage,
                "namespace `{}` is not a DNS label; check --namespace / POD_NAMESPACE",
                namespace.escape_debug()
            );
        }
        let cluster_domain = match &args.cluster_domain {
            Some(domain) => domain.trim_end_matches('.').to_string(),
            None => read_trimmed(Path::new(RESOLV_CONF))
                .or_exit(Exit::Identity)?
                .and_then(|text| cluster_domain_from_resolv_conf(&text))
                .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string()),
        };
        if !is_dns_name(&cluster_domain) {
            crate::fail!(
                Exit::Usage,
                "cluster domain `{}` is not a DNS name; check --cluster-domain",
                cluster_domain.escape_debug()
            );
        }
        let start_ordinal = args.start_ordinal.unwrap_or(0);
        if let Some(replicas) = args.replicas {
            let last = i64::from(start_ordinal) + i64::from(replicas) - 1;
            if last > MAX_ORDINAL {
                crate::fail!(
                    Exit::Usage,
                    "--start-ordinal {start_ordinal} with --replicas {replicas} reaches ordinal {last}, beyond the largest Kubernetes ordinal {MAX_ORDINAL}"
                );
            }
        }
        let api = ApiSettings::from_args(args)?;
        Ok(PodSettings {
            hostname,
            hostname_from_kernel,
            regex,
            pod_index: args.pod_index,
            shape: Shape {
                start_ordinal,
                replicas: args.replicas,
            },
            service: args.service.clone(),
            namespace,
            cluster_domain,
            set_flags: SetFlags {
                replicas: args.replicas,
                start_ordinal: args.start_ordinal,
                service: args.service.clone(),
            },
            api,
            service_account,
        })
    }

    /// Where the pods of set `name` live.
    pub fn placement(&self, name: &str) -> Placement {
        Placement {
            service: self.service.clone().unwrap_or_else(|| name.to_string()),
            namespace: self.namespace.clone(),
            cluster_domain: self.cluster_domain.clone(),
        }
    }

    /// `--replicas`, which nothing guesses; at least 1.
    pub fn replicas(&self, what: &str) -> Result<u32> {
        match self.shape.replicas {
            None => Err(set_size_unknown(what)),
            Some(0) => Err(Failure::new(
                Exit::Identity,
                anyhow!("{what}: the set is scaled to 0, so it has no pod"),
            )),
            Some(n) => Ok(n),
        }
    }

    /// Who this pod is, from its hostname, whatever the set's size: a pod being removed by a
    /// scale-down is beyond it.
    #[cfg(feature = "member")]
    pub fn identify_unbounded(&self) -> Result<Identity> {
        let shape = Shape {
            replicas: None,
            ..self.shape.clone()
        };
        identity::resolve(&self.hostname, &self.regex, self.pod_index, &shape)
            .or_exit(Exit::Identity)
    }

    /// Who this pod is, from its hostname.
    pub fn identify(&self) -> Result<Identity> {
        identity::resolve(&self.hostname, &self.regex, self.pod_index, &self.shape)
            .or_exit(Exit::Identity)
    }

    /// The set name for plan and check: --name, else from the hostname. Off a pod (the kernel's
    /// hostname has no ordinal), a built-in role's set is named for the role, so
    /// `rolecall check --role etcd --replicas 3` works on any machine.
    pub fn set_name(&self, name: Option<&str>, role: &Role) -> Result<SetName> {
        match name {
            Some(name) => {
                if !is_dns_label(&pod_name(name, self.shape.start_ordinal)) {
                    crate::fail!(
                        Exit::Usage,
                        "--name `{}` is not a StatefulSet name (a DNS label)",
                        name.escape_debug()
                    );
                }
                Ok(SetName::statefulset(name))
            }
            None => match self.identify() {
                Err(_)
                    if self.hostname_from_kernel
                        && role::builtin_names().contains(&role.name.as_str()) =>
                {
                    Ok(SetName::statefulset(&role.name))
                }
                result => result.map(|id| id.set),
            },
        }
    }
}

/// `what` (a command, a field, a wait target) needs the set's size, which nobody gave.
pub fn set_size_unknown(what: &str) -> Failure {
    Failure::new(
        Exit::Identity,
        anyhow!(
            "{what} needs the size of the set; pass --replicas N, set ROLECALL_REPLICAS \
             (spec.replicas), or read it from the StatefulSet with --from-api"
        ),
    )
}

/// Reads a small file, trimmed; `None` when it does not exist (as outside a pod).
fn read_trimmed(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The cluster domain from a pod's resolv.conf: its `search` line reads
/// `NS.svc.DOMAIN svc.DOMAIN DOMAIN`. The resolver uses the last `search` line, so do we.
pub fn cluster_domain_from_resolv_conf(text: &str) -> Option<String> {
    let search = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("search"))
        .rfind(|rest| rest.starts_with([' ', '\t']))?;
    search.split_whitespace().find_map(|domain| {
        let domain = domain.trim_end_matches('.');
        let rest = domain
            .strip_prefix("svc.")
            .or_else(|| domain.split_once(".svc.").map(|(_, rest)| rest))?;
        Some(rest.to_string()).filter(|d| is_dns_name(d))
    })
}

/// The role and everything that feeds its templates.
#[derive(Debug)]
pub struct RoleSettings {
    pub role: Role,
    pub vars: Vars,
    pub config_dir: Option<PathBuf>,
    /// `--data-dir`: the system's data directory, as the init container sees it.
    pub data_dir: Option<PathBuf>,
    /// `--data-dir` absent or empty: this pod has never run.
    pub first_boot: bool,
    /// Unwise but allowed settings, printed as warnings.
    pub warnings: Vec<String>,
}

impl RoleSettings {
    pub fn from_args(args: &RoleArgs) -> Result<Self> {
        let sets = args
            .sets
            .iter()
            .map(|s| parse_set(s))
            .collect::<anyhow::Result<Vec<_>>>()
            .or_exit(Exit::Usage)?;
        let mut role = match &args.role {
            Some(name) => Role::load(name).or_exit(Exit::Template)?,
            None => {
                let id_file = (!args.no_id_file).then_some(args.id_file.as_str());
                Role::ad_hoc(
                    args.leader_file.as_deref(),
                    args.follower_file.as_deref(),
                    &args.files,
                    id_file,
                )
                .or_exit(Exit::Usage)?
            }
        };
        if let Some(offset) = args.id_offset {
            role.spec.server_id.offset = offset;
        }
        if let Some(port) = args.port {
            role.spec.port = Some(port);
        }
        let (vars, undeclared) =
            apply_sets(&role.spec.vars, &role.spec.var_rules, &sets).or_exit(Exit::Usage)?;
        let warnings = undeclared
            .iter()
            .filter(|_| !role.spec.vars.is_empty())
            .map(|key| {
                let declared: Vec<_> = role.spec.vars.keys().map(String::as_str).collect();
                format!(
                    "--set {key}: role {} declares no var `{key}` (it has: {})",
                    role.name,
                    declared.join(", ")
                )
            })
            .collect();
        let memory_limit = crate::memory::parse_quantity(&args.memory_limit)
            .map_err(|why| {
                anyhow!(
                    "--memory-limit `{}` {why}",
                    args.memory_limit.escape_debug()
                )
            })
            .or_exit(Exit::Usage)?;
        crate::memory::set_limit(memory_limit);
        let first_boot = match &args.data_dir {
            None => true,
            Some(dir) => is_absent_or_empty(dir).or_exit(Exit::Identity)?,
        };
        Ok(RoleSettings {
            role,
            vars,
            config_dir: args.config_dir.clone(),
            data_dir: args.data_dir.clone(),
            first_boot,
            warnings,
        })
    }

    /// The config dir's keys, read now (a ConfigMap can change between runs).
    pub fn config_keys(&self) -> Result<Option<(&Path, Keys)>> {
        match &self.config_dir {
            None => Ok(None),
            Some(dir) => Ok(Some((
                dir.as_path(),
                configdir::read(dir).or_exit(Exit::Template)?,
            ))),
        }
    }
}

/// `KEY=VALUE`, KEY an identifier (it becomes `vars.KEY` and `ROLECALL_VAR_KEY`).
fn parse_set(arg: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = arg.split_once('=') else {
        bail!("--set `{}` needs the form KEY=VALUE", arg.escape_debug());
    };
    ensure!(
        is_identifier(key),
        "--set `{}`: KEY must be letters, digits and `_`, not starting with a digit",
        key.escape_debug()
    );
    ensure!(
        !value.contains('\0'),
        "--set {key}: the value contains a NUL byte"
    );
    Ok((key.to_string(), value.to_string()))
}

fn is_absent_or_empty(dir: &Path) -> anyhow::Result<bool> {
    // A new ext4 volume holds `lost+found` (mke2fs makes it, root-owned 0700): a data dir at a
    // volume's root is not empty on its first boot. That directory, and only a directory by that
    // name, does not count; whatever is in it is not looked at (a non-root pod cannot).
    let context = || format!("cannot read data dir {}", dir.display());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(context),
    };
    for entry in entries {
        let entry = entry.with_context(context)?;
        let lost_and_found =
            entry.file_name() == "lost+found" && entry.file_type().with_context(context)?.is_dir();
        if !lost_and_found {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where and how `render` writes.
#[derive(Debug)]
pub struct OutputSettings {
    pub out: PathBuf,
    pub owner: Option<Owner>,
    pub mode: u32,
    pub dry_run: bool,
    /// Whether written files and the directory are synced to disk (not with `--no-sync`).
    pub durability: Durability,
    pub quiet: bool,
}

impl OutputSettings {
    pub fn from_args(args: &RenderArgs) -> Result<Self> {
        let mode = u32::from_str_radix(args.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| anyhow!("--mode `{}` is not an octal file mode like 0644", args.mode))
            .or_exit(Exit::Usage)?;
        let owner = args
            .owner
            .as_deref()
            .map(parse_owner)
            .transpose()
            .or_exit(Exit::Usage)?;
        Ok(OutputSettings {
            out: args.out.clone(),
            owner,
            mode,
            dry_run: args.dry_run,
            durability: if args.no_sync {
                Durability::Unsynced
            } else {
                Durability::Synced
            },
            quiet: args.quiet,
        })
    }
}

fn parse_owner(arg: &str) -> anyhow::Result<Owner> {
    let parsed = arg.split_once(':').and_then(|(u, g)| {
        Some(Owner {
            uid: u.parse().ok()?,
            gid: g.parse().ok()?,
        })
    });
    let owner =
        parsed.ok_or_else(|| anyhow!("--owner `{arg}` must be numeric UID:GID, like 999:999"))?;
    // chown(2) reads -1 as "leave as is": rolecall would quietly give the files to nobody new.
    ensure!(
        owner.uid != u32::MAX && owner.gid != u32::MAX,
        "--owner `{arg}`: 4294967295 is no user or group (chown reads it as \"leave as is\"); \
         give a real UID:GID"
    );
    Ok(owner)
}

/// A duration flag's value; the error names the flag and its value.
pub fn duration_flag(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).map_err(|why| anyhow!("{flag} `{}` {why}", text.escape_debug()))
}

/// The shortest --interval: anything shorter is a busy loop against the peers.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The wait flags, checked.
#[derive(Debug)]
pub struct WaitSettings {
    /// As given, for messages, with what each one means.
    pub specs: Vec<(String, Spec)>,
    pub timeout: Duration,
    pub interval: Duration,
}

impl WaitSettings {
    pub fn from_args(args: &WaitArgs) -> Result<Self> {
        Self::parse(args).or_exit(Exit::Usage)
    }

    fn parse(args: &WaitArgs) -> anyhow::Result<Self> {
        let specs = args
            .targets
            .iter()
            .map(|t| Ok((t.clone(), parse_target(t)?)))
            .collect::<anyhow::Result<_>>()?;
        let timeout = duration_flag("--timeout", &args.timeout)?;
        let interval = duration_flag("--interval", &args.interval)?;
        ensure!(
            interval >= MIN_INTERVAL,
            "--interval `{}` is too short; give at least 10ms",
            args.interval.escape_debug()
        );
        Ok(WaitSettings {
            specs,
            timeout,
            interval,
        })
    }

    /// Whether there is anything to wait for.
    pub fn is_set(&self) -> bool {
        !self.specs.is_empty()
    }

    /// Whether any target names pods of the set (not only HOST:PORT).
    pub fn names_pods(&self) -> bool {
        self.specs.iter().any(|(_, spec)| spec.names_pods())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_domain_comes_from_the_search_line() {
        let pod = "search db.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n";
        assert_eq!(
            cluster_domain_from_resolv_conf(pod).as_deref(),
            Some("cluster.local")
        );
        let custom =
            "nameserver 1.1.1.1\nsearch ns.svc.corp.example svc.corp.example corp.example\n";
        assert_eq!(
            cluster_domain_from_resolv_conf(custom).as_deref(),
            Some("corp.example")
        );
        let only_svc = "search svc.k8s.internal.\n";
        assert_eq!(
            cluster_domain_from_resolv_conf(only_svc).as_deref(),
            Some("k8s.internal")
        );
        assert_eq!(
            cluster_domain_from_resolv_conf("search example.com\n"),
            None
        );
        assert_eq!(
            cluster_domain_from_resolv_conf("nameserver 8.8.8.8\n"),
            None
        );
        assert_eq!(cluster_domain_from_resolv_conf("searchx a.svc.b\n"), None);
    }

    #[test]
    fn last_search_line_wins() {
        let text = "search a.svc.one.local\nsearch b.svc.two.local\n";
        assert_eq!(
            cluster_domain_from_resolv_conf(text).as_deref(),
            Some("two.local")
        );
    }

    #[test]
    fn data_dir_is_empty_but_for_lost_and_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        assert!(is_absent_or_empty(&dir).unwrap(), "absent");
        fs::create_dir(&dir).unwrap();
        assert!(is_absent_or_empty(&dir).unwrap(), "empty");
        // A fresh ext4 volume: only lost+found, whatever it holds.
        fs::create_dir(dir.join("lost+found")).unwrap();
        fs::write(dir.join("lost+found/#12"), "").unwrap();
        assert!(is_absent_or_empty(&dir).unwrap(), "only lost+found");
        fs::write(dir.join("meta.properties"), "").unwrap();
        assert!(!is_absent_or_empty(&dir).unwrap(), "lost+found and a file");
        fs::remove_file(dir.join("meta.properties")).unwrap();
        fs::create_dir(dir.join("nodes")).unwrap();
        assert!(
            !is_absent_or_empty(&dir).unwrap(),
            "lost+found and a directory"
        );
    }

    #[test]
    fn only_a_directory_named_lost_and_found_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("lost+found"), "").unwrap();
        assert!(!is_absent_or_empty(tmp.path()).unwrap(), "a file");
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(tmp.path(), other.path().join("lost+found")).unwrap();
        assert!(
            !is_absent_or_empty(other.path()).unwrap(),
            "a symlink to a directory"
        );
        let hidden = tempfile::tempdir().unwrap();
        fs::create_dir(hidden.path().join(".lost+found")).unwrap();
        assert!(!is_absent_or_empty(hidden.path()).unwrap(), "another name");
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        fs::write(&file, "").unwrap();
        let err = is_absent_or_empty(&file).unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!("cannot read data dir {}", file.display())),
            "{err:#}"
        );
    }

    #[test]
    fn set_and_owner_parse() {
        assert_eq!(parse_set("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("1x=y").is_err());
        assert!(parse_set("a-b=y").is_err());
        assert_eq!(
            parse_owner("999:998").unwrap(),
            Owner { uid: 999, gid: 998 }
        );
        assert!(parse_owner("mysql:mysql").is_err());
        assert!(parse_owner("4294967295:0").is_err());
        assert!(parse_owner("0:4294967295").is_err());
    }
}

//! The command line: clap-derive structs only. Doc comments are the help text.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::names::{MAX_ORDINAL, MAX_REPLICAS};

/// Give each StatefulSet pod its identity: ordinal, server id, role, peers and rendered config.
///
/// Runs as an initContainer: reads the pod's hostname, works out who it is in the set, renders
/// the config templates of its role and exits. Exit codes: 0 ok, 1 internal, 2 usage,
/// 3 identity, 4 role or template, 5 output, 6 wait timed out, 7 membership, 8 Kubernetes API.
#[derive(Debug, Parser)]
#[command(
    name = "rolecall",
    version = env!("ROLECALL_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `defer`: clap builds a subcommand's arguments only when that subcommand runs. Building all of
/// them up front was half of the instructions of a whole `render`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Render this pod's config files, peers file and rolecall.env into --out
    Render(RenderArgs),
    /// Print this pod's identity as shell `export` lines (or JSON) for `eval "$(rolecall env)"`
    Env(EnvArgs),
    /// Print one field of this pod's identity, e.g. `rolecall get role`
    Get(GetArgs),
    /// Show every pod of the set: ordinal, server id, role, FQDN and files
    Plan(PlanArgs),
    /// Render every pod of the set in memory and report every error
    Check(CheckArgs),
    /// List the built-in roles, or show one with `roles show NAME`
    Roles(RolesArgs),
    /// Render, then replace this process with CMD (for images that use rolecall as entrypoint)
    Exec(ExecArgs),
    /// Wait until the leader, the previous pod, peers or any HOST:PORT accept TCP connections
    Wait(WaitCmdArgs),
    /// Leave the cluster when the set no longer includes this pod (a preStop hook; etcd, zookeeper)
    Leave(LeaveArgs),
    /// Copy this binary into DIR (a shared emptyDir), for the main container's hooks
    Install(InstallArgs),
}

// Who this pod is and where the pods of its set live. (A `//` comment: with `defer`, a doc
// comment on a flattened struct would replace the subcommand's own help line.)
#[derive(Debug, Args)]
#[command(next_help_heading = "Pod identity")]
pub struct PodArgs {
    /// Pod hostname [default: env POD_NAME, else the kernel hostname]
    #[arg(long, env = "ROLECALL_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// Regex splitting the hostname; needs a named group `ordinal`, may have `name`
    #[arg(
        long,
        env = "ROLECALL_ORDINAL_REGEX",
        value_name = "REGEX",
        default_value = r"^(?P<name>.+)-(?P<ordinal>[0-9]+)$"
    )]
    pub ordinal_regex: String,

    /// The pod's apps.kubernetes.io/pod-index label; must agree with the hostname
    #[arg(long, env = "ROLECALL_POD_INDEX", value_name = "N")]
    pub pod_index: Option<u32>,

    /// The StatefulSet's spec.ordinals.start [default: 0, or the StatefulSet's with --from-api]
    #[arg(long, env = "ROLECALL_START_ORDINAL", value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_ORDINAL))]
    pub start_ordinal: Option<u32>,

    /// Number of pods in the set (spec.replicas, at most 10000); never guessed
    #[arg(long, env = "ROLECALL_REPLICAS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=MAX_REPLICAS))]
    pub replicas: Option<u32>,

    /// Headless Service name [default: the set name]
    #[arg(long, env = "ROLECALL_SERVICE", value_name = "NAME")]
    pub service: Option<String>,

    /// Namespace [default: env POD_NAMESPACE, else the service-account namespace file, else
    /// `default`]
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAME")]
    pub namespace: Option<String>,

    /// Cluster DNS domain [default: from the `search` line of /etc/resolv.conf, else
    /// `cluster.local`]
    #[arg(long, env = "ROLECALL_CLUSTER_DOMAIN", value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,

    /// Read spec.replicas, spec.ordinals.start and spec.serviceName from this pod's StatefulSet
    /// through the Kubernetes API (and, with --node-name, the node's zone and region); a flag
    /// given as well still wins
    #[arg(long, help_heading = "Kubernetes API", env = "ROLECALL_FROM_API",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub from_api: bool,

    /// The pod's node (downward API spec.nodeName): with --from-api, its topology labels give
    /// `topology.zone` and `topology.region`
    #[arg(
        long,
        help_heading = "Kubernetes API",
        env = "NODE_NAME",
        value_name = "NAME"
    )]
    pub node_name: Option<String>,

    /// The pod's labels as a downwardAPI volume writes them (fieldRef metadata.labels): its
    /// topology.kubernetes.io/zone and region labels give `topology.zone` and
    /// `topology.region`, without the API
    #[arg(
        long,
        help_heading = "Kubernetes API",
        env = "ROLECALL_LABELS_FILE",
        value_name = "FILE"
    )]
    pub labels_file: Option<PathBuf>,

    /// How long reading the API may take, retries included (`30s`, `1m`)
    #[arg(
        long,
        help_heading = "Kubernetes API",
        env = "ROLECALL_API_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub api_timeout: String,
}

// Which role this set plays and where its templates come from. (`//`: see PodArgs.)
#[derive(Debug, Args)]
#[command(next_help_heading = "Role and templates")]
pub struct RoleArgs {
    /// Built-in role NAME (see `rolecall roles`) or a path to a role.toml
    #[arg(long, value_name = "NAME|PATH")]
    pub role: Option<String>,

    /// The mounted ConfigMap; its keys override the role's templates
    #[arg(long, env = "ROLECALL_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Set a template var: `vars.KEY` in templates, ROLECALL_VAR_KEY in env (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// Server id = offset + ordinal [default: the role's offset, 0 without a role]
    #[arg(long, env = "ROLECALL_ID_OFFSET", value_name = "N")]
    pub id_offset: Option<u64>,

    /// Port of every peer [default: the role's port]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Data directory; `first_boot` is true when it is absent or empty
    #[arg(long, env = "ROLECALL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Without --role: the config-dir key the leader (the first pod) renders
    #[arg(long, value_name = "KEY", conflicts_with = "role")]
    pub leader_file: Option<String>,

    /// Without --role: the config-dir key every other pod renders
    #[arg(long, value_name = "KEY", conflicts_with = "role")]
    pub follower_file: Option<String>,

    /// Without --role: a config-dir key every pod renders (repeatable)
    #[arg(long = "file", value_name = "KEY", conflicts_with = "role")]
    pub files: Vec<String>,

    /// Without --role: name of the server-id file (`.cnf`: `[mysqld]` and `server-id=N`; other
    /// names: just the id)
    #[arg(
        long,
        value_name = "NAME",
        default_value = "server-id.cnf",
        conflicts_with = "role"
    )]
    pub id_file: String,

    /// Without --role: write no server-id file
    #[arg(long, conflicts_with_all = ["role", "id_file"])]
    pub no_id_file: bool,

    /// Memory budget: a template that needs more ends the render with exit 4 (bytes, or a
    /// quantity like 512Mi or 1Gi)
    #[arg(
        long,
        env = "ROLECALL_MEMORY_LIMIT",
        value_name = "SIZE",
        default_value = "256Mi"
    )]
    pub memory_limit: String,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    /// Directory to write into (created if missing)
    #[arg(
        long,
        help_heading = "Output",
        env = "ROLECALL_OUT",
        value_name = "DIR"
    )]
    pub out: PathBuf,

    /// Owner of the written files
    #[arg(
        long,
        help_heading = "Output",
        env = "ROLECALL_OWNER",
        value_name = "UID:GID"
    )]
    pub owner: Option<String>,

    /// Mode of the written files, in octal (a role may set its own per file)
    #[arg(
        long,
        help_heading = "Output",
        env = "ROLECALL_MODE",
        value_name = "OCTAL",
        default_value = "0644"
    )]
    pub mode: String,

    /// Print every file that would be written, with a diff against what is there; write nothing
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,

    /// Replace files atomically but skip fsync: for an emptyDir, re-rendered at every pod start
    #[arg(long, help_heading = "Output", env = "ROLECALL_NO_SYNC",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_sync: bool,

    /// No summary (and no wait progress) on stderr
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

// What to wait for before going on, and for how long (shared by render, exec and wait).
// (`//`: see PodArgs.)
#[derive(Debug, Args)]
#[command(next_help_heading = "Waiting")]
pub struct WaitArgs {
    /// First wait until TARGET accepts TCP connections: leader, previous, peers=N (N other pods),
    /// all, or HOST:PORT; `leader:PORT` etc. use another port than the role's (repeatable, or
    /// comma-separated)
    #[arg(
        long = "wait-for",
        env = "ROLECALL_WAIT_FOR",
        value_name = "TARGET",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,

    /// Give up waiting after this long (`300`, `90s`, `5m`, `1.5s`); 0 tries once
    #[arg(
        long,
        env = "ROLECALL_WAIT_TIMEOUT",
        value_name = "DURATION",
        default_value = "300s"
    )]
    pub timeout: String,

    /// Time between attempts, and the connect timeout of each (a little jitter is added)
    #[arg(
        long,
        env = "ROLECALL_WAIT_INTERVAL",
        value_name = "DURATION",
        default_value = "1s"
    )]
    pub interval: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    Shell,
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
    pub format: EnvFormat,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// A field `rolecall env` prints, in lower case without `ROLECALL_` (role, server_id,
    /// ordinal, fqdn, peers, ...), or vars.KEY; an unknown name lists them all
    #[arg(value_name = "FIELD")]
    pub field: String,

    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The set name [default: from the hostname]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The set name [default: from the hostname]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    /// No report on success
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    #[command(subcommand)]
    pub command: Option<RolesCommand>,
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Print a built-in role's role.toml and templates
    Show {
        /// Role name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub render: RenderArgs,

    /// The command to run after rendering, and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

// `rolecall wait`: the shared wait flags, with `--wait-for` spelled `--for` and required.
// (`//`: see PodArgs.)
#[derive(Debug, Args)]
#[command(mut_arg("targets", |arg| arg
    .long("for")
    .visible_alias("wait-for")
    .required(true)
    .help("What to wait for: leader, previous, peers=N (N other pods), all, or HOST:PORT; \
           `leader:PORT` etc. use another port than the role's (repeatable, or comma-separated)")))]
pub struct WaitCmdArgs {
    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// No progress lines on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

// `rolecall leave`: the identity flags, and how long to try. (`//`: see PodArgs.)
#[derive(Debug, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    pub pod: PodArgs,

    #[command(flatten)]
    pub role: RoleArgs,

    /// Give up after this long (keep it below the pod's terminationGracePeriodSeconds)
    #[arg(
        long,
        env = "ROLECALL_LEAVE_TIMEOUT",
        value_name = "DURATION",
        default_value = "20s"
    )]
    pub timeout: String,

    /// No lines on stderr but the failure
    #[arg(long, short)]
    pub quiet: bool,
}

// `rolecall install DIR`. (`//`: see PodArgs.)
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The directory to copy rolecall into (as DIR/rolecall, mode 0755)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// With `defer`, a subcommand's arguments are built only when it runs: check them all here.
    #[test]
    fn every_subcommand_definition_is_valid() {
        super::Cli::command().debug_assert();
    }

    /// With `defer`, the doc comment of an `Args` struct, applied when the subcommand is built,
    /// would replace the subcommand's own help line.
    #[test]
    fn building_a_subcommand_keeps_its_help_line() {
        let about = |cmd: &clap::Command, name: &str| {
            let sub = cmd.find_subcommand(name).unwrap();
            sub.get_about().map(|a| a.to_string()).unwrap_or_default()
        };
        let declared = super::Cli::command();
        let mut built = super::Cli::command();
        built.build();
        for sub in declared.get_subcommands() {
            let name = sub.get_name();
            assert_eq!(
                about(&built, name),
                about(&declared, name),
                "the help line of `{name}` was replaced by an Args struct's doc comment: make that \
                 a `//` comment"
            );
        }
    }
}

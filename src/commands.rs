//! The subcommands: each builds its [`Inputs`] once, runs the stages it needs, and tags each
//! stage's errors with its exit code ([`Exit`]).

use std::ffi::CString;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

use crate::cli::{
    CheckArgs, EnvArgs, EnvFormat, ExecArgs, GetArgs, InstallArgs, LeaveArgs, PlanArgs, PlanFormat,
    RenderArgs, RolesArgs, RolesCommand, WaitCmdArgs,
};
use crate::duration::parse_duration;
use crate::error::{Exit, Failure, OrExit, Result};
use crate::inputs::Inputs;
use crate::member::zookeeper::{self, ZkPod};
use crate::member::{self, EtcdPod};
use crate::memory::{self, Stage};
use crate::model::Cluster;
use crate::model::SET_FIELDS;
use crate::render::render_pod;
use crate::role::{self, Role};
use crate::role::{Membership, Var};
use crate::settings::{OutputSettings, WaitSettings, set_size_unknown};
use crate::wait::{self, PlanError, Pods};
use crate::{output, preview, write};

/// Prints to stdout; a closed pipe (`rolecall plan | head`) is not an error worth a message.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::new(Exit::Output, e)),
        _ => Ok(()),
    }
}

/// A wait plan's error, with the exit code of its kind.
fn plan_failure(error: PlanError) -> Failure {
    match error {
        PlanError::NeedsSetSize(what) => set_size_unknown(&what),
        PlanError::Role(e) => Failure::new(Exit::Template, e),
        PlanError::Usage(e) => Failure::new(Exit::Usage, e),
        PlanError::Internal(e) => Failure::new(Exit::Internal, e),
    }
}

fn wait_for(plan: &wait::Plan, settings: &WaitSettings, quiet: bool) -> Result<()> {
    wait::wait(plan, settings, quiet).or_exit(Exit::Timeout)
}

pub fn render(args: &RenderArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet)?;
    let output = OutputSettings::from_args(args)?;
    let waits = WaitSettings::from_args(&args.wait)?;
    let id = inputs.identify()?;
    let cluster = inputs.cluster(&id.set, "render")?;
    let pods = Pods::Cluster {
        cluster: &cluster,
        index: id.index,
    };
    let wait_plan = wait::plan(&waits.specs, &pods).map_err(plan_failure)?;
    let templates = inputs.templates()?;
    let render = |membership: Option<&serde_json::Value>| {
        render_pod(
            &templates,
            &inputs.role,
            &cluster,
            id.index,
            output.mode,
            membership,
        )
        .or_exit(Exit::Template)
    };
    // Flags and templates are checked before anything waits or changes the cluster, so a
    // mistake fails at once: nothing is written until the peers answer.
    let mut files = render(None)?;
    if waits.is_set() {
        wait_for(&wait_plan, &waits, output.quiet)?;
    }
    // With --data-dir, a role with membership actions first joins the running cluster; what it
    // decides goes into the files. A dry run makes no call.
    let membership = inputs.role.role.spec.membership;
    if let (Some(data_dir), Some(membership)) = (&inputs.role.data_dir, membership) {
        if output.dry_run {
            if !output.quiet {
                output::say("rolecall: dry run: no membership call is made");
            }
        } else {
            let timeout = waits.timeout;
            match membership {
                Membership::Etcd => {
                    let pod = etcd_pod(
                        &inputs,
                        &cluster,
                        id.index,
                        cluster.replicas,
                        timeout,
                        output.quiet,
                    )?;
                    if let Some(joined) =
                        member::prepare_etcd(&pod, data_dir).or_exit(Exit::Membership)?
                    {
                        files = render(Some(&to_value(&joined)?))?;
                    }
                }
                Membership::Zookeeper => {
                    if !same_dir(&output.out, data_dir) {
                        crate::fail!(
                            Exit::Usage,
                            "membership `zookeeper` keeps ZooKeeper's dynamic config files \
                             beside zoo.cfg, in the data volume: give --out the same directory \
                             as --data-dir ({})",
                            data_dir.display()
                        );
                    }
                    let pod = zk_pod(
                        &inputs,
                        &cluster,
                        id.index,
                        cluster.replicas,
                        timeout,
                        output.quiet,
                    )?;
                    let dynamic =
                        zookeeper::prepare_zookeeper(&pod, data_dir).or_exit(Exit::Membership)?;
                    files = render(Some(&to_value(&dynamic)?))?;
                    files.push(write::OutFile {
                        name: dynamic.dynamic_config.clone(),
                        content: dynamic.servers.into_bytes(),
                        mode: output.mode,
                    });
                }
            }
        }
    }
    memory::set_stage(Stage::Other);
    let changes = if output.dry_run {
        let (text, changes) =
            preview::preview(&output.out, &files, output.owner).or_exit(Exit::Output)?;
        print(&text)?;
        changes
    } else {
        write::write_all(&output.out, &files, output.owner, output.durability)
            .or_exit(Exit::Output)?
    };
    if !output.quiet {
        let me = &cluster.members[id.index as usize];
        output::say(&output::summary(me, &changes, output.dry_run));
    }
    Ok(())
}

pub fn exec(args: &ExecArgs) -> Result<()> {
    if args.render.dry_run {
        crate::fail!(
            Exit::Usage,
            "exec does not take --dry-run: it would start the command with files it did not write"
        );
    }
    render(&args.render)?;
    let argv = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("a command argument contains a NUL byte")
        .or_exit(Exit::Usage)?;
    let Some(program) = argv.first() else {
        crate::fail!(Exit::Usage, "exec needs a command after `--`");
    };
    // Only returns on failure.
    let errno = nix::unistd::execvp(program, &argv).unwrap_err();
    Err(Failure::new(
        Exit::Usage,
        anyhow!("cannot execute `{}`: {errno}", args.command[0]),
    ))
}

pub fn env(args: &EnvArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, false)?;
    let id = inputs.identify()?;
    let cluster = inputs.cluster(&id.set, "env")?;
    let role = &inputs.role;
    let view = cluster.view(id.index, &role.vars, role.first_boot);
    match args.format {
        EnvFormat::Shell => print(&output::shell_env(&output::fields(&view))),
        EnvFormat::Json => {
            let mut text = serde_json::to_string_pretty(&view).or_exit(Exit::Internal)?;
            text.push('\n');
            print(&text)
        }
    }
}

/// One field of this pod; the set's fields only when its size is known.
pub fn get(args: &GetArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, false)?;
    let id = inputs.identify()?;
    let role = &inputs.role;
    let fields = if inputs.pod.shape.replicas.is_some() {
        let cluster = inputs.cluster(&id.set, "get")?;
        output::fields(&cluster.view(id.index, &role.vars, role.first_boot))
    } else {
        let model = inputs.model(&id.set)?;
        let me = model.member(id.index).or_exit(Exit::Template)?;
        output::fields(&model.view(&me, &role.vars, role.first_boot))
    };
    if let Some((_, value)) = fields.iter().find(|(name, _)| *name == args.field) {
        return print(&format!("{value}\n"));
    }
    if SET_FIELDS.contains(&args.field.as_str()) {
        return Err(set_size_unknown(&format!("`get {}`", args.field)));
    }
    let mut names: Vec<_> = fields
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !n.starts_with("vars."))
        .collect();
    let lacking: Vec<_> = SET_FIELDS
        .into_iter()
        .filter(|f| !names.contains(f))
        .collect();
    names.extend(lacking);
    crate::fail!(
        Exit::Usage,
        "no field `{}`; fields: {}, vars.KEY",
        args.field.escape_debug(),
        names.join(" ")
    );
}

pub fn plan(args: &PlanArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, false)?;
    let set = inputs.set_name(args.name.as_deref())?;
    let cluster = inputs.cluster(&set, "plan")?;
    match args.format {
        PlanFormat::Table => print(&output::plan_table(&cluster)),
        PlanFormat::Json => print(&output::plan_json(&cluster)),
    }
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet)?;
    let set = inputs.set_name(args.name.as_deref())?;
    let cluster = inputs.cluster(&set, "check")?;
    let templates = inputs.templates()?;
    let errors: Vec<String> = (0..cluster.replicas)
        .filter_map(|index| {
            let err = render_pod(&templates, &inputs.role, &cluster, index, 0o644, None).err()?;
            let pod = &cluster.members[index as usize].hostname;
            Some(format!("{pod}: {err:#}"))
        })
        .collect();
    let role = &inputs.role.role.name;
    if !errors.is_empty() {
        crate::fail!(
            Exit::Template,
            "check failed for {} of {} pods of role {role}:\n{}",
            errors.len(),
            cluster.replicas,
            errors.join("\n")
        );
    }
    if !args.quiet {
        let first = &cluster.members[0];
        let last = &cluster.members[cluster.members.len() - 1];
        print(&format!(
            "rolecall: check ok: role {role}, {} pods ({} .. {}), every file rendered\n",
            cluster.replicas, first.hostname, last.hostname
        ))?;
    }
    Ok(())
}

pub fn wait(args: &WaitCmdArgs) -> Result<()> {
    let waits = WaitSettings::from_args(&args.wait)?;
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet)?;
    let plan = if !waits.names_pods() {
        wait::plan(&waits.specs, &Pods::Unknown)
    } else {
        let id = inputs.identify()?;
        // Without --replicas only `previous` can be placed; `wait::plan` says what is missing.
        if inputs.pod.shape.replicas.is_some() {
            let cluster = inputs.cluster(&id.set, "wait")?;
            let pods = Pods::Cluster {
                cluster: &cluster,
                index: id.index,
            };
            wait::plan(&waits.specs, &pods)
        } else {
            let model = inputs.model(&id.set)?;
            let pods = Pods::Model {
                model: &model,
                index: id.index,
            };
            wait::plan(&waits.specs, &pods)
        }
    }
    .map_err(plan_failure)?;
    wait_for(&plan, &waits, args.quiet)
}

/// An etcd pod for the membership actions, with the role's ports and bootstrap size.
fn etcd_pod<'a, 'r>(
    inputs: &Inputs,
    cluster: &'a Cluster<'r>,
    index: u32,
    set_size: u32,
    timeout: Duration,
    quiet: bool,
) -> Result<EtcdPod<'a, 'r>> {
    let int = |name: &str| match inputs.role.vars.get(name) {
        Some(Var::Int(n)) => Ok(*n),
        _ => Err(Failure::new(
            Exit::Template,
            anyhow!(
                "role {}: membership `etcd` needs the integer var `{name}`",
                inputs.role.role.name
            ),
        )),
    };
    let peer_port = u16::try_from(int("peer_port")?)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Failure::new(Exit::Usage, anyhow!("var `peer_port` is not a port")))?;
    let bootstrap_size = match u32::try_from(int("bootstrap_size")?) {
        Ok(0) => set_size,
        Ok(n) => n,
        Err(_) => crate::fail!(Exit::Usage, "var `bootstrap_size` must be 0 or more"),
    };
    let client_port = cluster.model.role().spec.port.unwrap_or(2379);
    Ok(EtcdPod {
        cluster,
        set_size,
        index,
        client_port,
        peer_port,
        bootstrap_size,
        timeout,
        quiet,
    })
}

/// The membership decision as the templates see it, `membership`.
fn to_value(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).or_exit(Exit::Internal)
}

/// Whether two paths name the same directory (as given, or once both exist).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    let strip = |p: &std::path::Path| p.components().collect::<std::path::PathBuf>();
    if strip(a) == strip(b) {
        return true;
    }
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// A ZooKeeper pod for the membership actions: the role's ports, bootstrap size and the super
/// user's password (read from the file var `super_password_file` names).
fn zk_pod<'a, 'r>(
    inputs: &Inputs,
    cluster: &'a Cluster<'r>,
    index: u32,
    set_size: u32,
    timeout: Duration,
    quiet: bool,
) -> Result<ZkPod<'a, 'r>> {
    let role = &inputs.role.role.name;
    let port = |name: &str| match inputs.role.vars.get(name) {
        Some(Var::Int(n)) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Failure::new(Exit::Usage, anyhow!("var `{name}` is not a port"))),
        _ => Err(Failure::new(
            Exit::Template,
            anyhow!("role {role}: membership `zookeeper` needs the integer var `{name}`"),
        )),
    };
    let (quorum_port, election_port) = (port("quorum_port")?, port("election_port")?);
    let bootstrap_size = match inputs.role.vars.get("bootstrap_size") {
        Some(Var::Int(0)) => set_size,
        Some(Var::Int(n)) => u32::try_from(*n).map_err(|_| {
            Failure::new(
                Exit::Usage,
                anyhow!("var `bootstrap_size` must be 0 or more"),
            )
        })?,
        _ => crate::fail!(
            Exit::Template,
            "role {role}: membership `zookeeper` needs the integer var `bootstrap_size`"
        ),
    };
    let file = match inputs.role.vars.get("super_password_file") {
        Some(Var::Str(f)) if !f.is_empty() => f.clone(),
        _ => crate::fail!(
            Exit::Usage,
            "membership `zookeeper` needs --set super_password_file=FILE: a file (from a \
             Secret) with the password of ZooKeeper's `super` user, which rolecall \
             authenticates as to reconfigure the ensemble and whose digest the servers get"
        ),
    };
    let password = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the super user's password from {file}"))
        .or_exit(Exit::Usage)?
        .trim_end_matches(['\n', '\r'])
        .to_string();
    if password.is_empty() {
        crate::fail!(
            Exit::Usage,
            "{file} is empty: the super user needs a password"
        );
    }
    Ok(ZkPod {
        cluster,
        set_size,
        index,
        client_port: cluster.model.role().spec.port.unwrap_or(2181),
        quorum_port,
        election_port,
        bootstrap_size,
        password,
        timeout,
        quiet,
    })
}

/// `rolecall leave`: in a preStop hook, leaves the cluster when the set shrank past this pod.
pub fn leave(args: &LeaveArgs) -> Result<()> {
    let timeout = parse_duration(&args.timeout)
        .map_err(|why| anyhow!("--timeout `{}` {why}", args.timeout.escape_debug()))
        .or_exit(Exit::Usage)?;
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet)?;
    let Some(membership) = inputs.role.role.spec.membership else {
        crate::fail!(
            Exit::Usage,
            "role {} has no membership actions to leave (built-in: etcd, zookeeper)",
            inputs.role.role.name
        );
    };
    let id = inputs.pod.identify_unbounded()?;
    let Some(set_size) = inputs.pod.shape.replicas else {
        return Err(set_size_unknown("leave"));
    };
    // The pods up to this one, whatever the set's size now: their addresses are the members'.
    let known = set_size.max(id.index + 1);
    let cluster = inputs
        .model(&id.set)?
        .cluster(known)
        .or_exit(Exit::Template)?;
    match membership {
        Membership::Etcd => {
            let pod = etcd_pod(&inputs, &cluster, id.index, set_size, timeout, args.quiet)?;
            member::leave_etcd(&pod).or_exit(Exit::Membership)?;
        }
        Membership::Zookeeper => {
            let pod = zk_pod(&inputs, &cluster, id.index, set_size, timeout, args.quiet)?;
            zookeeper::leave_zookeeper(&pod).or_exit(Exit::Membership)?;
        }
    }
    Ok(())
}

/// `rolecall install DIR`: this binary as DIR/rolecall, replaced atomically.
pub fn install(args: &InstallArgs) -> Result<()> {
    let exe = std::env::current_exe()
        .and_then(std::fs::read)
        .context("cannot read this rolecall binary (/proc/self/exe)")
        .or_exit(Exit::Internal)?;
    let file = write::OutFile {
        name: "rolecall".into(),
        content: exe,
        mode: 0o755,
    };
    let changes = write::write_all(&args.dir, &[file], None, write::Durability::Synced)
        .or_exit(Exit::Output)?;
    let verb = match changes.first().map(|(_, c)| *c) {
        Some(write::Change::Unchanged) => "already there",
        _ => "installed",
    };
    output::say(&format!(
        "rolecall: {verb}: {}",
        args.dir.join("rolecall").display()
    ));
    Ok(())
}

pub fn roles(args: &RolesArgs) -> Result<()> {
    match &args.command {
        Some(RolesCommand::Show { name }) => {
            print(&Role::show_builtin(name).or_exit(Exit::Template)?)
        }
        None => {
            let mut text = String::new();
            let names = role::builtin_names();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            for name in names {
                let role = Role::builtin(name).or_exit(Exit::Internal)?;
                text.push_str(&format!("{name:<width$}  {}\n", role.spec.description));
            }
            print(&text)
        }
    }
}

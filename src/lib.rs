//! rolecall: gives each StatefulSet pod its identity and config.
//!
//! The pipeline, one module per stage:
//! inputs ([`settings`], [`configdir`], [`role`]) -> [`identity`] -> [`model`] -> [`render`] ->
//! [`write`], with [`output`] for what is printed; [`wait`] waits for peers before a render (or on
//! its own). Each subcommand below wires the stages and tags each stage's errors with its exit
//! code ([`error::Exit`]).

pub mod cli;
pub mod configdir;
pub mod error;
pub mod identity;
pub mod model;
pub mod output;
pub mod render;
pub mod role;
pub mod settings;
pub mod wait;
pub mod write;

use std::ffi::CString;
use std::io::Write as _;

use anyhow::{Context as _, anyhow};

use crate::cli::{
    CheckArgs, Cli, Command, EnvArgs, EnvFormat, ExecArgs, GetArgs, PlanArgs, PlanFormat, PodArgs,
    RenderArgs, RolesArgs, RolesCommand, WaitCmdArgs,
};
use crate::error::{Exit, Failure, OrExit, Result};
use crate::identity::Identity;
use crate::model::{Cluster, Model};
use crate::render::Templates;
use crate::role::Role;
use crate::settings::{OutputSettings, PodSettings, RoleSettings};
use crate::wait::{Pods, WaitSettings};
use crate::write::OutFile;

/// Runs one command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Render(args) => render(&args).map(drop),
        Command::Exec(args) => exec(&args),
        Command::Env(args) => env(&args),
        Command::Get(args) => get(&args),
        Command::Plan(args) => plan(&args),
        Command::Check(args) => check(&args),
        Command::Roles(args) => roles(&args),
        Command::Wait(args) => wait(&args),
    }
}

fn warn(warnings: &[String], quiet: bool) {
    if !quiet {
        for warning in warnings {
            eprintln!("rolecall: warning: {warning}");
        }
    }
}

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

/// Inputs -> identity: who this pod is.
fn identify(pod: &PodSettings) -> Result<Identity> {
    identity::resolve(&pod.hostname, &pod.regex, pod.pod_index, &pod.shape).or_exit(Exit::Identity)
}

/// Identity -> model: the rules of the role, ready to place pods of the set `name`.
fn model<'r>(pod: &PodSettings, role: &'r RoleSettings, name: &str) -> Result<Model<'r>> {
    Model::new(
        &role.role,
        &role.vars,
        name,
        pod.placement(name),
        pod.shape.start_ordinal,
    )
    .or_exit(Exit::Template)
}

/// Model -> cluster: every pod of the set.
fn cluster<'r>(
    pod: &PodSettings,
    role: &'r RoleSettings,
    name: &str,
    what: &str,
) -> Result<Cluster<'r>> {
    let replicas = pod.replicas(what)?;
    model(pod, role, name)?
        .cluster(replicas)
        .or_exit(Exit::Template)
}

fn templates(role: &RoleSettings) -> Result<Templates> {
    let keys = role.config_keys()?;
    Templates::load(&role.role, keys.as_ref().map(|(dir, keys)| (*dir, keys)))
        .or_exit(Exit::Template)
}

/// Render: every file the pod at `index` writes, with its final mode.
fn render_pod(
    templates: &Templates,
    cluster: &Cluster,
    index: u32,
    role: &RoleSettings,
    mode: u32,
) -> anyhow::Result<Vec<OutFile>> {
    let me = &cluster.members[index as usize];
    // Every file of the role, not only this pod's: a missing leader template is a mistake to
    // report on every pod, not only when the leader restarts.
    templates.check_files(role.role.all_files(), role.config_dir.as_deref())?;
    let files: Vec<_> = cluster.model.files(me).collect();
    let view = cluster.view(index, &role.vars, role.first_boot);
    let mut out: Vec<OutFile> = templates
        .render(files, &view)?
        .into_iter()
        .map(|r| OutFile {
            name: r.name,
            content: r.content,
            mode: r.mode.unwrap_or(mode),
        })
        .collect();
    let fields = output::fields(
        me,
        &cluster.model,
        Some(cluster),
        &role.vars,
        role.first_boot,
    );
    out.push(OutFile {
        name: "peers".into(),
        content: output::peers_file(cluster).into_bytes(),
        mode,
    });
    out.push(OutFile {
        name: "rolecall.env".into(),
        content: output::shell_env(&fields).into_bytes(),
        mode,
    });
    Ok(out)
}

fn render(args: &RenderArgs) -> Result<()> {
    let pod = PodSettings::from_args(&args.pod)?;
    let role = RoleSettings::from_args(&args.role)?;
    let output = OutputSettings::from_args(args)?;
    let waits = WaitSettings::from_args(&args.wait).or_exit(Exit::Usage)?;
    warn(&role.warnings, output.quiet);
    let id = identify(&pod)?;
    let cluster = cluster(&pod, &role, &id.name, "render")?;
    warn(&cluster.warnings, output.quiet);
    let pods = Pods::Cluster {
        cluster: &cluster,
        index: id.index,
    };
    let wait_plan = wait::plan(&waits.specs, &pods)?;
    let templates = templates(&role)?;
    let files =
        render_pod(&templates, &cluster, id.index, &role, output.mode).or_exit(Exit::Template)?;
    // --wait-for: flags and templates are checked above, so a mistake fails at once, not after
    // the wait; nothing is written until the peers answer.
    if waits.is_set() {
        wait::wait(&wait_plan, &waits, output.quiet)?;
    }
    let changes = if output.dry_run {
        let (text, changes) =
            write::preview(&output.out, &files, output.owner).or_exit(Exit::Output)?;
        print(&text)?;
        changes
    } else {
        write::write_all(&output.out, &files, output.owner, output.durability)
            .or_exit(Exit::Output)?
    };
    if !output.quiet {
        eprintln!(
            "{}",
            output::summary(
                &cluster.members[id.index as usize],
                &changes,
                output.dry_run
            )
        );
    }
    Ok(())
}

fn exec(args: &ExecArgs) -> Result<()> {
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

/// The identity fields of this pod; with --replicas, all of them.
fn pod_fields(
    pod_args: &PodArgs,
    role_args: &cli::RoleArgs,
    need_all: bool,
) -> Result<(output::Fields, Vec<String>)> {
    let pod = PodSettings::from_args(pod_args)?;
    let role = RoleSettings::from_args(role_args)?;
    let id = identify(&pod)?;
    let mut warnings = role.warnings.clone();
    let fields = if need_all || pod.shape.replicas.is_some() {
        let cluster = cluster(&pod, &role, &id.name, "env")?;
        warnings.extend(cluster.warnings.iter().cloned());
        output::fields(
            &cluster.members[id.index as usize],
            &cluster.model,
            Some(&cluster),
            &role.vars,
            role.first_boot,
        )
    } else {
        let model = model(&pod, &role, &id.name)?;
        let me = model.member(id.index).or_exit(Exit::Template)?;
        output::fields(&me, &model, None, &role.vars, role.first_boot)
    };
    Ok((fields, warnings))
}

fn env(args: &EnvArgs) -> Result<()> {
    match args.format {
        EnvFormat::Shell => {
            let (fields, warnings) = pod_fields(&args.pod, &args.role, true)?;
            warn(&warnings, false);
            print(&output::shell_env(&fields))
        }
        EnvFormat::Json => {
            let pod = PodSettings::from_args(&args.pod)?;
            let role = RoleSettings::from_args(&args.role)?;
            let id = identify(&pod)?;
            let cluster = cluster(&pod, &role, &id.name, "env")?;
            warn(&role.warnings, false);
            warn(&cluster.warnings, false);
            let view = cluster.view(id.index, &role.vars, role.first_boot);
            let mut text = serde_json::to_string_pretty(&view).or_exit(Exit::Internal)?;
            text.push('\n');
            print(&text)
        }
    }
}

fn get(args: &GetArgs) -> Result<()> {
    let (fields, warnings) = pod_fields(&args.pod, &args.role, false)?;
    warn(&warnings, false);
    let Some((_, value)) = fields.iter().find(|(name, _)| *name == args.field) else {
        let names: Vec<_> = fields
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !n.starts_with("vars."))
            .collect();
        crate::fail!(
            Exit::Usage,
            "no field `{}`; fields: {}, vars.KEY",
            args.field.escape_debug(),
            names.join(" ")
        );
    };
    match value {
        Some(value) => print(&format!("{value}\n")),
        None => crate::fail!(
            Exit::Identity,
            "`get {}` needs the size of the set; pass --replicas N or set ROLECALL_REPLICAS",
            args.field
        ),
    }
}

/// The set name for plan and check: --name, else from the hostname. Off a pod (the kernel's
/// hostname has no ordinal), a built-in role's set is named for the role, so
/// `rolecall check --role etcd --replicas 3` works on any machine.
fn set_name(name: Option<&str>, pod: &PodSettings, role: &RoleSettings) -> Result<String> {
    match name {
        Some(name) => {
            if !identity::is_dns_label(&identity::pod_name(name, pod.shape.start_ordinal)) {
                crate::fail!(
                    Exit::Usage,
                    "--name `{}` is not a StatefulSet name (a DNS label)",
                    name.escape_debug()
                );
            }
            Ok(name.to_string())
        }
        None => match identify(pod) {
            Err(_)
                if pod.hostname_from_kernel
                    && role::builtin_names().contains(&role.role.name.as_str()) =>
            {
                Ok(role.role.name.clone())
            }
            result => result.map(|id| id.name),
        },
    }
}

fn plan(args: &PlanArgs) -> Result<()> {
    let pod = PodSettings::from_args(&args.pod)?;
    let role = RoleSettings::from_args(&args.role)?;
    let name = set_name(args.name.as_deref(), &pod, &role)?;
    let cluster = cluster(&pod, &role, &name, "plan")?;
    warn(&role.warnings, false);
    warn(&cluster.warnings, false);
    match args.format {
        PlanFormat::Table => print(&output::plan_table(&cluster)),
        PlanFormat::Json => print(&output::plan_json(&cluster)),
    }
}

fn check(args: &CheckArgs) -> Result<()> {
    let pod = PodSettings::from_args(&args.pod)?;
    let role = RoleSettings::from_args(&args.role)?;
    let name = set_name(args.name.as_deref(), &pod, &role)?;
    let cluster = cluster(&pod, &role, &name, "check")?;
    warn(&role.warnings, args.quiet);
    warn(&cluster.warnings, args.quiet);
    let templates = templates(&role)?;
    let errors: Vec<String> = (0..cluster.replicas)
        .filter_map(|index| {
            let err = render_pod(&templates, &cluster, index, &role, 0o644).err()?;
            Some(format!(
                "{}: {err:#}",
                cluster.members[index as usize].hostname
            ))
        })
        .collect();
    if !errors.is_empty() {
        let n = errors.len();
        let detail = errors.join("\n");
        crate::fail!(
            Exit::Template,
            "check failed for {n} of {} pods of role {}:\n{detail}",
            cluster.replicas,
            role.role.name
        );
    }
    if !args.quiet {
        let first = &cluster.members[0];
        let last = &cluster.members[cluster.members.len() - 1];
        print(&format!(
            "rolecall: check ok: role {}, {} pods ({} .. {}), every file rendered\n",
            role.role.name, cluster.replicas, first.hostname, last.hostname
        ))?;
    }
    Ok(())
}

fn wait(args: &WaitCmdArgs) -> Result<()> {
    let waits = WaitSettings::from_args(&args.wait).or_exit(Exit::Usage)?;
    let pod = PodSettings::from_args(&args.pod)?;
    let role = RoleSettings::from_args(&args.role)?;
    warn(&role.warnings, args.quiet);
    let plan = if !waits.names_pods() {
        wait::plan(&waits.specs, &Pods::Unknown)?
    } else {
        let id = identify(&pod)?;
        // Without --replicas only `previous` can be placed; `wait::plan` says what is missing.
        if pod.shape.replicas.is_some() {
            let cluster = cluster(&pod, &role, &id.name, "wait")?;
            let pods = Pods::Cluster {
                cluster: &cluster,
                index: id.index,
            };
            wait::plan(&waits.specs, &pods)?
        } else {
            let model = model(&pod, &role, &id.name)?;
            let pods = Pods::Model {
                model: &model,
                index: id.index,
            };
            wait::plan(&waits.specs, &pods)?
        }
    };
    wait::wait(&plan, &waits, args.quiet)
}

fn roles(args: &RolesArgs) -> Result<()> {
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

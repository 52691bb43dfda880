//! The subcommands: each builds its [`Inputs`] once, runs the stages it needs, and tags each
//! stage's errors with its exit code ([`Exit`]). The membership actions of day 2 are wired in
//! [`membership`].

mod membership;

use std::ffi::CString;
use std::io::Write as _;

use anyhow::{Context as _, anyhow};

use crate::cli::{
    CheckArgs, EnvArgs, EnvFormat, ExecArgs, GetArgs, InstallArgs, LeaveArgs, PlanArgs, PlanFormat,
    RenderArgs, RolesArgs, RolesCommand, WaitCmdArgs,
};
use crate::error::{Exit, Failure, OrExit, Result};
use crate::identity::Identity;
use crate::inputs::Inputs;
use crate::memory::{self, Stage};
use crate::model::{Cluster, Member, Model, SET_FIELDS};
use crate::render::{render_alone, render_pod};
use crate::role::{self, Role};
use crate::settings::{OutputSettings, WaitSettings, set_size_unknown};
use crate::topology::TOPOLOGY_FIELDS;
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

/// This pod's set as far as its size is known: every pod, or without the size only the rules
/// that place this one.
enum Set<'r> {
    Cluster(Cluster<'r>),
    Model(Model<'r>),
}

impl<'r> Set<'r> {
    /// `what` names the command in the messages.
    fn of(inputs: &'r Inputs, id: &Identity, what: &str) -> Result<Self> {
        Ok(if inputs.size_known() {
            Set::Cluster(inputs.cluster(&id.set, what)?)
        } else {
            Set::Model(inputs.model(&id.set)?)
        })
    }

    /// The pod at `index`.
    fn member(&self, index: u32) -> Result<Member> {
        match self {
            Set::Cluster(cluster) => Ok(cluster.members[index as usize].clone()),
            Set::Model(model) => model.member(index).or_exit(Exit::Template),
        }
    }

    /// The pods wait targets can name, seen from the pod at `index`.
    fn pods(&self, index: u32) -> Pods<'_, 'r> {
        match self {
            Set::Cluster(cluster) => Pods::Cluster { cluster, index },
            Set::Model(model) => Pods::Model { model, index },
        }
    }
}

pub fn render(args: &RenderArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet, None)?;
    let output = OutputSettings::from_args(args)?;
    let waits = WaitSettings::from_args(&args.wait)?;
    let id = inputs.identify()?;
    let set = Set::of(&inputs, &id, "render")?;
    let me = set.member(id.index)?;
    let wait_plan = wait::plan(&waits.specs, &set.pods(id.index)).map_err(plan_failure)?;
    let templates = inputs.templates()?;
    let (role, facts, mode) = (&inputs.role, inputs.facts(), output.mode);
    let render = |membership: Option<&serde_json::Value>| {
        match &set {
            Set::Cluster(cluster) => {
                render_pod(&templates, role, cluster, id.index, facts, mode, membership)
            }
            Set::Model(model) => {
                if let Some((template, field)) = templates.set_field_used(role.role.all_files()) {
                    return Err(set_size_unknown(&format!(
                        "template {template} uses `{field}`, which"
                    )));
                }
                render_alone(&templates, role, model, &me, facts, mode)
            }
        }
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
    if let (Some(data_dir), Some(kind), Set::Cluster(cluster)) =
        (&role.data_dir, role.role.spec.membership, &set)
    {
        if output.dry_run {
            if !output.quiet {
                output::say("rolecall: dry run: no membership call is made");
            }
        } else if let Some(joined) = membership::before_render(
            &inputs,
            kind,
            cluster,
            id.index,
            data_dir,
            &output,
            waits.timeout,
        )? {
            files = render(Some(&joined.membership))?;
            files.extend(joined.files);
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
        if !inputs.size_known() {
            output::say(&output::without_set_size(&output.out));
        }
        output::say(&output::summary(&me, &changes, output.dry_run));
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
    let inputs = Inputs::new(&args.pod, &args.role, false, None)?;
    let id = inputs.identify()?;
    let cluster = inputs.cluster(&id.set, "env")?;
    let view = cluster.view(id.index, inputs.facts());
    match args.format {
        EnvFormat::Shell => print(&output::shell_env(&output::fields(&view))),
        EnvFormat::Json => {
            let mut text = serde_json::to_string_pretty(&view).or_exit(Exit::Internal)?;
            text.push('\n');
            print(&text)
        }
    }
}

/// One field of this pod; the set's fields only when its size is known. `replicas` is the set's
/// size now, also in a pod the set no longer includes and at 0 (a preStop hook's question: does
/// the set still include me?).
pub fn get(args: &GetArgs) -> Result<()> {
    if args.field == "replicas" {
        let inputs = Inputs::at_any_size(&args.pod, &args.role, false)?;
        return match inputs.pod.shape.replicas {
            Some(replicas) => print(&format!("{replicas}\n")),
            None => Err(set_size_unknown("`get replicas`")),
        };
    }
    let inputs = Inputs::new(&args.pod, &args.role, false, None)?;
    let id = inputs.identify()?;
    let fields = if inputs.size_known() {
        let cluster = inputs.cluster(&id.set, "get")?;
        output::fields(&cluster.view(id.index, inputs.facts()))
    } else {
        let model = inputs.model(&id.set)?;
        let me = model.member(id.index).or_exit(Exit::Template)?;
        output::fields(&model.view(&me, inputs.facts()))
    };
    if let Some((_, value)) = fields.iter().find(|(name, _)| *name == args.field) {
        return print(&format!("{value}\n"));
    }
    if SET_FIELDS.contains(&args.field.as_str()) {
        return Err(set_size_unknown(&format!("`get {}`", args.field)));
    }
    if TOPOLOGY_FIELDS.contains(&args.field.as_str()) {
        crate::fail!(
            Exit::Usage,
            "`get {}`: nothing gives this pod's topology; pass --labels-file FILE (the pod's \
             labels from the downward API), or --from-api with --node-name (NODE_NAME)",
            args.field
        );
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
    let inputs = Inputs::new(&args.pod, &args.role, false, args.name.as_deref())?;
    let set = inputs.set_name(args.name.as_deref())?;
    let cluster = inputs.cluster(&set, "plan")?;
    match args.format {
        PlanFormat::Table => print(&output::plan_table(&cluster)),
        PlanFormat::Json => print(&output::plan_json(&cluster)),
    }
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet, args.name.as_deref())?;
    let set = inputs.set_name(args.name.as_deref())?;
    let cluster = inputs.cluster(&set, "check")?;
    let templates = inputs.templates()?;
    let errors: Vec<String> = (0..cluster.replicas)
        .filter_map(|index| {
            let facts = inputs.facts();
            let err = render_pod(
                &templates,
                &inputs.role,
                &cluster,
                index,
                facts,
                0o644,
                None,
            )
            .err()?;
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
    let inputs = Inputs::new(&args.pod, &args.role, args.quiet, None)?;
    let plan = if !waits.names_pods() {
        wait::plan(&waits.specs, &Pods::Unknown)
    } else {
        let id = inputs.identify()?;
        // Without --replicas only `previous` can be placed; `wait::plan` says what is missing.
        let set = Set::of(&inputs, &id, "wait")?;
        wait::plan(&waits.specs, &set.pods(id.index))
    }
    .map_err(plan_failure)?;
    wait_for(&plan, &waits, args.quiet)
}

/// `rolecall leave`: in a preStop hook, leaves the cluster when the set shrank past this pod.
pub fn leave(args: &LeaveArgs) -> Result<()> {
    membership::leave(args)
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

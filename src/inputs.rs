//! One way in for every command: the flags become settings once, warnings are printed once (so
//! every command warns alike, before anything can fail), and the stages that turn settings into
//! an identity, a model, the whole set and its templates are offered from here.

use crate::cli::{PodArgs, RoleArgs};
use crate::error::{Exit, OrExit, Result};
use crate::identity::Identity;
use crate::memory::{self, Stage};
use crate::model::{Cluster, Model};
use crate::names::SetName;
use crate::output::say;
use crate::render::Templates;
use crate::settings::{PodSettings, RoleSettings};

/// Who this pod is, its role and its templates' inputs, as every command needs them.
#[derive(Debug)]
pub struct Inputs {
    pub pod: PodSettings,
    pub role: RoleSettings,
    quiet: bool,
}

impl Inputs {
    /// Reads the identity and role flags and prints the role's warnings (unless `quiet`).
    pub fn new(pod: &PodArgs, role: &RoleArgs, quiet: bool) -> Result<Self> {
        let pod = PodSettings::from_args(pod)?;
        let role = RoleSettings::from_args(role)?;
        let inputs = Inputs { pod, role, quiet };
        inputs.warn(&inputs.role.warnings);
        Ok(inputs)
    }

    fn warn(&self, warnings: &[String]) {
        if !self.quiet {
            for warning in warnings {
                say(&format!("rolecall: warning: {warning}"));
            }
        }
    }

    /// Who this pod is, from its hostname.
    pub fn identify(&self) -> Result<Identity> {
        self.pod.identify()
    }

    /// The set for commands about the whole set: `--name`, else from the hostname.
    pub fn set_name(&self, name: Option<&str>) -> Result<SetName> {
        self.pod.set_name(name, &self.role.role)
    }

    /// The rules of the role, ready to place pods of the set.
    pub fn model(&self, set: &SetName) -> Result<Model<'_>> {
        Model::new(
            &self.role.role,
            &self.role.vars,
            set.clone(),
            self.pod.placement(&set.name),
            self.pod.shape.start_ordinal,
        )
        .or_exit(Exit::Template)
    }

    /// Every pod of the set; `what` names the command in the message when the set's size is
    /// unknown. Prints the set's warnings.
    pub fn cluster(&self, set: &SetName, what: &str) -> Result<Cluster<'_>> {
        let replicas = self.pod.replicas(what)?;
        let cluster = self.model(set)?.cluster(replicas).or_exit(Exit::Template)?;
        self.warn(&cluster.warnings);
        Ok(cluster)
    }

    /// The role's templates with the config dir's keys over them, read now. Until the caller
    /// says otherwise, running out of memory is blamed on them.
    pub fn templates(&self) -> Result<Templates> {
        // From here a template can ask for memory without bound: running out of the budget is
        // the template's fault (exit 4).
        memory::set_stage(Stage::Templates);
        let keys = self.role.config_keys()?;
        Templates::load(
            &self.role.role,
            keys.as_ref().map(|(dir, keys)| (*dir, keys)),
        )
        .or_exit(Exit::Template)
    }
}

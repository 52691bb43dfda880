//! One way in for every command: the flags become settings once, the StatefulSet and the node
//! are read from the API once (`--from-api`), warnings are printed once (so every command warns
//! alike, before anything can fail), and the stages that turn settings into an identity, a model,
//! the whole set and its templates are offered from here.

use anyhow::anyhow;

use crate::cli::{PodArgs, RoleArgs};
use crate::error::{Exit, Failure, OrExit, Result};
use crate::identity::{self, Identity};
use crate::kube::Client;
use crate::memory::{self, Stage};
use crate::model::{Cluster, Model, PodFacts};
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
    /// Reads the identity and role flags, with `--from-api` the set's StatefulSet (`name`, else
    /// the hostname's set) and node, and prints the warnings (unless `quiet`).
    pub fn new(pod: &PodArgs, role: &RoleArgs, quiet: bool, name: Option<&str>) -> Result<Self> {
        Inputs::read(pod, role, quiet, name, false)
    }

    /// As `new`, for `leave` and `get replicas`: a StatefulSet scaled to 0 is a pause, not an
    /// error.
    pub fn at_any_size(pod: &PodArgs, role: &RoleArgs, quiet: bool) -> Result<Self> {
        Inputs::read(pod, role, quiet, None, true)
    }

    fn read(
        pod: &PodArgs,
        role: &RoleArgs,
        quiet: bool,
        name: Option<&str>,
        zero_is_a_pause: bool,
    ) -> Result<Self> {
        let pod = PodSettings::from_args(pod)?;
        let role = RoleSettings::from_args(role)?;
        let mut inputs = Inputs { pod, role, quiet };
        inputs.warn(&inputs.role.warnings);
        if let Some(timeout) = inputs.pod.api.from_api {
            let warnings = inputs.read_api(timeout, name, zero_is_a_pause)?;
            inputs.warn(&warnings);
        }
        Ok(inputs)
    }

    /// The set's size, start ordinal and Service from its StatefulSet, under the flags; the
    /// topology from the node when there is a node name and no labels file. Unreachable or
    /// refused, the API is an error (exit 8), unless `--replicas` is given: then a warning says
    /// why the flags alone are used. Returns the warnings.
    fn read_api(
        &mut self,
        timeout: std::time::Duration,
        name: Option<&str>,
        zero_is_a_pause: bool,
    ) -> Result<Vec<String>> {
        let pod = &mut self.pod;
        let set = match name {
            Some(name) => name.to_string(),
            None => {
                identity::split(&pod.hostname, &pod.regex)
                    .or_exit(Exit::Identity)?
                    .0
                    .name
            }
        };
        let client = Client::in_cluster(&pod.service_account, timeout);
        let read = client
            .as_ref()
            .map_err(|e| anyhow!("{e:#}"))
            .and_then(|client| client.statefulset(&pod.namespace, &set));
        let mut warnings = Vec::new();
        match read {
            Ok(facts) => {
                let facts = facts.or_exit(Exit::Identity)?;
                let (merged, disagreements) =
                    facts.under(&pod.set_flags, &set).or_exit(Exit::Identity)?;
                if merged.replicas == 0 && !zero_is_a_pause {
                    crate::fail!(
                        Exit::Identity,
                        "StatefulSet `{set}` has spec.replicas 0: none of its pods should be \
                         running; scale it up, or pass --replicas N"
                    );
                }
                warnings.extend(disagreements);
                pod.shape.replicas = Some(merged.replicas);
                pod.shape.start_ordinal = merged.start_ordinal;
                pod.service = merged.service;
            }
            Err(e) if pod.set_flags.replicas.is_some() => warnings.push(format!(
                "--from-api: {e:#}; going on with --replicas and the other flags alone"
            )),
            Err(e) => return Err(Failure::new(Exit::Api, e)),
        }
        if let (Some(node), false) = (&pod.api.node_name, pod.api.topology.known) {
            let client = client.or_exit(Exit::Api)?;
            pod.api.topology = client
                .node(node)
                .or_exit(Exit::Api)?
                .or_exit(Exit::Identity)?;
        }
        Ok(warnings)
    }

    fn warn(&self, warnings: &[String]) {
        if !self.quiet {
            for warning in warnings {
                say(&format!("rolecall: warning: {warning}"));
            }
        }
    }

    /// What a view says about this pod besides its place in the set.
    pub fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            vars: &self.role.vars,
            first_boot: self.role.first_boot,
            topology: &self.pod.api.topology,
        }
    }

    /// Whether the set's size is known (`--replicas`, or the StatefulSet's).
    pub fn size_known(&self) -> bool {
        self.pod.shape.replicas.is_some()
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

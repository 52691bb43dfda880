//! The membership actions of day 2, wired to the commands: before a render with `--data-dir`,
//! the role's membership action joins the running cluster and says what the templates get
//! (`membership`, and files to write besides); `rolecall leave` in a preStop hook. The role's
//! vars give the ports and sizes; every failure of the cluster is exit 7. Behind the cargo
//! feature `member` (on by default).

use crate::write::OutFile;
#[cfg(not(feature = "member"))]
use {
    crate::cli::LeaveArgs, crate::error::Result, crate::inputs::Inputs, crate::model::Cluster,
    crate::role::Membership, crate::settings::OutputSettings, std::path::Path, std::time::Duration,
};

/// What a membership action decided for this pod: what the templates see as `membership`, and
/// files to write besides the role's.
pub struct Decided {
    pub membership: serde_json::Value,
    pub files: Vec<OutFile>,
}

#[cfg(feature = "member")]
pub use with_member::{before_render, leave};

#[cfg(not(feature = "member"))]
pub fn before_render(
    _: &Inputs,
    _: Membership,
    _: &Cluster,
    _: u32,
    _: &Path,
    _: &OutputSettings,
    _: Duration,
) -> Result<Option<Decided>> {
    without_membership()
}

#[cfg(not(feature = "member"))]
pub fn leave(_: &LeaveArgs) -> Result<()> {
    without_membership()
}

/// What a build without the `member` feature says where a membership call is asked for.
#[cfg(not(feature = "member"))]
fn without_membership<T>() -> Result<T> {
    crate::fail!(
        crate::error::Exit::Usage,
        "this rolecall is built without membership actions (cargo feature `member`); use the \
         default build, or render without --data-dir"
    )
}

#[cfg(feature = "member")]
mod with_member {
    use std::path::Path;
    use std::time::Duration;

    use anyhow::{Context as _, anyhow};

    use super::Decided;
    use crate::cli::LeaveArgs;
    use crate::error::{Exit, Failure, OrExit, Result};
    use crate::inputs::Inputs;
    use crate::member::zookeeper::{self, ZkPod};
    use crate::member::{self, EtcdPod};
    use crate::model::Cluster;
    use crate::role::{Membership, Var};
    use crate::settings::{OutputSettings, duration_flag, set_size_unknown};
    use crate::write::OutFile;

    /// Before a render: the membership action of `kind` for the pod at `index`; `None` when
    /// the pod starts from its data as it is and the templates decide.
    pub fn before_render(
        inputs: &Inputs,
        kind: Membership,
        cluster: &Cluster,
        index: u32,
        data_dir: &Path,
        output: &OutputSettings,
        timeout: Duration,
    ) -> Result<Option<Decided>> {
        let quiet = output.quiet;
        match kind {
            Membership::Etcd => {
                let pod = etcd_pod(inputs, cluster, index, cluster.replicas, timeout, quiet)?;
                let joined = member::prepare_etcd(&pod, data_dir).or_exit(Exit::Membership)?;
                joined
                    .map(|joined| {
                        Ok(Decided {
                            membership: to_value(&joined)?,
                            files: Vec::new(),
                        })
                    })
                    .transpose()
            }
            Membership::Zookeeper => {
                if !same_dir(&output.out, data_dir) {
                    crate::fail!(
                        Exit::Usage,
                        "membership `zookeeper` keeps ZooKeeper's dynamic config files beside \
                         zoo.cfg, in the data volume: give --out the same directory as \
                         --data-dir ({})",
                        data_dir.display()
                    );
                }
                let pod = zk_pod(inputs, cluster, index, cluster.replicas, timeout, quiet)?;
                let dynamic =
                    zookeeper::prepare_zookeeper(&pod, data_dir).or_exit(Exit::Membership)?;
                let file = OutFile {
                    name: dynamic.dynamic_config.clone(),
                    content: dynamic.servers.clone().into_bytes(),
                    mode: output.mode,
                };
                Ok(Some(Decided {
                    membership: to_value(&dynamic)?,
                    files: vec![file],
                }))
            }
        }
    }

    /// `rolecall leave`: in a preStop hook, leaves the cluster when the set shrank past this
    /// pod; nothing on a restart, a rolling update or a scale to 0.
    pub fn leave(args: &LeaveArgs) -> Result<()> {
        let timeout = duration_flag("--timeout", &args.timeout).or_exit(Exit::Usage)?;
        let inputs = Inputs::at_any_size(&args.pod, &args.role, args.quiet)?;
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
        // The pods up to this one, whatever the set's size now: their addresses are the
        // members'.
        let known = set_size.max(id.index + 1);
        let cluster = inputs
            .model(&id.set)?
            .cluster(known)
            .or_exit(Exit::Template)?;
        let quiet = args.quiet;
        match membership {
            Membership::Etcd => {
                let pod = etcd_pod(&inputs, &cluster, id.index, set_size, timeout, quiet)?;
                member::leave_etcd(&pod).or_exit(Exit::Membership)?;
            }
            Membership::Zookeeper => {
                let pod = zk_pod(&inputs, &cluster, id.index, set_size, timeout, quiet)?;
                zookeeper::leave_zookeeper(&pod).or_exit(Exit::Membership)?;
            }
        }
        Ok(())
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
        let vars = RoleVars {
            inputs,
            kind: "etcd",
        };
        let peer_port = vars.port("peer_port")?;
        let bootstrap_size = vars.bootstrap_size(set_size)?;
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

    /// The integer vars a membership action of `kind` reads from the role.
    struct RoleVars<'a> {
        inputs: &'a Inputs,
        kind: &'static str,
    }

    impl RoleVars<'_> {
        fn int(&self, name: &str) -> Result<i64> {
            match self.inputs.role.vars.get(name) {
                Some(Var::Int(n)) => Ok(*n),
                _ => crate::fail!(
                    Exit::Template,
                    "role {}: membership `{}` needs the integer var `{name}`",
                    self.inputs.role.role.name,
                    self.kind
                ),
            }
        }

        fn port(&self, name: &str) -> Result<u16> {
            u16::try_from(self.int(name)?)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Failure::new(Exit::Usage, anyhow!("var `{name}` is not a port")))
        }

        /// `bootstrap_size`, where 0 stands for the set's size.
        fn bootstrap_size(&self, set_size: u32) -> Result<u32> {
            match u32::try_from(self.int("bootstrap_size")?) {
                Ok(0) => Ok(set_size),
                Ok(n) => Ok(n),
                Err(_) => crate::fail!(Exit::Usage, "var `bootstrap_size` must be 0 or more"),
            }
        }
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
        let vars = RoleVars {
            inputs,
            kind: "zookeeper",
        };
        let (quorum_port, election_port) = (vars.port("quorum_port")?, vars.port("election_port")?);
        let bootstrap_size = vars.bootstrap_size(set_size)?;
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
}

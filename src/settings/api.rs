//! The Kubernetes API settings: `--from-api` and its deadline, the node whose labels give the
//! topology, and a downward-API labels file that gives it without the API.

use std::time::Duration;

use crate::cli::PodArgs;
use crate::error::{Exit, OrExit, Result};
use crate::kube;
use crate::names::is_dns_name;
use crate::topology::Topology;

#[derive(Debug)]
pub struct ApiSettings {
    /// `--from-api`, with the deadline of its reads.
    pub from_api: Option<Duration>,
    /// `--node-name`: with `--from-api`, the node whose labels give the topology.
    pub node_name: Option<String>,
    /// From `--labels-file`, or (later) the node; unknown without either.
    pub topology: Topology,
}

impl ApiSettings {
    pub fn from_args(args: &PodArgs) -> Result<Self> {
        let from_api = match args.from_api {
            false => None,
            true if !kube::AVAILABLE => crate::fail!(
                Exit::Usage,
                "--from-api: this rolecall was built without the Kubernetes API client (cargo \
                 feature `kube`); pass --replicas N (and --start-ordinal, --service), or use a \
                 build with it"
            ),
            true => Some(
                super::duration_flag("--api-timeout", &args.api_timeout).or_exit(Exit::Usage)?,
            ),
        };
        if let Some(node) = &args.node_name
            && !is_dns_name(node)
        {
            crate::fail!(
                Exit::Usage,
                "node name `{}` (--node-name, NODE_NAME) is not a DNS name; set NODE_NAME from \
                 the downward API's spec.nodeName",
                node.escape_debug()
            );
        }
        let topology = match &args.labels_file {
            None => Topology::default(),
            Some(file) => Topology::read_labels_file(file).or_exit(Exit::Identity)?,
        };
        Ok(ApiSettings {
            from_api,
            node_name: args.node_name.clone(),
            topology,
        })
    }
}

//! The Kubernetes API client: reads this pod's StatefulSet and its node with the pod's service
//! account, as Kubernetes' own in-cluster clients do: the API server at KUBERNETES_SERVICE_HOST
//! and KUBERNETES_SERVICE_PORT, the service account's token read afresh for every request,
//! trusting only the service account's `ca.crt`. One GET at a time, with timeouts and a bounded
//! retry. The HTTPS part is behind the cargo feature `kube` (on by default).

#[cfg(feature = "kube")]
mod objects;
mod set;

#[cfg(feature = "kube")]
mod client;
#[cfg(feature = "kube")]
mod tls;

use std::path::PathBuf;

pub use set::{SetFacts, SetFlags};

use crate::topology::Topology;

/// Where Kubernetes mounts a pod's service account: `token`, `ca.crt` and `namespace`.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The environment variable that points rolecall at another service-account directory.
pub const SERVICE_ACCOUNT_DIR_VAR: &str = "ROLECALL_SERVICE_ACCOUNT_DIR";

/// Whether this build has the API client.
pub const AVAILABLE: bool = cfg!(feature = "kube");

/// The service-account directory: ROLECALL_SERVICE_ACCOUNT_DIR, else where Kubernetes mounts it.
pub fn service_account_dir() -> PathBuf {
    std::env::var_os(SERVICE_ACCOUNT_DIR_VAR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), PathBuf::from)
}

#[cfg(feature = "kube")]
pub use client::Client;

/// Without the cargo feature `kube` there is no client; `AVAILABLE` is false and the settings
/// refuse `--from-api` before one is asked for.
#[cfg(not(feature = "kube"))]
pub enum Client {}

#[cfg(not(feature = "kube"))]
impl Client {
    pub fn in_cluster(
        _dir: &std::path::Path,
        _timeout: std::time::Duration,
    ) -> anyhow::Result<Client> {
        anyhow::bail!(
            "this rolecall was built without the Kubernetes API client (cargo feature `kube`)"
        )
    }

    pub fn statefulset(&self, _namespace: &str, _name: &str) -> anyhow::Result<SetRead> {
        match *self {}
    }

    pub fn node(&self, _name: &str) -> anyhow::Result<NodeRead> {
        match *self {}
    }
}

/// A StatefulSet as read: what rolecall takes from it, or why it cannot use it (an answer the
/// API server gave, but no set rolecall can place: exit 3, not an API failure).
pub type SetRead = anyhow::Result<SetFacts>;

/// A node's topology as read, or why its labels cannot be used.
pub type NodeRead = anyhow::Result<Topology>;

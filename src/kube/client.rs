//! HTTPS to the API server through ureq and rustls (ring): one GET, retried with backoff on
//! connection errors, timeouts, 5xx and 429 (after the server's Retry-After), never on another
//! answer, all within one deadline (`--api-timeout`). The token is read from its file for every
//! request, as projected tokens rotate, and never printed.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::de::DeserializeOwned;
use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

use super::objects::{Node, StatefulSet};
use super::{NodeRead, SetRead};
use crate::topology::Topology;

/// Attempts of one request, the first included.
const ATTEMPTS: u32 = 5;
/// The wait before the second attempt; doubled before each next one, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// One attempt's connect timeout: an address that drops packets leaves time for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No object rolecall reads is near this large.
const MAX_BODY: u64 = 4 << 20;

/// The in-cluster API server, as this pod's service account reaches it.
pub struct Client {
    agent: Agent,
    /// `https://HOST:PORT`, an IPv6 host in brackets.
    base: String,
    /// `HOST:PORT` as the environment gives them, for messages.
    server: String,
    token: PathBuf,
    deadline: Instant,
    timeout: Duration,
}

/// What a request asks for, for messages.
enum Resource<'a> {
    StatefulSet { namespace: &'a str, name: &'a str },
    Node { name: &'a str },
}

impl Resource<'_> {
    fn describe(&self) -> String {
        match self {
            Resource::StatefulSet { namespace, name } => {
                format!("StatefulSet `{name}` in namespace `{namespace}`")
            }
            Resource::Node { name } => format!("node `{name}`"),
        }
    }

    /// What to do about a 403.
    fn rbac_hint(&self) -> String {
        match self {
            Resource::StatefulSet { namespace, name } => format!(
                "grant the pod's service account a Role in namespace `{namespace}` with the rule \
                 {{apiGroups: [\"apps\"], resources: [\"statefulsets\"], verbs: [\"get\"], \
                 resourceNames: [\"{name}\"]}} and a RoleBinding to it (see docs/api.md)"
            ),
            Resource::Node { .. } => "grant the pod's service account a ClusterRole with the rule \
                 {apiGroups: [\"\"], resources: [\"nodes\"], verbs: [\"get\"]} and a \
                 ClusterRoleBinding to it (see docs/api.md), or leave NODE_NAME unset and give \
                 --labels-file instead"
                .to_string(),
        }
    }

    fn not_found_hint(&self) -> &'static str {
        match self {
            Resource::StatefulSet { .. } => {
                "rolecall takes the set's name from the pod's hostname (or --name) and the \
                 namespace from --namespace, POD_NAMESPACE or the service account: check them"
            }
            Resource::Node { .. } => {
                "check NODE_NAME (--node-name), which should come from the \
                 downward API's spec.nodeName"
            }
        }
    }
}

impl Client {
    /// The API server of the cluster this pod runs in, trusting only `dir/ca.crt`; every request
    /// ends within `timeout` from now.
    pub fn in_cluster(dir: &Path, timeout: Duration) -> anyhow::Result<Client> {
        let env =
            |name: &str| {
                std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                anyhow!(
                    "{name} is not set: --from-api reads the Kubernetes API from inside a pod, \
                     where the kubelet sets KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"
                )
            })
            };
        let host = env("KUBERNETES_SERVICE_HOST")?;
        let port = env("KUBERNETES_SERVICE_PORT")?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
            anyhow!(
                "KUBERNETES_SERVICE_PORT `{}` is not a port",
                port.escape_debug()
            )
        })?;
        if host.contains(['/', '@', '?', '#', ' ']) || host.chars().any(char::is_control) {
            bail!(
                "KUBERNETES_SERVICE_HOST `{}` is not a host",
                host.escape_debug()
            );
        }
        let url_host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let ca = dir.join("ca.crt");
        let pem = fs::read(&ca).with_context(|| {
            format!(
                "cannot read the API server's CA certificate {}; the pod's service account is \
                 mounted there unless automountServiceAccountToken is false",
                ca.display()
            )
        })?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", ca.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", ca.display());
        }
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(Arc::new(super::tls::provider()))
            .build();
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            // In a pod, the API server's service address is reached directly: no HTTPS_PROXY.
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("rolecall/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .build()
            .into();
        Ok(Client {
            agent,
            base: format!("https://{url_host}:{port}"),
            server: format!("{host}:{port}"),
            token: dir.join("token"),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    /// `GET /apis/apps/v1/namespaces/NS/statefulsets/NAME`.
    pub fn statefulset(&self, namespace: &str, name: &str) -> anyhow::Result<SetRead> {
        let what = Resource::StatefulSet { namespace, name };
        let path = format!("/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}");
        let sts: StatefulSet = self.get(&path, &what)?;
        check_kind(&sts.kind, "StatefulSet", &what)?;
        Ok(sts.facts(name))
    }

    /// `GET /api/v1/nodes/NAME`: its zone and region labels.
    pub fn node(&self, name: &str) -> anyhow::Result<NodeRead> {
        let what = Resource::Node { name };
        let node: Node = self.get(&format!("/api/v1/nodes/{name}"), &what)?;
        check_kind(&node.kind, "Node", &what)?;
        let labels = &node.metadata.labels;
        Ok(Topology::from_labels(
            |key| labels.get(key).map(String::as_str),
            &format!("node `{name}`"),
        ))
    }

    fn read_token(&self) -> anyhow::Result<String> {
        let token = fs::read_to_string(&self.token).with_context(|| {
            format!(
                "cannot read the service account token {}; Kubernetes mounts it unless \
                 automountServiceAccountToken is false",
                self.token.display()
            )
        })?;
        let token = token.trim();
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            bail!(
                "the service account token {} is empty or not one line",
                self.token.display()
            );
        }
        Ok(token.to_string())
    }

    /// One GET, retried as the module says; the answer parsed as `T`.
    fn get<T: DeserializeOwned>(&self, path: &str, what: &Resource) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1.. {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!(self.timed_out(what, started));
            }
            let token = self.read_token()?;
            let result = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(remaining))
                .build()
                .header("Authorization", format!("Bearer {token}"))
                .call();
            // Why this attempt failed, if it may be retried, and how long the server asks to wait.
            let (failure, asked) = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let mut body = Vec::new();
                    response
                        .into_body()
                        .into_reader()
                        .take(MAX_BODY)
                        .read_to_end(&mut body)
                        .with_context(|| {
                            format!(
                                "reading the API server's answer for the {}",
                                what.describe()
                            )
                        })?;
                    if status == 200 {
                        return serde_json::from_slice(&body).with_context(|| {
                            format!(
                                "the API server's answer for the {} (GET {path}) is not the \
                                 object asked for",
                                what.describe()
                            )
                        });
                    }
                    let failure = self.status_error(status, &body, what, path);
                    if status != 429 && !(500..=599).contains(&status) {
                        return Err(failure);
                    }
                    (failure, retry_after)
                }
                Err(ureq::Error::Io(e)) if is_tls(&e) => bail!(self.tls_failed(&e)),
                Err(ureq::Error::Rustls(e)) => bail!(self.tls_failed(&e)),
                Err(ureq::Error::Timeout(ureq::Timeout::Connect)) => (
                    anyhow!(
                        "cannot connect to the Kubernetes API server at {} within {}s",
                        self.server,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    None,
                ),
                Err(ureq::Error::Timeout(_)) => (anyhow!(self.timed_out(what, started)), None),
                Err(e) => (
                    anyhow!(
                        "cannot reach the Kubernetes API server at {} \
                         (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT): {e}",
                        self.server
                    ),
                    None,
                ),
            };
            let wait = asked.unwrap_or(backoff);
            if attempt >= ATTEMPTS {
                return Err(failure.context(format!(
                    "gave up on the {} after {attempt} attempts",
                    what.describe()
                )));
            }
            if Instant::now() + wait >= self.deadline {
                return Err(failure.context(format!(
                    "gave up on the {} after {attempt} attempts in {:.1}s: the next would start \
                     past --api-timeout {}",
                    what.describe(),
                    started.elapsed().as_secs_f64(),
                    crate::duration::show(self.timeout)
                )));
            }
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the loop returns")
    }

    fn tls_failed(&self, e: &dyn std::fmt::Display) -> String {
        format!(
            "no trusted TLS connection to the Kubernetes API server at {}: {e}; rolecall trusts \
             only the CA in {}",
            self.server,
            self.token.with_file_name("ca.crt").display()
        )
    }

    fn timed_out(&self, what: &Resource, started: Instant) -> String {
        format!(
            "the Kubernetes API server at {} did not answer for the {} within {} (--api-timeout; \
             {:.1}s spent)",
            self.server,
            what.describe(),
            crate::duration::show(self.timeout),
            started.elapsed().as_secs_f64()
        )
    }

    /// An answer other than 200, with the server's own message when it sent a Status.
    fn status_error(&self, status: u16, body: &[u8], what: &Resource, path: &str) -> anyhow::Error {
        let said = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .map(|m| {
                let m: String = m.chars().take(400).collect();
                format!(" (the server says: {})", m.escape_debug())
            })
            .unwrap_or_default();
        let described = what.describe();
        match status {
            401 => anyhow!(
                "the Kubernetes API server refused the service account token in {} (401 \
                 Unauthorized){said}; the token is expired, revoked or of another cluster",
                self.token.display()
            ),
            403 => anyhow!(
                "the pod's service account may not read the {described} (403 Forbidden){said}; {}",
                what.rbac_hint()
            ),
            404 => anyhow!(
                "there is no {described} (404 Not Found){said}; {}",
                what.not_found_hint()
            ),
            _ => anyhow!(
                "the Kubernetes API server answered {status} for the {described} (GET \
                 {path}){said}"
            ),
        }
    }
}

/// The object is of the kind asked for (a proxy or a wrong path may answer something else).
fn check_kind(kind: &str, want: &str, what: &Resource) -> anyhow::Result<()> {
    if !kind.is_empty() && kind != want {
        bail!(
            "the API server's answer for the {} is a `{}`, not a {want}",
            what.describe(),
            kind.escape_debug()
        );
    }
    Ok(())
}

/// A TLS failure (an untrusted or mismatched certificate, a refused handshake): retrying
/// would not change it.
fn is_tls(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

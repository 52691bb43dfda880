//! A local HTTPS server that answers as the Kubernetes API server does, for the tests that read
//! the API (`tests/api.rs`) and the simulated StatefulSet's pods (`--from-api`): a CA and a
//! server certificate made by the test, requests as the server saw them, and objects laid out as
//! the API serves them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A CA, and a server certificate it signed for `names` (IP addresses become IP SANs).
pub struct Pki {
    pub ca_pem: String,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// A CA named `ca_name`, and a server certificate it signed for `names` with the server key `key`.
pub fn pki_with(ca_name: &str, names: &[&str], key: KeyPair) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// One answer of the server: a status and a JSON body, with extra header lines.
#[derive(Clone)]
pub struct Reply {
    pub code: u16,
    pub body: String,
    /// Header lines beyond the usual ones, each ending in `\r\n`.
    pub extra: &'static str,
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub at: Instant,
}

/// The TLS versions a server speaks.
#[derive(Clone, Copy)]
pub enum Versions {
    Default,
    Tls12Only,
}

/// A `Status` object, as the API server answers an error.
pub fn status(code: u16, reason: &str, message: &str) -> Reply {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    Reply {
        code,
        body: body.to_string(),
        extra: "",
    }
}

/// A 200 with this JSON body.
pub fn ok(body: String) -> Reply {
    Reply {
        code: 200,
        body,
        extra: "",
    }
}

/// Serves HTTPS on `bind` with `pki`'s certificate, one request per connection, each answered
/// by `answer`; `connected` counts the TLS connections accepted (failed handshakes too).
pub fn serve(
    pki: &Pki,
    bind: &str,
    versions: Versions,
    mut connected: impl FnMut() + Send + 'static,
    mut answer: impl FnMut(&Seen) -> Reply + Send + 'static,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider);
    let builder = match versions {
        Versions::Default => builder.with_safe_default_protocol_versions(),
        Versions::Tls12Only => builder.with_protocol_versions(&[&rustls::version::TLS12]),
    };
    let config = builder
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            connected();
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
            let tls = ServerConnection::new(config.clone()).unwrap();
            let mut stream = StreamOwned::new(tls, tcp);
            let Some((path, headers)) = read_request(&mut stream) else {
                continue;
            };
            let seen = Seen {
                path,
                headers,
                at: Instant::now(),
            };
            let Reply { code, body, extra } = answer(&seen);
            let response = format!(
                "HTTP/1.1 {code} {}\r\nAudit-Id: 5b3c1f2e-0d4e-4c55-9a8e-2f4a6c1d9e10\r\n\
                 Cache-Control: no-cache, private\r\nContent-Type: application/json\r\n\
                 {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(code),
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.flush();
            stream.conn.send_close_notify();
            let _ = stream.conn.complete_io(&mut stream.sock);
        }
    });
    addr
}

/// The request line's path and the headers (names lowercase); `None` if the handshake or the
/// request failed.
fn read_request(stream: &mut impl Read) -> Option<(String, BTreeMap<String, String>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || head.len() > 65536 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines
        .next()?
        .strip_prefix("GET ")?
        .split(' ')
        .next()?
        .to_string();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Some((path, headers))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    }
}

/// A StatefulSet as `kubectl get -o json` shows it, with the fields rolecall ignores.
pub fn statefulset_in(
    namespace: &str,
    name: &str,
    replicas: u32,
    start: Option<u32>,
    service: &str,
) -> String {
    let mut spec = serde_json::json!({
        "replicas": replicas,
        "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
        "template": {
            "metadata": { "creationTimestamp": null, "labels": { "app.kubernetes.io/name": name } },
            "spec": {
                "initContainers": [{
                    "name": "rolecall", "image": "rolecall", "args": ["render", "--from-api"],
                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "Always"
                }],
                "containers": [{
                    "name": "server", "image": "server:1", "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "serviceAccountName": name,
                "serviceAccount": name, "securityContext": {}, "schedulerName": "default-scheduler"
            }
        },
        "serviceName": service,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } },
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" }
    });
    if let Some(start) = start {
        spec["ordinals"] = serde_json::json!({ "start": start });
    }
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": namespace, "uid": "0b7f4c53-8a57-4c8e-9d3b-6a2f1e9c7d21",
            "resourceVersion": "48213", "generation": 3,
            "creationTimestamp": "2026-11-28T09:14:03Z",
            "labels": { "app.kubernetes.io/name": name },
            "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
            "managedFields": [{
                "manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": "apps/v1", "time": "2026-11-28T09:14:03Z",
                "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:replicas": {} } }
            }]
        },
        "spec": spec,
        "status": {
            "observedGeneration": 3, "replicas": replicas, "readyReplicas": replicas,
            "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": format!("{name}-6d5b8f7c9"), "updateRevision": format!("{name}-6d5b8f7c9"),
            "collisionCount": 0, "availableReplicas": replicas
        }
    })
    .to_string()
}

/// A Node as `kubectl get -o json` shows it, with its topology labels.
pub fn node(name: &str, zone: &str, region: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name, "uid": "6c0f6a2e-2b8c-4f64-8a77-1f0d3c5e9b42",
            "resourceVersion": "51877", "creationTimestamp": "2026-11-01T07:00:00Z",
            "labels": {
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "e2-standard-4",
                "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone
            },
            "annotations": { "node.alpha.kubernetes.io/ttl": "0",
                             "volumes.kubernetes.io/controller-managed-attach-detach": "true" }
        },
        "spec": { "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                  "providerID": "gce://project/europe-west1-b/node" },
        "status": {
            "capacity": { "cpu": "4", "memory": "16393220Ki", "pods": "110" },
            "allocatable": { "cpu": "3920m", "memory": "13263876Ki", "pods": "110" },
            "conditions": [{ "type": "Ready", "status": "True",
                             "lastHeartbeatTime": "2026-11-30T12:00:00Z",
                             "lastTransitionTime": "2026-11-01T07:01:00Z",
                             "reason": "KubeletReady", "message": "kubelet is posting ready status" }],
            "addresses": [{ "type": "InternalIP", "address": "10.132.0.7" },
                          { "type": "Hostname", "address": name }],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": { "kubeletVersion": "v1.33.2", "containerRuntimeVersion": "containerd://2.0.5",
                          "kernelVersion": "6.6.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                          "operatingSystem": "linux", "architecture": "amd64" }
        }
    })
    .to_string()
}

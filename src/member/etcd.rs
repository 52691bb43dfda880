//! etcd's membership through its v3 JSON gateway on the client port: the member list, `add`,
//! `remove` and leadership transfer, over plain HTTP, each call bounded. etcd's official images
//! have no shell, so rolecall makes these calls itself instead of `etcdctl`.

use std::time::Duration;

use anyhow::anyhow;
use serde::Deserialize;
use serde_json::json;

use super::CallError;

/// One member as the gateway lists it. A member that has not started yet has no client URL: it
/// publishes them when it starts. One added with `member add` has no name either (matched by
/// its peer URL); one of a static bootstrap has the name `initial-cluster` gave it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// The member id: a 64-bit number the gateway writes as a string.
    #[serde(rename = "ID", deserialize_with = "id_from_string")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

impl Member {
    /// A member that has started: it has published its client URLs.
    pub fn started(&self) -> bool {
        !self.client_urls.is_empty()
    }
}

fn id_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    match Id::deserialize(d)? {
        Id::Number(n) => Ok(n),
        Id::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
struct Members {
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(deserialize_with = "id_from_string")]
    member_id: u64,
}

#[derive(Deserialize)]
struct Status {
    header: Header,
    #[serde(deserialize_with = "id_from_string")]
    leader: u64,
}

/// One etcd member's client endpoint, `http://HOST:PORT`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    agent: ureq::Agent,
}

impl Endpoint {
    /// Each call connects within `connect` and answers within `timeout`.
    pub fn new(url: &str, connect: Duration, timeout: Duration) -> Endpoint {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(connect))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // In-cluster traffic: a proxy from the environment must not carry it.
            .proxy(None)
            .max_redirects(0)
            .build()
            .into();
        Endpoint {
            url: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, CallError> {
        let url = format!("{}/v3/{path}", self.url);
        let mut response = self
            .agent
            .post(&url)
            .content_type("application/json")
            .send(body.to_string())
            .map_err(|e| match e {
                ureq::Error::Http(_) | ureq::Error::Protocol(_) => CallError::Refused(anyhow!(
                    "{url}: not an answer of etcd's plain-HTTP gateway ({e}); rolecall's \
                     membership calls need plain-HTTP client URLs"
                )),
                e => CallError::Unreachable(anyhow!("{url}: {e}")),
            })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| CallError::Unreachable(anyhow!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                CallError::Refused(anyhow!(
                    "{url}: an answer etcd would not give ({e}): {text}"
                ))
            });
        }
        #[derive(Deserialize)]
        struct Failure {
            #[serde(default)]
            message: String,
            #[serde(default)]
            code: u32,
        }
        let failure: Failure = serde_json::from_str(&text).unwrap_or(Failure {
            message: text.trim().to_string(),
            code: 0,
        });
        let error = anyhow!("{url}: {} (HTTP {status})", failure.message);
        // gRPC Unavailable (14), and the refusals etcd lifts by itself once members connect.
        let busy = failure.code == 14
            || [
                "unhealthy cluster",
                "not enough started members",
                "no leader",
                "leader changed",
                "timed out",
                "too many requests",
            ]
            .iter()
            .any(|m| failure.message.contains(m));
        Err(if busy {
            CallError::Busy(error)
        } else {
            CallError::Refused(error)
        })
    }

    pub fn members(&self) -> Result<Vec<Member>, CallError> {
        Ok(self
            .call::<Members>("cluster/member/list", json!({}))?
            .members)
    }

    /// Adds a member with this peer URL; the cluster's members after it.
    pub fn add(&self, peer_url: &str) -> Result<Vec<Member>, CallError> {
        Ok(self
            .call::<Members>("cluster/member/add", json!({ "peerURLs": [peer_url] }))?
            .members)
    }

    pub fn remove(&self, id: u64) -> Result<(), CallError> {
        self.call::<serde_json::Value>("cluster/member/remove", json!({ "ID": id.to_string() }))
            .map(drop)
    }

    /// The id of the member answering here, and of the leader it knows.
    pub fn status(&self) -> Result<(u64, u64), CallError> {
        let status: Status = self.call("maintenance/status", json!({}))?;
        Ok((status.header.member_id, status.leader))
    }

    /// Asks the leader (which must be the member answering here) to hand leadership to `to`.
    pub fn move_leader(&self, to: u64) -> Result<(), CallError> {
        self.call::<serde_json::Value>(
            "maintenance/transfer-leadership",
            json!({ "targetID": to.to_string() }),
        )
        .map(drop)
    }
}

/// The `NAME=PEER-URL,...` list etcd's `initial-cluster` takes: every member of the cluster,
/// started or not (etcd checks that it matches the cluster's members by peer URL). A member not
/// started yet has no name; it is given `name_of(peer URL)`.
pub fn initial_cluster(members: &[Member], name_of: impl Fn(&str) -> Option<String>) -> String {
    let mut entries: Vec<String> = members
        .iter()
        .flat_map(|m| {
            let name = if m.name.is_empty() {
                m.peer_urls.first().and_then(|url| name_of(url))
            } else {
                Some(m.name.clone())
            };
            m.peer_urls
                .iter()
                .map(move |url| format!("{}={url}", name.clone().unwrap_or_default()))
        })
        .collect();
    entries.sort();
    entries.join(",")
}

/// The member id as etcd prints it: hexadecimal.
pub fn show_id(id: u64) -> String {
    format!("{id:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The members as [`Endpoint::members`] and [`Endpoint::add`] read them.
    fn gateway_members(text: &str) -> Vec<Member> {
        serde_json::from_str::<Members>(text).unwrap().members
    }

    /// As etcd 3.4's gateway answers `member add` (measured with Debian's etcd 3.4.23).
    const ADDED: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"member":{"ID":"3030980654471739183","peerURLs":["http://127.0.0.1:23801"]},"members":[{"ID":"3030980654471739183","peerURLs":["http://127.0.0.1:23801"]},{"ID":"3319814642761637952","name":"t0","peerURLs":["http://127.0.0.1:23800"],"clientURLs":["http://127.0.0.1:23790"]}]}"#;

    #[test]
    fn the_gateway_member_list_parses_with_unstarted_members() {
        let members = gateway_members(ADDED);
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].id, 3030980654471739183);
        assert!(!members[0].started());
        assert_eq!(members[1].name, "t0");
        assert!(members[1].started());
        assert_eq!(show_id(members[1].id), "2e1259d415f2a040");
    }

    /// A server at a local port that answers one request per connection with each of
    /// `answers` (raw HTTP) in turn, and hands back the request lines it read.
    fn server(answers: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let mut stream = listener.accept().unwrap().0;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap();
                    }
                    if line.starts_with("POST") {
                        requests.push(line.trim().to_string());
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
            }
            requests
        });
        (url, thread)
    }

    fn http(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn gateway_answers_are_members_or_busy_or_refused() {
        let (url, thread) = server(vec![
            http("200 OK", ADDED),
            // gRPC Unavailable, whatever its message; ResourceExhausted by its message.
            http(
                "503 Service Unavailable",
                r#"{"error":"etcdserver: server stopped","code":14,"message":"etcdserver: server stopped"}"#,
            ),
            http(
                "429 Too Many Requests",
                r#"{"error":"etcdserver: too many requests","code":8,"message":"etcdserver: too many requests"}"#,
            ),
            http(
                "400 Bad Request",
                r#"{"error":"etcdserver: member not found","code":5,"message":"etcdserver: member not found"}"#,
            ),
            http("404 Not Found", "404 page not found\n"),
            "\x15\x03\x01\x00\x02\x02\x46".to_string(),
        ]);
        let bound = Duration::from_secs(10);
        let endpoint = Endpoint::new(&format!("{url}/"), bound, bound);
        assert_eq!(endpoint.members().unwrap(), gateway_members(ADDED));
        for _ in 0..2 {
            let busy = endpoint.remove(1);
            assert!(matches!(busy, Err(CallError::Busy(_))), "{busy:?}");
        }
        match endpoint.remove(1) {
            Err(CallError::Refused(e)) => assert!(format!("{e}").contains("member not found")),
            other => panic!("{other:?}"),
        }
        match endpoint.members() {
            Err(CallError::Refused(e)) => {
                assert!(
                    format!("{e}").contains("404 page not found (HTTP 404"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        match endpoint.members() {
            Err(CallError::Refused(e)) => assert!(format!("{e}").contains("plain-HTTP"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            thread.join().unwrap(),
            [
                "POST /v3/cluster/member/list HTTP/1.1",
                "POST /v3/cluster/member/remove HTTP/1.1",
                "POST /v3/cluster/member/remove HTTP/1.1",
                "POST /v3/cluster/member/remove HTTP/1.1",
                "POST /v3/cluster/member/list HTTP/1.1",
                "POST /v3/cluster/member/list HTTP/1.1",
            ]
        );
        let unreachable = Endpoint::new(&url, bound, bound).members();
        assert!(
            matches!(unreachable, Err(CallError::Unreachable(_))),
            "{unreachable:?}"
        );
    }

    #[test]
    fn initial_cluster_names_unstarted_members_by_their_peer_url() {
        let members = gateway_members(ADDED);
        let list = initial_cluster(&members, |url| {
            (url == "http://127.0.0.1:23801").then(|| "t1".to_string())
        });
        assert_eq!(list, "t0=http://127.0.0.1:23800,t1=http://127.0.0.1:23801");
    }
}

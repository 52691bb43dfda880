//! Probing addresses: a name lookup and a TCP connect each, on threads, with why one is not ready.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::target::Endpoint;
use crate::duration::show;

/// Probes in flight at once: enough for a large set, few enough threads for a small pod.
const MAX_IN_FLIGHT: usize = 64;

/// Why an address is not ready (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not probed yet.
    Untried,
    /// The resolver says the name does not exist (or has no address).
    NoRecord(String),
    /// The resolver failed otherwise, e.g. no DNS server answered.
    DnsFailed(String),
    Refused,
    /// The connect did not finish within the attempt.
    TimedOut(Duration),
    /// The probe (most likely its DNS lookup) has been running this long without an answer.
    NoAnswer(Duration),
    Other(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Untried => write!(f, "not tried yet"),
            Reason::NoRecord(detail) => write!(f, "no DNS record ({detail})"),
            Reason::DnsFailed(detail) => write!(f, "DNS lookup failed ({detail})"),
            Reason::Refused => write!(f, "connection refused"),
            Reason::TimedOut(after) => write!(f, "timed out after {}", show(*after)),
            Reason::NoAnswer(after) => {
                write!(f, "no answer after {} (slow DNS lookup?)", show(*after))
            }
            Reason::Other(detail) => write!(f, "{detail}"),
        }
    }
}

/// The state of each address.
pub(super) type States = Vec<Option<Reason>>;

pub(super) fn ready(state: &Option<Reason>) -> bool {
    state.is_none()
}

/// Runs probes on threads, at most `MAX_IN_FLIGHT` at once and never two for one address. A
/// probe still running when its attempt ends (getaddrinfo has no timeout of its own) is left to
/// finish: its answer counts in a later round instead of being thrown away, so a resolver slower
/// than --interval delays the wait but cannot stall it.
pub(super) struct Prober {
    endpoints: Arc<[Endpoint]>,
    tx: mpsc::Sender<(usize, std::result::Result<(), Reason>)>,
    rx: mpsc::Receiver<(usize, std::result::Result<(), Reason>)>,
    /// Address index -> when its running probe started.
    in_flight: HashMap<usize, Instant>,
}

impl Prober {
    pub(super) fn new(endpoints: &[Endpoint]) -> Self {
        let (tx, rx) = mpsc::channel();
        Prober {
            endpoints: endpoints.into(),
            tx,
            rx,
            in_flight: HashMap::new(),
        }
    }

    /// Probes the addresses at `which` (those not already being probed), each connect for at
    /// most `attempt`, and records every answer that comes in by the end of the attempt.
    pub(super) fn round(&mut self, which: &[usize], attempt: Duration, states: &mut States) {
        let deadline = Instant::now() + attempt + Duration::from_millis(50);
        let mut queue = which
            .iter()
            .filter(|i| !self.in_flight.contains_key(i))
            .copied()
            .collect::<std::collections::VecDeque<_>>();
        loop {
            while self.in_flight.len() < MAX_IN_FLIGHT {
                let Some(i) = queue.pop_front() else { break };
                self.start(i, attempt, states);
            }
            if self.in_flight.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((i, result)) = self.rx.recv_timeout(left) else {
                break;
            };
            self.in_flight.remove(&i);
            states[i] = result.err();
        }
        for (&i, started) in &self.in_flight {
            states[i] = Some(Reason::NoAnswer(started.elapsed()));
        }
    }

    fn start(&mut self, i: usize, attempt: Duration, states: &mut States) {
        let (endpoints, tx) = (self.endpoints.clone(), self.tx.clone());
        let spawned = std::thread::Builder::new()
            .name("probe".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                // The receiver outlives every probe but the ones still running at exit.
                let _ = tx.send((i, probe(&endpoints[i], attempt)));
            });
        match spawned {
            Ok(_) => {
                self.in_flight.insert(i, Instant::now());
            }
            Err(e) => states[i] = Some(Reason::Other(format!("cannot start a probe: {e}"))),
        }
    }
}

/// Resolves the name and connects to each address it has until one accepts, the connects
/// within `attempt`.
pub fn probe(endpoint: &Endpoint, attempt: Duration) -> std::result::Result<(), Reason> {
    let addrs: Vec<SocketAddr> = match (endpoint.host.as_str(), endpoint.port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(dns_reason(&e)),
    };
    // The connect gets the whole attempt even after a slow lookup: the lookup is done now.
    let start = Instant::now();
    if addrs.is_empty() {
        return Err(Reason::NoRecord("no address".into()));
    }
    let mut first = None;
    for addr in addrs {
        let left = attempt.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => {
                first.get_or_insert(connect_reason(&e, attempt));
            }
        }
    }
    Err(first.unwrap_or(Reason::TimedOut(attempt)))
}

fn dns_reason(e: &io::Error) -> Reason {
    let text = e.to_string();
    let detail = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string();
    // getaddrinfo's EAI_NONAME / EAI_NODATA, as glibc and musl word them.
    let no_record = [
        "Name or service not known",
        "Name does not resolve",
        "No address associated with hostname",
        "Address family for hostname not supported",
    ];
    if no_record.iter().any(|m| detail.contains(m)) {
        Reason::NoRecord(detail)
    } else {
        Reason::DnsFailed(detail)
    }
}

fn connect_reason(e: &io::Error, attempt: Duration) -> Reason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Reason::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::TimedOut(attempt),
        _ => Reason::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_tells_refused_from_ready_and_unresolvable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let second = Duration::from_secs(1);
        let up = Endpoint {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(probe(&up, second), Ok(()));
        drop(listener);
        assert_eq!(probe(&up, second), Err(Reason::Refused));
        let nowhere = Endpoint {
            host: "no-such-host.invalid".into(),
            port,
        };
        assert!(matches!(probe(&nowhere, second), Err(Reason::NoRecord(_))));
    }
}

//! Waiting for peers: what a `--for` target names, TCP probes of its addresses, and the loop
//! with its timeout, jittered interval and progress lines.
//!
//! A target is ready once its name resolves (getaddrinfo, so /etc/hosts and /etc/resolv.conf as
//! the pod has them) and a TCP connection to its port succeeds. An address seen ready stays ready:
//! the wait is for "has come up", and re-probing would only let a flapping peer stall the start.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure};

use crate::cli::WaitArgs;
use crate::error::{Exit, Failure, Result};
use crate::model::{Cluster, Member, Model};

/// A progress line at most this often while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The shortest attempt: below this a connect to a healthy peer could time out.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);
/// The shortest --interval: anything shorter is a busy loop against the peers.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest --timeout or --interval: a typo guard far beyond any real wait.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
/// Probes in flight at once: enough for a large set, few enough threads for a small pod.
const MAX_IN_FLIGHT: usize = 64;
/// Not-ready addresses named per target in a progress line / in the timeout message.
const SHOWN_IN_PROGRESS: usize = 3;
const SHOWN_ON_TIMEOUT: usize = 10;

/// One `--for` value, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// The first pod with the role's leader role.
    Leader(Option<u16>),
    /// The pod with ordinal - 1.
    Previous(Option<u16>),
    /// At least N of the other pods of the set (this pod is never counted).
    Peers(u32, Option<u16>),
    /// Every other pod of the set.
    All(Option<u16>),
    /// Any address.
    Address(Endpoint),
}

impl Spec {
    /// Whether the target names pods of the set, so this pod's identity is needed.
    pub fn names_pods(&self) -> bool {
        !matches!(self, Spec::Address(_))
    }
}

/// The wait flags, checked.
#[derive(Debug)]
pub struct WaitSettings {
    /// As given, for messages, with what each one means.
    pub specs: Vec<(String, Spec)>,
    pub timeout: Duration,
    pub interval: Duration,
}

impl WaitSettings {
    pub fn from_args(args: &WaitArgs) -> anyhow::Result<Self> {
        let specs = args
            .targets
            .iter()
            .map(|t| Ok((t.clone(), parse_target(t)?)))
            .collect::<anyhow::Result<_>>()?;
        let timeout = parse_duration(&args.timeout)
            .map_err(|why| anyhow!("--timeout `{}` {why}", args.timeout.escape_debug()))?;
        let interval = parse_duration(&args.interval)
            .map_err(|why| anyhow!("--interval `{}` {why}", args.interval.escape_debug()))?;
        ensure!(
            interval >= MIN_INTERVAL,
            "--interval `{}` is too short; give at least 10ms",
            args.interval.escape_debug()
        );
        Ok(WaitSettings {
            specs,
            timeout,
            interval,
        })
    }

    /// Whether there is anything to wait for.
    pub fn is_set(&self) -> bool {
        !self.specs.is_empty()
    }

    /// Whether any target names pods of the set (not only HOST:PORT).
    pub fn names_pods(&self) -> bool {
        self.specs.iter().any(|(_, spec)| spec.names_pods())
    }
}

/// `leader`, `previous`, `peers=N`, `all`, each with an optional `:PORT`; else `HOST:PORT`.
pub fn parse_target(text: &str) -> anyhow::Result<Spec> {
    let shown = text.escape_debug();
    ensure!(
        !text.is_empty(),
        "a wait target is empty; use leader, previous, peers=N, all or HOST:PORT"
    );
    let (word, port) = match text.rsplit_once(':') {
        Some((word, port)) if is_keyword(word) => (word, Some(parse_port(port, text)?)),
        _ => (text, None),
    };
    match word {
        "leader" => return Ok(Spec::Leader(port)),
        "previous" => return Ok(Spec::Previous(port)),
        "all" => return Ok(Spec::All(port)),
        _ => {}
    }
    if let Some(n) = word.strip_prefix("peers=") {
        let n = n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            anyhow!(
                "wait target `{shown}`: peers=N needs a whole number N of at least 1 (other pods)"
            )
        })?;
        return Ok(Spec::Peers(n, port));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        bail!(
            "wait target `{shown}` is not a target; use leader, previous, peers=N, all or HOST:PORT"
        );
    };
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(|| {
            anyhow!("wait target `{shown}`: an IPv6 address goes in brackets, like [fd00::1]:5432")
        })?,
        None if host.contains(':') => {
            bail!("wait target `{shown}`: write an IPv6 address in brackets, like [fd00::1]:5432")
        }
        None => host,
    };
    ensure!(
        !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c.is_control()),
        "wait target `{shown}`: `{}` is not a host name or address",
        host.escape_debug()
    );
    Ok(Spec::Address(Endpoint {
        host: host.to_string(),
        port: parse_port(port, text)?,
    }))
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "leader" | "previous" | "all") || word.starts_with("peers=")
}

fn parse_port(port: &str, target: &str) -> anyhow::Result<u16> {
    port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
        anyhow!(
            "wait target `{}`: `{}` is not a port (1-65535)",
            target.escape_debug(),
            port.escape_debug()
        )
    })
}

/// `300` (seconds), `300s`, `5m`, `1.5s`, `250ms`, `1h`, `1m30s`. The error says what is wrong,
/// for a message that starts with the flag and its value.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    const UNITS: &str = "use a number with ms, s, m or h, like 300s, 5m or 1.5s";
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    if text.is_empty() {
        return Err(format!("is empty; {UNITS}"));
    }
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest.find(|c| !is_number(c)).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("is not a duration; {UNITS}"))?;
        let split = tail.find(is_number).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(split);
        let scale = match unit {
            // A bare number is seconds, but only on its own: `1m30` is a mistake.
            "" if rest.len() == text.len() => 1.0,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("is not a duration; {UNITS}")),
        };
        seconds += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| "is longer than a year".to_string())
}

/// A name (or address) and a port to connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What the wait needs: each target and the addresses it counts.
#[derive(Debug)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// Every address to probe, once even if several targets name it.
    pub endpoints: Vec<Endpoint>,
}

/// One `--for`, resolved to addresses.
#[derive(Debug)]
pub struct Target {
    /// As given: `leader`, `peers=2`, `db:5432`.
    pub label: String,
    /// What it stands for here, to follow the label: ` mysql-0.mysql.default.svc.cluster.local:3306`,
    /// ` (2 of 4 other pods)`, ` (this pod is the leader)`.
    pub detail: String,
    /// Indexes into `Plan::endpoints`.
    pub endpoints: Vec<usize>,
    /// How many of them must be ready; 0 when there is nothing to wait for.
    pub need: usize,
}

impl Target {
    fn describe(&self) -> String {
        format!("{}{}", self.label, self.detail)
    }
}

/// The pods a target can name: this pod in its model, or in the whole set when --replicas is
/// known (leader, peers and all need it).
pub enum Pods<'a, 'r> {
    /// Only HOST:PORT targets: who this pod is does not matter.
    Unknown,
    Model {
        model: &'a Model<'r>,
        index: u32,
    },
    Cluster {
        cluster: &'a Cluster<'r>,
        index: u32,
    },
}

impl<'r> Pods<'_, 'r> {
    fn cluster(&self, label: &str) -> Result<(&Cluster<'r>, u32)> {
        match self {
            Pods::Cluster { cluster, index } => Ok((cluster, *index)),
            _ => Err(Failure::new(
                Exit::Identity,
                anyhow!(
                    "wait target `{label}` needs the size of the set; pass --replicas N or set ROLECALL_REPLICAS (spec.replicas)"
                ),
            )),
        }
    }

    fn member(&self, index: u32) -> Result<Member> {
        match self {
            Pods::Cluster { cluster, .. } => Ok(cluster.members[index as usize].clone()),
            Pods::Model { model, .. } => model
                .member(index)
                .map_err(|e| Failure::new(Exit::Template, e)),
            Pods::Unknown => Err(no_identity()),
        }
    }

    fn index(&self) -> Option<u32> {
        match self {
            Pods::Unknown => None,
            Pods::Model { index, .. } | Pods::Cluster { index, .. } => Some(*index),
        }
    }
}

fn no_identity() -> Failure {
    Failure::new(
        Exit::Internal,
        anyhow!("a target naming pods was planned without this pod's identity"),
    )
}

/// Resolves every target to the addresses it counts. Errors here are the user's to fix (no
/// port, more peers than the set has), so they come before any waiting.
pub fn plan(specs: &[(String, Spec)], pods: &Pods) -> Result<Plan> {
    let mut plan = Plan {
        targets: Vec::new(),
        endpoints: Vec::new(),
    };
    let mut seen: HashMap<Endpoint, usize> = HashMap::new();
    let mut add = |endpoint: Endpoint| {
        *seen.entry(endpoint.clone()).or_insert_with(|| {
            plan.endpoints.push(endpoint);
            plan.endpoints.len() - 1
        })
    };
    let mut targets = Vec::new();
    for (label, spec) in specs {
        // Messages show a pod target without its `:PORT`: the address that follows has it.
        let name = match spec {
            Spec::Address(_) => label.as_str(),
            _ => label.split(':').next().unwrap_or(label),
        };
        let port_of = |member: &Member, port: Option<u16>| -> Result<Endpoint> {
            let Some(port) = port.or(member.port) else {
                return Err(Failure::new(
                    Exit::Usage,
                    anyhow!(
                        "wait target `{label}`: the role has no port; pass --port PORT or write `{label}:PORT`"
                    ),
                ));
            };
            Ok(Endpoint {
                host: member.fqdn.clone(),
                port,
            })
        };
        let target = match spec {
            Spec::Address(endpoint) => Target {
                label: label.clone(),
                detail: String::new(),
                endpoints: vec![add(endpoint.clone())],
                need: 1,
            },
            Spec::Leader(port) => {
                let (cluster, index) = pods.cluster(label)?;
                let Some(leader) = cluster.leader else {
                    return Err(Failure::new(
                        Exit::Template,
                        anyhow!(
                            "wait target `{label}`: no pod of the set has the leader role `{}` of role {}",
                            cluster.model.role().leader_role(),
                            cluster.model.role().name
                        ),
                    ));
                };
                if leader == index as usize {
                    itself(name, "this pod is the leader")
                } else {
                    let endpoint = port_of(&cluster.members[leader], *port)?;
                    one(name, &endpoint, add(endpoint.clone()))
                }
            }
            Spec::Previous(port) => match pods.index() {
                Some(0) => itself(name, "this is the first pod"),
                Some(index) => {
                    let endpoint = port_of(&pods.member(index - 1)?, *port)?;
                    one(name, &endpoint, add(endpoint.clone()))
                }
                None => return Err(no_identity()),
            },
            Spec::Peers(_, port) | Spec::All(port) => {
                let (cluster, index) = pods.cluster(label)?;
                let others = cluster
                    .members
                    .iter()
                    .filter(|m| m.index != index)
                    .map(|m| port_of(m, *port).map(&mut add))
                    .collect::<Result<Vec<_>>>()?;
                let count = others.len();
                let need = match spec {
                    Spec::Peers(n, _) => {
                        let n = *n as usize;
                        if count == 0 {
                            return Err(Failure::new(
                                Exit::Usage,
                                anyhow!(
                                    "wait target `{label}`: this pod is the only one of the set, it has no peers; \
                                     drop the target or use `all`"
                                ),
                            ));
                        }
                        if n > count {
                            return Err(Failure::new(
                                Exit::Usage,
                                anyhow!(
                                    "wait target `{label}`: a set of {} pods has only {count} other {}; ask for at most peers={count}",
                                    cluster.replicas,
                                    if count == 1 { "pod" } else { "pods" }
                                ),
                            ));
                        }
                        n
                    }
                    _ => count,
                };
                if count == 0 {
                    itself(name, "this pod is the only one")
                } else {
                    let pods = if count == 1 {
                        "other pod"
                    } else {
                        "other pods"
                    };
                    let detail = match spec {
                        Spec::Peers(..) => format!(" ({need} of {count} {pods})"),
                        _ => format!(" ({count} {pods})"),
                    };
                    Target {
                        label: name.to_string(),
                        detail,
                        endpoints: others,
                        need,
                    }
                }
            }
        };
        targets.push(target);
    }
    plan.targets = targets;
    Ok(plan)
}

/// A target that points at this pod: ready at once, it cannot wait for itself.
fn itself(label: &str, why: &str) -> Target {
    Target {
        label: label.to_string(),
        detail: format!(" ({why})"),
        endpoints: Vec::new(),
        need: 0,
    }
}

fn one(label: &str, endpoint: &Endpoint, index: usize) -> Target {
    Target {
        label: label.to_string(),
        detail: format!(" {endpoint}"),
        endpoints: vec![index],
        need: 1,
    }
}

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
type States = Vec<Option<Reason>>;

fn ready(state: &Option<Reason>) -> bool {
    state.is_none()
}

impl Target {
    fn ready_count(&self, states: &States) -> usize {
        self.endpoints
            .iter()
            .filter(|&&i| ready(&states[i]))
            .count()
    }

    fn is_ready(&self, states: &States) -> bool {
        self.ready_count(states) >= self.need
    }

    /// `leader mysql-0...:3306: connection refused`, `peers=2: 1 ready of 2 needed; zk-2...: ...`.
    fn missing(&self, plan: &Plan, states: &States, shown: usize) -> String {
        let not_ready: Vec<_> = self
            .endpoints
            .iter()
            .filter_map(|&i| Some((&plan.endpoints[i], states[i].as_ref()?)))
            .collect();
        if self.endpoints.len() == 1 {
            if let Some((_, reason)) = not_ready.first() {
                return format!("{}: {reason}", self.describe());
            }
        }
        let mut text = format!(
            "{}: {} ready of {} needed",
            self.label,
            self.ready_count(states),
            self.need
        );
        for (endpoint, reason) in not_ready.iter().take(shown) {
            text.push_str(&format!("; {endpoint}: {reason}"));
        }
        if not_ready.len() > shown {
            text.push_str(&format!("; {} more not ready", not_ready.len() - shown));
        }
        text
    }
}

/// Waits until every target is ready, or the timeout passes (exit code 6). Progress goes to
/// stderr unless `quiet`.
pub fn wait(plan: &Plan, settings: &WaitSettings, quiet: bool) -> Result<()> {
    let say = |line: &str| {
        if !quiet {
            eprintln!("rolecall: {line}");
        }
    };
    let all = |sep: &str| {
        plan.targets
            .iter()
            .map(Target::describe)
            .collect::<Vec<_>>()
            .join(sep)
    };
    let start = Instant::now();
    let mut states: States = vec![Some(Reason::Untried); plan.endpoints.len()];
    let done = |states: &States| plan.targets.iter().all(|t| t.is_ready(states));
    if done(&states) {
        say(&format!("nothing to wait for: {}", all(", ")));
        return Ok(());
    }
    let once = settings.timeout.is_zero();
    if once {
        say(&format!("checking once: {}", all(", ")));
    } else {
        say(&format!(
            "waiting up to {} for {}",
            show(settings.timeout),
            all(", ")
        ));
    }
    let mut prober = Prober::new(&plan.endpoints);
    let mut last_report = start;
    let mut round = 0u64;
    loop {
        round += 1;
        let attempt_start = Instant::now();
        let left = settings.timeout.saturating_sub(start.elapsed());
        let attempt = if once {
            settings.interval
        } else {
            settings.interval.min(left).max(MIN_ATTEMPT)
        };
        let pending: Vec<usize> = plan
            .targets
            .iter()
            .filter(|t| !t.is_ready(&states))
            .flat_map(|t| t.endpoints.iter().copied())
            .filter(|&i| !ready(&states[i]))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        prober.round(&pending, attempt, &mut states);
        if done(&states) {
            say(&format!(
                "ready after {}: {}",
                show(start.elapsed()),
                all(", ")
            ));
            return Ok(());
        }
        let elapsed = start.elapsed();
        if once || elapsed >= settings.timeout {
            let missing: Vec<_> = plan
                .targets
                .iter()
                .filter(|t| !t.is_ready(&states))
                .map(|t| format!("\n  {}", t.missing(plan, &states, SHOWN_ON_TIMEOUT)))
                .collect();
            let when = if once {
                "not ready (--timeout 0 tries once)".to_string()
            } else {
                format!(
                    "gave up after {} (--timeout {})",
                    show(elapsed),
                    show(settings.timeout)
                )
            };
            return Err(Failure::new(
                Exit::Timeout,
                anyhow!(
                    "{when}: {} of {} targets not ready:{}",
                    missing.len(),
                    plan.targets.len(),
                    missing.concat()
                ),
            ));
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let missing: Vec<_> = plan
                .targets
                .iter()
                .filter(|t| !t.is_ready(&states))
                .map(|t| t.missing(plan, &states, SHOWN_IN_PROGRESS))
                .collect();
            // Targets apart with ` | `: a peers target lists its addresses with `; `.
            say(&format!(
                "still waiting after {}: {}",
                show(elapsed),
                missing.join(" | ")
            ));
        }
        let pause = jitter(settings.interval, round)
            .saturating_sub(attempt_start.elapsed())
            .min(settings.timeout.saturating_sub(elapsed));
        std::thread::sleep(pause);
    }
}

/// The interval, 10% longer or shorter at random, so followers that start together do not
/// probe the leader in lockstep.
fn jitter(interval: Duration, round: u64) -> Duration {
    // RandomState is seeded from the OS: a random number without a crate.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(round);
    let unit = (hasher.finish() % 10_001) as f64 / 10_000.0;
    interval.mul_f64(0.9 + 0.2 * unit)
}

/// Runs probes on threads, at most `MAX_IN_FLIGHT` at once and never two for one address. A
/// probe still running when its attempt ends (getaddrinfo has no timeout of its own) is left to
/// finish: its answer counts in a later round instead of being thrown away, so a resolver slower
/// than --interval delays the wait but cannot stall it.
struct Prober {
    endpoints: Arc<[Endpoint]>,
    tx: mpsc::Sender<(usize, std::result::Result<(), Reason>)>,
    rx: mpsc::Receiver<(usize, std::result::Result<(), Reason>)>,
    /// Address index -> when its running probe started.
    in_flight: HashMap<usize, Instant>,
}

impl Prober {
    fn new(endpoints: &[Endpoint]) -> Self {
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
    fn round(&mut self, which: &[usize], attempt: Duration, states: &mut States) {
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

/// `300ms`, `2.5s`, `45s`, `5m`, `1m30s`, `2h`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let s = (ms + 500) / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Placement;
    use crate::role::Role;

    fn endpoint(host: &str, port: u16) -> Spec {
        Spec::Address(Endpoint {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn targets_parse() {
        for (text, spec) in [
            ("leader", Spec::Leader(None)),
            ("leader:8080", Spec::Leader(Some(8080))),
            ("previous", Spec::Previous(None)),
            ("previous:3307", Spec::Previous(Some(3307))),
            ("peers=2", Spec::Peers(2, None)),
            ("peers=2:2181", Spec::Peers(2, Some(2181))),
            ("all", Spec::All(None)),
            ("all:1", Spec::All(Some(1))),
            ("db.example.com:5432", endpoint("db.example.com", 5432)),
            ("10.0.0.7:80", endpoint("10.0.0.7", 80)),
            ("[fd00::1]:443", endpoint("fd00::1", 443)),
            // A host that happens to be called like a keyword is still a host with a port.
            ("leaders:80", endpoint("leaders", 80)),
        ] {
            assert_eq!(parse_target(text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn bad_targets_say_what_to_write() {
        for (text, says) in [
            ("", "a wait target is empty"),
            ("leader:", "`` is not a port"),
            ("leader:0", "`0` is not a port"),
            ("peers=0", "at least 1"),
            ("peers=-1", "at least 1"),
            ("peers=", "at least 1"),
            ("peers", "is not a target"),
            (
                "db",
                "is not a target; use leader, previous, peers=N, all or HOST:PORT",
            ),
            ("db:65536", "`65536` is not a port"),
            (":80", "`` is not a host"),
            ("a\tb:80", "is not a host"),
            ("fd00::1", "in brackets"),
            ("[fd00::1:80", "in brackets"),
        ] {
            let err = parse_target(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations_parse() {
        let ms = Duration::from_millis;
        for (text, d) in [
            ("0", ms(0)),
            ("300", ms(300_000)),
            ("300s", ms(300_000)),
            ("5m", ms(300_000)),
            ("1.5s", ms(1500)),
            ("250ms", ms(250)),
            ("1h", ms(3_600_000)),
            ("1m30s", ms(90_000)),
            ("0.5", ms(500)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
        for text in [
            "", "s", "5x", "1m30", "-1", "1e3", "inf", "1.2.3s", " 5s", "5 s", "9999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn durations_show_short() {
        let ms = Duration::from_millis;
        for (d, text) in [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(1000), "1s"),
            (ms(1540), "1.5s"),
            (ms(59_990), "60s"),
            (ms(300_000), "5m"),
            (ms(90_000), "1m30s"),
            (ms(7_200_000), "2h"),
            (ms(3_690_000), "1h1m30s"),
        ] {
            assert_eq!(show(d), text, "{d:?}");
        }
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        let interval = Duration::from_secs(1);
        let pauses: Vec<_> = (0..200).map(|round| jitter(interval, round)).collect();
        assert!(
            pauses
                .iter()
                .all(|p| (Duration::from_millis(900)..=Duration::from_millis(1100)).contains(p))
        );
        // Not a constant: followers that start together spread out.
        assert!(pauses.iter().any(|p| *p != pauses[0]));
    }

    fn placement() -> Placement {
        Placement {
            service: "db".into(),
            namespace: "prod".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    fn specs(texts: &[&str]) -> Vec<(String, Spec)> {
        texts
            .iter()
            .map(|t| (t.to_string(), parse_target(t).unwrap()))
            .collect()
    }

    fn addresses(plan: &Plan, target: usize) -> Vec<String> {
        plan.targets[target]
            .endpoints
            .iter()
            .map(|&i| plan.endpoints[i].to_string())
            .collect()
    }

    #[test]
    fn pod_targets_resolve_to_pod_addresses() {
        let role = Role::builtin("mysql").unwrap();
        let cluster = Model::new(&role, &role.spec.vars, "mysql", placement(), 0)
            .unwrap()
            .cluster(4)
            .unwrap();
        let pods = Pods::Cluster {
            cluster: &cluster,
            index: 2,
        };
        let plan = plan(
            &specs(&["leader", "previous:3307", "peers=2", "all", "db:1"]),
            &pods,
        )
        .unwrap();
        let fqdn = |o: u32| format!("mysql-{o}.db.prod.svc.cluster.local");
        assert_eq!(addresses(&plan, 0), [format!("{}:3306", fqdn(0))]);
        assert_eq!(addresses(&plan, 1), [format!("{}:3307", fqdn(1))]);
        let others = [0, 1, 3].map(|o| format!("{}:3306", fqdn(o)));
        assert_eq!(addresses(&plan, 2), others);
        assert_eq!(addresses(&plan, 3), others);
        assert_eq!(addresses(&plan, 4), ["db:1"]);
        let needs: Vec<_> = plan.targets.iter().map(|t| t.need).collect();
        assert_eq!(needs, [1, 1, 2, 3, 1]);
        // Each address is probed once however many targets name it.
        assert_eq!(plan.endpoints.len(), 5);
        assert_eq!(
            plan.targets[1].describe(),
            format!("previous {}:3307", fqdn(1))
        );
        assert_eq!(plan.targets[2].describe(), "peers=2 (2 of 3 other pods)");
    }

    #[test]
    fn targets_naming_this_pod_need_nothing() {
        let role = Role::builtin("mysql").unwrap();
        let cluster = Model::new(&role, &role.spec.vars, "mysql", placement(), 7)
            .unwrap()
            .cluster(1)
            .unwrap();
        let pods = Pods::Cluster {
            cluster: &cluster,
            index: 0,
        };
        let plan = plan(&specs(&["leader", "previous", "all"]), &pods).unwrap();
        assert!(plan.endpoints.is_empty());
        assert!(plan.targets.iter().all(|t| t.need == 0));
        let err = super::plan(&specs(&["peers=1"]), &pods).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
    }

    #[test]
    fn previous_needs_no_replicas_but_leader_does() {
        let role = Role::builtin("mysql").unwrap();
        let model = Model::new(&role, &role.spec.vars, "mysql", placement(), 0).unwrap();
        let pods = Pods::Model {
            model: &model,
            index: 3,
        };
        let plan = plan(&specs(&["previous"]), &pods).unwrap();
        assert_eq!(
            addresses(&plan, 0),
            ["mysql-2.db.prod.svc.cluster.local:3306"]
        );
        for target in ["leader", "peers=1", "all"] {
            let err = super::plan(&specs(&[target]), &pods).unwrap_err();
            assert_eq!(err.exit, Exit::Identity, "{target}");
        }
    }

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

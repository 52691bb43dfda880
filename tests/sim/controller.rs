//! The StatefulSet controller's order, over simulated pods: what a day-2 test does to a set is
//! what Kubernetes does to it when a user changes `spec.replicas` (and, without the API, the
//! `ROLECALL_REPLICAS` of the pod template, which rolls the pods) or deletes a pod.
//!
//! - Scale up: new pods in ascending ordinal order; under OrderedReady each waits until the one
//!   before is Ready, under Parallel all at once. Then the rolling update of the older pods.
//! - Scale down: pods with ordinal >= start + replicas deleted in descending order (each runs its
//!   preStop hook with its old environment first), then the rolling update of the rest.
//! - Rolling update: pods of an older template revision deleted and created again in descending
//!   ordinal order, one at a time, each waiting until it is Ready.
//! - Volumes (PVCs) stay when a pod goes: a returning pod gets its old volume back.
//!
//! What a pod runs (its init container, main container, readiness, preStop) is the `App`'s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Pods, report, wait_for};
use crate::common::apiserver::{self, Versions};

/// `spec.podManagementPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    OrderedReady,
    Parallel,
}

/// The pod template: its revision and the environment the pod spec gives the containers.
#[derive(Clone, Debug)]
pub struct Template {
    pub revision: u32,
    pub env: Vec<(String, String)>,
}

impl Template {
    /// The template of a set read without the API server: the containers get the namespace and
    /// `ROLECALL_REPLICAS`, so a new size is a new template, which rolls the pods.
    pub fn sized(revision: u32, replicas: u32, namespace: &str) -> Template {
        Template {
            revision,
            env: vec![
                ("POD_NAMESPACE".into(), namespace.into()),
                ("ROLECALL_REPLICAS".into(), replicas.to_string()),
            ],
        }
    }
}

/// What runs in each pod, as its containers would.
pub trait App {
    /// The init container; an error is its failed exit, after which the kubelet reruns it.
    fn init(&mut self, pods: &Pods, ordinal: u32, env: &[(String, String)]) -> Result<(), String>;
    /// Starts the main container.
    fn start(&mut self, pods: &mut Pods, ordinal: u32, env: &[(String, String)]);
    /// The readiness probe.
    fn ready(&mut self, pods: &Pods, ordinal: u32) -> bool;
    /// The preStop hook, in the main container with its old environment; `spec_replicas` is
    /// what the API server says the set's size is now.
    fn pre_stop(
        &mut self,
        pods: &Pods,
        ordinal: u32,
        env: &[(String, String)],
        spec_replicas: u32,
    ) -> Result<(), String>;
}

/// `app` with no preStop hook run: a pod force-deleted, or lost with its node.
pub struct NoPreStop<'a>(pub &'a mut dyn App);

impl App for NoPreStop<'_> {
    fn init(&mut self, pods: &Pods, ordinal: u32, env: &[(String, String)]) -> Result<(), String> {
        self.0.init(pods, ordinal, env)
    }

    fn start(&mut self, pods: &mut Pods, ordinal: u32, env: &[(String, String)]) {
        self.0.start(pods, ordinal, env)
    }

    fn ready(&mut self, pods: &Pods, ordinal: u32) -> bool {
        self.0.ready(pods, ordinal)
    }

    fn pre_stop(&mut self, _: &Pods, _: u32, _: &[(String, String)], _: u32) -> Result<(), String> {
        Ok(())
    }
}

/// A simulated StatefulSet controller.
pub struct Controller {
    pub pods: Pods,
    pub policy: Policy,
    /// spec.replicas
    pub replicas: u32,
    pub template: Template,
    /// The pods that exist, with the template revision each was made from.
    pub existing: BTreeMap<u32, Template>,
    /// The kubelet reruns a failed init container; this many times at most here.
    pub init_attempts: u32,
    /// How long a pod may take to become Ready.
    pub ready_timeout: Duration,
    /// terminationGracePeriodSeconds
    pub grace: Duration,
    /// What the API server answers for spec.replicas, when one serves the set.
    api_replicas: Option<Arc<AtomicU32>>,
}

/// The environment that lets a pod read its StatefulSet from the API server (`--from-api`).
pub type ApiEnv = Vec<(String, String)>;

impl Controller {
    pub fn new(pods: Pods, policy: Policy, template: Template) -> Controller {
        Controller {
            pods,
            policy,
            replicas: 0,
            template,
            existing: BTreeMap::new(),
            init_attempts: 3,
            ready_timeout: Duration::from_secs(90),
            grace: Duration::from_secs(30),
            api_replicas: None,
        }
    }

    /// Serves the set as the Kubernetes API server does, on this machine's address on the
    /// set's bridge (the pods reach it there), with a CA and a service account made here; the
    /// StatefulSet's spec.replicas follows `scale`. Returns the environment a pod spec gives
    /// its containers to read it: the service host and port, the service account directory,
    /// and `ROLECALL_FROM_API`.
    pub fn serve_api(&mut self) -> ApiEnv {
        let host = self.pods.host_address();
        let pki = apiserver::pki_with("kubernetes", &[&host], rcgen::KeyPair::generate().unwrap());
        let sa = self.pods.dir().join("serviceaccount");
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), "eyJhbGciOiJSUzI1NiJ9.sim.c2ln").unwrap();
        std::fs::write(sa.join("ca.crt"), &pki.ca_pem).unwrap();
        std::fs::write(sa.join("namespace"), &self.pods.set.namespace).unwrap();
        let replicas = Arc::new(AtomicU32::new(self.replicas));
        self.api_replicas = Some(replicas.clone());
        let set = self.pods.set.clone();
        let path = format!(
            "/apis/apps/v1/namespaces/{}/statefulsets/{}",
            set.namespace, set.name
        );
        let addr = apiserver::serve(
            &pki,
            &format!("{host}:0"),
            Versions::Default,
            || {},
            move |request| {
                if request.path != path {
                    return apiserver::status(404, "NotFound", "not served here");
                }
                let start = (set.start_ordinal != 0).then_some(set.start_ordinal);
                apiserver::ok(apiserver::statefulset_in(
                    &set.namespace,
                    &set.name,
                    replicas.load(Ordering::SeqCst),
                    start,
                    &set.name,
                ))
            },
        );
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), host),
            ("KUBERNETES_SERVICE_PORT".into(), addr.port().to_string()),
            (
                "ROLECALL_SERVICE_ACCOUNT_DIR".into(),
                sa.display().to_string(),
            ),
            ("ROLECALL_FROM_API".into(), "true".into()),
        ]
    }

    fn start_ordinal(&self) -> u32 {
        self.pods.set.start_ordinal
    }

    /// The ordinals spec.replicas includes.
    pub fn ordinals(&self) -> std::ops::Range<u32> {
        self.start_ordinal()..self.start_ordinal() + self.replicas
    }

    /// Creates pod `ordinal` from the current template: its init container (rerun on failure,
    /// as the kubelet does), then its main container.
    pub fn create(&mut self, app: &mut dyn App, ordinal: u32) -> Result<(), String> {
        let env = self.template.env.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match app.init(&self.pods, ordinal, &env) {
                Ok(()) => break,
                Err(e) if attempt >= self.init_attempts => {
                    return Err(format!(
                        "init of {} failed {attempt} times; last: {e}",
                        self.pods.hostname(ordinal)
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
        app.start(&mut self.pods, ordinal, &env);
        self.existing.insert(ordinal, self.template.clone());
        Ok(())
    }

    /// Waits until pod `ordinal` is Ready.
    pub fn wait_ready(&mut self, app: &mut dyn App, ordinal: u32) -> Result<Duration, String> {
        let started = Instant::now();
        while !app.ready(&self.pods, ordinal) {
            if started.elapsed() > self.ready_timeout {
                return Err(format!(
                    "{} not Ready within {:?}",
                    self.pods.hostname(ordinal),
                    self.ready_timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(started.elapsed())
    }

    /// Deletes pod `ordinal`: its preStop hook (bounded by the grace period), then SIGTERM to the
    /// main container, SIGKILL when the grace period is over. Its volume stays.
    pub fn delete(&mut self, app: &mut dyn App, ordinal: u32) -> Result<(), String> {
        let env = self
            .existing
            .remove(&ordinal)
            .ok_or_else(|| format!("no pod {}", self.pods.hostname(ordinal)))?
            .env;
        let started = Instant::now();
        let hook = app.pre_stop(&self.pods, ordinal, &env, self.replicas);
        let left = self.grace.saturating_sub(started.elapsed());
        if self.pods.running(ordinal) {
            self.pods.stop(ordinal, left);
        } else {
            // The server stopped by itself (etcd does once removed): reap it.
            self.pods.stop(ordinal, Duration::ZERO);
        }
        hook.map_err(|e| format!("preStop of {}: {e}", self.pods.hostname(ordinal)))
    }

    /// Creates pod `ordinal`, which is gone (deleted or crashed), with an empty volume at
    /// `volume` in place of its lost one, and waits until it is Ready.
    pub fn recreate_with_lost_volume(
        &mut self,
        app: &mut dyn App,
        ordinal: u32,
        volume: &str,
    ) -> Result<(), String> {
        self.pods.lose_volume(ordinal, volume)?;
        self.create(app, ordinal)?;
        self.wait_ready(app, ordinal).map(drop)
    }

    /// One step of a day-2 test: `action`, then `check` until it passes, for at most `settle`;
    /// an action that fails or a check that never passes fails the test. Reports the step's
    /// name first.
    pub fn step(
        &mut self,
        name: &str,
        acks: &Acks,
        settle: Duration,
        action: impl FnOnce(&mut Controller) -> Result<(), String>,
        mut check: impl FnMut(&Controller) -> Result<(), String>,
    ) -> Step {
        report(&format!("step: {name}"));
        let started = Instant::now();
        action(self).unwrap_or_else(|e| panic!("{name}: {e}"));
        wait_for(&format!("{name}: the set checks out"), settle, || {
            check(self)
        });
        let ended = Instant::now();
        Step {
            started,
            took: ended - started,
            gap: acks.longest_gap(started, ended),
        }
    }

    /// Sets spec.replicas to `replicas` and the template to `template`, then does what the
    /// controller does about it: create or delete pods, then roll the older ones.
    pub fn scale(
        &mut self,
        app: &mut dyn App,
        replicas: u32,
        template: Template,
    ) -> Result<(), String> {
        self.replicas = replicas;
        if let Some(api) = &self.api_replicas {
            api.store(replicas, Ordering::SeqCst);
        }
        self.template = template;
        let wanted: Vec<u32> = self.ordinals().collect();
        // Scale down first: the pods beyond the set, highest ordinal first.
        let gone: Vec<u32> = self
            .existing
            .keys()
            .rev()
            .copied()
            .filter(|o| !wanted.contains(o))
            .collect();
        for ordinal in gone {
            self.delete(app, ordinal)?;
        }
        // Scale up: the missing pods, lowest ordinal first.
        let missing: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|o| !self.existing.contains_key(o))
            .collect();
        for &ordinal in &missing {
            self.create(app, ordinal)?;
            if self.policy == Policy::OrderedReady {
                self.wait_ready(app, ordinal)?;
            }
        }
        for &ordinal in &missing {
            self.wait_ready(app, ordinal)?;
        }
        self.roll(app)
    }

    /// The rolling update: pods of an older revision, highest ordinal first, one at a time.
    pub fn roll(&mut self, app: &mut dyn App) -> Result<(), String> {
        let old: Vec<u32> = self
            .existing
            .iter()
            .rev()
            .filter(|(_, t)| t.revision != self.template.revision)
            .map(|(o, _)| *o)
            .collect();
        for ordinal in old {
            self.delete(app, ordinal)?;
            self.create(app, ordinal)?;
            self.wait_ready(app, ordinal)?;
        }
        Ok(())
    }
}

/// What a day-2 step took.
pub struct Step {
    pub started: Instant,
    pub took: Duration,
    /// The longest time in the step without an acknowledged write.
    pub gap: Duration,
}

/// The writes a day-2 test's writer had acknowledged: each key, with when.
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<Vec<(u64, Instant)>>>);

impl Acks {
    /// Records that the write of `key` was acknowledged now.
    pub fn push(&self, key: u64) {
        self.0.lock().unwrap().push((key, Instant::now()));
    }

    /// Every key acknowledged so far, in order.
    pub fn keys(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|&(key, _)| key).collect()
    }

    /// The longest time without an acknowledged write between `from` and `to`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut times: Vec<Instant> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|&(_, t)| t)
            .filter(|t| (from..=to).contains(t))
            .collect();
        times.insert(0, from);
        times.push(to);
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}

/// A thread that runs `round` again and again until `finish`: a test's writer or poll.
pub struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut round: impl FnMut() + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    round();
                }
            })
        };
        Background {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops after the round under way.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The table a day-2 test reports at its end: one row per step.
pub struct Table(Vec<String>);

impl Table {
    /// A table with these column heads, each aligned as its `align` says (`---`, `---:`).
    pub fn new(heads: &[&str], align: &[&str]) -> Table {
        Table(vec![
            format!("| {} |", heads.join(" | ")),
            format!("| {} |", align.join(" | ")),
        ])
    }

    /// Adds a row, and reports it at once.
    pub fn row(&mut self, cells: &[&str]) {
        let row = format!("| {} |", cells.join(" | "));
        report(&row);
        self.0.push(row);
    }

    pub fn report(&self) {
        for row in &self.0 {
            report(row);
        }
    }
}

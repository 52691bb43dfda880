//! Waiting for peers: the loop with its timeout, jittered interval and progress lines. What a
//! `--for` target names is in [`target`], its addresses in [`plan`], the TCP probes in [`probe`].
//!
//! A target is ready once its name resolves (getaddrinfo, so /etc/hosts and /etc/resolv.conf as
//! the pod has them) and a TCP connection to its port succeeds. An address seen ready stays ready:
//! the wait is for "has come up", and re-probing would only let a flapping peer stall the start.

mod plan;
mod probe;
mod target;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

use anyhow::anyhow;

pub use plan::{Plan, PlanError, Pods, plan};
pub use target::{Spec, parse_target};

use plan::Target;

use crate::duration::show;
use crate::output::say;
use crate::settings::WaitSettings;
use probe::{Prober, Reason, States, ready};

/// A progress line at most this often while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The shortest attempt: below this a connect to a healthy peer could time out.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);
/// The longest the one attempt of `--timeout 0` takes: a check, not a wait, whatever the
/// interval.
const ONCE_ATTEMPT: Duration = Duration::from_secs(1);
/// Not-ready addresses named per target in a progress line / in the timeout message.
const SHOWN_IN_PROGRESS: usize = 3;
const SHOWN_ON_TIMEOUT: usize = 10;

/// Waits until every target is ready; an error says which were not when the timeout passed.
/// Progress goes to stderr unless `quiet`.
pub fn wait(plan: &Plan, settings: &WaitSettings, quiet: bool) -> anyhow::Result<()> {
    let say = |line: &str| {
        if !quiet {
            say(&format!("rolecall: {line}"));
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
            settings.interval.min(ONCE_ATTEMPT)
        } else {
            settings.interval.min(left).max(MIN_ATTEMPT)
        };
        let pending: Vec<usize> = plan
            .waiting(&states)
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
            let missing = plan.missing(&states, SHOWN_ON_TIMEOUT);
            let when = if once {
                "not ready (--timeout 0 tries once)".to_string()
            } else {
                format!(
                    "gave up after {} (--timeout {})",
                    show(elapsed),
                    show(settings.timeout)
                )
            };
            return Err(anyhow!(
                "{when}: {} of {} targets not ready:\n  {}",
                missing.len(),
                plan.targets.len(),
                missing.join("\n  ")
            ));
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            // Targets apart with ` | `: a peers target lists its addresses with `; `.
            say(&format!(
                "still waiting after {}: {}",
                show(elapsed),
                plan.missing(&states, SHOWN_IN_PROGRESS).join(" | ")
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

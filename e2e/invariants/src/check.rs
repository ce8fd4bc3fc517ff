//! The invariants, judged over a window `[since, until]` from the audit log's
//! writes and the watch's trace (see the crate docs for the list). The rate rules
//! are the engine's own (`engine::behavior`), so the checker and the operator
//! cannot disagree about what HPA's semantics allow.

use std::collections::HashMap;
use std::path::PathBuf;

use ballast::api::Duration;
use ballast::api::history::ScaleEvent;
use ballast::engine::behavior::{Resolved, scale_down_limit, scale_up_limit};
use serde::{Deserialize, Serialize};

use crate::audit::{Records, Write};
use crate::trace::{PolicySnap, Snapshot};

/// A window the scenario declared faulty: no scale-down of these policies inside.
#[derive(Clone, Debug, Deserialize)]
pub struct Fault {
    pub start: f64,
    #[serde(default)]
    pub end: Option<f64>,
    /// `"*"` or a list of policy names.
    pub policies: serde_json::Value,
    #[serde(default)]
    pub what: String,
}

impl Fault {
    fn covers(&self, t: f64, policy: &str) -> bool {
        let inside = self.start <= t && t <= self.end.unwrap_or(f64::INFINITY);
        let named = match &self.policies {
            serde_json::Value::String(s) => s == "*",
            serde_json::Value::Array(names) => names.iter().any(|n| n.as_str() == Some(policy)),
            _ => false,
        };
        inside && named
    }
}

/// What the check is told.
#[derive(Clone, Debug)]
pub struct Options {
    pub since: f64,
    pub until: f64,
    /// Only this Lease's writes decide the holder.
    pub lease: Option<String>,
    /// Seconds a Lease write makes its writer the holder for.
    pub lease_duration: f64,
    /// Seconds taken off each rate period: audit times are the API server's, not
    /// the operator's clock.
    pub slack: f64,
    /// The operators' logs: no "panicked" in any.
    pub logs: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub t: f64,
    pub message: String,
}

/// The verdict, written as JSON for e2e/chaos.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub since: f64,
    pub until: f64,
    pub writes: usize,
    pub writers: Vec<String>,
    pub lease_writes: usize,
    pub trace_samples: usize,
    pub panics: usize,
    pub violations: Vec<Violation>,
}

/// The last snapshot taken at or before `t`.
fn state_before(trace: &[Snapshot], t: f64) -> Option<&Snapshot> {
    trace.iter().take_while(|s| s.t <= t).last()
}

/// The policy that targets the Deployment `target` in a snapshot.
fn policy_of<'a>(snap: Option<&'a Snapshot>, target: &str) -> Option<(&'a str, &'a PolicySnap)> {
    snap?
        .policies
        .iter()
        .find(|(_, p)| p.kind == "Deployment" && p.target == target)
        .map(|(n, p)| (n.as_str(), p))
}

fn millis(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// The furthest the policy's rules allow from `current` at `t` in `up` direction,
/// given the earlier writes `(t, from, to)` to the same target: the engine's
/// `scale_up_limit`/`scale_down_limit`, with `slack` seconds taken off each period.
fn rate_limit(
    pol: &PolicySnap,
    up: bool,
    current: i64,
    events: &[(f64, i64, i64)],
    t: f64,
    slack: f64,
) -> i64 {
    let rules = Resolved::from_spec(pol.behavior.as_ref());
    // An event counts inside a period when `t - period + slack < e.t < t`: shift
    // every event back by the slack and keep those before `t`.
    let scale_events: Vec<ScaleEvent> = events
        .iter()
        .filter(|(et, _, _)| *et < t)
        .map(|(et, from, to)| ScaleEvent {
            time: millis(*et) - millis(slack),
            change: to - from,
        })
        .collect();
    let current = u32::try_from(current.max(0)).unwrap_or(u32::MAX);
    if up {
        scale_up_limit(&rules.up, &scale_events, millis(t), current)
    } else {
        scale_down_limit(&rules.down, &scale_events, millis(t), current)
    }
}

/// Every invariant over the window.
pub fn check(records: &Records, trace: &[Snapshot], faults: &[Fault], options: &Options) -> Report {
    let (t0, t1) = (options.since, options.until);
    let leases: Vec<_> = records
        .leases
        .iter()
        .filter(|l| options.lease.as_deref().is_none_or(|name| l.name == name))
        .collect();
    let mut violations = Vec::new();
    let mut violation = |invariant: &'static str, t: f64, message: String| {
        violations.push(Violation {
            invariant,
            t: (t * 1000.0).round() / 1000.0,
            message,
        });
    };

    // Replicas before each write: the previous write to the target, else what the
    // trace saw last.
    type Key = (String, String);
    let mut last_value: HashMap<Key, Option<i64>> = HashMap::new();
    let mut last_write: HashMap<Key, &Write> = HashMap::new();
    let mut events: HashMap<Key, Vec<(f64, i64, i64)>> = HashMap::new();
    let mut checked = 0;
    for w in &records.writes {
        let key = (w.resource.clone(), w.target.clone());
        let snap = state_before(trace, w.t);
        let prev = last_value
            .get(&key)
            .copied()
            .flatten()
            .or_else(|| snap.and_then(|s| s.deployments.get(&w.target).copied().flatten()));
        last_value.insert(key.clone(), w.value);
        let previous_write = last_write.insert(key.clone(), w);
        let ev = events.entry(key.clone()).or_default();
        if !(t0 <= w.t && w.t <= t1) {
            if let (Some(prev), Some(value)) = (prev, w.value) {
                ev.push((w.t, prev, value));
            }
            continue;
        }
        checked += 1;
        let value_text = w.value.map_or("none".to_string(), |v| v.to_string());
        let at = format!("{}/{} -> {} by {}", w.resource, w.target, value_text, w.who);
        let Some(value) = w.value else {
            violation(
                "bounds",
                w.t,
                format!("{at}: a replica write without spec.replicas"),
            );
            continue;
        };
        let policy = if w.resource == "deployments" {
            policy_of(snap, &w.target)
        } else {
            None
        };
        if let Some((name, pol)) = policy {
            let (lo, hi) = (pol.min, pol.max);
            if !(lo <= value && value <= hi) {
                violation(
                    "bounds",
                    w.t,
                    format!("{at}: outside [{lo}, {hi}] of policy {name}"),
                );
            }
            if pol.paused || pol.dry_run {
                let what = if pol.paused { "paused" } else { "dryRun" };
                violation("paused", w.t, format!("{at}: policy {name} is {what}"));
            }
            if let Some(prev) = prev
                && value < prev
            {
                if pol.metrics_available.as_deref() == Some("False") {
                    violation(
                        "missing",
                        w.t,
                        format!(
                            "{at}: scale-down from {prev} while {name} had MetricsAvailable=False"
                        ),
                    );
                }
                for fault in faults.iter().filter(|f| f.covers(w.t, name)) {
                    violation(
                        "missing",
                        w.t,
                        format!(
                            "{at}: scale-down from {prev} inside fault window {}",
                            fault.what
                        ),
                    );
                }
            }
            if let Some(prev) = prev
                && value != prev
            {
                let up = value > prev;
                let limit = rate_limit(pol, up, prev, ev, w.t, options.slack);
                // The bounds win over the rate (HPA clamps after limiting).
                if up && value > limit.max(lo) {
                    violation(
                        "rate",
                        w.t,
                        format!("{at}: from {prev}, beyond the scale-up limit {limit}"),
                    );
                }
                if !up && value < limit.min(hi) {
                    violation(
                        "rate",
                        w.t,
                        format!("{at}: from {prev}, beyond the scale-down limit {limit}"),
                    );
                }
            }
        }
        // One writer: the Lease's last successful writer, not expired.
        // The leases are in time order: the last one at or before the write.
        let before = leases.partition_point(|l| l.t <= w.t);
        match before.checked_sub(1).map(|i| leases[i]) {
            None => violation("one-writer", w.t, format!("{at}: no Lease write before it")),
            Some(holder) if holder.who != w.who => violation(
                "one-writer",
                w.t,
                format!(
                    "{at}: the Lease was last written by {} at {:.3}",
                    holder.who, holder.t
                ),
            ),
            Some(holder) => {
                let age = w.t - holder.t;
                if age > options.lease_duration {
                    violation(
                        "one-writer",
                        w.t,
                        format!(
                            "{at}: its lease was {age:.1}s old (duration {}s)",
                            options.lease_duration
                        ),
                    );
                }
            }
        }
        // Stale: the same value again, and nobody else wrote the target since.
        if let Some(previous) = previous_write
            && previous.value == w.value
        {
            let touched = records.others.iter().any(|o| {
                previous.t <= o.t && o.t <= w.t && o.resource == w.resource && o.target == w.target
            });
            if !touched {
                violation(
                    "stale",
                    w.t,
                    format!(
                        "{at}: the same value as its write at {:.3} by {}, with no other write between: decided from a replica count that write had already replaced",
                        previous.t, previous.who
                    ),
                );
            }
        }
        if let Some(prev) = prev {
            ev.push((w.t, prev, value));
        }
    }

    // Out of bounds for too long, as the watch saw it (reported once per stretch).
    let mut outside: HashMap<(String, String), f64> = HashMap::new();
    let mut reported: std::collections::HashSet<(String, String)> = Default::default();
    for snap in trace.iter().filter(|s| t0 <= s.t && s.t <= t1) {
        for (name, pol) in &snap.policies {
            if pol.kind != "Deployment" || pol.paused {
                continue;
            }
            let key = (name.clone(), pol.target.clone());
            let n = snap.deployments.get(&pol.target).copied().flatten();
            let Some(n) = n.filter(|n| !(pol.min <= *n && *n <= pol.max)) else {
                outside.remove(&key);
                reported.remove(&key);
                continue;
            };
            let first = *outside.entry(key.clone()).or_insert(snap.t);
            let grace = pol
                .poll
                .parse::<Duration>()
                .map_or(40.0, |d| 2.0 * d.as_secs_f64() + 10.0);
            if snap.t - first > grace && reported.insert(key) {
                violation(
                    "bounds",
                    snap.t,
                    format!(
                        "Deployment/{} at {n} outside [{}, {}] of {name} for {:.0}s",
                        pol.target,
                        pol.min,
                        pol.max,
                        snap.t - first
                    ),
                );
            }
        }
    }

    let mut panics = 0;
    for path in &options.logs {
        let Ok(text) = std::fs::read(path) else {
            continue;
        };
        for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            if line.contains("panicked") {
                panics += 1;
                let line: String = line.trim().chars().take(200).collect();
                violation("panic", t1, format!("{}:{}: {line}", path.display(), i + 1));
            }
        }
    }

    let in_window = |t: f64| t0 <= t && t <= t1;
    let mut writers: Vec<String> = records
        .writes
        .iter()
        .filter(|w| in_window(w.t))
        .map(|w| w.who.clone())
        .collect();
    writers.sort();
    writers.dedup();
    Report {
        since: t0,
        until: t1,
        writes: checked,
        writers,
        lease_writes: leases.iter().filter(|l| in_window(l.t)).count(),
        trace_samples: trace.iter().filter(|s| in_window(s.t)).count(),
        panics,
        violations,
    }
}

/// The audit time of the first write to `target` lower than the one before it,
/// after `after`.
pub fn first_down(records: &Records, target: &str, after: f64) -> Option<f64> {
    let mut prev: Option<i64> = None;
    for w in records.writes.iter().filter(|w| w.target == target) {
        let Some(value) = w.value else { continue };
        if let Some(p) = prev
            && w.t > after
            && value < p
        {
            return Some(w.t);
        }
        prev = Some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{LeaseWrite, OtherWrite};
    use std::collections::BTreeMap;

    const T: f64 = 1_800_000_000.0;

    fn policy(target: &str, lo: i64, hi: i64) -> PolicySnap {
        let behavior: ballast::api::policy::Behavior = serde_json::from_value(serde_json::json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}]},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}]}
        }))
        .expect("behavior");
        PolicySnap {
            target: target.into(),
            kind: "Deployment".into(),
            min: lo,
            max: hi,
            paused: false,
            dry_run: false,
            poll: "3s".into(),
            behavior: Some(behavior),
            metrics_available: Some("True".into()),
            generation: Some(1),
        }
    }

    fn snap(t: f64, replicas: i64, pol: PolicySnap) -> Snapshot {
        Snapshot {
            t,
            error: None,
            deployments: BTreeMap::from([("web".to_string(), Some(replicas))]),
            policies: BTreeMap::from([("p".to_string(), pol)]),
            leases: BTreeMap::new(),
        }
    }

    fn scale(t: f64, who: &str, value: i64) -> Write {
        Write {
            t,
            who: who.into(),
            resource: "deployments".into(),
            target: "web".into(),
            value: Some(value),
        }
    }

    fn lease(t: f64, who: &str) -> LeaseWrite {
        LeaseWrite {
            t,
            who: who.into(),
            name: "ballast-leader".into(),
        }
    }

    fn options() -> Options {
        Options {
            since: T,
            until: T + 100.0,
            lease: Some("ballast-leader".into()),
            lease_duration: 6.0,
            slack: 1.0,
            logs: vec![],
        }
    }

    fn invariants(records: &Records, trace: &[Snapshot], faults: &[Fault]) -> Vec<&'static str> {
        check(records, trace, faults, &options())
            .violations
            .iter()
            .map(|v| v.invariant)
            .collect()
    }

    /// Leases renewed every 2 s by `a` across the window.
    fn leases(who: &str) -> Vec<LeaseWrite> {
        (0..60)
            .map(|i| lease(T - 10.0 + f64::from(i) * 2.0, who))
            .collect()
    }

    fn clean() -> Records {
        Records {
            writes: vec![
                scale(T + 5.0, "a", 4),
                scale(T + 20.0, "a", 6),
                scale(T + 40.0, "a", 4),
            ],
            leases: leases("a"),
            others: vec![],
        }
    }

    fn trace(pol: PolicySnap) -> Vec<Snapshot> {
        vec![snap(T, 2, pol)]
    }

    #[test]
    fn a_clean_run_has_no_violation() {
        let report = check(&clean(), &trace(policy("web", 1, 8)), &[], &options());
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.writes, 3);
        assert_eq!(report.writers, vec!["a".to_string()]);
        assert_eq!(report.trace_samples, 1);
    }

    #[test]
    fn a_write_outside_the_bounds() {
        assert_eq!(
            invariants(&clean(), &trace(policy("web", 1, 5)), &[]),
            vec!["bounds"]
        );
    }

    #[test]
    fn a_write_while_paused_or_dry_run() {
        for (paused, dry) in [(true, false), (false, true)] {
            let mut pol = policy("web", 1, 8);
            pol.paused = paused;
            pol.dry_run = dry;
            let found = invariants(&clean(), &trace(pol), &[]);
            assert_eq!(found, vec!["paused"; 3], "{paused} {dry}");
        }
    }

    #[test]
    fn a_scale_down_while_metrics_are_missing_or_in_a_fault_window() {
        let mut pol = policy("web", 1, 8);
        pol.metrics_available = Some("False".into());
        assert_eq!(invariants(&clean(), &trace(pol), &[]), vec!["missing"]);
        let fault = Fault {
            start: T + 30.0,
            end: Some(T + 50.0),
            policies: serde_json::json!(["p"]),
            what: "prometheus-killed".into(),
        };
        assert_eq!(
            invariants(
                &clean(),
                &trace(policy("web", 1, 8)),
                std::slice::from_ref(&fault)
            ),
            vec!["missing"]
        );
        let elsewhere = Fault {
            policies: serde_json::json!(["q"]),
            ..fault
        };
        assert_eq!(
            invariants(&clean(), &trace(policy("web", 1, 8)), &[elsewhere]),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_write_by_a_replica_not_holding_the_lease() {
        let mut records = clean();
        records.writes[1].who = "b".into();
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            vec!["one-writer"]
        );
        // Holding it, but its last renewal is older than the lease.
        let mut records = clean();
        records.leases = vec![lease(T - 1.0, "a")];
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            vec!["one-writer", "one-writer"],
            "the writes at +20 s and +40 s"
        );
    }

    #[test]
    fn a_write_beyond_the_rate_rules() {
        // 2 -> 4 -> 6 within 10 s with +2 pods per 10 s: the second is too far.
        let mut records = clean();
        records.writes = vec![scale(T + 5.0, "a", 4), scale(T + 9.0, "a", 6)];
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            vec!["rate"]
        );
        // The same step 11 s later is within the rules (the slack is 1 s).
        records.writes[1].t = T + 16.5;
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            Vec::<&str>::new()
        );
        // HPA's defaults apply without a behavior: +4 pods or +100% per 15 s.
        let mut pol = policy("web", 1, 20);
        pol.behavior = None;
        records.writes = vec![scale(T + 5.0, "a", 6), scale(T + 9.0, "a", 12)];
        assert_eq!(invariants(&records, &trace(pol), &[]), vec!["rate"]);
    }

    #[test]
    fn a_write_that_repeats_our_own_is_stale_unless_someone_else_wrote_between() {
        let mut records = clean();
        records.writes = vec![scale(T + 5.0, "a", 4), scale(T + 20.0, "a", 4)];
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            vec!["stale"]
        );
        records.others = vec![OtherWrite {
            t: T + 10.0,
            resource: "deployments".into(),
            target: "web".into(),
        }];
        assert_eq!(
            invariants(&records, &trace(policy("web", 1, 8)), &[]),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn outside_the_bounds_too_long_in_the_watch() {
        let pol = policy("web", 3, 8);
        // Poll 3 s: two intervals and 10 s of grace, 16 s.
        let trace: Vec<Snapshot> = (0..30)
            .map(|i| snap(T + f64::from(i), 1, pol.clone()))
            .collect();
        let records = Records {
            writes: vec![],
            leases: leases("a"),
            others: vec![],
        };
        assert_eq!(invariants(&records, &trace, &[]), vec!["bounds"]);
        let short: Vec<Snapshot> = trace.into_iter().take(10).collect();
        assert_eq!(invariants(&records, &short, &[]), Vec::<&str>::new());
    }

    #[test]
    fn a_panic_in_a_log() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("op-a.log");
        std::fs::write(&log, "ok\nthread 'main' panicked at src/x.rs:1:1\n").expect("write");
        let mut options = options();
        options.logs = vec![log];
        let report = check(&clean(), &trace(policy("web", 1, 8)), &[], &options);
        assert_eq!(report.panics, 1);
        assert_eq!(report.violations[0].invariant, "panic");
        assert!(report.violations[0].message.contains("op-a.log:2"));
    }

    #[test]
    fn the_first_scale_down_after_a_time() {
        let records = Records {
            writes: vec![
                scale(T + 1.0, "a", 6),
                scale(T + 2.0, "a", 4),
                scale(T + 10.0, "a", 8),
                scale(T + 20.0, "a", 5),
            ],
            ..Records::default()
        };
        assert_eq!(first_down(&records, "web", T), Some(T + 2.0));
        assert_eq!(first_down(&records, "web", T + 5.0), Some(T + 20.0));
        assert_eq!(first_down(&records, "web", T + 30.0), None);
    }
}

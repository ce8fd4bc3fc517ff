//! Step 5, **report** (no client): what a tick has to say — the status, its
//! conditions with HPA-style reasons and `lastTransitionTime` kept, whether it is
//! worth a write (only when something a person or a successor needs changed), the
//! Events, and the operator's per-policy metrics. [`super::publish`] writes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use serde_json::json;

use super::Context;
use super::apply::Applied;
use super::fetch::{Fetched, Missing};
use super::owners::{ReplicasOwner, overwritten_by};
use crate::api::conditions::FIELD_MANAGER;
use crate::api::conditions::{Reason, events as event_reasons, reasons, types};
use crate::api::history::History;
use crate::api::{
    CustomScalingPolicy, CustomScalingPolicyStatus, FallbackMode, MetricStatus, NodePoolStatus,
};
use crate::engine::{Data, Decision};
use crate::error::Category;
use crate::metrics::MissingCause;
use crate::telemetry::{MetricLabels, PolicyLabels};

fn ts(ms: i64) -> Option<Time> {
    jiff::Timestamp::from_millisecond(ms).ok().map(Time)
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: i64,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: truncate(message, 1024),
        observed_generation: generation,
        last_transition_time: ts(now).unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH)),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Keep `lastTransitionTime` of conditions whose status did not change.
pub fn keep_transition_times(mut new: Vec<Condition>, old: &[Condition]) -> Vec<Condition> {
    for c in &mut new {
        if let Some(prev) = old.iter().find(|p| p.type_ == c.type_)
            && prev.status == c.status
        {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
    new
}

/// The conditions for this tick.
pub fn conditions(
    policy: &CustomScalingPolicy,
    fetched: &Fetched,
    decision: Option<&Decision>,
    applied: &Applied,
    now: i64,
) -> Vec<Condition> {
    let spec = &policy.spec;
    let generation = policy.metadata.generation;
    let mut out = Vec::new();

    // MetricsAvailable
    let missing: Vec<&Missing> = fetched
        .metrics
        .iter()
        .filter_map(|m| m.missing.as_ref())
        .collect();
    let metrics_ok = missing.is_empty();
    let (m_reason, m_message) = if metrics_ok {
        (
            reasons::VALID_METRICS_FOUND,
            format!("all {} metrics returned data", fetched.metrics.len()),
        )
    } else {
        let reason = match decision.map(|d| d.data) {
            Some(Data::Fallback) => reasons::FALLBACK_ACTIVE,
            _ if missing
                .iter()
                .all(|m| m.cause == MissingCause::SourceNotAllowed) =>
            {
                reasons::SOURCE_NOT_ALLOWED
            }
            _ if missing.len() < fetched.metrics.len() => reasons::METRICS_PARTIAL,
            _ => reasons::METRICS_UNAVAILABLE,
        };
        let details: Vec<&str> = missing.iter().map(|m| m.message.as_str()).collect();
        (reason, details.join("; "))
    };
    out.push(condition(
        types::METRICS_AVAILABLE,
        metrics_ok,
        m_reason,
        m_message,
        now,
        generation,
    ));

    // AbleToScale
    let (able, a_reason, a_message) = match (&fetched.current_replicas, &applied.failure) {
        (Err(e), _) => (false, e.category(), e.to_string()),
        (_, Some(failure)) => (false, failure.reason(), failure.message()),
        _ if spec.paused => (
            false,
            reasons::PAUSED,
            "spec.paused is set: no writes".to_string(),
        ),
        _ if spec.dry_run => (
            true,
            reasons::DRY_RUN,
            "spec.dryRun is set: decisions are published, replicas are not written".to_string(),
        ),
        _ => match decision.map(|d| d.reason) {
            Some(r @ (Reason::ScaleUpStabilized | Reason::ScaleDownStabilized)) => (
                true,
                r.as_str(),
                decision.map(|d| d.message.clone()).unwrap_or_default(),
            ),
            _ => (
                true,
                reasons::READY_FOR_NEW_SCALE,
                "the target's /scale can be read and written".to_string(),
            ),
        },
    };
    out.push(condition(
        types::ABLE_TO_SCALE,
        able,
        a_reason,
        a_message,
        now,
        generation,
    ));

    // ScalingLimited: a bound or rate on the workload, or a node pool held at
    // maxNodes below what the workload needs.
    if let Some(d) = decision {
        let pool_at_max = d.nodes.as_ref().and_then(|n| n.at_max.as_ref());
        let (limited, reason, message) = match (d.reason, pool_at_max) {
            (
                r @ (Reason::TooManyReplicas
                | Reason::TooFewReplicas
                | Reason::ScaleUpLimit
                | Reason::ScaleDownLimit
                | Reason::NodePoolAtMax),
                _,
            ) => (true, r, d.message.clone()),
            (_, Some(at_max)) => (true, Reason::NodePoolAtMax, at_max.message.clone()),
            _ => (false, Reason::DesiredWithinRange, d.message.clone()),
        };
        let reason = reason.as_str();
        out.push(condition(
            types::SCALING_LIMITED,
            limited,
            reason,
            message,
            now,
            generation,
        ));
    }

    // NodePoolReady
    if spec.node_pool.is_some() {
        let (ok, reason, message) = match (
            &fetched.current_nodes,
            decision.and_then(|d| d.nodes.as_ref()),
        ) {
            (Some(Err(e)), _) => (false, e.category(), e.to_string()),
            (_, Some(n)) if n.reason == Reason::PodDoesNotFit => {
                (false, n.reason.as_str(), n.message.clone())
            }
            (_, Some(n)) if let Some(at_max) = &n.at_max => {
                (false, reasons::NODE_POOL_AT_MAX, at_max.message.clone())
            }
            (_, Some(n)) => (true, n.reason.as_str(), n.message.clone()),
            _ => (
                false,
                reasons::UNKNOWN,
                "no node-pool decision yet".to_string(),
            ),
        };
        out.push(condition(
            types::NODE_POOL_READY,
            ok,
            reason,
            message,
            now,
            generation,
        ));
    }

    // ReplicasOwned: for targets whose owners are known.
    if let Some((ok, reason, message)) = replicas_owned(policy, fetched, applied, now) {
        out.push(condition(
            types::REPLICAS_OWNED,
            ok,
            reason,
            message,
            now,
            generation,
        ));
    }

    // Ready: the policy's configuration can work — its spec, its sources, its
    // target — as KEDA's Ready now means (keda #7914). Runtime state (metrics
    // missing, fallback, a failed write, paused, dryRun, a replicas fight) has its
    // own condition above and leaves Ready alone, so GitOps health does not flap
    // with a Prometheus restart. A problem only a change can fix also sets Stalled.
    match configuration_problem(fetched, applied) {
        Some(problem) => {
            out.push(condition(
                types::READY,
                false,
                problem.reason,
                problem.message.clone(),
                now,
                generation,
            ));
            if problem.stalled {
                out.push(condition(
                    types::STALLED,
                    true,
                    problem.reason,
                    problem.message,
                    now,
                    generation,
                ));
            }
        }
        None => out.push(condition(
            types::READY,
            true,
            reasons::READY,
            "the spec, its metrics sources and its target can work (what happens at run time: MetricsAvailable, AbleToScale, ScalingLimited)".to_string(),
            now,
            generation,
        )),
    }

    let old = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    keep_transition_times(out, old)
}

/// Why the policy's configuration cannot work now.
struct ConfigurationProblem {
    reason: &'static str,
    message: String,
    /// Only a change (of the spec, a source, the target's kind) fixes it.
    stalled: bool,
}

/// The first configuration problem of this tick: the target (its kind, its
/// existence), then each metric's source. Transient failures (a read or write
/// that failed, a query, a circuit) are not configuration problems.
fn configuration_problem(fetched: &Fetched, applied: &Applied) -> Option<ConfigurationProblem> {
    let target_error = fetched
        .current_replicas
        .as_ref()
        .err()
        .or(match &applied.failure {
            Some(super::apply::Failure::Workload(e)) => Some(e),
            _ => None,
        });
    let pool_error = fetched
        .current_nodes
        .as_ref()
        .and_then(|r| r.as_ref().err());
    for e in target_error.into_iter().chain(pool_error) {
        use crate::scale::ScaleError;
        let (reason, stalled) = match e {
            // The kind itself cannot be scaled here: only a change fixes it.
            ScaleError::NoScale { .. } | ScaleError::ClusterScoped { .. } => {
                ("InvalidTarget", true)
            }
            // Discovery also fails while the API server is unreachable, and a CRD
            // may be installed later: not Stalled.
            ScaleError::Discover { .. } => ("InvalidTarget", false),
            ScaleError::NotFound { .. } => (reasons::TARGET_NOT_FOUND, false),
            ScaleError::GetScale { .. }
            | ScaleError::PatchScale { .. }
            | ScaleError::Path { .. } => {
                continue;
            }
        };
        return Some(ConfigurationProblem {
            reason,
            message: e.to_string(),
            stalled,
        });
    }
    fetched.metrics.iter().find_map(|m| {
        let missing = m.missing.as_ref()?;
        let (reason, stalled) = match missing.cause {
            MissingCause::SourceNotAllowed => (reasons::SOURCE_NOT_ALLOWED, true),
            MissingCause::SourceInvalid => (reasons::SOURCE_INVALID, true),
            // Applied with the policy by the same sync, it may be a moment behind.
            MissingCause::SourceNotFound => (reasons::SOURCE_NOT_FOUND, false),
            _ => return None,
        };
        Some(ConfigurationProblem {
            reason,
            message: missing.message.clone(),
            stalled,
        })
    })
}

/// `ReplicasOwned`: whether Ballast's replicas stand, or who wrote after it.
/// Ready does not depend on it: the policy still decides and writes; the
/// condition (and its Warning Event) says that something undoes its writes.
fn replicas_owned(
    policy: &CustomScalingPolicy,
    fetched: &Fetched,
    applied: &Applied,
    now: i64,
) -> Option<(bool, &'static str, String)> {
    let seen = replicas_owned_now(policy, fetched, applied)?;
    // A fight goes on through Ballast's own writes between the other writer's:
    // once False, the condition stays False (with its message) until it has been
    // False for FIGHT_QUIET and Ballast's replicas stand again. So a sync that
    // keeps writing gives one Warning per FIGHT_QUIET, not one per overwrite.
    if seen.0
        && let Some(prev) = policy.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == types::REPLICAS_OWNED)
        })
        && prev.status == "False"
        && prev.reason == reasons::REPLICAS_OVERWRITTEN
        && now - prev.last_transition_time.0.as_millisecond() < FIGHT_QUIET_MS
    {
        return Some((false, reasons::REPLICAS_OVERWRITTEN, prev.message.clone()));
    }
    Some(seen)
}

/// How long `ReplicasOwned` stays False after a fight starts (see [`replicas_owned`]).
pub const FIGHT_QUIET_MS: i64 = 5 * 60 * 1000;

/// `ReplicasOwned` from this tick's facts alone: the workload's and, once Ballast
/// has written it, the node pool's; a fight on either makes it False. `None`
/// when neither's owners are known.
fn replicas_owned_now(
    policy: &CustomScalingPolicy,
    fetched: &Fetched,
    applied: &Applied,
) -> Option<(bool, &'static str, String)> {
    let status = policy.status.as_ref();
    let workload = fetched.replicas_owners.as_ref().map(|owners| {
        owned(
            &policy.spec.target_ref,
            owners,
            applied.replicas.is_some(),
            status.and_then(|s| s.last_scale_time.as_ref()).map(|t| t.0),
        )
    });
    let pool = match (&policy.spec.node_pool, &fetched.pool_replicas_owners) {
        (Some(pool), Some(owners)) => Some(owned(
            &pool.target_ref,
            owners,
            applied.nodes.is_some(),
            status
                .and_then(|s| s.node_pool.as_ref())
                .and_then(|p| p.last_scale_time.as_ref())
                .map(|t| t.0),
        )),
        _ => None,
    };
    match (workload, pool) {
        (_, Some(p)) if !p.0 => Some(p),
        (Some(w), _) => Some(w),
        (None, p) => p,
    }
}

/// One target's `ReplicasOwned`: `wrote` this tick, `last_write` before.
fn owned(
    target: &crate::api::TargetRef,
    owners: &[ReplicasOwner],
    wrote: bool,
    last_write: Option<jiff::Timestamp>,
) -> (bool, &'static str, String) {
    let field = format!("spec.replicas of {}/{}", target.kind, target.name);
    if wrote {
        return (
            true,
            reasons::OWNED_BY_BALLAST,
            format!("Ballast wrote {field} (field manager {FIELD_MANAGER})"),
        );
    }
    if let Some(by) = overwritten_by(owners, last_write) {
        return (
            false,
            reasons::REPLICAS_OVERWRITTEN,
            format!(
                "{field} was written by {} after Ballast's last write{}: the next tick starts from that value, and a writer that keeps setting it fights Ballast; leave replicas out of Git or ignore the field (docs/gitops.md, \"Leave replicas to Ballast\")",
                by.describe(),
                last_write.map(|t| format!(" ({t})")).unwrap_or_default()
            ),
        );
    }
    if owners.iter().any(|o| o.manager == FIELD_MANAGER) || last_write.is_some() {
        return (
            true,
            reasons::OWNED_BY_BALLAST,
            format!("no other field manager has written {field} since Ballast"),
        );
    }
    let others: Vec<String> = owners.iter().map(ReplicasOwner::describe).collect();
    (
        true,
        reasons::NOT_WRITTEN_YET,
        if others.is_empty() {
            format!("Ballast has not written {field} yet")
        } else {
            format!(
                "Ballast has not written {field} yet; it is owned by {}",
                others.join(", ")
            )
        },
    )
}

/// Build the status for this tick.
pub fn status(
    policy: &CustomScalingPolicy,
    fetched: &Fetched,
    decision: Option<&Decision>,
    applied: &Applied,
    history: Option<&History>,
    now: i64,
) -> CustomScalingPolicyStatus {
    let old = policy.status.clone().unwrap_or_default();
    let current = fetched.current_replicas.as_ref().ok().copied();
    let metrics = match decision {
        Some(d) => d
            .metrics
            .iter()
            .map(|m| MetricStatus {
                name: m.name.clone(),
                raw: m.raw.map(significant),
                smoothed: m.smoothed.map(significant),
                forecast: m.forecast.map(significant),
                sample_time: m.sample_time.and_then(ts),
            })
            .collect(),
        None => old.metrics.clone(),
    };
    let node_pool = policy.spec.node_pool.as_ref().map(|_| NodePoolStatus {
        current_nodes: match applied.nodes {
            Some((_, to)) => Some(to),
            None => fetched
                .current_nodes
                .as_ref()
                .and_then(|r| r.as_ref().ok().copied()),
        },
        desired_nodes: decision.and_then(|d| d.nodes.as_ref()).map(|n| n.desired),
        // Kept through ticks that decide nothing for the pool (a failed read, a
        // pause), so the NodePoolAtMax Events fire once per stretch.
        needed_nodes: decision
            .and_then(|d| d.nodes.as_ref())
            .filter(|n| n.reason != Reason::Paused)
            .map(|n| n.at_max.as_ref().map_or(n.needed, |a| a.wanted))
            .or(old.node_pool.as_ref().and_then(|p| p.needed_nodes)),
        last_scale_time: if applied.nodes.is_some() {
            ts(now)
        } else {
            old.node_pool
                .as_ref()
                .and_then(|p| p.last_scale_time.clone())
        },
    });
    CustomScalingPolicyStatus {
        observed_generation: policy.metadata.generation,
        current_replicas: match applied.replicas {
            Some((_, to)) => Some(to),
            None => current,
        },
        desired_replicas: decision
            .map(|d| d.desired_replicas)
            .or(old.desired_replicas),
        last_scale_time: if applied.replicas.is_some() {
            ts(now)
        } else {
            old.last_scale_time.clone()
        },
        metrics,
        node_pool,
        active_schedules: match decision {
            Some(d) => d.schedules.iter().map(|a| a.name.clone()).collect(),
            None => old.active_schedules.clone(),
        },
        history: history.cloned().or(old.history.clone()),
        conditions: conditions(policy, fetched, decision, applied, now),
    }
}

/// The part of a status whose change is worth a write. Metric values and
/// smoothing state ride along with other changes; on their own they are written
/// only when they moved by more than the policy's tolerance (so `kubectl get`
/// stays truthful without a write per tick in steady state).
fn digest(status: &CustomScalingPolicyStatus, failure_cap: u32) -> serde_json::Value {
    // Of the recommendations, only their extremes matter to a successor (the windows
    // take the lowest and the highest): a new entry of the same value each tick,
    // while a window holds or under dryRun, is not worth a write. During a
    // scale-down window, the newest recommendation holding the replicas up is
    // (`heldAt`), so a new leader can resume the window instead of restarting it.
    let history = status.history.as_ref().map(|h| {
        json!({
            "lowest": h.recommendations.iter().map(|r| r.low).min(),
            "highest": h.recommendations.iter().map(|r| r.high).max(),
            "heldAt": status
                .current_replicas
                .and_then(|current| crate::engine::history::held_at(h, current)),
            "scaleEvents": h.scale_events.iter().map(|e| (e.time, e.change)).collect::<Vec<_>>(),
            "failures": h.consecutive_failures.min(failure_cap),
            "nodeShrinkSince": h.node_shrink_since,
        })
    });
    json!({
        "observedGeneration": status.observed_generation,
        "currentReplicas": status.current_replicas,
        "desiredReplicas": status.desired_replicas,
        "lastScaleTime": status.last_scale_time,
        "nodePool": status.node_pool,
        "activeSchedules": status.active_schedules,
        "conditions": status.conditions.iter().map(|c| (&c.type_, &c.status, &c.reason)).collect::<Vec<_>>(),
        "metricsPresent": status.metrics.iter().map(|m| (&m.name, m.smoothed.is_some())).collect::<Vec<_>>(),
        "history": history,
    })
}

/// A smoothed metric moved by more than `tolerance`, measured against the larger
/// of its last written value and its target (so a value decaying towards zero does
/// not count as a large relative change every tick).
fn metric_moved(
    new: &CustomScalingPolicyStatus,
    old: &CustomScalingPolicyStatus,
    policy: &CustomScalingPolicy,
    tolerance: f64,
) -> bool {
    new.metrics.iter().any(|m| {
        let before = old
            .metrics
            .iter()
            .find(|o| o.name == m.name)
            .and_then(|o| o.smoothed);
        let target = policy
            .spec
            .metrics
            .iter()
            .find(|s| s.name == m.name)
            .and_then(|s| s.target.quantity())
            .map_or(0.0, |q| q.value().abs());
        match (m.smoothed, before) {
            (Some(a), Some(b)) => (a - b).abs() / b.abs().max(target).max(1e-9) > tolerance,
            (a, b) => a.is_some() != b.is_some(),
        }
    })
}

/// Whether `new` differs enough from what is stored to be written.
pub fn worth_writing(
    new: &CustomScalingPolicyStatus,
    old: Option<&CustomScalingPolicyStatus>,
    policy: &CustomScalingPolicy,
) -> bool {
    let Some(old) = old else {
        return true;
    };
    let cap = policy
        .spec
        .fallback
        .as_ref()
        .map_or(3, |f| f.failure_threshold)
        .max(1);
    let tolerance = policy
        .spec
        .behavior
        .as_ref()
        .and_then(|b| b.tolerance)
        .unwrap_or(crate::engine::behavior::DEFAULT_TOLERANCE)
        .max(0.01);
    digest(new, cap) != digest(old, cap) || metric_moved(new, old, policy, tolerance)
}

/// Severity of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One Event about a policy.
#[derive(Clone, Debug)]
pub struct Event {
    pub type_: EventType,
    pub reason: String,
    pub note: Option<String>,
    pub action: String,
    pub secondary: Option<k8s_openapi::api::core::v1::ObjectReference>,
}

/// The `reportingController` of our Events.
pub const REPORTING_CONTROLLER: &str = "autoscaling.ballast.dev/operator";

/// Events for what happened at this tick (leader only).
pub fn events(
    policy: &CustomScalingPolicy,
    fetched: &Fetched,
    decision: Option<&Decision>,
    applied: &Applied,
    now: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    let target = &policy.spec.target_ref;
    let metric_summary = || -> String {
        decision
            .map(|d| {
                d.metrics
                    .iter()
                    .map(|m| match m.smoothed {
                        Some(v) => format!("{}={}", m.name, fmt_num(v)),
                        None => format!("{}=no data", m.name),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if let Some((from, to)) = applied.replicas {
        let (reason, verb) = if to > from {
            (event_reasons::SCALED_UP, "up")
        } else {
            (event_reasons::SCALED_DOWN, "down")
        };
        let why = decision.map_or(Reason::DesiredWithinRange, |d| d.reason);
        out.push(Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(truncate(
                format!(
                    "Scaled {} {}/{} from {from} to {to} replicas ({}; {why})",
                    verb,
                    target.kind,
                    target.name,
                    metric_summary()
                ),
                1000,
            )),
            action: "Scale".into(),
            secondary: None,
        });
    }
    if let (Some((from, to)), Some(pool)) = (applied.nodes, policy.spec.node_pool.as_ref()) {
        out.push(Event {
            type_: EventType::Normal,
            reason: event_reasons::NODE_POOL_SCALED.into(),
            note: Some(format!(
                "Scaled node pool {}/{} from {} to {to} nodes",
                pool.target_ref.kind,
                pool.target_ref.name,
                from.map_or("unknown".to_string(), |n| n.to_string())
            )),
            action: "ScaleNodePool".into(),
            secondary: None,
        });
    }
    // The replicas fight: once per stretch (when the condition turns False), not
    // while paused or under dryRun, when writes by others are expected.
    if !policy.spec.paused
        && !policy.spec.dry_run
        && let Some((ok, reason, message)) = replicas_owned(policy, fetched, applied, now)
    {
        let was_owned = policy
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == types::REPLICAS_OWNED)
            })
            .is_none_or(|c| c.status != "False");
        if !ok && was_owned {
            out.push(Event {
                type_: EventType::Warning,
                reason: reason.into(),
                note: Some(truncate(message, 1000)),
                action: "Scale".into(),
                secondary: None,
            });
        }
    }
    if let Some(d) = decision {
        let was_available = policy
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == types::METRICS_AVAILABLE)
            })
            .is_none_or(|c| c.status == "True");
        let missing: Vec<&str> = fetched
            .metrics
            .iter()
            .filter_map(|m| m.missing.as_ref().map(|x| x.message.as_str()))
            .collect();
        if was_available && !missing.is_empty() {
            out.push(Event {
                type_: EventType::Warning,
                reason: reasons::METRICS_UNAVAILABLE.into(),
                note: Some(truncate(
                    format!(
                        "{}; holding {} replicas (never read as zero)",
                        missing.join("; "),
                        d.desired_replicas
                    ),
                    1000,
                )),
                action: "ReadMetrics".into(),
                secondary: None,
            });
        }
        let had_fallback = policy
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == types::METRICS_AVAILABLE)
            })
            .is_some_and(|c| c.reason == reasons::FALLBACK_ACTIVE);
        // Schedule windows opening and closing.
        let was: &[String] = policy
            .status
            .as_ref()
            .map_or(&[], |s| s.active_schedules.as_slice());
        for a in d.schedules.iter().filter(|a| !was.contains(&a.name)) {
            let until = ts(a.end).map_or_else(|| a.end.to_string(), |t| t.0.to_string());
            out.push(Event {
                type_: EventType::Normal,
                reason: event_reasons::SCHEDULE_STARTED.into(),
                note: Some(truncate(
                    format!(
                        "schedule {} started: {} until {until}; replicas {}",
                        a.name,
                        a.sets(),
                        d.desired_replicas
                    ),
                    1000,
                )),
                action: "Schedule".into(),
                secondary: None,
            });
        }
        for name in was
            .iter()
            .filter(|n| !d.schedules.iter().any(|a| &a.name == *n))
        {
            out.push(Event {
                type_: EventType::Normal,
                reason: event_reasons::SCHEDULE_ENDED.into(),
                note: Some(truncate(
                    format!(
                        "schedule {name} ended; bounds back to [{}, {}], replicas come down through the scale-down window and rate policies",
                        d.bounds.min_replicas, d.bounds.max_replicas
                    ),
                    1000,
                )),
                action: "Schedule".into(),
                secondary: None,
            });
        }
        let fallback = policy.spec.fallback.as_ref();
        if d.data == Data::Fallback && !had_fallback {
            let what = match fallback.map(|f| (f.effective_mode(), f.replicas)) {
                Some((FallbackMode::AtLeast, Some(r))) => format!(
                    "mode AtLeast: never below the current replicas or fallback.replicas {r}; at {}",
                    d.desired_replicas
                ),
                Some((mode, _)) => format!(
                    "mode {}: moving to fallback.replicas: {}",
                    mode.as_str(),
                    d.desired_replicas
                ),
                None => format!("at {}", d.desired_replicas),
            };
            out.push(Event {
                type_: EventType::Warning,
                reason: event_reasons::FALLBACK_APPLIED.into(),
                note: Some(format!(
                    "metrics unavailable for {} ticks (failureThreshold reached); {what}",
                    d.history.consecutive_failures
                )),
                action: "Fallback".into(),
                secondary: None,
            });
        }
        if had_fallback && d.data != Data::Fallback {
            let now = match d.data {
                Data::Complete => "every metric is back".to_string(),
                Data::Partial { missing } => format!("{missing} metrics still missing"),
                _ => "no metric data".to_string(),
            };
            out.push(Event {
                type_: EventType::Normal,
                reason: event_reasons::FALLBACK_ENDED.into(),
                note: Some(format!(
                    "fallback ended: {now}; scaling on the metrics again from {} replicas",
                    d.desired_replicas
                )),
                action: "Fallback".into(),
                secondary: None,
            });
        }
    }
    // The node pool reaching maxNodes below what the workload needs, and leaving it.
    if let (Some(pool), Some(nodes)) = (
        policy.spec.node_pool.as_ref(),
        decision
            .and_then(|d| d.nodes.as_ref())
            .filter(|n| n.reason != Reason::Paused),
    ) {
        // From the numbers in status, not a condition's reason (which a failed
        // read or a pod that does not fit replaces for a tick).
        let was_at_max = policy
            .status
            .as_ref()
            .and_then(|s| s.node_pool.as_ref())
            .and_then(|p| p.needed_nodes)
            .is_some_and(|n| n > pool.max_nodes.max(pool.min_nodes));
        let pool_name = format!("{}/{}", pool.target_ref.kind, pool.target_ref.name);
        match (&nodes.at_max, was_at_max) {
            (Some(at_max), false) => out.push(Event {
                type_: EventType::Warning,
                reason: reasons::NODE_POOL_AT_MAX.into(),
                note: Some(truncate(
                    format!("node pool {pool_name} is at maxNodes: {}", at_max.message),
                    1000,
                )),
                action: "ScaleNodePool".into(),
                secondary: None,
            }),
            (None, true) => out.push(Event {
                type_: EventType::Normal,
                reason: event_reasons::NODE_POOL_WITHIN_MAX.into(),
                note: Some(format!(
                    "node pool {pool_name} holds the workload again: {} nodes needed, maxNodes {}",
                    nodes.needed, pool.max_nodes
                )),
                action: "ScaleNodePool".into(),
                secondary: None,
            }),
            _ => {}
        }
    }
    for source in fetched
        .metrics
        .iter()
        .filter_map(|m| m.opened_circuit.as_ref())
    {
        out.push(Event {
            type_: EventType::Warning,
            reason: event_reasons::CIRCUIT_OPEN.into(),
            note: Some(format!(
                "metrics source {source:?} failed repeatedly; its circuit is open and it is not queried until the cool-down passes"
            )),
            action: "ReadMetrics".into(),
            secondary: None,
        });
    }
    if let Some(failure) = &applied.failure {
        out.push(Event {
            type_: EventType::Warning,
            reason: failure.reason().into(),
            note: Some(truncate(failure.message(), 1000)),
            action: "Scale".into(),
            secondary: None,
        });
    }
    out
}

/// Six significant digits: enough for people and dashboards, and `kubectl get`
/// shows `1184.62` rather than `1184.6206896551723`.
pub fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Update the per-policy gauges.
pub fn record_metrics(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    status: &CustomScalingPolicyStatus,
    now: i64,
) {
    let labels = PolicyLabels {
        namespace: policy.namespace().unwrap_or_default(),
        policy: policy.name_any(),
    };
    let m = &ctx.metrics;
    if let Some(c) = status.current_replicas {
        m.current_replicas.get_or_create(&labels).set(i64::from(c));
    }
    if let Some(d) = status.desired_replicas {
        m.desired_replicas.get_or_create(&labels).set(i64::from(d));
    }
    m.min_replicas
        .get_or_create(&labels)
        .set(i64::from(policy.spec.min_replicas));
    m.max_replicas
        .get_or_create(&labels)
        .set(i64::from(policy.spec.max_replicas));
    if let Some(pool) = &status.node_pool {
        if let Some(n) = pool.current_nodes {
            m.current_nodes.get_or_create(&labels).set(i64::from(n));
        }
        if let Some(n) = pool.desired_nodes {
            m.desired_nodes.get_or_create(&labels).set(i64::from(n));
        }
    }
    let is_true = |t: &str| {
        i64::from(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True"),
        )
    };
    m.metrics_available
        .get_or_create(&labels)
        .set(is_true(types::METRICS_AVAILABLE));
    m.active_schedules
        .get_or_create(&labels)
        .set(i64::try_from(status.active_schedules.len()).unwrap_or(i64::MAX));
    m.scaling_limited
        .get_or_create(&labels)
        .set(is_true(types::SCALING_LIMITED));
    if policy.spec.node_pool.is_some() {
        let at_max = status
            .conditions
            .iter()
            .any(|c| c.type_ == types::NODE_POOL_READY && c.reason == reasons::NODE_POOL_AT_MAX);
        m.node_pool_at_max
            .get_or_create(&labels)
            .set(i64::from(at_max));
    } else {
        // The pool was removed from the spec: no series left to alert on.
        m.node_pool_at_max.remove(&labels);
    }
    m.last_evaluation
        .get_or_create(&labels)
        .set(now as f64 / 1000.0);
    m.poll_interval
        .get_or_create(&labels)
        .set(policy.spec.poll_interval.as_secs_f64());
    for (spec, st) in policy.spec.metrics.iter().zip(&status.metrics) {
        let ml = MetricLabels {
            namespace: labels.namespace.clone(),
            policy: labels.policy.clone(),
            metric: spec.name.clone(),
        };
        if let Some(v) = st.raw {
            m.metric_raw.get_or_create(&ml).set(v);
        }
        if let Some(v) = st.smoothed {
            m.metric_smoothed.get_or_create(&ml).set(v);
        }
        if let Some(q) = spec.target.quantity() {
            m.metric_target.get_or_create(&ml).set(q.value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::Recommendation;

    fn policy() -> CustomScalingPolicy {
        serde_yaml::from_str(
            r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: p, namespace: ns}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
  metrics:
    - name: m
      query: up
      target: {type: AverageValue, averageValue: "100"}
"#,
        )
        .expect("policy")
    }

    fn status(
        current: u32,
        desired: u32,
        smoothed: f64,
        recs: &[(i64, u32)],
    ) -> CustomScalingPolicyStatus {
        CustomScalingPolicyStatus {
            current_replicas: Some(current),
            desired_replicas: Some(desired),
            metrics: vec![MetricStatus {
                name: "m".into(),
                raw: Some(smoothed),
                smoothed: Some(smoothed),
                forecast: None,
                sample_time: None,
            }],
            history: Some(History {
                recommendations: recs
                    .iter()
                    .map(|&(time, r)| Recommendation {
                        time,
                        low: r,
                        high: r,
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn steady_state_is_not_worth_a_write() {
        let p = policy();
        let old = status(3, 3, 300.0, &[(0, 3)]);
        let new = status(3, 3, 310.0, &[(0, 3), (15_000, 3)]);
        assert!(!worth_writing(&new, Some(&old), &p));
    }

    #[test]
    fn a_held_or_dry_run_recommendation_repeated_each_tick_is_not_worth_a_write() {
        let p = policy();
        let old = status(2, 5, 500.0, &[(0, 5)]);
        let new = status(2, 5, 500.0, &[(0, 5), (15_000, 5), (30_000, 5)]);
        assert!(!worth_writing(&new, Some(&old), &p));
    }

    #[test]
    fn a_metric_decaying_to_zero_is_not_a_write_per_tick() {
        let p = policy();
        let old = status(1, 1, 0.5, &[(0, 1)]);
        let new = status(1, 1, 0.4, &[(0, 1)]);
        assert!(!worth_writing(&new, Some(&old), &p));
    }

    #[test]
    fn changes_that_matter_are_written() {
        let p = policy();
        let old = status(3, 3, 300.0, &[(0, 3)]);
        assert!(
            worth_writing(&status(3, 4, 300.0, &[(0, 3)]), Some(&old), &p),
            "desired changed"
        );
        assert!(
            worth_writing(&status(3, 3, 400.0, &[(0, 3)]), Some(&old), &p),
            "metric moved by a third"
        );
        assert!(
            worth_writing(&status(3, 3, 300.0, &[(0, 3), (15_000, 1)]), Some(&old), &p),
            "a lower recommendation"
        );
        assert!(
            worth_writing(&status(3, 3, 300.0, &[]), None, &p),
            "nothing stored yet"
        );
    }

    /// The acceptance finding: 8 replicas asked, `podsPerNode: 2, maxNodes: 2`,
    /// reported as `NodePoolReady=True/DesiredWithinRange`, `ScalingLimited=False`.
    fn pool_policy() -> CustomScalingPolicy {
        serde_yaml::from_str(
            r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: cache, namespace: ns, generation: 1}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: cache}
  maxReplicas: 10
  metrics:
    - name: load
      query: up
      target: {type: AverageValue, averageValue: "1"}
  behavior:
    scaleUp: {policies: [{type: Pods, value: 10, periodSeconds: 15}]}
  nodePool:
    targetRef: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, name: pool}
    podsPerNode: 2
    maxNodes: 2
"#,
        )
        .expect("policy")
    }

    fn pool_tick(policy: &CustomScalingPolicy, current: u32, load: f64) -> (Fetched, Decision) {
        let sample = crate::engine::Sample {
            value: load,
            time: 0,
        };
        let fetched = Fetched {
            current_replicas: Ok(current),
            metrics: vec![super::super::fetch::MetricRead {
                name: "load".into(),
                sample: Some(sample),
                missing: None,
                opened_circuit: None,
            }],
            current_nodes: Some(Ok(2)),
            pod_requests: None,
            replicas_owners: None,
            pool_replicas_owners: None,
        };
        let decision = crate::engine::decide(&crate::engine::Input {
            spec: &policy.spec,
            now: 0,
            current_replicas: current,
            samples: &[Some(sample)],
            history: &Default::default(),
            current_nodes: Some(2),
            pod_requests: None,
        });
        (fetched, decision)
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn a_node_pool_held_at_max_nodes_limits_scaling_and_is_not_ready() {
        let mut p = pool_policy();
        let (fetched, d) = pool_tick(&p, 4, 8.0);
        assert_eq!(d.desired_replicas, 8);
        let conds = super::conditions(&p, &fetched, Some(&d), &Applied::default(), 0);
        let limited = find(&conds, types::SCALING_LIMITED);
        assert_eq!(
            (limited.status.as_str(), limited.reason.as_str()),
            ("True", reasons::NODE_POOL_AT_MAX)
        );
        assert!(
            limited.message.contains("needs 4 nodes for 8 replicas"),
            "{}",
            limited.message
        );
        assert!(
            limited.message.contains("4 replicas fit"),
            "{}",
            limited.message
        );
        let pool = find(&conds, types::NODE_POOL_READY);
        assert_eq!(
            (pool.status.as_str(), pool.reason.as_str()),
            ("False", reasons::NODE_POOL_AT_MAX)
        );
        // One Warning when it starts...
        let first = events(&p, &fetched, Some(&d), &Applied::default(), 0);
        let at_max: Vec<_> = first
            .iter()
            .filter(|e| e.reason == reasons::NODE_POOL_AT_MAX)
            .collect();
        assert_eq!(at_max.len(), 1);
        assert_eq!(at_max[0].type_, EventType::Warning);
        // ...none while it lasts...
        p.status = Some(super::status(
            &p,
            &fetched,
            Some(&d),
            &Applied::default(),
            Some(&d.history),
            0,
        ));
        assert_eq!(
            p.status
                .as_ref()
                .and_then(|s| s.node_pool.as_ref())
                .and_then(|n| n.needed_nodes),
            Some(4)
        );
        // A tick whose pool read failed does not start the Warning again.
        let (mut failed, d_failed) = pool_tick(&p, 8, 8.0);
        failed.current_nodes = Some(Err(crate::scale::ScaleError::GetScale {
            kind: "MachineDeployment".into(),
            name: "pool".into(),
            message: "timeout".into(),
        }));
        let mut q = p.clone();
        q.status = Some(super::status(
            &p,
            &failed,
            Some(&d_failed),
            &Applied::default(),
            None,
            0,
        ));
        assert!(
            events(&q, &failed, Some(&d_failed), &Applied::default(), 0)
                .iter()
                .all(|e| e.reason != reasons::NODE_POOL_AT_MAX)
        );
        let (fetched, d) = pool_tick(&p, 8, 8.0);
        assert!(
            events(&p, &fetched, Some(&d), &Applied::default(), 0)
                .iter()
                .all(|e| e.reason != reasons::NODE_POOL_AT_MAX)
        );
        // ...and a Normal one when the workload fits again.
        let (fetched, d) = pool_tick(&p, 4, 4.0);
        let ended: Vec<_> = events(&p, &fetched, Some(&d), &Applied::default(), 0)
            .into_iter()
            .filter(|e| e.reason == "NodePoolWithinMax")
            .collect();
        assert_eq!(ended.len(), 1, "the limit ended");
        let conds = super::conditions(&p, &fetched, Some(&d), &Applied::default(), 0);
        assert_eq!(find(&conds, types::NODE_POOL_READY).status, "True");
        assert_eq!(find(&conds, types::SCALING_LIMITED).status, "False");
    }

    fn owner(manager: &str, time: &str) -> ReplicasOwner {
        ReplicasOwner {
            manager: manager.into(),
            operation: "Apply".into(),
            subresource: None,
            time: Some(Time(time.parse().expect("a timestamp"))),
        }
    }

    #[test]
    fn replicas_written_by_another_manager_after_ballast_are_reported_once() {
        let mut p = pool_policy();
        let (mut fetched, d) = pool_tick(&p, 4, 4.0);
        let owned = |p: &CustomScalingPolicy, f: &Fetched, applied: &Applied| {
            let conds = super::conditions(p, f, Some(&d), applied, 0);
            let c = find(&conds, types::REPLICAS_OWNED).clone();
            (c.status, c.reason, c.message)
        };
        // Before Ballast wrote: the creator owns replicas, which is no fight.
        fetched.replicas_owners = Some(vec![owner(
            "kubectl-client-side-apply",
            "2026-12-01T09:00:00Z",
        )]);
        let (status, reason, message) = owned(&p, &fetched, &Applied::default());
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", reasons::NOT_WRITTEN_YET)
        );
        assert!(message.contains("kubectl-client-side-apply"), "{message}");
        // The tick that writes owns them.
        let wrote = Applied {
            replicas: Some((2, 4)),
            ..Applied::default()
        };
        assert_eq!(owned(&p, &fetched, &wrote).1, reasons::OWNED_BY_BALLAST);
        // Ballast wrote at 10:00; argocd-controller applied replicas at 10:00:30.
        let mut st = p.status.clone().unwrap_or_default();
        st.last_scale_time = Some(Time("2026-12-01T10:00:00Z".parse().expect("time")));
        p.status = Some(st);
        fetched.replicas_owners = Some(vec![
            owner("kubectl-client-side-apply", "2026-12-01T09:00:00Z"),
            owner("argocd-controller", "2026-12-01T10:00:30Z"),
        ]);
        let (status, reason, message) = owned(&p, &fetched, &Applied::default());
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", reasons::REPLICAS_OVERWRITTEN)
        );
        assert!(
            message.contains("argocd-controller (server-side apply"),
            "{message}"
        );
        assert!(message.contains("docs/gitops.md"), "{message}");
        let warnings: Vec<_> = events(&p, &fetched, Some(&d), &Applied::default(), 0)
            .into_iter()
            .filter(|e| e.reason == reasons::REPLICAS_OVERWRITTEN)
            .collect();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].type_, EventType::Warning);
        // Once reported, not again while it lasts; not while paused.
        let mut q = p.clone();
        q.status = Some(super::status(
            &p,
            &fetched,
            Some(&d),
            &Applied::default(),
            None,
            0,
        ));
        assert!(
            events(&q, &fetched, Some(&d), &Applied::default(), 0)
                .iter()
                .all(|e| e.reason != reasons::REPLICAS_OVERWRITTEN)
        );
        let mut paused = p.clone();
        paused.spec.paused = true;
        assert!(
            events(&paused, &fetched, Some(&d), &Applied::default(), 0)
                .iter()
                .all(|e| e.reason != reasons::REPLICAS_OVERWRITTEN)
        );
        // Ballast's own writes between the sync's do not end the fight (no new
        // Warning for each); its replicas standing after FIGHT_QUIET do.
        fetched.replicas_owners = Some(vec![ReplicasOwner {
            manager: FIELD_MANAGER.into(),
            operation: "Update".into(),
            subresource: Some("scale".into()),
            time: Some(Time("2026-12-01T10:01:00Z".parse().expect("time"))),
        }]);
        let at = |now: i64, applied: &Applied| {
            let conds = super::conditions(&q, &fetched, Some(&d), applied, now);
            find(&conds, types::REPLICAS_OWNED).status.clone()
        };
        assert_eq!(at(super::FIGHT_QUIET_MS - 1, &wrote), "False");
        assert_eq!(at(super::FIGHT_QUIET_MS - 1, &Applied::default()), "False");
        assert_eq!(at(super::FIGHT_QUIET_MS, &Applied::default()), "True");
        // A kind the caches do not hold has no such condition.
        fetched.replicas_owners = None;
        let conds = super::conditions(&q, &fetched, Some(&d), &Applied::default(), 0);
        assert!(conds.iter().all(|c| c.type_ != types::REPLICAS_OWNED));
    }

    /// Ready says whether the configuration can work; runtime state has its own
    /// conditions; Stalled marks what only a change fixes (kstatus: Failed).
    #[test]
    fn ready_is_the_configuration_and_stalled_what_only_a_change_fixes() {
        use crate::metrics::MissingCause;
        use crate::scale::ScaleError;
        let p = pool_policy();
        let (base, d) = pool_tick(&p, 4, 4.0);
        let look = |p: &CustomScalingPolicy, f: &Fetched| {
            let conds = super::conditions(p, f, Some(&d), &Applied::default(), 0);
            let ready = find(&conds, types::READY);
            let stalled = conds
                .iter()
                .find(|c| c.type_ == types::STALLED)
                .map(|c| (c.status.clone(), c.reason.clone()));
            (ready.status.clone(), ready.reason.clone(), stalled)
        };
        let missing = |cause: MissingCause| {
            let (mut f, _) = pool_tick(&p, 4, 4.0);
            f.metrics[0].sample = None;
            f.metrics[0].missing = Some(Missing {
                cause,
                message: format!("{cause:?}"),
            });
            f
        };
        assert_eq!(
            look(&p, &base),
            ("True".into(), reasons::READY.into(), None)
        );
        // A metrics outage, a circuit, a fallback: runtime, not configuration.
        for cause in [
            MissingCause::QueryFailed,
            MissingCause::CircuitOpen,
            MissingCause::NoData,
        ] {
            let f = missing(cause);
            assert_eq!(look(&p, &f).0, "True", "{cause:?}");
            let conds = super::conditions(&p, &f, Some(&d), &Applied::default(), 0);
            assert_eq!(find(&conds, types::METRICS_AVAILABLE).status, "False");
        }
        // Paused: AbleToScale says so; Ready stays True.
        let mut paused = p.clone();
        paused.spec.paused = true;
        assert_eq!(look(&paused, &base).0, "True");
        // Configuration that only a change fixes: Ready False and Stalled True.
        assert_eq!(
            look(&p, &missing(MissingCause::SourceNotAllowed)),
            (
                "False".into(),
                reasons::SOURCE_NOT_ALLOWED.into(),
                Some(("True".into(), reasons::SOURCE_NOT_ALLOWED.into()))
            )
        );
        assert_eq!(
            look(&p, &missing(MissingCause::SourceInvalid))
                .2
                .map(|s| s.1),
            Some(reasons::SOURCE_INVALID.into())
        );
        let (mut no_scale, _) = pool_tick(&p, 4, 4.0);
        no_scale.current_replicas = Err(ScaleError::NoScale {
            kind: "ConfigMap".into(),
        });
        assert_eq!(
            look(&p, &no_scale),
            (
                "False".into(),
                "InvalidTarget".into(),
                Some(("True".into(), "InvalidTarget".into()))
            )
        );
        // A kind discovery cannot find (not installed yet, or the API server out
        // of reach for a moment): Ready False, not Stalled.
        let (mut undiscovered, _) = pool_tick(&p, 4, 4.0);
        undiscovered.current_replicas = Err(ScaleError::Discover {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            message: "connection refused".into(),
        });
        assert_eq!(
            look(&p, &undiscovered),
            ("False".into(), "InvalidTarget".into(), None)
        );
        // What may appear by itself (a source or target a sync creates a moment
        // later): Ready False, not Stalled.
        assert_eq!(
            look(&p, &missing(MissingCause::SourceNotFound)),
            ("False".into(), reasons::SOURCE_NOT_FOUND.into(), None)
        );
        let (mut gone, _) = pool_tick(&p, 4, 4.0);
        gone.current_replicas = Err(ScaleError::NotFound {
            namespace: "ns".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        });
        assert_eq!(
            look(&p, &gone),
            ("False".into(), reasons::TARGET_NOT_FOUND.into(), None)
        );
        // A read that failed for a moment is neither.
        let (mut flaky, _) = pool_tick(&p, 4, 4.0);
        flaky.current_replicas = Err(ScaleError::GetScale {
            kind: "Deployment".into(),
            name: "web".into(),
            message: "timeout".into(),
        });
        assert_eq!(look(&p, &flaky).0, "True");
    }

    #[test]
    fn a_node_pool_written_by_another_manager_after_ballast_is_a_fight_too() {
        let mut p = pool_policy();
        let (mut fetched, d) = pool_tick(&p, 4, 4.0);
        // The workload is fine; Ballast scaled the pool at 10:00.
        fetched.replicas_owners = Some(vec![owner(FIELD_MANAGER, "2026-12-01T09:00:00Z")]);
        let mut st = p.status.clone().unwrap_or_default();
        st.last_scale_time = Some(Time("2026-12-01T09:00:00Z".parse().expect("time")));
        st.node_pool = Some(crate::api::NodePoolStatus {
            last_scale_time: Some(Time("2026-12-01T10:00:00Z".parse().expect("time"))),
            ..Default::default()
        });
        p.status = Some(st);
        fetched.pool_replicas_owners =
            Some(vec![owner("kustomize-controller", "2026-12-01T10:02:00Z")]);
        let conds = super::conditions(&p, &fetched, Some(&d), &Applied::default(), 0);
        let c = find(&conds, types::REPLICAS_OWNED);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reasons::REPLICAS_OVERWRITTEN)
        );
        assert!(
            c.message.contains("MachineDeployment/pool")
                && c.message.contains("kustomize-controller"),
            "{}",
            c.message
        );
        // The tick that writes the pool records when, for the next.
        let wrote = Applied {
            nodes: Some((Some(2), 3)),
            ..Applied::default()
        };
        let status = super::status(&p, &fetched, Some(&d), &wrote, None, 1_000);
        assert_eq!(
            status
                .node_pool
                .and_then(|n| n.last_scale_time)
                .map(|t| t.0.as_millisecond()),
            Some(1_000)
        );
        // Ballast owning the pool again: no fight.
        fetched.pool_replicas_owners = Some(vec![owner(FIELD_MANAGER, "2026-12-01T10:03:00Z")]);
        let conds = super::conditions(&p, &fetched, Some(&d), &Applied::default(), 0);
        assert_eq!(find(&conds, types::REPLICAS_OWNED).status, "True");
    }
}

//! The decision engine: pure functions, no kube, no tokio, no clock, no I/O.
//! Plain values in (the spec, current replicas, timestamped samples, the persisted
//! history, `now`), a decision with its reasons out.
//!
//! One tick, in order:
//! 1. smooth each metric's sample ([`smoothing`]); stale or non-finite samples are missing;
//! 2. recommend replicas per metric ([`replicas`]); several metrics → the largest;
//!    scale to zero only when every metric is at or below its activation threshold;
//! 3. missing data: hold (never a scale-down), or after `failureThreshold` failed
//!    ticks move to `fallback.replicas`;
//! 4. stabilize and rate-limit as HPA v2 does ([`behavior`]), then bound;
//! 5. size the node pool ([`nodepool`]) and keep the history bounded ([`history`]).

pub mod behavior;
pub mod explain;
pub mod history;
pub mod nodepool;
pub mod replicas;
pub mod schedule;
pub mod smoothing;

use crate::api::conditions::Reason;
use crate::api::history::{History, SmoothedValue};
use crate::api::policy::CustomScalingPolicySpec;

pub use nodepool::{NodeDecision, Order, PodRequests};

/// A metric sample: the query's value and when it was taken (Unix ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub time: i64,
}

/// A sample older than this many poll intervals counts as missing.
pub const STALE_INTERVALS: i64 = 3;

/// Everything one decision needs.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub spec: &'a CustomScalingPolicySpec,
    /// Unix milliseconds.
    pub now: i64,
    pub current_replicas: u32,
    /// One entry per `spec.metrics`, in order; `None` is a failed or empty read.
    pub samples: &'a [Option<Sample>],
    pub history: &'a History,
    /// The node pool's current size, when a node pool is set and it could be read.
    pub current_nodes: Option<u32>,
    /// The workload's pod requests, for `nodeAllocatable`.
    pub pod_requests: Option<PodRequests>,
}

/// How much metric data the decision had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// Every metric had a fresh sample.
    Complete,
    /// Some metrics were missing: scale-up only.
    Partial { missing: usize },
    /// No metric had a sample: replicas held.
    Missing,
    /// Data has been missing for `failureThreshold` ticks and `fallback.replicas` applies.
    Fallback,
}

/// What happened to one metric in this tick.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricOutcome {
    pub name: String,
    pub raw: Option<f64>,
    pub smoothed: Option<f64>,
    /// With `smoothing.lookahead`: the value the recommendation used (the bounded
    /// forecast; with direction Up never below `smoothed`).
    pub forecast: Option<f64>,
    pub sample_time: Option<i64>,
    pub recommended: Option<u32>,
    /// Why the metric had no usable sample.
    pub missing: Option<&'static str>,
}

impl MetricOutcome {
    /// The value the recommendation uses: the forecast with a lookahead, else the
    /// smoothed value.
    pub fn value(&self) -> Option<f64> {
        self.forecast.or(self.smoothed)
    }
}

/// The engine's answer for one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Replicas to set (equal to current when nothing should change).
    pub desired_replicas: u32,
    /// What the metrics alone recommended, before windows, rates and bounds.
    pub recommended: Option<u32>,
    /// Condition reason: which rule shaped the result (HPA's names).
    pub reason: Reason,
    pub message: String,
    pub data: Data,
    pub metrics: Vec<MetricOutcome>,
    pub nodes: Option<NodeDecision>,
    /// How the replicas were reached from the recommendation (`ballast explain`).
    pub steps: Steps,
    /// The schedules active at this tick.
    pub schedules: Vec<schedule::Active>,
    /// The bounds in effect: the spec's, with the active schedules'.
    pub bounds: schedule::Bounds,
    /// The history to keep for the next tick, assuming the decision is applied.
    pub history: History,
}

/// The stages between the metrics' recommendation and the replicas, as the
/// engine went through them: what `ballast explain` puts in words.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Steps {
    /// The current replicas were outside `[minReplicas, maxReplicas]`: the bounds
    /// applied first and nothing else did.
    pub out_of_bounds: bool,
    /// No recommendation history yet: the current replicas counted as a recent
    /// recommendation (no scale-down right after a start).
    pub fresh_start: bool,
    /// The lowest recommendation in the scale-up window and the highest in the
    /// scale-down window, this tick's included.
    pub windows: Option<(u32, u32)>,
    /// The recommendation after the stabilization windows.
    pub stabilized: Option<u32>,
    /// After the rate limits, before the node-pool cap.
    pub limited: Option<u32>,
    /// `nodePool.capReplicas` held the replicas below this.
    pub uncapped: Option<u32>,
}

/// Decide one tick.
pub fn decide(input: &Input<'_>) -> Decision {
    let spec = input.spec;
    let now = input.now;
    let current = input.current_replicas;
    let schedules = schedule::active(spec, now);
    let bounds = schedule::bounds(spec, &schedules);
    let (min, max) = (bounds.min_replicas, bounds.max_replicas);
    let rules = behavior::Resolved::from_spec(spec.behavior.as_ref());
    let mut next = input.history.clone();

    let metrics = observe(input, &mut next);
    let missing = metrics.iter().filter(|m| m.missing.is_some()).count();
    next.consecutive_failures = if missing > 0 {
        input.history.consecutive_failures.saturating_add(1)
    } else {
        0
    };

    let mut decision = Decision {
        desired_replicas: current,
        recommended: None,
        reason: Reason::DesiredWithinRange,
        message: String::new(),
        data: Data::Complete,
        metrics,
        nodes: None,
        steps: Steps::default(),
        schedules,
        bounds,
        history: History::default(),
    };

    if spec.paused {
        decision.reason = Reason::Paused;
        decision.message = "policy is paused: no writes".into();
        decision.data = data_state(missing, decision.metrics.len(), false);
        decision.nodes = node_decision(input, current, &mut next, true, None);
        history::prune(&mut next, now, rules.horizon_millis());
        decision.history = next;
        return decision;
    }

    // Per-metric recommendations on the smoothed values.
    let active = min > 0
        || spec
            .metrics
            .iter()
            .zip(&decision.metrics)
            .any(|(m, o)| o.value().is_some_and(|v| replicas::is_active(m, v)));
    for (metric, outcome) in spec.metrics.iter().zip(decision.metrics.iter_mut()) {
        if let Some(v) = outcome.value() {
            outcome.recommended = replicas::recommend(metric, v, current, rules.tolerance);
        }
    }
    let from_metrics = decision.metrics.iter().filter_map(|m| m.recommended).max();
    let fallback = spec.fallback.as_ref();
    let threshold_reached =
        fallback.is_some_and(|f| next.consecutive_failures >= f.failure_threshold.max(1));
    let fallback_replicas = fallback
        .filter(|_| threshold_reached)
        .and_then(|f| f.target(current));

    let recommendation: Option<u32> = if missing == 0 {
        decision.data = Data::Complete;
        if !active { Some(0) } else { from_metrics }
    } else if let Some(fb) = fallback_replicas {
        decision.data = Data::Fallback;
        // Never below what the metrics that did answer ask for.
        Some(from_metrics.map_or(fb, |r| r.max(fb)))
    } else if missing < decision.metrics.len() {
        decision.data = Data::Partial { missing };
        // Missing data is never a reason to scale down: scale-up only.
        from_metrics.filter(|&r| r > current)
    } else {
        decision.data = Data::Missing;
        None
    };
    decision.recommended = recommendation;

    if current > max || current < min {
        // Out of bounds (someone scaled by hand, or the bounds changed): bounds first.
        let (to, reason) = if current > max {
            (max, Reason::TooManyReplicas)
        } else {
            (min, Reason::TooFewReplicas)
        };
        decision.desired_replicas = to;
        decision.steps.out_of_bounds = true;
        decision.reason = reason;
        decision.message =
            format!("current replicas {current} outside [{min}, {max}]; moving to {to}");
        if let Some(names) = bounding_schedules(&decision, to) {
            decision.message.push_str(&format!(" (schedule {names})"));
        }
    } else if let Some(rec) = recommendation {
        if input.history.recommendations.is_empty() && rules.down.window_seconds > 0 {
            // Fresh start without history: treat current as recent, as HPA does, so a
            // restart never opens the door to an immediate scale-down.
            history::record_recommendation(&mut next, now, current);
            decision.steps.fresh_start = true;
        }
        decision.steps.windows = Some(behavior::window_bounds(&rules, &next, now, rec));
        // Unbounded here, as in HPA, so the rate step can say which bound held.
        let (stabilized, stab_reason) = behavior::stabilize(&rules, &next, now, current, rec);
        // Recorded within bounds (windows take min/max, which commute with bounds).
        history::record_recommendation(&mut next, now, rec.clamp(min, max));
        let (limited, limit_reason) = behavior::limit_rate(
            &rules,
            &next.scale_events,
            now,
            current,
            stabilized,
            min,
            max,
        );
        decision.desired_replicas = limited.clamp(min, max);
        decision.steps.stabilized = Some(stabilized);
        decision.steps.limited = Some(decision.desired_replicas);
        decision.reason = if limited != stabilized {
            limit_reason
        } else if let Some(r) = stab_reason {
            r
        } else if decision.data == Data::Fallback {
            Reason::FallbackActive
        } else {
            limit_reason
        };
        decision.message = explain(&decision, current, rec, stabilized);
    } else {
        decision.reason = Reason::MetricsUnavailable;
        decision.message = match decision.data {
            Data::Partial { missing } => format!(
                "{missing} of {} metrics missing and the rest do not ask for more; holding {current} replicas",
                decision.metrics.len()
            ),
            _ => format!(
                "no metric data ({} consecutive failed ticks); holding {current} replicas",
                next.consecutive_failures
            ),
        };
    }

    // The pool is sized (and says whether it is at maxNodes) for what the workload
    // asks, before any cap below.
    let asked = decision.desired_replicas;
    cap_to_node_pool(input, current, &mut decision);
    history::record_scale_event(&mut next, now, current, decision.desired_replicas);
    decision.nodes = node_decision(input, asked, &mut next, false, decision.bounds.min_nodes);
    history::prune(&mut next, now, rules.horizon_millis());
    decision.history = next;
    decision
}

/// Smooth each metric's sample and note the missing ones; updates the smoothing
/// state in `next`.
fn observe(input: &Input<'_>, next: &mut History) -> Vec<MetricOutcome> {
    let spec = input.spec;
    let stale_after = STALE_INTERVALS * spec.poll_interval.as_millis().max(1000) as i64;
    let half_life = spec.smoothing.as_ref().map(|s| s.half_life.as_millis());
    let lookahead = spec
        .smoothing
        .as_ref()
        .and_then(|s| s.lookahead.map(|l| (l, s)));
    let mut smoothed_state = Vec::with_capacity(spec.metrics.len());
    let mut outcomes = Vec::with_capacity(spec.metrics.len());
    for (i, metric) in spec.metrics.iter().enumerate() {
        let previous = input
            .history
            .smoothed
            .iter()
            .find(|s| s.name == metric.name)
            .cloned();
        let sample = input.samples.get(i).copied().flatten();
        let mut outcome = MetricOutcome {
            name: metric.name.clone(),
            raw: None,
            smoothed: None,
            forecast: None,
            sample_time: None,
            recommended: None,
            missing: None,
        };
        match sample {
            None => outcome.missing = Some("no data"),
            Some(s) if !s.value.is_finite() => outcome.missing = Some("not a finite number"),
            // Saturating: decode turns an absurd Prometheus timestamp into i64::MIN.
            Some(s) if input.now.saturating_sub(s.time) > stale_after => {
                outcome.missing = Some("stale sample")
            }
            Some(s) => {
                // A sample from the future (clock skew) counts as taken now, so it
                // cannot freeze the smoothing state ahead of every later sample.
                let s = Sample {
                    time: s.time.min(input.now),
                    ..s
                };
                let (value, trend) = match (half_life, lookahead) {
                    (Some(h), Some((_, sm))) => {
                        let th = sm.trend_half_life.map_or(h, |d| d.as_millis());
                        let (level, trend) = smoothing::holt(
                            previous
                                .as_ref()
                                .map(|p| (p.value, p.trend.unwrap_or(0.0), p.time)),
                            s.value,
                            s.time,
                            h,
                            th,
                        );
                        (level, Some(trend))
                    }
                    (Some(h), None) => (
                        smoothing::smooth(
                            previous.as_ref().map(|p| (p.value, p.time)),
                            s.value,
                            s.time,
                            h,
                        ),
                        None,
                    ),
                    (None, _) => (s.value, None),
                };
                outcome.raw = Some(s.value);
                outcome.smoothed = Some(value);
                if let (Some(trend), Some((ahead, sm))) = (trend, lookahead) {
                    outcome.forecast = Some(smoothing::forecast(
                        value,
                        trend,
                        ahead.as_millis() as f64 / 1000.0,
                        s.value,
                        sm.lookahead_limit
                            .unwrap_or(crate::api::policy::DEFAULT_LOOKAHEAD_LIMIT),
                        sm.lookahead_direction
                            != Some(crate::api::policy::LookaheadDirection::Both),
                    ));
                }
                outcome.sample_time = Some(s.time);
                smoothed_state.push(SmoothedValue {
                    name: metric.name.clone(),
                    value,
                    trend,
                    time: s
                        .time
                        .max(previous.as_ref().map_or(s.time, |p| p.time.min(input.now))),
                });
            }
        }
        if outcome.missing.is_some()
            && let Some(p) = previous
        {
            smoothed_state.push(p);
        }
        outcomes.push(outcome);
    }
    next.smoothed = smoothed_state;
    outcomes
}

fn data_state(missing: usize, total: usize, fallback: bool) -> Data {
    match (missing, fallback) {
        (0, _) => Data::Complete,
        (_, true) => Data::Fallback,
        (m, false) if m < total => Data::Partial { missing: m },
        _ => Data::Missing,
    }
}

/// `nodePool.capReplicas`: never grow the workload past what `maxNodes` nodes hold
/// (it would only add Pending pods). Growth only: replicas already above the cap
/// stay until the metrics bring them down, and `minReplicas` still wins.
fn cap_to_node_pool(input: &Input<'_>, current: u32, decision: &mut Decision) {
    let Some(pool) = input.spec.node_pool.as_ref().filter(|p| p.cap_replicas) else {
        return;
    };
    let Ok(per_node) = nodepool::pods_per_node(pool, input.pod_requests) else {
        return;
    };
    let cap = nodepool::replicas_cap(pool, per_node);
    let desired = decision.desired_replicas;
    if desired <= cap {
        return;
    }
    let capped = cap
        .max(current.min(desired))
        .max(decision.bounds.min_replicas);
    if capped < desired {
        decision.desired_replicas = capped;
        decision.steps.uncapped = Some(desired);
        decision.reason = Reason::NodePoolAtMax;
        decision.message = format!(
            "holding at {capped} instead of {desired} replicas (nodePool.capReplicas): maxNodes {} x {per_node} pods per node hold {cap} with {} headroom nodes free",
            pool.max_nodes, pool.headroom_nodes
        );
    }
}

/// The active schedules whose floor or ceiling is `to`, as `a, b`.
fn bounding_schedules(decision: &Decision, to: u32) -> Option<String> {
    let names: Vec<&str> = decision
        .schedules
        .iter()
        .filter(|a| a.min_replicas == Some(to) || a.max_replicas == Some(to))
        .map(|a| a.name.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

fn node_decision(
    input: &Input<'_>,
    desired: u32,
    next: &mut History,
    hold: bool,
    floor: Option<u32>,
) -> Option<NodeDecision> {
    let spec_pool = input.spec.node_pool.as_ref()?;
    // An active schedule's nodePool.minNodes raises the pool's floor.
    let raised;
    let pool = match floor {
        Some(n) if n > spec_pool.min_nodes => {
            let mut p = spec_pool.clone();
            p.min_nodes = n;
            p.max_nodes = p.max_nodes.max(n);
            raised = p;
            &raised
        }
        _ => spec_pool,
    };
    if hold {
        let current = input.current_nodes;
        return Some(NodeDecision {
            current,
            desired: current.unwrap_or(pool.min_nodes),
            needed: current.unwrap_or(pool.min_nodes),
            order: Order::Unchanged,
            reason: Reason::Paused,
            message: "policy is paused: node pool held".into(),
            at_max: None,
        });
    }
    let (decision, since) = nodepool::decide_nodes(
        pool,
        input.current_nodes,
        input.current_replicas,
        desired,
        input.pod_requests,
        input.history.node_shrink_since,
        input.now,
    );
    next.node_shrink_since = since;
    Some(decision)
}

fn explain(decision: &Decision, current: u32, rec: u32, stabilized: u32) -> String {
    let desired = decision.desired_replicas;
    let what = if desired > current {
        format!("scaling up from {current} to {desired}")
    } else if desired < current {
        format!("scaling down from {current} to {desired}")
    } else {
        format!("holding {current}")
    };
    let why = match decision.reason {
        Reason::ScaleUpLimit => "the scale-up rate policy allows no more this period",
        Reason::ScaleDownLimit => "the scale-down rate policy allows no less this period",
        Reason::TooManyReplicas => "bounded by maxReplicas",
        Reason::TooFewReplicas => "bounded by minReplicas",
        Reason::ScaleUpStabilized => {
            "recent recommendations were lower; applying the lowest in the scale-up window"
        }
        Reason::ScaleDownStabilized => {
            "recent recommendations were higher; applying the highest in the scale-down window"
        }
        Reason::FallbackActive => {
            "metrics unavailable past failureThreshold; using fallback.replicas"
        }
        _ => "the desired count is within the acceptable range",
    };
    format!("{what} (metrics recommend {rec}, stabilized {stabilized}): {why}")
}

#[cfg(test)]
mod tests;

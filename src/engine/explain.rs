//! One decision in words: the metric values, raw and smoothed, the formula with its
//! numbers, which window or rate rule bound the result, fallback and the node pool.
//! Pure: it reads the decision's input and the [`Decision`] the engine made (with
//! its [`Steps`](super::Steps)); what it computes again (a rate policy's allowance,
//! the formula) goes through the engine's own functions, so the words cannot drift
//! from what the engine did (tests/explain cross-checks them over many inputs).

use std::fmt::Write as _;

use super::behavior::{self, Resolved, Rules};
use super::{Data, Decision, Input, MetricOutcome, replicas};
use crate::api::policy::{
    DEFAULT_LOOKAHEAD_LIMIT, FallbackMode, LookaheadDirection, MetricSpec, PolicyType,
    SelectPolicy, TargetType,
};

/// A number as people write it: integers without decimals, others with up to 4
/// significant decimals.
pub fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The formula behind one metric's recommendation, with its numbers, e.g.
/// `ceil(3 current × 312.4 / 100) = ceil(9.372) = 10`. `None` when the metric had
/// no usable value or target.
pub fn formula(
    metric: &MetricSpec,
    outcome: &MetricOutcome,
    current: u32,
    tolerance: f64,
) -> Option<String> {
    let value = outcome.value()?;
    let target = metric.target.quantity()?.value();
    let recommended = outcome.recommended?;
    let base = current.max(1);
    let (ratio_text, ratio, proposal_text, proposal) = match metric.target.type_ {
        TargetType::Value => (
            format!("{} / {}", num(value), num(target)),
            value / target,
            format!("{base} × {} / {}", num(value), num(target)),
            value * f64::from(base) / target,
        ),
        TargetType::AverageValue => (
            format!("{} / ({} × {base})", num(value), num(target)),
            value / (target * f64::from(base)),
            format!("{} / {}", num(value), num(target)),
            value / target,
        ),
    };
    let mut out = format!("ratio {ratio_text} = {}", num(ratio));
    if current > 0 && recommended == current && (1.0 - ratio).abs() <= tolerance + 1e-9 {
        let _ = write!(
            out,
            ", within 1 ± {} (tolerance): keep {current}",
            num(tolerance)
        );
    } else {
        let _ = write!(
            out,
            "; replicas = ceil({proposal_text}) = ceil({}) = {recommended}",
            num(proposal)
        );
    }
    Some(out)
}

fn policy_text(kind: PolicyType, value: u32, period: u32) -> String {
    match kind {
        PolicyType::Pods => format!("Pods {value} per {period}s"),
        PolicyType::Percent => format!("Percent {value}% per {period}s"),
    }
}

fn select_text(select: SelectPolicy) -> &'static str {
    match select {
        SelectPolicy::Max => "Max",
        SelectPolicy::Min => "Min",
        SelectPolicy::Disabled => "Disabled",
    }
}

/// Each rate policy's allowance in one direction and the one selectPolicy picks.
fn rate_lines(
    up: bool,
    rules: &Rules,
    input: &Input<'_>,
    current: u32,
    out: &mut String,
) -> Option<i64> {
    let events = &input.history.scale_events;
    let limit = |r: &Rules| {
        if up {
            behavior::scale_up_limit(r, events, input.now, current)
        } else {
            behavior::scale_down_limit(r, events, input.now, current)
        }
    };
    let direction = if up { "scale-up" } else { "scale-down" };
    if rules.select == SelectPolicy::Disabled {
        let _ = writeln!(
            out,
            "  {direction} is disabled (selectPolicy: Disabled): stays at {current}"
        );
        return Some(i64::from(current));
    }
    if rules.policies.is_empty() {
        let _ = writeln!(out, "  {direction}: no rate policy, no limit");
        return None;
    }
    let bound = if up { "at most" } else { "at least" };
    for &(kind, value, period) in &rules.policies {
        let single = Rules {
            window_seconds: 0,
            select: SelectPolicy::Max,
            policies: vec![(kind, value, period)],
        };
        let _ = writeln!(
            out,
            "  {}: {bound} {}",
            policy_text(kind, value, period),
            limit(&single).max(0)
        );
    }
    let combined = limit(rules);
    if rules.policies.len() > 1 {
        let _ = writeln!(
            out,
            "  selectPolicy {} → {bound} {}",
            select_text(rules.select),
            combined.max(0)
        );
    }
    Some(combined)
}

/// The decision of one tick, in words.
pub fn explain(input: &Input<'_>, decision: &Decision) -> String {
    let spec = input.spec;
    let current = input.current_replicas;
    let rules = Resolved::from_spec(spec.behavior.as_ref());
    let (min, max) = (decision.bounds.min_replicas, decision.bounds.max_replicas);
    let desired = decision.desired_replicas;
    let mut out = String::new();

    let change = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => format!("scale up from {current} to {desired}"),
        std::cmp::Ordering::Less => format!("scale down from {current} to {desired}"),
        std::cmp::Ordering::Equal => format!("hold {current}"),
    };
    let _ = writeln!(out, "Decision: {change} ({})", decision.reason.as_str());
    if !decision.message.is_empty() {
        let _ = writeln!(out, "  {}", decision.message);
    }
    if spec.paused {
        let _ = writeln!(
            out,
            "The policy is paused (spec.paused): nothing is written."
        );
        return out;
    }
    for a in &decision.schedules {
        let until = jiff::Timestamp::from_millisecond(a.end)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| a.end.to_string());
        let _ = writeln!(
            out,
            "Schedule {} is active until {until}: {}",
            a.name,
            a.sets()
        );
    }
    if !decision.schedules.is_empty() {
        let _ = writeln!(
            out,
            "  bounds in effect: [{min}, {max}] (spec: [{}, {}])",
            spec.min_replicas, spec.max_replicas
        );
    }

    // The metrics.
    let smoothing = spec
        .smoothing
        .as_ref()
        .map(|s| format!("EMA, half-life {}", s.half_life));
    let _ = writeln!(
        out,
        "\nMetrics (tolerance {}{}):",
        num(rules.tolerance),
        if spec.metrics.len() > 1 {
            "; the largest recommendation wins"
        } else {
            ""
        }
    );
    for (metric, outcome) in spec.metrics.iter().zip(&decision.metrics) {
        let target = match (metric.target.type_, metric.target.quantity()) {
            (TargetType::Value, Some(q)) => format!("target Value {q}"),
            (TargetType::AverageValue, Some(q)) => format!("target AverageValue {q} per replica"),
            (_, None) => "no target".to_string(),
        };
        let _ = writeln!(out, "  {} ({target})", metric.name);
        match (outcome.missing, outcome.raw, outcome.smoothed) {
            (Some(why), ..) => {
                let _ = writeln!(out, "    no usable sample: {why}");
            }
            (None, Some(raw), Some(smoothed)) => {
                let read = match &smoothing {
                    Some(how) => format!("raw {} → smoothed {} ({how})", num(raw), num(smoothed)),
                    None => format!("raw {} (no smoothing)", num(raw)),
                };
                let _ = writeln!(out, "    {read}");
                if let (Some(f), Some(sm)) = (outcome.forecast, spec.smoothing.as_ref()) {
                    let trend = decision
                        .history
                        .smoothed
                        .iter()
                        .find(|v| v.name == metric.name)
                        .and_then(|v| v.trend)
                        .unwrap_or(0.0);
                    let ahead = sm.lookahead.map(|d| d.to_string()).unwrap_or_default();
                    let direction = match sm.lookahead_direction {
                        Some(LookaheadDirection::Both) => "both ways",
                        _ => "up only",
                    };
                    let _ = writeln!(
                        out,
                        "    trend {}/s → forecast {ahead} ahead: {} ({direction}, at most {}× the raw value)",
                        num(trend),
                        num(f),
                        num(sm.lookahead_limit.unwrap_or(DEFAULT_LOOKAHEAD_LIMIT))
                    );
                }
                if let Some(f) = formula(metric, outcome, current, rules.tolerance) {
                    let _ = writeln!(out, "    {f}");
                }
                if min == 0 && !replicas::is_active(metric, smoothed) {
                    let threshold = metric
                        .activation_threshold
                        .as_ref()
                        .map_or(0.0, |q| q.value());
                    let _ = writeln!(
                        out,
                        "    at or below its activation threshold {}",
                        num(threshold)
                    );
                }
            }
            _ => {}
        }
    }

    // What the data allowed.
    let total = decision.metrics.len();
    let consecutive = decision.history.consecutive_failures;
    match decision.data {
        Data::Complete => {}
        Data::Partial { missing } => {
            let _ = writeln!(
                out,
                "  {missing} of {total} metrics missing: scale-up only (missing data never scales down)"
            );
        }
        Data::Missing => {
            let threshold = spec
                .fallback
                .as_ref()
                .map(|f| format!(" (fallback after {} failed ticks)", f.failure_threshold));
            let _ = writeln!(
                out,
                "  no metric data for {consecutive} consecutive ticks{}: replicas held",
                threshold.unwrap_or_default()
            );
        }
        Data::Fallback => {
            if let Some(f) = &spec.fallback {
                let replicas = f.replicas.map_or("-".into(), |r| r.to_string());
                let how = match f.effective_mode() {
                    FallbackMode::AtLeast => format!(
                        "mode AtLeast: max(current {current}, fallback.replicas {replicas})"
                    ),
                    mode => format!("mode {}: fallback.replicas {replicas}", mode.as_str()),
                };
                let _ = writeln!(
                    out,
                    "  fallback: {consecutive} consecutive failed ticks ≥ failureThreshold {} → {how} (never below what the metrics that answered ask)",
                    f.failure_threshold,
                );
            }
        }
    }
    match decision.recommended {
        Some(r) => {
            let _ = writeln!(out, "Recommendation: {r}");
        }
        None => {
            let _ = writeln!(out, "Recommendation: none");
        }
    }

    if decision.steps.out_of_bounds {
        let _ = writeln!(
            out,
            "\nBounds first: the current {current} replicas are outside [minReplicas {min}, maxReplicas {max}] → {desired}"
        );
        return nodes(decision, out);
    }

    if let (Some(rec), Some((low, high)), Some(stabilized)) = (
        decision.recommended,
        decision.steps.windows,
        decision.steps.stabilized,
    ) {
        let _ = writeln!(
            out,
            "\nStabilization (scale-up window {}s, scale-down window {}s):",
            rules.up.window_seconds, rules.down.window_seconds
        );
        if decision.steps.fresh_start {
            let _ = writeln!(
                out,
                "  no history yet: the current {current} counts as a recent recommendation"
            );
        }
        let _ = writeln!(
            out,
            "  lowest recommendation in the scale-up window {low}, highest in the scale-down window {high}"
        );
        let verdict = if stabilized == rec {
            format!("→ {stabilized} (the windows do not hold it back)")
        } else if rec > current {
            format!("→ {stabilized}: the scale-up window holds it below {rec}")
        } else {
            format!("→ {stabilized}: the scale-down window holds it above {rec}")
        };
        let _ = writeln!(
            out,
            "  current {current} brought within [{low}, {high}] {verdict}"
        );

        if stabilized != current {
            let up = stabilized > current;
            let _ = writeln!(
                out,
                "\nRate limits ({}; replicas at each period's start):",
                if up { "scale-up" } else { "scale-down" }
            );
            let rules = if up { &rules.up } else { &rules.down };
            let limit = rate_lines(up, rules, input, current, &mut out);
            let limited = decision.steps.limited.unwrap_or(desired);
            let bounded = match limit {
                Some(l) if up && i64::from(stabilized) > l => {
                    format!("{stabilized} is over the limit → {limited}")
                }
                Some(l) if !up && i64::from(stabilized) < l => {
                    format!("{stabilized} is under the limit → {limited}")
                }
                _ => format!("{stabilized} is within them"),
            };
            let _ = writeln!(out, "  {bounded}");
        }
        let _ = writeln!(
            out,
            "\nBounds [minReplicas {min}, maxReplicas {max}] → {}",
            decision.steps.limited.unwrap_or(desired)
        );
    }
    if let Some(uncapped) = decision.steps.uncapped {
        let _ = writeln!(
            out,
            "Node pool cap (nodePool.capReplicas): {uncapped} would need more than maxNodes hold → {desired}"
        );
    }
    nodes(decision, out)
}

fn nodes(decision: &Decision, mut out: String) -> String {
    if let Some(n) = &decision.nodes {
        let current = n.current.map_or("unknown".into(), |c| c.to_string());
        let _ = writeln!(
            out,
            "\nNode pool: {current} → {} nodes (needed {}; {}): {}",
            n.desired,
            n.needed,
            n.reason.as_str(),
            n.message
        );
    }
    let _ = writeln!(out, "\nResult: {} replicas", decision.desired_replicas);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::History;
    use crate::api::policy::CustomScalingPolicySpec;
    use crate::engine::{Sample, decide};

    fn spec(yaml: &str) -> CustomScalingPolicySpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    const BASE: &str = "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
minReplicas: 1
maxReplicas: 20
metrics:
  - name: evictions
    query: x
    target: {type: Value, value: '100'}
";

    fn one(
        spec: &CustomScalingPolicySpec,
        current: u32,
        value: Option<f64>,
        history: &History,
    ) -> String {
        let samples = [value.map(|value| Sample {
            value,
            time: 1_000_000,
        })];
        let input = Input {
            spec,
            now: 1_000_000,
            current_replicas: current,
            samples: &samples,
            history,
            current_nodes: None,
            pod_requests: None,
        };
        explain(&input, &decide(&input))
    }

    #[test]
    fn a_scale_up_shows_the_formula_and_the_rate_limit_that_bound_it() {
        let s = spec(BASE);
        let text = one(&s, 3, Some(312.4), &History::default());
        for needle in [
            "Decision: scale up from 3 to 7 (ScaleUpLimit)",
            "evictions (target Value 100)",
            "raw 312.4 (no smoothing)",
            "ratio 312.4 / 100 = 3.124; replicas = ceil(3 × 312.4 / 100) = ceil(9.372) = 10",
            "Recommendation: 10",
            "Percent 100% per 15s: at most 6",
            "Pods 4 per 15s: at most 7",
            "selectPolicy Max → at most 7",
            "10 is over the limit → 7",
            "Result: 7 replicas",
        ] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn tolerance_and_windows_are_named() {
        let s = spec(BASE);
        let text = one(&s, 3, Some(305.0), &History::default());
        assert!(
            text.contains(
                "ratio 305 / 100 = 3.05; replicas = ceil(3 × 305 / 100) = ceil(9.15) = 10"
            ),
            "{text}"
        );
        let text = one(&s, 10, Some(105.0), &History::default());
        assert!(
            text.contains("ratio 105 / 100 = 1.05, within 1 ± 0.1 (tolerance): keep 10"),
            "{text}"
        );
        let text = one(&s, 10, Some(1050.0), &History::default());
        assert!(text.contains("105 is over the limit → 20"), "{text}");
        assert!(
            text.contains("Decision: scale up from 10 to 20 (TooManyReplicas)"),
            "{text}"
        );
        // A scale-down right after a start: the window holds it.
        let text = one(&s, 10, Some(20.0), &History::default());
        assert!(
            text.contains("no history yet: the current 10 counts"),
            "{text}"
        );
        assert!(
            text.contains("→ 10: the scale-down window holds it above 2"),
            "{text}"
        );
        assert!(
            text.contains("Decision: hold 10 (ScaleDownStabilized)"),
            "{text}"
        );
    }

    #[test]
    fn missing_data_and_fallback_are_explained() {
        let s = spec(&format!(
            "{BASE}fallback: {{failureThreshold: 1, replicas: 4}}\n"
        ));
        let text = one(&s, 8, None, &History::default());
        assert!(text.contains("no usable sample: no data"), "{text}");
        assert!(
            text.contains(
                "fallback: 1 consecutive failed ticks ≥ failureThreshold 1 → mode Static: fallback.replicas 4"
            ),
            "{text}"
        );
        let s = spec(BASE);
        let text = one(&s, 8, None, &History::default());
        assert!(
            text.contains("no metric data for 1 consecutive ticks: replicas held"),
            "{text}"
        );
        assert!(text.contains("Recommendation: none"), "{text}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// The words agree with the engine: the formula ends in the metric's
        /// recommendation, the stages' numbers are the decision's, and the result is
        /// the replicas decided, over histories of earlier ticks.
        #[test]
        fn the_explanation_agrees_with_the_decision(
            values in proptest::collection::vec(proptest::option::weighted(0.9, 0.0f64..3000.0), 1..12),
            start in 0u32..30,
            average in proptest::bool::ANY,
        ) {
            let mut s = spec(&format!("{BASE}fallback: {{failureThreshold: 3, replicas: 5}}\n"));
            if average {
                s = spec(&BASE.replace("type: Value, value:", "type: AverageValue, averageValue:"));
            }
            let mut history = History::default();
            let mut current = start;
            for (i, value) in values.iter().enumerate() {
                let now = 1_000_000 + i as i64 * 15_000;
                let samples = [value.map(|value| Sample { value, time: now })];
                let input = Input {
                    spec: &s,
                    now,
                    current_replicas: current,
                    samples: &samples,
                    history: &history,
                    current_nodes: None,
                    pod_requests: None,
                };
                let d = decide(&input);
                let text = explain(&input, &d);
                let result = format!("Result: {} replicas", d.desired_replicas);
                proptest::prop_assert!(text.contains(&result), "{}", text);
                if let Some(r) = d.metrics[0].recommended {
                    let f = formula(&s.metrics[0], &d.metrics[0], current, 0.1).expect("formula");
                    proptest::prop_assert!(
                        f.ends_with(&format!("= {r}")) || f.ends_with(&format!("keep {r}")),
                        "{} vs {}", f, r
                    );
                }
                if let (Some(st), Some(lim)) = (d.steps.stabilized, d.steps.limited) {
                    proptest::prop_assert!(text.contains(&format!("→ {st}")), "{}", text);
                    proptest::prop_assert!(text.contains(&format!("Bounds [minReplicas 1, maxReplicas 20] → {lim}")), "{}", text);
                }
                current = d.desired_replicas;
                history = d.history;
            }
        }
    }

    #[test]
    fn average_value_and_bounds_first() {
        let s = spec(&BASE.replace("type: Value, value:", "type: AverageValue, averageValue:"));
        let text = one(&s, 4, Some(500.0), &History::default());
        assert!(
            text.contains("target AverageValue 100 per replica"),
            "{text}"
        );
        assert!(
            text.contains("ratio 500 / (100 × 4) = 1.25; replicas = ceil(500 / 100) = ceil(5) = 5"),
            "{text}"
        );
        let text = one(&s, 30, Some(500.0), &History::default());
        assert!(
            text.contains("Bounds first: the current 30 replicas are outside [minReplicas 1, maxReplicas 20] → 20"),
            "{text}"
        );
    }
}

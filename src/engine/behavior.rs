//! HPA v2 `behavior`, with HPA's defaults and semantics: stabilization windows over
//! past recommendations, then rate limits computed from the replicas at the start
//! of each policy's period.

use crate::api::conditions::Reason;
use crate::api::history::{History, ScaleEvent};
use crate::api::policy::{Behavior, PolicyType, ScalingRules, SelectPolicy};

/// Default tolerance around a ratio of 1 (inclusive).
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// One direction's rules with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window_seconds: u32,
    pub select: SelectPolicy,
    pub policies: Vec<(PolicyType, u32, u32)>,
}

/// Both directions and the tolerance, defaults filled in as HPA does (field by field).
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub up: Rules,
    pub down: Rules,
    pub tolerance: f64,
}

impl Resolved {
    pub fn from_spec(behavior: Option<&Behavior>) -> Self {
        let up = resolve(
            behavior.and_then(|b| b.scale_up.as_ref()),
            0,
            vec![(PolicyType::Percent, 100, 15), (PolicyType::Pods, 4, 15)],
        );
        let down = resolve(
            behavior.and_then(|b| b.scale_down.as_ref()),
            300,
            vec![(PolicyType::Percent, 100, 15)],
        );
        let tolerance = behavior
            .and_then(|b| b.tolerance)
            .unwrap_or(DEFAULT_TOLERANCE);
        Self {
            up,
            down,
            tolerance,
        }
    }

    /// Longest stretch of history either window or any period looks at, in ms.
    pub fn horizon_millis(&self) -> i64 {
        let windows = self.up.window_seconds.max(self.down.window_seconds);
        let periods = self
            .up
            .policies
            .iter()
            .chain(&self.down.policies)
            .map(|p| p.2)
            .max()
            .unwrap_or(0);
        i64::from(windows.max(periods)) * 1000
    }
}

fn resolve(
    rules: Option<&ScalingRules>,
    window: u32,
    policies: Vec<(PolicyType, u32, u32)>,
) -> Rules {
    Rules {
        window_seconds: rules
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(window),
        select: rules
            .and_then(|r| r.select_policy)
            .unwrap_or(SelectPolicy::Max),
        policies: match rules.and_then(|r| r.policies.as_ref()) {
            Some(list) => list
                .iter()
                .map(|p| (p.type_, p.value, p.period_seconds))
                .collect(),
            None => policies,
        },
    }
}

/// The lowest recommendation in the scale-up window and the highest in the
/// scale-down window, `recommended` included: the stabilized count is the current
/// one brought within them.
pub fn window_bounds(
    rules: &Resolved,
    history: &History,
    now: i64,
    recommended: u32,
) -> (u32, u32) {
    let up_cutoff = now - i64::from(rules.up.window_seconds) * 1000;
    let down_cutoff = now - i64::from(rules.down.window_seconds) * 1000;
    let mut up = recommended;
    let mut down = recommended;
    for rec in &history.recommendations {
        if rec.time > up_cutoff {
            up = up.min(rec.low);
        }
        if rec.time > down_cutoff {
            down = down.max(rec.high);
        }
    }
    (up, down)
}

/// Stabilize a recommendation against the recent ones: scale-up takes the lowest
/// recommendation inside the up window, scale-down the highest inside the down
/// window; the result is the current replicas brought within those two.
/// Returns the stabilized count and, when it differs from `recommended`, the reason.
pub fn stabilize(
    rules: &Resolved,
    history: &History,
    now: i64,
    current: u32,
    recommended: u32,
) -> (u32, Option<Reason>) {
    let (up, down) = window_bounds(rules, history, now, recommended);
    let mut result = current;
    if result < up {
        result = up;
    }
    if result > down {
        result = down;
    }
    if result == recommended {
        (result, None)
    } else if recommended >= current {
        (result, Some(Reason::ScaleUpStabilized))
    } else {
        (result, Some(Reason::ScaleDownStabilized))
    }
}

fn changes_in_period(events: &[ScaleEvent], now: i64, period_seconds: u32) -> (i64, i64) {
    let cutoff = now - i64::from(period_seconds) * 1000;
    events
        .iter()
        .filter(|e| e.time > cutoff)
        .fold((0, 0), |(added, removed), e| {
            // Saturating: the events come from status, which a hand edit can fill
            // with anything.
            if e.change > 0 {
                (added.saturating_add(e.change), removed)
            } else {
                (added, removed.saturating_sub(e.change))
            }
        })
}

/// Highest count the scale-up policies allow now (HPA's
/// `calculateScaleUpLimitWithScalingRules`).
pub fn scale_up_limit(rules: &Rules, events: &[ScaleEvent], now: i64, current: u32) -> i64 {
    let current = i64::from(current);
    let pick: fn(i64, i64) -> i64 = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut result: Option<i64> = None;
    for &(kind, value, period) in &rules.policies {
        let (added, removed) = changes_in_period(events, now, period);
        let start = current.saturating_sub(added).saturating_add(removed);
        let proposed = match kind {
            PolicyType::Pods => start.saturating_add(i64::from(value)),
            // Rounded up, or a small target could never grow; from zero a percentage
            // of nothing is nothing, so a woken target counts from one.
            PolicyType::Percent => {
                (start.max(1) as f64 * (1.0 + f64::from(value) / 100.0)).ceil() as i64
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    // No policy at all (an explicit empty list): no rate limit.
    result.unwrap_or(i64::MAX)
}

/// Lowest count the scale-down policies allow now (HPA's
/// `calculateScaleDownLimitWithBehaviors`).
pub fn scale_down_limit(rules: &Rules, events: &[ScaleEvent], now: i64, current: u32) -> i64 {
    let current = i64::from(current);
    let pick: fn(i64, i64) -> i64 = match rules.select {
        SelectPolicy::Disabled => return current,
        // The smallest change down is the largest count.
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let mut result: Option<i64> = None;
    for &(kind, value, period) in &rules.policies {
        let (added, removed) = changes_in_period(events, now, period);
        let start = current.saturating_sub(added).saturating_add(removed);
        let proposed = match kind {
            PolicyType::Pods => start.saturating_sub(i64::from(value)),
            // Truncated (rounded down), as HPA does.
            PolicyType::Percent => (start as f64 * (1.0 - f64::from(value) / 100.0)) as i64,
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    result.unwrap_or(i64::MIN)
}

/// Apply the rate limits and the bounds to a stabilized recommendation (HPA's
/// `convertDesiredReplicasWithBehaviorRate`). Returns the count and the reason.
pub fn limit_rate(
    rules: &Resolved,
    events: &[ScaleEvent],
    now: i64,
    current: u32,
    desired: u32,
    min: u32,
    max: u32,
) -> (u32, Reason) {
    if desired > current {
        let limit = scale_up_limit(&rules.up, events, now, current).max(i64::from(current));
        let (allowed, reason) = if i64::from(max) > limit {
            (limit, Reason::ScaleUpLimit)
        } else {
            (i64::from(max), Reason::TooManyReplicas)
        };
        if i64::from(desired) > allowed {
            return (to_u32(allowed), reason);
        }
    } else if desired < current {
        let limit = scale_down_limit(&rules.down, events, now, current).min(i64::from(current));
        let (allowed, reason) = if i64::from(min) < limit {
            (limit, Reason::ScaleDownLimit)
        } else {
            (i64::from(min), Reason::TooFewReplicas)
        };
        if i64::from(desired) < allowed {
            return (to_u32(allowed), reason);
        }
    }
    (desired, Reason::DesiredWithinRange)
}

fn to_u32(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::Recommendation;

    fn defaults() -> Resolved {
        Resolved::from_spec(None)
    }

    fn event(time: i64, change: i64) -> ScaleEvent {
        ScaleEvent { time, change }
    }

    #[test]
    fn absurd_scale_events_from_a_hand_edited_status_do_not_overflow() {
        let r = defaults();
        let events = [event(1_000, i64::MAX), event(1_000, i64::MIN + 1)];
        // The sums saturate instead of panicking (or wrapping in release builds).
        let up = scale_up_limit(&r.up, &events, 2_000, 5);
        let down = scale_down_limit(&r.down, &events, 2_000, 5);
        assert!(down <= up, "{down} > {up}");
        let only_up = [event(1_000, i64::MAX)];
        // 5 - i64::MAX saturates far below zero; the Percent rule counts from one.
        assert_eq!(scale_up_limit(&r.up, &only_up, 2_000, 5), 2);
    }

    #[test]
    fn defaults_are_hpas() {
        let r = defaults();
        assert_eq!(r.up.window_seconds, 0);
        assert_eq!(
            r.up.policies,
            vec![(PolicyType::Percent, 100, 15), (PolicyType::Pods, 4, 15)]
        );
        assert_eq!(r.up.select, SelectPolicy::Max);
        assert_eq!(r.down.window_seconds, 300);
        assert_eq!(r.down.policies, vec![(PolicyType::Percent, 100, 15)]);
        assert_eq!(r.tolerance, 0.1);
    }

    #[test]
    fn a_partly_written_rule_keeps_the_other_defaults() {
        let behavior = Behavior {
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(60),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = Resolved::from_spec(Some(&behavior));
        assert_eq!(r.down.window_seconds, 60);
        assert_eq!(r.down.policies, vec![(PolicyType::Percent, 100, 15)]);
    }

    #[test]
    fn default_scale_up_allows_double_or_four_pods_whichever_is_more() {
        let r = defaults();
        // From 1: 100% gives 2, 4 pods gives 5 -> Max picks 5.
        assert_eq!(scale_up_limit(&r.up, &[], 0, 1), 5);
        // From 10: 100% gives 20, 4 pods gives 14 -> 20.
        assert_eq!(scale_up_limit(&r.up, &[], 0, 10), 20);
    }

    #[test]
    fn rate_limits_count_from_the_replicas_at_the_start_of_the_period() {
        let r = defaults();
        // 10 -> 20 five seconds ago: period start was 10, so the limit stays 20.
        let events = [event(-5_000, 10)];
        assert_eq!(scale_up_limit(&r.up, &events, 0, 20), 20);
        // Once the period has passed, the start is 20 again.
        assert_eq!(scale_up_limit(&r.up, &events, 11_000, 20), 40);
    }

    #[test]
    fn percent_rounds_up_for_scale_up_and_down_for_scale_down() {
        let up = Rules {
            window_seconds: 0,
            select: SelectPolicy::Max,
            policies: vec![(PolicyType::Percent, 10, 60)],
        };
        // 3 * 1.1 = 3.3 -> 4.
        assert_eq!(scale_up_limit(&up, &[], 0, 3), 4);
        let down = Rules {
            policies: vec![(PolicyType::Percent, 10, 60)],
            ..up
        };
        // 3 * 0.9 = 2.7 -> 2.
        assert_eq!(scale_down_limit(&down, &[], 0, 3), 2);
    }

    #[test]
    fn a_percent_only_scale_up_can_wake_a_target_at_zero() {
        let up = Rules {
            window_seconds: 0,
            select: SelectPolicy::Max,
            policies: vec![(PolicyType::Percent, 100, 15)],
        };
        assert_eq!(scale_up_limit(&up, &[], 0, 0), 2);
    }

    #[test]
    fn select_policy_min_takes_the_smallest_change() {
        let up = Rules {
            window_seconds: 0,
            select: SelectPolicy::Min,
            policies: vec![(PolicyType::Percent, 100, 15), (PolicyType::Pods, 4, 15)],
        };
        assert_eq!(scale_up_limit(&up, &[], 0, 10), 14);
        let down = Rules {
            select: SelectPolicy::Min,
            policies: vec![(PolicyType::Percent, 50, 15), (PolicyType::Pods, 1, 15)],
            ..up
        };
        assert_eq!(scale_down_limit(&down, &[], 0, 10), 9);
    }

    #[test]
    fn disabled_direction_keeps_current() {
        let mut r = defaults();
        r.down.select = SelectPolicy::Disabled;
        assert_eq!(
            limit_rate(&r, &[], 0, 10, 2, 1, 20),
            (10, Reason::ScaleDownLimit)
        );
    }

    #[test]
    fn limits_name_the_bound_that_held() {
        let r = defaults();
        assert_eq!(
            limit_rate(&r, &[], 0, 10, 30, 1, 100),
            (20, Reason::ScaleUpLimit)
        );
        assert_eq!(
            limit_rate(&r, &[], 0, 10, 30, 1, 15),
            (15, Reason::TooManyReplicas)
        );
        assert_eq!(
            limit_rate(&r, &[], 0, 10, 0, 2, 15),
            (2, Reason::TooFewReplicas)
        );
        assert_eq!(
            limit_rate(&r, &[], 0, 10, 12, 1, 15),
            (12, Reason::DesiredWithinRange)
        );
    }

    #[test]
    fn scale_down_window_keeps_the_highest_recent_recommendation() {
        let r = defaults();
        let history = History {
            recommendations: vec![
                Recommendation {
                    time: -400_000,
                    low: 50,
                    high: 50,
                },
                Recommendation {
                    time: -200_000,
                    low: 8,
                    high: 8,
                },
                Recommendation {
                    time: -100_000,
                    low: 6,
                    high: 6,
                },
            ],
            ..Default::default()
        };
        // The 50 is outside the 300 s window; the highest inside is 8.
        assert_eq!(
            stabilize(&r, &history, 0, 10, 3),
            (8, Some(Reason::ScaleDownStabilized))
        );
    }

    #[test]
    fn scale_up_window_takes_the_lowest_recent_recommendation() {
        let mut r = defaults();
        r.up.window_seconds = 60;
        let history = History {
            recommendations: vec![Recommendation {
                time: -30_000,
                low: 4,
                high: 4,
            }],
            ..Default::default()
        };
        assert_eq!(
            stabilize(&r, &history, 0, 2, 9),
            (4, Some(Reason::ScaleUpStabilized))
        );
    }
}

//! Table-driven tests of whole decisions, and property tests of the invariants.

use proptest::prelude::*;

use super::*;
use crate::api::Duration;
use crate::api::policy::*;

fn spec(min: u32, max: u32) -> CustomScalingPolicySpec {
    serde_yaml::from_str(&format!(
        r#"
targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
minReplicas: {min}
maxReplicas: {max}
metrics:
  - name: evictions
    query: rate(redis_evicted_keys_total[1m])
    target: {{type: Value, value: "100"}}
"#
    ))
    .expect("test spec parses")
}

fn no_down_window(mut s: CustomScalingPolicySpec) -> CustomScalingPolicySpec {
    s.behavior = Some(Behavior {
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    });
    s
}

fn tick(
    spec: &CustomScalingPolicySpec,
    now: i64,
    current: u32,
    value: Option<f64>,
    history: &History,
) -> Decision {
    let samples = [value.map(|v| Sample {
        value: v,
        time: now,
    })];
    decide(&Input {
        spec,
        now,
        current_replicas: current,
        samples: &samples,
        history,
        current_nodes: None,
        pod_requests: None,
    })
}

#[test]
fn scale_up_is_limited_by_the_default_rate_policies() {
    let s = spec(1, 100);
    let d = tick(&s, 0, 2, Some(1000.0), &History::default());
    assert_eq!(d.recommended, Some(20));
    // From 2: +100% = 4, +4 pods = 6 -> Max -> 6.
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(d.reason, Reason::ScaleUpLimit);
}

#[test]
fn scale_up_above_max_says_too_many_replicas() {
    let s = spec(1, 5);
    let d = tick(&s, 0, 4, Some(1000.0), &History::default());
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(d.reason, Reason::TooManyReplicas);
}

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    let s = spec(1, 20);
    let mut h = History::default();
    // Load that needs exactly the 10 replicas at t=0.
    let d = tick(&s, 0, 10, Some(100.0), &h);
    assert_eq!(d.desired_replicas, 10);
    h = d.history;
    // Load drops: for the whole 300 s window the 10 is held.
    let mut now = 15_000;
    while now < 300_000 {
        let d = tick(&s, now, 10, Some(10.0), &h);
        assert_eq!(d.desired_replicas, 10, "at {now} ms");
        assert_eq!(d.reason, Reason::ScaleDownStabilized);
        h = d.history;
        now += 15_000;
    }
    // After the window the highest recent recommendation is the low one.
    let d = tick(&s, 315_000, 10, Some(10.0), &h);
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn a_fresh_start_does_not_scale_down_at_once() {
    let s = spec(1, 20);
    let d = tick(&s, 0, 8, Some(10.0), &History::default());
    assert_eq!(d.desired_replicas, 8);
    assert_eq!(d.reason, Reason::ScaleDownStabilized);
}

#[test]
fn scale_down_rate_policy_limits_each_period() {
    let mut s = spec(1, 20);
    s.behavior = Some(Behavior {
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: None,
            policies: Some(vec![ScalingPolicyRule {
                type_: PolicyType::Pods,
                value: 2,
                period_seconds: 60,
            }]),
        }),
        ..Default::default()
    });
    let d = tick(&s, 0, 10, Some(10.0), &History::default());
    assert_eq!((d.desired_replicas, d.reason), (8, Reason::ScaleDownLimit));
    // 15 s later, same period: the 2 pods are spent.
    let d = tick(&s, 15_000, 8, Some(10.0), &d.history);
    assert_eq!(d.desired_replicas, 8);
    // After the period, 2 more.
    let d = tick(&s, 61_000, 8, Some(10.0), &d.history);
    assert_eq!(d.desired_replicas, 6);
}

#[test]
fn missing_data_is_never_read_as_zero() {
    let s = no_down_window(spec(1, 20));
    let d = tick(&s, 0, 7, None, &History::default());
    assert_eq!(d.desired_replicas, 7);
    assert_eq!(d.data, Data::Missing);
    assert_eq!(d.reason, Reason::MetricsUnavailable);
    assert_eq!(d.history.consecutive_failures, 1);
}

#[test]
fn non_finite_and_stale_samples_count_as_missing() {
    let s = no_down_window(spec(1, 20));
    let d = tick(&s, 0, 7, Some(f64::NAN), &History::default());
    assert_eq!((d.desired_replicas, d.data), (7, Data::Missing));
    let samples = [Some(Sample {
        value: 0.0,
        time: 0,
    })];
    let d = decide(&Input {
        spec: &s,
        now: 60_000,
        current_replicas: 7,
        samples: &samples,
        history: &History::default(),
        current_nodes: None,
        pod_requests: None,
    });
    assert_eq!(d.metrics[0].missing, Some("stale sample"));
    assert_eq!(d.desired_replicas, 7);
}

/// An outage at a 30-replica peak (the queue-lag example's): `Static` cuts to its
/// replicas in one tick (the default rate policy allows 100% per 15 s), `AtLeast`
/// and `Hold` keep the fleet, and `AtLeast` still raises a smaller one.
#[test]
fn fallback_modes_at_a_peak() {
    let mut s = no_down_window(spec(1, 30));
    let after_outage = |s: &CustomScalingPolicySpec, current: u32| {
        let mut h = History::default();
        let mut replicas = current;
        let mut data = Data::Complete;
        for i in 0..4 {
            let d = tick(s, i * 15_000, replicas, None, &h);
            (replicas, data) = (d.desired_replicas, d.data);
            h = d.history;
        }
        (replicas, data)
    };
    for (mode, from, expected) in [
        (None, 30, (4, Data::Fallback)),
        (Some(FallbackMode::Static), 30, (4, Data::Fallback)),
        (Some(FallbackMode::AtLeast), 30, (30, Data::Fallback)),
        (Some(FallbackMode::AtLeast), 2, (4, Data::Fallback)),
        (Some(FallbackMode::Hold), 30, (30, Data::Missing)),
    ] {
        s.fallback = Some(Fallback {
            failure_threshold: 3,
            replicas: Some(4),
            mode,
        });
        assert_eq!(after_outage(&s, from), expected, "{mode:?} from {from}");
    }
    s.fallback = Some(Fallback {
        failure_threshold: 3,
        replicas: None,
        mode: None,
    });
    assert_eq!(
        after_outage(&s, 30),
        (30, Data::Missing),
        "no replicas: Hold"
    );
}

#[test]
fn fallback_applies_after_the_failure_threshold() {
    let mut s = no_down_window(spec(1, 20));
    s.fallback = Some(Fallback {
        failure_threshold: 3,
        replicas: Some(4),
        mode: None,
    });
    let mut h = History::default();
    let mut results = vec![];
    for i in 0..4 {
        let d = tick(&s, i * 15_000, 10, None, &h);
        results.push((d.desired_replicas, d.data));
        h = d.history;
    }
    assert_eq!(results[0], (10, Data::Missing));
    assert_eq!(results[1], (10, Data::Missing));
    assert_eq!(results[2], (4, Data::Fallback));
    // Data back: failures reset.
    let d = tick(&s, 60_000, 4, Some(400.0), &h);
    assert_eq!(d.history.consecutive_failures, 0);
    assert_eq!(d.data, Data::Complete);
}

#[test]
fn partial_data_only_scales_up() {
    let mut s = no_down_window(spec(1, 50));
    let mut second = s.metrics[0].clone();
    second.name = "lag".into();
    s.metrics.push(second);
    let history = History::default();
    let run = |a: Option<f64>, b: Option<f64>| {
        let samples = [
            a.map(|value| Sample { value, time: 0 }),
            b.map(|value| Sample { value, time: 0 }),
        ];
        decide(&Input {
            spec: &s,
            now: 0,
            current_replicas: 10,
            samples: &samples,
            history: &history,
            current_nodes: None,
            pod_requests: None,
        })
    };
    // The present metric wants fewer: held.
    let d = run(Some(100.0), None);
    assert_eq!(
        (d.desired_replicas, d.data),
        (10, Data::Partial { missing: 1 })
    );
    // The present metric wants more: scale up.
    let d = run(None, Some(150.0));
    assert_eq!(d.desired_replicas, 15);
}

#[test]
fn several_metrics_take_the_largest_recommendation() {
    let mut s = spec(1, 50);
    let mut second = s.metrics[0].clone();
    second.name = "lag".into();
    s.metrics.push(second);
    let samples = [
        Some(Sample {
            value: 300.0,
            time: 0,
        }),
        Some(Sample {
            value: 500.0,
            time: 0,
        }),
    ];
    let d = decide(&Input {
        spec: &s,
        now: 0,
        current_replicas: 2,
        samples: &samples,
        history: &History::default(),
        current_nodes: None,
        pod_requests: None,
    });
    assert_eq!(d.recommended, Some(10));
    assert_eq!(d.metrics[0].recommended, Some(6));
}

#[test]
fn below_the_activation_threshold_a_zero_minimum_scales_to_zero() {
    let mut s = no_down_window(spec(0, 10));
    s.metrics[0].activation_threshold = Some("5".parse().unwrap());
    let d = tick(&s, 0, 3, Some(4.0), &History::default());
    assert_eq!(d.desired_replicas, 0);
    // Above it, the target wakes up.
    let d = tick(&s, 15_000, 0, Some(150.0), &d.history);
    assert_eq!(d.desired_replicas, 2);
}

#[test]
fn with_a_nonzero_minimum_activation_does_not_apply() {
    let mut s = no_down_window(spec(1, 10));
    s.metrics[0].activation_threshold = Some("5".parse().unwrap());
    let d = tick(&s, 0, 3, Some(4.0), &History::default());
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn replicas_outside_the_bounds_are_brought_back() {
    let s = spec(2, 5);
    let d = tick(&s, 0, 9, None, &History::default());
    assert_eq!((d.desired_replicas, d.reason), (5, Reason::TooManyReplicas));
    let d = tick(&s, 0, 1, Some(100.0), &History::default());
    assert_eq!((d.desired_replicas, d.reason), (2, Reason::TooFewReplicas));
}

#[test]
fn paused_holds_everything() {
    let mut s = spec(1, 10);
    s.paused = true;
    let d = tick(&s, 0, 3, Some(10_000.0), &History::default());
    assert_eq!((d.desired_replicas, d.reason), (3, Reason::Paused));
    assert!(d.history.scale_events.is_empty());
}

#[test]
fn smoothing_damps_a_spike() {
    let mut s = no_down_window(spec(1, 50));
    s.smoothing = Some(Smoothing::new(Duration::from_secs(30)));
    let d = tick(&s, 0, 2, Some(100.0), &History::default());
    let d = tick(&s, 30_000, 2, Some(500.0), &d.history);
    // Halfway from 100 to 500 after one half-life.
    assert_eq!(d.metrics[0].smoothed, Some(300.0));
    assert_eq!(d.metrics[0].raw, Some(500.0));
    assert_eq!(d.desired_replicas, 6);
}

#[test]
fn node_pool_grows_with_the_workload_and_first() {
    let mut s = spec(1, 40);
    s.node_pool = Some(NodePool {
        target_ref: TargetRef {
            api_version: "cluster.x-k8s.io/v1beta1".into(),
            kind: "MachineDeployment".into(),
            name: "pool".into(),
        },
        replicas_path: None,
        pods_per_node: Some(4),
        node_allocatable: None,
        min_nodes: 1,
        max_nodes: 10,
        headroom_nodes: 0,
        scale_down_delay: Duration::from_secs(600),
        cap_replicas: false,
    });
    let samples = [Some(Sample {
        value: 800.0,
        time: 0,
    })];
    let d = decide(&Input {
        spec: &s,
        now: 0,
        current_replicas: 4,
        samples: &samples,
        history: &History::default(),
        current_nodes: Some(1),
        pod_requests: None,
    });
    assert_eq!(d.desired_replicas, 8);
    let nodes = d.nodes.expect("node decision");
    assert_eq!((nodes.desired, nodes.order), (2, Order::NodesFirst));
}

/// The acceptance case: the metric asks for 8, `podsPerNode: 2, maxNodes: 2`.
/// 100 per replica (`AverageValue`).
fn capped_pool_spec(cap: bool) -> CustomScalingPolicySpec {
    serde_yaml::from_str(&format!(
        r#"
targetRef: {{apiVersion: apps/v1, kind: Deployment, name: cache}}
minReplicas: 1
maxReplicas: 20
metrics:
  - name: evictions
    query: rate(redis_evicted_keys_total[1m])
    target: {{type: AverageValue, averageValue: "100"}}
nodePool:
  targetRef: {{apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, name: pool}}
  podsPerNode: 2
  maxNodes: 2
  capReplicas: {cap}
"#
    ))
    .expect("test spec parses")
}

fn decide_with_pool(s: &CustomScalingPolicySpec, current: u32, value: f64) -> Decision {
    let samples = [Some(Sample { value, time: 0 })];
    decide(&Input {
        spec: s,
        now: 0,
        current_replicas: current,
        samples: &samples,
        history: &History::default(),
        current_nodes: Some(2),
        pod_requests: None,
    })
}

#[test]
fn a_workload_outgrowing_max_nodes_is_reported_and_by_default_still_grows() {
    // 800 / 100 per replica = 8 replicas, 4 of them beyond what 2 nodes hold.
    let d = decide_with_pool(&capped_pool_spec(false), 4, 800.0);
    assert_eq!(d.desired_replicas, 8);
    let nodes = d.nodes.expect("node decision");
    assert_eq!((nodes.desired, nodes.reason), (2, Reason::NodePoolAtMax));
    assert_eq!(nodes.at_max.map(|a| (a.wanted, a.fit)), Some((4, 4)));
}

#[test]
fn cap_replicas_holds_the_workload_at_what_max_nodes_hold() {
    let s = capped_pool_spec(true);
    let d = decide_with_pool(&s, 4, 800.0);
    assert_eq!((d.desired_replicas, d.reason), (4, Reason::NodePoolAtMax));
    assert!(
        d.message.contains("maxNodes 2 x 2 pods per node hold 4"),
        "{}",
        d.message
    );
    // The pool still says the workload asked for more.
    let nodes = d.nodes.expect("node decision");
    assert_eq!(nodes.at_max.map(|a| a.replicas), Some(8));
    // Growth only: replicas already above the cap are not cut by it...
    let d = decide_with_pool(&s, 6, 800.0);
    assert_eq!(d.desired_replicas, 6);
    // ...and what fits is not held back.
    let d = decide_with_pool(&s, 2, 300.0);
    assert_eq!(d.desired_replicas, 3);
}

// ---------------------------------------------------------------- properties

fn arb_spec() -> impl Strategy<Value = CustomScalingPolicySpec> {
    (
        0u32..5,
        1u32..60,
        0u32..120,
        prop::option::of((1u32..10, 1u32..120)),
        prop::option::of(1u32..5),
        prop::option::of(0u32..30),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            FallbackMode::Hold,
            FallbackMode::Static,
            FallbackMode::AtLeast,
        ])),
    )
        .prop_map(
            |(min, span, window, down_pods, threshold, fallback, smooth, mode)| {
                let mut s = spec(min, min + span);
                s.behavior = Some(Behavior {
                    scale_down: Some(ScalingRules {
                        stabilization_window_seconds: Some(window),
                        select_policy: None,
                        policies: down_pods.map(|(value, period)| {
                            vec![ScalingPolicyRule {
                                type_: PolicyType::Pods,
                                value,
                                period_seconds: period,
                            }]
                        }),
                    }),
                    ..Default::default()
                });
                s.fallback = threshold.map(|t| Fallback {
                    failure_threshold: t,
                    replicas: fallback,
                    // Static and AtLeast need replicas (validation refuses them without).
                    mode: mode.filter(|m| *m == FallbackMode::Hold || fallback.is_some()),
                });
                if smooth {
                    s.smoothing = Some(Smoothing::new(Duration::from_secs(20)));
                }
                s
            },
        )
}

/// A run: (gap to the previous tick in ms, sample value or missing).
fn arb_run() -> impl Strategy<Value = Vec<(i64, Option<f64>)>> {
    prop::collection::vec(
        (
            1_000i64..40_000,
            prop::option::weighted(0.8, 0.0f64..20_000.0),
        ),
        1..60,
    )
}

struct Step {
    now: i64,
    current: u32,
    desired: u32,
    missing: bool,
}

fn run(spec: &CustomScalingPolicySpec, start: u32, ticks: &[(i64, Option<f64>)]) -> Vec<Step> {
    let mut history = History::default();
    let mut current = start;
    let mut now = 1_000_000;
    let mut steps = vec![];
    for (gap, value) in ticks {
        now += gap;
        let d = tick(spec, now, current, *value, &history);
        steps.push(Step {
            now,
            current,
            desired: d.desired_replicas,
            missing: value.is_none(),
        });
        history = d.history;
        current = d.desired_replicas;
    }
    steps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The pool reports `NodePoolAtMax` exactly when the bound clamps what the
    /// workload needs, and `capReplicas` never lets the workload past what fits
    /// unless it already was (or minReplicas demands it).
    #[test]
    fn the_node_pool_limit_is_reported_iff_max_nodes_clamps(
        per_node in 1u32..6,
        max_nodes in 1u32..8,
        headroom in 0u32..3,
        current in 0u32..40,
        value in 0.0f64..4000.0,
        cap in any::<bool>(),
    ) {
        let mut s = capped_pool_spec(cap);
        s.min_replicas = 0;
        s.max_replicas = 40;
        if let Some(p) = s.node_pool.as_mut() {
            (p.pods_per_node, p.max_nodes, p.headroom_nodes) = (Some(per_node), max_nodes, headroom);
        }
        let d = decide_with_pool(&s, current, value);
        let nodes = d.nodes.clone().expect("node decision");
        let asked = if cap && d.reason == Reason::NodePoolAtMax {
            nodes.at_max.as_ref().map_or(d.desired_replicas, |a| a.replicas)
        } else {
            d.desired_replicas
        };
        let wanted = current.max(asked).div_ceil(per_node) + headroom;
        prop_assert_eq!(nodes.at_max.is_some(), wanted > max_nodes, "{:?}", nodes);
        // (The pool holds 2 nodes now; above maxNodes it shrinks after scaleDownDelay.)
        prop_assert!(nodes.desired <= max_nodes.max(2));
        if cap {
            let cap_replicas = max_nodes.saturating_sub(headroom) * per_node;
            prop_assert!(d.desired_replicas <= cap_replicas.max(current));
            // A workload held at the cap does not itself keep the pool at max.
            if d.reason == Reason::NodePoolAtMax && current <= cap_replicas && headroom < max_nodes {
                prop_assert_eq!(
                    d.desired_replicas.div_ceil(per_node) + headroom <= max_nodes,
                    true
                );
            }
        }
    }

    #[test]
    fn decisions_stay_within_bounds(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        for step in run(&spec, start, &ticks) {
            prop_assert!(step.desired >= spec.min_replicas && step.desired <= spec.max_replicas,
                "{} outside [{}, {}]", step.desired, spec.min_replicas, spec.max_replicas);
        }
    }

    #[test]
    fn missing_data_never_scales_down_unless_a_static_fallback_says_so(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        // Hold and AtLeast never cut capacity on missing data; only Static moves to
        // its replicas, down as well as up.
        let may_cut = spec
            .fallback
            .as_ref()
            .is_some_and(|f| f.effective_mode() == FallbackMode::Static);
        for step in run(&spec, start, &ticks) {
            if step.missing && !may_cut && step.current <= spec.max_replicas {
                prop_assert!(step.desired >= step.current,
                    "scaled down from {} to {} on missing data", step.current, step.desired);
            }
        }
    }

    #[test]
    fn at_least_never_cuts_capacity_during_an_outage(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        let at_least = spec
            .fallback
            .as_ref()
            .is_some_and(|f| f.effective_mode() == FallbackMode::AtLeast);
        if at_least {
            for step in run(&spec, start, &ticks) {
                if step.missing && step.current <= spec.max_replicas {
                    prop_assert!(step.desired >= step.current,
                        "AtLeast cut from {} to {} during an outage", step.current, step.desired);
                }
            }
        }
    }

    #[test]
    fn scale_down_never_outpaces_the_pods_policy(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        let rules = behavior::Resolved::from_spec(spec.behavior.as_ref());
        let Some(&(PolicyType::Pods, value, period)) = rules.down.policies.first() else {
            return Ok(());
        };
        let steps = run(&spec, start, &ticks);
        for (i, step) in steps.iter().enumerate() {
            if step.desired >= step.current
                || step.current > spec.max_replicas
                || step.current < spec.min_replicas
            {
                continue; // only scale-downs are limited; bounds are restored regardless
            }
            let cutoff = step.now - i64::from(period) * 1000;
            let mut net_removed: i64 = 0;
            for s in steps[..=i].iter().filter(|s| s.now > cutoff) {
                if s.current > spec.max_replicas || s.current < spec.min_replicas {
                    continue;
                }
                net_removed += i64::from(s.current) - i64::from(s.desired);
            }
            prop_assert!(net_removed <= i64::from(value),
                "removed {net_removed} within {period}s, policy allows {value}");
        }
    }

    #[test]
    fn scale_down_respects_the_window(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        let rules = behavior::Resolved::from_spec(spec.behavior.as_ref());
        let window = i64::from(rules.down.window_seconds) * 1000;
        let mut history = History::default();
        let mut current = start;
        let mut now = 1_000_000;
        let mut recs: Vec<(i64, u32)> = vec![];
        for (gap, value) in &ticks {
            now += gap;
            let d = tick(&spec, now, current, *value, &history);
            if d.desired_replicas < current && current <= spec.max_replicas && current >= spec.min_replicas {
                let highest = recs.iter().filter(|(t, _)| *t > now - window).map(|r| r.1).max();
                if let Some(h) = highest {
                    prop_assert!(d.desired_replicas >= h.min(current),
                        "scaled to {} below {h}, recommended within the window", d.desired_replicas);
                }
            }
            if let Some(r) = d.recommended {
                recs.push((now, r.clamp(spec.min_replicas, spec.max_replicas)));
            }
            history = d.history;
            current = d.desired_replicas;
        }
    }

    #[test]
    fn decisions_are_deterministic(spec in arb_spec(), start in 0u32..200, ticks in arb_run()) {
        let a: Vec<u32> = run(&spec, start, &ticks).iter().map(|s| s.desired).collect();
        let b: Vec<u32> = run(&spec, start, &ticks).iter().map(|s| s.desired).collect();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn history_stays_bounded(spec in arb_spec(), ticks in prop::collection::vec((1_000i64..5_000, prop::option::of(0.0f64..20_000.0)), 100..400)) {
        let mut history = History::default();
        let mut current = 1;
        let mut now = 0;
        for (gap, value) in &ticks {
            now += gap;
            let d = tick(&spec, now, current, *value, &history);
            history = d.history;
            current = d.desired_replicas;
            prop_assert!(history.recommendations.len() <= crate::api::history::MAX_RECOMMENDATIONS);
            prop_assert!(history.scale_events.len() <= crate::api::history::MAX_SCALE_EVENTS);
        }
    }
}

#[test]
fn a_sample_from_the_future_does_not_freeze_smoothing() {
    let mut s = no_down_window(spec(1, 50));
    s.smoothing = Some(Smoothing::new(Duration::from_secs(30)));
    let future = [Some(Sample {
        value: 100.0,
        time: 10_000_000,
    })];
    let d = decide(&Input {
        spec: &s,
        now: 0,
        current_replicas: 2,
        samples: &future,
        history: &History::default(),
        current_nodes: None,
        pod_requests: None,
    });
    // 30 s later a sample at its true time still moves the average.
    let d = tick(&s, 30_000, 2, Some(500.0), &d.history);
    assert_eq!(d.metrics[0].smoothed, Some(300.0));
}

#[test]
fn a_sample_stamped_at_i64_min_is_stale_not_an_overflow() {
    // Found by fuzz/engine_decide: decode saturates a huge negative Prometheus
    // timestamp (e.g. -1e16 s) to i64::MIN, and `now - time` overflowed: a panic
    // with overflow checks, a wrap to a "fresh" sample without them.
    let s = no_down_window(spec(1, 20));
    let samples = [Some(Sample {
        value: 5034.833,
        time: i64::MIN,
    })];
    let d = decide(&Input {
        spec: &s,
        now: 63_856_420_544_897,
        current_replicas: 5,
        samples: &samples,
        history: &History::default(),
        current_nodes: None,
        pod_requests: None,
    });
    assert_eq!(d.metrics[0].missing, Some("stale sample"));
    assert_eq!((d.desired_replicas, d.data), (5, Data::Missing));
}

/// A daily window, 08:00-10:00 UTC, with a floor of 10 (and, for the ceiling test,
/// a night cap of 3 from 22:00 for 8 h).
fn scheduled(s: &mut CustomScalingPolicySpec) {
    s.schedules = serde_yaml::from_str(
        "- {name: rush, cron: '0 8 * * *', duration: 2h, minReplicas: 10}
- {name: night, cron: '0 22 * * *', duration: 8h, maxReplicas: 3}
",
    )
    .expect("schedules");
}

/// 2026-12-01 at `h:m` UTC, in ms.
fn at(h: i64, m: i64) -> i64 {
    1_796_083_200_000 + (h * 3600 + m * 60) * 1000
}

/// HPA's semantics for a window: up to the floor at once when it starts; the
/// floored recommendation recorded while it lasts; after it, down only through the
/// scale-down window (default 300 s) and rate policy, never a cliff; a ceiling
/// below the current replicas brings them down at once.
#[test]
fn a_schedule_window_floors_then_hands_back_through_the_window() {
    let mut s = spec(2, 20);
    scheduled(&mut s);
    // Metric asks for 2 (200 / 100 × ... at 2 replicas: ratio 1).
    let quiet = Some(100.0);
    let h = History::default();
    let d = tick(&s, at(7, 59), 2, quiet, &h);
    assert_eq!((d.desired_replicas, d.schedules.len()), (2, 0));
    let d = tick(&s, at(8, 0), 2, quiet, &d.history);
    assert_eq!(d.desired_replicas, 10, "{}", d.message);
    assert_eq!(d.reason, Reason::TooFewReplicas);
    assert!(d.message.contains("(schedule rush)"), "{}", d.message);
    assert_eq!(d.bounds.min_replicas, 10);
    // While it lasts, the recommendation recorded is the floored one.
    let mut h = d.history;
    let mut replicas = 10;
    for minute in 1..120 {
        let d = tick(&s, at(8, minute), replicas, quiet, &h);
        assert_eq!(d.desired_replicas, 10, "at 08:{minute:02}");
        replicas = d.desired_replicas;
        h = d.history;
    }
    // 10:00: the window has ended; the metric asks for 1 but the scale-down window
    // (300 s) holds 10 until 10:04, then the rate policy (100% per 15 s) lets it go.
    let mut trace = vec![];
    for second in (0..=420).step_by(15) {
        let d = tick(&s, at(10, 0) + second * 1000, replicas, Some(10.0), &h);
        assert!(d.schedules.is_empty());
        trace.push((second, d.desired_replicas));
        replicas = d.desired_replicas;
        h = d.history;
    }
    let first_down = trace.iter().find(|(_, r)| *r < 10).map(|(t, _)| *t);
    assert!(
        first_down.is_some_and(|t| t >= 240),
        "a cliff right after the window: {trace:?}"
    );
    assert_eq!(trace.last().map(|(_, r)| *r), Some(2), "{trace:?}");
    // 22:00: a ceiling below the current replicas brings them down at once.
    let d = tick(&s, at(22, 0), 15, Some(1500.0), &History::default());
    assert_eq!((d.desired_replicas, d.reason), (3, Reason::TooManyReplicas));
    assert!(d.message.contains("(schedule night)"), "{}", d.message);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the windows, the replicas stay within the bounds in effect, and the
    /// bounds within [spec floor, ...] with the floor never above the ceiling.
    #[test]
    fn schedules_keep_replicas_within_the_bounds_in_effect(
        floors in prop::collection::vec((0u32..40, prop::option::of(1u32..40), 1u64..180), 0..4),
        start in 0u32..60,
        values in prop::collection::vec(prop::option::of(0.0f64..5000.0), 1..30),
        minute0 in 0i64..1440,
    ) {
        let mut s = spec(1, 20);
        s.schedules = floors
            .iter()
            .enumerate()
            .map(|(i, (min, max, minutes))| Schedule {
                name: format!("w{i}"),
                cron: format!("{} * * * *", (i * 17) % 60),
                timezone: None,
                duration: Duration::from_secs(minutes * 60),
                min_replicas: Some(*min),
                max_replicas: *max,
                node_pool: None,
            })
            .collect();
        let mut h = History::default();
        let mut current = start;
        for (i, v) in values.iter().enumerate() {
            let now = at(0, minute0) + i as i64 * 60_000;
            let d = tick(&s, now, current, *v, &h);
            prop_assert!(d.bounds.min_replicas <= d.bounds.max_replicas);
            prop_assert!(d.bounds.min_replicas >= s.min_replicas);
            prop_assert!(
                (d.bounds.min_replicas..=d.bounds.max_replicas).contains(&d.desired_replicas),
                "{} outside {:?}", d.desired_replicas, d.bounds
            );
            current = d.desired_replicas;
            h = d.history;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With a lookahead the value used is bounded: never below the smoothed level
    /// unless `Both` is asked for (no early scale-down), never above the last raw
    /// value times the limit unless the level itself is; and `Both` follows a
    /// falling trend below the level only when it falls.
    #[test]
    fn the_forecast_is_bounded_and_only_up_by_default(
        values in prop::collection::vec(prop::option::weighted(0.9, 0.0f64..5000.0), 1..40),
        both in any::<bool>(),
        limit in 1.0f64..4.0,
        ahead in 1u64..600,
    ) {
        let mut s = spec(1, 100);
        let mut sm = Smoothing::new(Duration::from_secs(30));
        sm.lookahead = Some(Duration::from_secs(ahead));
        sm.lookahead_limit = Some(limit);
        sm.lookahead_direction = Some(if both { LookaheadDirection::Both } else { LookaheadDirection::Up });
        s.smoothing = Some(sm);
        let mut h = History::default();
        let mut current = 5;
        for (i, v) in values.iter().enumerate() {
            let d = tick(&s, i as i64 * 15_000, current, *v, &h);
            let m = &d.metrics[0];
            match (m.raw, m.smoothed, m.forecast) {
                (Some(raw), Some(level), Some(f)) => {
                    if !both {
                        prop_assert!(f >= level, "Up went below the level: {f} < {level}");
                    }
                    prop_assert!(f <= (raw * limit).max(level) + 1e-9, "{f} above {limit} x {raw}");
                    prop_assert!(f >= 0.0);
                }
                (None, None, None) => {}
                other => prop_assert!(false, "inconsistent outcome {:?}", other),
            }
            current = d.desired_replicas;
            h = d.history;
        }
    }
}

/// On a ramp, the lookahead reaches the needed replicas earlier: what a policy
/// with `lookahead: 60s` sets at each tick is never below what it sets without.
#[test]
fn lookahead_scales_a_ramp_ahead() {
    let mut plain = spec(1, 200);
    plain.metrics[0].target =
        serde_yaml::from_str("{type: AverageValue, averageValue: '100'}").expect("target");
    plain.smoothing = Some(Smoothing::new(Duration::from_secs(30)));
    let mut ahead = plain.clone();
    if let Some(sm) = ahead.smoothing.as_mut() {
        sm.lookahead = Some(Duration::from_secs(60));
    }
    let run = |s: &CustomScalingPolicySpec| {
        let (mut h, mut current, mut out) = (History::default(), 1, vec![]);
        for i in 0..40 {
            let load = 50.0 * f64::from(i); // +50 per 15 s
            let d = tick(s, i64::from(i) * 15_000, current, Some(load), &h);
            out.push(d.desired_replicas);
            current = d.desired_replicas;
            h = d.history;
        }
        out
    };
    let (a, b) = (run(&plain), run(&ahead));
    assert!(a.iter().zip(&b).all(|(x, y)| y >= x), "{a:?}\n{b:?}");
    assert!(
        a.iter().zip(&b).filter(|(x, y)| y > x).count() >= 10,
        "{a:?}\n{b:?}"
    );
}

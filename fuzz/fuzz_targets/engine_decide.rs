//! The decision engine (`engine::decide`) over a few consecutive ticks, with a
//! policy, a persisted history, samples, replicas and clocks made from the input.
//!
//! The spec starts from a full valid policy and has its fields rewritten from the
//! input; only specs `validate_policy` accepts without errors are run (the webhook
//! refuses the others, and the operator never runs them). The history is what a
//! status may hold (the CRD's list bounds, finite numbers, times anywhere in `i64`
//! but `nodeShrinkSince`, which is only ever a past tick's `now`); samples are what
//! `metrics::decode` can hand over: any finite or non-finite value, any time
//! (decode saturates a huge or negative Prometheus timestamp to `i64::MAX`/`MIN`).
//! `now` is a wall clock (1970 to a few thousand years on), moving forward.
//!
//! Properties of every tick (from src/engine/mod.rs, behavior.rs, history.rs):
//! - no panic, no arithmetic overflow (fuzz builds check overflow);
//! - paused: replicas held, reason `Paused`;
//! - otherwise the result is within [minReplicas, maxReplicas]; a current count
//!   outside them moves to the nearest bound;
//! - within bounds: no recommendation holds the current count; a recommendation
//!   `r` lands between the current count and `r` clamped to the bounds (windows and
//!   rates only slow a change, never reverse or overshoot it);
//! - `Missing`/`Partial` data never scale down; a fresh start (no recommendations)
//!   with a scale-down window never scales down; a `Disabled` direction never moves;
//! - with no recent scale events, a step is within the rate policies' limit;
//! - the data state and the failure counter match the samples (fresh, finite, present);
//! - the node pool never goes below minNodes nor below what the workload needs, and
//!   above maxNodes only while an already larger pool waits out scaleDownDelay;
//! - the history handed back is bounded (64/64, one smoothing entry per metric),
//!   holds no time after `now` and nothing older than the windows and periods look
//!   at, carries only finite smoothed values and survives a JSON round trip (it is
//!   written to the policy's status and read back by the next leader).
#![cfg_attr(fuzzing, no_main)]

use std::sync::LazyLock;

use arbitrary::{Result, Unstructured};
use ballast::api::Duration;
use ballast::api::conditions::Reason;
use ballast::api::history::{
    History, MAX_RECOMMENDATIONS, MAX_SCALE_EVENTS, Recommendation, ScaleEvent, SmoothedValue,
};
use ballast::api::policy::*;
use ballast::api::validation::{Severity, validate_policy};
use ballast::engine::behavior::Resolved;
use ballast::engine::{self, Data, Decision, Input, PodRequests, STALE_INTERVALS, Sample};

const BASE: &str = r#"
targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
minReplicas: 2
maxReplicas: 40
metrics:
  - name: evictions
    query: sum(rate(redis_evicted_keys_total[1m]))
    target: {type: Value, value: "100"}
  - name: lag
    query: max(kafka_consumergroup_lag)
    target: {type: AverageValue, averageValue: 1k}
smoothing: {halfLife: 30s}
behavior:
  tolerance: 0.05
  scaleUp:
    stabilizationWindowSeconds: 0
    selectPolicy: Max
    policies:
      - {type: Percent, value: 100, periodSeconds: 15}
      - {type: Pods, value: 4, periodSeconds: 15}
  scaleDown:
    stabilizationWindowSeconds: 300
    selectPolicy: Min
    policies:
      - {type: Pods, value: 2, periodSeconds: 60}
pollInterval: 10s
jitter: 0.2
fallback: {failureThreshold: 3, replicas: 6}
nodePool:
  targetRef: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, name: pool}
  podsPerNode: 8
  minNodes: 1
  maxNodes: 6
  headroomNodes: 1
  scaleDownDelay: 10m
"#;

/// `FUZZ_DEBUG=1` prints every tick's input and outcome (to read a crash artifact).
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_DEBUG").is_some());

static BASE_SPEC: LazyLock<CustomScalingPolicySpec> =
    LazyLock::new(|| ballast_yaml(BASE).expect("the base spec parses"));

fn ballast_yaml(text: &str) -> Option<CustomScalingPolicySpec> {
    // Through lint's own YAML reader, so the fuzz crate needs no YAML dependency.
    let docs = ballast::api::documents::parse_documents(text).ok()?;
    serde_json::from_value(docs.into_iter().next()?.value).ok()
}

/// One year in ms: the longest duration the CRD's parser accepts.
const YEAR_MS: u64 = 365 * 86_400_000;
/// Latest `now`: about the year 5000.
const MAX_NOW: i64 = 100_000_000_000_000;

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_one(data));

/// One input: the properties above, asserted (also replayed over the seeds by
/// `tests/fuzz_seeds.rs` in `make unit`).
pub fn fuzz_one(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured) -> Result<()> {
    let spec = make_spec(u)?;
    if validate_policy(&spec)
        .iter()
        .any(|p| p.severity == Severity::Error)
    {
        return Ok(());
    }
    let mut now = u.int_in_range(0..=MAX_NOW)?;
    let mut history = make_history(u, &spec, now)?;
    let mut current = replicas(u, &spec)?;
    let ticks = u.int_in_range(1..=6)?;
    for _ in 0..ticks {
        let samples = make_samples(u, &spec, now)?;
        let current_nodes = if u.ratio(1, 5)? {
            None
        } else {
            Some(small_or_any(u)?)
        };
        let pod_requests = if u.ratio(1, 4)? {
            None
        } else {
            Some(PodRequests {
                cpu: opt_f64(u)?,
                memory: opt_f64(u)?,
            })
        };
        let input = Input {
            spec: &spec,
            now,
            current_replicas: current,
            samples: &samples,
            history: &history,
            current_nodes,
            pod_requests,
        };
        if *DEBUG {
            eprintln!("{input:#?}");
        }
        let decision = engine::decide(&input);
        if *DEBUG {
            eprintln!(
                "=> desired {} ({:?}, {})",
                decision.desired_replicas, decision.data, decision.reason
            );
        }
        check(&input, &decision);

        // The next tick: usually the decision was applied; sometimes someone else
        // changed the replicas, or the history comes back from an edited status.
        current = if u.ratio(1, 4)? {
            replicas(u, &spec)?
        } else {
            decision.desired_replicas
        };
        history = if u.ratio(1, 8)? {
            make_history(u, &spec, now)?
        } else {
            decision.history
        };
        now = now.saturating_add(gap(u, &spec)?).min(MAX_NOW);
    }
    Ok(())
}

// ------------------------------------------------------------------ properties

fn check(input: &Input<'_>, d: &Decision) {
    let spec = input.spec;
    let (min, max) = (spec.min_replicas, spec.max_replicas);
    let current = input.current_replicas;
    let now = input.now;
    let ctx = || format!("current {current}, [{min}, {max}], now {now}: {d:#?}");

    // Which metrics had a usable sample, worked out independently (in i128).
    let stale_after = i128::from(STALE_INTERVALS) * i128::from(spec.poll_interval.as_millis());
    let missing = spec
        .metrics
        .iter()
        .enumerate()
        .filter(|(i, _)| match input.samples.get(*i).copied().flatten() {
            None => true,
            Some(s) => !s.value.is_finite() || i128::from(now) - i128::from(s.time) > stale_after,
        })
        .count();
    assert_eq!(
        d.metrics.iter().filter(|m| m.missing.is_some()).count(),
        missing,
        "{}",
        ctx()
    );
    for m in &d.metrics {
        assert_eq!(m.missing.is_some(), m.raw.is_none(), "{}", ctx());
        if let Some(raw) = m.raw {
            assert!(raw.is_finite(), "{}", ctx());
        }
        if let Some(t) = m.sample_time {
            assert!(t <= now, "a sample time after now: {}", ctx());
        }
    }
    let failures = if missing > 0 {
        input.history.consecutive_failures.saturating_add(1)
    } else {
        0
    };
    assert_eq!(d.history.consecutive_failures, failures, "{}", ctx());

    check_history(input, d);

    if spec.paused {
        assert_eq!(d.desired_replicas, current, "{}", ctx());
        assert_eq!(d.reason, Reason::Paused);
        return;
    }

    let fallback = spec
        .fallback
        .as_ref()
        .filter(|f| failures >= f.failure_threshold.max(1))
        .and_then(|f| f.target(current));
    let expected = match (missing, fallback) {
        (0, _) => Data::Complete,
        (_, Some(_)) => Data::Fallback,
        (m, None) if m < spec.metrics.len() => Data::Partial { missing: m },
        _ => Data::Missing,
    };
    assert_eq!(d.data, expected, "{}", ctx());
    // AtLeast never cuts capacity during an outage.
    if d.data == Data::Fallback
        && spec
            .fallback
            .as_ref()
            .is_some_and(|f| f.effective_mode() == FallbackMode::AtLeast)
        && current <= max
    {
        assert!(
            d.desired_replicas >= current,
            "AtLeast cut capacity: {}",
            ctx()
        );
    }

    let desired = d.desired_replicas;
    assert!(
        (min..=max).contains(&desired),
        "desired outside the bounds: {}",
        ctx()
    );
    if current > max {
        assert_eq!(desired, max, "{}", ctx());
        assert_eq!(d.reason, Reason::TooManyReplicas);
    } else if current < min {
        assert_eq!(desired, min, "{}", ctx());
        assert_eq!(d.reason, Reason::TooFewReplicas);
    } else {
        match d.recommended {
            None => assert_eq!(
                desired,
                current,
                "moved without a recommendation: {}",
                ctx()
            ),
            Some(r) => {
                let r = r.clamp(min, max);
                assert!(
                    (current.min(r)..=current.max(r)).contains(&desired),
                    "overshot the recommendation: {}",
                    ctx()
                );
            }
        }
        if matches!(d.data, Data::Missing | Data::Partial { .. }) {
            assert!(desired >= current, "scaled down on missing data: {}", ctx());
        }
        let rules = Resolved::from_spec(spec.behavior.as_ref());
        if input.history.recommendations.is_empty() && rules.down.window_seconds > 0 {
            assert!(
                desired >= current,
                "scaled down at a fresh start: {}",
                ctx()
            );
        }
        if rules.up.select == SelectPolicy::Disabled {
            assert!(desired <= current, "scale-up is disabled: {}", ctx());
        }
        if rules.down.select == SelectPolicy::Disabled {
            assert!(desired >= current, "scale-down is disabled: {}", ctx());
        }
        check_rates(input, &rules, d);
    }

    if let (Some(pool), Some(nodes)) = (&spec.node_pool, &d.nodes) {
        // Never below minNodes. Above maxNodes only while a pool that is already
        // larger (resized by hand, or maxNodes lowered) waits out scaleDownDelay:
        // nodes come down only after the delay, bounds or not (a design choice).
        assert!(
            nodes.desired >= pool.min_nodes,
            "nodes below minNodes: {}",
            ctx()
        );
        if nodes.desired > pool.max_nodes {
            assert_eq!(Some(nodes.desired), nodes.current, "{}", ctx());
            assert_eq!(nodes.reason, Reason::NodePoolScaleDownDelayed, "{}", ctx());
        }
        if let Some(per_node) = pool.pods_per_node {
            let workload = u64::from(current.max(desired));
            let needed = (workload.div_ceil(u64::from(per_node)) + u64::from(pool.headroom_nodes))
                .clamp(u64::from(pool.min_nodes), u64::from(pool.max_nodes));
            assert!(
                u64::from(nodes.desired) >= needed,
                "fewer nodes than the workload needs ({needed}): {}",
                ctx()
            );
        }
        match (nodes.current, nodes.order) {
            (None, engine::Order::NodesFirst) => {}
            (None, o) => panic!("order {o:?} for an unknown pool size: {}", ctx()),
            (Some(c), o) => {
                let expected = match nodes.desired.cmp(&c) {
                    std::cmp::Ordering::Greater => engine::Order::NodesFirst,
                    std::cmp::Ordering::Less => engine::Order::WorkloadFirst,
                    std::cmp::Ordering::Equal => engine::Order::Unchanged,
                };
                assert_eq!(o, expected, "{}", ctx());
            }
        }
    } else {
        assert_eq!(spec.node_pool.is_some(), d.nodes.is_some(), "{}", ctx());
    }
}

/// With no scale event inside any period, a step is within what one period of the
/// rate policies allows, counted from the current replicas.
fn check_rates(input: &Input<'_>, rules: &Resolved, d: &Decision) {
    let current = input.current_replicas;
    let desired = d.desired_replicas;
    let longest = rules
        .up
        .policies
        .iter()
        .chain(&rules.down.policies)
        .map(|p| i64::from(p.2) * 1000)
        .max()
        .unwrap_or(0);
    let quiet = input
        .history
        .scale_events
        .iter()
        .all(|e| e.time <= input.now - longest);
    if !quiet {
        return;
    }
    if desired > current && rules.up.select != SelectPolicy::Disabled {
        let limits = rules
            .up
            .policies
            .iter()
            .map(|&(kind, value, _)| match kind {
                PolicyType::Pods => f64::from(current) + f64::from(value),
                PolicyType::Percent => {
                    (f64::from(current.max(1)) * (1.0 + f64::from(value) / 100.0)).ceil()
                }
            });
        let limit = match rules.up.select {
            SelectPolicy::Min => limits.fold(f64::INFINITY, f64::min),
            _ => limits.fold(f64::NEG_INFINITY, f64::max),
        };
        if !rules.up.policies.is_empty() {
            assert!(
                f64::from(desired) <= limit.max(f64::from(current)),
                "scaled up past the rate limit {limit}: {d:#?}"
            );
        }
    }
    if desired < current && rules.down.select != SelectPolicy::Disabled {
        let limits = rules
            .down
            .policies
            .iter()
            .map(|&(kind, value, _)| match kind {
                PolicyType::Pods => f64::from(current) - f64::from(value),
                PolicyType::Percent => {
                    (f64::from(current) * (1.0 - f64::from(value) / 100.0)).trunc()
                }
            });
        // The smallest change down is the largest count.
        let limit = match rules.down.select {
            SelectPolicy::Min => limits.fold(f64::NEG_INFINITY, f64::max),
            _ => limits.fold(f64::INFINITY, f64::min),
        };
        if !rules.down.policies.is_empty() {
            assert!(
                f64::from(desired) >= limit.min(f64::from(current)),
                "scaled down past the rate limit {limit}: {d:#?}"
            );
        }
    }
}

fn check_history(input: &Input<'_>, d: &Decision) {
    let h = &d.history;
    let now = input.now;
    assert!(h.recommendations.len() <= MAX_RECOMMENDATIONS);
    assert!(h.scale_events.len() <= MAX_SCALE_EVENTS);
    assert!(h.smoothed.len() <= input.spec.metrics.len());
    let horizon = Resolved::from_spec(input.spec.behavior.as_ref()).horizon_millis();
    for r in &h.recommendations {
        assert!(r.time <= now && r.time > now - horizon, "{d:#?}");
    }
    for e in &h.scale_events {
        assert!(e.time <= now && e.time > now - horizon, "{d:#?}");
    }
    if let Some(since) = h.node_shrink_since {
        assert!(since <= now, "{d:#?}");
    }
    for (i, s) in h.smoothed.iter().enumerate() {
        assert!(
            input.spec.metrics.iter().any(|m| m.name == s.name),
            "smoothing state of an unknown metric: {d:#?}"
        );
        assert!(
            !h.smoothed[..i].iter().any(|o| o.name == s.name),
            "two smoothing states for {:?}: {d:#?}",
            s.name
        );
        assert!(
            s.value.is_finite(),
            "a non-finite smoothed value is kept (and written to status as null): {d:#?}"
        );
    }
    for m in &d.metrics {
        if let Some(v) = m.smoothed {
            assert!(v.is_finite(), "a non-finite smoothed value: {d:#?}");
        }
    }
    // Written to status, read back by the next leader.
    let json = serde_json::to_value(h).expect("the history serializes");
    let back: History = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("the history does not read back ({e}): {json}"));
    assert_eq!(&back, h, "the history changed through JSON");
}

// ------------------------------------------------------------------ generators

fn make_spec(u: &mut Unstructured) -> Result<CustomScalingPolicySpec> {
    let mut s = BASE_SPEC.clone();
    s.min_replicas = small_or_any(u)?;
    s.max_replicas = if u.ratio(3, 4)? {
        s.min_replicas.saturating_add(u.int_in_range(0..=100)?)
    } else {
        small_or_any(u)?
    };
    let n = u.int_in_range(1..=4)?;
    s.metrics = (0..n)
        .map(|i| make_metric(u, i))
        .collect::<Result<Vec<_>>>()?;
    s.smoothing = if u.ratio(1, 3)? {
        None
    } else {
        let mut sm = Smoothing::new(duration(u, 1, YEAR_MS)?);
        if u.arbitrary()? {
            sm.lookahead = Some(duration(u, 1, YEAR_MS)?);
            sm.lookahead_direction = Some(if u.arbitrary()? {
                LookaheadDirection::Both
            } else {
                LookaheadDirection::Up
            });
            if u.arbitrary()? {
                sm.lookahead_limit = Some(f64::from(u.int_in_range(1u8..=10)?));
            }
        }
        Some(sm)
    };
    s.behavior = match u.int_in_range(0..=3)? {
        0 => None,
        1 => s.behavior,
        _ => Some(Behavior {
            scale_up: opt_rules(u)?,
            scale_down: opt_rules(u)?,
            tolerance: if u.arbitrary()? {
                Some(match u.int_in_range(0..=2)? {
                    0 => 0.0,
                    1 => f64::from(u.int_in_range(0..=99u32)?) / 100.0,
                    _ => any_f64(u)?,
                })
            } else {
                None
            },
        }),
    };
    s.poll_interval = duration(u, 1000, YEAR_MS)?;
    s.fallback = match u.int_in_range(0..=2)? {
        0 => None,
        1 => s.fallback,
        _ => Some(Fallback {
            failure_threshold: u.int_in_range(1..=5)?,
            replicas: if u.arbitrary()? {
                Some(small_or_any(u)?)
            } else {
                None
            },
            mode: match u.int_in_range(0..=3)? {
                0 => None,
                1 => Some(FallbackMode::Hold),
                2 => Some(FallbackMode::Static),
                _ => Some(FallbackMode::AtLeast),
            },
        }),
    };
    s.node_pool = match u.int_in_range(0..=2)? {
        0 => None,
        _ => {
            let mut pool = s.node_pool.take().expect("the base has a node pool");
            if u.arbitrary()? {
                pool.pods_per_node = None;
                pool.node_allocatable = Some(NodeAllocatable {
                    cpu: Some(quantity(u)?),
                    memory: if u.arbitrary()? {
                        Some(quantity(u)?)
                    } else {
                        None
                    },
                });
            } else {
                pool.pods_per_node = Some(small_or_any(u)?.max(1));
            }
            pool.min_nodes = u.int_in_range(0..=10)?;
            pool.max_nodes = pool.min_nodes.saturating_add(small_or_any(u)?);
            pool.headroom_nodes = small_or_any(u)?;
            pool.scale_down_delay = duration(u, 0, YEAR_MS)?;
            Some(pool)
        }
    };
    s.paused = u.ratio(1, 16)?;
    s.dry_run = u.arbitrary()?;
    Ok(s)
}

fn make_metric(u: &mut Unstructured, i: u32) -> Result<MetricSpec> {
    let type_ = if u.arbitrary()? {
        TargetType::Value
    } else {
        TargetType::AverageValue
    };
    let q = Some(quantity(u)?);
    Ok(MetricSpec {
        name: format!("m{i}"),
        source: None,
        query: "up".into(),
        target: MetricTarget {
            type_,
            value: if type_ == TargetType::Value {
                q.clone()
            } else {
                None
            },
            average_value: if type_ == TargetType::AverageValue {
                q
            } else {
                None
            },
        },
        activation_threshold: if u.arbitrary()? {
            Some(quantity(u)?)
        } else {
            None
        },
    })
}

fn opt_rules(u: &mut Unstructured) -> Result<Option<ScalingRules>> {
    if u.ratio(1, 3)? {
        return Ok(None);
    }
    let window = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(0),
        _ => Some(u.int_in_range(0..=3600)?),
    };
    let select = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(SelectPolicy::Max),
        2 => Some(SelectPolicy::Min),
        _ => Some(SelectPolicy::Disabled),
    };
    let policies = if u.ratio(1, 4)? {
        None
    } else {
        let n = u.int_in_range(0..=10)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(ScalingPolicyRule {
                type_: if u.arbitrary()? {
                    PolicyType::Pods
                } else {
                    PolicyType::Percent
                },
                value: small_or_any(u)?.max(1),
                period_seconds: u.int_in_range(1..=1800)?,
            });
        }
        Some(v)
    };
    Ok(Some(ScalingRules {
        stabilization_window_seconds: window,
        select_policy: select,
        policies,
    }))
}

/// A quantity as users write them: an integer or decimal with an optional suffix,
/// through the CRD's own parser.
fn quantity(u: &mut Unstructured) -> Result<ballast::api::Quantity> {
    const SUFFIXES: &[&str] = &[
        "", "", "", "m", "k", "M", "G", "E", "n", "u", "Ki", "Gi", "Ei", "e3", "e-3", "e30", "e-30",
    ];
    let whole = small_or_any(u)?;
    let text = if u.arbitrary()? {
        format!(
            "{whole}.{:03}{}",
            u.int_in_range(0..=999u32)?,
            u.choose(SUFFIXES)?
        )
    } else {
        format!("{whole}{}", u.choose(SUFFIXES)?)
    };
    Ok(text.parse().unwrap_or_else(|_| "1".parse().expect("1")))
}

fn duration(u: &mut Unstructured, min: u64, max: u64) -> Result<Duration> {
    let ms = match u.int_in_range(0..=3)? {
        0 => min,
        1 => u.int_in_range(min..=min.saturating_add(120_000).min(max))?,
        2 => u.int_in_range(min..=max)?,
        _ => max,
    };
    Ok(Duration::from_millis(ms))
}

fn replicas(u: &mut Unstructured, spec: &CustomScalingPolicySpec) -> Result<u32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => spec.min_replicas,
        1 => spec.max_replicas,
        2 => u.int_in_range(spec.min_replicas..=spec.max_replicas)?,
        _ => small_or_any(u)?,
    })
}

fn small_or_any(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.int_in_range(0..=10)?,
        1 => u.int_in_range(0..=1000)?,
        2 => u32::MAX - u.int_in_range(0..=3)?,
        _ => u.arbitrary()?,
    })
}

fn any_f64(u: &mut Unstructured) -> Result<f64> {
    const SPECIAL: &[f64] = &[
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        1e308,
        -1e308,
        1e-300,
        5e-324,
        4_294_967_295.0,
        4_294_967_296.5,
    ];
    Ok(match u.int_in_range(0..=4)? {
        0 => *u.choose(SPECIAL)?,
        1 => f64::from(u.int_in_range(0..=20_000u32)?),
        2 => f64::from(u.int_in_range(0..=20_000_000u32)?) / 1000.0,
        3 => -f64::from(u.int_in_range(0..=1000u32)?),
        _ => f64::from_bits(u.arbitrary()?),
    })
}

fn opt_f64(u: &mut Unstructured) -> Result<Option<f64>> {
    Ok(if u.arbitrary()? {
        Some(any_f64(u)?.abs())
    } else {
        None
    })
}

/// A time around `now`: now, a little before, just around the stale limit, in the
/// future (clock skew), long ago, or anything at all.
fn time_near(u: &mut Unstructured, spec: &CustomScalingPolicySpec, now: i64) -> Result<i64> {
    let stale = STALE_INTERVALS * spec.poll_interval.as_millis() as i64;
    Ok(match u.int_in_range(0..=6)? {
        0 => now,
        1 => now - u.int_in_range(0..=60_000)?,
        2 => now - stale + u.int_in_range(-2..=2)?,
        3 => now + u.int_in_range(0..=3_600_000)?,
        4 => now - u.int_in_range(0..=4_000_000)?,
        5 => *u.choose(&[i64::MIN, i64::MAX, 0, -1, now - 1, now + 1])?,
        _ => u.arbitrary()?,
    })
}

fn make_samples(
    u: &mut Unstructured,
    spec: &CustomScalingPolicySpec,
    now: i64,
) -> Result<Vec<Option<Sample>>> {
    let n = if u.ratio(1, 16)? {
        u.int_in_range(0..=spec.metrics.len())?
    } else {
        spec.metrics.len()
    };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        samples.push(if u.ratio(1, 5)? {
            None
        } else {
            Some(Sample {
                value: any_f64(u)?,
                time: time_near(u, spec, now)?,
            })
        });
    }
    Ok(samples)
}

/// What a status may hold: lists within the CRD's bounds, any values the engine or
/// an earlier version of it could have written (times anywhere in `i64`, as a
/// sample stamped `i64::MIN` once passed the stale check; finite numbers).
fn make_history(u: &mut Unstructured, spec: &CustomScalingPolicySpec, now: i64) -> Result<History> {
    let mut h = History::default();
    let n = u.int_in_range(0..=MAX_RECOMMENDATIONS)?;
    for _ in 0..n {
        let low = small_or_any(u)?;
        h.recommendations.push(Recommendation {
            time: time_near(u, spec, now)?,
            low,
            high: if u.ratio(3, 4)? {
                low.saturating_add(u.int_in_range(0..=5)?)
            } else {
                small_or_any(u)?
            },
        });
    }
    let n = u.int_in_range(0..=MAX_SCALE_EVENTS)?;
    for _ in 0..n {
        let change: i64 = match u.int_in_range(0..=2)? {
            0 => u.int_in_range(-10..=10)?,
            1 => i64::from(u.arbitrary::<u32>()?) - i64::from(u.arbitrary::<u32>()?),
            // Events merged from many.
            _ => u.int_in_range(-(64 * i64::from(u32::MAX))..=64 * i64::from(u32::MAX))?,
        };
        h.scale_events.push(ScaleEvent {
            time: time_near(u, spec, now)?,
            change,
        });
    }
    for m in &spec.metrics {
        if u.arbitrary()? {
            // JSON has no NaN or Inf: a status holds finite numbers only.
            let value = any_f64(u)?;
            h.smoothed.push(SmoothedValue {
                name: m.name.clone(),
                value: if value.is_finite() { value } else { 0.0 },
                time: time_near(u, spec, now)?,
                trend: if u.arbitrary()? {
                    let t = any_f64(u)?;
                    t.is_finite().then_some(t)
                } else {
                    None
                },
            });
        }
    }
    h.consecutive_failures = match u.int_in_range(0..=2)? {
        0 => 0,
        1 => u.int_in_range(0..=10)?,
        _ => u.arbitrary()?,
    };
    // Only ever `now` at the tick a shrink became possible (then clamped to `now`):
    // a time in the past or, from a skewed clock, a little ahead.
    h.node_shrink_since = match u.int_in_range(0..=2)? {
        0 => None,
        1 => Some(now - u.int_in_range(0..=YEAR_MS as i64)?),
        _ => Some(now + u.int_in_range(0..=3_600_000)?),
    };
    Ok(h)
}

/// Time to the next tick: about a poll interval, sometimes much longer.
fn gap(u: &mut Unstructured, spec: &CustomScalingPolicySpec) -> Result<i64> {
    let poll = spec.poll_interval.as_millis() as i64;
    Ok(match u.int_in_range(0..=3)? {
        0 => poll,
        1 => u.int_in_range(0..=2 * poll)?,
        2 => u.int_in_range(0..=4_000_000)?,
        _ => u.int_in_range(0..=i64::from(u32::MAX))?,
    })
}

//! Decisions per second of the pure engine (`engine::decide`), for policies with
//! 1, 4 and 16 metrics, smoothing, both stabilization windows, Pods and Percent
//! rate policies, and a full behavior history (a warm-up of an hour of 15 s ticks
//! with the load going up and down, so the windows and periods are full).
//!
//! `cargo bench --bench engine` (criterion); `make bench` turns the estimates into
//! decisions per second in bench/results.md.

use std::hint::black_box;

use ballast::api::History;
use ballast::api::policy::CustomScalingPolicySpec;
use ballast::engine::{Input, Sample, decide};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TICK_MS: i64 = 15_000;

fn spec(metrics: usize) -> CustomScalingPolicySpec {
    let metrics: Vec<serde_json::Value> = (0..metrics)
        .map(|i| {
            serde_json::json!({
                "name": format!("m{i}"),
                "query": format!("sum(rate(x{i}[1m]))"),
                "target": {"type": "AverageValue", "averageValue": "50"}
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cache"},
        "minReplicas": 2,
        "maxReplicas": 40,
        "metrics": metrics,
        "smoothing": {"halfLife": "30s"},
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 60, "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 30},
                {"type": "Pods", "value": 4, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [
                {"type": "Pods", "value": 2, "periodSeconds": 60},
                {"type": "Percent", "value": 10, "periodSeconds": 60}]}
        },
        "pollInterval": "15s",
        "fallback": {"failureThreshold": 4, "replicas": 6}
    }))
    .expect("a valid spec")
}

/// The load at tick `t`: a slow wave between 100 and 1,900 per metric.
fn load(t: i64, metric: usize) -> f64 {
    let phase = (t as f64) / 40.0 + metric as f64;
    1000.0 + 900.0 * phase.sin()
}

fn input<'a>(
    spec: &'a CustomScalingPolicySpec,
    now: i64,
    replicas: u32,
    samples: &'a [Option<Sample>],
    history: &'a History,
) -> Input<'a> {
    Input {
        spec,
        now,
        current_replicas: replicas,
        samples,
        history,
        current_nodes: None,
        pod_requests: None,
    }
}

/// Run an hour of ticks, applying each decision, and return the state reached.
fn warmed(spec: &CustomScalingPolicySpec) -> (History, u32, i64) {
    let mut history = History::default();
    let mut replicas = 2;
    let ticks = 3_600_000 / TICK_MS;
    for t in 0..ticks {
        let now = t * TICK_MS;
        let samples: Vec<Option<Sample>> = (0..spec.metrics.len())
            .map(|m| {
                Some(Sample {
                    value: load(t, m),
                    time: now,
                })
            })
            .collect();
        let d = decide(&input(spec, now, replicas, &samples, &history));
        history = d.history;
        replicas = d.desired_replicas;
    }
    (history, replicas, ticks)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for metrics in [1usize, 4, 16] {
        let spec = spec(metrics);
        let (history, replicas, t) = warmed(&spec);
        let now = t * TICK_MS;
        let samples: Vec<Option<Sample>> = (0..metrics)
            .map(|m| {
                Some(Sample {
                    value: load(t, m),
                    time: now,
                })
            })
            .collect();
        group.bench_function(format!("{metrics}_metrics"), |b| {
            b.iter(|| decide(black_box(&input(&spec, now, replicas, &samples, &history))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! A metrics source that goes away: a Prometheus of the scenario's own (scraping
//! the harness's Redis exporter) is stopped. No scale-down on missing data,
//! `MetricsAvailable=False`, the fallback after `failureThreshold`, the source's
//! circuit opens (Event, metric); back to normal when it returns (half-open probe).

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_e2e::chaos::Prometheus;
use ballast_e2e::{Scenario, eventually, polls};
use serde_json::json;

pub async fn prometheus_down(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(3);
    const FAILURES: u32 = 3;
    let port = s.env.redis_exporter_port()?;
    let mut prometheus = Prometheus::start(&s.dir, port).await?;
    let ns = s.ns.clone();
    let source = s
        .source(
            "local",
            json!({"address": prometheus.url(), "timeout": "2s", "allowedNamespaces": [ns]}),
        )
        .await?;
    let op = s.operator("op").await?;
    s.deployment("fb", 3).await?;
    // redis_up is 1 while the exporter reaches Redis: 3 x 1 per replica -> 3 replicas.
    s.policy(
        "fb",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fb"},
            "minReplicas": 1, "maxReplicas": 8, "pollInterval": "3s",
            "metrics": [{"name": "up", "source": source, "query": "sum(redis_up) * 3", "target": {"type": "AverageValue", "averageValue": "1"}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 6}},
            "fallback": {"failureThreshold": FAILURES, "replicas": 5}
        }),
    )
    .await?;
    eventually(polls(POLL, 10), "metrics available", || {
        s.metrics_available("fb")
    })
    .await?;
    s.replicas_are("fb", 3).await.context("while healthy")?;
    prometheus.kill().await?;
    let stopped = Instant::now();
    s.say("stopped the source's Prometheus");
    eventually(polls(POLL, 4), "MetricsAvailable goes False", || async {
        let c = s.condition("fb", "MetricsAvailable").await?;
        anyhow::ensure!(c.status == "False", "{}/{}", c.status, c.reason);
        Ok(())
    })
    .await?;
    // Until the fallback: never below 3 (missing data is not zero).
    let lowest = Cell::new(3);
    eventually(
        polls(POLL, FAILURES + 3),
        "fallback replicas 5 applied",
        || async {
            let r = s.replicas("fb").await?;
            lowest.set(lowest.get().min(r));
            anyhow::ensure!(r == 5, "at {r}");
            Ok(())
        },
    )
    .await?;
    anyhow::ensure!(
        lowest.get() >= 3,
        "scaled down to {} while metrics were missing",
        lowest.get()
    );
    let c = s.condition("fb", "MetricsAvailable").await?;
    s.say(format!(
        "fallback applied after {:.1}s: {}/{}",
        stopped.elapsed().as_secs_f64(),
        c.status,
        c.reason
    ));
    anyhow::ensure!(
        !s.events("FallbackApplied").await?.is_empty(),
        "no FallbackApplied event"
    );
    anyhow::ensure!(
        !s.events("MetricsUnavailable").await?.is_empty(),
        "no MetricsUnavailable event"
    );
    // Five consecutive failures open the source's circuit (the default threshold).
    eventually(polls(POLL, 8), "a CircuitOpen event", || async {
        anyhow::ensure!(!s.events("CircuitOpen").await?.is_empty(), "none");
        Ok(())
    })
    .await?;
    let series = format!("ballast_circuit_state{{source=\"{source}\"}}");
    eventually(polls(POLL, 1), "the circuit is open (state 2)", || async {
        let state = s.operators[op].metric(&series).await?;
        anyhow::ensure!(state == Some(2.0), "{series} is {state:?}");
        Ok(())
    })
    .await?;
    s.say(format!(
        "circuit open after {:.1}s; replicas still {}",
        stopped.elapsed().as_secs_f64(),
        s.replicas("fb").await?
    ));
    s.replicas_are("fb", 5)
        .await
        .context("replicas moved while the circuit was open")?;
    prometheus.restart().await?;
    s.say("restarted the source's Prometheus");
    eventually(
        polls(POLL, 10) + Duration::from_secs(30),
        "metrics back (after the circuit's cool-down)",
        || s.metrics_available("fb"),
    )
    .await?;
    eventually(polls(POLL, 6), "back to 3 replicas", || {
        s.replicas_are("fb", 3)
    })
    .await
}

//! Telemetry: the operator's own Prometheus metrics (`ballast_` prefix, units in
//! the names, bounded label sets), logging setup, and the admin HTTP server
//! ([`server`]) with `/metrics`, `/healthz` and `/readyz`.

pub mod server;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    up,
    down,
    none,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub namespace: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyDirectionLabels {
    pub namespace: String,
    pub policy: String,
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabels {
    pub namespace: String,
    pub policy: String,
    pub metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceErrorLabels {
    pub source: String,
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    pub kind: String,
    pub result: String,
}

/// One of the operator's watches (`policies`, `sources`, `deployments`,
/// `statefulsets`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchErrorLabels {
    pub watch: String,
    pub category: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the operator exports.
pub struct Metrics {
    pub registry: Registry,
    pub decisions: Family<DirectionLabels, Counter>,
    pub scaling_events: Family<PolicyDirectionLabels, Counter>,
    pub current_replicas: Family<PolicyLabels, Gauge>,
    pub desired_replicas: Family<PolicyLabels, Gauge>,
    pub min_replicas: Family<PolicyLabels, Gauge>,
    pub max_replicas: Family<PolicyLabels, Gauge>,
    pub current_nodes: Family<PolicyLabels, Gauge>,
    pub desired_nodes: Family<PolicyLabels, Gauge>,
    pub node_pool_at_max: Family<PolicyLabels, Gauge>,
    pub metric_raw: Family<MetricLabels, FloatGauge>,
    pub metric_smoothed: Family<MetricLabels, FloatGauge>,
    pub metric_target: Family<MetricLabels, FloatGauge>,
    pub metrics_available: Family<PolicyLabels, Gauge>,
    pub active_schedules: Family<PolicyLabels, Gauge>,
    pub scaling_limited: Family<PolicyLabels, Gauge>,
    pub last_evaluation: Family<PolicyLabels, FloatGauge>,
    pub poll_interval: Family<PolicyLabels, FloatGauge>,
    pub query_duration: Family<SourceLabels, Histogram>,
    pub query_errors: Family<SourceErrorLabels, Counter>,
    pub circuit_state: Family<SourceLabels, Gauge>,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: Family<CategoryLabels, Counter>,
    pub tick_lag: Histogram,
    pub leader: Gauge,
    pub writes_skipped: Family<ReasonLabels, Counter>,
    pub scale_writes: Family<ReasonLabels, Counter>,
    pub admission_reviews: Family<AdmissionLabels, Counter>,
    pub admission_duration: Histogram,
    pub webhook_cert_expiry: FloatGauge,
    pub watch_up: Family<WatchLabels, Gauge>,
    pub watch_errors: Family<WatchErrorLabels, Counter>,
    pub watch_outage: Family<WatchLabels, Histogram>,
    pub stale_cache_reads: Counter,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            decisions: Family::default(),
            scaling_events: Family::default(),
            current_replicas: Family::default(),
            desired_replicas: Family::default(),
            min_replicas: Family::default(),
            max_replicas: Family::default(),
            current_nodes: Family::default(),
            desired_nodes: Family::default(),
            node_pool_at_max: Family::default(),
            metric_raw: Family::default(),
            metric_smoothed: Family::default(),
            metric_target: Family::default(),
            metrics_available: Family::default(),
            active_schedules: Family::default(),
            scaling_limited: Family::default(),
            last_evaluation: Family::default(),
            poll_interval: Family::default(),
            query_duration: Family::new_with_constructor(seconds_histogram),
            query_errors: Family::default(),
            circuit_state: Family::default(),
            reconcile_duration: seconds_histogram(),
            reconcile_errors: Family::default(),
            // Finer around the 1 s that matters for tick lag than the doubling buckets.
            tick_lag: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                5.0, 10.0, 30.0,
            ]),
            leader: Gauge::default(),
            writes_skipped: Family::default(),
            scale_writes: Family::default(),
            admission_reviews: Family::default(),
            admission_duration: seconds_histogram(),
            webhook_cert_expiry: FloatGauge::default(),
            watch_up: Family::default(),
            watch_errors: Family::default(),
            // Outages last from a second (a restart) to minutes.
            watch_outage: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.5, 2.0, 12))
            }),
            stale_cache_reads: Counter::default(),
            registry: Registry::with_prefix("ballast"),
        };
        m.registry.register(
            "decisions",
            "Decisions made, by direction",
            m.decisions.clone(),
        );
        m.registry.register(
            "scaling_events",
            "Replica changes written, per policy and direction",
            m.scaling_events.clone(),
        );
        m.registry.register(
            "current_replicas",
            "Replicas of the target when last read",
            m.current_replicas.clone(),
        );
        m.registry.register(
            "desired_replicas",
            "Replicas decided at the last tick",
            m.desired_replicas.clone(),
        );
        m.registry.register(
            "min_replicas",
            "The policy's minReplicas",
            m.min_replicas.clone(),
        );
        m.registry.register(
            "max_replicas",
            "The policy's maxReplicas",
            m.max_replicas.clone(),
        );
        m.registry.register(
            "node_pool_current_nodes",
            "Nodes in the policy's node pool when last read",
            m.current_nodes.clone(),
        );
        m.registry.register(
            "node_pool_desired_nodes",
            "Nodes decided for the policy's node pool",
            m.desired_nodes.clone(),
        );
        m.registry.register(
            "node_pool_at_max",
            "1 while the policy's node pool is held at maxNodes below what the workload needs (NodePoolAtMax)",
            m.node_pool_at_max.clone(),
        );
        m.registry.register(
            "metric_value",
            "Raw value of a policy metric at its last sample",
            m.metric_raw.clone(),
        );
        m.registry.register(
            "metric_smoothed_value",
            "Smoothed value of a policy metric",
            m.metric_smoothed.clone(),
        );
        m.registry.register(
            "metric_target",
            "Target of a policy metric (per replica for AverageValue)",
            m.metric_target.clone(),
        );
        m.registry.register(
            "metrics_available",
            "1 when every metric of the policy had data at the last tick",
            m.metrics_available.clone(),
        );
        m.registry.register(
            "active_schedules",
            "spec.schedules windows active at the policy's last tick",
            m.active_schedules.clone(),
        );
        m.registry.register(
            "scaling_limited",
            "1 when a bound or rate limit held the last decision",
            m.scaling_limited.clone(),
        );
        m.registry.register(
            "last_evaluation_timestamp_seconds",
            "Unix time of the policy's last evaluation",
            m.last_evaluation.clone(),
        );
        m.registry.register(
            "poll_interval_seconds",
            "The policy's pollInterval (for staleness alerts)",
            m.poll_interval.clone(),
        );
        m.registry.register(
            "query_duration_seconds",
            "Metric query latency by source",
            m.query_duration.clone(),
        );
        m.registry.register(
            "query_errors",
            "Metric query failures by source and category",
            m.query_errors.clone(),
        );
        m.registry.register(
            "circuit_state",
            "Circuit of each metrics source: 0 closed, 1 half-open, 2 open",
            m.circuit_state.clone(),
        );
        m.registry.register(
            "reconcile_duration_seconds",
            "Time to evaluate one policy tick",
            m.reconcile_duration.clone(),
        );
        m.registry.register(
            "reconcile_errors",
            "Failed ticks by category",
            m.reconcile_errors.clone(),
        );
        m.registry.register(
            "tick_lag_seconds",
            "Delay between a policy's scheduled tick and its evaluation",
            m.tick_lag.clone(),
        );
        m.registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            m.leader.clone(),
        );
        m.registry.register(
            "writes_skipped",
            "Writes not made, by reason (not_leader, paused, dry_run)",
            m.writes_skipped.clone(),
        );
        m.registry.register(
            "scale_writes",
            "Replica writes made, by target (workload, node_pool)",
            m.scale_writes.clone(),
        );
        m.registry.register(
            "admission_reviews",
            "Admission reviews answered, by kind and result (allowed, denied, error)",
            m.admission_reviews.clone(),
        );
        m.registry.register(
            "admission_duration_seconds",
            "Time to answer one admission review",
            m.admission_duration.clone(),
        );
        m.registry.register(
            "webhook_certificate_expiry_timestamp_seconds",
            "When the webhook's serving certificate expires (Unix time)",
            m.webhook_cert_expiry.clone(),
        );
        m.registry.register(
            "watch_up",
            "1 while a watch (policies, sources, deployments, statefulsets) is established; 0 while it fails and retries, its cache possibly stale",
            m.watch_up.clone(),
        );
        m.registry.register(
            "watch_errors",
            "Watch failures by watch and category (Connection, Unauthorized, Forbidden, Expired, ApiError)",
            m.watch_errors.clone(),
        );
        m.registry.register(
            "watch_outage_seconds",
            "How long a watch was down, observed when it is back",
            m.watch_outage.clone(),
        );
        m.registry.register(
            "stale_cache_reads",
            "Replica reads where the watch cache had not shown the operator's own last write, so /scale was read directly",
            m.stale_cache_reads.clone(),
        );
        m
    }

    /// Drop every series of a deleted policy.
    pub fn forget_policy(&self, namespace: &str, policy: &str, metrics: &[String]) {
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        for family in [
            &self.current_replicas,
            &self.desired_replicas,
            &self.min_replicas,
            &self.max_replicas,
            &self.current_nodes,
            &self.desired_nodes,
            &self.node_pool_at_max,
            &self.metrics_available,
            &self.active_schedules,
            &self.scaling_limited,
        ] {
            family.remove(&p);
        }
        self.last_evaluation.remove(&p);
        self.poll_interval.remove(&p);
        for metric in metrics {
            let m = MetricLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                metric: metric.clone(),
            };
            self.metric_raw.remove(&m);
            self.metric_smoothed.remove(&m);
            self.metric_target.remove(&m);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Log format of `ballast run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

//! Step 2, **fetch** (client required): the target's replicas, each metric's sample, the node pool's
//! size and (for `nodeAllocatable`) the pod requests. Failures become explicit
//! inputs ("no data" with a reason), never zeros.

use std::time::Instant;

use tracing::debug;

use super::Context;
use super::owners::ReplicasOwner;
use crate::api::CustomScalingPolicy;
use crate::engine::{PodRequests, Sample};
use crate::error::Category;
use crate::metrics::breaker::Admission;
use crate::metrics::registry::{Outcome, SourceHandle};
use crate::metrics::{MissingCause, NoData, Reading};
use crate::scale::ScaleError;
use crate::telemetry::{SourceErrorLabels, SourceLabels};

/// One metric's read.
#[derive(Clone, Debug)]
pub struct MetricRead {
    pub name: String,
    pub sample: Option<Sample>,
    /// Why there is no sample.
    pub missing: Option<Missing>,
    /// The read opened its source's circuit.
    pub opened_circuit: Option<String>,
}

/// Why a metric has no sample, and the message that says so.
#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub cause: MissingCause,
    pub message: String,
}

impl Missing {
    fn new(cause: MissingCause, message: String) -> Option<Self> {
        Some(Self { cause, message })
    }
}

/// Everything read for one tick.
pub struct Fetched {
    pub current_replicas: Result<u32, ScaleError>,
    pub metrics: Vec<MetricRead>,
    pub current_nodes: Option<Result<u32, ScaleError>>,
    pub pod_requests: Option<PodRequests>,
    /// Who owns the target's `spec.replicas` (`None`: not known for its kind).
    pub replicas_owners: Option<Vec<ReplicasOwner>>,
    /// Who owns the node pool's `spec.replicas`: read once Ballast has written the
    /// pool (`status.nodePool.lastScaleTime`), from the caches or a metadata GET;
    /// `None` before that, for a `replicasPath` pool, or when the read failed.
    pub pool_replicas_owners: Option<Vec<ReplicasOwner>>,
}

pub async fn fetch(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    now: i64,
) -> Fetched {
    let spec = &policy.spec;
    // A policy only ever reads and writes objects in its own namespace.
    let current_replicas = ctx.scaler.read(namespace, &spec.target_ref, None).await;
    let mut metrics = Vec::with_capacity(spec.metrics.len());
    for metric in &spec.metrics {
        metrics.push(read_metric(ctx, namespace, metric, now).await);
    }
    let pool_replicas_owners = match &spec.node_pool {
        Some(pool)
            if pool.replicas_path.is_none()
                && policy
                    .status
                    .as_ref()
                    .and_then(|s| s.node_pool.as_ref())
                    .is_some_and(|p| p.last_scale_time.is_some()) =>
        {
            match ctx.scaler.replicas_owners(namespace, &pool.target_ref) {
                Some(owners) => Some(owners),
                None => ctx
                    .scaler
                    .metadata(namespace, &pool.target_ref)
                    .await
                    .ok()
                    .flatten()
                    .map(|meta| super::owners::replicas_owners(&meta)),
            }
        }
        _ => None,
    };
    let (current_nodes, pod_requests) = match &spec.node_pool {
        Some(pool) => {
            let nodes = ctx
                .scaler
                .read(namespace, &pool.target_ref, pool.replicas_path.as_deref())
                .await;
            let requests = if pool.node_allocatable.is_some() {
                ctx.scaler.pod_requests(namespace, &spec.target_ref).await
            } else {
                None
            };
            (Some(nodes), requests)
        }
        None => (None, None),
    };
    Fetched {
        pool_replicas_owners,
        replicas_owners: ctx.scaler.replicas_owners(namespace, &spec.target_ref),
        current_replicas,
        metrics,
        current_nodes,
        pod_requests,
    }
}

async fn read_metric(
    ctx: &Context,
    namespace: &str,
    metric: &crate::api::MetricSpec,
    now: i64,
) -> MetricRead {
    let mut read = MetricRead {
        name: metric.name.clone(),
        sample: None,
        missing: None,
        opened_circuit: None,
    };
    let source = match ctx
        .sources
        .resolve(metric.source.as_deref(), namespace)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            read.missing = Missing::new(e.cause(), e.to_string());
            return read;
        }
    };
    let labels = SourceLabels {
        source: source.name.clone(),
    };
    let started = Instant::now();
    let outcome = source.query(&metric.query, now).await;
    ctx.metrics
        .circuit_state
        .get_or_create(&labels)
        .set(match source.circuit() {
            crate::metrics::breaker::CircuitState::Closed => 0,
            crate::metrics::breaker::CircuitState::HalfOpen => 1,
            crate::metrics::breaker::CircuitState::Open => 2,
        });
    match outcome {
        Outcome::Reading(Reading::Value { value, time }) => {
            ctx.metrics
                .query_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            read.sample = Some(Sample { value, time });
        }
        Outcome::Reading(Reading::NoData(why)) => {
            ctx.metrics
                .query_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            read.missing = Missing::new(
                MissingCause::NoData,
                format!("metric {:?}: {}", metric.name, why.as_str()),
            );
            if why == NoData::NotFinite {
                debug!(metric = %metric.name, "not a finite number");
            }
        }
        Outcome::Failed {
            error,
            opened_circuit,
        } => {
            ctx.metrics
                .query_errors
                .get_or_create(&SourceErrorLabels {
                    source: source.name.clone(),
                    category: error.category().to_string(),
                })
                .inc();
            read.missing = Missing::new(
                MissingCause::QueryFailed,
                format!("metric {:?}: {error}", metric.name),
            );
            if opened_circuit {
                read.opened_circuit = Some(source.name.clone());
            }
        }
        Outcome::Skipped(Admission::CircuitOpen) => {
            read.missing = Missing::new(
                MissingCause::CircuitOpen,
                format!(
                    "metric {:?}: the circuit of source {:?} ({}) is open; not querying it for now{}",
                    metric.name,
                    source.name,
                    source.address(),
                    last_error(&source)
                ),
            );
        }
        Outcome::Skipped(Admission::BackingOff { until }) => {
            read.missing = Missing::new(
                MissingCause::BackingOff,
                format!(
                    "metric {:?}: source {:?} failed recently; next query in {} ms{}",
                    metric.name,
                    source.name,
                    (until - now).max(0),
                    last_error(&source)
                ),
            );
        }
        Outcome::Skipped(Admission::Allowed) => {
            read.missing = Missing::new(
                MissingCause::NoData,
                format!("metric {:?}: not queried", metric.name),
            );
        }
    }
    read
}

/// "; last error: ..." from the source's last failed query, for the messages of
/// queries held back by its backoff or circuit (so the condition still says why).
fn last_error(source: &SourceHandle) -> String {
    source
        .last_error()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

//! The operator: a kube-runtime `Controller` for `CustomScalingPolicy`. Every
//! replica watches and computes; only the lease holder writes. This file is the
//! map: [`reconcile`] asks the state machine whether a tick is due and runs it;
//! everything else is one hop away.
//!
//! - [`run`](mod@run): what `ballast run` starts and how it stops.
//! - [`leadership`]: the Lease, its read-back, and the epoch of each change.
//! - [`watches`]: the reflectors (each with its own backoff), the caches a tick
//!   reads, the sync gate, and which watch events wake which policy.
//! - [`state`]: per-policy memory as a synchronous state machine (schedule on a
//!   jittered grid, validation once per generation, whose history to trust, a
//!   pending status, the error backoff), tested in memory.
//! - [`tick`]: one tick as named steps, each its own module:
//!   [`validate`] → [`fetch`] → decide (`engine::decide`) → [`apply`] →
//!   [`report`] → [`publish`]. The steps marked "no client" are pure.
//!
//! Each policy ticks on its own grid (`pollInterval` ± deterministic jitter), not
//! on every watch event: an event re-queues the policy for its next tick, and
//! ticks at once only when the spec changed (`metadata.generation`) or the
//! target's replicas changed out of band.

pub mod apply;
pub mod fetch;
pub mod leadership;
pub mod owners;
pub mod publish;
pub mod report;
pub mod run;
pub mod state;
pub mod tick;
pub mod validate;
pub mod watches;

pub use run::{run, termination, wait_for_crds};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span, warn};

use crate::api::CustomScalingPolicy;
use crate::error::Category;
use crate::metrics::registry::{Registry, SourceDefaults};
use crate::scale::{ReplicaCache, Scaler};
use crate::telemetry::{CategoryLabels, Metrics};
use state::{Due, Facts, Policies, key};

/// Operator settings (from `ballast run`'s flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Policies evaluated at the same time, at most.
    pub concurrency: u16,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    /// Namespace of the leader Lease.
    pub lease_namespace: String,
    /// Watch policies and their targets in this namespace only (`None`: all).
    pub watch_namespace: Option<String>,
    pub lease_duration: Duration,
    pub lease_grace: Duration,
    /// Default metrics source (used by metrics without `source`).
    pub prometheus_url: Option<String>,
    pub sources: SourceDefaults,
    /// How long to wait at start for the CRDs to be established.
    pub crd_wait: Duration,
}

/// Errors that fail a tick (everything else becomes a condition).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Publish(#[from] publish::Error),
    #[error("policy {0} is not namespaced")]
    NotNamespaced(String),
}

impl Category for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Publish(e) => e.category(),
            Error::NotNamespaced(_) => "InvalidObject",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub scaler: Scaler,
    pub sources: Registry,
    pub metrics: Arc<Metrics>,
    /// This replica's identity (Lease holder, Events' reportingInstance).
    pub identity: String,
    pub leader: watch::Receiver<bool>,
    /// Until when (Unix ms) the Lease, as last read back, is ours. The lease
    /// manager only reports changes it sees; if renewals fail it keeps saying
    /// "leader", so writes also require this deadline (see `watch_lease`).
    lease_valid_until: AtomicI64,
    /// Every policy's schedule and memory (see [`state`]): one method call per lock.
    state: Mutex<Policies>,
    /// Every cache a tick reads has its initial list: no tick before.
    synced: AtomicBool,
    /// The leader Lease has been read once (so `is_leader` means something).
    lease_read: AtomicBool,
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Context {
    pub fn new(
        client: Client,
        sources: Registry,
        metrics: Arc<Metrics>,
        identity: String,
        leader: watch::Receiver<bool>,
        replicas: ReplicaCache,
    ) -> Self {
        Self {
            scaler: Scaler::with_cache(client.clone(), replicas, metrics.stale_cache_reads.clone()),
            client,
            sources,
            metrics,
            identity,
            leader,
            lease_valid_until: AtomicI64::new(0),
            state: Mutex::new(Policies::new()),
            synced: AtomicBool::new(false),
            lease_read: AtomicBool::new(false),
        }
    }

    /// Leader, and the Lease read back from the API server says so and has not
    /// expired by our clock. Checked before every write.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow() && now_ms() < self.lease_valid_until.load(Ordering::Relaxed)
    }

    /// The policies' state machine. A panic while it was held cannot leave it
    /// half-changed (every method is one step), so a poisoned lock is used as is.
    fn policies(&self) -> MutexGuard<'_, Policies> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The replicas this replica is about to write to a policy's target.
    pub fn expect_replicas(&self, namespace: &str, name: &str, replicas: u32) {
        self.policies()
            .expect_replicas(&key(namespace, name), replicas);
    }

    /// Mark the policies targeting `kind/name` in `namespace` for an immediate tick
    /// when the target's replicas differ from what they last saw.
    fn target_changed(
        &self,
        namespace: &str,
        name: &str,
        replicas: Option<i32>,
        policies: &[ObjectRef<DeserializeGuard<CustomScalingPolicy>>],
    ) {
        let mut state = self.policies();
        for policy in policies {
            if state.target_changed(&key(namespace, &policy.name), replicas) {
                debug!(target = %name, "target replicas changed out of band");
            }
        }
    }
}

/// Reconcile entry: decide whether a tick is due, and run it.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<CustomScalingPolicy>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let policy = match &guard.0 {
        Ok(p) => p,
        Err(invalid) => {
            // A malformed object must not stall the others: log and wait for a change.
            warn!(
                namespace = invalid.metadata.namespace.as_deref().unwrap_or(""),
                name = invalid.metadata.name.as_deref().unwrap_or(""),
                error = %invalid.error,
                "policy cannot be decoded; waiting for it to change"
            );
            return Ok(Action::await_change());
        }
    };
    if !ctx.synced.load(Ordering::Relaxed) {
        // Not even scheduled yet: the first tick is at the sync, which reconciles
        // every policy (`reconcile_all_on` in `run`).
        return Ok(Action::await_change());
    }
    let namespace = policy
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(policy.name_any()))?;
    let name = policy.name_any();
    let k = key(&namespace, &name);
    let now = jiff::Timestamp::now();
    let due = ctx
        .policies()
        .due(&k, Facts::of(policy), now.as_millisecond());
    let late_by = match due {
        Due::Wait(d) => {
            publish::retry_pending_status(&ctx, policy, &k).await?;
            return Ok(Action::requeue(d));
        }
        Due::Never => return Ok(Action::await_change()),
        Due::Now { late_by_ms } => late_by_ms,
    };
    ctx.metrics.tick_lag.observe(late_by.max(0) as f64 / 1000.0);
    let span = info_span!("tick", namespace = %namespace, name = %name);
    let started = std::time::Instant::now();
    let result = tick::tick(&ctx, policy, &namespace, &k, now)
        .instrument(span)
        .await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(Some(wait)) => Ok(Action::requeue(wait)),
        Ok(None) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

/// A failed tick backs off exponentially with jitter, capped at the poll interval.
pub fn error_policy(
    guard: Arc<DeserializeGuard<CustomScalingPolicy>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&CategoryLabels {
            category: error.category().into(),
        })
        .inc();
    let (namespace, name) = (guard.namespace().unwrap_or_default(), guard.name_any());
    warn!(%namespace, %name, error = %error, "tick failed");
    let k = key(&namespace, &name);
    let interval = guard
        .0
        .as_ref()
        .map_or(15_000, |p| p.spec.poll_interval.as_millis().max(1000));
    Action::requeue(ctx.policies().failed(&k, interval))
}

#[cfg(test)]
mod reconcile_tests;

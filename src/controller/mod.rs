//! The operator: a kube-runtime `Controller` for `CustomScalingPolicy`. Every
//! replica watches and computes; only the lease holder writes.
//!
//! Each policy is evaluated on its own jittered tick (`pollInterval` ± the engine's
//! deterministic jitter), not on every watch event: an event re-queues the policy
//! for its next tick, and triggers an immediate tick only when the spec changed
//! (`metadata.generation`) or the target's replicas changed out of band.
//!
//! One tick is a named pipeline:
//! 1. **fetch** ([`fetch`]): the target's `/scale`, every metric's sample, the node pool;
//! 2. **decide** (`engine::decide`, pure);
//! 3. **apply** ([`apply`]): writes, only on change, only as leader, ordered nodes-first;
//! 4. **report** ([`report`]): status by server-side apply, Events, metrics.

pub mod apply;
pub mod fetch;
pub mod publish;
pub mod report;
pub mod state;
pub mod tick;
pub mod validate;
pub mod watches;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, DefaultBackoff};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::api::{ClusterMetricsSource, CustomScalingPolicy};
use crate::metrics::registry::{Registry, SourceDefaults};
use crate::scale::{ReplicaCache, Scaler};
use crate::telemetry::{CategoryLabels, Metrics};
use state::{Due, Facts, Policies, key};
use watches::WatchHealth;

/// Operator settings (from `ballast run`'s flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Policies evaluated at the same time, at most.
    pub concurrency: u16,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    /// Namespace of the leader Lease.
    pub lease_namespace: String,
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

impl Error {
    pub fn category(&self) -> &'static str {
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

/// How often a policy seen before the caches synced asks again.
const UNSYNCED_RETRY: Duration = Duration::from_millis(200);

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
        // Not even scheduled yet: the first tick is at the sync, not before it.
        return Ok(Action::requeue(UNSYNCED_RETRY));
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

/// Wait until both CRDs are established, logging while waiting.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names = [
        format!(
            "{}.{}",
            CustomScalingPolicy::plural(&()),
            CustomScalingPolicy::group(&())
        ),
        format!(
            "{}.{}",
            ClusterMetricsSource::plural(&()),
            ClusterMetricsSource::group(&())
        ),
    ];
    let deadline = tokio::time::Instant::now() + timeout;
    for name in &names {
        loop {
            let established = match api.get_opt(name).await {
                Ok(Some(crd)) => crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"),
                Ok(None) => false,
                Err(e) => {
                    warn!(crd = %name, error = %e, "reading the CRD failed");
                    false
                }
            };
            if established {
                info!(crd = %name, "CRD established");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "CRD {name} is not established after {}s: install the CRDs first (kubectl apply -f crds/)",
                    timeout.as_secs()
                );
            }
            info!(crd = %name, "waiting for the CRD to be established");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}

/// Read the Lease back every sixth of its duration and extend
/// `lease_valid_until` while it names us: renew time + duration (less 250 ms), by
/// the holder's own clock (the holder writes renew times, so there is no skew). When
/// reads fail or another replica holds it, the deadline is not extended and writes
/// stop by themselves once it passes.
async fn watch_lease(
    ctx: Arc<Context>,
    mut leadership: watch::Receiver<bool>,
    namespace: String,
    duration: Duration,
) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let every = (duration / 6).max(Duration::from_millis(500));
    loop {
        let read = match api.get_opt(crate::api::conditions::LEASE_NAME).await {
            Ok(Some(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                let ours = spec.holder_identity.as_deref() == Some(ctx.identity.as_str());
                let renewed = spec.renew_time.map(|t| t.0.as_millisecond());
                let seconds = spec.lease_duration_seconds.map(i64::from).unwrap_or(0);
                match (ours, renewed) {
                    (true, Some(renewed)) => {
                        // The holder renews `grace` before expiry; until the next
                        // read sees that renewal, the lease is still ours until
                        // renewTime + duration (less a small margin).
                        let until = renewed + seconds * 1000 - 250;
                        ctx.lease_valid_until.store(until, Ordering::Relaxed);
                    }
                    _ => ctx.lease_valid_until.store(0, Ordering::Relaxed),
                }
                true
            }
            Ok(None) => {
                ctx.lease_valid_until.store(0, Ordering::Relaxed);
                true
            }
            Err(e) => {
                if ctx.lease_read.load(Ordering::Relaxed) {
                    debug!(error = %e, "reading the leader lease");
                } else {
                    warn!(error = %e, "reading the leader lease failed; not ready until it can be read");
                }
                false
            }
        };
        if read {
            ctx.lease_read.store(true, Ordering::Relaxed);
        }
        // Read again on schedule, or at once when the lease manager reports a change.
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

/// Policies in `store` whose target is `kind/name` in `namespace`.
fn policies_targeting(
    store: &Store<DeserializeGuard<CustomScalingPolicy>>,
    api_group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<DeserializeGuard<CustomScalingPolicy>>> {
    store
        .state()
        .iter()
        .filter_map(|g| {
            let p = g.0.as_ref().ok()?;
            let t = &p.spec.target_ref;
            let group = t.api_version.split_once('/').map_or("", |(g, _)| g);
            (p.namespace().as_deref() == Some(namespace)
                && t.kind == kind
                && t.name == name
                && group == api_group)
                .then(|| ObjectRef::from_obj(g.as_ref()))
        })
        .collect()
}

/// Maps a watched `apps/v1` target to the policies that scale it, marking them for
/// an immediate tick when its replicas changed out of band.
fn target_mapper<K: Resource + ResourceExt>(
    store: Store<DeserializeGuard<CustomScalingPolicy>>,
    ctx: Arc<Context>,
    kind: &'static str,
    replicas: fn(&K) -> Option<i32>,
) -> impl Fn(K) -> Vec<ObjectRef<DeserializeGuard<CustomScalingPolicy>>> {
    move |object: K| {
        let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
        let refs = policies_targeting(&store, "apps", kind, &namespace, &name);
        ctx.target_changed(&namespace, &name, replicas(&object), &refs);
        refs
    }
}

/// [`watches::reflect`] over every `K` in the cluster, with the default backoff.
fn reflect_all<K>(
    client: &Client,
    metrics: &Arc<Metrics>,
    name: &'static str,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watches::reflect(
        Api::<K>::all(client.clone()),
        trim,
        DefaultBackoff::default(),
        WatchHealth::new(name, metrics.clone()),
    )
}

/// The stores a tick reads, waited on together before the first tick.
struct SyncedCaches {
    policies: Store<DeserializeGuard<CustomScalingPolicy>>,
    sources: Store<ClusterMetricsSource>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

impl SyncedCaches {
    async fn wait(&self, ctx: &Context) {
        // Re-poll: kube's readiness future keeps only the last waiter's waker, and
        // the controller waits on the same store, so a single await can sleep forever.
        async fn ready<K>(name: &str, store: &Store<K>)
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            let mut waits = 0u32;
            while tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready())
                .await
                .is_err()
            {
                waits += 1;
                if waits.is_multiple_of(20) {
                    info!(
                        cache = name,
                        waited_seconds = waits / 2,
                        "waiting for the cache's initial list; no policy is evaluated before"
                    );
                }
            }
            debug!(cache = name, "synced");
        }
        ready("policies", &self.policies).await;
        ready("sources", &self.sources).await;
        ready("deployments", &self.deployments).await;
        ready("statefulsets", &self.statefulsets).await;
        let mut waits = 0u32;
        while !ctx.lease_read.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waits += 1;
            if waits.is_multiple_of(100) {
                info!(
                    waited_seconds = waits / 10,
                    "waiting to read the leader Lease; no policy is evaluated before"
                );
            }
        }
        debug!("leader lease read");
    }
}

/// Everything `ballast run` starts, wired together. Returns when shut down.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<crate::telemetry::server::Health>,
) -> anyhow::Result<()> {
    wait_for_crds(&client, config.crd_wait).await?;

    // Leader election: every replica computes; only the holder writes.
    let lease = kube_lease_manager::LeaseManagerBuilder::new(
        client.clone(),
        crate::api::conditions::LEASE_NAME,
    )
    .with_namespace(&config.lease_namespace)
    .with_identity(&config.identity)
    .with_duration(config.lease_duration.as_secs().max(2))
    .with_grace(config.lease_grace.as_secs().max(1))
    .build()
    .await
    .map_err(|e| anyhow::anyhow!("creating the leader lease manager: {e}"))?;
    let (leader_rx, lease_task) = lease.watch().await;

    // Metrics sources: a reflector over ClusterMetricsSources feeds the registry.
    let (source_store, source_stream) = watches::reflect(
        Api::<ClusterMetricsSource>::all(client.clone()),
        |s: &mut ClusterMetricsSource| s.metadata.managed_fields = None,
        DefaultBackoff::default(),
        WatchHealth::new("sources", metrics.clone()),
    );
    tokio::spawn(source_stream.for_each(|_| future::ready(())));
    let sources = Registry::new(
        client.clone(),
        source_store.clone(),
        config.sources.clone(),
        config.prometheus_url.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("--prometheus-url: {e}"))?;

    // Targets' replicas come from these watch caches (the same watches that catch
    // out-of-band changes), not a /scale GET per tick. Only what a tick reads is
    // kept: pod templates, status and managed fields are dropped to save memory.
    let (deployment_store, deployments) =
        reflect_all(&client, &metrics, "deployments", |d: &mut Deployment| {
            d.managed_fields_mut().clear();
            d.annotations_mut().clear();
            d.status = None;
            if let Some(spec) = d.spec.as_mut() {
                spec.template = Default::default();
            }
        });
    let (statefulset_store, statefulsets) =
        reflect_all(&client, &metrics, "statefulsets", |s: &mut StatefulSet| {
            s.managed_fields_mut().clear();
            s.annotations_mut().clear();
            s.status = None;
            if let Some(spec) = s.spec.as_mut() {
                spec.template = Default::default();
                spec.volume_claim_templates = None;
            }
        });
    let ctx = Arc::new(Context::new(
        client.clone(),
        sources,
        metrics.clone(),
        config.identity.clone(),
        leader_rx.clone(),
        ReplicaCache {
            deployments: Some(deployment_store.clone()),
            statefulsets: Some(statefulset_store.clone()),
        },
    ));

    // Tasks that hold a leadership receiver or the context: stopped before the lease
    // is released, or the lease task would never see its channel close.
    let mut helpers = Vec::new();
    {
        let mut rx = leader_rx.clone();
        let (metrics, ctx) = (metrics.clone(), ctx.clone());
        let identity = config.identity.clone();
        helpers.push(tokio::spawn(async move {
            loop {
                let is_leader = *rx.borrow_and_update();
                ctx.policies().leadership(is_leader);
                metrics.leader.set(i64::from(is_leader));
                info!(identity = %identity, leader = is_leader, "leadership");
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
    }
    helpers.push(tokio::spawn(watch_lease(
        ctx.clone(),
        leader_rx.clone(),
        config.lease_namespace.clone(),
        config.lease_duration,
    )));

    // The policy cache without managedFields (a third of a policy's size once
    // kubectl and our status writes have both touched it): memory grows with N.
    let (policy_store, policy_stream) = reflect_all(
        &client,
        &metrics,
        "policies",
        |g: &mut DeserializeGuard<CustomScalingPolicy>| {
            if let Ok(p) = g.0.as_mut() {
                p.metadata.managed_fields = None;
            }
        },
    );
    let controller = Controller::for_stream(policy_stream, policy_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency));
    let store = controller.store();
    let controller = controller
        .watches_stream(
            deployments,
            target_mapper(
                store.clone(),
                ctx.clone(),
                "Deployment",
                |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas),
            ),
        )
        .watches_stream(
            statefulsets,
            target_mapper(
                store.clone(),
                ctx.clone(),
                "StatefulSet",
                |s: &StatefulSet| s.spec.as_ref().and_then(|s| s.replicas),
            ),
        );

    // No tick before every cache has its initial list and the Lease has been read
    // once: a first tick on empty caches reports sources that exist as missing and
    // targets as unknown. `/readyz` says ready at the same moment.
    {
        let caches = SyncedCaches {
            policies: store.clone(),
            sources: source_store.clone(),
            deployments: deployment_store.clone(),
            statefulsets: statefulset_store.clone(),
        };
        let (ctx, health) = (ctx.clone(), health.clone());
        tokio::spawn(async move {
            caches.wait(&ctx).await;
            ctx.synced.store(true, Ordering::Relaxed);
            health.ready.store(true, Ordering::Relaxed);
            info!("caches synced; ready");
        });
    }
    // Forget deleted policies (state and metric series) once a minute.
    {
        let (store, ctx) = (store.clone(), ctx.clone());
        helpers.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let live: std::collections::HashSet<String> = store
                    .state()
                    .iter()
                    .map(|g| key(&g.namespace().unwrap_or_default(), &g.name_any()))
                    .collect();
                let gone = ctx.policies().forget_all_but(&live);
                for (k, names) in gone {
                    if let Some((ns, name)) = k.split_once('/') {
                        ctx.metrics.forget_policy(ns, name, &names);
                    }
                }
            }
        }));
    }

    let shutdown = termination();

    // If the lease task dies, exit: a live process that cannot lead is worse than a restart.
    let lease_died = {
        let health = health.clone();
        async move {
            let outcome = lease_task.await;
            health
                .failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            outcome
        }
    };
    tokio::pin!(lease_died);

    let controller_run = controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "reconcile");
            }
        });
    tokio::select! {
        _ = controller_run => {
            info!("controller stopped");
        }
        outcome = &mut lease_died => {
            anyhow::bail!("the leader lease task ended ({:?}); exiting so that the process is restarted", outcome.map(|r| r.map(|_| ()).map_err(|e| e.to_string())));
        }
    }
    // Release the lease: stop every holder of a receiver, then wait for the task.
    for helper in &helpers {
        helper.abort();
    }
    for helper in helpers {
        let _ = helper.await;
    }
    drop(ctx);
    drop(leader_rx);
    match tokio::time::timeout(Duration::from_secs(5), &mut lease_died).await {
        Ok(Ok(Ok(_))) => info!("lease released"),
        Ok(other) => {
            warn!(outcome = ?other.map(|r| r.map(|_| ()).map_err(|e| e.to_string())), "lease task ended")
        }
        Err(_) => warn!("lease not released within 5s"),
    }
    Ok(())
}

/// Resolves at SIGTERM or Ctrl-C.
pub async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupt: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector;

    fn policy() -> CustomScalingPolicy {
        serde_yaml::from_str(
            r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: p, namespace: ns, uid: u-1, generation: 1}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
  metrics:
    - name: m
      query: up
      target: {type: AverageValue, averageValue: "100"}
"#,
        )
        .expect("policy")
    }

    fn context(client: Client) -> Arc<Context> {
        let (sources, _) = reflector::store::<ClusterMetricsSource>();
        let registry = Registry::new(client.clone(), sources, SourceDefaults::default(), None)
            .expect("registry");
        let (_, leader) = watch::channel(false);
        Arc::new(Context::new(
            client,
            registry,
            Arc::new(Metrics::new()),
            "test".into(),
            leader,
            ReplicaCache::default(),
        ))
    }

    /// `make demo` showed `SourceNotFound` for a source created before the
    /// operator started: the first tick ran on an empty source cache.
    #[tokio::test]
    async fn no_policy_is_evaluated_before_the_caches_have_synced() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let guard = Arc::new(DeserializeGuard(Ok(policy())));

        let action = reconcile(guard.clone(), ctx.clone())
            .await
            .expect("reconcile");
        assert_eq!(action, Action::requeue(UNSYNCED_RETRY));
        assert!(
            ctx.policies().is_empty(),
            "not even scheduled: the first tick is due at the sync"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), handle.next_request())
                .await
                .is_err(),
            "nothing asked of the API server"
        );

        // Once synced, the same reconcile ticks (and reads the target).
        ctx.synced.store(true, Ordering::Relaxed);
        let tick = tokio::spawn(reconcile(guard, ctx.clone()));
        let (request, _respond) =
            tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                .await
                .expect("a request once synced")
                .expect("a request");
        assert_eq!(
            request.uri().path(),
            "/apis/apps/v1",
            "discovery of the target's kind"
        );
        assert!(ctx.policies().contains("ns/p"));
        tick.abort();
    }
}

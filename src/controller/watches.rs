//! The operator's watches: one reflector per kind (policies, sources, Deployments,
//! StatefulSets), each with its own backoff and re-list, its outages logged and
//! measured, and its errors kept from the controller.
//!
//! Why errors stop here: kube's `Controller` merges every trigger stream and backs
//! off the merged stream on any error, so one failing watch would freeze all the
//! others, and with them the caches a tick reads its replicas from. After an API
//! server restart (connection refused, then `403` until the new server has loaded
//! RBAC, then `410 Expired` for a resource version it no longer has) that froze the
//! Deployment cache for a minute while the operator kept deciding from it. Each
//! watch now recovers by itself: `watcher` re-lists after `410`, and its own
//! backoff (client-go's: 0.8 s doubling to 30 s, reset by any event) spaces retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, watcher};
use kube::{Client, Resource, ResourceExt};
use std::sync::atomic::Ordering;
use tracing::{debug, info, warn};

use super::Context;
use crate::api::{ClusterMetricsSource, CustomScalingPolicy};
use crate::error::Category;

use crate::telemetry::{Metrics, WatchErrorLabels, WatchLabels};

/// A watch that failed is back once it delivers an event, or once it has had no
/// error for longer than its backoff's cap (30 s): a watch resumed from its
/// resource version sends nothing until something changes.
const QUIET: Duration = Duration::from_secs(45);

/// Up/down bookkeeping of one watch: a log line and metrics when it goes down and
/// when it is back, with how long it was down.
pub struct WatchHealth {
    name: &'static str,
    metrics: Arc<Metrics>,
    state: Mutex<Outage>,
}

/// While down: since when, and the last error.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    last_error: Option<Instant>,
}

impl WatchHealth {
    pub fn new(name: &'static str, metrics: Arc<Metrics>) -> Self {
        metrics
            .watch_up
            .get_or_create(&WatchLabels { watch: name.into() })
            .set(1);
        Self {
            name,
            metrics,
            state: Mutex::new(Outage::default()),
        }
    }

    /// Whether the watch is down now.
    pub fn is_down(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.since.is_some())
            .unwrap_or(false)
    }

    fn back(&self, outage: &mut Outage, until: Instant, how: &str) {
        let Some(since) = outage.since.take() else {
            return;
        };
        outage.last_error = None;
        let seconds = until.saturating_duration_since(since).as_secs_f64();
        let labels = WatchLabels {
            watch: self.name.into(),
        };
        self.metrics.watch_up.get_or_create(&labels).set(1);
        self.metrics
            .watch_outage
            .get_or_create(&labels)
            .observe(seconds);
        info!(
            watch = self.name,
            down_for_seconds = seconds,
            how,
            "watch back"
        );
    }

    /// Call now and then: a watch with no error for [`QUIET`] is back (its outage
    /// ended at its last error).
    pub fn settle(&self) {
        let Ok(mut outage) = self.state.lock() else {
            return;
        };
        if let Some(last) = outage.last_error
            && last.elapsed() >= QUIET
        {
            self.back(&mut outage, last, "no error since");
        }
    }

    /// Note one item of the watch stream.
    pub fn observe<T>(&self, item: &Result<T, watcher::Error>) {
        let Ok(mut outage) = self.state.lock() else {
            return;
        };
        let labels = WatchLabels {
            watch: self.name.into(),
        };
        match item {
            Err(error) => {
                let category = error.category();
                self.metrics
                    .watch_errors
                    .get_or_create(&WatchErrorLabels {
                        watch: self.name.into(),
                        category: category.into(),
                    })
                    .inc();
                let now = Instant::now();
                outage.last_error = Some(now);
                match outage.since {
                    None => {
                        outage.since = Some(now);
                        self.metrics.watch_up.get_or_create(&labels).set(0);
                        warn!(watch = self.name, category, error = %error, "watch down; retrying with backoff (the cache it feeds may be stale)");
                    }
                    Some(since) => {
                        warn!(watch = self.name, category, error = %error, down_for_seconds = since.elapsed().as_secs_f64(), "watch still down");
                    }
                }
            }
            Ok(_) => self.back(&mut outage, Instant::now(), "an event"),
        }
    }
}

/// A short, bounded label for a watch error.
impl Category for watcher::Error {
    fn category(&self) -> &'static str {
        let code = match self {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => match e {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
            watcher::Error::WatchError(status) => Some(status.code),
            watcher::Error::NoResourceVersion => return "NoResourceVersion",
        };
        match code {
            Some(401) => "Unauthorized",
            Some(403) => "Forbidden",
            Some(410) => "Expired",
            Some(_) => "ApiError",
            None => "Connection",
        }
    }
}

/// What a watched kind must be: a cluster-known resource that can be decoded,
/// cloned into a store and sent between tasks.
pub trait Watched:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A watch of every `K` the `api` sees, into a store. Each object is cut down by
/// `trim` first (the caches keep only what a tick reads; memory grows with the
/// number of policies). Returns the store and the stream of applied objects that
/// triggers the controller; the stream must be polled for the store to move. Errors
/// are backed off with `backoff`, recorded in `health`, and never reach the stream.
pub fn reflect<K>(
    api: Api<K>,
    trim: fn(&mut K),
    backoff: impl Backoff + 'static,
    health: WatchHealth,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let (store, writer) = reflector::store::<K>();
    let health = Arc::new(health);
    let settling = Arc::downgrade(&health);
    tokio::spawn(async move {
        // Until the stream (and with it the last strong reference) is dropped.
        while let Some(health) = settling.upgrade() {
            health.settle();
            drop(health);
            tokio::time::sleep(QUIET / 3).await;
        }
    });
    let events = watcher(api, watcher::Config::default())
        .backoff(backoff)
        .modify(trim);
    let stream = reflector::reflector(writer, events)
        .inspect(move |item| health.observe(item))
        .applied_objects()
        .filter_map(|item| future::ready(item.ok().map(Ok)));
    (store, stream)
}

/// Policies in `store` whose target is `kind/name` in `namespace`.
pub fn policies_targeting(
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
            // Borrowed, not `namespace()`: this runs for every policy on every
            // target event (a relist of N targets is N x N of these).
            (p.metadata.namespace.as_deref() == Some(namespace)
                && t.kind == kind
                && t.name == name
                && group == api_group)
                .then(|| ObjectRef::from_obj(g.as_ref()))
        })
        .collect()
}

/// Maps a watched `apps/v1` target to the policies that scale it, marking them for
/// an immediate tick when its replicas changed out of band.
pub fn target_mapper<K: Resource + ResourceExt>(
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

/// The `K`s the operator watches: every namespace, or only `namespace` (`ballast
/// run --watch-namespace`).
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// [`reflect`] over the `K`s in scope (see [`scoped`]), with the default backoff.
pub fn reflect_all<K>(
    client: &Client,
    namespace: Option<&str>,
    metrics: &Arc<Metrics>,
    name: &'static str,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    reflect(
        scoped::<K>(client, namespace),
        trim,
        DefaultBackoff::default(),
        WatchHealth::new(name, metrics.clone()),
    )
}

/// The stores a tick reads, waited on together before the first tick.
pub struct SyncedCaches {
    pub policies: Store<DeserializeGuard<CustomScalingPolicy>>,
    pub sources: Store<ClusterMetricsSource>,
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
}

impl SyncedCaches {
    pub async fn wait(&self, ctx: &Context) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::client::Body;
    use kube::runtime::reflector::ObjectRef;
    use kube::runtime::watcher::DefaultBackoff;
    use serde_json::json;

    fn deployment(replicas: i32, rv: u32) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cache", "namespace": "shop", "resourceVersion": rv.to_string()},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}
        })
    }

    fn list(replicas: i32, rv: u32) -> Response<Body> {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "DeploymentList",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": [deployment(replicas, rv)]
        });
        Response::new(Body::from(serde_json::to_vec(&body).unwrap()))
    }

    /// `--watch-namespace` narrows every namespaced watch to that namespace.
    #[tokio::test]
    async fn a_watch_namespace_scopes_the_watches() {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let one = scoped::<Deployment>(&client, Some("team-a"));
        assert_eq!(
            one.resource_url(),
            "/apis/apps/v1/namespaces/team-a/deployments"
        );
        let all = scoped::<Deployment>(&client, None);
        assert_eq!(all.resource_url(), "/apis/apps/v1/deployments");
    }

    fn watch_events(events: &[serde_json::Value]) -> Response<Body> {
        let mut body = Vec::new();
        for e in events {
            body.extend(serde_json::to_vec(e).unwrap());
            body.push(b'\n');
        }
        Response::new(Body::from(body))
    }

    fn status(code: u16, reason: &str) -> serde_json::Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": reason, "reason": reason, "code": code})
    }

    fn is_watch(request: &Request<Body>) -> bool {
        request
            .uri()
            .query()
            .is_some_and(|q| q.contains("watch=true"))
    }

    fn replicas_in(store: &Store<Deployment>) -> Option<i32> {
        store
            .get(&ObjectRef::new("cache").within("shop"))
            .and_then(|d| d.spec.as_ref().and_then(|s| s.replicas))
    }

    /// The sequence an API server restart produced on the harness: a watch that
    /// ends, connection refused, `403` while the new server loads RBAC, events,
    /// then `410 Expired` and a re-list. The store must end at the re-listed value,
    /// the consumer must see no error, and the outage must be measured.
    #[tokio::test(start_paused = true)]
    async fn a_watch_recovers_from_an_api_server_restart_and_the_cache_converges() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let metrics = Arc::new(Metrics::new());
        let (store, stream) = reflect(
            Api::<Deployment>::all(client),
            |_| {},
            DefaultBackoff::default(),
            WatchHealth::new("deployments", metrics.clone()),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let consumer = {
            let seen = seen.clone();
            tokio::spawn(stream.for_each(move |item| {
                let item = item.map(|d| d.spec.and_then(|s| s.replicas));
                seen.lock().unwrap().push(item.map_err(|e| e.to_string()));
                future::ready(())
            }))
        };

        let mut next = async || {
            let (request, respond) = handle.next_request().await.expect("a request");
            (is_watch(&request), respond)
        };
        // The initial list, then a watch that delivers one event and ends (the
        // API server went away).
        let (watch, respond) = next().await;
        assert!(!watch, "the first request lists");
        respond.send_response(list(3, 10));
        let (watch, respond) = next().await;
        assert!(watch);
        respond.send_response(watch_events(&[
            json!({"type": "MODIFIED", "object": deployment(3, 11)}),
        ]));
        // Connection refused, then 403 (RBAC not loaded yet).
        let (watch, respond) = next().await;
        assert!(watch);
        respond.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let (watch, respond) = next().await;
        assert!(watch);
        let mut forbidden = Response::new(Body::from(
            serde_json::to_vec(&status(403, "Forbidden")).unwrap(),
        ));
        *forbidden.status_mut() = http::StatusCode::FORBIDDEN;
        respond.send_response(forbidden);
        // Back: our write (5) arrives, then the resource version has expired.
        let (watch, respond) = next().await;
        assert!(watch);
        respond.send_response(watch_events(&[
            json!({"type": "MODIFIED", "object": deployment(5, 20)}),
            json!({"type": "ERROR", "object": status(410, "Expired")}),
        ]));
        // A re-list, which holds the newest value; then a watch that stays open.
        let (watch, respond) = next().await;
        assert!(
            !watch,
            "410 Expired must lead to a re-list, not a watch from the old version"
        );
        respond.send_response(list(8, 30));
        let (watch, _open) = next().await;
        assert!(watch);

        assert_eq!(replicas_in(&store), Some(8), "the cache converged");
        assert_eq!(
            *seen.lock().unwrap(),
            [Ok(Some(3)), Ok(Some(3)), Ok(Some(5)), Ok(Some(8))],
            "the controller sees every object and no error"
        );
        let health = metrics.encode();
        assert!(
            health.contains("ballast_watch_up{watch=\"deployments\"} 1"),
            "{health}"
        );
        for category in ["Connection", "Forbidden", "Expired"] {
            assert!(
                health.contains(&format!(
                    "ballast_watch_errors_total{{watch=\"deployments\",category=\"{category}\"}} 1"
                )),
                "{category} counted once: {health}"
            );
        }
        assert!(
            health.contains("ballast_watch_outage_seconds_count{watch=\"deployments\"} 2"),
            "two outages measured: {health}"
        );
        consumer.abort();
    }

    #[test]
    fn watch_errors_have_bounded_categories() {
        let api = |code: u16| {
            watcher::Error::WatchStartFailed(kube::Error::Api(
                serde_json::from_value(status(code, "x")).unwrap(),
            ))
        };
        assert_eq!(api(401).category(), "Unauthorized");
        assert_eq!(api(403).category(), "Forbidden");
        assert_eq!(api(500).category(), "ApiError");
        assert_eq!(
            watcher::Error::WatchError(Box::new(
                serde_json::from_value(status(410, "Expired")).unwrap()
            ))
            .category(),
            "Expired"
        );
        assert_eq!(
            watcher::Error::NoResourceVersion.category(),
            "NoResourceVersion"
        );
    }

    #[tokio::test]
    async fn a_watch_is_down_from_its_first_error_until_its_next_event() {
        let health = WatchHealth::new("policies", Arc::new(Metrics::new()));
        health.observe::<()>(&Err(watcher::Error::NoResourceVersion));
        assert!(health.is_down());
        health.observe(&Ok(()));
        assert!(!health.is_down());
    }

    /// A watch resumed from its resource version sends nothing until something
    /// changes: after QUIET without an error it counts as back.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_watch_is_back_once_its_errors_stop() {
        let metrics = Arc::new(Metrics::new());
        let health = WatchHealth::new("sources", metrics.clone());
        health.observe::<()>(&Err(watcher::Error::NoResourceVersion));
        tokio::time::advance(Duration::from_secs(10)).await;
        health.observe::<()>(&Err(watcher::Error::NoResourceVersion));
        tokio::time::advance(QUIET - Duration::from_secs(1)).await;
        health.settle();
        assert!(health.is_down(), "errors stopped less than QUIET ago");
        tokio::time::advance(Duration::from_secs(1)).await;
        health.settle();
        assert!(!health.is_down());
        let text = metrics.encode();
        assert!(
            text.contains("ballast_watch_up{watch=\"sources\"} 1"),
            "{text}"
        );
        // The outage lasted from the first error to the last: 10 s.
        assert!(
            text.contains("ballast_watch_outage_seconds_sum{watch=\"sources\"} 10.0"),
            "{text}"
        );
    }
}

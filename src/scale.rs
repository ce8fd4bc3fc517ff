//! Reading and writing replica counts of any kind: through the `/scale` subresource
//! (Deployments, StatefulSets, any CRD with `scale`), or through a merge patch of a
//! field path (`replicasPath`) for node pools without one. Kinds are resolved by API
//! discovery and cached. Writes carry the `ballast` field manager.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use tracing::debug;

use crate::api::TargetRef;
use crate::api::conditions::FIELD_MANAGER;
use crate::engine::PodRequests;
use crate::kube_error;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("{kind} {api_version} is not served by the API server ({message})")]
    Discover {
        api_version: String,
        kind: String,
        message: String,
    },
    #[error(
        "{kind} {api_version} is cluster-scoped; targets must be namespaced objects in the policy's namespace"
    )]
    ClusterScoped { api_version: String, kind: String },
    #[error("{kind} has no /scale subresource; set nodePool.replicasPath for kinds without one")]
    NoScale { kind: String },
    #[error("{kind}/{name} not found in namespace {namespace}")]
    NotFound {
        namespace: String,
        kind: String,
        name: String,
    },
    #[error("reading the replicas of {kind}/{name}: {message}")]
    GetScale {
        kind: String,
        name: String,
        message: String,
    },
    #[error("writing the replicas of {kind}/{name}: {message}")]
    PatchScale {
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind}/{name} has no number at {path}")]
    Path {
        kind: String,
        name: String,
        path: String,
    },
}

#[derive(Clone, Debug)]
struct Resolved {
    resource: ApiResource,
    has_scale: bool,
}

/// The controller's watch caches of `apps/v1` Deployments and StatefulSets: a
/// tick reads their replicas from memory instead of a `/scale` GET (at 10,000
/// policies every 15 s, that is 667 API requests a second saved). A miss (not
/// synced yet, just created, other kinds) falls back to the API server.
#[derive(Clone, Default)]
pub struct ReplicaCache {
    pub deployments: Option<Store<Deployment>>,
    pub statefulsets: Option<Store<StatefulSet>>,
}

impl ReplicaCache {
    fn lookup(&self, namespace: &str, target: &TargetRef) -> Option<u32> {
        if target.api_version != "apps/v1" {
            return None;
        }
        let replicas = match target.kind.as_str() {
            "Deployment" => {
                self.deployments
                    .as_ref()?
                    .get(&ObjectRef::new(&target.name).within(namespace))?
                    .spec
                    .as_ref()?
                    .replicas
            }
            "StatefulSet" => {
                self.statefulsets
                    .as_ref()?
                    .get(&ObjectRef::new(&target.name).within(namespace))?
                    .spec
                    .as_ref()?
                    .replicas
            }
            _ => None,
        }?;
        u32::try_from(replicas).ok()
    }

    /// Who owns the cached target's `spec.replicas` (`None`: not a cached kind, or
    /// not in the cache).
    fn replicas_owners(
        &self,
        namespace: &str,
        target: &TargetRef,
    ) -> Option<Vec<crate::controller::owners::ReplicasOwner>> {
        if target.api_version != "apps/v1" {
            return None;
        }
        use crate::controller::owners::replicas_owners;
        match target.kind.as_str() {
            "Deployment" => self
                .deployments
                .as_ref()?
                .get(&ObjectRef::new(&target.name).within(namespace))
                .map(|d| replicas_owners(&d.metadata)),
            "StatefulSet" => self
                .statefulsets
                .as_ref()?
                .get(&ObjectRef::new(&target.name).within(namespace))
                .map(|s| replicas_owners(&s.metadata)),
            _ => None,
        }
    }
}

/// (namespace, kind, name) of a workload target.
type TargetKey = (String, String, String);

/// Replica reads and writes for any kind.
pub struct Scaler {
    client: Client,
    cache: Mutex<HashMap<(String, String), Resolved>>,
    replicas: ReplicaCache,
    /// The write-confirm guard: per target whose cache has not shown our last
    /// write, the replicas the API server holds as far as we know (that write, or
    /// a direct read since).
    unconfirmed: Mutex<HashMap<TargetKey, u32>>,
    /// Reads that went to the API server because of the guard.
    stale_reads: Counter,
}

fn gvk(target: &TargetRef) -> GroupVersionKind {
    let (group, version) = match target.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), target.api_version.clone()),
    };
    GroupVersionKind::gvk(&group, &version, &target.kind)
}

impl Scaler {
    pub fn new(client: Client) -> Self {
        Self::with_cache(client, ReplicaCache::default(), Counter::default())
    }

    /// Reads workload replicas from `replicas` where it can, counting in
    /// `stale_reads` the reads the write-confirm guard sends to the API server.
    pub fn with_cache(client: Client, replicas: ReplicaCache, stale_reads: Counter) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
            replicas,
            unconfirmed: Mutex::new(HashMap::new()),
            stale_reads,
        }
    }

    fn target_key(namespace: &str, target: &TargetRef) -> TargetKey {
        (namespace.into(), target.kind.clone(), target.name.clone())
    }

    /// The write-confirm guard. After our write, the cache is trusted again once
    /// it shows what the API server holds as far as we know; until then (a
    /// stalled or re-listing watch after an API server restart, which may also
    /// replay older values) deciding from it could repeat a decision already
    /// made. `Some(known)` means: read the API server instead.
    fn unconfirmed_write(&self, key: &TargetKey, cached: u32) -> Option<u32> {
        let mut unconfirmed = self.unconfirmed.lock().ok()?;
        let known = *unconfirmed.get(key)?;
        if cached == known {
            unconfirmed.remove(key);
            return None;
        }
        Some(known)
    }

    async fn resolve(&self, target: &TargetRef) -> Result<Resolved, ScaleError> {
        let key = (target.api_version.clone(), target.kind.clone());
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(r);
        }
        let (resource, caps): (ApiResource, ApiCapabilities) =
            discovery::pinned_kind(&self.client, &gvk(target))
                .await
                .map_err(|e| ScaleError::Discover {
                    api_version: target.api_version.clone(),
                    kind: target.kind.clone(),
                    message: kube_error::short(&e),
                })?;
        if caps.scope == Scope::Cluster {
            return Err(ScaleError::ClusterScoped {
                api_version: target.api_version.clone(),
                kind: target.kind.clone(),
            });
        }
        let has_scale = caps.subresources.iter().any(|(r, _)| r.plural == "scale");
        let resolved = Resolved {
            resource,
            has_scale,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// Whether the target's kind has a `/scale` subresource (API discovery, cached).
    /// Errors: the kind is not served, or is cluster-scoped.
    pub async fn has_scale(&self, target: &TargetRef) -> Result<bool, ScaleError> {
        Ok(self.resolve(target).await?.has_scale)
    }

    /// Whether the target object exists in `namespace`.
    pub async fn exists(&self, namespace: &str, target: &TargetRef) -> Result<bool, ScaleError> {
        Ok(self.metadata(namespace, target).await?.is_some())
    }

    /// The target object's metadata (managed fields included), `None` when it does
    /// not exist in `namespace`.
    pub async fn metadata(
        &self,
        namespace: &str,
        target: &TargetRef,
    ) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>, ScaleError>
    {
        let resolved = self.resolve(target).await?;
        self.api(namespace, &resolved)
            .get_metadata_opt(&target.name)
            .await
            .map(|o| o.map(|o| o.metadata))
            .map_err(|e| ScaleError::GetScale {
                kind: target.kind.clone(),
                name: target.name.clone(),
                message: kube_error::short(&e),
            })
    }

    fn api(&self, namespace: &str, resolved: &Resolved) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resolved.resource)
    }

    /// Who owns the target's `spec.replicas`, from the watch caches' managed fields
    /// (`None` for kinds the caches do not hold).
    pub fn replicas_owners(
        &self,
        namespace: &str,
        target: &TargetRef,
    ) -> Option<Vec<crate::controller::owners::ReplicasOwner>> {
        self.replicas.replicas_owners(namespace, target)
    }

    /// Current replicas: `/scale`'s `spec.replicas`, or the number at `path`.
    pub async fn read(
        &self,
        namespace: &str,
        target: &TargetRef,
        path: Option<&str>,
    ) -> Result<u32, ScaleError> {
        if path.is_none()
            && let Some(cached) = self.replicas.lookup(namespace, target)
        {
            let key = Self::target_key(namespace, target);
            let Some(known) = self.unconfirmed_write(&key, cached) else {
                return Ok(cached);
            };
            let read = self.read_api(namespace, target, None).await?;
            self.stale_reads.inc();
            debug!(
                kind = %target.kind, name = %target.name, cached, known, read,
                "the watch cache has not shown our last write; read /scale directly"
            );
            if let Ok(mut unconfirmed) = self.unconfirmed.lock() {
                if read == cached {
                    // The API server agrees with the cache: it can be trusted.
                    unconfirmed.remove(&key);
                } else {
                    unconfirmed.insert(key, read);
                }
            }
            return Ok(read);
        }
        if path.is_none()
            && let Ok(mut unconfirmed) = self.unconfirmed.lock()
        {
            // Not in the cache (deleted, another kind): nothing to confirm.
            unconfirmed.remove(&Self::target_key(namespace, target));
        }
        self.read_api(namespace, target, path).await
    }

    /// `read` from the API server, without the cache.
    async fn read_api(
        &self,
        namespace: &str,
        target: &TargetRef,
        path: Option<&str>,
    ) -> Result<u32, ScaleError> {
        let resolved = self.resolve(target).await?;
        let api = self.api(namespace, &resolved);
        let not_found_or = |e: kube::Error| match &e {
            kube::Error::Api(s) if s.code == 404 => ScaleError::NotFound {
                namespace: namespace.into(),
                kind: target.kind.clone(),
                name: target.name.clone(),
            },
            _ => ScaleError::GetScale {
                kind: target.kind.clone(),
                name: target.name.clone(),
                message: kube_error::short(&e),
            },
        };
        match path {
            None if resolved.has_scale => {
                let scale = api.get_scale(&target.name).await.map_err(not_found_or)?;
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                Ok(u32::try_from(replicas.max(0)).unwrap_or(0))
            }
            None => Err(ScaleError::NoScale {
                kind: target.kind.clone(),
            }),
            Some(path) => {
                let object = api.get(&target.name).await.map_err(not_found_or)?;
                let mut value = &object.data;
                for part in path.split('.') {
                    value = value.get(part).unwrap_or(&Value::Null);
                }
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ScaleError::Path {
                        kind: target.kind.clone(),
                        name: target.name.clone(),
                        path: path.into(),
                    })
            }
        }
    }

    /// Set replicas through `/scale`, or a merge patch of `path`.
    pub async fn write(
        &self,
        namespace: &str,
        target: &TargetRef,
        path: Option<&str>,
        replicas: u32,
    ) -> Result<(), ScaleError> {
        let resolved = self.resolve(target).await?;
        let api = self.api(namespace, &resolved);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let failed = |e: kube::Error| ScaleError::PatchScale {
            kind: target.kind.clone(),
            name: target.name.clone(),
            message: kube_error::short(&e),
        };
        match path {
            None if resolved.has_scale => {
                let patch = json!({"spec": {"replicas": replicas}});
                let written = api
                    .patch_scale(&target.name, &params, &Patch::Merge(&patch))
                    .await;
                // Until the cache shows this write, reads go to the API server. Also
                // after a failed write: a request that timed out may still have been
                // applied, and the next read must not guess.
                if let Some(cached) = self.replicas.lookup(namespace, target)
                    && cached != replicas
                    && let Ok(mut unconfirmed) = self.unconfirmed.lock()
                {
                    unconfirmed.insert(Self::target_key(namespace, target), replicas);
                }
                written.map(|_| ()).map_err(failed)
            }
            None => Err(ScaleError::NoScale {
                kind: target.kind.clone(),
            }),
            Some(path) => {
                let patch = path
                    .rsplit('.')
                    .fold(json!(replicas), |inner, key| json!({ key: inner }));
                api.patch(&target.name, &params, &Patch::Merge(&patch))
                    .await
                    .map_err(failed)?;
                Ok(())
            }
        }
    }

    /// The summed container requests of the target's pod template, for node pools
    /// sized by `nodeAllocatable`. `None` when the kind has no pod template.
    pub async fn pod_requests(&self, namespace: &str, target: &TargetRef) -> Option<PodRequests> {
        let resolved = self.resolve(target).await.ok()?;
        let object = self
            .api(namespace, &resolved)
            .get(&target.name)
            .await
            .ok()?;
        let containers = object
            .data
            .pointer("/spec/template/spec/containers")?
            .as_array()?;
        let mut requests = PodRequests::default();
        for c in containers {
            for (name, slot) in [("cpu", &mut requests.cpu), ("memory", &mut requests.memory)] {
                let q = c
                    .pointer(&format!("/resources/requests/{name}"))
                    .and_then(|v| match v {
                        Value::String(s) => {
                            s.parse::<crate::api::Quantity>().ok().map(|q| q.value())
                        }
                        Value::Number(n) => n.as_f64(),
                        _ => None,
                    });
                if let Some(q) = q {
                    *slot = Some(slot.unwrap_or(0.0) + q);
                }
            }
        }
        Some(requests)
    }
}

impl crate::error::Category for ScaleError {
    /// Short, bounded label for Events, conditions and metrics.
    fn category(&self) -> &'static str {
        match self {
            ScaleError::Discover { .. }
            | ScaleError::ClusterScoped { .. }
            | ScaleError::NoScale { .. } => "InvalidTarget",
            ScaleError::NotFound { .. } => "TargetNotFound",
            ScaleError::GetScale { .. } | ScaleError::Path { .. } => "FailedGetScale",
            ScaleError::PatchScale { .. } => "FailedUpdateScale",
        }
    }
}

/// What the API server answers to `GET /apis/apps/v1`, as far as `/scale` needs
/// (for tests that mock the API server).
#[cfg(test)]
pub(crate) fn apps_v1_discovery() -> serde_json::Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
        "resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": true,
             "kind": "Deployment", "verbs": ["get", "list", "watch", "patch"]},
            {"name": "deployments/scale", "singularName": "", "namespaced": true,
             "group": "autoscaling", "version": "v1", "kind": "Scale",
             "verbs": ["get", "patch", "update"]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn deployment(namespace: &str, name: &str, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}
        }))
        .unwrap()
    }

    fn target(api_version: &str, kind: &str, name: &str) -> TargetRef {
        TargetRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_replica_cache_answers_only_for_what_it_holds() {
        let (store, mut writer) = reflector::store::<Deployment>();
        writer.apply_watcher_event(&Event::Apply(deployment("shop", "cache", 7)));
        writer.apply_watcher_event(&Event::Apply(deployment("other", "cache", 2)));
        let cache = ReplicaCache {
            deployments: Some(store),
            statefulsets: None,
        };
        assert_eq!(
            cache.lookup("shop", &target("apps/v1", "Deployment", "cache")),
            Some(7)
        );
        assert_eq!(
            cache.lookup("other", &target("apps/v1", "Deployment", "cache")),
            Some(2)
        );
        // Misses fall back to the API server: unknown names, other namespaces,
        // kinds or versions, and kinds without a cache.
        assert_eq!(
            cache.lookup("shop", &target("apps/v1", "Deployment", "web")),
            None
        );
        assert_eq!(
            cache.lookup("nowhere", &target("apps/v1", "Deployment", "cache")),
            None
        );
        assert_eq!(
            cache.lookup("shop", &target("apps/v1beta1", "Deployment", "cache")),
            None
        );
        assert_eq!(
            cache.lookup("shop", &target("apps/v1", "StatefulSet", "cache")),
            None
        );
        assert_eq!(
            cache.lookup("shop", &target("argoproj.io/v1alpha1", "Rollout", "cache")),
            None
        );
        assert_eq!(
            ReplicaCache::default().lookup("shop", &target("apps/v1", "Deployment", "cache")),
            None
        );
    }

    fn json_response(value: serde_json::Value) -> http::Response<kube::client::Body> {
        http::Response::new(kube::client::Body::from(
            serde_json::to_vec(&value).unwrap(),
        ))
    }

    fn scale(replicas: u32) -> http::Response<kube::client::Body> {
        json_response(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "cache", "namespace": "shop"},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas}
        }))
    }

    /// The stale-cache stall after an API server restart: the watch did not deliver
    /// our write of 5, and every tick read 3 and wrote 5 again. After a write, a
    /// cache that still shows the replaced value is not trusted.
    #[tokio::test]
    async fn a_read_after_our_write_asks_the_api_server_until_the_cache_shows_it() {
        use http::{Method, Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let (store, mut writer) = reflector::store::<Deployment>();
        writer.apply_watcher_event(&Event::Apply(deployment("shop", "cache", 3)));
        let stale_reads = Counter::default();
        let scaler = Scaler::with_cache(
            client,
            ReplicaCache {
                deployments: Some(store),
                statefulsets: None,
            },
            stale_reads.clone(),
        );
        let cache = target("apps/v1", "Deployment", "cache");
        let server = tokio::spawn(async move {
            let scale_path = "/apis/apps/v1/namespaces/shop/deployments/cache/scale";
            let (request, respond) = handle.next_request().await.expect("discovery");
            assert_eq!(request.uri().path(), "/apis/apps/v1");
            respond.send_response(json_response(apps_v1_discovery()));
            let (request, respond) = handle.next_request().await.expect("the write");
            assert_eq!(
                (request.method(), request.uri().path()),
                (&Method::PATCH, scale_path)
            );
            respond.send_response(scale(5));
            // Two reads while the cache still shows 3: both go to the API server.
            for _ in 0..2 {
                let (request, respond) = handle.next_request().await.expect("a direct read");
                assert_eq!(
                    (request.method(), request.uri().path()),
                    (&Method::GET, scale_path)
                );
                respond.send_response(scale(5));
            }
            // Dropping the handle fails any further request.
        });
        scaler.write("shop", &cache, None, 5).await.unwrap();
        assert_eq!(scaler.read("shop", &cache, None).await.unwrap(), 5);
        assert_eq!(scaler.read("shop", &cache, None).await.unwrap(), 5);
        assert_eq!(stale_reads.get(), 2);
        server.await.unwrap();
        // The watch delivers the write: the cache is trusted again, with no request.
        writer.apply_watcher_event(&Event::Apply(deployment("shop", "cache", 5)));
        assert_eq!(scaler.read("shop", &cache, None).await.unwrap(), 5);
        // And stays trusted when it later moves (an out-of-band change).
        writer.apply_watcher_event(&Event::Apply(deployment("shop", "cache", 3)));
        assert_eq!(scaler.read("shop", &cache, None).await.unwrap(), 3);
        assert_eq!(stale_reads.get(), 2);
    }

    #[tokio::test]
    async fn a_cache_is_trusted_again_only_once_it_shows_what_we_know() {
        let scaler = Scaler::new(kube::Client::new(
            tower_test::mock::pair::<
                http::Request<kube::client::Body>,
                http::Response<kube::client::Body>,
            >()
            .0,
            "default",
        ));
        let key = Scaler::target_key("shop", &target("apps/v1", "Deployment", "cache"));
        scaler.unconfirmed.lock().unwrap().insert(key.clone(), 5);
        assert_eq!(
            scaler.unconfirmed_write(&key, 3),
            Some(5),
            "the value our write replaced"
        );
        // A resumed watch may replay an older value, or someone else may have
        // written: either way, ask the API server rather than guess.
        assert_eq!(
            scaler.unconfirmed_write(&key, 4),
            Some(5),
            "an older value replayed"
        );
        assert_eq!(scaler.unconfirmed_write(&key, 5), None, "our write, seen");
        assert_eq!(
            scaler.unconfirmed_write(&key, 3),
            None,
            "forgotten once seen"
        );
    }
}

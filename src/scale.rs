//! Reading and writing replica counts of any kind: through the `/scale` subresource
//! (Deployments, StatefulSets, any CRD with `scale`), or through a merge patch of a
//! field path (`replicasPath`) for node pools without one. Kinds are resolved by API
//! discovery and cached. Writes carry the `ballast` field manager.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, Scope};
use serde_json::{Value, json};

use crate::api::TargetRef;
use crate::api::conditions::FIELD_MANAGER;
use crate::engine::PodRequests;
use crate::metrics::registry::short_kube_error;

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

impl ScaleError {
    /// Short, bounded label for Events, conditions and metrics.
    pub fn category(&self) -> &'static str {
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

#[derive(Clone, Debug)]
struct Resolved {
    resource: ApiResource,
    has_scale: bool,
}

/// Replica reads and writes for any kind.
pub struct Scaler {
    client: Client,
    cache: Mutex<HashMap<(String, String), Resolved>>,
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
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
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
                    message: short_kube_error(&e),
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
        let resolved = self.resolve(target).await?;
        self.api(namespace, &resolved)
            .get_metadata_opt(&target.name)
            .await
            .map(|o| o.is_some())
            .map_err(|e| ScaleError::GetScale {
                kind: target.kind.clone(),
                name: target.name.clone(),
                message: short_kube_error(&e),
            })
    }

    fn api(&self, namespace: &str, resolved: &Resolved) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resolved.resource)
    }

    /// Current replicas: `/scale`'s `spec.replicas`, or the number at `path`.
    pub async fn read(
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
                message: short_kube_error(&e),
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
            message: short_kube_error(&e),
        };
        match path {
            None if resolved.has_scale => {
                let patch = json!({"spec": {"replicas": replicas}});
                api.patch_scale(&target.name, &params, &Patch::Merge(&patch))
                    .await
                    .map_err(failed)?;
                Ok(())
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

//! The cluster lookups behind a decision, kept thin: list the namespace's policies,
//! HPAs and KEDA ScaledObjects, ask discovery about the target kinds, read the named
//! sources. The decision itself is [`super::checks::check_cluster`].

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;

use super::checks::{KindInfo, OtherPolicy, PolicyFacts, ScaleRef};
use crate::api::{ClusterMetricsSource, CustomScalingPolicy, CustomScalingPolicySpec, TargetRef};
use crate::kube_error;
use crate::scale::{ScaleError, Scaler};

/// A lookup failed; the webhook refuses rather than let an unchecked policy in.
#[derive(Debug, thiserror::Error)]
#[error("could not check {what}: {message}; try again")]
pub struct FactError {
    what: &'static str,
    message: String,
}

fn fact_error(what: &'static str) -> impl Fn(kube::Error) -> FactError {
    move |e| FactError {
        what,
        message: kube_error::short(&e),
    }
}

/// KEDA's ScaledObject, read untyped (its CRD may not be installed).
fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// Gathers [`PolicyFacts`].
pub struct FactFinder {
    client: Client,
    scaler: Scaler,
}

impl FactFinder {
    pub fn new(client: Client) -> Self {
        Self {
            scaler: Scaler::new(client.clone()),
            client,
        }
    }

    async fn kind(&self, target: &TargetRef) -> KindInfo {
        match self.scaler.has_scale(target).await {
            Ok(true) => KindInfo::Scalable,
            Ok(false) => KindInfo::NoScale,
            Err(ScaleError::ClusterScoped { .. }) => KindInfo::ClusterScoped,
            Err(ScaleError::Discover { message, .. }) if message.contains("404") => {
                KindInfo::NotServed("API discovery does not list it".into())
            }
            Err(e) => KindInfo::NotServed(e.to_string()),
        }
    }

    /// Read untyped: a policy the current types cannot decode must not block
    /// admission of the others in its namespace.
    async fn other_policies(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<OtherPolicy>, FactError> {
        let resource = ApiResource::erase::<CustomScalingPolicy>(&());
        let list = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource)
            .list(&ListParams::default())
            .await
            .map_err(fact_error(
                "the other CustomScalingPolicies in the namespace",
            ))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| {
                let other = p.metadata.name.clone()?;
                if other == name {
                    return None;
                }
                OtherPolicy::from_object(&other, &p.data)
            })
            .collect())
    }

    async fn hpas(&self, namespace: &str) -> Result<Vec<(String, ScaleRef)>, FactError> {
        let list = Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(fact_error("the HorizontalPodAutoscalers in the namespace"))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|h| {
                let spec = h.spec?;
                let t = spec.scale_target_ref;
                let api_version = t.api_version.unwrap_or_default();
                Some((
                    h.metadata.name?,
                    ScaleRef::new(&api_version, &t.kind, &t.name),
                ))
            })
            .collect())
    }

    async fn scaled_objects(
        &self,
        namespace: &str,
    ) -> Result<Option<Vec<(String, ScaleRef)>>, FactError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &scaled_object_resource());
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            // KEDA is not installed: nothing to conflict with.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(fact_error("the KEDA ScaledObjects in the namespace")(e)),
        };
        Ok(Some(
            list.items
                .into_iter()
                .filter_map(|o| {
                    let t = o.data.get("spec")?.get("scaleTargetRef")?;
                    let name = t.get("name")?.as_str()?;
                    // KEDA's defaults for an omitted apiVersion and kind.
                    let api_version = t
                        .get("apiVersion")
                        .and_then(|v| v.as_str())
                        .unwrap_or("apps/v1");
                    let kind = t
                        .get("kind")
                        .and_then(|v| v.as_str())
                        .unwrap_or("Deployment");
                    Some((o.metadata.name?, ScaleRef::new(api_version, kind, name)))
                })
                .collect(),
        ))
    }

    async fn sources(
        &self,
        spec: &CustomScalingPolicySpec,
    ) -> Result<BTreeMap<String, Option<crate::api::ClusterMetricsSourceSpec>>, FactError> {
        let api = Api::<ClusterMetricsSource>::all(self.client.clone());
        let mut sources = BTreeMap::new();
        for name in spec.metrics.iter().filter_map(|m| m.source.as_ref()) {
            if sources.contains_key(name) {
                continue;
            }
            let source = api
                .get_opt(name)
                .await
                .map_err(fact_error("the ClusterMetricsSources the policy names"))?;
            sources.insert(name.clone(), source.map(|s| s.spec));
        }
        Ok(sources)
    }

    /// Everything [`super::checks::check_cluster`] needs about policy `name` in
    /// `namespace`. Every lookup is in that namespace (or cluster-scoped sources).
    pub async fn policy_facts(
        &self,
        namespace: &str,
        name: &str,
        spec: &CustomScalingPolicySpec,
    ) -> Result<PolicyFacts, FactError> {
        let (other_policies, hpas, scaled_objects, sources, target_kind) = futures::join!(
            self.other_policies(namespace, name),
            self.hpas(namespace),
            self.scaled_objects(namespace),
            self.sources(spec),
            self.kind(&spec.target_ref),
        );
        let target = match target_kind {
            KindInfo::Scalable | KindInfo::NoScale => {
                self.scaler.metadata(namespace, &spec.target_ref).await.ok()
            }
            _ => None,
        };
        let target_exists = target.as_ref().map(Option::is_some);
        let target_replicas_owners = target
            .flatten()
            .map(|meta| crate::controller::owners::replicas_owners(&meta))
            .unwrap_or_default();
        let node_pool_kind = match &spec.node_pool {
            Some(pool) => Some(self.kind(&pool.target_ref).await),
            None => None,
        };
        Ok(PolicyFacts {
            other_policies: other_policies?,
            hpas: hpas?,
            scaled_objects: scaled_objects?,
            target_kind,
            target_exists,
            target_replicas_owners,
            node_pool_kind,
            sources: sources?,
        })
    }
}

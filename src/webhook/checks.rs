//! What the webhook decides, without I/O: the shared validation (everything
//! `ballast lint` refuses), then the rules that need the cluster, checked against
//! [`PolicyFacts`] gathered beforehand by [`super::facts`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::admission::Verdict;
use crate::api::validation::{self, Problem, Severity};
use crate::api::{
    ClusterMetricsSourceSpec, CustomScalingPolicy, CustomScalingPolicySpec, TargetRef,
};

/// An object another autoscaler points at: API group (version ignored), kind, name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl ScaleRef {
    /// From an `apiVersion` such as `apps/v1` (group `apps`) or `v1` (core group).
    pub fn new(api_version: &str, kind: &str, name: &str) -> Self {
        let group = api_version
            .split_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default();
        Self {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(target: &TargetRef) -> Self {
        Self::new(&target.api_version, &target.kind, &target.name)
    }
}

/// What API discovery says about a target's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindInfo {
    /// Namespaced, with a `/scale` subresource.
    Scalable,
    /// Namespaced, without `/scale`.
    NoScale,
    /// Cluster-scoped: never a target.
    ClusterScoped,
    /// Not served (yet): a typo, or a CRD that is not installed.
    NotServed(String),
}

/// Another policy's targets: all the conflict checks need, read from its raw
/// object so that one policy the current types cannot decode (from an older or
/// newer version) does not block admission in its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherPolicy {
    pub name: String,
    pub target: ScaleRef,
    pub node_pool: Option<ScaleRef>,
}

impl OtherPolicy {
    /// From a stored object's JSON; `None` when it names no target at all.
    pub fn from_object(name: &str, object: &Value) -> Option<Self> {
        let target_ref = |v: &Value| -> Option<ScaleRef> {
            let s = |k: &str| v.get(k).and_then(Value::as_str);
            Some(ScaleRef::new(s("apiVersion")?, s("kind")?, s("name")?))
        };
        let spec = object.get("spec")?;
        Some(Self {
            name: name.to_string(),
            target: target_ref(spec.get("targetRef")?)?,
            node_pool: spec
                .get("nodePool")
                .and_then(|p| p.get("targetRef"))
                .and_then(target_ref),
        })
    }
}

/// What the cluster holds that the decision depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyFacts {
    /// Other policies in the same namespace (the one under review excluded).
    pub other_policies: Vec<OtherPolicy>,
    /// `autoscaling/v2` HorizontalPodAutoscalers in the namespace: name, scale target.
    pub hpas: Vec<(String, ScaleRef)>,
    /// KEDA ScaledObjects in the namespace; `None` when KEDA's CRD is not installed.
    pub scaled_objects: Option<Vec<(String, ScaleRef)>>,
    pub target_kind: KindInfo,
    /// Whether the target object exists (policies may be applied before it).
    pub target_exists: Option<bool>,
    /// Who owns the target's `spec.replicas` (its managedFields), when it exists.
    pub target_replicas_owners: Vec<crate::controller::owners::ReplicasOwner>,
    pub node_pool_kind: Option<KindInfo>,
    /// Every source the policy names: `None` when it does not exist.
    pub sources: BTreeMap<String, Option<ClusterMetricsSourceSpec>>,
}

fn problems_into(problems: Vec<Problem>, verdict: &mut Verdict) {
    for p in problems {
        let text = p.text();
        match p.severity {
            Severity::Error => verdict.denials.push(text),
            Severity::Warning => verdict.warnings.push(text),
        }
    }
}

/// Decode and validate a policy the way `ballast lint` does. `Err` when a field
/// does not decode (every such field is named, with what the rest of the object
/// breaks).
pub fn validate_policy(object: &Value) -> Result<(CustomScalingPolicy, Verdict), Verdict> {
    let mut verdict = Verdict::default();
    let checked = validation::check_policy(object);
    let failed = checked.has_type_errors();
    problems_into(checked.problems, &mut verdict);
    match checked.object {
        Some(policy) if !failed => Ok((policy, verdict)),
        _ => Err(verdict),
    }
}

/// Decode and validate a source, with its Secrets in the operator's namespace.
pub fn validate_source(object: &Value, operator_namespace: &str) -> Verdict {
    let mut verdict = Verdict::default();
    let checked = validation::check_source(object, Some(operator_namespace));
    problems_into(checked.problems, &mut verdict);
    verdict
}

fn describe(target: &TargetRef) -> String {
    format!("{} {}/{}", target.api_version, target.kind, target.name)
}

/// What discovery says against a target at `field`. `no_scale`: how a kind
/// without `/scale` is refused (the rest of the message), or `None` when the
/// policy names the replica field itself (a node pool's `replicasPath`).
fn kind_problems(
    field: &str,
    target: &TargetRef,
    kind: &KindInfo,
    no_scale: Option<&str>,
    verdict: &mut Verdict,
) {
    let what = format!("{field}: kind {} ({})", target.kind, target.api_version);
    match kind {
        KindInfo::Scalable => {}
        KindInfo::NoScale => {
            if let Some(advice) = no_scale {
                verdict
                    .denials
                    .push(format!("{what} has no /scale subresource{advice}"));
            }
        }
        KindInfo::ClusterScoped => verdict.denials.push(format!(
            "{what} is cluster-scoped; a policy scales objects in its own namespace only"
        )),
        KindInfo::NotServed(why) => verdict.warnings.push(format!(
            "{what} is not served by the API server ({why}); the policy will report TargetNotFound until it is"
        )),
    }
}

/// The rules that need the cluster: one autoscaler per target, one policy per node
/// pool, kinds that can be scaled, sources that exist and allow the namespace.
pub fn check_cluster(
    namespace: &str,
    spec: &CustomScalingPolicySpec,
    facts: &PolicyFacts,
) -> Verdict {
    let mut verdict = Verdict::default();
    let target = ScaleRef::of(&spec.target_ref);
    let shown = describe(&spec.target_ref);
    let fight = "two autoscalers on one target fight over its replicas";

    for other in &facts.other_policies {
        let name = &other.name;
        if other.target == target {
            verdict.denials.push(format!(
                "spec.targetRef: {shown} is already scaled by CustomScalingPolicy {namespace}/{name}; {fight}: delete that policy or point this one at another target"
            ));
        }
        if let (Some(mine), Some(theirs)) = (&spec.node_pool, &other.node_pool)
            && ScaleRef::of(&mine.target_ref) == *theirs
        {
            verdict.denials.push(format!(
                "spec.nodePool.targetRef: {} is already the node pool of CustomScalingPolicy {namespace}/{name}; one policy sizes a node pool: move both workloads into one policy or give each its own pool",
                describe(&mine.target_ref)
            ));
        }
    }
    for (name, hpa) in &facts.hpas {
        if *hpa == target {
            verdict.denials.push(format!(
                "spec.targetRef: {shown} is already scaled by HorizontalPodAutoscaler {namespace}/{name}; {fight}: delete the HPA (or this policy)"
            ));
        }
    }
    for (name, so) in facts.scaled_objects.iter().flatten() {
        if *so == target {
            verdict.denials.push(format!(
                "spec.targetRef: {shown} is already scaled by KEDA ScaledObject {namespace}/{name}; {fight}: delete the ScaledObject (or this policy)"
            ));
        }
    }

    kind_problems(
        "spec.targetRef",
        &spec.target_ref,
        &facts.target_kind,
        Some(
            ", so Ballast cannot set its replicas; target a Deployment, StatefulSet or another kind with /scale",
        ),
        &mut verdict,
    );
    if facts.target_exists == Some(false) && facts.target_kind == KindInfo::Scalable {
        verdict.warnings.push(format!(
            "spec.targetRef: {shown} does not exist in namespace {namespace} yet; the policy waits for it"
        ));
    }

    // A manifest that keeps replicas will put them back after every Ballast write.
    for applier in crate::controller::owners::appliers(&facts.target_replicas_owners) {
        verdict.warnings.push(format!(
            "spec.targetRef: {shown}'s spec.replicas is owned by {}, which applies a manifest that sets it: every sync will undo Ballast's replicas; leave replicas out of that manifest or have the tool ignore the field (docs/gitops.md, \"Leave replicas to Ballast\")",
            applier.describe()
        ));
    }

    if let (Some(pool), Some(kind)) = (&spec.node_pool, &facts.node_pool_kind) {
        let no_scale = pool.replicas_path.is_none().then_some(
            "; set spec.nodePool.replicasPath to the field that holds its replica count",
        );
        kind_problems(
            "spec.nodePool.targetRef",
            &pool.target_ref,
            kind,
            no_scale,
            &mut verdict,
        );
    }

    for (i, metric) in spec.metrics.iter().enumerate() {
        let Some(source) = &metric.source else {
            continue;
        };
        match facts.sources.get(source) {
            Some(Some(s)) => {
                let allowed = s
                    .allowed_namespaces
                    .iter()
                    .any(|n| n == "*" || n == namespace);
                if !allowed {
                    verdict.denials.push(format!(
                        "spec.metrics[{i}].source: ClusterMetricsSource {source:?} does not allow namespace {namespace:?} (its allowedNamespaces: {}); ask its owner to add the namespace, or use another source",
                        s.allowed_namespaces.join(", ")
                    ));
                }
            }
            _ => verdict.denials.push(format!(
                "spec.metrics[{i}].source: ClusterMetricsSource {source:?} does not exist; create it first (kubectl get clustermetricssources lists them)"
            )),
        }
    }
    verdict
}

/// Whether an UPDATE changes nothing the webhook judges: then it is let through, so
/// label edits are never blocked by a conflict that appeared after creation.
pub fn spec_unchanged(object: &Value, old: Option<&Value>) -> bool {
    old.is_some_and(|old| old.get("spec") == object.get("spec"))
}

/// Join two verdicts.
pub fn merge(mut a: Verdict, b: Verdict) -> Verdict {
    a.denials.extend(b.denials);
    a.warnings.extend(b.warnings);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(target: &str, pool: Option<&str>, source: Option<&str>) -> Value {
        let mut p = json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [{"name": "evictions", "query": "sum(rate(x[1m]))",
                    "target": {"type": "Value", "value": "100"}}]
            }
        });
        if let Some(pool) = pool {
            p["spec"]["nodePool"] = json!({
                "targetRef": {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment", "name": pool},
                "podsPerNode": 4, "maxNodes": 5
            });
        }
        if let Some(source) = source {
            p["spec"]["metrics"][0]["source"] = json!(source);
        }
        p
    }

    fn spec(v: &Value) -> CustomScalingPolicySpec {
        validate_policy(v).unwrap().0.spec
    }

    fn facts() -> PolicyFacts {
        PolicyFacts {
            other_policies: vec![],
            hpas: vec![],
            scaled_objects: None,
            target_kind: KindInfo::Scalable,
            target_exists: Some(true),
            target_replicas_owners: vec![],
            node_pool_kind: Some(KindInfo::Scalable),
            sources: BTreeMap::new(),
        }
    }

    #[test]
    fn a_clean_policy_passes() {
        let v = check_cluster(
            "shop",
            &spec(&policy("cache", Some("pool"), None)),
            &facts(),
        );
        assert!(v.allowed(), "{v:?}");
        assert!(v.warnings.is_empty(), "{v:?}");
    }

    #[test]
    fn lint_errors_are_denials_and_lint_warnings_are_warnings() {
        let mut p = policy("cache", None, None);
        p["spec"]["metrics"][0]["query"] = json!("sum(rate(x[1m])");
        p["spec"]["pollInterval"] = json!("1s");
        let (_, v) = validate_policy(&p).unwrap();
        assert!(
            v.denials
                .iter()
                .any(|d| d.starts_with("spec.metrics[0].query:")),
            "{v:?}"
        );
        assert!(
            v.warnings
                .iter()
                .any(|w| w.starts_with("spec.pollInterval:")),
            "{v:?}"
        );
        let mut p = policy("cache", None, None);
        p["spec"]["maxReplicas"] = json!("ten");
        let v = validate_policy(&p).unwrap_err();
        assert!(v.denials[0].starts_with("spec.maxReplicas"), "{v:?}");
    }

    #[test]
    fn conflicts_name_the_other_object() {
        let mine = spec(&policy("cache", Some("pool"), None));
        let mut f = facts();
        let other = |name: &str, v: Value| OtherPolicy::from_object(name, &v).unwrap();
        f.other_policies = vec![
            other("older", policy("cache", None, None)),
            other("pooled", policy("web", Some("pool"), None)),
            other("unrelated", policy("web", Some("other-pool"), None)),
        ];
        f.hpas = vec![
            (
                "web-hpa".into(),
                ScaleRef::new("apps/v1", "Deployment", "cache"),
            ),
            (
                "sts-hpa".into(),
                ScaleRef::new("apps/v1", "StatefulSet", "cache"),
            ),
        ];
        f.scaled_objects = Some(vec![(
            "cache-so".into(),
            ScaleRef::new("apps/v1beta2", "Deployment", "cache"),
        )]);
        let v = check_cluster("shop", &mine, &f);
        assert_eq!(v.denials.len(), 4, "{v:#?}");
        assert!(v.denials[0].contains("CustomScalingPolicy shop/older"));
        assert!(v.denials[1].starts_with("spec.nodePool.targetRef:"));
        assert!(v.denials[1].contains("CustomScalingPolicy shop/pooled"));
        assert!(v.denials[2].contains("HorizontalPodAutoscaler shop/web-hpa"));
        assert!(v.denials[3].contains("KEDA ScaledObject shop/cache-so"));
    }

    #[test]
    fn other_policies_are_read_even_when_they_would_not_decode() {
        let mut broken = policy("cache", Some("pool"), None);
        broken["spec"]["pollInterval"] = json!("99999999h");
        broken["spec"]["maxReplicas"] = json!("many");
        let other = OtherPolicy::from_object("broken", &broken).unwrap();
        assert_eq!(
            other.target,
            ScaleRef::new("apps/v1", "Deployment", "cache")
        );
        assert_eq!(
            other.node_pool,
            Some(ScaleRef::new(
                "cluster.x-k8s.io/v1beta1",
                "MachineDeployment",
                "pool"
            ))
        );
        let mut f = facts();
        f.other_policies = vec![other];
        let v = check_cluster("shop", &spec(&policy("cache", None, None)), &f);
        assert!(
            v.denials[0].contains("CustomScalingPolicy shop/broken"),
            "{v:?}"
        );
        assert!(OtherPolicy::from_object("x", &json!({"spec": {}})).is_none());
    }

    #[test]
    fn kinds_without_scale_are_refused_unless_a_pool_has_a_path() {
        let mine = spec(&policy("cache", Some("pool"), None));
        let mut f = facts();
        f.target_kind = KindInfo::NoScale;
        f.node_pool_kind = Some(KindInfo::NoScale);
        let v = check_cluster("shop", &mine, &f);
        assert_eq!(v.denials.len(), 2, "{v:#?}");
        assert!(v.denials[0].contains("has no /scale subresource"));
        assert!(v.denials[1].contains("replicasPath"));

        let mut with_path = policy("cache", Some("pool"), None);
        with_path["spec"]["nodePool"]["replicasPath"] = json!("spec.count");
        f.target_kind = KindInfo::Scalable;
        let v = check_cluster("shop", &spec(&with_path), &f);
        assert!(v.allowed(), "{v:?}");

        f.target_kind = KindInfo::ClusterScoped;
        assert!(!check_cluster("shop", &mine, &f).allowed());
        f.target_kind = KindInfo::NotServed("404".into());
        f.node_pool_kind = Some(KindInfo::Scalable);
        let v = check_cluster("shop", &mine, &f);
        assert!(v.allowed() && v.warnings.len() == 1, "{v:?}");
    }

    #[test]
    fn a_target_whose_replicas_a_manifest_sets_is_a_warning() {
        use crate::controller::owners::ReplicasOwner;
        let mut f = facts();
        let owner = |manager: &str, operation: &str| ReplicasOwner {
            manager: manager.into(),
            operation: operation.into(),
            subresource: None,
            time: None,
        };
        f.target_replicas_owners = vec![owner("kubectl-create", "Update")];
        let mine = spec(&policy("cache", None, None));
        assert!(check_cluster("shop", &mine, &f).warnings.is_empty());
        f.target_replicas_owners
            .push(owner("argocd-controller", "Apply"));
        let v = check_cluster("shop", &mine, &f);
        assert!(v.allowed(), "a warning, not a denial: {v:?}");
        assert_eq!(v.warnings.len(), 1, "{v:?}");
        assert!(
            v.warnings[0].contains("owned by argocd-controller (server-side apply)")
                && v.warnings[0].contains("docs/gitops.md"),
            "{v:?}"
        );
    }

    #[test]
    fn a_missing_target_is_a_warning() {
        let mut f = facts();
        f.target_exists = Some(false);
        let v = check_cluster("shop", &spec(&policy("cache", None, None)), &f);
        assert!(v.allowed());
        assert!(v.warnings[0].contains("does not exist"), "{v:?}");
    }

    #[test]
    fn sources_must_exist_and_allow_the_namespace() {
        let mine = spec(&policy("cache", None, Some("prom")));
        let mut f = facts();
        let v = check_cluster("shop", &mine, &f);
        assert!(v.denials[0].contains("\"prom\" does not exist"), "{v:?}");
        let source = |allowed: &[&str]| ClusterMetricsSourceSpec {
            allowed_namespaces: allowed.iter().map(|s| s.to_string()).collect(),
            ..serde_json::from_value(
                json!({"address": "http://p:9090", "allowedNamespaces": ["x"]}),
            )
            .unwrap()
        };
        f.sources
            .insert("prom".into(), Some(source(&["team-a", "team-b"])));
        let v = check_cluster("shop", &mine, &f);
        assert!(
            v.denials[0].contains(
                "does not allow namespace \"shop\" (its allowedNamespaces: team-a, team-b)"
            ),
            "{v:?}"
        );
        f.sources.insert("prom".into(), Some(source(&["*"])));
        assert!(check_cluster("shop", &mine, &f).allowed());
        f.sources.insert("prom".into(), Some(source(&["shop"])));
        assert!(check_cluster("shop", &mine, &f).allowed());
    }

    #[test]
    fn source_secrets_must_be_in_the_operator_namespace() {
        let source = json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
            "metadata": {"name": "prom"},
            "spec": {"address": "http://p:9090", "allowedNamespaces": ["*"],
                "auth": {"bearerToken": {"namespace": "default", "name": "t", "key": "token"}}}
        });
        let v = validate_source(&source, "ballast-system");
        assert_eq!(v.denials.len(), 1, "{v:?}");
        assert!(v.denials[0].starts_with("spec.auth.bearerToken.namespace:"));
        assert!(validate_source(&source, "default").allowed());
        let mut bad = source.clone();
        bad["spec"]["address"] = json!("ftp://x");
        assert!(!validate_source(&bad, "default").allowed());
    }

    #[test]
    fn a_metadata_endpoint_is_refused_and_its_opt_in_warned_about() {
        let mut source = json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
            "metadata": {"name": "imds"},
            "spec": {"address": "http://169.254.169.254/latest/meta-data/iam/", "allowedNamespaces": ["*"]}
        });
        let v = validate_source(&source, "ballast-system");
        assert_eq!(v.denials.len(), 1, "{v:?}");
        assert!(
            v.denials[0].starts_with("spec.address: 169.254.169.254 is a cloud metadata endpoint"),
            "{v:?}"
        );
        source["spec"]["allowLinkLocal"] = json!(true);
        let v = validate_source(&source, "ballast-system");
        assert!(v.allowed(), "{v:?}");
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("spec.address") && w.contains("allowLinkLocal")),
            "{v:?}"
        );
    }

    #[test]
    fn insecure_tls_is_warned_about_and_secrets_elsewhere_refused() {
        let mut source = json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
            "metadata": {"name": "gateway"},
            "spec": {"address": "https://gateway:8443", "allowedNamespaces": ["*"],
                "tls": {"insecureSkipVerify": true},
                "headers": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef":
                    {"namespace": "ballast-system", "name": "k", "key": "key"}}}]}
        });
        let v = validate_source(&source, "ballast-system");
        assert!(v.allowed(), "{v:?}");
        assert!(
            v.warnings
                .iter()
                .any(|w| w.starts_with("spec.tls.insecureSkipVerify:")),
            "{v:?}"
        );
        source["spec"]["tls"] =
            json!({"clientCertificate": {"namespace": "monitoring", "name": "c"}});
        source["spec"]["headers"][0]["valueFrom"]["secretKeyRef"]["namespace"] =
            json!("monitoring");
        let v = validate_source(&source, "ballast-system");
        assert_eq!(v.denials.len(), 2, "{v:?}");
        assert!(
            v.denials
                .iter()
                .any(|d| d.starts_with("spec.tls.clientCertificate.namespace:")),
            "{v:?}"
        );
        assert!(
            v.denials
                .iter()
                .any(|d| d.starts_with("spec.headers[0].valueFrom.secretKeyRef.namespace:")),
            "{v:?}"
        );
    }

    #[test]
    fn metadata_only_updates_are_recognised() {
        let a = policy("cache", None, None);
        let mut b = a.clone();
        b["metadata"]["labels"] = json!({"team": "x"});
        assert!(spec_unchanged(&b, Some(&a)));
        b["spec"]["maxReplicas"] = json!(11);
        assert!(!spec_unchanged(&b, Some(&a)));
        assert!(!spec_unchanged(&a, None));
    }
}

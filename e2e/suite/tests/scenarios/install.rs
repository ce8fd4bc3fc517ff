//! A default install: deploy/ with the one documented setting (the default
//! metrics source's URL, set by a kustomize overlay as the README shows), then
//! every object in examples/ applied as it is (its source's address pointed at
//! the harness by another overlay), their workloads created, and every policy
//! evaluated: `Ready`, `MetricsAvailable` and `AbleToScale` True.
//!
//! The operator runs as a process with the environment of the overlay's rendered
//! operator container (there is no kubelet here), as deploy/'s ServiceAccount,
//! watching every namespace: the scenario runs alone (main.rs's `ALONE`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use ballast::api::CustomScalingPolicy;
use ballast_e2e::chaos::Load;
use ballast_e2e::{Scenario, eventually, polls};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use serde::Deserialize as _;
use serde_yaml::Value;

/// The examples' namespaces (examples/namespaces.yaml).
const NAMESPACES: [&str; 3] = ["shop", "orders", "batch"];

/// The examples' workloads: (namespace, Deployment, its policy, its poll interval).
const WORKLOADS: [(&str, &str, &str, u64); 3] = [
    ("shop", "cache-api", "cache-eviction", 15),
    ("orders", "orders-consumer", "orders-consumer", 30),
    ("batch", "batch-api", "batch-api", 30),
];

/// A kustomization of `base` (a path relative to `dir`) and `patch`, rendered by
/// kubectl: what a user's overlay renders to.
async fn render(s: &Scenario, dir: &Path, base: &Path, patch: &str) -> anyhow::Result<Vec<Value>> {
    std::fs::create_dir_all(dir)?;
    // Kustomize takes no absolute paths: `base` as seen from `dir`.
    let (from, to) = (dir.canonicalize()?, base.canonicalize()?);
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let base: std::path::PathBuf = std::iter::repeat_n(
        std::path::Component::ParentDir,
        from.components().count() - common,
    )
    .map(|c| c.as_os_str().to_owned())
    .chain(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_owned()),
    )
    .collect();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\npatches:\n  - patch: |-\n{}\n",
            base.display(),
            patch
                .lines()
                .map(|l| format!("      {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )?;
    let (ok, out) = s
        .kubectl_anywhere(&["kustomize", &dir.display().to_string()], None)
        .await?;
    anyhow::ensure!(ok, "kubectl kustomize {}: {out}", dir.display());
    serde_yaml::Deserializer::from_str(&out)
        .map(|doc| Value::deserialize(doc).context("rendered YAML"))
        .collect()
}

/// The overlay of deploy/ that the README's "Install" section shows.
fn install_patch(prometheus: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ballast\n  namespace: ballast-system\nspec:\n  template:\n    spec:\n      containers:\n        - name: operator\n          env:\n            - name: BALLAST_PROMETHEUS_URL\n              value: {prometheus}"
    )
}

pub async fn default_install(s: &mut Scenario) -> anyhow::Result<()> {
    let outcome = default_install_steps(s).await;
    // The examples' objects are not in the scenario's namespace: remove them here.
    let (_, out) = s
        .kubectl_anywhere(
            &[
                "delete",
                "--ignore-not-found",
                "--wait=false",
                "-k",
                &s.dir.join("examples").display().to_string(),
            ],
            None,
        )
        .await?;
    s.say(format!("cleanup: {out}"));
    let namespaces = Api::<Namespace>::all(s.client.clone());
    for ns in NAMESPACES {
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }
    // Gone before the next scenarios start: deploy-dry-run applies examples/ too.
    let gone = eventually(
        Duration::from_secs(90),
        "the examples' namespaces are deleted",
        || async {
            for ns in NAMESPACES {
                anyhow::ensure!(
                    namespaces.get_opt(ns).await?.is_none(),
                    "{ns} is still there"
                );
            }
            Ok(())
        },
    )
    .await;
    outcome.and(gone)
}

async fn default_install_steps(s: &mut Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(
        s.env.file_sd.is_some(),
        "PROMETHEUS_FILE_SD_DIR is not set: the examples' series reach the harness Prometheus through it"
    );
    let repo = s.env.repo.clone();
    let prometheus = s.env.prometheus_url.clone();

    // 1. deploy/ with the one setting, rendered as a user's overlay would be.
    let install = render(
        s,
        &s.dir.join("install"),
        &repo.join("deploy"),
        &install_patch(&prometheus),
    )
    .await?;
    let operator = install
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "ballast")
        .context("the overlay renders no Deployment ballast")?;
    let container = &operator["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let url = env
        .iter()
        .find(|(k, _)| k == "BALLAST_PROMETHEUS_URL")
        .map(|(_, v)| v.as_str());
    anyhow::ensure!(
        url == Some(prometheus.as_str()),
        "the overlay's operator container has BALLAST_PROMETHEUS_URL {url:?}, not {prometheus}: {env:?}"
    );
    s.say(format!(
        "deploy/ + overlay: the operator's environment is {env:?}"
    ));

    // 2. The series the examples' queries read (Redis's own come from the
    //    harness's redis exporter, job "redis"), scraped by the harness Prometheus.
    let load = Load::serve().await?;
    load.set_series("http_requests_total{service=\"batch-api\"}", 1000.0);
    load.set_series("kafka_consumergroup_lag{consumergroup=\"orders\"}", 2500.0);
    load.set_series(
        "kafka_consumergroup_oldest_message_age_seconds{consumergroup=\"orders\"}",
        12.0,
    );
    let scrape = s.env.register_scrape(
        &format!("{}-examples", s.ns),
        ([127, 0, 0, 1], load.port).into(),
        "examples",
    )?;
    let outcome = examples_reach_ready(s, &repo, &prometheus, &env).await;
    if let Some(file) = scrape {
        let _ = std::fs::remove_file(file);
    }
    outcome
}

async fn examples_reach_ready(
    s: &mut Scenario,
    repo: &Path,
    prometheus: &str,
    env: &[(String, String)],
) -> anyhow::Result<()> {
    s.operator_installed("op", env).await?;

    // 3. examples/ as it is, its ClusterMetricsSource's address patched.
    let source_patch = format!(
        "apiVersion: autoscaling.ballast.dev/v1alpha1\nkind: ClusterMetricsSource\nmetadata:\n  name: prometheus\nspec:\n  address: {prometheus}"
    );
    let examples_dir = s.dir.join("examples");
    let examples = render(s, &examples_dir, &repo.join("examples"), &source_patch).await?;
    let policies = examples
        .iter()
        .filter(|o| o["kind"] == "CustomScalingPolicy")
        .count();
    anyhow::ensure!(
        policies == WORKLOADS.len(),
        "examples/ has {policies} policies, the scenario knows {}",
        WORKLOADS.len()
    );
    let (ok, out) = s
        .kubectl_anywhere(&["apply", "-k", &examples_dir.display().to_string()], None)
        .await?;
    anyhow::ensure!(
        ok,
        "kubectl apply -k examples/ (admitted by the run's webhook): {out}"
    );
    s.say(format!("examples applied:\n{out}"));

    // 4. Their workloads, and the node pool of batch-api's policy.
    let mut workloads = String::new();
    for (ns, name, _, _) in WORKLOADS {
        workloads.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: main, image: registry.invalid/{name}:1}}]}}\n"
        ));
    }
    workloads.push_str(
        "---\napiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineDeployment\nmetadata: {name: batch-pool, namespace: batch}\nspec:\n  clusterName: ballast-e2e\n  replicas: 1\n  selector: {matchLabels: {ballast.dev/node-pool: batch-pool}}\n  template:\n    metadata: {labels: {ballast.dev/node-pool: batch-pool}}\n    spec:\n      bootstrap: {dataSecretName: kwok-none}\n      clusterName: ballast-e2e\n      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: KwokMachineTemplate, name: kwok}\n",
    );
    let (ok, out) = s
        .kubectl_anywhere(&["apply", "-f", "-"], Some(&workloads))
        .await?;
    anyhow::ensure!(ok, "the examples' workloads: {out}");

    // 5. Every policy evaluated, Ready=True, within a few of its own intervals.
    for (ns, _, policy, interval) in WORKLOADS {
        let api = Api::<CustomScalingPolicy>::namespaced(s.client.clone(), ns);
        eventually(
            polls(Duration::from_secs(interval), 4),
            format!("{ns}/{policy} is Ready=True with its metrics read"),
            || async {
                let p = api.get(policy).await?;
                let conditions = p.status.map(|st| st.conditions).unwrap_or_default();
                let is_true = |t: &str| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == t && c.status == "True")
                };
                anyhow::ensure!(
                    is_true("Ready") && is_true("MetricsAvailable") && is_true("AbleToScale"),
                    "conditions: {}",
                    conditions
                        .iter()
                        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                Ok(())
            },
        )
        .await?;
        s.say(format!("{ns}/{policy}: Ready=True"));
    }
    Ok(())
}

/// The README's CRD upgrade on a cluster that has the previous CRDs with objects
/// in them: `ballast crd | kubectl apply --server-side --force-conflicts -f -`.
/// The previous CRDs (tests/fixtures/crds-previous/, from before
/// `nodePool.capReplicas`) are installed as a kustomize user would have
/// (client-side `kubectl apply`), a source and a policy stored under them; after
/// the upgrade they are still there and read as the current types, a field only
/// the new schema has is kept (the old one pruned it), and an operator evaluates
/// the policy. It replaces the cluster's CRDs, so it runs alone; the upgrade
/// leaves the current ones in place.
pub async fn crd_upgrade(s: &mut Scenario) -> anyhow::Result<()> {
    let previous = s.env.repo.join("tests/fixtures/crds-previous");
    let (ok, out) = s
        .kubectl_anywhere(
            &[
                "apply",
                "-f",
                &previous
                    .join("customscalingpolicies.yaml")
                    .display()
                    .to_string(),
                "-f",
                &previous
                    .join("clustermetricssources.yaml")
                    .display()
                    .to_string(),
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "installing the previous CRDs: {out}");
    crds_established(s).await?;
    s.say("the previous CRDs are installed");

    s.deployment("web", 1).await?;
    s.deployment("pool", 1).await?;
    let ns = s.ns.clone();
    // Written as the previous release's users wrote it: raw, not from today's type
    // (whose defaults name fields the previous schema does not have).
    let source = format!("{ns}-prev");
    apply_json(
        s,
        &serde_json::json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
            "metadata": {"name": source},
            "spec": {"address": s.env.prometheus_url, "allowedNamespaces": [ns]}
        }),
    )
    .await?;
    let outcome = crd_upgrade_steps(s, &ns, &source).await;
    let _ = s
        .kubectl_anywhere(
            &["delete", "clustermetricssource", &source, "--wait=false"],
            None,
        )
        .await;
    // Whatever happened, the scenarios after this one get today's CRDs back.
    let crds = s.env.repo.join("crds").display().to_string();
    let (ok, out) = s
        .kubectl_anywhere(
            &["apply", "--server-side", "--force-conflicts", "-f", &crds],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "restoring crds/: {out}");
    crds_established(s).await?;
    outcome
}

async fn crd_upgrade_steps(s: &mut Scenario, ns: &str, source: &str) -> anyhow::Result<()> {
    use ballast::api::{ClusterMetricsSource, CustomScalingPolicy};
    let policy = serde_json::json!({
        "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4, "pollInterval": "2s",
            "metrics": [{"name": "demand", "source": source, "query": "vector(2)", "target": {"type": "AverageValue", "averageValue": "1"}}],
            "nodePool": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pool"}, "podsPerNode": 2, "maxNodes": 3, "capReplicas": true}
        }
    });
    // Stored under the previous schema, without the field it does not have; with
    // it, refused (kubectl's strict field validation): proof of the old schema.
    let mut previous_policy = policy.clone();
    if let Some(pool) = previous_policy["spec"]["nodePool"].as_object_mut() {
        pool.remove("capReplicas");
    }
    apply_json(s, &previous_policy).await?;
    let refused = apply_json(s, &policy).await;
    anyhow::ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("capReplicas")),
        "the previous CRD took nodePool.capReplicas: it is not the previous schema ({refused:?})"
    );

    // The upgrade, as the README says.
    let (code, crds) = s.ballast(&["crd"]).await?;
    anyhow::ensure!(code == 0, "ballast crd: {crds}");
    let (ok, out) = s
        .kubectl_anywhere(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&crds),
        )
        .await?;
    anyhow::ensure!(
        ok,
        "ballast crd | kubectl apply --server-side --force-conflicts -f -: {out}"
    );
    s.say(format!("upgrade: {}", out.replace('\n', "; ")));
    crds_established(s).await?;

    // The stored objects are there and read as the current types.
    let read = Api::<CustomScalingPolicy>::namespaced(s.client.clone(), &s.ns)
        .get("web")
        .await
        .context("the policy after the upgrade, as the current type")?;
    anyhow::ensure!(
        read.spec.node_pool.is_some(),
        "the policy lost its node pool"
    );
    Api::<ClusterMetricsSource>::all(s.client.clone())
        .get(source)
        .await
        .context("the source after the upgrade, as the current type")?;
    // A field only the new schema has is kept now.
    apply_json(s, &policy).await?;
    anyhow::ensure!(
        capped(s).await?,
        "nodePool.capReplicas is still pruned after the upgrade"
    );
    // And the operator evaluates the upgraded object.
    s.operator("op").await?;
    eventually(
        polls(Duration::from_secs(2), 4),
        "the upgraded policy is evaluated",
        || async {
            s.condition_is("web", "Ready", "True/Ready").await?;
            s.condition_is("web", "MetricsAvailable", "True/ValidMetricsFound")
                .await?;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

async fn crds_established(s: &Scenario) -> anyhow::Result<()> {
    let (ok, out) = s
        .kubectl_anywhere(
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=30s",
                "crd/customscalingpolicies.autoscaling.ballast.dev",
                "crd/clustermetricssources.autoscaling.ballast.dev",
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "the CRDs are not established: {out}");
    Ok(())
}

async fn apply_json(s: &Scenario, value: &serde_json::Value) -> anyhow::Result<()> {
    let (ok, out) = s
        .kubectl_anywhere(&["apply", "-f", "-"], Some(&value.to_string()))
        .await?;
    anyhow::ensure!(ok, "kubectl apply: {out}");
    Ok(())
}

/// Whether the stored policy `web` kept `spec.nodePool.capReplicas: true`.
async fn capped(s: &Scenario) -> anyhow::Result<bool> {
    let (ok, out) = s
        .kubectl(
            &[
                "get",
                "customscalingpolicy",
                "web",
                "-o",
                "jsonpath={.spec.nodePool.capReplicas}",
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "{out}");
    Ok(out == "true")
}

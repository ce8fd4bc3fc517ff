//! The admission webhook, called by the real kube-apiserver over TLS: every
//! foot-gun refused with a message naming the field and the other object;
//! hostile requests get clean errors; `ballast run` serves the same webhook; the
//! self-managed certificate is re-issued and its CA rotated while the run goes
//! through it. And deploy/ as a platform team installs it (server-side dry run),
//! the examples through the webhook, and a source's Secret that shows up nowhere.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use ballast_e2e::webhook::{self, Webhook};
use ballast_e2e::{Scenario, eventually, free_port, polls};
use serde_json::json;

const WEBHOOK_SAYS: &str =
    "admission webhook \"policies.autoscaling.ballast.dev\" denied the request";

fn suite_webhook() -> anyhow::Result<&'static Webhook> {
    webhook::SUITE
        .get()
        .ok_or_else(|| anyhow!("the run's webhook did not start"))
}

/// A policy as YAML: `maxReplicas: 4`, one metric, `extra` lines under spec.
fn policy_yaml(name: &str, kind: &str, target: &str, metric_extra: &str, extra: &str) -> String {
    let api_version = if kind == "ConfigMap" { "v1" } else { "apps/v1" };
    format!(
        "apiVersion: autoscaling.ballast.dev/v1alpha1\nkind: CustomScalingPolicy\nmetadata: {{name: {name}}}\nspec:\n  targetRef: {{apiVersion: {api_version}, kind: {kind}, name: {target}}}\n  maxReplicas: 4\n  metrics:\n    - {{name: m, {metric_extra}query: \"sum(rate(x[1m]))\", target: {{type: Value, value: \"10\"}}}}\n{extra}\n"
    )
}

/// `kubectl apply` of `yaml` is refused with a message containing `expected`.
async fn refused(s: &Scenario, yaml: &str, expected: &str) -> anyhow::Result<()> {
    let (ok, out) = s.kubectl(&["apply", "-f", "-"], Some(yaml)).await?;
    anyhow::ensure!(!ok, "accepted, expected a refusal with '{expected}': {out}");
    let shown: String = out
        .rsplit("denied the request: ")
        .next()
        .unwrap_or(&out)
        .chars()
        .take(200)
        .collect();
    s.say(format!("refused: {shown}"));
    anyhow::ensure!(
        out.contains(expected),
        "refused, but not with '{expected}': {out}"
    );
    Ok(())
}

async fn accepted(s: &Scenario, yaml: &str, dry_run: bool) -> anyhow::Result<String> {
    let mut args = vec!["apply", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let (ok, out) = s.kubectl(&args, Some(yaml)).await?;
    anyhow::ensure!(ok, "refused: {out}");
    Ok(out)
}

pub async fn admission(s: &mut Scenario) -> anyhow::Result<()> {
    let ns = s.ns.clone();
    // What `ballast lint` refuses is refused at the door too: every invalid fixture,
    // by the CRD's schema/CEL rules or, for what those cannot see, by the webhook.
    let fixtures = s.env.repo.join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut by_webhook, mut by_schema) = (0, 0);
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let path = file.to_string_lossy();
        // The fixtures name their namespace (default) or none.
        let (ok, out) = s
            .kubectl_anywhere(
                &["create", "-n", "default", "--dry-run=server", "-f", &path],
                None,
            )
            .await?;
        anyhow::ensure!(
            !ok,
            "fixture {} was accepted by the API server",
            file.display()
        );
        // A webhook that could not be called refuses too (failurePolicy Fail), but
        // for the wrong reason.
        anyhow::ensure!(
            !out.contains("failed calling webhook"),
            "fixture {}: the API server could not call the webhook: {out}",
            file.display()
        );
        if out.contains(WEBHOOK_SAYS) {
            by_webhook += 1;
        } else if [
            "Error from server",
            "strict decoding error",
            "is invalid",
            "no matches for kind",
        ]
        .iter()
        .any(|m| out.contains(m))
        {
            by_schema += 1;
        } else {
            anyhow::bail!(
                "fixture {} was refused, but not by the API server: {out}",
                file.display()
            );
        }
    }
    s.say(format!(
        "invalid fixtures refused: {by_schema} by the CRD schema/CEL, {by_webhook} by the webhook"
    ));
    let promql = fixtures.join("invalid-promql.yaml");
    let (_, out) = s
        .kubectl_anywhere(
            &[
                "create",
                "-n",
                "default",
                "--dry-run=server",
                "-f",
                &promql.to_string_lossy(),
            ],
            None,
        )
        .await?;
    anyhow::ensure!(
        out.contains(&format!(
            "{WEBHOOK_SAYS}: spec.metrics[0].query: invalid PromQL"
        )),
        "invalid PromQL was not refused by the webhook: {out}"
    );

    // A valid policy passes; one on a target that is not there yet passes with a warning.
    s.deployment("adm-a", 1).await?;
    accepted(
        s,
        &policy_yaml("adm-first", "Deployment", "adm-a", "", ""),
        false,
    )
    .await?;
    let out = accepted(
        s,
        &policy_yaml("adm-later", "Deployment", "adm-not-yet", "", ""),
        true,
    )
    .await?;
    anyhow::ensure!(
        out.contains("Warning: spec.targetRef: apps/v1 Deployment/adm-not-yet does not exist"),
        "no warning for the missing target: {out}"
    );

    // One autoscaler per target.
    refused(
        s,
        &policy_yaml("adm-second", "Deployment", "adm-a", "", ""),
        &format!("{WEBHOOK_SAYS}: spec.targetRef: apps/v1 Deployment/adm-a is already scaled by CustomScalingPolicy {ns}/adm-first"),
    )
    .await?;
    s.deployment("adm-hpa", 1).await?;
    let (ok, out) = s
        .kubectl(
            &[
                "autoscale",
                "deployment",
                "adm-hpa",
                "--max=3",
                "--name",
                "adm-hpa",
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "kubectl autoscale: {out}");
    refused(
        s,
        &policy_yaml("adm-on-hpa", "Deployment", "adm-hpa", "", ""),
        &format!("is already scaled by HorizontalPodAutoscaler {ns}/adm-hpa"),
    )
    .await?;
    // KEDA's real ScaledObject CRD, from its module (no KEDA controller: only the object).
    install_crds(
        s,
        s.env.keda_crd.as_deref(),
        "KEDA_CRD",
        &["crd/scaledobjects.keda.sh"],
    )
    .await?;
    s.deployment("adm-keda", 1).await?;
    let so = format!(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: adm-so}}\nspec:\n  scaleTargetRef: {{name: adm-keda}}\n  triggers:\n    - type: prometheus\n      metadata: {{serverAddress: \"{}\", query: \"vector(1)\", threshold: \"1\"}}\n",
        s.env.prometheus_url
    );
    accepted(s, &so, false).await.context("a ScaledObject")?;
    refused(
        s,
        &policy_yaml("adm-on-keda", "Deployment", "adm-keda", "", ""),
        &format!("is already scaled by KEDA ScaledObject {ns}/adm-so"),
    )
    .await?;

    // Kinds that cannot be scaled; node pools.
    let (ok, out) = s.kubectl(&["create", "configmap", "adm-cm"], None).await?;
    anyhow::ensure!(ok, "{out}");
    refused(
        s,
        &policy_yaml("adm-cm", "ConfigMap", "adm-cm", "", ""),
        "spec.targetRef: kind ConfigMap (v1) has no /scale subresource",
    )
    .await?;
    s.deployment("adm-b", 1).await?;
    s.deployment("adm-c", 1).await?;
    let pool = "  nodePool: {targetRef: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, name: adm-pool}, podsPerNode: 4, maxNodes: 3}";
    accepted(
        s,
        &policy_yaml("adm-pool-1", "Deployment", "adm-b", "", pool),
        false,
    )
    .await
    .context("a policy with a node pool")?;
    refused(
        s,
        &policy_yaml("adm-pool-2", "Deployment", "adm-c", "", pool),
        &format!("spec.nodePool.targetRef: cluster.x-k8s.io/v1beta1 MachineDeployment/adm-pool is already the node pool of CustomScalingPolicy {ns}/adm-pool-1"),
    )
    .await?;
    refused(
        s,
        &policy_yaml("adm-pool-3", "Deployment", "adm-c", "", "  nodePool: {targetRef: {apiVersion: v1, kind: ConfigMap, name: adm-cm}, podsPerNode: 4, maxNodes: 3}"),
        "spec.nodePool.targetRef: kind ConfigMap (v1) has no /scale subresource; set spec.nodePool.replicasPath",
    )
    .await?;

    // Sources: missing; not allowing the namespace; credentials outside the operator's namespace.
    refused(
        s,
        &policy_yaml(
            "adm-src",
            "Deployment",
            "adm-c",
            "source: adm-nowhere, ",
            "",
        ),
        "spec.metrics[0].source: ClusterMetricsSource \"adm-nowhere\" does not exist",
    )
    .await?;
    let narrow = s
        .source(
            "narrow",
            json!({"address": s.env.prometheus_url, "allowedNamespaces": ["team-a", "team-b"]}),
        )
        .await?;
    refused(
        s,
        &policy_yaml(
            "adm-src",
            "Deployment",
            "adm-c",
            &format!("source: {narrow}, "),
            "",
        ),
        &format!("does not allow namespace \"{ns}\" (its allowedNamespaces: team-a, team-b)"),
    )
    .await?;
    let bad_secret = format!(
        "apiVersion: autoscaling.ballast.dev/v1alpha1\nkind: ClusterMetricsSource\nmetadata: {{name: {narrow}}}\nspec:\n  address: \"{}\"\n  allowedNamespaces: [\"*\"]\n  auth: {{bearerToken: {{namespace: default, name: t, key: token}}}}\n",
        s.env.prometheus_url
    );
    refused(s, &bad_secret, "spec.auth.bearerToken.namespace: the Secret must be in the operator's namespace \"ballast-system\"").await?;
    // Namespace isolation: a target in another namespace cannot even be written down.
    let other_ns = policy_yaml("adm-x", "Deployment", "adm-c", "", "")
        .replace("name: adm-c}", "name: adm-c, namespace: kube-system}");
    refused(s, &other_ns, "unknown field \"spec.targetRef.namespace\"").await?;

    // A conflict that appeared after creation does not block metadata edits.
    let (ok, out) = s
        .kubectl(
            &[
                "autoscale",
                "deployment",
                "adm-a",
                "--max=3",
                "--name",
                "adm-late-hpa",
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "kubectl autoscale: {out}");
    let (ok, out) = s
        .kubectl(&["label", "csp", "adm-first", "team=cache"], None)
        .await?;
    anyhow::ensure!(ok, "a label edit was refused: {out}");
    let (_, out) = s
        .kubectl(
            &[
                "patch",
                "csp",
                "adm-first",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"maxReplicas":5}}"#,
            ],
            None,
        )
        .await?;
    anyhow::ensure!(
        out.contains(&format!("HorizontalPodAutoscaler {ns}/adm-late-hpa")),
        "a spec change on a target an HPA now scales was not refused: {out}"
    );
    s.kubectl(&["delete", "hpa", "adm-late-hpa"], None).await?;

    hostile_requests(s).await?;
    ballast_run_serves_it(s).await
}

/// `curl` with the run's CA: the HTTP status and the body.
async fn curl(s: &Scenario, args: &[&str]) -> anyhow::Result<(String, String)> {
    let body = s.dir.join("curl.out");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .await
        .context("curl")?;
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((code, std::fs::read_to_string(&body).unwrap_or_default()))
}

/// Hostile requests straight at the webhook: clean errors, and it stays up.
async fn hostile_requests(s: &Scenario) -> anyhow::Result<()> {
    let webhook = suite_webhook()?;
    let ca = s.dir.join("webhook-ca.pem");
    std::fs::write(&ca, webhook::ca_bundle(&s.client).await?)?;
    let ca = ca.to_string_lossy().into_owned();
    let url = format!("https://127.0.0.1:{}/validate", webhook.port);
    let json = ["-H", "Content-Type: application/json"];
    let (code, body) = curl(
        s,
        &[&["--cacert", &ca], &json[..], &["--data", "not json", &url]].concat(),
    )
    .await?;
    anyhow::ensure!(
        code == "400" && body.contains("not JSON"),
        "garbage body: HTTP {code} {body}"
    );
    let no_request = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
    let (code, body) = curl(
        s,
        &[&["--cacert", &ca], &json[..], &["--data", no_request, &url]].concat(),
    )
    .await?;
    anyhow::ensure!(
        code == "400" && body.contains("no request"),
        "review without request: HTTP {code} {body}"
    );
    let big = s.dir.join("big.body");
    std::fs::write(&big, vec![b'x'; 3_000_000])?;
    let big = format!("@{}", big.display());
    let (code, _) = curl(
        s,
        &[
            &["--cacert", &ca],
            &json[..],
            &["--data-binary", &big, &url],
        ]
        .concat(),
    )
    .await?;
    anyhow::ensure!(code == "413", "a 3 MB body: HTTP {code}, expected 413");
    let (code, _) = curl(
        s,
        &[
            "--data",
            "x",
            &format!("http://127.0.0.1:{}/validate", webhook.port),
        ],
    )
    .await?;
    anyhow::ensure!(code == "000", "plain HTTP got HTTP {code}");
    let health = format!("https://127.0.0.1:{}/healthz", webhook.port);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let (ca, health) = (ca.clone(), health.clone());
        burst.spawn(async move {
            let out = tokio::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "10",
                    "--cacert",
                    &ca,
                    &health,
                ])
                .output()
                .await;
            out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        });
    }
    let codes: Vec<String> = burst.join_all().await;
    let mut counts = std::collections::BTreeMap::new();
    for code in &codes {
        *counts.entry(code.as_str()).or_insert(0) += 1;
    }
    s.say(format!("60 concurrent requests: {counts:?}"));
    anyhow::ensure!(
        counts.keys().all(|c| *c == "200" || *c == "503"),
        "a burst got answers other than 200/503: {counts:?}"
    );
    let alive = std::process::Command::new("kill")
        .args(["-0", &webhook.pid.to_string()])
        .status()?;
    anyhow::ensure!(alive.success(), "the webhook died");
    accepted(
        s,
        &policy_yaml("adm-after", "Deployment", "adm-not-yet", "", ""),
        true,
    )
    .await
    .context("the webhook stopped answering the API server after the hostile requests")?;
    Ok(())
}

/// `ballast run --webhook-addr` serves the same webhook (its own certificate
/// Secret, in the namespace), and refuses the same conflict over TLS.
async fn ballast_run_serves_it(s: &mut Scenario) -> anyhow::Result<()> {
    let port = free_port()?;
    s.operator_with_webhook("op", port).await?;
    let secret = eventually(
        polls(Duration::from_secs(2), 5),
        "ballast run's webhook certificate Secret",
        || async {
            let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
                s.client.clone(),
                &s.ns,
            );
            let secret = secrets.get("ballast-webhook-tls").await?;
            let ca = secret
                .data
                .and_then(|d| d.get("ca.crt").cloned())
                .ok_or_else(|| anyhow!("no ca.crt"))?;
            Ok(String::from_utf8_lossy(&ca.0).into_owned())
        },
    )
    .await?;
    let ca = s.dir.join("op-ca.pem");
    std::fs::write(&ca, secret)?;
    let (_, object) = s
        .kubectl(
            &["create", "--dry-run=client", "-o", "json", "-f", "-"],
            Some(&policy_yaml("adm-second", "Deployment", "adm-a", "", "")),
        )
        .await?;
    let object: serde_json::Value =
        serde_json::from_str(&object).context("kubectl's JSON of the policy")?;
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-1", "operation": "CREATE", "namespace": s.ns, "name": "x",
            "kind": {"group": "autoscaling.ballast.dev", "version": "v1alpha1", "kind": "CustomScalingPolicy"},
            "object": object
        }
    });
    let file = s.dir.join("review.json");
    std::fs::write(&file, review.to_string())?;
    let (code, body) = curl(
        s,
        &[
            "--cacert",
            &ca.to_string_lossy(),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("https://127.0.0.1:{port}/validate"),
        ],
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("ballast run's webhook answered HTTP {code}: {body}"))?;
    let response = &answer["response"];
    anyhow::ensure!(
        response["uid"] == "e2e-1"
            && response["allowed"] == false
            && response["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("CustomScalingPolicy {}/adm-first", s.ns))),
        "ballast run's webhook answered wrongly: {body}"
    );
    s.say("ballast run --webhook-addr refused the same conflict over TLS");
    Ok(())
}

/// Another project's CRDs (from its Go module, at the path e2e/lib.sh gives in
/// `var`), applied server-side and waited on until established.
async fn install_crds(
    s: &Scenario,
    file: Option<&std::path::Path>,
    var: &str,
    names: &[&str],
) -> anyhow::Result<()> {
    let file = file.ok_or_else(|| anyhow!("no {var} (e2e/lib.sh's path to the CRDs)"))?;
    let (ok, out) = s
        .kubectl(
            &["apply", "--server-side", "-f", &file.to_string_lossy()],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "installing {}: {out}", file.display());
    let mut wait = vec!["wait", "--for", "condition=established", "--timeout=30s"];
    wait.extend_from_slice(names);
    let (ok, out) = s.kubectl(&wait, None).await?;
    anyhow::ensure!(ok, "{names:?} not established: {out}");
    Ok(())
}

/// The ServiceMonitor and PrometheusRule CRDs deploy/ and the chart use.
async fn install_prometheus_operator_crds(s: &Scenario) -> anyhow::Result<()> {
    install_crds(
        s,
        s.env.prometheus_operator_crds.as_deref(),
        "PROMOP_CRDS",
        &[
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
    )
    .await
}

/// deploy/ as a platform team installs it, checked by the real API server
/// (server-side dry run) against the real schemas, the Prometheus Operator's CRDs
/// included; then the examples, for real and through the webhook.
pub async fn deploy_dry_run(s: &mut Scenario) -> anyhow::Result<()> {
    install_prometheus_operator_crds(s).await?;
    let deploy = s.env.repo.join("deploy");
    let (ok, out) = s
        .kubectl_anywhere(
            &["apply", "--dry-run=server", "-k", &deploy.to_string_lossy()],
            None,
        )
        .await?;
    anyhow::ensure!(
        ok,
        "kubectl apply --dry-run=server -k deploy/ failed: {out}"
    );
    for kind in [
        "customresourcedefinition",
        "serviceaccount",
        "clusterrole",
        "role",
        "deployment",
        "poddisruptionbudget",
        "service",
        "validatingwebhookconfiguration",
        "servicemonitor",
        "prometheusrule",
        "configmap",
    ] {
        anyhow::ensure!(
            out.lines()
                .any(|l| l.starts_with(&format!("{kind}.")) || l.starts_with(&format!("{kind}/"))),
            "the dry run did not include a {kind}: {out}"
        );
    }
    s.say(format!(
        "deploy/ dry run: {} objects",
        out.lines()
            .filter(|l| l.contains("(server dry run)"))
            .count()
    ));
    // The examples, for real and through the webhook: accepted (their workloads do
    // not exist here, so with warnings), then removed.
    let examples = s.env.repo.join("examples");
    let (ok, out) = s
        .kubectl_anywhere(&["apply", "-k", &examples.to_string_lossy()], None)
        .await?;
    let _ = s
        .kubectl_anywhere(
            &["delete", "-k", &examples.to_string_lossy(), "--wait=false"],
            None,
        )
        .await;
    anyhow::ensure!(ok, "kubectl apply -k examples/ was refused: {out}");
    let policies = out
        .lines()
        .filter(|l| l.starts_with("customscalingpolicy"))
        .count();
    s.say(format!("examples/: {policies} policies admitted"));
    anyhow::ensure!(policies == 3, "expected 3 example policies: {out}");
    Ok(())
}

/// The Helm chart as `helm install` would send it, with default values and with
/// each of charts/ballast/ci/'s values files: every object (CRDs included)
/// accepted by the real API server in a server-side dry run, against the real
/// schemas of the Prometheus Operator's and cert-manager's CRDs.
pub async fn chart_dry_run(s: &mut Scenario) -> anyhow::Result<()> {
    install_prometheus_operator_crds(s).await?;
    install_crds(
        s,
        s.env.cert_manager_crds.as_deref(),
        "CERTMANAGER_CRDS",
        &[
            "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io",
        ],
    )
    .await?;
    let helm = s
        .env
        .helm
        .clone()
        .ok_or_else(|| anyhow!("HELM is not set (e2e/scenarios builds it with e2e/tool)"))?;
    let chart = s.env.repo.join("charts/ballast");
    let mut values = vec![None];
    for entry in std::fs::read_dir(chart.join("ci"))? {
        values.push(Some(entry?.path()));
    }
    for file in values {
        let mut args = vec![
            "template".to_string(),
            "ballast".to_string(),
            chart.display().to_string(),
            "--namespace".to_string(),
            "ballast-system".to_string(),
            "--include-crds".to_string(),
        ];
        if let Some(file) = &file {
            args.extend(["-f".to_string(), file.display().to_string()]);
        }
        let out = tokio::process::Command::new(&helm)
            .args(&args)
            .output()
            .await
            .with_context(|| format!("running {}", helm.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered = String::from_utf8(out.stdout)?;
        let objects = rendered.lines().filter(|l| l.starts_with("kind: ")).count();
        let (ok, applied) = s
            .kubectl_anywhere(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered))
            .await?;
        let which = file.as_ref().map_or("default values".to_string(), |f| {
            f.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        });
        anyhow::ensure!(
            ok,
            "the chart ({which}) refused in a server-side dry run: {applied}"
        );
        let accepted = applied
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        anyhow::ensure!(
            accepted == objects,
            "the chart ({which}) renders {objects} objects, the dry run accepted {accepted}: {applied}"
        );
        s.say(format!(
            "helm template ({which}): {accepted} objects accepted by the API server"
        ));
    }
    Ok(())
}

/// Over the run the serving certificate was re-issued every ~30 s and the CA
/// rotated once (staged, then promoted) ~5 min in, while every scenario's objects
/// went through the webhook. Listed last; waits for the rotation if the run was
/// quicker than that.
pub async fn webhook_certificates(s: &mut Scenario) -> anyhow::Result<()> {
    let webhook = suite_webhook()?;
    let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        s.client.clone(),
        "ballast-system",
    );
    let first_ca = webhook.first_ca.clone();
    // A CA lives ten certificate lives (450 s) and is rotated at two thirds of it.
    let ca = eventually(Duration::from_secs(360), "the CA is rotated", || async {
        let secret = secrets.get("ballast-webhook-tls").await?;
        let ca = secret
            .data
            .and_then(|d| d.get("ca.crt").cloned())
            .ok_or_else(|| anyhow!("no ca.crt"))?;
        let ca = String::from_utf8_lossy(&ca.0).into_owned();
        anyhow::ensure!(
            !ca.trim().is_empty() && !first_ca.contains(ca.trim()),
            "still the first CA"
        );
        Ok(ca)
    })
    .await?;
    let log = std::fs::read_to_string(&webhook.log)?;
    anyhow::ensure!(
        log.contains("step=StageCa") && log.contains("step=PromoteCa"),
        "no staged and promoted CA in the webhook's log"
    );
    s.say(format!(
        "certificate updates by the webhook: {}",
        log.matches("certificates updated").count()
    ));
    // Re-issued at least once more since, and served: by the current CA.
    let current_ca = ca.trim().to_string();
    let cert = eventually(
        Duration::from_secs(40),
        "the served certificate is issued by the current CA",
        || async {
            let cert = webhook::served_certificate(webhook.port)?;
            let issued = openssl_field(&cert, "-issuer")?
                .trim_start_matches("issuer=")
                .trim()
                .to_string();
            let subject = openssl_field(&current_ca, "-subject")?
                .trim_start_matches("subject=")
                .trim()
                .to_string();
            anyhow::ensure!(
                issued == subject,
                "issued by '{issued}', the CA is '{subject}'"
            );
            Ok(cert)
        },
    )
    .await?;
    anyhow::ensure!(
        !cert.is_empty() && cert != webhook.first_cert,
        "the served certificate never changed"
    );
    let bundle = webhook::ca_bundle(&s.client).await?;
    let body_line = current_ca.lines().nth(1).unwrap_or_default();
    anyhow::ensure!(
        bundle.contains(body_line),
        "the current CA is not in the caBundle"
    );
    accepted(
        s,
        &policy_yaml("cert-probe", "Deployment", "adm-not-yet", "", ""),
        true,
    )
    .await
    .context("the API server no longer trusts the webhook")?;
    let metrics = ballast_e2e::get(format!("http://127.0.0.1:{}/metrics", webhook.admin))
        .await?
        .text()
        .await?;
    let expiry = metrics
        .lines()
        .find(|l| l.starts_with("ballast_webhook_certificate_expiry_timestamp_seconds "))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    let now = ballast_e2e::chaos::unix_now();
    anyhow::ensure!(
        expiry.is_some_and(|e| e > now),
        "ballast_webhook_certificate_expiry_timestamp_seconds is {expiry:?}"
    );
    Ok(())
}

fn openssl_field(pem: &str, field: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", field])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin"))?
        .write_all(pem.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A source with a bearer token and a header value from a Secret in the
/// operator's namespace: the operator reads them (with deploy/'s RBAC) and
/// neither shows up anywhere (the token is a prefix of the header value): not in
/// the operator's or the webhook's log, status, Events, sources or metrics.
pub async fn secrets_stay_secret(s: &mut Scenario) -> anyhow::Result<()> {
    let token = format!(
        "ballast-e2e-token-{}-{}",
        std::process::id(),
        ballast_e2e::chaos::unix_now().to_bits()
    );
    let secret_name = format!("{}-token", s.ns);
    let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        s.client.clone(),
        "ballast-system",
    );
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": secret_name},
        // The token, and a header value (an API key) from the same Secret.
        "stringData": {"token": token, "api-key": format!("{token}-header")}
    }))?;
    secrets
        .create(&Default::default(), &secret)
        .await
        .context("creating the Secret")?;
    let outcome = secrets_steps(s, &secret_name, &token).await;
    let _ = secrets.delete(&secret_name, &Default::default()).await;
    outcome
}

async fn secrets_steps(s: &mut Scenario, secret: &str, token: &str) -> anyhow::Result<()> {
    let ns = s.ns.clone();
    let source = s
        .source(
            "auth",
            json!({
                "address": s.env.prometheus_url, "allowedNamespaces": [ns],
                "auth": {"bearerToken": {"namespace": "ballast-system", "name": secret, "key": "token"}},
                "headers": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"namespace": "ballast-system", "name": secret, "key": "api-key"}}}]
            }),
        )
        .await?;
    let op = s.operator("op").await?;
    s.deployment("authed", 1).await?;
    s.policy(
        "authed",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "authed"},
            "maxReplicas": 3, "pollInterval": "2s",
            "metrics": [{"name": "demand", "source": source, "query": "vector(2)", "target": {"type": "AverageValue", "averageValue": "1"}}]
        }),
    )
    .await?;
    eventually(
        polls(Duration::from_secs(2), 5),
        "the authenticated source is used",
        || s.replicas_are("authed", 2),
    )
    .await?;
    let mut everything = s.everything_visible(op).await?;
    if let Ok(webhook) = suite_webhook() {
        everything.push_str(&std::fs::read_to_string(&webhook.log).unwrap_or_default());
    }
    let leaks = everything.matches(token).count();
    s.say(format!(
        "searched {} bytes of logs, status, Events and metrics: {leaks} occurrences of the token",
        everything.len()
    ));
    anyhow::ensure!(leaks == 0, "the token leaked {leaks} times");
    Ok(())
}

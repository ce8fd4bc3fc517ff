//! The Helm chart (charts/ballast) with the real `helm`, built from its Go module
//! by e2e/tool (pinned in e2e/controlplane/helm, cached by the pin; the first
//! build takes about two minutes): it lints; its default render is what
//! `kubectl kustomize deploy/` installs; the cert-manager values give the
//! cert-manager wiring; no rendered Role has a wildcard; a bad value is refused by
//! name. The harness's API server accepts the renders in the `deploy-dry-run`
//! e2e scenario.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_yaml::Value;
use support::root;

mod support;

/// The pinned helm (built once per pin set, then reused by every test).
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| support::go_tool("e2e/controlplane/helm"))
}

fn run(program: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `helm template ballast charts/ballast -n ballast-system` with `args` added.
fn template(args: &[&str]) -> Vec<Value> {
    let mut all = vec![
        "template",
        "ballast",
        "charts/ballast",
        "--namespace",
        "ballast-system",
    ];
    all.extend_from_slice(args);
    let (ok, out, err) = run(helm(), &all);
    assert!(ok, "helm {}: {err}", all.join(" "));
    parse(&out)
}

fn kustomize(dir: &str) -> Vec<Value> {
    let (ok, out, err) = run(Path::new("kubectl"), &["kustomize", dir]);
    assert!(ok, "kubectl kustomize {dir}: {err}");
    parse(&out)
}

fn key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// An object as the API server would compare it: without the labels only Helm
/// sets, and with the dashboard's data free of the trailing newline that a YAML
/// block scalar and a kustomize file read treat differently.
fn normalized(mut o: Value) -> Value {
    if let Some(labels) = o
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_mapping_mut)
    {
        for helm_only in [
            "helm.sh/chart",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
        ] {
            labels.remove(helm_only);
        }
    }
    if let Some(data) = o.get_mut("data").and_then(Value::as_mapping_mut) {
        for (_, v) in data.iter_mut() {
            if let Some(s) = v.as_str() {
                *v = Value::String(s.trim_end().to_string());
            }
        }
    }
    o
}

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| (key(&o), normalized(o)))
        .collect()
}

#[test]
fn the_chart_lints_with_every_values_file() {
    let (ok, out, err) = run(helm(), &["lint", "--strict", "charts/ballast"]);
    assert!(ok, "helm lint --strict charts/ballast:\n{out}{err}");
    for file in values_files() {
        let (ok, out, err) = run(helm(), &["lint", "--strict", "charts/ballast", "-f", &file]);
        assert!(ok, "helm lint --strict -f {file}:\n{out}{err}");
    }
}

fn values_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(root().join("charts/ballast/ci"))
        .expect("charts/ballast/ci")
        .map(|e| {
            format!(
                "charts/ballast/ci/{}",
                e.expect("dir entry").file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no values file in charts/ballast/ci");
    files
}

/// `helm install` with default values installs what `kubectl apply -k deploy/`
/// does, object for object, but the Namespace (Helm's is `--create-namespace`).
#[test]
fn the_default_render_installs_what_deploy_installs() {
    let chart = by_key(template(&["--include-crds"]));
    let mut deploy = by_key(kustomize("deploy"));
    let namespace = deploy
        .remove("Namespace/ballast-system")
        .expect("deploy/ creates its namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
        Some("restricted")
    );
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        deploy.keys().collect::<Vec<_>>(),
        "the chart and deploy/ install different objects"
    );
    for (k, from_chart) in &chart {
        // The CRDs are `ballast crd`'s output in both (tests/cli.rs checks each
        // copy); kustomize adds its labels to them and Helm installs crds/ as is.
        if k.starts_with("CustomResourceDefinition/") {
            continue;
        }
        let from_deploy = &deploy[k];
        assert!(
            from_chart == from_deploy,
            "{k}: the chart's default render differs from deploy/'s\n--- chart:\n{}\n--- deploy/:\n{}",
            serde_yaml::to_string(from_chart).unwrap_or_default(),
            serde_yaml::to_string(from_deploy).unwrap_or_default()
        );
    }
}

/// The cert-manager values wire the webhook as examples/cert-manager/ does for
/// kustomize, and the monitoring switches leave their objects out.
#[test]
fn the_cert_manager_values_wire_cert_manager_and_drop_monitoring() {
    let all = by_key(template(&[
        "-f",
        "charts/ballast/ci/cert-manager-values.yaml",
    ]));
    for absent in [
        "ServiceMonitor/ballast",
        "PrometheusRule/ballast",
        "ConfigMap/ballast-grafana-dashboard",
    ] {
        assert!(!all.contains_key(absent), "{absent} is rendered");
    }
    let certificate = &all["Certificate/ballast-webhook"];
    assert_eq!(
        certificate["spec"]["secretName"].as_str(),
        Some("ballast-webhook-cert-manager")
    );
    assert_eq!(
        certificate["spec"]["issuerRef"]["name"].as_str(),
        Some("ballast-selfsigned")
    );
    assert!(all.contains_key("Issuer/ballast-selfsigned"));
    let vwc = &all["ValidatingWebhookConfiguration/ballast"];
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str(),
        Some("ballast-system/ballast-webhook")
    );
    let deployment = &all["Deployment/ballast"];
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(3));
    let pod = &deployment["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for arg in [
        "--webhook-cert-dir=/certs",
        "--log=debug",
        "--lease-duration=20s",
    ] {
        assert!(args.contains(&arg), "{arg} not in {args:?}");
    }
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"].as_str(),
        Some("ballast-webhook-cert-manager")
    );
    assert_eq!(
        pod["nodeSelector"]["kubernetes.io/os"].as_str(),
        Some("linux")
    );
    assert_eq!(pod["tolerations"][0]["key"].as_str(), Some("dedicated"));
    let env = &pod["containers"][0]["env"][0];
    assert_eq!(
        (env["name"].as_str(), env["value"].as_str()),
        (
            Some("BALLAST_PROMETHEUS_URL"),
            Some("http://thanos-query.monitoring.svc:9090")
        )
    );
    // cert-manager writes the caBundle: the operator needs no write to the
    // webhook configuration.
    let role = &all["ClusterRole/ballast"];
    assert!(
        !role["rules"]
            .as_sequence()
            .expect("rules")
            .iter()
            .any(|r| r["resources"][0].as_str() == Some("validatingwebhookconfigurations")),
        "the ClusterRole still updates the webhook configuration"
    );
    // With your own issuer, no Issuer of the chart's.
    let own = by_key(template(&[
        "-f",
        "charts/ballast/ci/cert-manager-values.yaml",
        "--set",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
        "--set",
        "webhook.certManager.issuerRef.name=corp-ca",
    ]));
    assert!(!own.contains_key("Issuer/ballast-selfsigned"));
    assert_eq!(
        own["Certificate/ballast-webhook"]["spec"]["issuerRef"]["name"].as_str(),
        Some("corp-ca")
    );
}

#[test]
fn no_rendered_role_has_a_wildcard() {
    let mut renders = vec![template(&[])];
    for file in values_files() {
        renders.push(template(&["-f", &file]));
    }
    for objects in renders {
        for role in objects
            .iter()
            .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
        {
            for rule in role["rules"].as_sequence().expect("rules") {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    for v in rule[field].as_sequence().into_iter().flatten() {
                        assert_ne!(v.as_str(), Some("*"), "{}: {field} has *", key(role));
                    }
                }
            }
        }
    }
}

#[test]
fn a_bad_value_is_refused_by_name() {
    let (ok, _, err) = run(
        helm(),
        &[
            "template",
            "ballast",
            "charts/ballast",
            "--set",
            "webhook.certificates=acme",
        ],
    );
    assert!(!ok, "webhook.certificates=acme rendered");
    assert!(
        err.contains("webhook.certificates") && err.contains("acme"),
        "the error names the value: {err}"
    );
}

#[test]
fn an_empty_prometheus_url_means_no_default_source() {
    let all = by_key(template(&["--set", "prometheus.url="]));
    let env = &all["Deployment/ballast"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        !env.as_sequence()
            .expect("env")
            .iter()
            .any(|e| e["name"].as_str() == Some("BALLAST_PROMETHEUS_URL")),
        "{env:?}"
    );
}

/// deploy/'s rbac, operator, webhook and monitoring manifests are the chart's
/// render, and the chart's files/ are deploy/'s sources (charts/render --check).
#[test]
fn deploy_is_the_charts_render() {
    let (ok, out, err) = run(&root().join("charts/render"), &["--check"]);
    assert!(ok, "charts/render --check (fix: make deploy):\n{out}{err}");
}

/// `ballast lint -` on what GitOps renders: `kubectl kustomize examples` passes
/// with every policy and source in it checked, and a Helm chart that templates a
/// bad query fails with the place in the rendered text.
#[test]
fn rendered_manifests_are_linted_from_stdin() {
    use std::io::Write as _;
    let lint = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["lint", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ballast runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, rendered, err) = run(Path::new("kubectl"), &["kustomize", "examples"]);
    assert!(ok, "kubectl kustomize examples: {err}");
    let ours = parse(&rendered)
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("CustomScalingPolicy" | "ClusterMetricsSource")
            )
        })
        .count();
    assert!(ours >= 4, "{ours} policies and sources in examples/");
    let (code, out, summary) = lint(&rendered);
    assert_eq!(code, Some(0), "{out}{summary}");
    assert!(
        summary.contains(&format!("checked {ours} objects in 1 files")),
        "{summary}"
    );

    let chart = tempfile::tempdir().expect("temp dir");
    let dir = chart.path();
    fs::create_dir_all(dir.join("templates")).expect("mkdir");
    fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: policies\nversion: 0.1.0\n",
    )
    .expect("write");
    fs::write(dir.join("values.yaml"), "query: sum(rate(x[1m])\n").expect("write");
    fs::write(
        dir.join("templates/policy.yaml"),
        "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata:
  name: {{ .Release.Name }}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
    - name: evictions
      query: {{ .Values.query | quote }}
      target: {type: Value, value: \"100\"}
",
    )
    .expect("write");
    let path = dir.to_string_lossy().into_owned();
    let (ok, rendered, err) = run(helm(), &["template", "web", &path]);
    assert!(ok, "helm template: {err}");
    let line = rendered
        .lines()
        .position(|l| l.contains("query: \"sum(rate(x[1m])\""))
        .expect("the query in the render")
        + 1;
    let (code, out, summary) = lint(&rendered);
    assert_eq!(code, Some(1), "{out}{summary}");
    assert!(
        out.starts_with(&format!("<stdin>:{line}:14: error[promql-syntax]: CustomScalingPolicy web: spec.metrics[0].query: ")),
        "{out}"
    );
}

/// Every alert's runbook_url is an absolute link: the release's docs/runbooks/ on
/// GitHub by default, or `prometheusRule.runbookBaseURL`; each names a page that
/// exists in docs/runbooks/.
#[test]
fn runbook_urls_are_absolute_and_name_a_runbook() {
    let urls = |args: &[&str]| -> Vec<String> {
        template(args)
            .iter()
            .filter(|o| o["kind"] == "PrometheusRule")
            .flat_map(|o| {
                o["spec"]["groups"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|r| r["annotations"]["runbook_url"].as_str().map(str::to_string))
            .collect()
    };
    let version = fs::read_to_string(root().join("charts/ballast/Chart.yaml"))
        .expect("Chart.yaml")
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("appVersion");
    let default_base =
        format!("https://github.com/ballast-dev/ballast/blob/v{version}/docs/runbooks/");
    let rules =
        fs::read_to_string(root().join("deploy/prometheus/ballast.rules.yaml")).expect("rules");
    let alerts = rules.matches("runbook_url:").count();
    for (args, base) in [
        (vec![], default_base.as_str()),
        (
            vec![
                "--set",
                "prometheusRule.runbookBaseURL=https://wiki.example.com/ballast",
            ],
            "https://wiki.example.com/ballast/",
        ),
    ] {
        let found = urls(&args);
        assert_eq!(found.len(), alerts, "one runbook_url per alert: {found:?}");
        for url in found {
            let page = url
                .strip_prefix(base)
                .unwrap_or_else(|| panic!("{url} does not start with {base}"));
            assert!(
                root().join("docs/runbooks").join(page).is_file(),
                "{url}: no docs/runbooks/{page}"
            );
        }
    }
}

//! The manifests in deploy/: they render with kustomize, the PrometheusRule carries
//! exactly the alert rules promtool tests, RBAC has no wildcards, the operator runs
//! hardened, and the dashboard has what Grafana needs.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs(path: &str) -> Vec<Value> {
    let text = fs::read_to_string(root().join(path)).expect("manifest readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn rendered() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy"])
        .current_dir(root())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn kustomize_renders_every_part_of_the_install() {
    let all = rendered();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(
            !kind(&all, k).is_empty(),
            "kubectl kustomize deploy/ renders no {k}"
        );
    }
    assert_eq!(kind(&all, "CustomResourceDefinition").len(), 2);
    let image = kind(&all, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("an image");
    assert!(
        image.contains("ballast:"),
        "the image comes from kustomize `images:`: {image}"
    );
    let dashboard = kind(&all, "ConfigMap")[0];
    assert_eq!(
        dashboard["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
}

#[test]
fn the_prometheus_rule_carries_exactly_the_tested_rules() {
    let file: Value = serde_yaml::from_str(
        &fs::read_to_string(root().join("deploy/prometheus/ballast.rules.yaml")).expect("rules"),
    )
    .expect("rules YAML");
    let monitoring = docs("deploy/monitoring.yaml");
    let rule = kind(&monitoring, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    assert_eq!(
        rule[0]["spec"], file,
        "deploy/monitoring.yaml drifted from deploy/prometheus/ballast.rules.yaml"
    );
}

#[test]
fn rbac_has_no_wildcards() {
    for doc in docs("deploy/rbac.yaml") {
        for rule in doc["rules"].as_sequence().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                for v in rule[field].as_sequence().into_iter().flatten() {
                    assert_ne!(
                        v.as_str(),
                        Some("*"),
                        "wildcard in {} {field}",
                        doc["metadata"]["name"].as_str().unwrap_or("?")
                    );
                }
            }
        }
    }
}

#[test]
fn the_operator_runs_hardened() {
    let all = docs("deploy/operator.yaml");
    let deployment = kind(&all, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        deployment["spec"]["replicas"].as_u64(),
        Some(2),
        "two replicas with leader election"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"][0].as_str(),
        Some("ALL")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert!(!kind(&all, "PodDisruptionBudget").is_empty());
}

#[test]
fn the_dashboard_has_what_grafana_needs() {
    let d: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root().join("deploy/grafana/ballast.json")).expect("dashboard"),
    )
    .expect("JSON");
    assert!(d["uid"].is_string() && d["title"].is_string());
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["namespace", "policy", "datasource"] {
        assert!(vars.contains(&v), "template variable {v}");
    }
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(p["datasource"].is_object(), "{title}: datasource");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: targets");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let query = expr.replace("$namespace", "x").replace("$policy", "y");
            assert!(
                ballast::api::validation::check_promql(&query).is_ok(),
                "{title}: {expr}"
            );
        }
    }
}

//! The manifests in deploy/ and the example overlays: they render with kustomize,
//! the PrometheusRule carries exactly the alert rules promtool tests, RBAC has no
//! wildcards and only the grants the operator and webhook need, the webhook is wired
//! to the operator's port, the operator runs hardened, the dashboard has what
//! Grafana needs, and deploy/Dockerfile's build context is a whole workspace.
//! (e2e/scenarios' deploy-dry-run dry-runs deploy/ against a real API server.)

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
    render("deploy")
}

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
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
        "ValidatingWebhookConfiguration",
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
    assert_eq!(
        image,
        format!("ghcr.io/ballast-dev/ballast:v{}", env!("CARGO_PKG_VERSION")),
        "the image comes from kustomize `images:`, tagged with Cargo.toml's version (image/build tags the archive the same way)"
    );
    let env = &kind(&all, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    let default_source = env
        .as_sequence()
        .and_then(|env| {
            env.iter()
                .find(|e| e["name"].as_str() == Some("BALLAST_PROMETHEUS_URL"))
        })
        .and_then(|e| e["value"].as_str());
    assert_eq!(
        default_source,
        Some("http://prometheus-operated.monitoring:9090"),
        "a default install has a default metrics source, so policies that name none work"
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
    // The same rules, with the runbooks as absolute links to this release's pages
    // (tests/chart.rs checks each names a page).
    let release = format!(
        "runbook_url: https://github.com/ballast-dev/ballast/blob/v{}/docs/runbooks/",
        env!("CARGO_PKG_VERSION")
    );
    let rendered = serde_yaml::to_string(&rule[0]["spec"]).expect("YAML");
    assert!(rendered.contains(&release), "{rendered}");
    let relative: Value =
        serde_yaml::from_str(&rendered.replace(&release, "runbook_url: docs/runbooks/"))
            .expect("YAML");
    assert_eq!(
        relative, file,
        "deploy/monitoring.yaml drifted from deploy/prometheus/ballast.rules.yaml"
    );
}

#[test]
fn rbac_has_no_wildcards() {
    // Every rule of every Role and ClusterRole anything in the repository installs.
    let mut all = rendered();
    all.extend(render("examples/cert-manager"));
    all.extend(docs("deploy/rbac.yaml"));
    let roles: Vec<&Value> = all
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
        .collect();
    assert!(roles.len() >= 4);
    for doc in roles {
        for rule in doc["rules"].as_sequence().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                for v in rule[field].as_sequence().into_iter().flatten() {
                    assert!(
                        !v.as_str().is_some_and(|v| v.contains('*')),
                        "wildcard in {} {field}",
                        doc["metadata"]["name"].as_str().unwrap_or("?")
                    );
                }
            }
        }
    }
}

fn grants(
    all: &[Value],
    role_kind: &str,
    group: &str,
    resource: &str,
) -> Vec<(Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    kind(all, role_kind)
        .into_iter()
        .flat_map(|r| r["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|rule| {
            strings(&rule["apiGroups"]).contains(&group.to_string())
                && strings(&rule["resources"]).contains(&resource.to_string())
        })
        .map(|rule| (strings(&rule["verbs"]), strings(&rule["resourceNames"])))
        .collect()
}

#[test]
fn rbac_is_what_the_operator_and_webhook_need_and_no_more() {
    let all = docs("deploy/rbac.yaml");
    // Replicas are written only through /scale.
    for (group, resource) in [("apps", "deployments"), ("apps", "statefulsets")] {
        for (verbs, _) in grants(&all, "ClusterRole", group, resource) {
            assert!(
                !verbs
                    .iter()
                    .any(|v| ["update", "patch", "create", "delete"].contains(&v.as_str())),
                "{resource}: writes only through /scale, got {verbs:?}"
            );
        }
        let scale = grants(&all, "ClusterRole", group, &format!("{resource}/scale"));
        assert_eq!(scale.len(), 1, "{resource}/scale");
    }
    // The webhook's conflict checks.
    assert_eq!(
        grants(
            &all,
            "ClusterRole",
            "autoscaling",
            "horizontalpodautoscalers"
        )[0]
        .0,
        ["list"]
    );
    assert_eq!(
        grants(&all, "ClusterRole", "keda.sh", "scaledobjects")[0].0,
        ["list"]
    );
    // The one webhook configuration, by name, matching deploy/webhook.yaml.
    let vwc = grants(
        &all,
        "ClusterRole",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    );
    assert_eq!(vwc.len(), 1);
    let webhook = docs("deploy/webhook.yaml");
    let name = kind(&webhook, "ValidatingWebhookConfiguration")[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert_eq!(vwc[0].1, vec![name]);
    // Secrets: namespaced only; update only of the webhook's certificate Secret.
    assert!(
        grants(&all, "ClusterRole", "", "secrets").is_empty(),
        "no cluster-wide Secrets"
    );
    for (verbs, names) in grants(&all, "Role", "", "secrets") {
        if verbs.contains(&"update".to_string()) {
            assert_eq!(names, ["ballast-webhook-tls"]);
        }
        assert!(!verbs.contains(&"list".to_string()) && !verbs.contains(&"watch".to_string()));
    }
}

#[test]
fn the_webhook_is_wired_to_the_operator() {
    let all = rendered();
    let vwc = kind(&all, "ValidatingWebhookConfiguration");
    assert_eq!(vwc.len(), 1);
    let hook = &vwc[0]["webhooks"][0];
    assert_eq!(hook["failurePolicy"].as_str(), Some("Fail"));
    assert_eq!(hook["sideEffects"].as_str(), Some("None"));
    assert!(
        hook["timeoutSeconds"]
            .as_u64()
            .is_some_and(|t| (1..=10).contains(&t))
    );
    let resources: Vec<&str> = hook["rules"][0]["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(
        resources,
        ["customscalingpolicies", "clustermetricssources"],
        "never /status"
    );
    let operations: Vec<&str> = hook["rules"][0]["operations"]
        .as_sequence()
        .expect("operations")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(operations, ["CREATE", "UPDATE"], "never DELETE");
    // clientConfig -> the Service's webhook port -> the container's webhook port -> --webhook-addr.
    let svc_ref = &hook["clientConfig"]["service"];
    assert_eq!(svc_ref["path"].as_str(), Some("/validate"));
    let service = kind(&all, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == svc_ref["name"])
        .expect("the Service the webhook names");
    assert_eq!(service["metadata"]["namespace"], svc_ref["namespace"]);
    let port = service["spec"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == svc_ref["port"])
        .expect("the Service port the webhook names");
    let target = port["targetPort"].as_str().expect("a named targetPort");
    let container = &kind(&all, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let container_port = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(target))
        .expect("the container port")["containerPort"]
        .as_u64()
        .expect("a number");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&format!("--webhook-addr=0.0.0.0:{container_port}").as_str()),
        "{args:?}"
    );
}

#[test]
fn the_cert_manager_overlay_mounts_its_certificate_and_injects_the_ca() {
    let all = render("examples/cert-manager");
    let cert = kind(&all, "Certificate");
    assert_eq!(cert.len(), 1);
    let secret = cert[0]["spec"]["secretName"].as_str().expect("secretName");
    let dns: Vec<&str> = cert[0]["spec"]["dnsNames"]
        .as_sequence()
        .expect("dnsNames")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(dns.contains(&"ballast.ballast-system.svc"), "{dns:?}");
    let pod = &kind(&all, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"].as_str(),
        Some(secret)
    );
    let args = pod["containers"][0]["args"].as_sequence().expect("args");
    assert!(
        args.iter()
            .any(|a| a.as_str() == Some("--webhook-cert-dir=/certs"))
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"].as_str(),
        Some("/certs")
    );
    let vwc = kind(&all, "ValidatingWebhookConfiguration")[0];
    let namespace = cert[0]["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    let name = cert[0]["metadata"]["name"].as_str().expect("name");
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str(),
        Some(format!("{namespace}/{name}").as_str())
    );
}

#[test]
fn the_examples_render_and_pass_lint() {
    let all = render("examples");
    assert_eq!(kind(&all, "CustomScalingPolicy").len(), 3);
    assert_eq!(kind(&all, "ClusterMetricsSource").len(), 1);
    let namespaces: Vec<&str> = kind(&all, "Namespace")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    for policy in kind(&all, "CustomScalingPolicy") {
        let ns = policy["metadata"]["namespace"].as_str().expect("namespace");
        assert!(
            namespaces.contains(&ns),
            "namespace {ns} is created by examples/"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args([
            "lint",
            "examples/metrics-source.yaml",
            "examples/cache-eviction/policy.yaml",
            "examples/queue-lag/policy.yaml",
            "examples/node-pool/policy.yaml",
        ])
        .current_dir(root())
        .output()
        .expect("ballast lint runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
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

/// Copies `from` (a file or a directory, recursively) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).expect("create dir");
        for entry in fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// deploy/Dockerfile's build stage sees exactly what its COPY lines name. A build
/// context of just those paths must still be a workspace Cargo can read: a bench
/// target, a workspace member or a test path outside them broke `docker build`
/// once (`can't find engine bench at benches/engine.rs`), with no Docker here to
/// notice. `cargo metadata --locked` parses every manifest and the lock file.
#[test]
fn the_dockerfile_build_context_is_a_whole_workspace() {
    let dockerfile =
        fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    let build_stage = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    let context = tempfile::tempdir().expect("temp dir");
    let mut copied = Vec::new();
    for line in build_stage.lines().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert!(
            !words.iter().any(|w| w.starts_with("--")),
            "a COPY with flags in the build stage: {line}"
        );
        let (destination, sources) = words.split_last().expect("COPY source... destination");
        for source in sources {
            let target = if destination.ends_with('/') {
                context
                    .path()
                    .join(destination)
                    .join(Path::new(source).file_name().expect("a file name"))
            } else {
                context.path().join(destination)
            };
            copy_tree(&root().join(source), &target);
            copied.push(source.to_string());
        }
    }
    assert!(
        copied.contains(&"Cargo.toml".to_string()),
        "the build stage copies no Cargo.toml: {copied:?}"
    );
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", context.path().join("target"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata in a context of only {copied:?} (deploy/Dockerfile's COPY lines) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let binaries: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        binaries.contains(&"ballast"),
        "the context builds no ballast binary: {binaries:?}"
    );
    // build.rs is found by its presence, so metadata alone would not miss it.
    let build_script = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "ballast")
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .any(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "custom-build"))
        });
    assert_eq!(
        build_script,
        root().join("build.rs").exists(),
        "build.rs (the version stamp) is copied into the build stage: {copied:?}"
    );
}

/// `make image` (image/build) and deploy/Dockerfile build the same thing: the
/// static musl binary, run as 65532 with entrypoint ballast.
#[test]
fn the_dockerfile_and_make_image_build_the_same_binary() {
    let dockerfile =
        fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    let build = fs::read_to_string(root().join("image/build")).expect("image/build");
    let target = "x86_64-unknown-linux-musl";
    assert!(
        build.contains(&format!("TARGET={target}")),
        "image/build builds {target}"
    );
    for needle in [
        format!("--target {target} --bin ballast"),
        format!("/src/target/{target}/release/ballast /usr/local/bin/ballast"),
        "USER 65532:65532".to_string(),
        "ENTRYPOINT [\"/usr/local/bin/ballast\"]".to_string(),
        "FROM gcr.io/distroless/static".to_string(),
    ] {
        assert!(
            dockerfile.contains(&needle),
            "deploy/Dockerfile: no {needle:?}"
        );
    }
}

/// The Helm chart and the operator are one version (Cargo.toml's), and the chart
/// names the image that deploy/ (rendered from it) and `make image` use.
#[test]
fn the_chart_is_the_operators_version_and_names_its_image() {
    let chart: Value = serde_yaml::from_str(
        &fs::read_to_string(root().join("charts/ballast/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        chart["version"].as_str(),
        Some(version),
        "Chart.yaml version"
    );
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    let values: Value = serde_yaml::from_str(
        &fs::read_to_string(root().join("charts/ballast/values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let repository = values["image"]["repository"]
        .as_str()
        .expect("image.repository");
    assert_eq!(
        values["image"]["tag"].as_str(),
        Some(""),
        "the tag defaults to v<appVersion>"
    );
    let all = rendered();
    let image = kind(&all, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("an image");
    assert_eq!(image, format!("{repository}:v{version}"));
}

/// What Helm reads inside the chart and deploy/ keeps as its source: byte for byte.
#[test]
fn the_charts_files_are_deploys_sources() {
    for (source, copy) in [
        (
            "deploy/grafana/ballast.json",
            "charts/ballast/files/ballast.json",
        ),
        (
            "deploy/prometheus/ballast.rules.yaml",
            "charts/ballast/files/ballast.rules.yaml",
        ),
    ] {
        let (a, b) = (
            fs::read(root().join(source)).expect(source),
            fs::read(root().join(copy)).expect(copy),
        );
        assert!(a == b, "{copy} differs from {source}: run make deploy");
    }
}

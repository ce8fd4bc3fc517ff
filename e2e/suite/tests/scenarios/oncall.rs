//! What on-call sees. The gameday (`make gameday`): the metrics source's
//! Prometheus dies under load; the status, Events, circuit and alert are shown as
//! they change, `BallastMetricsSourceCircuitOpen` and `BallastMetricsUnavailable`
//! fire in the harness Prometheus
//! (deploy/'s rules, scraping every scenario's operators), and the runbook's
//! verification step passes once Prometheus is back. The dashboard: every query of
//! deploy/grafana/ballast.json returns data. And a source shared by two
//! namespaces: one namespace's query never shows in the other's status, Events or
//! metrics.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_e2e::chaos::{FaultProxy, Load, Prometheus, load_query};
use ballast_e2e::{Scenario, eventually, polls};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

const ALERT: &str = "BallastMetricsSourceCircuitOpen";

async fn prometheus_get(
    s: &Scenario,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    Ok(ballast_e2e::http()
        .get(format!("{}{path}", s.env.prometheus_url))
        .query(query)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The policy alert that fires when a policy has had no metric data for a while.
const NO_DATA_ALERT: &str = "BallastMetricsUnavailable";

/// The state of alert `name` whose labels include `labels`: firing, pending, or
/// "" (inactive).
async fn alert_state_of(
    s: &Scenario,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<String> {
    let alerts = prometheus_get(s, "/api/v1/alerts", &[]).await?;
    Ok(alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a["labels"]["alertname"] == name && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
        })
        .and_then(|a| a["state"].as_str())
        .unwrap_or_default()
        .to_string())
}

/// The circuit alert's state for `source`.
async fn alert_state(s: &Scenario, source: &str) -> anyhow::Result<String> {
    alert_state_of(s, ALERT, &[("source", source)]).await
}

pub async fn gameday(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let rules = prometheus_get(s, "/api/v1/rules", &[]).await?;
    anyhow::ensure!(
        rules.to_string().contains(ALERT),
        "the harness Prometheus has not loaded deploy/prometheus/ballast.rules.yaml"
    );
    // The load: the scenario's own metric (so it runs alongside `evictions`, which
    // has the harness's Redis), scraped by a Prometheus of its own, the source.
    let load = Load::serve().await?;
    load.set("gd", 1.0);
    let mut prometheus = Prometheus::start(&s.dir, load.port).await?;
    let query = load_query("gd");
    let ns = s.ns.clone();
    let source = s
        .source(
            "gd",
            json!({
                "address": prometheus.url(), "timeout": "2s", "allowedNamespaces": [ns],
                "circuitBreaker": {"failureThreshold": 3, "openDuration": "60s"}
            }),
        )
        .await?;
    let op = s.operator("op").await?;
    s.deployment("gd", 1).await?;
    s.policy(
        "gd",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gd"},
            "minReplicas": 1, "maxReplicas": 6, "pollInterval": "2s",
            "metrics": [{"name": "load", "source": source, "query": query, "target": {"type": "AverageValue", "averageValue": "1"}}]
        }),
    )
    .await?;
    eventually(polls(POLL, 5), "gd reads its metric", || {
        s.metrics_available("gd")
    })
    .await?;
    load.set("gd", 4.0);
    eventually(polls(POLL, 30), "the load scales gd up to 3", || async {
        let r = s.replicas("gd").await?;
        anyhow::ensure!(r >= 3, "at {r}");
        Ok(())
    })
    .await?;
    let before = s.replicas("gd").await?;
    s.say(format!(
        "under load: gd at {before} replicas; stopping the source's Prometheus"
    ));
    prometheus.kill().await?;
    let stopped = Instant::now();
    s.say(format!(
        "what to look at: kubectl get scalingpolicies; kubectl describe csp; kubectl get events; ballast_circuit_state; {}/api/v1/alerts",
        s.env.prometheus_url
    ));
    // Both alerts: the circuit's `for: 2m` and the policy's `for: 5m`, plus their
    // evaluation and the circuit opening.
    let deadline = Duration::from_secs(420);
    let series = format!("ballast_circuit_state{{source=\"{source}\"}}");
    let policy_labels = [("namespace", ns.as_str()), ("policy", "gd")];
    let mut circuit_fired = None;
    loop {
        let r = s.replicas("gd").await?;
        let state = alert_state(s, &source).await?;
        let no_data = alert_state_of(s, NO_DATA_ALERT, &policy_labels).await?;
        let c = s.condition("gd", "MetricsAvailable").await?;
        let circuit = s.operators[op].metric(&series).await?;
        let shown = |state: &str| {
            if state.is_empty() {
                "inactive".to_string()
            } else {
                state.to_string()
            }
        };
        s.say(format!(
            "+{:5.0}s  replicas {r}  MetricsAvailable {}/{}  circuit {circuit:?}  {ALERT} {}  {NO_DATA_ALERT} {}",
            stopped.elapsed().as_secs_f64(),
            c.status,
            c.reason,
            shown(&state),
            shown(&no_data)
        ));
        anyhow::ensure!(r >= before, "scaled down to {r} while the source was down");
        if state == "firing" && circuit_fired.is_none() {
            circuit_fired = Some(stopped.elapsed());
        }
        if circuit_fired.is_some() && no_data == "firing" {
            break;
        }
        anyhow::ensure!(
            stopped.elapsed() < deadline,
            "{ALERT} ({}) and {NO_DATA_ALERT} ('{no_data}') did not both fire within {}s",
            shown(&state),
            deadline.as_secs()
        );
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    s.say(format!(
        "{ALERT} firing {:.0}s after Prometheus stopped (for: 2m); {NO_DATA_ALERT} firing at {:.0}s (for: 5m)",
        circuit_fired.unwrap_or_default().as_secs_f64(),
        stopped.elapsed().as_secs_f64()
    ));
    let events = s.events("CircuitOpen").await?;
    for e in events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("gd"))
    {
        s.say(format!(
            "event CircuitOpen: {}",
            e.note.as_deref().unwrap_or_default()
        ));
    }
    anyhow::ensure!(!events.is_empty(), "no CircuitOpen event on gd");
    // Runbook, "What to do" step 1: see what the operator reads.
    let (rc, out) = s
        .ballast(&["query", "--prometheus", &prometheus.url(), &query])
        .await?;
    s.say(format!(
        "runbook step 1: ballast query -> {} (exit {rc})",
        out.chars().take(150).collect::<String>()
    ));
    // Prometheus comes back; the circuit probes after openDuration and closes.
    prometheus.restart().await?;
    let back = Instant::now();
    // Runbook, "How to know it worked": ballast_circuit_state is 0 and MetricsAvailable is True.
    eventually(
        Duration::from_secs(60) + polls(POLL, 10),
        "the circuit closes after Prometheus returned",
        || async {
            let state = s.operators[op].metric(&series).await?;
            anyhow::ensure!(state == Some(0.0), "{series} is {state:?}");
            Ok(())
        },
    )
    .await?;
    eventually(
        polls(POLL, 10),
        "MetricsAvailable True after recovery",
        || s.metrics_available("gd"),
    )
    .await?;
    s.say(format!(
        "runbook verification passed {:.0}s after Prometheus returned: circuit 0, MetricsAvailable True",
        back.elapsed().as_secs_f64()
    ));
    eventually(
        Duration::from_secs(30),
        format!("{ALERT} resolves"),
        || async {
            let state = alert_state(s, &source).await?;
            anyhow::ensure!(state != "firing", "still firing");
            Ok(())
        },
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        format!("{NO_DATA_ALERT} resolves"),
        || async {
            let state = alert_state_of(s, NO_DATA_ALERT, &policy_labels).await?;
            anyhow::ensure!(state != "firing", "still firing");
            Ok(())
        },
    )
    .await?;
    s.say(format!("{ALERT} and {NO_DATA_ALERT} resolved"));
    Ok(())
}

/// Every query of deploy/grafana/ballast.json (variables filled in: every e2e
/// namespace, every policy) returns data from the harness's Prometheus, which
/// scrapes every scenario's operators. Listed last; waits while other scenarios
/// still produce the data (node pools, scaling events, ...).
pub async fn dashboard_queries(s: &mut Scenario) -> anyhow::Result<()> {
    let path = s.env.repo.join("deploy/grafana/ballast.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{}", path.display()))?;
    for field in ["uid", "title", "schemaVersion", "panels", "templating"] {
        anyhow::ensure!(
            dashboard.get(field).is_some(),
            "the dashboard lacks {field}"
        );
    }
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for name in ["namespace", "policy", "datasource"] {
        anyhow::ensure!(
            variables.contains(&name),
            "template variables: {variables:?}"
        );
    }
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(
            panel.get("datasource").is_some(),
            "panel {title:?} has no datasource"
        );
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .with_context(|| format!("panel {title:?} has no targets"))?;
        queries.extend(
            targets
                .iter()
                .filter_map(|t| Some((title.clone(), t["expr"].as_str()?.to_string()))),
        );
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(expr)) = (a["name"].as_str(), a["expr"].as_str()) {
            queries.push((format!("annotation {name}"), expr.to_string()));
        }
    }
    s.operator("op").await?;
    let mut last = Vec::new();
    let outcome = eventually(Duration::from_secs(600), "every panel has data", || async {
        let end = ballast_e2e::chaos::unix_now();
        let mut lines = Vec::new();
        let mut empty = Vec::new();
        for (title, expr) in &queries {
            let q = expr
                .replace("$namespace", "e2e-.*")
                .replace("$policy", ".*");
            // Over the whole run: a panel shows a range, so any sample in the last 15 min counts.
            let body = prometheus_get(
                s,
                "/api/v1/query_range",
                &[
                    ("query", q.clone()),
                    ("start", (end - 900.0).to_string()),
                    ("end", end.to_string()),
                    ("step", "15".into()),
                ],
            )
            .await?;
            let n = body["data"]["result"].as_array().map_or(0, Vec::len);
            lines.push(format!(
                "{} {n:3} series  {title}: {}",
                if n > 0 { "ok   " } else { "EMPTY" },
                q.chars().take(110).collect::<String>()
            ));
            if n == 0 {
                empty.push(title.clone());
            }
        }
        anyhow::ensure!(empty.is_empty(), "no data yet for {empty:?}");
        Ok(lines)
    })
    .await;
    if let Ok(lines) = &outcome {
        last.clone_from(lines);
    }
    for line in &last {
        s.say(line);
    }
    outcome.map(|_| ())
}

/// A shared source's errors: a policy's conditions and Events carry only its own
/// queries. The source resets connections, refuses them, then answers 500; one
/// namespace's query carries a marker that must never show in the other's. One
/// operator watches both namespaces, so this scenario runs alone.
pub async fn shared_source_errors(s: &mut Scenario) -> anyhow::Result<()> {
    let other = format!("{}-b", s.ns);
    let namespaces = Api::<Namespace>::all(s.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": other}}))?,
        )
        .await
        .with_context(|| format!("creating namespace {other}"))?;
    let outcome = shared_source_steps(s, &other).await;
    let _ = namespaces.delete(&other, &DeleteParams::background()).await;
    outcome
}

async fn shared_source_steps(s: &mut Scenario, other: &str) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let marker = format!(
        "leakmarker-{}-{}",
        std::process::id(),
        ballast_e2e::chaos::unix_now().to_bits() % 100_000
    );
    let proxy =
        FaultProxy::start(&s.env.repo, &s.env.prometheus_url, &s.dir.join("proxy.log")).await?;
    let (port, address) = (proxy.port, proxy.url());
    let ns = s.ns.clone();
    let source = s
        .source(
            "shared",
            json!({
                "address": address, "timeout": "2s", "allowedNamespaces": [ns, other],
                "circuitBreaker": {"failureThreshold": 2, "openDuration": "10s"}
            }),
        )
        .await?;
    let op = s.operator_everywhere("op").await?;
    // As in the acceptance run: the source resets connections under the marked
    // policy's queries (its circuit opens on them), then the other namespace's
    // policy is created and its first ticks are held back with the source's last error.
    proxy.fault("reset").await?;
    let spec = |target: &str, query: String| {
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "maxReplicas": 3, "pollInterval": "2s",
            "metrics": [{"name": "demand", "source": source, "query": query, "target": {"type": "AverageValue", "averageValue": "1"}}]
        })
    };
    let marked_yaml = serde_yaml::to_string(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "marked"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "marked"}}, "template": {"metadata": {"labels": {"app": "marked"}}, "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:1"}]}}}
    }))?;
    let (ok, out) = s
        .kubectl_anywhere(&["-n", other, "apply", "-f", "-"], Some(&marked_yaml))
        .await?;
    anyhow::ensure!(ok, "{out}");
    let marked: ballast::api::CustomScalingPolicy = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy", "metadata": {"name": "marked"},
        "spec": spec("marked", format!("label_replace(vector(1), \"m\", \"{marker}\", \"\", \"\")"))
    }))?;
    let other_policies =
        Api::<ballast::api::CustomScalingPolicy>::namespaced(s.client.clone(), other);
    other_policies
        .create(&PostParams::default(), &marked)
        .await
        .context("the marked policy")?;
    eventually(
        polls(POLL, 10),
        "the marked policy's own status names its failing query",
        || async {
            let p = other_policies.get("marked").await?;
            let named = p
                .status
                .iter()
                .flat_map(|st| &st.conditions)
                .any(|c| c.type_ == "MetricsAvailable" && c.message.contains(&marker));
            anyhow::ensure!(named, "not yet");
            Ok(())
        },
    )
    .await?;
    let series = format!("ballast_circuit_state{{source=\"{source}\"}}");
    eventually(
        polls(POLL, 10),
        "the shared source's circuit opens on the marked policy's failures",
        || async {
            let state = s.operators[op].metric(&series).await?;
            anyhow::ensure!(state == Some(2.0), "{series} is {state:?}");
            Ok(())
        },
    )
    .await?;
    // What this namespace shows, sampled all along (the messages change each tick).
    let mut seen = String::new();
    s.deployment("plain", 1).await?;
    s.policy("plain", spec("plain", "vector(1)".into())).await?;
    // Still resets, then refused (the proxy stopped), then 500, a few intervals each.
    let mut proxy = Some(proxy);
    for phase in ["reset", "refused", "status:500"] {
        match phase {
            "refused" => proxy = None,
            "status:500" => {
                let again = FaultProxy::start_on(
                    &s.env.repo,
                    &s.env.prometheus_url,
                    &s.dir.join("proxy-2.log"),
                    port,
                )
                .await?;
                again.fault("status:500").await?;
                proxy = Some(again);
            }
            _ => {}
        }
        let end = Instant::now() + POLL * 4;
        while Instant::now() < end {
            seen.push_str(
                &s.kubectl(&["get", "csp", "plain", "-o", "yaml"], None)
                    .await?
                    .1,
            );
            seen.push_str(
                &s.kubectl(&["get", "events.events.k8s.io", "-o", "yaml"], None)
                    .await?
                    .1,
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    seen.push_str(
        &ballast_e2e::get(format!("http://{}/metrics", s.operators[op].admin))
            .await?
            .text()
            .await?,
    );
    // The marked policy's own status did carry its query (so the search below can
    // find one); this namespace's status, Events and the metrics never.
    let (_, own) = s
        .kubectl_anywhere(&["-n", other, "get", "csp", "marked", "-o", "yaml"], None)
        .await?;
    anyhow::ensure!(
        own.contains(&marker),
        "the marked policy's own status never named its query (no failure was seen?)"
    );
    anyhow::ensure!(
        seen.contains("last error"),
        "the plain policy never showed the source's last error"
    );
    let leaks = seen.matches(&marker).count();
    s.say(format!("searched {} bytes of {}'s status, Events and the operator's metrics: {leaks} occurrences of {other}'s query", seen.len(), s.ns));
    anyhow::ensure!(leaks == 0, "{other}'s query leaked {leaks} times");
    drop(proxy);
    Ok(())
}

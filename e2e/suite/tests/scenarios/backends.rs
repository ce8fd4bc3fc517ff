//! Metrics where large teams keep them, against the real backends: Thanos Query
//! deduplicating two Prometheus replicas (and answering partially when one store
//! is gone), a multi-tenant Cortex (a tenant with data, a tenant without, no
//! tenant at all), and an HTTPS endpoint that wants a client certificate and a
//! header. The CLI reads each through `--source`, as the operator does.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use ballast_e2e::backends::{Cortex, GuardedProxy, Sidecar, ThanosQuery};
use ballast_e2e::chaos::{FaultProxy, Load, Prometheus, load_query};
use ballast_e2e::{Scenario, eventually, holds, polls};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

const POLL: Duration = Duration::from_secs(3);

fn policy(source: &str, query: &str, max: u32) -> Value {
    json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        "minReplicas": 1, "maxReplicas": max, "pollInterval": "3s",
        "metrics": [{"name": "load", "source": source, "query": query,
            "target": {"type": "AverageValue", "averageValue": "10"}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 3}}
    })
}

/// The condition `MetricsAvailable` is False and its message says `says`.
async fn unavailable(s: &Scenario, policy: &str, says: &str) -> anyhow::Result<()> {
    let c = s.condition(policy, "MetricsAvailable").await?;
    anyhow::ensure!(
        c.status == "False" && c.message.contains(says),
        "MetricsAvailable {} ({}): {}",
        c.status,
        c.reason,
        c.message
    );
    Ok(())
}

/// `ballast query` with `args` (through the admin kubeconfig): exit code and output.
async fn query(s: &Scenario, args: &[&str]) -> anyhow::Result<(i32, String)> {
    let kubeconfig = s.env.kubeconfig.display().to_string();
    let mut all = vec!["query", "--kubeconfig", &kubeconfig];
    all.extend_from_slice(args);
    let (rc, out) = s.ballast(&all).await?;
    s.say(format!("ballast {} -> {out} (exit {rc})", args.join(" ")));
    Ok((rc, out))
}

/// `ballast simulate` of `spec` replayed from the last minute through `--source`:
/// its CSV rows.
async fn replay(s: &Scenario, source: &str, spec: &Value) -> anyhow::Result<Vec<String>> {
    let file = s.dir.join("replay-policy.yaml");
    let object = json!({"apiVersion": "autoscaling.ballast.dev/v1alpha1",
        "kind": "CustomScalingPolicy", "metadata": {"name": "app", "namespace": s.ns}, "spec": spec});
    std::fs::write(&file, serde_yaml::to_string(&object)?)?;
    let (kubeconfig, policy) = (
        s.env.kubeconfig.display().to_string(),
        file.display().to_string(),
    );
    let (rc, out) = s
        .ballast(&[
            "simulate",
            "--policy",
            &policy,
            "--source",
            source,
            "--kubeconfig",
            &kubeconfig,
            "--from",
            "now-60s",
            "--to",
            "now",
            "--step",
            "3s",
            "--initial-replicas",
            "1",
            "--output",
            "csv",
        ])
        .await?;
    anyhow::ensure!(rc == 0, "simulate --source {source}: exit {rc}: {out}");
    let rows: Vec<String> = out
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    s.say(format!(
        "simulate --source {source}: {} rows, last {:?}",
        rows.len(),
        rows.last()
    ));
    anyhow::ensure!(!rows.is_empty(), "simulate printed no rows: {out}");
    Ok(rows)
}

pub async fn thanos(s: &mut Scenario) -> anyhow::Result<()> {
    let thanos = s
        .env
        .thanos
        .clone()
        .ok_or_else(|| anyhow!("no THANOS in the environment (e2e/scenarios builds it)"))?;
    let load = Load::serve().await?;
    load.set("thanos", 40.0);
    // Two replicas of one Prometheus: the same target, told apart by `replica`.
    let mut replicas = Vec::new();
    for r in ["a", "b"] {
        replicas.push(
            Prometheus::start_with(
                &s.dir,
                &format!("prometheus-{r}"),
                &[load.port],
                &format!(", external_labels: {{cluster: e2e, replica: {r}}}"),
                "",
            )
            .await?,
        );
    }
    let sidecar_a = Sidecar::start(
        &thanos,
        &s.dir,
        "sidecar-a",
        &replicas[0].url(),
        &s.dir.join("prometheus-a/data"),
    )
    .await?;
    let mut sidecar_b = Sidecar::start(
        &thanos,
        &s.dir,
        "sidecar-b",
        &replicas[1].url(),
        &s.dir.join("prometheus-b/data"),
    )
    .await?;
    let thanos_query = ThanosQuery::start(&thanos, &s.dir, &[&sidecar_a, &sidecar_b]).await?;
    s.say(format!(
        "Thanos Query at {} over two sidecars",
        thanos_query.url()
    ));
    let ns = s.ns.clone();
    let source = s
        .source(
            "thanos",
            json!({"address": thanos_query.url(), "allowedNamespaces": [ns],
                "queryParameters": {"dedup": "true"}}),
        )
        .await?;
    // Deduplicated through the source, as the operator reads it; both replicas'
    // series without deduplication.
    let count = format!("count({})", load_query("thanos"));
    eventually(
        polls(POLL, 10),
        "Thanos deduplicates the replicas",
        || async {
            let (rc, out) = query(s, &["--source", &source, &count]).await?;
            anyhow::ensure!(rc == 0 && out.starts_with("value 1 at"), "{out}");
            let (rc, out) = query(
                s,
                &[
                    "--prometheus",
                    &thanos_query.url(),
                    "--query-param",
                    "dedup=false",
                    &count,
                ],
            )
            .await?;
            anyhow::ensure!(rc == 0 && out.starts_with("value 2 at"), "{out}");
            Ok(())
        },
    )
    .await?;

    s.operator("op").await?;
    s.deployment("app", 1).await?;
    let sum = format!("sum({})", load_query("thanos"));
    let spec = policy(&source, &sum, 10);
    s.policy("app", spec.clone()).await?;
    // 40 / 10 = 4 on the deduplicated series (8 if both replicas were summed).
    eventually(polls(POLL, 12), "4 replicas from Thanos", || {
        s.replicas_are("app", 4)
    })
    .await?;
    let rows = replay(s, &source, &spec).await?;
    anyhow::ensure!(
        rows.iter().any(|r| r.ends_with(",4") || r.contains(",4,")),
        "the replay through Thanos never reached 4 replicas: {rows:?}"
    );

    // One store gone: the answer is partial. By default that is missing data, not
    // a smaller number: no scale-down to what one replica's half would give.
    sidecar_b.process.kill().await?;
    load.set("thanos", 10.0);
    s.say("stopped sidecar b; the load fell to 10 (1 replica if believed)");
    eventually(polls(POLL, 8), "a partial answer is missing data", || {
        unavailable(s, "app", "partial")
    })
    .await?;
    holds(polls(POLL, 3), "no scale-down on a partial answer", || {
        s.replicas_are("app", 4)
    })
    .await?;
    // Accepting partial answers: it scales on the surviving replica.
    s.source(
        "thanos",
        json!({"address": thanos_query.url(), "allowedNamespaces": [ns],
            "queryParameters": {"dedup": "true"}, "partialResponse": "Accept"}),
    )
    .await?;
    eventually(polls(POLL, 12), "scales on the surviving replica", || {
        s.replicas_are("app", 1)
    })
    .await?;
    s.metrics_available("app").await?;
    Ok(())
}

pub async fn cortex(s: &mut Scenario) -> anyhow::Result<()> {
    let binary = s
        .env
        .cortex
        .clone()
        .ok_or_else(|| anyhow!("no CORTEX in the environment (e2e/scenarios builds it)"))?;
    let redis_port = s.env.redis_exporter_port()?;
    let cortex = Cortex::start(&binary, &s.dir).await?;
    let load = Load::serve().await?;
    load.set("cortex", 30.0);
    // A Prometheus scraping Redis's exporter and the load, remote-writing both to
    // Cortex as tenant team-a, through a gateway that sets the tenant: Debian's
    // Prometheus 2.42 does not send remote_write `headers` (a capture shows them
    // missing, and Cortex answers `no org id`).
    let gateway = FaultProxy::start_with(
        &s.env.repo,
        &format!("http://127.0.0.1:{}", cortex.port),
        &s.dir.join("tenant-gateway.log"),
        ballast_e2e::free_port()?,
        &["--set-header", "X-Scope-OrgID=team-a"],
    )
    .await?;
    let _writer = Prometheus::start_with(
        &s.dir,
        "prometheus-team-a",
        &[redis_port, load.port],
        "",
        &format!(
            "remote_write:\n  - url: {}/api/v1/push\n    queue_config: {{batch_send_deadline: 1s}}\n",
            gateway.url()
        ),
    )
    .await?;
    let ns = s.ns.clone();
    let team_a = s
        .source(
            "team-a",
            json!({"address": cortex.prometheus_url(), "allowedNamespaces": [ns], "tenant": "team-a"}),
        )
        .await?;
    let team_b = s
        .source(
            "team-b",
            json!({"address": cortex.prometheus_url(), "allowedNamespaces": [ns], "tenant": "team-b"}),
        )
        .await?;
    let nobody = s
        .source(
            "no-tenant",
            json!({"address": cortex.prometheus_url(), "allowedNamespaces": [ns]}),
        )
        .await?;
    // Redis's own metrics, through the tenant that has them.
    eventually(
        polls(POLL, 20),
        "Redis's metrics in Cortex as team-a",
        || async {
            let (rc, out) = query(s, &["--source", &team_a, "sum(redis_up)"]).await?;
            anyhow::ensure!(rc == 0 && out.starts_with("value 1 at"), "{out}");
            Ok(())
        },
    )
    .await?;
    let (rc, out) = query(s, &["--source", &team_b, "sum(redis_up)"]).await?;
    anyhow::ensure!(rc == 1 && out.contains("no data"), "team-b sees {out}");
    let (rc, out) = query(s, &["--prometheus", &cortex.prometheus_url(), "vector(1)"]).await?;
    anyhow::ensure!(
        rc == 2 && out.contains("HTTP 401 Unauthorized: no org id"),
        "without a tenant: {out}"
    );
    let (rc, out) = query(
        s,
        &[
            "--prometheus",
            &cortex.prometheus_url(),
            "--tenant",
            "team-a",
            "sum(redis_up)",
        ],
    )
    .await?;
    anyhow::ensure!(
        rc == 0 && out.starts_with("value 1 at"),
        "--tenant team-a: {out}"
    );

    s.operator("op").await?;
    let q = format!("sum({})", load_query("cortex"));
    for (name, source) in [
        ("app", &team_a),
        ("other-tenant", &team_b),
        ("no-tenant", &nobody),
    ] {
        s.deployment(name, 2).await?;
        let mut spec = policy(source, &q, 8);
        spec["targetRef"]["name"] = json!(name);
        s.policy(name, spec).await?;
    }
    // 30 / 10 = 3 for the tenant with the data.
    eventually(polls(POLL, 20), "team-a scales on its series", || {
        s.replicas_are("app", 3)
    })
    .await?;
    // team-b has no series: missing, never zero; held at 2.
    eventually(polls(POLL, 6), "team-b has no data", || {
        unavailable(s, "other-tenant", "no series")
    })
    .await?;
    eventually(
        polls(POLL, 6),
        "no tenant: Cortex's 401 in the condition",
        || unavailable(s, "no-tenant", "no org id"),
    )
    .await?;
    holds(polls(POLL, 2), "policies without data hold", || async {
        s.replicas_are("other-tenant", 2).await?;
        s.replicas_are("no-tenant", 2).await
    })
    .await?;
    let rows = replay(s, &team_a, &policy(&team_a, &q, 8)).await?;
    anyhow::ensure!(
        rows.iter().any(|r| r.ends_with(",3") || r.contains(",3,")),
        "the replay through Cortex never reached 3 replicas: {rows:?}"
    );
    Ok(())
}

/// Certificate parameters with their own common name: rcgen's default one is the
/// same for every certificate, and OpenSSL (the Python server) takes a
/// certificate whose subject is its issuer's for a self-signed one.
fn named(common_name: &str, names: &[&str]) -> anyhow::Result<rcgen::CertificateParams> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    Ok(params)
}

/// A CA, a server certificate for `metrics-gateway.e2e.test` and a client
/// certificate, PEM: (ca, server cert, server key, client cert, client key).
fn certificates() -> anyhow::Result<(String, String, String, String, String)> {
    use rcgen::{BasicConstraints, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = named("ballast e2e CA", &[])?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate()?;
    let server = named("metrics-gateway.e2e.test", &["metrics-gateway.e2e.test"])?
        .signed_by(&server_key, &issuer)?;
    let client_key = KeyPair::generate()?;
    let client = named("ballast", &["ballast"])?.signed_by(&client_key, &issuer)?;
    Ok((
        ca.pem(),
        server.pem(),
        server_key.serialize_pem(),
        client.pem(),
        client_key.serialize_pem(),
    ))
}

pub async fn mutual_tls(s: &mut Scenario) -> anyhow::Result<()> {
    let (ca, server_cert, server_key, client_cert, client_key) = certificates()?;
    let files = s.dir.join("tls");
    std::fs::create_dir_all(&files)?;
    for (name, pem) in [
        ("ca.crt", &ca),
        ("server.crt", &server_cert),
        ("server.key", &server_key),
    ] {
        std::fs::write(files.join(name), pem)?;
    }
    let api_key = format!("e2e-api-key-{}", std::process::id());
    let proxy = GuardedProxy::start(
        &s.env.repo,
        &s.dir,
        &s.env.prometheus_url,
        &files.join("server.crt"),
        &files.join("server.key"),
        &files.join("ca.crt"),
        ("X-Api-Key", &api_key),
    )
    .await?;
    let secrets = kube::Api::<Secret>::namespaced(s.client.clone(), "ballast-system");
    let (tls_secret, key_secret) = (format!("{}-client-tls", s.ns), format!("{}-api-key", s.ns));
    let tls: Secret = serde_json::from_value(json!({
        "metadata": {"name": tls_secret}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": client_cert, "tls.key": client_key}
    }))?;
    let key: Secret = serde_json::from_value(json!({
        "metadata": {"name": key_secret}, "stringData": {"key": api_key}
    }))?;
    secrets
        .create(&Default::default(), &tls)
        .await
        .context("the TLS Secret")?;
    secrets
        .create(&Default::default(), &key)
        .await
        .context("the key Secret")?;
    let outcome = mutual_tls_steps(
        s,
        &proxy,
        &ca,
        &tls_secret,
        &key_secret,
        &api_key,
        &client_key,
    )
    .await;
    for name in [&tls_secret, &key_secret] {
        let _ = secrets.delete(name, &Default::default()).await;
    }
    outcome
}

async fn mutual_tls_steps(
    s: &mut Scenario,
    proxy: &GuardedProxy,
    ca: &str,
    tls_secret: &str,
    key_secret: &str,
    api_key: &str,
    client_key: &str,
) -> anyhow::Result<()> {
    let ns = s.ns.clone();
    // The certificate names metrics-gateway.e2e.test; the address is an IP.
    let spec = |with_header: bool| {
        let mut spec = json!({
            "address": proxy.url(), "allowedNamespaces": [ns], "caBundle": ca,
            "tls": {"serverName": "metrics-gateway.e2e.test",
                "clientCertificate": {"namespace": "ballast-system", "name": tls_secret}}
        });
        if with_header {
            spec["headers"] = json!([{"name": "X-Api-Key",
                "valueFrom": {"secretKeyRef": {"namespace": "ballast-system", "name": key_secret, "key": "key"}}}]);
        }
        spec
    };
    let source = s.source("gateway", spec(true)).await?;
    let op = s.operator("op").await?;
    s.deployment("app", 1).await?;
    s.policy("app", policy(&source, "vector(30)", 6)).await?;
    eventually(
        polls(POLL, 10),
        "metrics through the guarded endpoint",
        || s.metrics_available("app"),
    )
    .await?;
    eventually(
        polls(POLL, 5),
        "scales through the guarded endpoint",
        || s.replicas_are("app", 3),
    )
    .await?;
    // The CLI, through the source and its Secrets.
    let (rc, out) = query(s, &["--source", &source, "vector(7)"]).await?;
    anyhow::ensure!(rc == 0 && out.starts_with("value 7 at"), "{out}");

    // Without the header: the gateway's 401 says which header is missing.
    s.source("gateway", spec(false)).await?;
    eventually(polls(POLL, 6), "no header: the gateway says so", || {
        unavailable(s, "app", "missing or wrong X-Api-Key header")
    })
    .await?;
    s.source("gateway", spec(true)).await?;
    eventually(polls(POLL, 6), "the header again", || {
        s.metrics_available("app")
    })
    .await?;

    // A wrong key rotated into the Secret: the handshake fails, closed, and the
    // condition says it is TLS; picked up without a restart.
    let other = rcgen::KeyPair::generate()?;
    let stranger = named("ballast", &["ballast"])?.self_signed(&other)?;
    let secrets = kube::Api::<Secret>::namespaced(s.client.clone(), "ballast-system");
    let rotated: Secret = serde_json::from_value(json!({
        "metadata": {"name": tls_secret}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": stranger.pem(), "tls.key": other.serialize_pem()}
    }))?;
    secrets
        .replace(tls_secret, &Default::default(), &rotated)
        .await
        .context("rotating the client certificate")?;
    s.say("rotated a certificate the gateway does not trust into the Secret");
    eventually(
        polls(POLL, 12),
        "a wrong client certificate fails closed",
        || async {
            let c = s.condition("app", "MetricsAvailable").await?;
            anyhow::ensure!(c.status == "False", "still {}: {}", c.status, c.message);
            anyhow::ensure!(
                c.message.contains("TLS: the server refused the handshake"),
                "the message does not say why: {}",
                c.message
            );
            s.say(format!("MetricsAvailable=False: {}", c.message));
            Ok(())
        },
    )
    .await?;
    holds(polls(POLL, 2), "held while failing closed", || {
        s.replicas_are("app", 3)
    })
    .await?;

    // No header value or key material anywhere the secrets check looks.
    let everything = s.everything_visible(op).await?;
    let key_line = client_key
        .lines()
        .nth(1)
        .ok_or_else(|| anyhow!("an empty key PEM"))?;
    let other_line = other.serialize_pem();
    let other_line = other_line.lines().nth(1).unwrap_or(key_line);
    for (what, needle) in [
        ("the header value", api_key),
        ("the client key", key_line),
        ("the rotated key", other_line),
    ] {
        let n = everything.matches(needle).count();
        anyhow::ensure!(
            n == 0,
            "{what} appears {n} times in logs, status, Events or metrics"
        );
    }
    s.say(format!(
        "searched {} bytes of logs, status, Events and metrics: no header value or key",
        everything.len()
    ));
    Ok(())
}

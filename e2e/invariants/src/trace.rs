//! The watch: every second, the namespace's Deployments, CustomScalingPolicies and
//! Leases, appended to a file as JSON lines (one snapshot per line). A failed read
//! (the API server down) is recorded as such and the watch goes on.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ballast::api::CustomScalingPolicy;
use ballast::api::conditions::types;
use ballast::api::policy::Behavior;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

/// One policy as a snapshot keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySnap {
    pub target: String,
    pub kind: String,
    pub min: i64,
    pub max: i64,
    pub paused: bool,
    pub dry_run: bool,
    /// `spec.pollInterval` as written (`15s`).
    pub poll: String,
    pub behavior: Option<Behavior>,
    /// The `MetricsAvailable` condition's status, when there is one.
    pub metrics_available: Option<String>,
    pub generation: Option<i64>,
}

/// One line of the trace: a snapshot, or the error that stopped one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unix seconds.
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub deployments: BTreeMap<String, Option<i64>>,
    #[serde(default)]
    pub policies: BTreeMap<String, PolicySnap>,
    #[serde(default)]
    pub leases: BTreeMap<String, Option<String>>,
}

impl PolicySnap {
    pub fn of(policy: &CustomScalingPolicy) -> Self {
        let spec = &policy.spec;
        Self {
            target: spec.target_ref.name.clone(),
            kind: spec.target_ref.kind.clone(),
            min: i64::from(spec.min_replicas),
            max: i64::from(spec.max_replicas),
            paused: spec.paused,
            dry_run: spec.dry_run,
            poll: spec.poll_interval.to_string(),
            behavior: spec.behavior.clone(),
            metrics_available: policy.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == types::METRICS_AVAILABLE)
                    .map(|c| c.status.clone())
            }),
            generation: policy.metadata.generation,
        }
    }
}

/// Read the trace at `path`; lines that do not parse and failed reads are left out.
pub fn load(path: &Path) -> std::io::Result<Vec<Snapshot>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Snapshot>(l).ok())
        .filter(|s| s.error.is_none())
        .collect())
}

fn now() -> f64 {
    jiff::Timestamp::now().as_nanosecond() as f64 / 1e9
}

async fn snapshot(client: &kube::Client, namespace: &str) -> Result<Snapshot, kube::Error> {
    let list = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    let policies = Api::<CustomScalingPolicy>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    let leases = Api::<Lease>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    Ok(Snapshot {
        t: 0.0,
        error: None,
        deployments: deployments
            .items
            .iter()
            .filter_map(|d| {
                let name = d.metadata.name.clone()?;
                Some((
                    name,
                    d.spec.as_ref().and_then(|s| s.replicas).map(i64::from),
                ))
            })
            .collect(),
        policies: policies
            .items
            .iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, PolicySnap::of(p))))
            .collect(),
        leases: leases
            .items
            .iter()
            .filter_map(|l| {
                let name = l.metadata.name.clone()?;
                Some((
                    name,
                    l.spec.as_ref().and_then(|s| s.holder_identity.clone()),
                ))
            })
            .collect(),
    })
}

/// Append a snapshot of `namespace` to `path` every `interval` until SIGTERM or
/// Ctrl-C. The client comes from `KUBECONFIG`.
pub async fn watch(namespace: &str, path: &Path, interval: Duration) -> anyhow::Result<()> {
    ballast::metrics::tls::install_crypto_provider();
    let client = kube::Client::try_default().await?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let t = now();
        let read = tokio::time::timeout(Duration::from_secs(3), snapshot(&client, namespace)).await;
        let record = match read {
            Ok(Ok(s)) => Snapshot { t, ..s },
            Ok(Err(e)) => Snapshot {
                t,
                error: Some(e.to_string()),
                ..Snapshot::default()
            },
            Err(_) => Snapshot {
                t,
                error: Some("timed out after 3s".into()),
                ..Snapshot::default()
            },
        };
        writeln!(out, "{}", serde_json::to_string(&record)?)?;
        out.flush()?;
        let wait = interval.saturating_sub(Duration::from_secs_f64((now() - t).max(0.0)));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

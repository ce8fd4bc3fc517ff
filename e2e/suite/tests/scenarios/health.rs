//! GitOps health on live objects: what the kstatus library (Flux, cli-utils; the
//! harness's small Go checker, e2e/controlplane/kstatus) and Argo CD's health
//! script (deploy/argocd/health.lua, run by deploy/argocd/check with Debian's
//! lua5.1, as Argo CD's gopher-lua would) say of a policy in each state:
//!
//! | state                                   | kstatus    | Argo CD     |
//! |-----------------------------------------|------------|-------------|
//! | healthy                                 | Current    | Healthy     |
//! | a new generation not evaluated yet      | InProgress | Progressing |
//! | invalid spec (Stalled)                  | Failed     | Degraded    |
//! | source that refuses the namespace       | Failed     | Degraded    |
//! | target kind without /scale              | Failed     | Degraded    |
//! | metrics outage (source down)            | Current    | Healthy     |
//! | paused                                  | Current    | Suspended   |
//! | target missing (just created)           | InProgress | Progressing |
//!
//! Each object is also written to `target/e2e/health-fixtures/`,
//! which is where tests/fixtures/argocd/ came from.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use ballast_e2e::{Scenario, eventually, polls};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

const POLL: Duration = Duration::from_secs(2);

fn spec(target: &str, query: &str, extra: Value) -> Value {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1, "maxReplicas": 4, "pollInterval": "2s",
        "metrics": [{"name": "demand", "query": query, "target": {"type": "AverageValue", "averageValue": "1"}}]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

async fn pipe(program: &Path, args: &[&str], input: &str) -> anyhow::Result<String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    anyhow::ensure!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct Judges {
    kstatus: PathBuf,
    /// deploy/argocd/check: health.lua run by lua5.1 on the object.
    check: PathBuf,
    fixtures: PathBuf,
}

impl Judges {
    /// The policy as `kubectl get -o json` shows it, and what each judge says.
    async fn judge(&self, s: &Scenario, name: &str) -> anyhow::Result<(String, String, Value)> {
        let (ok, object) = s
            .kubectl(&["get", "customscalingpolicy", name, "-o", "json"], None)
            .await?;
        anyhow::ensure!(ok, "kubectl get {name}: {object}");
        let verdict: Value = serde_json::from_str(&pipe(&self.kstatus, &[], &object).await?)?;
        let kstatus = verdict["status"].as_str().unwrap_or_default().to_string();
        let value: Value = serde_json::from_str(&object)?;
        let argo = pipe(&self.check, &[], &object).await?;
        let argo = argo.split('\t').next().unwrap_or_default().to_string();
        Ok((kstatus, argo, value))
    }

    /// Waits until kstatus and Argo CD say `expected`; saves the object as a fixture.
    async fn expect(
        &self,
        s: &Scenario,
        name: &str,
        kstatus: &str,
        argo: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let (value, seen) = eventually(
            within,
            format!("{name}: kstatus {kstatus}, Argo CD {argo}"),
            || async {
                let (k, a, value) = self.judge(s, name).await?;
                let conditions: Vec<String> = value["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!(
                            "{}={}/{}",
                            c["type"].as_str().unwrap_or("?"),
                            c["status"].as_str().unwrap_or("?"),
                            c["reason"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                anyhow::ensure!(
                    k == kstatus && a == argo,
                    "kstatus {k}, Argo CD {a}; conditions {conditions:?}"
                );
                Ok((value, format!("kstatus {k}, Argo CD {a}")))
            },
        )
        .await?;
        s.say(format!("{name}: {seen}"));
        let mut value = value;
        if let Some(meta) = value["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        std::fs::create_dir_all(&self.fixtures)?;
        std::fs::write(
            self.fixtures.join(format!("{name}.json")),
            serde_json::to_string_pretty(&value)?,
        )?;
        Ok(())
    }
}

pub async fn health(s: &mut Scenario) -> anyhow::Result<()> {
    let kstatus = s
        .env
        .kstatus
        .clone()
        .ok_or_else(|| anyhow!("KSTATUS is not set (e2e/scenarios builds it with e2e/tool)"))?;
    let judges = Judges {
        kstatus,
        check: s.env.repo.join("deploy/argocd/check"),
        fixtures: s.env.repo.join("target/e2e/health-fixtures"),
    };
    s.operator("op").await?;
    // One target each: the webhook refuses two policies on one target.
    for target in ["healthy", "paused", "outage", "invalid", "refused"] {
        s.deployment(target, 2).await?;
    }

    s.policy("healthy", spec("healthy", "vector(2)", json!({})))
        .await?;
    judges
        .expect(s, "healthy", "Current", "Healthy", polls(POLL, 3))
        .await?;

    s.policy(
        "paused",
        spec("paused", "vector(2)", json!({"paused": true})),
    )
    .await?;
    judges
        .expect(s, "paused", "Current", "Suspended", polls(POLL, 3))
        .await?;

    // A source that does not answer: the outage is runtime, not ill health.
    let down = s
        .source(
            "down",
            json!({"address": "http://127.0.0.1:9", "timeout": "1s", "allowedNamespaces": [s.ns]}),
        )
        .await?;
    let mut outage = spec("outage", "vector(2)", json!({}));
    outage["metrics"][0]["source"] = json!(down);
    s.policy("outage", outage).await?;
    eventually(polls(POLL, 3), "outage: MetricsAvailable False", || {
        s.condition_is("outage", "MetricsAvailable", "False/MetricsUnavailable")
    })
    .await?;
    judges
        .expect(s, "outage", "Current", "Healthy", polls(POLL, 2))
        .await?;

    // Configuration that cannot work (admitted past the webhook on purpose).
    s.raw_policy(
        "invalid",
        json!({"e2e.ballast.dev/bypass-webhook": "true"}),
        spec("invalid", "sum(", json!({})),
    )
    .await?;
    judges
        .expect(s, "invalid", "Failed", "Degraded", polls(POLL, 3))
        .await?;
    let closed = s
        .source(
            "closed",
            json!({"address": s.env.prometheus_url, "allowedNamespaces": ["somewhere-else"]}),
        )
        .await?;
    let mut refused = spec("refused", "vector(2)", json!({}));
    refused["metrics"][0]["source"] = json!(closed);
    s.raw_policy(
        "refused",
        json!({"e2e.ballast.dev/bypass-webhook": "true"}),
        refused,
    )
    .await?;
    judges
        .expect(s, "refused", "Failed", "Degraded", polls(POLL, 3))
        .await?;
    let mut no_scale = spec("no-scale", "vector(2)", json!({}));
    no_scale["targetRef"] =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "kube-root-ca.crt"});
    s.raw_policy(
        "no-scale",
        json!({"e2e.ballast.dev/bypass-webhook": "true"}),
        no_scale,
    )
    .await?;
    judges
        .expect(s, "no-scale", "Failed", "Degraded", polls(POLL, 3))
        .await?;

    // A target that does not exist yet: waiting, not failed.
    s.policy("missing", spec("nothing-yet", "vector(2)", json!({})))
        .await?;
    judges
        .expect(s, "missing", "InProgress", "Progressing", polls(POLL, 3))
        .await?;

    // A new generation nobody has evaluated: the operator stopped, the spec changed.
    s.stop_operators().await;
    s.patch_policy("healthy", json!({"maxReplicas": 5})).await?;
    judges
        .expect(
            s,
            "healthy",
            "InProgress",
            "Progressing",
            Duration::from_secs(10),
        )
        .await?;
    // Saved under its own name for the fixtures.
    std::fs::rename(
        judges.fixtures.join("healthy.json"),
        judges.fixtures.join("not-evaluated.json"),
    )?;
    s.operator("op2").await?;
    judges
        .expect(s, "healthy", "Current", "Healthy", polls(POLL, 3))
        .await?;
    Ok(())
}

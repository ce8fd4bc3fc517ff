//! What the operator writes, and what it must not: out-of-band replicas brought
//! back into bounds; `paused` and `dryRun` write nothing; a source that does not
//! allow the namespace gives no data; a policy it cannot decode stalls nothing.

use std::time::Duration;

use ballast_e2e::{Scenario, eventually, holds, polls};
use serde_json::{Value, json};

/// A policy on Deployment `name`: one replica per unit of the constant `demand`.
fn spec(name: &str, min: u32, max: u32, poll: Duration, demand: u32, extra: Value) -> Value {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": min, "maxReplicas": max, "pollInterval": format!("{}s", poll.as_secs()),
        "metrics": [{"name": "demand", "query": format!("vector({demand})"), "target": {"type": "AverageValue", "averageValue": "1"}}]
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

pub async fn out_of_band_into_bounds(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(3);
    s.operator("op").await?;
    s.deployment("bounded", 2).await?;
    s.policy("bounded", spec("bounded", 2, 4, POLL, 3, json!({})))
        .await?;
    eventually(polls(POLL, 3), "bounded follows its metric to 3", || {
        s.replicas_are("bounded", 3)
    })
    .await?;
    s.scale("bounded", 9).await?;
    // Back within maxReplicas at once (then on to what the metric asks for).
    eventually(
        polls(POLL, 2),
        "out-of-band 9 brought back within maxReplicas 4",
        || async {
            let r = s.replicas("bounded").await?;
            anyhow::ensure!(r <= 4, "at {r}");
            Ok(())
        },
    )
    .await?;
    let downs = s.events("ScaledDown").await?;
    let notes: Vec<&str> = downs.iter().filter_map(|e| e.note.as_deref()).collect();
    anyhow::ensure!(
        notes
            .iter()
            .any(|n| n.contains("Deployment/bounded from 9 to 4 replicas")
                && n.contains("TooManyReplicas")),
        "no ScaledDown event from 9 to 4 naming TooManyReplicas: {notes:?}"
    );
    s.say("out-of-band scale to 9 brought back to 4 (TooManyReplicas)");
    Ok(())
}

pub async fn paused(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    s.operator("op").await?;
    s.deployment("paused", 2).await?;
    s.policy(
        "paused",
        spec("paused", 1, 8, POLL, 6, json!({"paused": true})),
    )
    .await?;
    eventually(polls(POLL, 3), "paused: AbleToScale False/Paused", || {
        s.condition_is("paused", "AbleToScale", "False/Paused")
    })
    .await?;
    holds(POLL * 3, "a paused policy writes no replicas", || {
        s.replicas_are("paused", 2)
    })
    .await?;
    Ok(())
}

pub async fn dry_run(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let op = s.operator("op").await?;
    s.deployment("dry", 2).await?;
    s.policy("dry", spec("dry", 1, 8, POLL, 5, json!({"dryRun": true})))
        .await?;
    eventually(
        polls(POLL, 3),
        "dryRun publishes desiredReplicas 5",
        || async {
            let desired = s.status("dry").await?.desired_replicas;
            anyhow::ensure!(desired == Some(5), "status.desiredReplicas {desired:?}");
            Ok(())
        },
    )
    .await?;
    holds(POLL * 2, "a dryRun policy writes no replicas", || {
        s.replicas_are("dry", 2)
    })
    .await?;
    s.condition_is("dry", "AbleToScale", "True/DryRun").await?;
    let skipped = s.operators[op]
        .metric(r#"ballast_writes_skipped_total{reason="dry_run"}"#)
        .await?;
    anyhow::ensure!(
        skipped.unwrap_or(0.0) >= 1.0,
        "ballast_writes_skipped_total{{reason=\"dry_run\"}} is {skipped:?}"
    );
    Ok(())
}

/// Past the webhook (which refuses it: the `admission` scenario), the controller
/// refuses data from a source that does not allow the policy's namespace.
pub async fn source_not_allowed(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    s.operator("op").await?;
    let url = s.env.prometheus_url.clone();
    let source = s
        .source(
            "other",
            json!({"address": url, "allowedNamespaces": ["somewhere-else"]}),
        )
        .await?;
    s.deployment("denied", 2).await?;
    let mut spec = spec("denied", 1, 8, POLL, 6, json!({}));
    spec["metrics"][0]["source"] = json!(source);
    s.policy_labelled(
        "denied",
        json!({"e2e.ballast.dev/bypass-webhook": "true"}),
        spec,
    )
    .await?;
    let condition = eventually(
        polls(POLL, 3),
        "MetricsAvailable False/SourceNotAllowed",
        || s.condition_is("denied", "MetricsAvailable", "False/SourceNotAllowed"),
    )
    .await?;
    let why = format!("does not allow namespace \"{}\"", s.ns);
    anyhow::ensure!(
        condition.message.contains(&why),
        "the condition does not say why: {}",
        condition.message
    );
    holds(POLL * 2, "no scaling without allowed data", || {
        s.replicas_are("denied", 2)
    })
    .await?;
    Ok(())
}

/// A policy the operator cannot decode (a duration over a year passes the CRD's
/// pattern) must not stall the policies after it.
pub async fn undecodable_policy(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let op = s.operator("op").await?;
    let mut broken = spec("nothing", 1, 3, POLL, 1, json!({}));
    broken["pollInterval"] = json!("99999999h");
    s.raw_policy(
        "broken",
        json!({"e2e.ballast.dev/bypass-webhook": "true"}),
        broken,
    )
    .await?;
    s.deployment("after", 1).await?;
    s.policy("after", spec("after", 1, 4, POLL, 2, json!({})))
        .await?;
    eventually(
        polls(POLL, 3),
        "a policy created after an undecodable one is served",
        || s.replicas_are("after", 2),
    )
    .await?;
    anyhow::ensure!(
        s.operators[op]
            .log_text()
            .contains("policy cannot be decoded"),
        "the undecodable policy was not reported in the log"
    );
    Ok(())
}

//! Leadership: a SIGKILLed leader's standby takes over within the lease and honours
//! the scale-down window the old leader started; a SIGTERMed leader releases the
//! Lease at once; an operator started after its policies evaluates none before its
//! caches synced.

use std::time::{Duration, Instant};

use ballast_e2e::{Scenario, eventually, holds, polls};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

/// The Lease's holder (empty once released).
async fn holder(s: &Scenario) -> anyhow::Result<String> {
    let lease = Api::<Lease>::namespaced(s.client.clone(), &s.ns)
        .get("ballast-leader")
        .await?;
    Ok(lease
        .spec
        .and_then(|l| l.holder_identity)
        .unwrap_or_default())
}

/// `fo` is still at 4 replicas, inside the window that started at `dropped`.
async fn four(s: &Scenario, dropped: Instant, window: Duration) -> anyhow::Result<()> {
    let r = s.replicas("fo").await?;
    anyhow::ensure!(
        r == 4,
        "scaled to {r} at +{:.1}s, inside the {}s window",
        dropped.elapsed().as_secs_f64(),
        window.as_secs()
    );
    Ok(())
}

pub async fn failover(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(30);
    let lease = ballast_e2e::LEASE;
    let a = s.operator("op-a").await?;
    eventually(lease * 2, "op-a leads", || async {
        anyhow::ensure!(s.operators[a].leads().await, "no");
        Ok(())
    })
    .await?;
    let b = s.operator("op-b").await?;
    anyhow::ensure!(
        !s.operators[b].leads().await,
        "two leaders: op-a and op-b both report ballast_leader 1"
    );

    s.deployment("fo", 4).await?;
    s.policy(
        "fo",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fo"},
            "minReplicas": 1, "maxReplicas": 8, "pollInterval": "2s",
            "metrics": [{"name": "demand", "query": "vector(4)", "target": {"type": "AverageValue", "averageValue": "1"}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": WINDOW.as_secs()}}
        }),
    )
    .await?;
    eventually(polls(POLL, 3), "fo Ready", || {
        s.condition_is("fo", "Ready", "True/Ready")
    })
    .await?;
    // Demand drops: the window holds 4 replicas. The clock starts before the patch:
    // the operator may see the drop before the patch call returns.
    let dropped = Instant::now();
    s.patch_policy(
        "fo",
        json!({"metrics": [{"name": "demand", "query": "vector(1)", "target": {"type": "AverageValue", "averageValue": "1"}}]}),
    )
    .await?;
    // A few ticks of the leader see the drop and persist it in the history.
    holds(POLL * 4, "fo holds 4 before the failover", || {
        four(s, dropped, WINDOW)
    })
    .await?;
    let history = s
        .status("fo")
        .await?
        .history
        .map(|h| h.recommendations.len())
        .unwrap_or(0);
    anyhow::ensure!(history > 0, "no history persisted in status");

    s.operators[a].kill().await?;
    let killed = Instant::now();
    s.say("SIGKILLed the leader op-a");
    eventually(lease + polls(POLL, 1), "op-b takes over", || async {
        anyhow::ensure!(s.operators[b].leads().await, "op-b does not lead");
        Ok(())
    })
    .await?;
    let took = killed.elapsed();
    s.say(format!(
        "standby took over {:.1}s after the leader was killed (lease {}s)",
        took.as_secs_f64(),
        lease.as_secs()
    ));
    // The lease runs out, and the standby's next attempt (every lease grace, 2 s)
    // acquires it; more than that and one more second is a slow takeover.
    let bound = lease + Duration::from_secs(3);
    anyhow::ensure!(
        took <= bound,
        "takeover took {:.1}s, lease is {}s (bound {}s)",
        took.as_secs_f64(),
        lease.as_secs(),
        bound.as_secs()
    );
    // The window started before the failover: no scale-down before it ends. The
    // last recommendation of 4 came at the old leader's last tick before it saw the
    // drop, up to one interval (plus jitter) before `dropped`: the window can end
    // that much before `dropped + WINDOW`, and not earlier.
    let earliest = WINDOW.saturating_sub(POLL.mul_f64(1.1));
    holds(
        earliest.saturating_sub(dropped.elapsed()),
        "the new leader honours the window",
        || four(s, dropped, WINDOW),
    )
    .await?;
    eventually(
        polls(POLL, 3) + Duration::from_secs(10),
        "the new leader finishes the scale-down to 1",
        || async {
            let r = s.replicas("fo").await?;
            anyhow::ensure!(r == 1, "at {r}");
            Ok(())
        },
    )
    .await?;
    s.say(format!(
        "scale-down completed {:.1}s after the demand dropped",
        dropped.elapsed().as_secs_f64()
    ));
    let downs = s.events("ScaledDown").await?;
    anyhow::ensure!(
        downs
            .iter()
            .any(|e| e.reporting_instance.as_deref() == Some("op-b")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("Scaled down Deployment/fo"))),
        "no ScaledDown event for fo from op-b: {:?}",
        downs
            .iter()
            .map(|e| (e.reporting_instance.clone(), e.note.clone()))
            .collect::<Vec<_>>()
    );

    // A graceful stop releases the Lease: it stops naming op-b within the lease's
    // grace (it would for the whole lease if it merely expired), and a third replica
    // takes over.
    let c = s.operator("op-c").await?;
    anyhow::ensure!(
        s.operators[b].leads().await,
        "op-b does not lead before its SIGTERM"
    );
    // A graceful stop releases the Lease: within the lease grace (2 s) it no longer
    // names op-b; merely expiring it would take the whole lease (6 s).
    const GRACE: Duration = Duration::from_secs(2);
    let termed = Instant::now();
    s.operators[b].send_term().await?;
    let released = eventually(
        GRACE,
        "the Lease lets go of op-b after its SIGTERM",
        || async {
            let holder = holder(s).await?;
            anyhow::ensure!(holder != "op-b", "still names op-b");
            Ok(holder)
        },
    )
    .await?;
    s.say(format!(
        "SIGTERM: the Lease let go of op-b within {:.1}s (holder now '{released}')",
        termed.elapsed().as_secs_f64()
    ));
    s.operators[b].exited(Duration::from_secs(10)).await?;
    eventually(
        lease * 2,
        "op-c takes over after op-b's SIGTERM",
        || async {
            anyhow::ensure!(
                s.operators[c].leads().await,
                "op-c does not lead; holder '{}'",
                holder(s).await.unwrap_or_default()
            );
            Ok(())
        },
    )
    .await?;
    anyhow::ensure!(
        s.operators[b].log_text().contains("lease released"),
        "op-b did not log the lease release"
    );
    Ok(())
}

pub async fn sync_before_tick(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let url = s.env.prometheus_url.clone();
    let ns = s.ns.clone();
    let source = s
        .source("early", json!({"address": url, "allowedNamespaces": [ns]}))
        .await?;
    for i in 0..3 {
        let name = format!("early-{i}");
        s.deployment(&name, 1).await?;
        s.policy(
            &name,
            json!({
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "maxReplicas": 3, "pollInterval": "2s",
                "metrics": [{"name": "demand", "source": source, "query": "vector(1)", "target": {"type": "AverageValue", "averageValue": "1"}}]
            }),
        )
        .await?;
    }
    let op = s.operator("op-sync").await?;
    for i in 0..3 {
        let series = format!(
            "ballast_last_evaluation_timestamp_seconds{{namespace=\"{ns}\",policy=\"early-{i}\"}}"
        );
        eventually(
            polls(POLL, 5),
            format!("op-sync evaluates early-{i}"),
            || async {
                let v = s.operators[op].metric(&series).await?;
                anyhow::ensure!(v.is_some(), "no {series}");
                Ok(())
            },
        )
        .await?;
    }
    s.operators[op].terminate().await?;
    let log = s.operators[op].log_text();
    let line_of = |needle: &str| log.lines().position(|l| l.contains(needle));
    let synced = line_of("caches synced; ready");
    let first = line_of("decided");
    let missing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("decided") && l.contains("early-") && l.contains("data=Missing"))
        .collect();
    s.say(format!("op-sync: caches synced at log line {synced:?}, first decision at line {first:?}, {} decisions without data", missing.len()));
    match (synced, first) {
        (Some(synced), Some(first)) if first > synced => {}
        _ => anyhow::bail!(
            "a policy was evaluated before the caches synced (lines {first:?}, {synced:?})"
        ),
    }
    anyhow::ensure!(
        missing.is_empty(),
        "op-sync decided without data (the source looked missing): {}",
        missing[0]
    );
    Ok(())
}

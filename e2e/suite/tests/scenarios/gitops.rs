//! GitOps against Ballast, with the API server's own field management:
//!
//! - `replicas-fight`: a second writer (server-side apply as `argocd-controller`,
//!   the way a sync that keeps `spec.replicas` in Git writes) sets the target's
//!   replicas every few seconds. The policy reports it within two poll intervals
//!   (`ReplicasOwned=False/ReplicasOverwritten` naming the manager, one Warning
//!   Event), and Ballast scales back no faster than its scale-up rate rule allows.
//! - `gitops-pause`: docs/gitops.md's claim that a `spec.paused` patched during an
//!   incident survives the sync while Git does not set `paused`: the policy
//!   re-applied as Flux does (server-side, `kustomize-controller`, forced) and as
//!   Argo CD does by default (client-side apply) keeps `paused: true`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_e2e::{Scenario, eventually, polls};
use serde_json::json;

const POLL: Duration = Duration::from_secs(2);
/// The scale-up rate rule: at most 2 pods per 10 s.
const UP_PODS: u32 = 2;
const UP_PERIOD: Duration = Duration::from_secs(10);

/// `kubectl apply --server-side` of `spec.replicas` alone, as `manager`.
async fn sync_replicas(
    s: &Scenario,
    name: &str,
    manager: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec: {{replicas: {replicas}}}\n"
    );
    let (ok, out) = s
        .kubectl(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                &format!("--field-manager={manager}"),
                "-f",
                "-",
            ],
            Some(&manifest),
        )
        .await?;
    anyhow::ensure!(ok, "the sync as {manager}: {out}");
    Ok(())
}

pub async fn replicas_fight(s: &mut Scenario) -> anyhow::Result<()> {
    s.operator("op").await?;
    s.deployment("web", 1).await?;
    // Git's manifest sets replicas: the admission webhook warns when the policy
    // is created (kubectl shows admission warnings).
    sync_replicas(s, "web", "argocd-controller", 1).await?;
    let policy = json!({
        "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 10, "pollInterval": "2s",
            "metrics": [{"name": "demand", "query": "vector(6)", "target": {"type": "AverageValue", "averageValue": "1"}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "policies": [
                {"type": "Pods", "value": UP_PODS, "periodSeconds": UP_PERIOD.as_secs()}
            ]}}
        }
    });
    let (ok, out) = s
        .kubectl(&["apply", "-f", "-"], Some(&policy.to_string()))
        .await?;
    anyhow::ensure!(ok, "kubectl apply of the policy: {out}");
    anyhow::ensure!(
        out.contains("spec.replicas is owned by argocd-controller"),
        "no admission warning about the replicas' owner: {out}"
    );
    s.say(format!(
        "admission: {}",
        out.lines()
            .find(|l| l.contains("is owned by"))
            .unwrap_or_default()
    ));
    // Ballast has written replicas (and owns them) before the fight starts.
    eventually(
        polls(POLL, 4) + UP_PERIOD,
        "Ballast scaled web up",
        || async {
            anyhow::ensure!(s.replicas("web").await? > 1, "web is at 1");
            s.condition_is("web", "ReplicasOwned", "True/OwnedByBallast")
                .await?;
            Ok(())
        },
    )
    .await?;

    // The sync: every 3 s, Git's 1 replica (below what Ballast has written, so
    // the first sync already changes the value: a sync of the value the field
    // already has shares the ownership instead of taking it).
    let started = Instant::now();
    let fight = async {
        loop {
            sync_replicas(s, "web", "argocd-controller", 1).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let watch = async {
        let c = eventually(
            polls(POLL, 2),
            "ReplicasOwned False naming argocd-controller",
            || async {
                let c = s
                    .condition_is("web", "ReplicasOwned", "False/ReplicasOverwritten")
                    .await?;
                anyhow::ensure!(c.message.contains("argocd-controller"), "{}", c.message);
                Ok(c)
            },
        )
        .await?;
        s.say(format!(
            "after {:.1}s: ReplicasOwned False: {}",
            started.elapsed().as_secs_f64(),
            c.message
        ));
        let warning = eventually(
            polls(POLL, 2),
            "a Warning Event ReplicasOverwritten",
            || async {
                let events = s.events("ReplicasOverwritten").await?;
                let e = events
                    .into_iter()
                    .find(|e| e.type_.as_deref() == Some("Warning"))
                    .context("none yet")?;
                anyhow::ensure!(
                    e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("argocd-controller")),
                    "{:?}",
                    e.note
                );
                Ok(e)
            },
        )
        .await?;
        s.say(format!(
            "Warning Event: {}",
            warning.note.unwrap_or_default()
        ));
        // Let them fight for three rate periods.
        tokio::time::sleep(UP_PERIOD * 3).await;
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        r = fight => r?,
        r = watch => r?,
    }

    // One Warning for the whole stretch, not one per overwrite.
    let warnings = s.events("ReplicasOverwritten").await?;
    anyhow::ensure!(
        warnings.len() == 1 && warnings[0].series.as_ref().is_none_or(|se| se.count <= 1),
        "{} ReplicasOverwritten Events (series {:?})",
        warnings.len(),
        warnings.first().and_then(|e| e.series.as_ref())
    );
    // Ballast's scale-ups: never more than the rule's 2 pods in any 10 s.
    let mut ups: Vec<(jiff::Timestamp, u32)> = Vec::new();
    for e in s.events("ScaledUp").await? {
        let (Some(time), Some(note)) = (e.event_time.as_ref(), e.note.as_deref()) else {
            continue;
        };
        let added = scaled(note).with_context(|| format!("ScaledUp note {note:?}"))?;
        ups.push((time.0, added));
        // A series counts repeats of the same note.
        for _ in 1..e.series.as_ref().map_or(1, |se| se.count) {
            ups.push((
                e.series
                    .as_ref()
                    .map_or(time.0, |se| se.last_observed_time.0),
                added,
            ));
        }
    }
    ups.sort();
    // Event times are the publisher's, a moment after the tick's clock that the
    // rule counts with: a second short of the period absorbs the difference.
    let window = (UP_PERIOD - Duration::from_secs(1)).as_millis() as i64;
    for (i, (start, _)) in ups.iter().enumerate() {
        let within: u32 = ups[i..]
            .iter()
            .take_while(|(t, _)| t.as_millisecond() - start.as_millisecond() < window)
            .map(|(_, n)| n)
            .sum();
        anyhow::ensure!(
            within <= UP_PODS,
            "Ballast added {within} pods within {}s of {start}: faster than its rule ({UP_PODS} per {}s): {ups:?}",
            UP_PERIOD.as_secs(),
            UP_PERIOD.as_secs()
        );
    }
    s.say(format!(
        "{} scale-ups by Ballast in the fight, within its rate rule",
        ups.len()
    ));
    Ok(())
}

/// Pods added by a `Scaled up ... from A to B replicas` note.
fn scaled(note: &str) -> Option<u32> {
    let rest = note.split(" from ").nth(1)?;
    let mut words = rest.split_whitespace();
    let from: u32 = words.next()?.parse().ok()?;
    let _to = words.next()?;
    let to: u32 = words.next()?.parse().ok()?;
    to.checked_sub(from)
}

pub async fn gitops_pause(s: &mut Scenario) -> anyhow::Result<()> {
    s.operator("op").await?;
    s.deployment("app", 2).await?;
    // The policy as Git has it: no `paused`.
    let manifest = format!(
        "apiVersion: autoscaling.ballast.dev/v1alpha1\nkind: CustomScalingPolicy\nmetadata: {{name: app, namespace: {}}}\nspec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: app}}\n  minReplicas: 1\n  maxReplicas: 8\n  pollInterval: 2s\n  metrics:\n    - {{name: demand, query: vector(4), target: {{type: AverageValue, averageValue: \"1\"}}}}\n",
        s.ns
    );
    for (how, args) in [
        (
            "Flux (server-side apply as kustomize-controller, forced)",
            vec![
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=kustomize-controller",
                "-f",
                "-",
            ],
        ),
        (
            "Argo CD's default (client-side apply)",
            vec!["apply", "-f", "-"],
        ),
    ] {
        let (ok, out) = s.kubectl_anywhere(&args, Some(&manifest)).await?;
        anyhow::ensure!(ok, "{how}: {out}");
        set_paused(s, true).await?;
        // The next sync of the same manifest.
        let (ok, out) = s.kubectl_anywhere(&args, Some(&manifest)).await?;
        anyhow::ensure!(ok, "{how}, again: {out}");
        let policy = s.policies().get("app").await?;
        anyhow::ensure!(
            policy.spec.paused,
            "{how} undid the incident's paused: true"
        );
        eventually(polls(POLL, 3), "the policy is paused", || {
            s.condition_is("app", "AbleToScale", "False/Paused")
        })
        .await?;
        s.say(format!("{how}: paused: true survives the sync"));
        set_paused(s, false).await?;
    }
    Ok(())
}

/// `kubectl patch` of `spec.paused`, as a person does during an incident.
async fn set_paused(s: &Scenario, paused: bool) -> anyhow::Result<()> {
    let patch = json!({"spec": {"paused": paused}}).to_string();
    let (ok, out) = s
        .kubectl(
            &[
                "patch",
                "customscalingpolicy",
                "app",
                "--type",
                "merge",
                "-p",
                &patch,
            ],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "kubectl patch paused={paused}: {out}");
    Ok(())
}

//! Node pools: a MachineDeployment raised before the workload and lowered after
//! it (KWOK nodes made by the harness's nodepool-sync, pods running on them); a
//! node pool without `/scale` through `replicasPath`; a pool at `maxNodes`
//! reported as such (`NodePoolAtMax`), and `capReplicas` keeping the workload to
//! what the nodes hold.

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_e2e::{Scenario, eventually, holds, polls};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

const MD_VERSION: &str = "cluster.x-k8s.io/v1beta1";

fn machinedeployments(s: &Scenario) -> Api<DynamicObject> {
    s.dynamic(MD_VERSION, "MachineDeployment", "machinedeployments")
}

/// A MachineDeployment of KWOK machines; nodepool-sync gives it nodes labelled
/// `ballast.dev/node-pool=<name>` and this namespace.
async fn machinedeployment(s: &Scenario, name: &str, replicas: i64) -> anyhow::Result<()> {
    s.apply(
        &machinedeployments(s),
        json!({
            "apiVersion": MD_VERSION, "kind": "MachineDeployment",
            "metadata": {"name": name},
            "spec": {
                "clusterName": "ballast-e2e", "replicas": replicas,
                "selector": {"matchLabels": {"ballast.dev/node-pool": name}},
                "template": {
                    "metadata": {"labels": {"ballast.dev/node-pool": name}},
                    "spec": {
                        "bootstrap": {"dataSecretName": "kwok-none"}, "clusterName": "ballast-e2e",
                        "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KwokMachineTemplate", "name": "kwok"}
                    }
                }
            }
        }),
    )
    .await
}

async fn md_replicas(s: &Scenario, name: &str) -> anyhow::Result<i64> {
    let md = machinedeployments(s)
        .get(name)
        .await
        .with_context(|| format!("MachineDeployment {name}"))?;
    md.data["spec"]["replicas"]
        .as_i64()
        .with_context(|| format!("MachineDeployment {name} has no spec.replicas"))
}

fn demand(n: u32) -> Value {
    json!([{"name": "demand", "query": format!("vector({n})"), "target": {"type": "AverageValue", "averageValue": "1"}}])
}

async fn md_is(s: &Scenario, name: &str, expected: i64) -> anyhow::Result<()> {
    let r = md_replicas(s, name).await?;
    anyhow::ensure!(
        r == expected,
        "MachineDeployment {name} at {r}, expected {expected}"
    );
    Ok(())
}

pub async fn node_pool(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(3);
    const DELAY: Duration = Duration::from_secs(15);
    s.operator("op").await?;
    machinedeployment(s, "pool", 1).await?;
    eventually(
        polls(POLL, 6),
        "nodepool-sync makes the pool's node",
        || async {
            let (nodes, _) = s.pool_nodes("pool").await?;
            anyhow::ensure!(nodes == 1, "{nodes} nodes");
            Ok(())
        },
    )
    .await?;
    s.deployment_on("web", 1, Some("pool"), None).await?;
    s.policy(
        "web",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 10, "pollInterval": "3s", "metrics": demand(7),
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            "nodePool": {
                "targetRef": {"apiVersion": MD_VERSION, "kind": "MachineDeployment", "name": "pool"},
                "podsPerNode": 2, "minNodes": 1, "maxNodes": 5, "scaleDownDelay": "15s"
            }
        }),
    )
    .await?;
    // Up: the nodes first. Sampled often: both writes come in the same tick.
    // Up: the nodes first. Read in that order, often (both writes come in the same
    // tick): once the workload has grown, a read of the pool that follows must see
    // it grown too, or the workload went first.
    let grown = Instant::now();
    loop {
        let web = s.replicas("web").await?;
        let pool = md_replicas(s, "pool").await?;
        if web > 1 {
            anyhow::ensure!(
                pool > 1,
                "the workload grew (to {web}) before its nodes (pool still at {pool})"
            );
            s.say(format!(
                "Deployment web: 1 -> {web}, MachineDeployment pool already at {pool}"
            ));
            break;
        }
        anyhow::ensure!(
            grown.elapsed() < polls(POLL, 3),
            "web still at {web}, pool at {pool}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually(polls(POLL, 3), "web at 7", || s.replicas_are("web", 7)).await?;
    eventually(polls(POLL, 3), "pool at ceil(7/2) = 4", || {
        md_is(s, "pool", 4)
    })
    .await?;
    eventually(polls(POLL, 10), "4 Ready pool nodes", || async {
        let (_, ready) = s.pool_nodes("pool").await?;
        anyhow::ensure!(ready == 4, "{ready} Ready");
        Ok(())
    })
    .await?;
    eventually(
        polls(POLL, 20),
        "7 pods Running on the pool's nodes",
        || async {
            let running = s.pods_in_phase("web", "Running").await?;
            anyhow::ensure!(running == 7, "{running} Running");
            Ok(())
        },
    )
    .await?;
    s.condition_is("web", "NodePoolReady", "True/DesiredWithinRange")
        .await?;
    // Ballast wrote the workload and the pool; it owns both replicas fields.
    let status = s.status("web").await?;
    anyhow::ensure!(
        status
            .node_pool
            .as_ref()
            .and_then(|p| p.last_scale_time.as_ref())
            .is_some(),
        "status.nodePool.lastScaleTime is not set after the pool was scaled: {status:?}"
    );
    eventually(polls(POLL, 2), "ReplicasOwned True", || {
        s.condition_is("web", "ReplicasOwned", "True/OwnedByBallast")
    })
    .await?;
    // Someone scales the MachineDeployment by hand: the pool's fight is named.
    let (ok, out) = s
        .kubectl(
            &["scale", "machinedeployment", "pool", "--replicas=6"],
            None,
        )
        .await?;
    anyhow::ensure!(ok, "kubectl scale machinedeployment: {out}");
    let c = eventually(
        polls(POLL, 2),
        "ReplicasOwned False naming kubectl",
        || async {
            let c = s
                .condition_is("web", "ReplicasOwned", "False/ReplicasOverwritten")
                .await?;
            anyhow::ensure!(
                c.message.contains("MachineDeployment/pool") && c.message.contains("kubectl"),
                "{}",
                c.message
            );
            Ok(c)
        },
    )
    .await?;
    s.say(format!("pool overwritten: {}", c.message));

    // Down: demand drops to 1 replica; the pool follows only after the delay.
    s.patch_policy("web", json!({"metrics": demand(1)})).await?;
    let (t_dep_down, t_md_down) = (Cell::new(None), Cell::new(None));
    eventually(
        DELAY + polls(POLL, 6),
        "the workload, then the pool, come down",
        || async {
            if t_dep_down.get().is_none() && s.replicas("web").await? < 7 {
                t_dep_down.set(Some(Instant::now()));
            }
            if t_md_down.get().is_none() && md_replicas(s, "pool").await? < 4 {
                t_md_down.set(Some(Instant::now()));
            }
            anyhow::ensure!(
                t_dep_down.get().is_some() && t_md_down.get().is_some(),
                "web down: {}, pool down: {}",
                t_dep_down.get().is_some(),
                t_md_down.get().is_some()
            );
            Ok(())
        },
    )
    .await?;
    let (Some(dep), Some(md)) = (t_dep_down.get(), t_md_down.get()) else {
        unreachable!("both set above")
    };
    let gap = md.saturating_duration_since(dep);
    s.say(format!(
        "nodes went down {:.1}s after the workload (scaleDownDelay {}s)",
        gap.as_secs_f64(),
        DELAY.as_secs()
    ));
    anyhow::ensure!(
        gap.as_secs_f64() >= DELAY.as_secs_f64() - 0.5,
        "nodes went down {:.1}s after the workload, delay is {}s",
        gap.as_secs_f64(),
        DELAY.as_secs()
    );
    eventually(polls(POLL, 3), "pool at 1", || md_is(s, "pool", 1)).await?;
    let notes: Vec<String> = s
        .events("NodePoolScaled")
        .await?
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    anyhow::ensure!(
        notes.iter().any(|n| n.contains("MachineDeployment/pool")),
        "no NodePoolScaled event: {notes:?}"
    );
    Ok(())
}

/// A node pool without `/scale`: a test CRD with `spec.count`, raised through
/// `nodePool.replicasPath` by a merge patch. Scaling one more kind is the
/// documented RBAC change (get, and patch for replicasPath), granted here.
pub async fn node_pool_path(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let group = format!("{}.test.ballast.dev", s.ns);
    let crd_name = format!("nodegroups.{group}");
    let crds = Api::<CustomResourceDefinition>::all(s.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": crd_name},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "NodeGroup", "plural": "nodegroups", "singular": "nodegroup"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"count": {"type": "integer"}}}}
            }}}]
        }
    }))?;
    crds.create(&PostParams::default(), &crd)
        .await
        .context("creating the NodeGroup CRD")?;
    let roles = Api::<ClusterRole>::all(s.client.clone());
    let bindings = Api::<ClusterRoleBinding>::all(s.client.clone());
    let rbac_name = format!("{}-nodegroups", s.ns);
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": rbac_name},
            "rules": [{"apiGroups": [group], "resources": ["nodegroups"], "verbs": ["get", "patch"]}]
        }))?)
        .await?;
    bindings
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": rbac_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac_name},
            "subjects": [{"kind": "ServiceAccount", "name": "ballast", "namespace": "ballast-system"}]
        }))?)
        .await?;
    let outcome = node_pool_path_steps(s, &group, POLL).await;
    let _ = bindings.delete(&rbac_name, &DeleteParams::default()).await;
    let _ = roles.delete(&rbac_name, &DeleteParams::default()).await;
    let _ = crds.delete(&crd_name, &DeleteParams::background()).await;
    outcome
}

async fn node_pool_path_steps(s: &mut Scenario, group: &str, poll: Duration) -> anyhow::Result<()> {
    let version = format!("{group}/v1");
    eventually(polls(poll, 10), "the NodeGroup CRD is served", || async {
        s.dynamic(&version, "NodeGroup", "nodegroups")
            .list(&Default::default())
            .await?;
        Ok(())
    })
    .await?;
    let groups = s.dynamic(&version, "NodeGroup", "nodegroups");
    s.apply(&groups, json!({"apiVersion": version, "kind": "NodeGroup", "metadata": {"name": "ng"}, "spec": {"count": 1}}))
        .await?;
    s.operator("op").await?;
    s.deployment("pathweb", 1).await?;
    s.policy(
        "pathweb",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pathweb"},
            "minReplicas": 1, "maxReplicas": 10, "pollInterval": "2s", "metrics": demand(6),
            "nodePool": {
                "targetRef": {"apiVersion": version, "kind": "NodeGroup", "name": "ng"},
                "replicasPath": "spec.count", "podsPerNode": 2, "minNodes": 1, "maxNodes": 5
            }
        }),
    )
    .await?;
    eventually(polls(poll, 5), "pathweb at 6", || {
        s.replicas_are("pathweb", 6)
    })
    .await?;
    eventually(
        polls(poll, 3),
        "NodeGroup spec.count at ceil(6/2) = 3",
        || async {
            let count = groups.get("ng").await?.data["spec"]["count"].as_i64();
            anyhow::ensure!(count == Some(3), "spec.count {count:?}");
            Ok(())
        },
    )
    .await?;
    s.condition_is("pathweb", "NodePoolReady", "True/DesiredWithinRange")
        .await?;
    s.say("NodeGroup spec.count raised to 3 through replicasPath");
    Ok(())
}

/// The acceptance finding: 8 replicas asked on a pool of at most 2 nodes of 2
/// pods (2-CPU pods on 4-CPU KWOK nodes) was reported healthy. Now: NodePoolAtMax.
fn capped_spec(demand_n: u32, cap: bool) -> Value {
    let fast = json!({"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 10, "periodSeconds": 2}]});
    json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "capped"},
        "minReplicas": 1, "maxReplicas": 10, "pollInterval": "2s", "metrics": demand(demand_n),
        "behavior": {"scaleUp": fast, "scaleDown": fast},
        "nodePool": {
            "targetRef": {"apiVersion": MD_VERSION, "kind": "MachineDeployment", "name": "capped"},
            "podsPerNode": 2, "minNodes": 1, "maxNodes": 2, "scaleDownDelay": "1h", "capReplicas": cap
        }
    })
}

pub async fn node_pool_at_max(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    let op = s.operator("op").await?;
    machinedeployment(s, "capped", 2).await?;
    eventually(
        polls(POLL, 10),
        "nodepool-sync makes the pool's 2 nodes",
        || async {
            let (nodes, _) = s.pool_nodes("capped").await?;
            anyhow::ensure!(nodes == 2, "{nodes} nodes");
            Ok(())
        },
    )
    .await?;
    s.deployment_on("capped", 2, Some("capped"), Some("2"))
        .await?;
    s.policy("capped", capped_spec(8, false)).await?;
    eventually(polls(POLL, 5), "capped at 8 (capReplicas is off)", || {
        s.replicas_are("capped", 8)
    })
    .await?;
    eventually(polls(POLL, 5), "ScalingLimited True/NodePoolAtMax", || {
        s.condition_is("capped", "ScalingLimited", "True/NodePoolAtMax")
    })
    .await?;
    let ready = s
        .condition_is("capped", "NodePoolReady", "False/NodePoolAtMax")
        .await?;
    s.say(format!("NodePoolReady: {}", ready.message));
    anyhow::ensure!(
        ready.message.contains("needs 4 nodes for 8 replicas")
            && ready
                .message
                .contains("maxNodes is 2: 4 replicas fit, 4 may stay Pending"),
        "NodePoolReady's message lacks the numbers: {}",
        ready.message
    );
    md_is(s, "capped", 2)
        .await
        .context("the pool went past maxNodes")?;
    eventually(
        polls(POLL, 15),
        "4 Pending pods (what the report says)",
        || async {
            let pending = s.pods_in_phase("capped", "Pending").await?;
            anyhow::ensure!(pending == 4, "{pending} Pending");
            Ok(())
        },
    )
    .await?;
    eventually(polls(POLL, 5), "a NodePoolAtMax Event", || async {
        let notes: Vec<String> = s
            .events("NodePoolAtMax")
            .await?
            .into_iter()
            .filter_map(|e| e.note)
            .collect();
        anyhow::ensure!(
            notes.iter().any(|n| n.contains("4 replicas fit")),
            "{notes:?}"
        );
        Ok(())
    })
    .await?;
    let series = format!(
        "ballast_node_pool_at_max{{namespace=\"{}\",policy=\"capped\"}}",
        s.ns
    );
    let at_max = s.operators[op].metric(&series).await?;
    anyhow::ensure!(at_max == Some(1.0), "{series} is {at_max:?}");

    // capReplicas: down to 2 (the limit ends: NodePoolWithinMax), then 8 asked
    // again stops at what 2 nodes hold.
    s.patch_policy("capped", capped_spec(2, true)).await?;
    eventually(polls(POLL, 5), "capped at 2", || {
        s.replicas_are("capped", 2)
    })
    .await?;
    // (True with the pool's own reason: here its scale-down waits for scaleDownDelay.)
    eventually(polls(POLL, 5), "NodePoolReady True", || async {
        let c = s.condition("capped", "NodePoolReady").await?;
        anyhow::ensure!(
            c.status == "True",
            "NodePoolReady {}/{}",
            c.status,
            c.reason
        );
        Ok(())
    })
    .await?;
    eventually(polls(POLL, 3), "a NodePoolWithinMax Event", || async {
        anyhow::ensure!(!s.events("NodePoolWithinMax").await?.is_empty(), "none");
        Ok(())
    })
    .await?;
    s.patch_policy("capped", capped_spec(8, true)).await?;
    eventually(polls(POLL, 5), "ScalingLimited True/NodePoolAtMax", || {
        s.condition_is("capped", "ScalingLimited", "True/NodePoolAtMax")
    })
    .await?;
    eventually(polls(POLL, 5), "capped at 4 (what maxNodes hold)", || {
        s.replicas_are("capped", 4)
    })
    .await?;
    holds(POLL * 3, "capped stays at the cap", || {
        s.replicas_are("capped", 4)
    })
    .await?;
    eventually(
        polls(POLL, 15),
        "no Pending pods with capReplicas",
        || async {
            let pending = s.pods_in_phase("capped", "Pending").await?;
            anyhow::ensure!(pending == 0, "{pending} Pending");
            Ok(())
        },
    )
    .await?;
    s.say(format!(
        "ScalingLimited: {}",
        s.condition("capped", "ScalingLimited").await?.message
    ));
    Ok(())
}

/// `spec.schedules`: a window every minute, for its first 25 s, with a floor of 4
/// replicas and 3 nodes. The Deployment and its MachineDeployment go up at the
/// window's start with no load asking for it, and come back to what the metric
/// asks (1) only through the scale-down window and rate policy after it ends;
/// status names the window while it is active; ScheduleStarted/ScheduleEnded
/// Events mark it.
pub async fn schedule(s: &mut Scenario) -> anyhow::Result<()> {
    const POLL: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(25);
    s.operator("op").await?;
    machinedeployment(s, "rush-pool", 1).await?;
    s.deployment("rush", 1).await?;
    s.policy(
        "rush",
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rush"},
            "minReplicas": 1, "maxReplicas": 8, "pollInterval": "2s", "metrics": demand(1),
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 4,
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 4}]}},
            "nodePool": {
                "targetRef": {"apiVersion": MD_VERSION, "kind": "MachineDeployment", "name": "rush-pool"},
                "podsPerNode": 4, "minNodes": 1, "maxNodes": 5, "scaleDownDelay": "4s"
            },
            "schedules": [{"name": "rush-hour", "cron": "* * * * *", "duration": "25s",
                "minReplicas": 4, "nodePool": {"minNodes": 3}}]
        }),
    )
    .await?;
    // Wait for a window to end, then for the next one to start: a whole window.
    let second = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() % 60
    };
    eventually(Duration::from_secs(70), "outside a window", || async {
        let at = second();
        anyhow::ensure!((WINDOW.as_secs() + 2..58).contains(&at), "at :{at:02}");
        Ok(())
    })
    .await?;
    eventually(
        polls(POLL, 8),
        "back to 1 replica outside the window",
        || s.replicas_are("rush", 1),
    )
    .await?;
    eventually(
        Duration::from_secs(70),
        "the next window starts",
        || async {
            anyhow::ensure!(second() < 10, "at :{:02}", second());
            Ok(())
        },
    )
    .await?;
    let started = Instant::now();
    eventually(polls(POLL, 3), "the floor: 4 replicas, 3 nodes", || async {
        let r = s.replicas("rush").await?;
        let nodes = md_replicas(s, "rush-pool").await?;
        anyhow::ensure!(r == 4 && nodes >= 3, "{r} replicas, {nodes} nodes");
        Ok(())
    })
    .await?;
    s.say(format!(
        "window rush-hour: 1 -> 4 replicas and the pool at >= 3 nodes {:.1}s after it started, with the metric asking for 1",
        started.elapsed().as_secs_f64()
    ));
    let status = s.status("rush").await?;
    anyhow::ensure!(
        status.active_schedules.iter().any(|n| n == "rush-hour"),
        "status.activeSchedules {:?}",
        status.active_schedules
    );
    // Held for the whole window.
    holds(
        WINDOW.saturating_sub(started.elapsed() + POLL),
        "4 replicas while the window lasts",
        || s.replicas_are("rush", 4),
    )
    .await?;
    // After it: down through the 4 s window and 4 pods per 4 s, never a cliff
    // before the window's end; the pool after its scaleDownDelay.
    eventually(
        WINDOW + polls(POLL, 8),
        "back to 1 replica and 1 node after the window",
        || async {
            let r = s.replicas("rush").await?;
            let nodes = md_replicas(s, "rush-pool").await?;
            anyhow::ensure!(r == 1 && nodes == 1, "{r} replicas, {nodes} nodes");
            Ok(())
        },
    )
    .await?;
    let ended = started.elapsed();
    anyhow::ensure!(
        ended >= WINDOW.saturating_sub(POLL * 2),
        "down after {:.1}s, before the window's end",
        ended.as_secs_f64()
    );
    s.say(format!(
        "after the window: back to 1 replica and 1 node {:.1}s after it started",
        ended.as_secs_f64()
    ));
    for reason in ["ScheduleStarted", "ScheduleEnded"] {
        let notes: Vec<String> = s
            .events(reason)
            .await?
            .into_iter()
            .filter_map(|e| e.note)
            .collect();
        anyhow::ensure!(
            notes.iter().any(|n| n.contains("rush-hour")),
            "{reason} Events: {notes:?}"
        );
    }
    Ok(())
}

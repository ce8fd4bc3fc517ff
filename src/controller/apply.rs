//! Step 4, **apply** (client required): write the decision — only when a number changes, only as the
//! leader, never while `paused` or under `dryRun` — with the node pool and the
//! workload ordered as the engine says (nodes up first, down last).

use kube::ResourceExt;
use tracing::{info, warn};

use super::Context;
use crate::api::CustomScalingPolicy;
use crate::engine::{Decision, NodeDecision, Order};
use crate::error::Category;
use crate::scale::ScaleError;
use crate::telemetry::ReasonLabels;

/// What happened at apply, for status and Events.
#[derive(Debug, Default)]
pub struct Applied {
    /// The workload was written (from, to).
    pub replicas: Option<(u32, u32)>,
    /// The node pool was written (from, to).
    pub nodes: Option<(Option<u32>, u32)>,
    /// A write failed.
    pub failure: Option<Failure>,
    /// Why nothing was written although the decision changed something.
    pub skipped: Option<Skipped>,
}

/// A write that failed at apply.
#[derive(Debug)]
pub enum Failure {
    /// The workload's replicas.
    Workload(ScaleError),
    /// The node pool's size.
    NodePool(ScaleError),
}

impl Failure {
    /// The `AbleToScale` condition's reason and the Warning Event's: the error's
    /// category for the workload, `FailedUpdateNodePool` for the node pool.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Workload(e) => e.category(),
            Failure::NodePool(_) => crate::api::conditions::reasons::FAILED_UPDATE_NODE_POOL,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Workload(e) | Failure::NodePool(e) => e.to_string(),
        }
    }
}

/// Why apply wrote nothing although the decision changed something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    Paused,
    DryRun,
    /// This replica does not hold the Lease (or could not confirm it still does).
    NotLeader,
}

impl Skipped {
    /// The `reason` label of `ballast_writes_skipped_total`.
    pub fn label(self) -> &'static str {
        match self {
            Skipped::Paused => "paused",
            Skipped::DryRun => "dry_run",
            Skipped::NotLeader => "not_leader",
        }
    }
}

pub async fn apply(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    current: u32,
    decision: &Decision,
    leader: bool,
) -> Applied {
    let spec = &policy.spec;
    let mut applied = Applied::default();
    // A pool whose size could not be read is never written: a blind write could
    // skip scaleDownDelay or shrink it under the workload.
    let node_change = decision.nodes.as_ref().filter(|n| {
        n.current.is_some() && n.current != Some(n.desired) && n.order != Order::Unchanged
    });
    let workload_change = decision.desired_replicas != current;
    if !workload_change && node_change.is_none() {
        return applied;
    }
    let skip = if spec.paused {
        Some(Skipped::Paused)
    } else if spec.dry_run {
        Some(Skipped::DryRun)
    } else if !leader {
        Some(Skipped::NotLeader)
    } else {
        None
    };
    if let Some(reason) = skip {
        ctx.metrics
            .writes_skipped
            .get_or_create(&ReasonLabels {
                reason: reason.label().into(),
            })
            .inc();
        applied.skipped = Some(reason);
        return applied;
    }

    let nodes_first = node_change.is_some_and(|n| n.order == Order::NodesFirst);
    if nodes_first {
        write_nodes(ctx, policy, namespace, node_change, &mut applied).await;
        if applied.failure.is_some() {
            // Never grow the workload into nodes that could not be asked for.
            return applied;
        }
    }
    if workload_change {
        // Leadership can be lost while the metrics were read: ask again right before.
        if !ctx.is_leader() {
            applied.skipped = Some(Skipped::NotLeader);
            return applied;
        }
        // Expect our own write before making it: its watch event can arrive before
        // the call returns, and must not read as an out-of-band change.
        ctx.expect_replicas(namespace, &policy.name_any(), decision.desired_replicas);
        match ctx
            .scaler
            .write(namespace, &spec.target_ref, None, decision.desired_replicas)
            .await
        {
            Ok(()) => {
                info!(
                    from = current,
                    to = decision.desired_replicas,
                    reason = %decision.reason,
                    "scaled target"
                );
                ctx.metrics
                    .scale_writes
                    .get_or_create(&ReasonLabels {
                        reason: "workload".into(),
                    })
                    .inc();
                applied.replicas = Some((current, decision.desired_replicas));
            }
            Err(e) => {
                warn!(error = %e, "writing the target's replicas failed");
                applied.failure = Some(Failure::Workload(e));
                return applied;
            }
        }
    }
    if !nodes_first {
        write_nodes(ctx, policy, namespace, node_change, &mut applied).await;
    }
    applied
}

async fn write_nodes(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    change: Option<&NodeDecision>,
    applied: &mut Applied,
) {
    let (Some(n), Some(pool)) = (change, policy.spec.node_pool.as_ref()) else {
        return;
    };
    if !ctx.is_leader() {
        applied.skipped = Some(Skipped::NotLeader);
        return;
    }
    match ctx
        .scaler
        .write(
            namespace,
            &pool.target_ref,
            pool.replicas_path.as_deref(),
            n.desired,
        )
        .await
    {
        Ok(()) => {
            info!(nodes.from = ?n.current, nodes.to = n.desired, pool = %pool.target_ref.name, "scaled node pool");
            ctx.metrics
                .scale_writes
                .get_or_create(&ReasonLabels {
                    reason: "node_pool".into(),
                })
                .inc();
            applied.nodes = Some((n.current, n.desired));
        }
        Err(e) => {
            warn!(error = %e, "writing the node pool failed");
            applied.failure = Some(Failure::NodePool(e));
        }
    }
}

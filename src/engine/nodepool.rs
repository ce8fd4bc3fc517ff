//! Node-pool sizing: how many nodes the workload needs, and when the pool may move.
//! Nodes go up before (or with) the workload; they come down only after the
//! workload has shrunk and `scaleDownDelay` has passed.

use crate::api::conditions::Reason;
use crate::api::policy::NodePool;

/// Resource requests of one workload pod (from the target's pod template).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PodRequests {
    /// CPU cores.
    pub cpu: Option<f64>,
    /// Memory bytes.
    pub memory: Option<f64>,
}

/// Which write comes first when both change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Growing: raise the node pool, then the workload.
    NodesFirst,
    /// Shrinking: the workload has already shrunk; the pool follows.
    WorkloadFirst,
    /// The pool does not change.
    Unchanged,
}

/// What the engine decided for the node pool.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeDecision {
    pub current: Option<u32>,
    pub desired: u32,
    /// Nodes the workload needs (with headroom, within bounds), whether or not the
    /// pool may move there yet.
    pub needed: u32,
    pub order: Order,
    pub reason: Reason,
    pub message: String,
    /// Set when the workload needs more nodes than `maxNodes`.
    pub at_max: Option<AtMax>,
}

/// The pool is held at `maxNodes` below what the workload needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtMax {
    /// Nodes the workload needs (with headroom), beyond the bound.
    pub wanted: u32,
    pub max_nodes: u32,
    /// Replicas the workload is sized for.
    pub replicas: u32,
    /// Replicas `maxNodes` nodes hold (`maxNodes` × pods per node).
    pub fit: u32,
    /// The same, said for people (condition messages, Events).
    pub message: String,
}

impl AtMax {
    fn new(
        wanted: u32,
        max_nodes: u32,
        replicas: u32,
        fit: u32,
        per_node: u32,
        headroom: u32,
    ) -> Self {
        let message = format!(
            "the workload needs {wanted} nodes for {replicas} replicas at {per_node} per node (+{headroom} headroom) but maxNodes is {max_nodes}: {fit} replicas fit, {} may stay Pending",
            replicas.saturating_sub(fit)
        );
        Self {
            wanted,
            max_nodes,
            replicas,
            fit,
            message,
        }
    }
}

/// Replicas `maxNodes` nodes hold, when pods per node is known.
pub fn replicas_that_fit(pool: &NodePool, per_node: u32) -> u32 {
    pool.max_nodes
        .max(pool.min_nodes)
        .saturating_mul(per_node.max(1))
}

/// The most replicas `capReplicas` allows: what `maxNodes` nodes hold with
/// `headroomNodes` of them kept free, so a capped workload never asks for more
/// nodes than `maxNodes` (which would report the pool at max for ever).
pub fn replicas_cap(pool: &NodePool, per_node: u32) -> u32 {
    pool.max_nodes
        .max(pool.min_nodes)
        .saturating_sub(pool.headroom_nodes)
        .saturating_mul(per_node.max(1))
}

/// Nodes `replicas` need before the bounds: ceil(replicas / podsPerNode) + headroom.
fn nodes_wanted(pool: &NodePool, replicas: u32, per_node: u32) -> u32 {
    replicas
        .div_ceil(per_node.max(1))
        .saturating_add(pool.headroom_nodes)
}

/// Why pods per node cannot be worked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodsPerNodeError {
    /// `nodeAllocatable` is set but the pod requests are unknown.
    RequestsUnknown,
    /// One pod needs more than a node has.
    DoesNotFit,
}

/// Pods of the workload that fit on one node.
pub fn pods_per_node(
    pool: &NodePool,
    requests: Option<PodRequests>,
) -> Result<u32, PodsPerNodeError> {
    if let Some(n) = pool.pods_per_node {
        return if n == 0 {
            Err(PodsPerNodeError::DoesNotFit)
        } else {
            Ok(n)
        };
    }
    let alloc = pool.node_allocatable.as_ref();
    let requests = requests.ok_or(PodsPerNodeError::RequestsUnknown)?;
    let mut fit: Option<f64> = None;
    for (have, need) in [
        (
            alloc.and_then(|a| a.cpu.as_ref()).map(|q| q.value()),
            requests.cpu,
        ),
        (
            alloc.and_then(|a| a.memory.as_ref()).map(|q| q.value()),
            requests.memory,
        ),
    ] {
        if let (Some(have), Some(need)) = (have, need)
            && need > 0.0
        {
            let n = (have / need).floor();
            fit = Some(fit.map_or(n, |f: f64| f.min(n)));
        }
    }
    match fit {
        None => Err(PodsPerNodeError::RequestsUnknown),
        Some(n) if n < 1.0 => Err(PodsPerNodeError::DoesNotFit),
        Some(n) => Ok(n.min(f64::from(u32::MAX)) as u32),
    }
}

/// Nodes needed for `replicas`: ceil(replicas / podsPerNode) + headroom, in bounds.
pub fn nodes_needed(pool: &NodePool, replicas: u32, per_node: u32) -> u32 {
    nodes_wanted(pool, replicas, per_node).clamp(pool.min_nodes, pool.max_nodes.max(pool.min_nodes))
}

/// Decide the pool's size. `current_replicas` is what runs now, `desired_replicas`
/// what the workload is about to become; `shrink_since` is when a smaller pool first
/// became possible (kept in history). Returns the decision and the new `shrink_since`.
/// A pool the workload would push past `maxNodes` says so (`at_max`, reason
/// `NodePoolAtMax`) instead of passing for a pool within range.
pub fn decide_nodes(
    pool: &NodePool,
    current_nodes: Option<u32>,
    current_replicas: u32,
    desired_replicas: u32,
    requests: Option<PodRequests>,
    shrink_since: Option<i64>,
    now: i64,
) -> (NodeDecision, Option<i64>) {
    let (mut decision, since) = size_pool(
        pool,
        current_nodes,
        current_replicas,
        desired_replicas,
        requests,
        shrink_since,
        now,
    );
    if let Ok(per_node) = pods_per_node(pool, requests) {
        let replicas = current_replicas.max(desired_replicas);
        let wanted = nodes_wanted(pool, replicas, per_node);
        let max_nodes = pool.max_nodes.max(pool.min_nodes);
        if wanted > max_nodes {
            let fit = replicas_that_fit(pool, per_node);
            let at_max = AtMax::new(
                wanted,
                max_nodes,
                replicas,
                fit,
                per_node,
                pool.headroom_nodes,
            );
            if decision.reason == Reason::DesiredWithinRange {
                decision.reason = Reason::NodePoolAtMax;
                decision.message = at_max.message.clone();
            }
            decision.at_max = Some(at_max);
        }
    }
    (decision, since)
}

fn size_pool(
    pool: &NodePool,
    current_nodes: Option<u32>,
    current_replicas: u32,
    desired_replicas: u32,
    requests: Option<PodRequests>,
    shrink_since: Option<i64>,
    now: i64,
) -> (NodeDecision, Option<i64>) {
    let per_node = match pods_per_node(pool, requests) {
        Ok(n) => n,
        Err(err) => {
            // Without a size we cannot shrink safely: hold (or grow to the cap if a
            // pod cannot fit on any node, which a person must look at).
            let desired = current_nodes
                .unwrap_or(pool.max_nodes)
                .clamp(pool.min_nodes, pool.max_nodes);
            let message = match err {
                PodsPerNodeError::RequestsUnknown => {
                    "nodeAllocatable is set but the workload's pod requests are unknown; holding the node pool".to_string()
                }
                PodsPerNodeError::DoesNotFit => {
                    "one workload pod requests more than a node's allocatable resources; holding the node pool".to_string()
                }
            };
            let decision = NodeDecision {
                current: current_nodes,
                desired,
                needed: desired,
                order: order(current_nodes, desired),
                reason: Reason::PodDoesNotFit,
                message,
                at_max: None,
            };
            return (decision, None);
        }
    };
    // Never fewer nodes than what runs now needs, nor than what is about to run.
    let needed = nodes_needed(pool, current_replicas.max(desired_replicas), per_node);
    let Some(current) = current_nodes else {
        let decision = NodeDecision {
            current: None,
            desired: needed,
            needed,
            order: Order::NodesFirst,
            reason: Reason::DesiredWithinRange,
            message: format!("node pool size unknown; setting it to {needed}"),
            at_max: None,
        };
        return (decision, None);
    };
    if needed >= current {
        let decision = NodeDecision {
            current: Some(current),
            desired: needed,
            needed,
            order: order(Some(current), needed),
            reason: Reason::DesiredWithinRange,
            message: format!(
                "{needed} nodes for {} replicas at {per_node} per node (+{} headroom)",
                current_replicas.max(desired_replicas),
                pool.headroom_nodes
            ),
            at_max: None,
        };
        return (decision, None);
    }
    // The workload runs on fewer nodes than the pool has: wait out the delay.
    let since = shrink_since.unwrap_or(now);
    let delay = pool.scale_down_delay.as_millis() as i64;
    // Saturating: `since` comes from status (nodeShrinkSince), which a hand edit can
    // set to anything.
    if now.saturating_sub(since) >= delay {
        let decision = NodeDecision {
            current: Some(current),
            desired: needed,
            needed,
            order: Order::WorkloadFirst,
            reason: Reason::DesiredWithinRange,
            message: format!(
                "workload needs {needed} of {current} nodes for {}; shrinking the pool",
                pool.scale_down_delay
            ),
            at_max: None,
        };
        (decision, None)
    } else {
        let left = (delay - (now - since)).max(0) / 1000;
        let decision = NodeDecision {
            current: Some(current),
            desired: current,
            needed,
            order: Order::Unchanged,
            reason: Reason::NodePoolScaleDownDelayed,
            message: format!(
                "workload needs {needed} of {current} nodes; shrinking after scaleDownDelay {} ({left}s left)",
                pool.scale_down_delay
            ),
            at_max: None,
        };
        (decision, Some(since))
    }
}

fn order(current: Option<u32>, desired: u32) -> Order {
    match current {
        None => Order::NodesFirst,
        Some(c) if desired > c => Order::NodesFirst,
        Some(c) if desired < c => Order::WorkloadFirst,
        Some(_) => Order::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Duration;
    use crate::api::policy::{NodeAllocatable, TargetRef};

    fn pool() -> NodePool {
        NodePool {
            target_ref: TargetRef {
                api_version: "cluster.x-k8s.io/v1beta1".into(),
                kind: "MachineDeployment".into(),
                name: "pool".into(),
            },
            replicas_path: None,
            pods_per_node: Some(4),
            node_allocatable: None,
            min_nodes: 1,
            max_nodes: 10,
            headroom_nodes: 1,
            scale_down_delay: Duration::from_secs(600),
            cap_replicas: false,
        }
    }

    /// The acceptance finding: 8 replicas at 2 per node with maxNodes 2 was
    /// reported `DesiredWithinRange "2 nodes for 8 replicas"`.
    #[test]
    fn a_pool_held_at_max_nodes_says_so_with_the_numbers() {
        let mut p = pool();
        (p.pods_per_node, p.min_nodes, p.max_nodes, p.headroom_nodes) = (Some(2), 0, 2, 0);
        let (d, _) = decide_nodes(&p, Some(2), 4, 8, None, None, 0);
        assert_eq!((d.desired, d.reason), (2, Reason::NodePoolAtMax));
        let at_max = d.at_max.clone().expect("at max");
        assert_eq!(
            (at_max.wanted, at_max.max_nodes, at_max.replicas, at_max.fit),
            (4, 2, 8, 4)
        );
        assert_eq!(
            d.message,
            "the workload needs 4 nodes for 8 replicas at 2 per node (+0 headroom) but maxNodes is 2: 4 replicas fit, 4 may stay Pending"
        );
        assert_eq!(at_max.message, d.message);
        // Exactly at the bound is within range.
        let (d, _) = decide_nodes(&p, Some(2), 4, 4, None, None, 0);
        assert_eq!((d.reason, d.at_max), (Reason::DesiredWithinRange, None));
        // Headroom alone past the bound counts too: the spare node is missing.
        p.headroom_nodes = 1;
        let (d, _) = decide_nodes(&p, Some(2), 4, 4, None, None, 0);
        assert_eq!(d.at_max.map(|a| a.wanted), Some(3));
    }

    #[test]
    fn a_shrink_timer_from_a_hand_edited_status_does_not_overflow() {
        // nodeShrinkSince = i64::MIN: long ago, so the delay has passed.
        let (d, _) = decide_nodes(&pool(), Some(5), 2, 2, None, Some(i64::MIN), 1_000_000);
        assert_eq!(d.desired, 2);
    }

    #[test]
    fn nodes_are_ceil_of_replicas_per_node_plus_headroom_within_bounds() {
        let p = pool();
        assert_eq!(nodes_needed(&p, 0, 4), 1);
        assert_eq!(nodes_needed(&p, 1, 4), 2);
        assert_eq!(nodes_needed(&p, 8, 4), 3);
        assert_eq!(nodes_needed(&p, 9, 4), 4);
        assert_eq!(nodes_needed(&p, 1000, 4), 10);
    }

    #[test]
    fn pods_per_node_follows_the_scarcer_resource() {
        let mut p = pool();
        p.pods_per_node = None;
        p.node_allocatable = Some(NodeAllocatable {
            cpu: Some("4".parse().unwrap()),
            memory: Some("16Gi".parse().unwrap()),
        });
        let req = PodRequests {
            cpu: Some(0.5),
            memory: Some(4.0 * 1024.0 * 1024.0 * 1024.0),
        };
        assert_eq!(pods_per_node(&p, Some(req)), Ok(4));
        assert_eq!(
            pods_per_node(&p, None),
            Err(PodsPerNodeError::RequestsUnknown)
        );
        let huge = PodRequests {
            cpu: Some(8.0),
            memory: None,
        };
        assert_eq!(
            pods_per_node(&p, Some(huge)),
            Err(PodsPerNodeError::DoesNotFit)
        );
    }

    #[test]
    fn growth_raises_the_pool_first() {
        let (d, since) = decide_nodes(&pool(), Some(2), 4, 12, None, None, 0);
        assert_eq!(d.desired, 4);
        assert_eq!(d.order, Order::NodesFirst);
        assert_eq!(since, None);
    }

    #[test]
    fn the_pool_waits_while_the_workload_still_runs_on_it() {
        // Desired shrinks to 4 but 12 still run: the pool holds at what 12 need.
        let (d, _) = decide_nodes(&pool(), Some(4), 12, 4, None, None, 0);
        assert_eq!(d.desired, 4);
        assert_eq!(d.order, Order::Unchanged);
    }

    #[test]
    fn shrink_waits_for_the_delay_then_follows_the_workload() {
        let p = pool();
        let (d, since) = decide_nodes(&p, Some(4), 4, 4, None, None, 0);
        assert_eq!((d.desired, d.reason), (4, Reason::NodePoolScaleDownDelayed));
        assert_eq!(since, Some(0));
        let (d, since) = decide_nodes(&p, Some(4), 4, 4, None, since, 599_000);
        assert_eq!(d.desired, 4);
        let (d, since) = decide_nodes(&p, Some(4), 4, 4, None, since, 600_000);
        assert_eq!((d.desired, d.order), (2, Order::WorkloadFirst));
        assert_eq!(since, None);
    }

    #[test]
    fn growth_during_the_delay_cancels_the_pending_shrink() {
        let p = pool();
        let (_, since) = decide_nodes(&p, Some(4), 4, 4, None, None, 0);
        let (d, since) = decide_nodes(&p, Some(4), 4, 12, None, since, 300_000);
        assert_eq!(d.desired, 4);
        assert_eq!(since, None);
    }
}

//! One tick of one policy, as named steps, each in its own module:
//!
//! 1. **validate** ([`super::validate`], no client): once per generation;
//! 2. **fetch** ([`super::fetch`], client): the target's `/scale`, every metric's
//!    sample, the node pool; failures come back as data;
//! 3. **decide** ([`decide`], no client): `engine::decide` on what was fetched and
//!    the history the state machine trusts;
//! 4. **apply** ([`super::apply`], client): writes, only on change, only as leader,
//!    ordered nodes-first;
//! 5. **report** ([`super::report`], no client): status, conditions, Events and
//!    the per-policy metrics;
//! 6. **publish** ([`super::publish`], client): Events and the status, leader only.
//!
//! The clock is read once per tick (in `reconcile`) and passed down.

use std::time::Duration;

use kube::ResourceExt;
use tracing::{debug, warn};

use super::apply::{self, Applied};
use super::fetch::{self, Fetched};
use super::state::Facts;
use super::{Context, Error, publish, report, validate};
use crate::api::history::History;
use crate::api::{CustomScalingPolicy, CustomScalingPolicySpec};
use crate::engine::{self, Decision};
use crate::error::Category;
use crate::telemetry::{CategoryLabels, Direction, DirectionLabels, PolicyDirectionLabels};

/// What steps 3 and 4 produced for report.
struct Decided {
    decision: Decision,
    applied: Applied,
    /// The history to hand on (the decision's, less a scale event not applied).
    history: History,
}

/// One tick. `Some(wait)`: the next tick is due in `wait`; `None`: nothing to do
/// until the spec changes.
pub async fn tick(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    key: &str,
    now: jiff::Timestamp,
) -> Result<Option<Duration>, Error> {
    let now_ms = now.as_millisecond();
    // 1. validate
    if ctx.policies().needs_validation(key) {
        match validate::problems(&policy.spec) {
            Some(problems) => return invalid(ctx, policy, key, &problems, now).await,
            None => ctx.policies().valid(key),
        }
    }
    // 2. fetch
    let fetched = fetch::fetch(ctx, policy, namespace, now_ms).await;
    // 3. decide and 4. apply, once the target's replicas are known
    let decided = match &fetched.current_replicas {
        Ok(current) => {
            Some(decide_and_apply(ctx, policy, namespace, key, &fetched, *current, now_ms).await)
        }
        Err(e) => {
            ctx.metrics
                .reconcile_errors
                .get_or_create(&CategoryLabels {
                    category: e.category().into(),
                })
                .inc();
            warn!(error = %e, "cannot read the target's replicas");
            None
        }
    };
    // 5. report
    let no_write = Applied::default();
    let (decision, applied, history) = match &decided {
        Some(d) => (Some(&d.decision), &d.applied, Some(&d.history)),
        None => (None, &no_write, None),
    };
    let status = report::status(policy, &fetched, decision, applied, history, now_ms);
    report::record_metrics(ctx, policy, &status, now_ms);
    // Only the leader publishes Events: a follower does not build them.
    let events = if ctx.is_leader() {
        report::events(policy, &fetched, decision, applied, now_ms)
    } else {
        Vec::new()
    };
    // 6. publish
    let published = publish::publish(ctx, policy, key, status, &events, now).await;
    // Scheduled as usual whatever publish did: a failed status is retried before
    // the next tick.
    let next = {
        let mut state = ctx.policies();
        if decided.is_none() {
            state.target_unknown(key);
        }
        state.next_tick(key, Facts::of(policy), now_ms)
    };
    published?;
    Ok(Some(next))
}

/// Step 1's other outcome: report the invalid spec once, and wait for a change.
async fn invalid(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    key: &str,
    problems: &str,
    now: jiff::Timestamp,
) -> Result<Option<Duration>, Error> {
    warn!(%problems, "invalid policy; waiting for a change");
    ctx.policies().invalid(key);
    if ctx.is_leader()
        && let Some(status) = validate::invalid_status(policy, problems, now)
    {
        publish::write_status(ctx, policy, key, &status).await?;
    }
    Ok(None)
}

/// Steps 3 and 4, and what the state machine keeps of them.
async fn decide_and_apply(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    key: &str,
    fetched: &Fetched,
    current: u32,
    now: i64,
) -> Decided {
    // The newest history in memory while leading; restored from the status
    // otherwise, never scaling down earlier than a predecessor would have.
    let persisted = policy.status.as_ref().and_then(|s| s.history.as_ref());
    let (history, ticket) = ctx.policies().begin(key, persisted, current, now);
    let decision = decide(&policy.spec, fetched, current, &history, now);
    let leader = ctx.is_leader();
    debug!(
        current,
        desired = decision.desired_replicas,
        recommended = ?decision.recommended,
        reason = %decision.reason,
        data = ?decision.data,
        leader,
        "decided"
    );
    let applied = apply::apply(ctx, policy, namespace, current, &decision, leader).await;
    let mut next = decision.history.clone();
    if applied.replicas.is_none() {
        // The engine assumed its decision applied; it was not.
        next.scale_events.retain(|e| e.time != now);
    }
    count(ctx, policy, namespace, current, &decision, &applied);
    // Kept before anything else can fail (the status write): a retry must see
    // this tick's scale event and its own write.
    ctx.policies().decided(
        key,
        ticket,
        next.clone(),
        applied.replicas.map_or(current, |(_, to)| to),
    );
    Decided {
        decision,
        applied,
        history: next,
    }
}

/// Step 3: the engine's decision on what step 2 fetched.
pub fn decide(
    spec: &CustomScalingPolicySpec,
    fetched: &Fetched,
    current: u32,
    history: &History,
    now: i64,
) -> Decision {
    let samples: Vec<Option<engine::Sample>> = fetched.metrics.iter().map(|m| m.sample).collect();
    let current_nodes = fetched
        .current_nodes
        .as_ref()
        .and_then(|r| r.as_ref().ok().copied());
    engine::decide(&engine::Input {
        spec,
        now,
        current_replicas: current,
        samples: &samples,
        history,
        current_nodes,
        pod_requests: fetched.pod_requests,
    })
}

/// The decision and scaling counters.
fn count(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    namespace: &str,
    current: u32,
    decision: &Decision,
    applied: &Applied,
) {
    let direction = match decision.desired_replicas.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::up,
        std::cmp::Ordering::Less => Direction::down,
        std::cmp::Ordering::Equal => Direction::none,
    };
    ctx.metrics
        .decisions
        .get_or_create(&DirectionLabels {
            direction: direction.clone(),
        })
        .inc();
    if applied.replicas.is_some() {
        ctx.metrics
            .scaling_events
            .get_or_create(&PolicyDirectionLabels {
                namespace: namespace.into(),
                policy: policy.name_any(),
                direction,
            })
            .inc();
    }
}

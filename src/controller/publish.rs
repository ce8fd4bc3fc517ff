//! Step 6, **publish** (client required): what [`super::report`] built goes to the
//! API server — Events, and the status by server-side apply when it is worth a
//! write — by the leader only, checked right before. A status write that fails is
//! kept for a retry before the next tick (`state::Policies::status_failed`).

use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use super::report::{self, Event, EventType};
use crate::api::conditions::FIELD_MANAGER;
use crate::api::{CustomScalingPolicy, CustomScalingPolicyStatus};
use crate::error::Category;
use crate::kube_error;

/// A write of this step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "updating the status of {namespace}/{name}: {}",
        kube_error::short(source)
    )]
    UpdateStatus {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Category for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::UpdateStatus { .. } => "UpdateStatus",
        }
    }
}

/// The leader publishes the tick's Events (a failed one is logged, not retried)
/// and writes its status when [`report::worth_writing`] says so.
pub async fn publish(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    key: &str,
    status: CustomScalingPolicyStatus,
    events: &[Event],
    now: jiff::Timestamp,
) -> Result<(), Error> {
    if !ctx.is_leader() {
        return Ok(());
    }
    for (i, event) in events.iter().enumerate() {
        match publish_event(ctx, policy, event, now, i).await {
            Ok(()) => info!(reason = %event.reason, "event"),
            Err(e) => warn!(error = %e, reason = %event.reason, "publishing an event failed"),
        }
    }
    let previous = ctx.policies().last_written(key).cloned();
    let stored = previous.as_ref().or(policy.status.as_ref());
    if !report::worth_writing(&status, stored, policy) {
        return Ok(());
    }
    write_or_keep(ctx, policy, key, status).await
}

/// Retry a status write that failed, between ticks (leader only).
pub async fn retry_pending_status(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    key: &str,
) -> Result<(), Error> {
    let pending = ctx.policies().take_pending_status(key);
    let Some(status) = pending else {
        return Ok(());
    };
    if !ctx.is_leader() {
        return Ok(());
    }
    write_or_keep(ctx, policy, key, status).await
}

/// Write `status`; when that fails, keep it for a retry before the next tick.
async fn write_or_keep(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    key: &str,
    status: CustomScalingPolicyStatus,
) -> Result<(), Error> {
    let written = write_status(ctx, policy, key, &status).await;
    if written.is_err() {
        ctx.policies().status_failed(key, status);
    }
    written
}

/// Write the status by server-side apply (field manager `ballast`), and remember
/// it as the last written.
pub async fn write_status(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    key: &str,
    status: &CustomScalingPolicyStatus,
) -> Result<(), Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<CustomScalingPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": CustomScalingPolicy::api_version(&()),
        "kind": CustomScalingPolicy::kind(&()),
        "status": status,
    });
    api.patch_status(
        &policy.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::UpdateStatus {
        namespace,
        name: policy.name_any(),
        source,
    })?;
    ctx.policies().status_written(key, status.clone());
    Ok(())
}

/// Publish an Event (events.k8s.io/v1) about `policy`. Each call creates one Event:
/// kube's recorder folds events with the same reason into one series and keeps the
/// first note, which would hide "scaled from 5 to 8" behind "from 1 to 5". The
/// name is the policy's and the tick's time in nanoseconds plus `index`, the
/// event's place among the tick's events, so a tick's events never collide.
pub async fn publish_event(
    ctx: &Context,
    policy: &CustomScalingPolicy,
    event: &Event,
    now: jiff::Timestamp,
    index: usize,
) -> Result<(), kube::Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let unique = now.as_nanosecond() + index as i128;
    let object = K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!("{}.{unique:x}", policy.name_any())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        regarding: Some(policy.object_ref(&())),
        related: event.secondary.clone(),
        reporting_controller: Some(report::REPORTING_CONTROLLER.into()),
        reporting_instance: Some(ctx.identity.clone()),
        ..Default::default()
    };
    Api::<K8sEvent>::namespaced(ctx.client.clone(), &namespace)
        .create(&PostParams::default(), &object)
        .await
        .map(|_| ())
}

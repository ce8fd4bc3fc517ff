//! Leadership: every replica watches and computes; only the holder of the
//! `ballast-leader` Lease writes. The lease manager (`kube-lease-manager`) elects;
//! [`follow`] tells the state machine and the metrics of every change (a new
//! epoch: in-memory history from another is not trusted); [`watch_lease`] reads
//! the Lease back so writes stop on time even when the lease manager, whose
//! renewals fail, keeps saying "leader" (docs/architecture.md, "Who writes").

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Config, Context};

/// The lease manager, built and watching: its leadership channel and its task
/// (which ends, releasing the Lease, when every receiver is dropped).
pub async fn start(
    client: &Client,
    config: &Config,
) -> anyhow::Result<(
    watch::Receiver<bool>,
    tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
)> {
    let lease = kube_lease_manager::LeaseManagerBuilder::new(
        client.clone(),
        crate::api::conditions::LEASE_NAME,
    )
    .with_namespace(&config.lease_namespace)
    .with_identity(&config.identity)
    .with_duration(config.lease_duration.as_secs().max(2))
    .with_grace(config.lease_grace.as_secs().max(1))
    .build()
    .await
    .map_err(|e| anyhow::anyhow!("creating the leader lease manager: {e}"))?;
    Ok(lease.watch().await)
}

/// Tell the state machine and the `ballast_leader` gauge about the lease
/// manager's view, at start and on every change, until the channel closes.
pub async fn follow(mut rx: watch::Receiver<bool>, ctx: Arc<Context>, identity: String) {
    loop {
        let is_leader = *rx.borrow_and_update();
        ctx.policies().leadership(is_leader);
        ctx.metrics.leader.set(i64::from(is_leader));
        info!(identity = %identity, leader = is_leader, "leadership");
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Read the Lease back every sixth of its duration and extend
/// `lease_valid_until` while it names us: renew time + duration (less 250 ms), by
/// the holder's own clock (the holder writes renew times, so there is no skew). When
/// reads fail or another replica holds it, the deadline is not extended and writes
/// stop by themselves once it passes.
pub async fn watch_lease(
    ctx: Arc<Context>,
    mut leadership: watch::Receiver<bool>,
    namespace: String,
    duration: Duration,
) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let every = (duration / 6).max(Duration::from_millis(500));
    loop {
        let read = match api.get_opt(crate::api::conditions::LEASE_NAME).await {
            Ok(Some(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                let ours = spec.holder_identity.as_deref() == Some(ctx.identity.as_str());
                let renewed = spec.renew_time.map(|t| t.0.as_millisecond());
                let seconds = spec.lease_duration_seconds.map(i64::from).unwrap_or(0);
                match (ours, renewed) {
                    (true, Some(renewed)) => {
                        // The holder renews `grace` before expiry; until the next
                        // read sees that renewal, the lease is still ours until
                        // renewTime + duration (less a small margin).
                        let until = renewed + seconds * 1000 - 250;
                        ctx.lease_valid_until.store(until, Ordering::Relaxed);
                    }
                    _ => ctx.lease_valid_until.store(0, Ordering::Relaxed),
                }
                true
            }
            Ok(None) => {
                ctx.lease_valid_until.store(0, Ordering::Relaxed);
                true
            }
            Err(e) => {
                if ctx.lease_read.load(Ordering::Relaxed) {
                    debug!(error = %e, "reading the leader lease");
                } else {
                    warn!(error = %e, "reading the leader lease failed; not ready until it can be read");
                }
                false
            }
        };
        if read {
            ctx.lease_read.store(true, Ordering::Relaxed);
        }
        // Read again on schedule, or at once when the lease manager reports a change.
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

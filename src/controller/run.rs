//! `ballast run`: everything the operator starts, wired together — the CRD wait,
//! leadership, the metrics-source registry, the watch caches, the controller, and
//! the housekeeping tasks — and its shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::watcher::DefaultBackoff;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, error, info, warn};

use super::state::key;
use super::watches::{self, SyncedCaches, WatchHealth, reflect_all, target_mapper};
use super::{Config, Context, error_policy, leadership, reconcile};
use crate::api::{ClusterMetricsSource, CustomScalingPolicy};
use crate::metrics::registry::Registry;
use crate::scale::ReplicaCache;
use crate::telemetry::Metrics;

/// Wait until both CRDs are established, logging while waiting.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names = [
        format!(
            "{}.{}",
            CustomScalingPolicy::plural(&()),
            CustomScalingPolicy::group(&())
        ),
        format!(
            "{}.{}",
            ClusterMetricsSource::plural(&()),
            ClusterMetricsSource::group(&())
        ),
    ];
    let deadline = tokio::time::Instant::now() + timeout;
    for name in &names {
        loop {
            let established = match api.get_opt(name).await {
                Ok(Some(crd)) => crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"),
                Ok(None) => false,
                Err(e) => {
                    warn!(crd = %name, error = %e, "reading the CRD failed");
                    false
                }
            };
            if established {
                info!(crd = %name, "CRD established");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "CRD {name} is not established after {}s: install the CRDs first (kubectl apply -f crds/)",
                    timeout.as_secs()
                );
            }
            info!(crd = %name, "waiting for the CRD to be established");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}

/// Everything `ballast run` starts, wired together. Returns when shut down.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<crate::telemetry::server::Health>,
) -> anyhow::Result<()> {
    wait_for_crds(&client, config.crd_wait).await?;
    // Policies and their targets in one namespace, or in all of them.
    let scope = config.watch_namespace.as_deref();

    // Leader election: every replica computes; only the holder writes.
    let (leader_rx, lease_task) = leadership::start(&client, &config).await?;

    // Metrics sources: a reflector over ClusterMetricsSources feeds the registry.
    let (source_store, source_stream) = watches::reflect(
        Api::<ClusterMetricsSource>::all(client.clone()),
        |s: &mut ClusterMetricsSource| s.metadata.managed_fields = None,
        DefaultBackoff::default(),
        WatchHealth::new("sources", metrics.clone()),
    );
    tokio::spawn(source_stream.for_each(|_| future::ready(())));
    let sources = Registry::new(
        client.clone(),
        source_store.clone(),
        config.sources.clone(),
        config.prometheus_url.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("--prometheus-url: {e}"))?;

    // Targets' replicas come from these watch caches (the same watches that catch
    // out-of-band changes), not a /scale GET per tick. Only what a tick reads is
    // kept: pod templates and status are dropped to save memory, and of the managed
    // fields only who owns spec.replicas (the replicas fight, `owners`).
    let (deployment_store, deployments) = reflect_all(
        &client,
        scope,
        &metrics,
        "deployments",
        |d: &mut Deployment| {
            super::owners::keep_replicas_owners(&mut d.metadata);
            d.annotations_mut().clear();
            d.status = None;
            if let Some(spec) = d.spec.as_mut() {
                spec.template = Default::default();
            }
        },
    );
    let (statefulset_store, statefulsets) = reflect_all(
        &client,
        scope,
        &metrics,
        "statefulsets",
        |s: &mut StatefulSet| {
            super::owners::keep_replicas_owners(&mut s.metadata);
            s.annotations_mut().clear();
            s.status = None;
            if let Some(spec) = s.spec.as_mut() {
                spec.template = Default::default();
                spec.volume_claim_templates = None;
            }
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        sources,
        metrics.clone(),
        config.identity.clone(),
        leader_rx.clone(),
        ReplicaCache {
            deployments: Some(deployment_store.clone()),
            statefulsets: Some(statefulset_store.clone()),
        },
    ));

    // Tasks that hold a leadership receiver or the context: stopped before the lease
    // is released, or the lease task would never see its channel close.
    let mut helpers = Vec::new();
    helpers.push(tokio::spawn(leadership::follow(
        leader_rx.clone(),
        ctx.clone(),
        config.identity.clone(),
    )));
    helpers.push(tokio::spawn(leadership::watch_lease(
        ctx.clone(),
        leader_rx.clone(),
        config.lease_namespace.clone(),
        config.lease_duration,
    )));

    // The policy cache without managedFields (a third of a policy's size once
    // kubectl and our status writes have both touched it): memory grows with N.
    let (policy_store, policy_stream) = reflect_all(
        &client,
        scope,
        &metrics,
        "policies",
        |g: &mut DeserializeGuard<CustomScalingPolicy>| {
            if let Ok(p) = g.0.as_mut() {
                p.metadata.managed_fields = None;
            }
        },
    );
    // Every policy is reconciled once more when the caches have synced: those seen
    // before wait for that instead of asking again and again.
    let (synced_tx, synced_rx) = futures::channel::oneshot::channel::<()>();
    let at_sync = futures::stream::once(synced_rx).filter_map(|r| future::ready(r.ok()));
    let controller = Controller::for_stream(policy_stream, policy_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .reconcile_all_on(at_sync);
    let store = controller.store();
    let controller = controller
        .watches_stream(
            deployments,
            target_mapper(
                store.clone(),
                ctx.clone(),
                "Deployment",
                |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas),
            ),
        )
        .watches_stream(
            statefulsets,
            target_mapper(
                store.clone(),
                ctx.clone(),
                "StatefulSet",
                |s: &StatefulSet| s.spec.as_ref().and_then(|s| s.replicas),
            ),
        );

    // No tick before every cache has its initial list and the Lease has been read
    // once: a first tick on empty caches reports sources that exist as missing and
    // targets as unknown. `/readyz` says ready at the same moment.
    {
        let caches = SyncedCaches {
            policies: store.clone(),
            sources: source_store.clone(),
            deployments: deployment_store.clone(),
            statefulsets: statefulset_store.clone(),
        };
        let (ctx, health) = (ctx.clone(), health.clone());
        tokio::spawn(async move {
            caches.wait(&ctx).await;
            // The flag first: a reconcile that sees it unset returns before the
            // trigger below reconciles every policy again.
            ctx.synced.store(true, Ordering::Relaxed);
            health.ready.store(true, Ordering::Relaxed);
            info!("caches synced; ready");
            let _ = synced_tx.send(());
        });
    }
    // Forget deleted policies (state and metric series) once a minute.
    {
        let (store, ctx) = (store.clone(), ctx.clone());
        helpers.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let live: std::collections::HashSet<String> = store
                    .state()
                    .iter()
                    .map(|g| key(&g.namespace().unwrap_or_default(), &g.name_any()))
                    .collect();
                let gone = ctx.policies().forget_all_but(&live);
                for (k, names) in gone {
                    if let Some((ns, name)) = k.split_once('/') {
                        ctx.metrics.forget_policy(ns, name, &names);
                    }
                }
            }
        }));
    }

    let shutdown = termination();

    // If the lease task dies, exit: a live process that cannot lead is worse than a restart.
    let lease_died = {
        let health = health.clone();
        async move {
            let outcome = lease_task.await;
            health
                .failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            outcome
        }
    };
    tokio::pin!(lease_died);

    let controller_run = controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "reconcile");
            }
        });
    tokio::select! {
        _ = controller_run => {
            info!("controller stopped");
        }
        outcome = &mut lease_died => {
            anyhow::bail!("the leader lease task ended ({:?}); exiting so that the process is restarted", outcome.map(|r| r.map(|_| ()).map_err(|e| e.to_string())));
        }
    }
    // Release the lease: stop every holder of a receiver, then wait for the task.
    for helper in &helpers {
        helper.abort();
    }
    for helper in helpers {
        let _ = helper.await;
    }
    drop(ctx);
    drop(leader_rx);
    match tokio::time::timeout(Duration::from_secs(5), &mut lease_died).await {
        Ok(Ok(Ok(_))) => info!("lease released"),
        Ok(other) => {
            warn!(outcome = ?other.map(|r| r.map(|_| ()).map_err(|e| e.to_string())), "lease task ended")
        }
        Err(_) => warn!("lease not released within 5s"),
    }
    Ok(())
}

/// Resolves at SIGTERM or Ctrl-C.
pub async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupt: shutting down"),
    }
}

//! `ballast webhook`: only the validating admission webhook (and the admin
//! endpoint), for a Deployment of its own, or for tests. No controller, no lease.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;

use crate::telemetry::Metrics;
use crate::telemetry::server::Health;
use crate::webhook::{self, WebhookArgs};

#[derive(Debug, Args)]
pub struct WebhookCmdArgs {
    #[command(flatten)]
    pub cluster: super::run::ClusterArgs,
    /// Address of the webhook server (HTTPS).
    #[arg(long, default_value = "127.0.0.1:9443", value_name = "ADDR")]
    pub addr: SocketAddr,
    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    pub admin_addr: SocketAddr,
    /// The operator's namespace: the certificate Secret, and the only namespace
    /// source Secrets may live in.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ballast-system")]
    pub namespace: String,
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

pub fn run(args: &WebhookCmdArgs) -> anyhow::Result<ExitCode> {
    super::run::runtime()?.block_on(async {
        let client = super::run::client(&args.cluster, "webhook").await?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let admin = super::run::start_admin(
            args.admin_addr,
            metrics.clone(),
            health.clone(),
            stopped.clone(),
        )
        .await?;
        let served = webhook::start(
            client,
            args.addr,
            &args.webhook,
            &args.namespace,
            metrics,
            stopped,
        )
        .await?;
        health.ready.store(true, Ordering::Relaxed);
        crate::controller::termination().await;
        let _ = stop.send(true);
        let _ = served.await;
        let _ = admin.await;
        Ok(ExitCode::SUCCESS)
    })
}

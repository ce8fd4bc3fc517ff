//! `ballast webhook`: only the validating admission webhook (and the admin
//! endpoint), for a Deployment of its own, or for tests. No controller, no lease.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use clap::Args;

use crate::telemetry::Metrics;
use crate::telemetry::server::{self, Health, Limits};
use crate::webhook::{self, WebhookArgs};

#[derive(Debug, Args)]
pub struct WebhookCmdArgs {
    /// Kubeconfig to use (default: in-cluster config, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
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
    crate::metrics::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let client = super::run::client(args.kubeconfig.as_ref(), args.context.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let limits = Limits::default();
        let listener = tokio::net::TcpListener::bind(args.admin_addr)
            .await
            .with_context(|| format!("binding the admin server to {}", args.admin_addr))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router = server::router(metrics.clone(), health.clone(), &limits);
        let mut admin_stop = stopped.clone();
        let admin = tokio::spawn(server::serve(listener, router, limits, async move {
            let _ = admin_stop.wait_for(|s| *s).await;
        }));
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

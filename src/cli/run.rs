//! `ballast run`: the operator. Connects to the cluster, serves the admin endpoint,
//! and runs the controller until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::api::Duration;
use crate::controller::{self, Config};
use crate::metrics::registry::SourceDefaults;
use crate::telemetry::Metrics;
use crate::telemetry::server::{self, Health, Limits};
use crate::webhook::{self, WebhookArgs};

/// Which cluster to talk to (shared by `run` and `webhook`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Cluster connection")]
pub struct ClusterArgs {
    /// Kubeconfig to use (default: in-cluster config, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Default metrics source for metrics that name no ClusterMetricsSource.
    #[arg(long, env = "BALLAST_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub admin_addr: SocketAddr,
    /// Policies evaluated at the same time, at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,
    /// Threads of the async runtime. One carries 10,000 policies (bench/results.md)
    /// and spares the wake-ups between threads; more only for much larger installs.
    #[arg(long, env = "BALLAST_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
    /// This replica's identity in the Lease and Events (default: $POD_NAME, else the host name and PID).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `ballast-system`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ballast-system")]
    pub lease_namespace: String,
    /// Watch policies and their targets in this namespace only (default: every
    /// namespace). For one team's operator, or one e2e scenario's.
    #[arg(long, env = "BALLAST_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// How long a leader's lease lasts without renewal; a standby takes over after it.
    #[arg(long, default_value = "15s")]
    pub lease_duration: Duration,
    /// The leader renews this long before its lease expires.
    #[arg(long, default_value = "5s")]
    pub lease_grace: Duration,
    /// Timeout of one metric query (sources may set their own).
    #[arg(long, default_value = "5s")]
    pub query_timeout: Duration,
    /// How often a ClusterMetricsSource's Secrets (credentials, header values,
    /// client certificate) are read again, so rotated ones take effect without a
    /// restart; the client is rebuilt only when they changed.
    #[arg(long, default_value = "60s")]
    pub source_refresh: Duration,
    /// Largest metric response accepted, in bytes, for the default source.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_response_bytes: u64,
    /// How long to wait at start for the CRDs to be established.
    #[arg(long, default_value = "60s")]
    pub crd_wait: Duration,
    /// Serve the validating admission webhook (HTTPS) on this address; absent: no webhook.
    #[arg(long, value_name = "ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

fn identity(args: &RunArgs) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "ballast".into());
        format!("{host}-{}", std::process::id())
    })
}

/// A client from `--kubeconfig` (and `--context`), else the in-cluster config.
/// Its requests carry `User-Agent: ballast/VERSION (who)`, so the API server's
/// audit log tells which replica (or which command) made each write.
pub async fn client(args: &ClusterArgs, who: &str) -> anyhow::Result<kube::Client> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &KubeConfigOptions {
                    context: args.context.clone(),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding a cluster (in-cluster config or kubeconfig)")?,
    };
    let agent = format!("ballast/{} ({who})", env!("CARGO_PKG_VERSION"));
    let agent = axum::http::HeaderValue::try_from(agent.as_str())
        .with_context(|| format!("user agent {agent:?} is not a valid header value"))?;
    config.headers.push((axum::http::header::USER_AGENT, agent));
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// The admin server on `addr` until `stop` flips to true.
pub async fn start_admin(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let limits = Limits::default();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin server to {addr}"))?;
    tracing::info!(%addr, "admin server listening");
    let router = server::router(metrics, health, &limits);
    Ok(tokio::spawn(server::serve(
        listener,
        router,
        limits,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    )))
}

/// A multi-threaded runtime with the process-wide TLS provider installed.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// The same with `workers` threads (default: one per core).
pub fn runtime_with(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    crate::metrics::tls::install_crypto_provider();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    runtime_with(Some(usize::from(args.worker_threads)))?.block_on(async {
        let identity = identity(args);
        let client = client(&args.cluster, &identity).await?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let admin = start_admin(
            args.admin_addr,
            metrics.clone(),
            health.clone(),
            stopped.clone(),
        )
        .await?;
        let webhook = match args.webhook_addr {
            Some(addr) => Some(
                webhook::start(
                    client.clone(),
                    addr,
                    &args.webhook,
                    &args.lease_namespace,
                    metrics.clone(),
                    stopped,
                )
                .await?,
            ),
            None => None,
        };
        let config = Config {
            concurrency: args.concurrency.max(1),
            identity,
            lease_namespace: args.lease_namespace.clone(),
            watch_namespace: args.watch_namespace.clone().filter(|n| !n.is_empty()),
            lease_duration: args.lease_duration.to_std(),
            lease_grace: args.lease_grace.to_std(),
            prometheus_url: args.prometheus_url.clone(),
            sources: SourceDefaults {
                timeout: args.query_timeout.to_std(),
                max_response_bytes: args.max_response_bytes,
                refresh: args.source_refresh.to_std(),
                ..SourceDefaults::default()
            },
            crd_wait: args.crd_wait.to_std(),
        };
        tracing::info!(identity = %config.identity, "starting");
        let result = controller::run(client, config, metrics, health).await;
        let _ = stop.send(true);
        let _ = admin.await;
        if let Some(webhook) = webhook {
            let _ = webhook.await;
        }
        result.map_err(|e| anyhow!(e))
    })?;
    Ok(ExitCode::SUCCESS)
}

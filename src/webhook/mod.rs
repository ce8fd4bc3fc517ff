//! The validating admission webhook: refuses, at `kubectl apply`, what `ballast
//! lint` refuses and what only the cluster can tell (a target another autoscaler
//! already scales, a kind without `/scale`, a source that is missing or does not
//! allow the namespace, a node pool another policy sizes).
//!
//! - [`admission`]: AdmissionReview decoding and responses (pure);
//! - [`checks`]: the decisions (pure);
//! - [`facts`]: the cluster lookups the decisions need;
//! - [`certs`]: the serving certificate, self-managed with rotation, or from files;
//! - [`server`]: the HTTPS endpoint.

pub mod admission;
pub mod certs;
pub mod checks;
pub mod facts;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::api::Duration;
use crate::telemetry::Metrics;
use certs::{CertConfig, CertManager, Reloadable};

/// How the webhook is served (shared by `ballast run` and `ballast webhook`).
#[derive(Clone, Debug, Args)]
pub struct WebhookArgs {
    /// Directory with `tls.crt` and `tls.key` (e.g. a cert-manager Secret mount);
    /// reloaded when they change. Absent: certificates are self-managed in a Secret.
    #[arg(long, value_name = "DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Secret (in the operator's namespace) holding the self-managed CA and certificate.
    #[arg(long, default_value = "ballast-webhook-tls", value_name = "NAME")]
    pub webhook_secret: String,
    /// ValidatingWebhookConfiguration whose caBundle the operator keeps current
    /// (self-managed certificates only); empty: leave it alone.
    #[arg(long, default_value = "ballast", value_name = "NAME")]
    pub webhook_configuration: String,
    /// Service in front of the webhook: its DNS names go into the certificate.
    #[arg(long, default_value = "ballast", value_name = "NAME")]
    pub webhook_service: String,
    /// More names (DNS or IP) for the certificate, e.g. `127.0.0.1` for a webhook
    /// called by URL.
    #[arg(long = "webhook-host", value_name = "NAME")]
    pub webhook_hosts: Vec<String>,
    /// Life of a serving certificate (the CA lives ten times longer); renewed after
    /// two thirds of it.
    #[arg(long, default_value = "2160h")]
    pub webhook_cert_validity: Duration,
    /// How often every replica checks the certificate Secret and the caBundle.
    #[arg(long, default_value = "1m")]
    pub webhook_cert_check: Duration,
}

impl WebhookArgs {
    fn sans(&self, namespace: &str) -> Vec<String> {
        let service = &self.webhook_service;
        let mut sans = vec![
            service.clone(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ];
        // Once each, in order (the first is the certificate's common name).
        for host in &self.webhook_hosts {
            if !sans.contains(host) {
                sans.push(host.clone());
            }
        }
        sans
    }

    fn source(&self, namespace: &str) -> certs::Source {
        match &self.webhook_cert_dir {
            Some(dir) => certs::Source::Dir(dir.clone()),
            None => {
                let leaf = self.webhook_cert_validity.to_std();
                let check = self.webhook_cert_check.to_std();
                certs::Source::Secret {
                    namespace: namespace.to_string(),
                    name: self.webhook_secret.clone(),
                    webhook_configuration: (!self.webhook_configuration.is_empty())
                        .then(|| self.webhook_configuration.clone()),
                    config: CertConfig {
                        leaf_validity: leaf,
                        ca_validity: leaf.saturating_mul(10),
                        // Two checks: every replica has read the staged CA, and the
                        // API server has long seen the bundle.
                        promote_after: check
                            .saturating_mul(2)
                            .max(std::time::Duration::from_secs(10)),
                        sans: self.sans(namespace),
                    },
                }
            }
        }
    }
}

/// Load the first certificate, then serve the webhook on `addr` and keep the
/// certificate current, until `shutdown` flips to true.
pub async fn start(
    client: kube::Client,
    addr: SocketAddr,
    args: &WebhookArgs,
    namespace: &str,
    metrics: Arc<Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let resolver = Arc::new(Reloadable::default());
    let manager = CertManager::new(
        client.clone(),
        args.source(namespace),
        resolver.clone(),
        metrics.clone(),
    );
    // The first certificate, retried briefly: at install, two replicas race to
    // create the Secret and one of them reads the other's.
    let mut attempt = 0;
    loop {
        match manager.reconcile().await {
            Ok(()) => break,
            Err(e) if attempt < 10 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "webhook: no serving certificate yet");
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e).context("getting the webhook's serving certificate"),
        }
    }
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the webhook server to {addr}"))?;
    tracing::info!(%addr, "webhook server listening (HTTPS, POST /validate)");
    let limits = server::limits();
    let router = server::router(
        facts::FactFinder::new(client),
        metrics,
        namespace.to_string(),
        &limits,
    );
    let mut stop = shutdown.clone();
    let served =
        crate::telemetry::server::serve_tls(listener, router, limits, acceptor, async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    let check = args.webhook_cert_check.to_std();
    Ok(tokio::spawn(async move {
        tokio::join!(served, manager.run(check, shutdown));
    }))
}

//! Where `ballast query`, `simulate --prometheus` and `dashboard` read metrics: a
//! URL with the options a `ClusterMetricsSource` has (headers, tenant, CA, client
//! certificate, bearer token), or `--source NAME`, a `ClusterMetricsSource` of the
//! cluster read with its Secrets through the kubeconfig, exactly as the operator
//! uses it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, ValueEnum};
use reqwest::header::{HeaderName, HeaderValue};

use super::run::ClusterArgs;
use crate::api::{ClusterMetricsSource, PartialResponse, RESERVED_HEADERS};
use crate::metrics::Prometheus;
use crate::metrics::client::ClientOptions;
use crate::metrics::registry::TENANT_HEADER;
use crate::metrics::tls::ClientIdentity;

#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Metrics source")]
pub struct SourceArgs {
    /// Prometheus-compatible base URL, e.g. `http://localhost:9090` or
    /// `http://cortex:9009/prometheus`.
    #[arg(long, env = "BALLAST_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus: Option<String>,
    /// Read through this ClusterMetricsSource of the cluster (its address, auth,
    /// headers, tenant and TLS, Secrets included), as the operator does.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["prometheus", "headers", "tenant", "ca_file", "cert_file", "bearer_token_file", "query_parameters", "server_name", "insecure_skip_verify", "partial_response"])]
    pub source: Option<String>,
    /// An extra header sent with every query (repeat), e.g. `--header X-Api-Key=...`.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The tenant to query as (sent as X-Scope-OrgID: Cortex, Mimir, Thanos Receive).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// PEM CA bundle trusted beside the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key-file.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when the URL uses another.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Accept any server certificate (a test endpoint only).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// A file holding a bearer token, sent as `Authorization: Bearer ...`.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// An extra URL query parameter (repeat), e.g. `--query-param dedup=true`.
    #[arg(long = "query-param", value_name = "NAME=VALUE")]
    pub query_parameters: Vec<String>,
    /// What an answer with warnings (possibly partial data) is worth (default reject).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub partial_response: Option<PartialArg>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PartialArg {
    Reject,
    Accept,
}

/// A ready client and the largest answer its source accepts.
pub struct Connected {
    pub client: Prometheus,
    pub max_response_bytes: Option<u64>,
    /// What to call it in messages: the URL, or `source NAME (URL)`.
    pub label: String,
}

impl SourceArgs {
    /// The client these flags describe. `timeout` is the caller's; with `--source`
    /// the source's own applies when longer.
    pub fn connect(
        &self,
        runtime: &tokio::runtime::Runtime,
        timeout: Duration,
    ) -> anyhow::Result<Connected> {
        if let Some(name) = &self.source {
            return runtime.block_on(self.through_cluster(name, timeout));
        }
        let Some(address) = &self.prometheus else {
            bail!("give --prometheus URL or --source NAME");
        };
        let options = self.options(timeout)?;
        let client =
            Prometheus::with_options(address, options).map_err(|e| anyhow!("--prometheus: {e}"))?;
        Ok(Connected {
            client,
            max_response_bytes: None,
            label: address.clone(),
        })
    }

    /// Whether a source is given at all.
    pub fn is_set(&self) -> bool {
        self.prometheus.is_some() || self.source.is_some()
    }

    async fn through_cluster(&self, name: &str, timeout: Duration) -> anyhow::Result<Connected> {
        let kube = super::run::client(&self.cluster, "cli").await?;
        let api: kube::Api<ClusterMetricsSource> = kube::Api::all(kube.clone());
        let source = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading ClusterMetricsSource {name}"))?
            .ok_or_else(|| anyhow!("--source: ClusterMetricsSource {name:?} does not exist"))?;
        let spec = &source.spec;
        let refused = crate::api::validation::source_errors(spec);
        if !refused.is_empty() {
            bail!(
                "--source: ClusterMetricsSource {name:?} is not usable: {}",
                refused.join("; ")
            );
        }
        let mut options = crate::metrics::registry::client_options(&kube, spec)
            .await
            .map_err(|e| anyhow!("--source: ClusterMetricsSource {name:?}: {e}"))?;
        options.timeout = options.timeout.max(timeout);
        let client = Prometheus::with_options(&spec.address, options)
            .map_err(|e| anyhow!("--source: ClusterMetricsSource {name:?}: {e}"))?;
        Ok(Connected {
            client,
            max_response_bytes: Some(spec.max_response_bytes),
            label: format!("source {name} ({})", spec.address),
        })
    }

    /// The client options of the URL flags.
    fn options(&self, timeout: Duration) -> anyhow::Result<ClientOptions> {
        let mut options = ClientOptions::new(timeout);
        for header in &self.headers {
            let (name, value) = header
                .split_once('=')
                .ok_or_else(|| anyhow!("--header {header:?}: expected NAME=VALUE"))?;
            let lower = name.trim().to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                bail!(
                    "--header {name}: cannot be set (Host, Authorization (use --bearer-token-file), Content-Length and hop-by-hop headers)"
                );
            }
            if lower == TENANT_HEADER && self.tenant.is_some() {
                bail!("--header {name}: --tenant sends X-Scope-OrgID; give one of them");
            }
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| anyhow!("--header {name:?}: not an HTTP header name"))?;
            // Never echo the value: it may be a key.
            let value = HeaderValue::from_str(value).map_err(|_| {
                anyhow!("--header {name}: the value has characters not allowed in a header")
            })?;
            options.headers.push((name, value));
        }
        if let Some(tenant) = &self.tenant {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| anyhow!("--tenant {tenant:?}: not allowed in a header"))?;
            options
                .headers
                .push((HeaderName::from_static(TENANT_HEADER), value));
        }
        for param in &self.query_parameters {
            let (k, v) = param
                .split_once('=')
                .ok_or_else(|| anyhow!("--query-param {param:?}: expected NAME=VALUE"))?;
            if k.is_empty() || crate::api::validation::OPERATOR_PARAMETERS.contains(&k) {
                bail!("--query-param {k:?}: query, time, start, end and step are set by ballast");
            }
            options.query_parameters.push((k.into(), v.into()));
        }
        options.tls.ca_bundle = self
            .ca_file
            .as_deref()
            .map(|p| read("--ca-file", p))
            .transpose()?;
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            options.tls.identity = Some(ClientIdentity {
                certificate_pem: read("--cert-file", cert)?,
                key_pem: read("--key-file", key)?,
            });
        }
        options.tls.server_name = self.server_name.clone();
        options.tls.insecure_skip_verify = self.insecure_skip_verify;
        if let Some(path) = &self.bearer_token_file {
            let token = read("--bearer-token-file", path)?;
            options.authorization = Some(
                HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                    anyhow!(
                        "--bearer-token-file {}: the token has characters not allowed in a header",
                        path.display()
                    )
                })?,
            );
        }
        options.partial_response = match self.partial_response {
            Some(PartialArg::Accept) => PartialResponse::Accept,
            Some(PartialArg::Reject) | None => PartialResponse::Reject,
        };
        Ok(options)
    }
}

fn read(flag: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(headers: &[&str]) -> SourceArgs {
        SourceArgs {
            prometheus: Some("http://127.0.0.1:9090".into()),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn header_flags_are_checked_and_never_echo_a_value() {
        let options = args(&["X-Api-Key=k=v"]).options(Duration::from_secs(1));
        let options = options.expect("a header");
        assert_eq!(options.headers[0].0.as_str(), "x-api-key");
        assert_eq!(options.headers[0].1.to_str().ok(), Some("k=v"));
        for (flag, says) in [
            ("Authorization=Bearer s3cret", "--bearer-token-file"),
            ("Connection=close", "hop-by-hop"),
            ("X Bad=1", "not an HTTP header name"),
            ("novalue", "expected NAME=VALUE"),
            ("X-Key=s3cret\u{7}", "not allowed"),
        ] {
            let e = args(&[flag])
                .options(Duration::from_secs(1))
                .expect_err(flag)
                .to_string();
            assert!(e.contains(says), "{flag}: {e}");
            assert!(!e.contains("s3cret"), "{flag}: {e}");
        }
        let mut both = args(&["X-Scope-OrgID=a"]);
        both.tenant = Some("b".into());
        let e = both.options(Duration::from_secs(1)).expect_err("both");
        assert!(e.to_string().contains("--tenant"), "{e}");
    }

    #[test]
    fn tenant_and_parameters_reach_the_options() {
        let mut a = args(&[]);
        a.tenant = Some("team-a".into());
        a.query_parameters = vec!["dedup=true".into()];
        a.partial_response = Some(PartialArg::Accept);
        let o = a.options(Duration::from_secs(1)).expect("options");
        assert_eq!(o.headers[0].0.as_str(), TENANT_HEADER);
        assert_eq!(o.headers[0].1.to_str().ok(), Some("team-a"));
        assert_eq!(o.query_parameters, vec![("dedup".into(), "true".into())]);
        assert_eq!(o.partial_response, PartialResponse::Accept);
        a.query_parameters = vec!["step=1".into()];
        assert!(a.options(Duration::from_secs(1)).is_err());
    }
}

//! The e2e harness: what every scenario in `tests/scenarios/` stands on.
//!
//! A [`Scenario`] is one namespace on the harness's real cluster with its own
//! operators (`ballast run --watch-namespace`, as deploy/'s ServiceAccount), so
//! scenarios share nothing and run concurrently. Objects are the crate's own `api`
//! types and k8s-openapi's; waits are deadlines in the policy's poll intervals
//! ([`polls`]); failures say what was expected and what was last seen.
//!
//! The cluster comes from the environment ([`Env::from_env`]), which e2e/scenarios
//! sets up from e2e/cluster's state: the scenarios are run by
//! `e2e/scenarios [FILTER...]` (or `cargo test -p ballast-e2e --test scenarios`
//! with that environment), never by `make unit`.

pub mod backends;
pub mod chaos;
pub mod junit;
mod operator;
mod scenario;
pub mod wait;
pub mod webhook;

pub use operator::{LEASE, Operator};
pub use scenario::Scenario;
pub use wait::{eventually, holds, polls};

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};

/// Where the cluster and the binaries are: read once from the environment.
#[derive(Clone, Debug)]
pub struct Env {
    /// The repository (deploy/'s RBAC is read from here).
    pub repo: PathBuf,
    /// An admin kubeconfig (`BALLAST_E2E_KUBECONFIG`): the scenarios' own client.
    pub kubeconfig: PathBuf,
    /// A kubeconfig with a token of deploy/'s ServiceAccount
    /// (`BALLAST_E2E_SA_KUBECONFIG`): every operator runs with exactly that.
    pub sa_kubeconfig: PathBuf,
    /// The harness's Prometheus (`PROMETHEUS_URL`).
    pub prometheus_url: String,
    /// The binary under test (`BALLAST`, default `target/debug/ballast`).
    pub ballast: PathBuf,
    /// Where operator logs go, one directory per scenario (`BALLAST_E2E_WORK`).
    pub work: PathBuf,
    /// The chaos suite's invariant checker (`INVARIANTS`, default next to `ballast`).
    pub invariants: PathBuf,
    /// The API server's audit log (`KUBE_AUDIT_LOG`), which the checker reads.
    pub audit_log: Option<PathBuf>,
    /// e2e/cluster's state dir (`BALLAST_E2E_STATE`): PIDs, for faults injected
    /// into the control plane's processes.
    pub state: Option<PathBuf>,
    /// Where the harness's Prometheus discovers scrape targets
    /// (`PROMETHEUS_FILE_SD_DIR`): every operator is registered there (job
    /// `ballast`), so the dashboard's queries have data from every scenario.
    pub file_sd: Option<PathBuf>,
    /// Redis's exporter (`REDIS_EXPORTER_URL`), for a Prometheus of a scenario's own.
    pub redis_exporter: Option<String>,
    /// The harness's kubectl (`KUBECTL`, else the one on the PATH).
    pub kubectl: PathBuf,
    /// KEDA's ScaledObject CRD and the Prometheus Operator's CRDs, from their Go
    /// modules (`KEDA_CRD`, `PROMOP_CRDS`: e2e/lib.sh's paths).
    pub keda_crd: Option<PathBuf>,
    pub prometheus_operator_crds: Option<PathBuf>,
    /// cert-manager's Certificate/Issuer CRDs, from its Go module (`CERTMANAGER_CRDS`).
    pub cert_manager_crds: Option<PathBuf>,
    /// The pinned helm, built by e2e/tool (`HELM`).
    pub helm: Option<PathBuf>,
    /// The kstatus checker (e2e/controlplane/kstatus), built by e2e/tool (`KSTATUS`).
    pub kstatus: Option<PathBuf>,
    /// Thanos and Cortex, built from their Go modules by e2e/tool (`THANOS`, `CORTEX`).
    pub thanos: Option<PathBuf>,
    pub cortex: Option<PathBuf>,
}

impl Env {
    /// Every variable is named in the error when it is missing.
    /// The port of Redis's exporter (`REDIS_EXPORTER_URL`), for a Prometheus of a
    /// scenario's own to scrape.
    pub fn redis_exporter_port(&self) -> anyhow::Result<u16> {
        let exporter = self
            .redis_exporter
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no REDIS_EXPORTER_URL in the cluster's env"))?;
        exporter
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .with_context(|| format!("REDIS_EXPORTER_URL {exporter} has no port"))
    }

    pub fn from_env() -> anyhow::Result<Env> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                anyhow!("{name} is not set: run the scenarios through e2e/scenarios, which sets it from the cluster's state")
            })
        };
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let repo = repo
            .canonicalize()
            .with_context(|| format!("repository at {}", repo.display()))?;
        let ballast = match std::env::var("BALLAST") {
            Ok(path) => PathBuf::from(path),
            Err(_) => repo.join("target/debug/ballast"),
        };
        if !ballast.is_file() {
            anyhow::bail!(
                "no ballast binary at {} (run cargo build, or set BALLAST)",
                ballast.display()
            );
        }
        let invariants = match std::env::var("INVARIANTS") {
            Ok(path) => PathBuf::from(path),
            Err(_) => ballast.with_file_name("ballast-invariants"),
        };
        let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(Env {
            invariants,
            file_sd: optional("PROMETHEUS_FILE_SD_DIR").map(PathBuf::from),
            redis_exporter: optional("REDIS_EXPORTER_URL"),
            kubectl: optional("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from),
            keda_crd: optional("KEDA_CRD").map(PathBuf::from),
            prometheus_operator_crds: optional("PROMOP_CRDS").map(PathBuf::from),
            cert_manager_crds: optional("CERTMANAGER_CRDS").map(PathBuf::from),
            helm: optional("HELM").map(PathBuf::from),
            kstatus: optional("KSTATUS").map(PathBuf::from),
            thanos: optional("THANOS").map(PathBuf::from),
            cortex: optional("CORTEX").map(PathBuf::from),
            audit_log: optional("KUBE_AUDIT_LOG").map(PathBuf::from),
            state: optional("BALLAST_E2E_STATE").map(PathBuf::from),
            kubeconfig: var("BALLAST_E2E_KUBECONFIG")?.into(),
            sa_kubeconfig: var("BALLAST_E2E_SA_KUBECONFIG")?.into(),
            prometheus_url: var("PROMETHEUS_URL")?,
            work: var("BALLAST_E2E_WORK")?.into(),
            ballast,
            repo,
        })
    }

    /// Registers `target` with the harness's Prometheus under `job`, through its
    /// file_sd directory (written whole, then renamed into place); returns the
    /// file to remove when the target goes, or `None` without a file_sd directory.
    pub fn register_scrape(
        &self,
        name: &str,
        target: std::net::SocketAddr,
        job: &str,
    ) -> anyhow::Result<Option<PathBuf>> {
        let Some(dir) = &self.file_sd else {
            return Ok(None);
        };
        let file = dir.join(format!("{name}.json"));
        let temporary = dir.join(format!(".{name}.tmp"));
        let targets =
            serde_json::json!([{"targets": [target.to_string()], "labels": {"job": job}}]);
        std::fs::write(&temporary, targets.to_string())
            .and_then(|()| std::fs::rename(&temporary, &file))
            .with_context(|| format!("registering {name} in {}", dir.display()))?;
        Ok(Some(file))
    }

    /// A client with the admin kubeconfig. Call it inside the scenario's runtime.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        ballast::metrics::tls::install_crypto_provider();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .with_context(|| format!("kubeconfig {}", self.kubeconfig.display()))?;
        Ok(kube::Client::try_from(config)?)
    }
}

/// An HTTP client for the harness's own endpoints (admin servers, Prometheus, the
/// fault proxy): every request gives up after 10 s, so a process that accepts and
/// never answers fails a wait instead of hanging the run.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// GET `url` with [`http`].
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

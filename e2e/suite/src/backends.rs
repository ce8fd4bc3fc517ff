//! Prometheus-compatible backends a scenario runs as its own processes on
//! 127.0.0.1: Thanos (a sidecar per Prometheus replica, Thanos Query over them)
//! and a single-process Cortex with multi-tenancy on, both built from their Go
//! modules by e2e/tool; and e2e/faultproxy.py serving HTTPS with a client
//! certificate and a header required.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::process::{Child, Command};

use crate::{eventually, free_port};

/// One backend process, killed when dropped.
pub struct Process {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `binary args` with its output in `dir/<name>.log`.
    pub fn spawn(dir: &Path, name: &str, binary: &Path, args: &[String]) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({})", binary.display()))?;
        Ok(Process {
            name: name.to_string(),
            log,
            child: Some(child),
        })
    }

    /// Waits until `url` answers 2xx, failing early when the process exits.
    pub async fn ready(&mut self, url: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "{} exited ({status}); its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            let answer = crate::get(url).await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "{} not ready at {url} within {within:?}; its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGKILL, and wait for it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .with_context(|| format!("SIGKILL to {}", self.name))?;
        }
        Ok(())
    }
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A Thanos sidecar in front of one Prometheus: its StoreAPI (gRPC) port.
pub struct Sidecar {
    pub process: Process,
    pub grpc: u16,
}

impl Sidecar {
    pub async fn start(
        thanos: &Path,
        dir: &Path,
        name: &str,
        prometheus_url: &str,
        tsdb: &Path,
    ) -> anyhow::Result<Sidecar> {
        let (grpc, http) = (free_port()?, free_port()?);
        let mut process = Process::spawn(
            dir,
            name,
            thanos,
            &[
                "sidecar".into(),
                format!("--prometheus.url={prometheus_url}"),
                format!("--tsdb.path={}", tsdb.display()),
                format!("--grpc-address=127.0.0.1:{grpc}"),
                format!("--http-address=127.0.0.1:{http}"),
                "--log.level=warn".into(),
            ],
        )?;
        process
            .ready(
                &format!("http://127.0.0.1:{http}/-/ready"),
                Duration::from_secs(60),
            )
            .await?;
        Ok(Sidecar { process, grpc })
    }
}

/// Thanos Query over sidecars, deduplicating along the `replica` label. Its
/// endpoints are strict: one that is down stays in the set and the answer says
/// so (a partial response), rather than the endpoint quietly leaving the set.
pub struct ThanosQuery {
    pub process: Process,
    pub port: u16,
}

impl ThanosQuery {
    pub async fn start(
        thanos: &Path,
        dir: &Path,
        sidecars: &[&Sidecar],
    ) -> anyhow::Result<ThanosQuery> {
        let (port, grpc) = (free_port()?, free_port()?);
        let mut args = vec![
            "query".to_string(),
            format!("--http-address=127.0.0.1:{port}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            "--query.replica-label=replica".into(),
            "--query.partial-response".into(),
            "--log.level=warn".into(),
        ];
        args.extend(
            sidecars
                .iter()
                .map(|s| format!("--endpoint-strict=127.0.0.1:{}", s.grpc)),
        );
        let mut process = Process::spawn(dir, "thanos-query", thanos, &args)?;
        let url = format!("http://127.0.0.1:{port}");
        process
            .ready(&format!("{url}/-/ready"), Duration::from_secs(60))
            .await?;
        Ok(ThanosQuery { process, port })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A single-process Cortex (`-target=all`), filesystem blocks, every ring in
/// memory, multi-tenancy on: a request without `X-Scope-OrgID` is refused.
pub struct Cortex {
    pub process: Process,
    pub port: u16,
}

impl Cortex {
    pub async fn start(cortex: &Path, dir: &Path) -> anyhow::Result<Cortex> {
        let dir = dir.join("cortex");
        for sub in [
            "blocks",
            "tsdb",
            "tsdb-sync",
            "compactor",
            "rules",
            "ruler",
            "alerts",
            "alertmanager",
        ] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let (port, grpc) = (free_port()?, free_port()?);
        let d = dir.display();
        let ring = "kvstore: {store: inmemory}";
        // docs/configuration/single-process-config-blocks-local.yaml of the
        // module, on 127.0.0.1 only, with auth on and alertmanager clustering off
        // (it would listen on every address).
        let config = format!(
            r#"auth_enabled: true
target: all
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {port}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {grpc}
  log_level: warn
distributor:
  shard_by_all_labels: true
  pool: {{health_check_ingesters: true}}
  ring: {{instance_addr: 127.0.0.1, {ring}}}
ingester:
  lifecycler:
    address: 127.0.0.1
    min_ready_duration: 0s
    final_sleep: 0s
    num_tokens: 512
    ring: {{{ring}, replication_factor: 1}}
blocks_storage:
  backend: filesystem
  filesystem: {{dir: {d}/blocks}}
  tsdb: {{dir: {d}/tsdb}}
  bucket_store: {{sync_dir: {d}/tsdb-sync}}
compactor:
  data_dir: {d}/compactor
  sharding_ring: {{instance_addr: 127.0.0.1, {ring}}}
store_gateway:
  sharding_ring: {{instance_addr: 127.0.0.1, {ring}}}
frontend_worker:
  match_max_concurrent: true
ruler:
  rule_path: {d}/ruler
  ring: {{instance_addr: 127.0.0.1, {ring}}}
ruler_storage:
  backend: local
  local: {{directory: {d}/rules}}
alertmanager:
  external_url: http://127.0.0.1:{port}/alertmanager
  data_dir: {d}/alertmanager
  cluster: {{listen_address: ""}}
  sharding_ring: {{instance_addr: 127.0.0.1, {ring}}}
alertmanager_storage:
  backend: local
  local: {{path: {d}/alerts}}
"#
        );
        let file = dir.join("cortex.yaml");
        std::fs::write(&file, config)?;
        let mut process = Process::spawn(
            &dir,
            "cortex",
            cortex,
            &[format!("-config.file={}", file.display())],
        )?;
        process
            .ready(
                &format!("http://127.0.0.1:{port}/ready"),
                Duration::from_secs(90),
            )
            .await?;
        Ok(Cortex { process, port })
    }

    /// The Prometheus API's base URL.
    pub fn prometheus_url(&self) -> String {
        format!("http://127.0.0.1:{}/prometheus", self.port)
    }
}

/// e2e/faultproxy.py serving HTTPS in front of `upstream`, requiring a client
/// certificate signed by `client_ca` and the header `name: value`.
pub struct GuardedProxy {
    pub process: Process,
    pub port: u16,
}

impl GuardedProxy {
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        repo: &Path,
        dir: &Path,
        upstream: &str,
        cert: &Path,
        key: &Path,
        client_ca: &Path,
        header: (&str, &str),
    ) -> anyhow::Result<GuardedProxy> {
        let port = free_port()?;
        let process = Process::spawn(
            dir,
            "guarded-proxy",
            Path::new("python3"),
            &[
                repo.join("e2e/faultproxy.py").display().to_string(),
                "--port".into(),
                port.to_string(),
                "--upstream".into(),
                upstream.into(),
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
                "--client-ca".into(),
                client_ca.display().to_string(),
                "--require-header".into(),
                format!("{}={}", header.0, header.1),
            ],
        )?;
        // Over TLS with a client certificate: ready once it accepts connections.
        eventually(
            Duration::from_secs(10),
            "the guarded proxy listens",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(drop)
                    .map_err(|e| anyhow!("127.0.0.1:{port}: {e}"))
            },
        )
        .await?;
        Ok(GuardedProxy { process, port })
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

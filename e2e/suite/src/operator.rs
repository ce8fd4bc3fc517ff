//! One `ballast run` process of a scenario: deploy/'s ServiceAccount, the
//! scenario's namespace as both the watched namespace and the Lease's, a short
//! lease (6 s) so that failover fits in a test, its log in the scenario's dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::{Env, free_port};

/// How long an operator may take to sync its caches and say ready.
const READY: Duration = Duration::from_secs(30);

/// The lease the scenarios' operators hold (`--lease-duration`).
pub const LEASE: Duration = Duration::from_secs(6);

pub struct Operator {
    pub identity: String,
    pub admin: SocketAddr,
    pub log: PathBuf,
    child: Child,
    /// Its file in the harness Prometheus's file_sd directory, removed at stop.
    scrape: Option<PathBuf>,
}

impl Operator {
    /// Starts an operator and waits for `/readyz` (its caches synced).
    pub(crate) async fn start(
        env: &Env,
        namespace: &str,
        identity: &str,
        dir: &Path,
        webhook: Option<u16>,
        everywhere: bool,
        container_env: &[(String, String)],
    ) -> anyhow::Result<Operator> {
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let log = dir.join(format!("{identity}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&env.ballast)
            .args(["run", "--log", "info,ballast=debug", "--kubeconfig"])
            .arg(&env.sa_kubeconfig)
            // deploy/'s container environment, when the scenario installs from
            // deploy/: its default source then comes from there, not from the flag.
            .envs(container_env.iter().map(|(k, v)| (k, v)))
            .args(
                if container_env
                    .iter()
                    .any(|(k, _)| k == "BALLAST_PROMETHEUS_URL")
                {
                    vec![]
                } else {
                    vec!["--prometheus-url", &env.prometheus_url]
                },
            )
            .args(["--admin-addr", &admin.to_string()])
            .args(["--lease-namespace", namespace])
            // Only this scenario's namespace, unless it runs alone (see main.rs).
            .args(if everywhere {
                vec![]
            } else {
                vec!["--watch-namespace", namespace]
            })
            .args([
                "--identity",
                identity,
                "--lease-duration",
                "6s",
                "--lease-grace",
                "2s",
                // Rotated source Secrets within a few polls (default 60s): the
                // mutual-TLS scenario rotates a client key mid-run.
                "--source-refresh",
                "3s",
            ])
            // Also serving the webhook (its certificate Secret in the namespace),
            // leaving the cluster's configuration to the run's `ballast webhook`.
            .args(webhook.map_or_else(Vec::new, |port| {
                vec![
                    "--webhook-addr".to_string(),
                    format!("127.0.0.1:{port}"),
                    "--webhook-configuration=".to_string(),
                    "--webhook-host".to_string(),
                    "127.0.0.1".to_string(),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", env.ballast.display()))?;
        let mut operator = Operator {
            identity: identity.to_string(),
            admin,
            log,
            child,
            scrape: None,
        };
        let url = format!("http://{admin}/readyz");
        let deadline = tokio::time::Instant::now() + READY;
        let mut last;
        loop {
            if let Ok(Some(status)) = operator.child.try_wait() {
                last = format!("exited with {status}");
            } else {
                match crate::get(&url).await {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) => last = format!("/readyz {}", r.status()),
                    Err(e) => last = e.to_string(),
                }
            }
            if tokio::time::Instant::now() >= deadline || last.starts_with("exited") {
                let log = operator.log_text();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                anyhow::bail!(
                    "operator {identity} not ready within {}s ({last}); log {} ends with:\n{}",
                    READY.as_secs(),
                    operator.log.display(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Scraped by the harness's Prometheus (job "ballast"), as deploy/'s
        // ServiceMonitor would.
        operator.scrape =
            env.register_scrape(&format!("{namespace}-{identity}"), admin, "ballast")?;
        Ok(operator)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The value of the first `/metrics` line that starts with `prefix` (a metric
    /// name and, if needed, its labels); `None` if there is none.
    pub async fn metric(&self, prefix: &str) -> anyhow::Result<Option<f64>> {
        let text = crate::get(format!("http://{}/metrics", self.admin))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok()))
    }

    /// `ballast_leader` is 1. An operator that does not answer does not lead.
    pub async fn leads(&self) -> bool {
        matches!(self.metric("ballast_leader ").await, Ok(Some(v)) if v == 1.0)
    }

    /// SIGKILL, as a node failure would.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL")
    }

    /// SIGTERM (a rolling update), then waits for the exit.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        self.send_term().await?;
        self.exited(Duration::from_secs(10)).await
    }

    /// SIGTERM, without waiting for the exit.
    pub async fn send_term(&self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
            anyhow::ensure!(status.success(), "kill -TERM {pid}: {status}");
        }
        Ok(())
    }

    /// Waits up to `within` for the process to exit.
    pub async fn exited(&mut self, within: Duration) -> anyhow::Result<()> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} not stopped {}s after SIGTERM",
                    self.identity,
                    within.as_secs()
                )
            })??;
        Ok(())
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it however it is (SIGTERM, SIGKILL after 5 s) and says whether it panicked.
    pub(crate) async fn stop(mut self) -> Option<String> {
        if let Some(file) = self.scrape.take() {
            let _ = std::fs::remove_file(file);
        }
        if let Ok(None) = self.child.try_wait()
            && let Some(pid) = self.child.id()
        {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
        let log = self.log_text();
        log.find("panicked").map(|at| {
            let end = log[at..]
                .char_indices()
                .nth(400)
                .map_or(log.len(), |(i, _)| at + i);
            format!("operator {} panicked: {}", self.identity, &log[at..end])
        })
    }
}

//! The chaos scenarios' tools, one set per scenario so that scenarios share
//! nothing: a load exporter whose values the scenario sets, a Prometheus of its
//! own scraping it (so it can be killed), a fault proxy in front of it, and the
//! invariant checker (e2e/invariants) watching the namespace for the whole
//! scenario and judging it from the API server's audit log afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use crate::{eventually, free_port};

/// Unix seconds now, as the checker and the fault windows count time.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The metric every chaos policy reads: `ballast_e2e_load{series="NAME"}`.
pub fn load_query(series: &str) -> String {
    format!("ballast_e2e_load{{series=\"{series}\"}}")
}

/// A Prometheus exporter served from the scenario's own runtime: one gauge
/// `ballast_e2e_load{series=...}` per series the scenario has set, and any
/// other series set whole with [`Load::set_series`].
pub struct Load {
    pub port: u16,
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

/// Keys of [`Load`]'s map that are whole series (`name{labels}`), not load series names.
const WHOLE: char = '\u{0}';

impl Load {
    pub async fn serve() -> anyhow::Result<Load> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the exporter")?;
        let port = listener.local_addr()?.port();
        let values: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let shared = values.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = {
                    let values = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let mut body = String::from("# TYPE ballast_e2e_load gauge\n");
                    for (series, value) in values.iter() {
                        match series.strip_prefix(WHOLE) {
                            Some(whole) => body.push_str(&format!("{whole} {value}\n")),
                            None => body.push_str(&format!(
                                "ballast_e2e_load{{series=\"{series}\"}} {value}\n"
                            )),
                        }
                    }
                    body
                };
                tokio::spawn(async move {
                    // One request per connection: read the head, answer, close.
                    let mut head = [0u8; 4096];
                    let _ = stream.read(&mut head).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(Load { port, values })
    }

    /// Serves `series` (a metric name and its labels, as in the exposition
    /// format: `http_requests_total{service="api"}`) with `value`.
    pub fn set_series(&self, series: &str, value: f64) {
        self.set(&format!("{WHOLE}{series}"), value);
    }

    pub fn set(&self, series: &str, value: f64) {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(series.to_string(), value);
    }
}

/// A Prometheus (Debian's `prometheus`) scraping one target every second.
pub struct Prometheus {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Prometheus {
    pub async fn start(dir: &Path, target_port: u16) -> anyhow::Result<Prometheus> {
        Self::start_with(dir, "prometheus", &[target_port], "", "").await
    }

    /// One named `name` (its directory under `dir`) scraping `targets` every
    /// second, with `global` added to its `global:` block (external labels) and
    /// `tail` to its configuration (remote_write).
    pub async fn start_with(
        dir: &Path,
        name: &str,
        targets: &[u16],
        global: &str,
        tail: &str,
    ) -> anyhow::Result<Prometheus> {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s{global}}}\nscrape_configs:\n  - job_name: load\n    static_configs: [{{targets: [{}]}}]\n{tail}",
                targets.join(", ")
            ),
        )?;
        let mut prometheus = Prometheus {
            port: free_port()?,
            dir,
            child: None,
        };
        // Scenarios run at once, each picking a free port: two may pick the same
        // one, and the loser's Prometheus exits at bind while the winner's answers
        // /-/ready on that port. So a start is checked to be ours, and retried on
        // another port.
        let mut last = None;
        for _ in 0..3 {
            match prometheus.restart().await {
                Ok(()) => return Ok(prometheus),
                Err(e) => {
                    let _ = prometheus.kill().await;
                    last = Some(e);
                    prometheus.port = free_port()?;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("prometheus did not start")))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts it on the same port and data, and waits until `/-/ready` is
    /// answered by this Prometheus (its `storage.tsdb.path` is ours) and it runs.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))?;
        let data = self.dir.join("data");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus (Debian's package; e2e/cluster installs it)")?;
        self.child = Some(child);
        let (ready, flags) = (
            format!("{}/-/ready", self.url()),
            format!("{}/api/v1/status/flags", self.url()),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "prometheus on port {} exited ({status}); see {}",
                    self.port,
                    self.dir.join("log").display()
                );
            }
            let ours = async {
                let r = crate::get(&ready).await?;
                anyhow::ensure!(r.status().is_success(), "/-/ready {}", r.status());
                let answer: Value = crate::get(&flags).await?.json().await?;
                let path = answer["data"]["storage.tsdb.path"]
                    .as_str()
                    .unwrap_or_default();
                anyhow::ensure!(
                    Path::new(path) == data,
                    "port {} answers for another Prometheus (data {path})",
                    self.port
                );
                Ok(())
            };
            let last = match ours.await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(last.context("Prometheus not ready within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("SIGKILL to prometheus")?;
        }
        Ok(())
    }
}

/// e2e/faultproxy.py in front of an upstream: the one fake server, for faults a
/// real Prometheus will not produce on demand.
pub struct FaultProxy {
    pub port: u16,
    _child: Child,
}

impl FaultProxy {
    pub async fn start(repo: &Path, upstream: &str, log: &Path) -> anyhow::Result<FaultProxy> {
        Self::start_on(repo, upstream, log, free_port()?).await
    }

    /// On a given port (to bring a stopped proxy back where its clients look).
    pub async fn start_on(
        repo: &Path,
        upstream: &str,
        log: &Path,
        port: u16,
    ) -> anyhow::Result<FaultProxy> {
        Self::start_with(repo, upstream, log, port, &[]).await
    }

    /// With more of e2e/faultproxy.py's flags (`--set-header NAME=VALUE`).
    pub async fn start_with(
        repo: &Path,
        upstream: &str,
        log: &Path,
        port: u16,
        flags: &[&str],
    ) -> anyhow::Result<FaultProxy> {
        let out = std::fs::File::create(log)?;
        let child = Command::new("python3")
            .arg(repo.join("e2e/faultproxy.py"))
            .args(["--port", &port.to_string(), "--upstream", upstream])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting e2e/faultproxy.py")?;
        let url = format!("http://127.0.0.1:{port}/-/count");
        eventually(
            Duration::from_secs(10),
            "the fault proxy answers",
            || async {
                crate::get(&url).await?.error_for_status()?;
                Ok(())
            },
        )
        .await?;
        Ok(FaultProxy {
            port,
            _child: child,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `pass`, `delay:S`, `hang`, `status:N`, ... (e2e/faultproxy.py's modes).
    pub async fn fault(&self, mode: &str) -> anyhow::Result<()> {
        crate::http()
            .put(format!("{}/-/fault?mode={mode}", self.url()))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("the proxy refused mode {mode}"))?;
        Ok(())
    }

    /// Requests the proxy received since `since` (unix seconds).
    pub async fn requests_since(&self, since: f64) -> anyhow::Result<u64> {
        let body: Value = crate::get(format!("{}/-/count?since={since}", self.url()))
            .await?
            .json()
            .await?;
        body["requests"]
            .as_u64()
            .ok_or_else(|| anyhow!("the proxy's count is {body}"))
    }
}

/// The invariant checker around one scenario: `ballast-invariants watch` of the
/// namespace from the start, fault windows as they are opened and closed, and
/// `ballast-invariants check` over the scenario's window at the end.
pub struct Checker {
    binary: PathBuf,
    namespace: String,
    dir: PathBuf,
    trace: PathBuf,
    faults: PathBuf,
    since: f64,
    watch: Child,
}

/// What the checker found.
#[derive(Debug)]
pub struct Verdict {
    pub violations: Vec<Value>,
    pub writes: u64,
}

impl Checker {
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        dir: &Path,
    ) -> anyhow::Result<Checker> {
        let trace = dir.join("trace.jsonl");
        let faults = dir.join("faults.jsonl");
        std::fs::write(&faults, "")?;
        let log = std::fs::File::create(dir.join("watch.log"))?;
        let watch = Command::new(binary)
            .args(["watch", "--namespace", namespace, "--trace"])
            .arg(&trace)
            // The run's cluster, whatever KUBECONFIG the runner inherited.
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Checker {
            binary: binary.to_path_buf(),
            namespace: namespace.to_string(),
            dir: dir.to_path_buf(),
            trace,
            faults,
            since: unix_now(),
            watch,
        })
    }

    fn windows(&self) -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.faults)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("faults.jsonl"))
            .collect()
    }

    fn save(&self, windows: &[Value]) -> anyhow::Result<()> {
        let text: String = windows.iter().map(|w| format!("{w}\n")).collect();
        std::fs::write(&self.faults, text)?;
        Ok(())
    }

    /// Opens a fault window for `policies` (the checker allows what the fault
    /// explains, e.g. missing data, inside it); it stays open until [`Self::end_fault`].
    pub fn mark_fault(&self, what: &str, policies: &[&str]) -> anyhow::Result<()> {
        let mut windows = self.windows()?;
        windows.push(json!({"start": unix_now(), "what": what, "policies": policies}));
        self.save(&windows)
    }

    pub fn end_fault(&self, what: &str) -> anyhow::Result<()> {
        let mut windows = self.windows()?;
        for w in windows.iter_mut() {
            if w["what"] == what && w.get("end").is_none() {
                w["end"] = json!(unix_now());
            }
        }
        self.save(&windows)
    }

    /// The first write that lowered `target`'s replicas after `after` (unix
    /// seconds), from the audit log.
    pub async fn first_scale_down_after(
        &self,
        audit: &Path,
        target: &str,
        after: f64,
    ) -> anyhow::Result<Option<f64>> {
        let out = Command::new(&self.binary)
            .args(["first-down", "--audit"])
            .arg(audit)
            .args([
                "--namespace",
                &self.namespace,
                "--target",
                target,
                "--after",
                &after.to_string(),
            ])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "first-down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(if text.is_empty() {
            None
        } else {
            Some(
                text.parse()
                    .with_context(|| format!("first-down said {text:?}"))?,
            )
        })
    }

    /// Stops the watch and judges the window from the start until now.
    pub async fn judge(mut self, audit: &Path, logs: &[PathBuf]) -> anyhow::Result<Verdict> {
        let until = unix_now();
        // The audit log's last events are flushed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A watch that died judges nothing: every write would pass unchecked.
        if let Ok(Some(status)) = self.watch.try_wait() {
            anyhow::bail!(
                "the checker's watch of {} exited early ({status}); see {}",
                self.namespace,
                self.dir.join("watch.log").display()
            );
        }
        let _ = self.watch.kill().await;
        let out = self.dir.join("verdict.json");
        let status = Command::new(&self.binary)
            .args(["check", "--trace"])
            .arg(&self.trace)
            .arg("--audit")
            .arg(audit)
            .args(["--namespace", &self.namespace])
            .args([
                "--since",
                &self.since.to_string(),
                "--until",
                &until.to_string(),
            ])
            .arg("--faults")
            .arg(&self.faults)
            .arg("--logs")
            .args(logs)
            .args([
                "--lease",
                "ballast-leader",
                "--lease-duration",
                "6",
                "--out",
            ])
            .arg(&out)
            .status()
            .await?;
        let verdict: Value = serde_json::from_str(
            &std::fs::read_to_string(&out)
                .with_context(|| format!("the checker wrote no {} ({status})", out.display()))?,
        )?;
        let violations = verdict["violations"]
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("{} has no violations list", out.display()))?;
        let samples = verdict["trace_samples"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            samples > 0,
            "the checker's watch recorded nothing in the scenario's window ({})",
            self.trace.display()
        );
        anyhow::ensure!(
            status.success() || !violations.is_empty(),
            "the checker failed ({status}) without naming a violation"
        );
        Ok(Verdict {
            violations,
            writes: verdict["writes"].as_u64().unwrap_or(0),
        })
    }
}

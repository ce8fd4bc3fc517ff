//! The chaos scenarios: faults injected into the real harness while Ballast
//! scales, each under the invariant checker (e2e/invariants): replicas written
//! within [min, max]; no scale-down while data is missing; no write while paused
//! or dryRun; one writer (the Lease holder); no write beyond the rate rules; no
//! panic. Each scenario has its own namespace, operators, load exporter,
//! Prometheus and fault proxy; `chaos-apiserver-restart` restarts the API server
//! and freezes etcd, so it runs alone (see main.rs). Each appends one line to
//! `target/chaos/results.jsonl`, from which e2e/reliability-report writes
//! docs/reliability.md.
//!
//! The metric: `ballast_e2e_load{series=NAME}`, scraped every second. Policies ask
//! for one replica per unit of load, bounds [1, 8], polled every 3 s, at most 2
//! pods per 10 s either way.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use ballast_e2e::chaos::{Checker, FaultProxy, Load, Prometheus, load_query, unix_now};
use ballast_e2e::{LEASE, Scenario, eventually, holds, polls};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const POLL: Duration = Duration::from_secs(3);
/// The chaos policies' rate rule: 2 pods per 10 s.
const STEP: i32 = 2;
const PERIOD: Duration = Duration::from_secs(10);

/// One chaos scenario's tools and record.
struct Chaos {
    what: &'static str,
    faults: &'static str,
    load: Load,
    prometheus: Prometheus,
    checker: Checker,
    recovery: Vec<String>,
    started: Instant,
}

impl Chaos {
    async fn start(
        s: &Scenario,
        what: &'static str,
        faults: &'static str,
    ) -> anyhow::Result<Chaos> {
        let load = Load::serve().await?;
        let prometheus = Prometheus::start(&s.dir, load.port).await?;
        let checker = Checker::start(&s.env.invariants, &s.env.kubeconfig, &s.ns, &s.dir)?;
        Ok(Chaos {
            what,
            faults,
            load,
            prometheus,
            checker,
            recovery: Vec::new(),
            started: Instant::now(),
        })
    }

    fn recovered(&mut self, s: &Scenario, what: &str, took: Duration) {
        let line = format!("{what} {:.1} s", took.as_secs_f64());
        s.say(format!("recovery: {line}"));
        self.recovery.push(line);
    }

    /// A ClusterMetricsSource for this namespace: timeout 2 s, circuit opens after
    /// 3 failures for `open`.
    async fn source(
        &self,
        s: &mut Scenario,
        suffix: &str,
        address: &str,
        open: &str,
    ) -> anyhow::Result<String> {
        let ns = s.ns.clone();
        s.source(
            suffix,
            json!({
                "address": address, "timeout": "2s", "allowedNamespaces": [ns],
                "circuitBreaker": {"failureThreshold": 3, "openDuration": open}
            }),
        )
        .await
    }

    /// Stops the operators, judges the window, records the line; the scenario
    /// fails on its own failure or on any violation.
    async fn finish(self, s: &mut Scenario, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        s.stop_operators().await;
        let duration = self.started.elapsed();
        let audit = s.env.audit_log.clone().ok_or_else(|| {
            anyhow!("no KUBE_AUDIT_LOG: the checker needs the API server's audit log")
        })?;
        let verdict = self.checker.judge(&audit, &s.logs).await;
        let (violations, writes) = match &verdict {
            Ok(v) => (v.violations.len().to_string(), v.writes.to_string()),
            Err(_) => ("?".to_string(), "?".to_string()),
        };
        let passed = outcome.is_ok() && violations == "0";
        let line = json!({
            "scenario": self.what, "faults": self.faults, "duration_s": (duration.as_secs_f64() * 10.0).round() / 10.0,
            "violations": violations, "writes": writes, "recovery": self.recovery.join("; "), "passed": passed,
        });
        append_result(&s.env.repo.join("target/chaos/results.jsonl"), &line)?;
        s.say(format!(
            "invariants: {writes} replica writes checked, {violations} violations"
        ));
        outcome?;
        let verdict = verdict.context("the invariant checker")?;
        anyhow::ensure!(
            verdict.violations.is_empty(),
            "{} invariant violations: {}",
            verdict.violations.len(),
            verdict
                .violations
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok(())
    }
}

fn append_result(path: &PathBuf, line: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: concurrent scenarios append whole lines.
    file.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

/// A policy on its own Deployment (at `initial` replicas) reading `series`.
async fn policy(
    s: &Scenario,
    name: &str,
    source: &str,
    series: &str,
    initial: i32,
    window: u32,
    extra: Value,
) -> anyhow::Result<()> {
    s.deployment(name, initial).await?;
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": 1, "maxReplicas": 8, "pollInterval": format!("{}s", POLL.as_secs()),
        "metrics": [{"name": "load", "source": source, "query": load_query(series), "target": {"type": "AverageValue", "averageValue": "1"}}],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": STEP, "periodSeconds": PERIOD.as_secs()}]},
            "scaleDown": {"stabilizationWindowSeconds": window, "policies": [{"type": "Pods", "value": STEP, "periodSeconds": PERIOD.as_secs()}]}
        }
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    s.policy(name, spec).await
}

/// The policy and two sentinels on the same metric: one paused, one dryRun. The
/// checker fails the scenario on any write to the sentinels' Deployments.
async fn policies(
    s: &Scenario,
    name: &str,
    source: &str,
    initial: i32,
    window: u32,
) -> anyhow::Result<()> {
    policy(s, name, source, name, initial, window, json!({})).await?;
    policy(
        s,
        &format!("{name}-paused"),
        source,
        name,
        2,
        window,
        json!({"paused": true}),
    )
    .await?;
    policy(
        s,
        &format!("{name}-dry"),
        source,
        name,
        2,
        window,
        json!({"dryRun": true}),
    )
    .await
}

/// The notes of the `pk-atleast` policy's Events with `reason`.
async fn fallback_events(s: &Scenario, reason: &str) -> anyhow::Result<Vec<String>> {
    Ok(s.events(reason)
        .await?
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("pk-atleast"))
        .filter_map(|e| e.note)
        .collect())
}

async fn unavailable(s: &Scenario, name: &str) -> anyhow::Result<()> {
    let c = s.condition(name, "MetricsAvailable").await?;
    anyhow::ensure!(
        c.status == "False",
        "MetricsAvailable is {}/{}",
        c.status,
        c.reason
    );
    Ok(())
}

async fn replicas_at_least(s: &Scenario, name: &str, floor: i32) -> anyhow::Result<()> {
    let r = s.replicas(name).await?;
    anyhow::ensure!(r >= floor, "{name} at {r}, below {floor}");
    Ok(())
}

/// How long the rate rule needs to move `from` → `to`, with a lease for a new
/// leader and [`polls`]' slack: a deadline in the policy's own terms.
fn rate_deadline(from: i32, to: i32) -> Duration {
    let periods = u32::try_from(((to - from).abs() + STEP - 1) / STEP).unwrap_or(0);
    PERIOD * periods + LEASE + polls(POLL, 4)
}

async fn leader_among(s: &Scenario, alive: &[usize]) -> anyhow::Result<usize> {
    for &i in alive {
        if s.operators[i].leads().await {
            return Ok(i);
        }
    }
    anyhow::bail!("none of {alive:?} leads")
}

// --- prometheus-killed ------------------------------------------------------------

pub async fn prometheus_killed(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "prometheus-killed",
        "source Prometheus SIGKILLed mid scale-up, restarted after 120 s",
    )
    .await?;
    let outcome = prometheus_killed_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

async fn prometheus_killed_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    const DOWN: Duration = Duration::from_secs(120);
    c.load.set("pk", 1.0);
    let source = c.source(s, "prom", &c.prometheus.url(), "5s").await?;
    policies(s, "pk", &source, 1, 15).await?;
    // On the same metric, a fallback that must never cut capacity: its replicas (2)
    // are below the fleet at the outage, which `Static` would cut to.
    const AT_LEAST: &str = "pk-atleast";
    let fallback = json!({"fallback": {"failureThreshold": 2, "replicas": 2, "mode": "AtLeast"}});
    policy(s, AT_LEAST, &source, "pk", 1, 15, fallback).await?;
    s.operator("pk-a").await?;
    eventually(polls(POLL, 6), "pk has metrics", || {
        s.metrics_available("pk")
    })
    .await?;
    c.load.set("pk", 6.0);
    eventually(rate_deadline(1, 3), "scale-up under load", || async {
        replicas_at_least(s, "pk", 3).await?;
        replicas_at_least(s, AT_LEAST, 3).await
    })
    .await?;
    let r = s.replicas("pk").await?;
    c.prometheus.kill().await?;
    let killed = Instant::now();
    let r_at_least = s.replicas(AT_LEAST).await?;
    c.checker
        .mark_fault("prometheus-killed", &["pk", AT_LEAST])?;
    s.say(format!(
        "SIGKILLed the source's Prometheus at {r} replicas (scaling up to 6); restarting it in {}s",
        DOWN.as_secs()
    ));
    eventually(polls(POLL, 4), "MetricsAvailable goes False", || {
        unavailable(s, "pk")
    })
    .await?;
    // failureThreshold 2: the fallback is on by the third failed tick.
    eventually(polls(POLL, 5), "the AtLeast fallback is active", || async {
        let c = s.condition(AT_LEAST, "MetricsAvailable").await?;
        anyhow::ensure!(
            c.reason == "FallbackActive",
            "MetricsAvailable {}/{}: {}",
            c.status,
            c.reason,
            c.message
        );
        Ok(())
    })
    .await?;
    holds(
        DOWN.saturating_sub(killed.elapsed()),
        format!(
            "pk holds at least {r}, {AT_LEAST} at least {r_at_least}, while Prometheus is down"
        ),
        || async {
            replicas_at_least(s, "pk", r).await?;
            replicas_at_least(s, AT_LEAST, r_at_least).await
        },
    )
    .await?;
    let applied = fallback_events(s, "FallbackApplied").await?;
    anyhow::ensure!(
        applied.iter().any(|n| n.contains("mode AtLeast")),
        "FallbackApplied Events: {applied:?}"
    );
    s.say(format!(
        "{AT_LEAST} held {r_at_least} replicas through the outage (fallback.replicas 2, mode AtLeast)"
    ));
    c.prometheus.restart().await?;
    let restarted = Instant::now();
    s.say(format!(
        "restarted the Prometheus {:.0}s after the kill",
        killed.elapsed().as_secs_f64()
    ));
    eventually(polls(POLL, 10), "metrics back after the restart", || {
        s.metrics_available("pk")
    })
    .await?;
    c.checker.end_fault("prometheus-killed")?;
    c.recovered(s, "metrics back after the restart in", restarted.elapsed());
    eventually(polls(POLL, 10), "a FallbackEnded Event", || async {
        let ended = fallback_events(s, "FallbackEnded").await?;
        anyhow::ensure!(!ended.is_empty(), "none yet");
        Ok(())
    })
    .await?;
    eventually(rate_deadline(r, 6), "scale-up resumes to 6", || {
        s.replicas_are("pk", 6)
    })
    .await?;
    c.recovered(s, "at the load's 6 replicas after", restarted.elapsed());
    c.load.set("pk", 2.0);
    eventually(
        Duration::from_secs(15) + rate_deadline(6, 2),
        "scale-down to 2 after the load fell",
        || s.replicas_are("pk", 2),
    )
    .await
}

// --- apiserver-restart --------------------------------------------------------------

pub async fn apiserver_restart(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "apiserver-restart",
        "operator's ClusterRoleBinding deleted and kube-apiserver restarted mid scale-up (connection refused, 403 for 9 s, 410), binding restored; etcd SIGSTOPped 20 s mid scale-down",
    )
    .await?;
    let outcome = apiserver_restart_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

async fn evaluated_since(s: &Scenario, op: usize, policy: &str, since: f64) -> anyhow::Result<()> {
    let series = format!(
        "ballast_last_evaluation_timestamp_seconds{{namespace=\"{}\",policy=\"{policy}\"}}",
        s.ns
    );
    let last = s.operators[op].metric(&series).await?;
    anyhow::ensure!(last.is_some_and(|t| t > since), "last evaluation {last:?}");
    Ok(())
}

async fn signal(pid: &str, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill {signal} {pid}: {status}");
    Ok(())
}

/// With the binding deleted: the API server restarted, then three poll intervals
/// of 403 for the operator.
async fn restart_without_access(s: &Scenario, state: &std::path::Path) -> anyhow::Result<()> {
    let t = Instant::now();
    s.say(format!(
        "deleted the operator's ClusterRoleBinding; restarting the kube-apiserver while scaling up (at {})",
        s.replicas("api").await?
    ));
    let restart = tokio::process::Command::new(s.env.repo.join("e2e/cluster"))
        .args(["restart", "kube-apiserver"])
        .env("BALLAST_E2E_STATE", state)
        .output()
        .await?;
    anyhow::ensure!(
        restart.status.success(),
        "e2e/cluster restart kube-apiserver failed: {}",
        String::from_utf8_lossy(&restart.stdout)
    );
    s.say(format!(
        "kube-apiserver back after {:.1}s; 403 for the operator for {}s",
        t.elapsed().as_secs_f64(),
        (POLL * 3).as_secs()
    ));
    tokio::time::sleep(POLL * 3).await;
    Ok(())
}

async fn apiserver_restart_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    let state = s
        .env
        .state
        .clone()
        .ok_or_else(|| anyhow!("no BALLAST_E2E_STATE: a cluster not started by e2e/cluster"))?;
    let etcd_pid = std::fs::read_to_string(state.join("pids/etcd.pid"))
        .with_context(|| format!("no etcd pid in {}/pids", state.display()))?
        .trim()
        .to_string();
    c.load.set("api", 2.0);
    let source = c.source(s, "prom", &c.prometheus.url(), "5s").await?;
    policies(s, "api", &source, 1, 15).await?;
    let op = s.operator("api-a").await?;
    eventually(polls(POLL, 6), "api at 2", || s.replicas_are("api", 2)).await?;
    c.load.set("api", 8.0);
    eventually(rate_deadline(2, 3), "scale-up", || {
        replicas_at_least(s, "api", 3)
    })
    .await?;

    // The error sequence of an API server start, made deterministic: the
    // operator's ClusterRoleBinding is deleted, the API server restarted (the
    // watches see connection refused, then 403 as long as the binding is gone,
    // then 410 for resource versions the new server no longer has) and the binding
    // restored three poll intervals later. Writes fail meanwhile; afterwards the
    // operator must go on from the real replicas, not from a cache frozen by the
    // errors.
    let bindings = Api::<ClusterRoleBinding>::all(s.client.clone());
    let mut binding = bindings
        .get("ballast")
        .await
        .context("the ClusterRoleBinding ballast")?;
    binding.metadata = kube::api::ObjectMeta {
        name: binding.metadata.name.clone(),
        labels: binding.metadata.labels.clone(),
        ..Default::default()
    };
    c.checker.mark_fault("apiserver-rbac", &["api"])?;
    bindings
        .delete("ballast", &DeleteParams::default())
        .await
        .context("deleting the ClusterRoleBinding")?;
    let fault = restart_without_access(s, &state).await;
    // Whatever happened, the binding comes back (every later operator, and the
    // run's webhook, need it): retried through the API server's restart.
    let restore = eventually(
        Duration::from_secs(60),
        "restoring the ClusterRoleBinding ballast",
        || async {
            match bindings.create(&PostParams::default(), &binding).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await;
    c.checker.end_fault("apiserver-rbac")?;
    fault?;
    restore?;
    let restored = Instant::now();
    let restored_at = unix_now();
    s.say(format!(
        "ClusterRoleBinding restored (at {} replicas)",
        s.replicas("api").await?
    ));
    eventually(
        LEASE + polls(POLL, 10),
        "the operator evaluates again after access was restored",
        || evaluated_since(s, op, "api", restored_at),
    )
    .await?;
    c.recovered(
        s,
        "operator evaluating again after access was restored in",
        restored.elapsed(),
    );
    let r = s.replicas("api").await?;
    eventually(
        rate_deadline(r, 8),
        format!("at the load's 8 replicas (from {r}; rate 2 per 10 s)"),
        || s.replicas_are("api", 8),
    )
    .await?;
    c.recovered(
        s,
        "at the load's 8 replicas after access was restored in",
        restored.elapsed(),
    );

    // Then etcd frozen for 20 s while the load falls (a scale-down is due).
    c.load.set("api", 3.0);
    eventually(
        polls(POLL, 6),
        "the operator decides a scale-down",
        || async {
            let desired = s.status("api").await?.desired_replicas;
            anyhow::ensure!(desired.is_some_and(|d| d < 8), "desired {desired:?}");
            Ok(())
        },
    )
    .await?;
    signal(&etcd_pid, "-STOP").await?;
    s.say(format!(
        "etcd (pid {etcd_pid}) paused with SIGSTOP for 20 s"
    ));
    tokio::time::sleep(Duration::from_secs(20)).await;
    signal(&etcd_pid, "-CONT").await?;
    let resumed = Instant::now();
    let resumed_at = unix_now();
    s.say("etcd resumed");
    eventually(
        LEASE + polls(POLL, 10),
        "the operator evaluates again after etcd resumed",
        || evaluated_since(s, op, "api", resumed_at),
    )
    .await?;
    c.recovered(
        s,
        "evaluating again after etcd resumed in",
        resumed.elapsed(),
    );
    eventually(
        Duration::from_secs(15) + rate_deadline(8, 3),
        "scale-down to 3 after etcd resumed",
        || s.replicas_are("api", 3),
    )
    .await?;
    anyhow::ensure!(
        s.operators[op].leads().await,
        "the operator is not the leader after the faults"
    );
    Ok(())
}

// --- leader-killed ------------------------------------------------------------------

pub async fn leader_killed(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "leader-killed",
        "leader SIGKILLed every 20-40 s during a scale-up and a scale-down (3 replicas)",
    )
    .await?;
    let outcome = leader_killed_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

/// 20-40 s, from the clock's nanoseconds (no seed to keep; the scenario's log
/// says when each kill came).
fn between_kills() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_secs(20 + u64::from(nanos % 21))
}

async fn leader_killed_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    c.load.set("lk", 1.0);
    let source = c.source(s, "prom", &c.prometheus.url(), "5s").await?;
    policies(s, "lk", &source, 1, 10).await?;
    let letters = "abcdefghij".chars();
    let mut letters = letters.map(|l| format!("lk-{l}"));
    let mut alive = Vec::new();
    for _ in 0..3 {
        let id = letters.next().ok_or_else(|| anyhow!("out of names"))?;
        alive.push(s.operator(&id).await?);
    }
    eventually(LEASE * 3, "a leader among three operators", || {
        leader_among(s, &alive)
    })
    .await?;
    eventually(polls(POLL, 6), "lk has metrics", || {
        s.metrics_available("lk")
    })
    .await?;
    let mut takeovers: Vec<f64> = Vec::new();
    for (load, target) in [(8.0, 8), (1.0, 1)] {
        c.load.set("lk", load);
        let phase = Instant::now();
        while phase.elapsed() < Duration::from_secs(70) {
            tokio::time::sleep(between_kills()).await;
            let leader = leader_among(s, &alive)
                .await
                .with_context(|| format!("no leader before kill {}", takeovers.len() + 1))?;
            let at = s.replicas("lk").await?;
            s.operators[leader].kill().await?;
            let killed = Instant::now();
            alive.retain(|&i| i != leader);
            eventually(
                LEASE * 5,
                format!("a standby takes over after kill {}", takeovers.len() + 1),
                || leader_among(s, &alive),
            )
            .await?;
            takeovers.push(killed.elapsed().as_secs_f64());
            s.say(format!(
                "kill {}: leader {} SIGKILLed at {at} replicas; a standby led {:.1}s later",
                takeovers.len(),
                s.operators[leader].identity,
                killed.elapsed().as_secs_f64()
            ));
            let id = letters.next().ok_or_else(|| anyhow!("out of names"))?;
            alive.push(s.operator(&id).await?);
        }
        eventually(
            rate_deadline(8, 1) + LEASE,
            format!("lk at {target} after the kills"),
            || s.replicas_are("lk", target),
        )
        .await?;
    }
    takeovers.sort_by(f64::total_cmp);
    let max = takeovers.last().copied().unwrap_or(0.0);
    let median = takeovers.get(takeovers.len() / 2).copied().unwrap_or(0.0);
    let stats = format!(
        "takeover p50 {median:.1} s, max {max:.1} s over {} kills",
        takeovers.len()
    );
    s.say(format!("{stats} (lease {} s)", LEASE.as_secs()));
    c.recovery.push(stats);
    // A standby sees the lease expire within its duration and acquires it on its
    // next renewal attempt: past that plus a tick, something is wrong.
    let bound = (LEASE + POLL + Duration::from_secs(1)).as_secs_f64();
    anyhow::ensure!(
        max <= bound,
        "a takeover took {max:.1} s (lease {} s, bound {bound} s): {takeovers:?}",
        LEASE.as_secs()
    );
    Ok(())
}

// --- restart-in-window --------------------------------------------------------------

pub async fn restart_in_window(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "restart-in-window",
        "operator restarted 15 s into a 45 s scale-down window",
    )
    .await?;
    let outcome = restart_in_window_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

async fn restart_in_window_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    const WINDOW: u32 = 45;
    c.load.set("rw", 6.0);
    let source = c.source(s, "prom", &c.prometheus.url(), "5s").await?;
    policies(s, "rw", &source, 1, WINDOW).await?;
    let a = s.operator("rw-a").await?;
    eventually(rate_deadline(1, 6), "rw at 6", || s.replicas_are("rw", 6)).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.load.set("rw", 1.0);
    let dropped = unix_now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let restarted = Instant::now();
    s.operators[a].terminate().await?;
    let b = s.operator("rw-b").await?;
    let restarted_one = [b];
    eventually(LEASE * 2, "the restarted operator leads", || {
        leader_among(s, &restarted_one)
    })
    .await?;
    c.recovered(s, "leading again after the SIGTERM in", restarted.elapsed());
    eventually(
        Duration::from_secs(u64::from(WINDOW)) + rate_deadline(6, 1),
        "scale-down after the window",
        || s.replicas_are("rw", 1),
    )
    .await?;
    let audit = s
        .env
        .audit_log
        .clone()
        .ok_or_else(|| anyhow!("no KUBE_AUDIT_LOG"))?;
    let first = c
        .checker
        .first_scale_down_after(&audit, "rw", dropped)
        .await?
        .ok_or_else(|| anyhow!("no scale-down write in the audit log"))?;
    let at = first - dropped;
    s.say(format!("first scale-down {at:.1} s after the load fell (window {WINDOW} s; the operator was restarted at +15 s)"));
    // The last high recommendation came at most one tick (3 s + 10%) and one
    // scrape before the fall was visible: the window ends no earlier than +40 s.
    anyhow::ensure!(
        at >= 40.0,
        "scaled down at +{at:.1}s, inside the {WINDOW} s window"
    );
    // Resumed, not restarted: a window restarted at the restart would end at +60 s.
    anyhow::ensure!(
        at <= 55.0,
        "scaled down at +{at:.1}s: the restart at +15 s restarted the {WINDOW} s window"
    );
    Ok(())
}

// --- broken-prometheus --------------------------------------------------------------

pub async fn broken_prometheus(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "broken-prometheus",
        "through a proxy: 1 s and 4 s delays (timeout 2 s), hang, 500, 503, reset, truncated JSON, 50 MiB body, NaN, +Inf, empty result, 2 series, string, matrix, text/html",
    )
    .await?;
    let outcome = broken_prometheus_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

const MODES_UNAVAILABLE: [&str; 14] = [
    "delay:4",
    "hang",
    "status:500",
    "status:503",
    "reset",
    "truncated",
    "huge",
    "nan",
    "inf",
    "empty",
    "series",
    "string",
    "matrix",
    "html",
];

async fn broken_prometheus_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    let proxy =
        FaultProxy::start(&s.env.repo, &c.prometheus.url(), &s.dir.join("proxy.log")).await?;
    c.load.set("bp", 6.0);
    let source = c.source(s, "proxy", &proxy.url(), "5s").await?;
    policies(s, "bp", &source, 1, 10).await?;
    s.operator("bp-a").await?;
    eventually(rate_deadline(1, 6), "bp at 6", || s.replicas_are("bp", 6)).await?;
    eventually(polls(POLL, 6), "bp has metrics", || {
        s.metrics_available("bp")
    })
    .await?;
    // Slow but inside the 2 s timeout: still a good reading.
    proxy.fault("delay:1").await?;
    tokio::time::sleep(POLL * 3).await;
    s.metrics_available("bp")
        .await
        .context("a 1 s delay (timeout 2 s) made the metric unavailable")?;
    let mut worst = Duration::ZERO;
    for mode in MODES_UNAVAILABLE {
        proxy.fault(mode).await?;
        c.checker.mark_fault(mode, &["bp"])?;
        eventually(
            polls(POLL, 4),
            format!("mode {mode}: MetricsAvailable goes False"),
            || unavailable(s, "bp"),
        )
        .await?;
        let message = s.condition("bp", "MetricsAvailable").await?.message;
        let short: String = message
            .rsplit("\": ")
            .next()
            .unwrap_or(&message)
            .chars()
            .take(120)
            .collect();
        s.say(format!("{mode}: {short}"));
        holds(POLL, format!("mode {mode}: bp holds 6"), || {
            replicas_at_least(s, "bp", 6)
        })
        .await?;
        proxy.fault("pass").await?;
        let t = Instant::now();
        eventually(
            polls(POLL, 10),
            format!("mode {mode}: metrics back after the fault ended"),
            || s.metrics_available("bp"),
        )
        .await?;
        worst = worst.max(t.elapsed());
        c.checker.end_fault(mode)?;
    }
    s.replicas_are("bp", 6)
        .await
        .context("bp moved during the faults")?;
    c.recovered(s, "metrics back after each fault ended, worst", worst);
    Ok(())
}

// --- many-policies ------------------------------------------------------------------

pub async fn many_policies(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "many-policies",
        "20 policies on one source answering 503",
    )
    .await?;
    let outcome = many_policies_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

async fn circuit_state(s: &Scenario, op: usize, source: &str) -> anyhow::Result<Option<f64>> {
    s.operators[op]
        .metric(&format!("ballast_circuit_state{{source=\"{source}\"}}"))
        .await
}

async fn many_policies_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    const N: usize = 20;
    let proxy =
        FaultProxy::start(&s.env.repo, &c.prometheus.url(), &s.dir.join("proxy.log")).await?;
    c.load.set("mp", 2.0);
    let source = c.source(s, "many", &proxy.url(), "30s").await?;
    let names: Vec<String> = (1..=N).map(|i| format!("mp-{i:02}")).collect();
    for name in &names {
        policy(s, name, &source, "mp", 2, 10, json!({})).await?;
    }
    let op = s.operator("mp-a").await?;
    eventually(
        polls(POLL, 10),
        format!("all {N} policies have metrics"),
        || async {
            let mut missing = Vec::new();
            for name in &names {
                if s.metrics_available(name).await.is_err() {
                    missing.push(name.as_str());
                }
            }
            anyhow::ensure!(missing.is_empty(), "without metrics: {missing:?}");
            Ok(())
        },
    )
    .await?;
    let t0 = unix_now();
    tokio::time::sleep(POLL * 3).await;
    let before = proxy.requests_since(t0).await?;
    s.say(format!(
        "healthy: {before} queries in {} s from {N} policies (poll {} s)",
        (POLL * 3).as_secs(),
        POLL.as_secs()
    ));
    proxy.fault("status:503").await?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    c.checker.mark_fault("source-503", &refs)?;
    eventually(polls(POLL, 6), "the source's circuit opens", || async {
        let state = circuit_state(s, op, &source).await?;
        anyhow::ensure!(state == Some(2.0), "circuit state {state:?}");
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // queries already in flight when it opened
    let t0 = unix_now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = proxy.requests_since(t0).await?;
    let opens: u64 = s
        .events("CircuitOpen")
        .await?
        .iter()
        .filter(|e| e.note.as_deref().is_some_and(|n| n.contains(&source)))
        .map(|e| {
            e.series
                .as_ref()
                .map_or(1, |series| u64::try_from(series.count).unwrap_or(1))
        })
        .sum();
    let healthy = before * 20 / (POLL * 3).as_secs();
    s.say(format!("circuit open: {during} queries in 20 s (healthy rate: {healthy}), CircuitOpen events: {opens}"));
    c.recovery.push(format!(
        "queries to the source in 20 s with the circuit open: {during} (healthy: {healthy}); CircuitOpen events: {opens}"
    ));
    anyhow::ensure!(
        during <= 2,
        "{during} queries reached the failing source in 20 s with its circuit open (openDuration 30 s)"
    );
    anyhow::ensure!(
        opens == 1,
        "{opens} CircuitOpen events for {N} policies on one source (want 1)"
    );
    replicas_at_least(s, "mp-01", 2).await?;
    proxy.fault("pass").await?;
    let t = Instant::now();
    eventually(
        Duration::from_secs(30) + polls(POLL, 6),
        "the circuit closes after the source recovered",
        || async {
            let state = circuit_state(s, op, &source).await?;
            anyhow::ensure!(state == Some(0.0), "circuit state {state:?}");
            Ok(())
        },
    )
    .await?;
    c.checker.end_fault("source-503")?;
    c.recovered(
        s,
        "circuit closed after the source recovered in",
        t.elapsed(),
    );
    for name in &names {
        s.replicas_are(name, 2).await?;
    }
    Ok(())
}

// --- target-churn -------------------------------------------------------------------

pub async fn target_churn(s: &mut Scenario) -> anyhow::Result<()> {
    let mut c = Chaos::start(
        s,
        "target-churn",
        "target Deployment deleted and recreated; policy retargeted",
    )
    .await?;
    let outcome = target_churn_steps(s, &mut c).await;
    c.finish(s, outcome).await
}

async fn target_churn_steps(s: &mut Scenario, c: &mut Chaos) -> anyhow::Result<()> {
    c.load.set("tc", 4.0);
    let source = c.source(s, "prom", &c.prometheus.url(), "5s").await?;
    policies(s, "tc", &source, 1, 10).await?;
    s.operator("tc-a").await?;
    eventually(rate_deadline(1, 4), "tc at 4", || s.replicas_are("tc", 4)).await?;
    s.deployments()
        .delete("tc", &DeleteParams::foreground())
        .await?;
    eventually(Duration::from_secs(30), "Deployment tc deleted", || async {
        anyhow::ensure!(
            s.deployments().get_opt("tc").await?.is_none(),
            "still there"
        );
        Ok(())
    })
    .await?;
    s.say("deleted Deployment tc under its policy");
    let c0 = eventually(
        polls(POLL, 6),
        "AbleToScale goes False without the target",
        || async {
            let c = s.condition("tc", "AbleToScale").await?;
            anyhow::ensure!(
                c.status == "False",
                "AbleToScale is {}/{}",
                c.status,
                c.reason
            );
            Ok(c)
        },
    )
    .await?;
    s.say(format!(
        "without its target: AbleToScale={}/{}",
        c0.status, c0.reason
    ));
    tokio::time::sleep(POLL * 2).await;
    s.deployment("tc", 1).await?;
    let t = Instant::now();
    eventually(
        rate_deadline(1, 4),
        "the recreated tc is scaled to 4",
        || s.replicas_are("tc", 4),
    )
    .await?;
    c.recovered(s, "recreated target back at 4 replicas in", t.elapsed());
    s.deployment("tc-next", 1).await?;
    s.policies()
        .patch(
            "tc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tc-next"}}})),
        )
        .await
        .context("retargeting the policy")?;
    let t = Instant::now();
    eventually(rate_deadline(1, 4), "the new target is scaled to 4", || {
        s.replicas_are("tc-next", 4)
    })
    .await?;
    c.recovered(s, "new target at 4 replicas in", t.elapsed());
    c.load.set("tc", 2.0);
    eventually(
        Duration::from_secs(10) + rate_deadline(4, 2),
        "the new target follows the load down to 2",
        || s.replicas_are("tc-next", 2),
    )
    .await?;
    s.replicas_are("tc", 4)
        .await
        .context("the old target was written after the retarget")
}

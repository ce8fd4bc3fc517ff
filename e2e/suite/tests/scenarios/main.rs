//! The e2e scenarios, run against the harness's real cluster: each in its own
//! namespace with its own operators, several at a time (`--test-threads`).
//!
//!   e2e/scenarios [FILTER...] [-- libtest options]
//!
//! Names, filtering (`--exact`, `--skip`), `--list` and the summary come from the
//! libtest interface; a JUnit report goes to `$BALLAST_E2E_JUNIT` (default
//! `target/e2e/junit.xml`), and the last line is "N passed, M failed" (e2e/all
//! adds it up with the other suites).

mod admission;
mod backends;
mod bounds;
mod chaos;
mod evictions;
mod gitops;
mod health;
mod install;
mod leadership;
mod nodepool;
mod oncall;
mod query;
mod sources;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Instant;

use ballast_e2e::junit::{Case, Report};
use ballast_e2e::{Env, Scenario, webhook};
use libtest_mimic::{Arguments, Failed, Trial};

type Body = for<'a> fn(&'a mut Scenario) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// `name => path::to::async_fn`, one line per scenario.
macro_rules! scenarios {
    ($($name:literal => $($f:ident)::+),* $(,)?) => {
        vec![$(($name, {
            fn body(s: &mut Scenario) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + '_>> {
                Box::pin($($f)::+(s))
            }
            body as Body
        })),*]
    };
}

/// Scenarios that restart or freeze the control plane, or run an operator that
/// watches every namespace: each runs alone, with no other scenario in flight.
const ALONE: [&str; 4] = [
    "chaos-apiserver-restart",
    "shared-source-errors",
    "default-install",
    "crd-upgrade",
];

/// Held for reading by every scenario, for writing by those in [`ALONE`].
static CLUSTER: RwLock<()> = RwLock::new(());

/// How many selected [`ALONE`] scenarios have not finished: the others start only
/// when it is 0, so the lone ones run first, one after the other, and then the
/// rest all at once (without it, a shared scenario that took the lock first made
/// a lone one wait for it, and the run longer by its length).
static ALONE_LEFT: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Counts a lone scenario as finished when dropped, however it ended.
struct LoneDone;

impl Drop for LoneDone {
    fn drop(&mut self) {
        let (left, changed) = &ALONE_LEFT;
        let mut left = left.lock().unwrap_or_else(|p| p.into_inner());
        *left = left.saturating_sub(1);
        changed.notify_all();
    }
}

/// Blocks until every selected lone scenario has finished.
fn after_the_lone_ones() {
    let (left, changed) = &ALONE_LEFT;
    let mut left = left.lock().unwrap_or_else(|p| p.into_inner());
    while *left > 0 {
        left = changed.wait(left).unwrap_or_else(|p| p.into_inner());
    }
}

/// The scenarios that load the harness's one Redis: one at a time.
const REDIS: [&str; 1] = ["evictions"];
static REDIS_LOCK: Mutex<()> = Mutex::new(());

fn all() -> Vec<(&'static str, Body)> {
    scenarios![
        // First the lone ones (ALONE), then the rest at once.
        "chaos-apiserver-restart" => chaos::apiserver_restart,
        "shared-source-errors" => oncall::shared_source_errors,
        "default-install" => install::default_install,
        "crd-upgrade" => install::crd_upgrade,
        "chaos-broken-prometheus" => chaos::broken_prometheus,
        "chaos-prometheus-killed" => chaos::prometheus_killed,
        "chaos-leader-killed" => chaos::leader_killed,
        "chaos-restart-in-window" => chaos::restart_in_window,
        "chaos-many-policies" => chaos::many_policies,
        "chaos-target-churn" => chaos::target_churn,
        // The longest next, so that they do not end the run.
        "gameday" => oncall::gameday,
        "evictions" => evictions::evictions,
        "metrics-client" => query::metrics_client,
        "admission" => admission::admission,
        "deploy-dry-run" => admission::deploy_dry_run,
        "chart-dry-run" => admission::chart_dry_run,
        "secrets-stay-secret" => admission::secrets_stay_secret,
        "prometheus-down" => sources::prometheus_down,
        "node-pool" => nodepool::node_pool,
        "node-pool-path" => nodepool::node_pool_path,
        "node-pool-at-max" => nodepool::node_pool_at_max,
        "schedule" => nodepool::schedule,
        "failover" => leadership::failover,
        "sync-before-tick" => leadership::sync_before_tick,
        "bounds" => bounds::out_of_band_into_bounds,
        "paused" => bounds::paused,
        "replicas-fight" => gitops::replicas_fight,
        "health" => health::health,
        "gitops-pause" => gitops::gitops_pause,
        "dry-run" => bounds::dry_run,
        "source-not-allowed" => bounds::source_not_allowed,
        "undecodable-policy" => bounds::undecodable_policy,
        // Last: they look back over the whole run.
        "dashboard-queries" => oncall::dashboard_queries,
        "webhook-certificates" => admission::webhook_certificates,
        "thanos" => backends::thanos,
        "cortex" => backends::cortex,
        "mutual-tls-source" => backends::mutual_tls,
    ]
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let listing = args.list;
    // Read before the first scenario; `--list` needs no cluster.
    let env: Arc<OnceLock<Result<Arc<Env>, String>>> = Arc::new(OnceLock::new());
    let report = Arc::new(Report::default());
    let trials = all()
        .into_iter()
        .map(|(name, body)| {
            let (env, report) = (env.clone(), report.clone());
            Trial::test(name, move || {
                // A poisoned lock only means a scenario panicked holding it.
                let (_done, _shared, _alone) = if ALONE.contains(&name) {
                    (
                        Some(LoneDone),
                        None,
                        Some(CLUSTER.write().unwrap_or_else(|p| p.into_inner())),
                    )
                } else {
                    after_the_lone_ones();
                    (
                        None,
                        Some(CLUSTER.read().unwrap_or_else(|p| p.into_inner())),
                        None,
                    )
                };
                let _redis = REDIS
                    .contains(&name)
                    .then(|| REDIS_LOCK.lock().unwrap_or_else(|p| p.into_inner()));
                let started = Instant::now();
                // A panic is a failure like any other: recorded, with its message.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&env, name, body)
                }))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic without a message".into());
                    Err(anyhow::anyhow!("panicked: {message}"))
                });
                report.record(Case {
                    name: name.to_string(),
                    time: started.elapsed(),
                    failure: outcome.as_ref().err().map(|e| format!("{e:#}")),
                });
                outcome.map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect::<Vec<Trial>>();
    // Exactly the lone scenarios libtest will run (its own filter), or the others
    // would wait for one that never comes.
    let runs = |trial: &&Trial| !args.is_filtered_out(trial);
    *ALONE_LEFT.0.lock().unwrap_or_else(|p| p.into_inner()) = trials
        .iter()
        .filter(runs)
        .filter(|t| ALONE.contains(&t.name()))
        .count();
    let runs_chaos = trials
        .iter()
        .filter(runs)
        .any(|t| t.name().starts_with("chaos-"));
    if listing {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    if runs_chaos {
        // The chaos report is of the last run that ran chaos scenarios.
        let _ = std::fs::remove_file(repo.join("target/chaos/results.jsonl"));
    }
    // The run's admission webhook, for every scenario (see ballast_e2e::webhook).
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let started = setup.map_err(anyhow::Error::from).and_then(|runtime| {
        let env = Env::from_env().map(Arc::new)?;
        let (webhook, process) = runtime.block_on(webhook::start(&env))?;
        let _ = webhook::SUITE.set(webhook.clone());
        Ok((runtime, env, webhook, process))
    });
    let (runtime, suite_env, webhook, process) = match started {
        Ok(started) => started,
        Err(e) => {
            println!("FAIL setup: {e:#}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let _ = env.set(Ok(suite_env.clone()));
    println!(
        "webhook ready: pid {}, https://127.0.0.1:{}/validate, log {}",
        webhook.pid,
        webhook.port,
        webhook.log.display()
    );
    let conclusion = libtest_mimic::run(&args, trials);
    if let Err(e) = runtime.block_on(webhook::stop(&suite_env, process)) {
        eprintln!("stopping the webhook: {e:#}");
    }
    let junit = std::env::var("BALLAST_E2E_JUNIT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target/e2e/junit.xml"));
    match report.write("ballast-e2e", &junit) {
        Ok(()) => println!("JUnit report: {}", junit.display()),
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{} passed, {} failed",
        conclusion.num_passed, conclusion.num_failed
    );
    conclusion.exit_code()
}

/// One scenario on a runtime of its own: start, body, finish (always).
fn run(env: &OnceLock<Result<Arc<Env>, String>>, name: &str, body: Body) -> anyhow::Result<()> {
    let env = env
        .get()
        .cloned()
        .unwrap_or_else(|| Err("the run's setup did not finish".to_string()))
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut scenario = Scenario::start(env, name).await?;
        let outcome = body(&mut scenario).await;
        scenario.finish(outcome).await
    })
}

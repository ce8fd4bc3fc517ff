//! The e2e scenarios, run against the harness's real cluster: each in its own
//! namespace with its own operators, several at a time (`--test-threads`).
//!
//!   e2e/scenarios [FILTER...] [-- libtest options]
//!
//! Names, filtering (`--exact`, `--skip`), `--list` and the summary come from the
//! libtest interface; a JUnit report goes to `$BALLAST_E2E_JUNIT` (default
//! `target/e2e/junit.xml`), and the last line is "N passed, M failed" (e2e/all
//! adds it up with the other suites).

mod bounds;
mod chaos;
mod evictions;
mod leadership;
mod nodepool;
mod query;
mod sources;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use ballast_e2e::junit::{Case, Report};
use ballast_e2e::{Env, Scenario};
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

/// Scenarios that restart or freeze the control plane: each runs alone, with no
/// other scenario in flight (the others would see the fault too).
const ALONE: [&str; 1] = ["chaos-apiserver-restart"];

/// Held for reading by every scenario, for writing by those in [`ALONE`].
static CLUSTER: RwLock<()> = RwLock::new(());

fn all() -> Vec<(&'static str, Body)> {
    scenarios![
        // First: it has the cluster to itself, then the rest run at once.
        "chaos-apiserver-restart" => chaos::apiserver_restart,
        "chaos-broken-prometheus" => chaos::broken_prometheus,
        "chaos-prometheus-killed" => chaos::prometheus_killed,
        "chaos-leader-killed" => chaos::leader_killed,
        "chaos-restart-in-window" => chaos::restart_in_window,
        "chaos-many-policies" => chaos::many_policies,
        "chaos-target-churn" => chaos::target_churn,
        "metrics-client" => query::metrics_client,
        "evictions" => evictions::evictions,
        "prometheus-down" => sources::prometheus_down,
        "node-pool" => nodepool::node_pool,
        "node-pool-path" => nodepool::node_pool_path,
        "node-pool-at-max" => nodepool::node_pool_at_max,
        "failover" => leadership::failover,
        "sync-before-tick" => leadership::sync_before_tick,
        "bounds" => bounds::out_of_band_into_bounds,
        "paused" => bounds::paused,
        "dry-run" => bounds::dry_run,
        "source-not-allowed" => bounds::source_not_allowed,
        "undecodable-policy" => bounds::undecodable_policy,
    ]
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // Read when the first scenario runs, so that `--list` needs no cluster.
    let env: Arc<OnceLock<Result<Arc<Env>, String>>> = Arc::new(OnceLock::new());
    let report = Arc::new(Report::default());
    let trials = all()
        .into_iter()
        .map(|(name, body)| {
            let (env, report) = (env.clone(), report.clone());
            Trial::test(name, move || {
                // A poisoned lock only means a scenario panicked holding it.
                let (_shared, _alone) = if ALONE.contains(&name) {
                    (
                        None,
                        Some(CLUSTER.write().unwrap_or_else(|p| p.into_inner())),
                    )
                } else {
                    (
                        Some(CLUSTER.read().unwrap_or_else(|p| p.into_inner())),
                        None,
                    )
                };
                let started = Instant::now();
                let outcome = run(&env, name, body);
                report.record(Case {
                    name: name.to_string(),
                    time: started.elapsed(),
                    failure: outcome.as_ref().err().map(|e| format!("{e:#}")),
                });
                outcome.map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect();
    let listing = args.list;
    if !listing
        && all()
            .iter()
            .any(|(name, _)| name.starts_with("chaos-") && selected(&args, name))
    {
        // The chaos report is of the last run that ran chaos scenarios.
        let results =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/chaos/results.jsonl");
        let _ = std::fs::remove_file(results);
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if !listing {
        let junit = std::env::var("BALLAST_E2E_JUNIT")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
                repo.canonicalize()
                    .unwrap_or(repo)
                    .join("target/e2e/junit.xml")
            });
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
    }
    conclusion.exit_code()
}

/// Whether libtest's filter and `--skip` let `name` run.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

/// One scenario on a runtime of its own: start, body, finish (always).
fn run(env: &OnceLock<Result<Arc<Env>, String>>, name: &str, body: Body) -> anyhow::Result<()> {
    let env = env
        .get_or_init(|| Env::from_env().map(Arc::new).map_err(|e| format!("{e:#}")))
        .clone()
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

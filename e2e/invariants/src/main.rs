//! The invariant checker of e2e/chaos: what an autoscaler must never do, checked
//! over the whole of every chaos scenario.
//!
//! - `watch`: every second, the namespace's Deployments, CustomScalingPolicies and
//!   Leases appended to a trace file as JSON lines, until SIGTERM.
//! - `check`: reads every replica write of Ballast's ServiceAccount from the API
//!   server's audit log (level Request: the value written, when, and by which
//!   replica, from the user agent `ballast/VERSION (identity)`) and checks, for
//!   the window `[since, until]`:
//!   - **bounds**: every value written is within `[minReplicas, maxReplicas]` of
//!     the target's policy, and a target of an active policy is not seen outside
//!     its bounds for longer than two poll intervals + 10 s;
//!   - **paused**: no write to the target of a paused or dryRun policy;
//!   - **missing**: no scale-down while the policy's `MetricsAvailable` is False,
//!     or inside a fault window the scenario declared (`--faults`);
//!   - **one-writer**: every write comes from the replica holding the Lease (the
//!     last successful Lease write before it is that replica's, and younger than
//!     the lease duration);
//!   - **rate**: no write beyond the policy's rate rules, computed by the engine's
//!     own `scale_up_limit`/`scale_down_limit` (HPA's semantics) with `--slack`
//!     seconds off each period for the clocks;
//!   - **stale**: no write that repeats Ballast's previous write to the same target
//!     with nobody else's write in between (decided from a stale cache);
//!   - **panic**: no "panicked" in the operators' logs.
//!
//!   Writes `{"violations": [...], "writes": N, ...}` to `--out`, prints one line
//!   per violation, and exits 1 when there are any.
//! - `first-down`: prints the audit time of the first scale-down write to a
//!   Deployment after a time.

mod audit;
mod check;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ballast-invariants",
    about = "The chaos suite's invariant checker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append snapshots of a namespace to a trace file every interval (KUBECONFIG).
    Watch {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        trace: PathBuf,
        /// Seconds between snapshots.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Judge a window of a scenario.
    Check {
        #[arg(long)]
        trace: PathBuf,
        #[arg(long)]
        audit: PathBuf,
        #[arg(long)]
        namespace: String,
        /// Unix seconds.
        #[arg(long)]
        since: f64,
        #[arg(long)]
        until: f64,
        /// Fault windows, JSON lines `{"start", "end", "policies", "what"}`.
        #[arg(long)]
        faults: Option<PathBuf>,
        /// The operators' log files.
        #[arg(long, num_args = 0..)]
        logs: Vec<PathBuf>,
        /// Only this Lease's writes decide the holder.
        #[arg(long)]
        lease: Option<String>,
        #[arg(long, default_value_t = 6.0)]
        lease_duration: f64,
        /// Seconds taken off each rate period (API server vs operator clocks).
        #[arg(long, default_value_t = 1.0)]
        slack: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The audit time of the first scale-down write to a Deployment after a time.
    FirstDown {
        #[arg(long)]
        audit: PathBuf,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        after: f64,
    },
}

fn faults(path: Option<&PathBuf>) -> anyhow::Result<Vec<check::Fault>> {
    let Some(path) = path else {
        return Ok(vec![]);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a fault window", path.display(), i + 1))
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Watch {
            namespace,
            trace,
            interval,
        } => {
            let interval = Duration::try_from_secs_f64(interval)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("--interval {interval}: a positive number of seconds"))?;
            anyhow::ensure!(
                !namespace.is_empty(),
                "--namespace: empty (the watch reads one namespace)"
            );
            trace::watch(&namespace, &trace, interval).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            trace,
            audit,
            namespace,
            since,
            until,
            faults: faults_path,
            logs,
            lease,
            lease_duration,
            slack,
            out,
        } => {
            let records = audit::records(&audit, &namespace)
                .with_context(|| format!("reading the audit log {}", audit.display()))?;
            let snapshots = trace::load(&trace)
                .with_context(|| format!("reading the trace {}", trace.display()))?;
            let faults = faults(faults_path.as_ref())?;
            let options = check::Options {
                since,
                until,
                lease,
                lease_duration,
                slack,
                logs,
            };
            let report = check::check(&records, &snapshots, &faults, &options);
            std::fs::write(&out, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", out.display()))?;
            for v in &report.violations {
                println!("    VIOLATION {} at {}: {}", v.invariant, v.t, v.message);
            }
            let writers = if report.writers.is_empty() {
                "nobody".to_string()
            } else {
                report.writers.join(", ")
            };
            println!(
                "    invariants: {} replica writes by {writers}, {} watch samples, {} violations",
                report.writes,
                report.trace_samples,
                report.violations.len()
            );
            Ok(if report.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::FirstDown {
            audit,
            namespace,
            target,
            after,
        } => {
            let records = audit::records(&audit, &namespace)
                .with_context(|| format!("reading the audit log {}", audit.display()))?;
            Ok(match check::first_down(&records, &target, after) {
                Some(t) => {
                    println!("{t:.3}");
                    ExitCode::SUCCESS
                }
                None => ExitCode::FAILURE,
            })
        }
    }
}

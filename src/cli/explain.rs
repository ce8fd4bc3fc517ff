//! `ballast explain`: the last decision of a policy in words (see
//! [`engine::explain`](crate::engine::explain)).
//!
//! - Offline, `-f policy.yaml --series s.csv`: the series is replayed through the
//!   engine as `ballast simulate` does, and the decision at the last row (or `--at`)
//!   is explained.
//! - In a cluster, `ballast explain NAME -n NS`: the policy's status holds what the
//!   last tick read and the history it left; the tick's input is rebuilt from it
//!   ([`input_from_status`]) and decided again by the same engine. When that does
//!   not give what the operator recorded (a status from an older spec, pod requests
//!   the status does not keep), the explanation says so.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;

use super::run::ClusterArgs;
use super::series::{parse_csv, shift_numeric};
use super::simulate::{column_order, load_policy, replay};
use crate::api::history::History;
use crate::api::{CustomScalingPolicy, CustomScalingPolicySpec, CustomScalingPolicyStatus};
use crate::engine::{self, Input, Sample};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ballast explain web -n shop                                          # the last decision in the cluster\n  \
ballast explain -f examples/cache-eviction/policy.yaml --series examples/cache-eviction/series.csv --initial-replicas 2\n  \
ballast explain -f policy.yaml --series s.csv --initial-replicas 2 --at 600   # the decision at the row of time 600")]
pub struct ExplainArgs {
    /// The policy in the cluster (with -n); omit it with -f.
    #[arg(
        value_name = "POLICY",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub name: Option<String>,
    /// Namespace of the policy.
    #[arg(short = 'n', long, default_value = "default", value_name = "NS")]
    pub namespace: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Explain offline: the policy file (YAML), replayed over --series.
    #[arg(short = 'f', long = "file", value_name = "FILE", requires = "series")]
    pub file: Option<PathBuf>,
    /// The series to replay (CSV, as for `ballast simulate`).
    #[arg(long, value_name = "FILE", requires = "file")]
    pub series: Option<PathBuf>,
    /// Replicas at the start of the replay (default: the policy's minReplicas).
    #[arg(long, value_name = "N")]
    pub initial_replicas: Option<u32>,
    /// The row to explain, by its time as written in the CSV (default: the last).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Where numeric CSV times begin, for schedules (as `ballast simulate --start`).
    #[arg(long, value_name = "TIME", default_value = "1970-01-01T00:00:00Z")]
    pub start: jiff::Timestamp,
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    match (&args.file, &args.name) {
        (Some(file), _) => offline(args, file),
        (None, Some(name)) => cluster(args, name),
        (None, None) => bail!("give a POLICY name (in the cluster) or -f FILE --series FILE"),
    }
}

fn offline(args: &ExplainArgs, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let policy = load_policy(file)?;
    let spec = &policy.spec;
    let Some(series_path) = &args.series else {
        bail!("-f needs --series FILE");
    };
    let shown = series_path.display().to_string();
    let text = fs::read_to_string(series_path).with_context(|| format!("reading {shown}"))?;
    let mut series = parse_csv(&shown, &text)?;
    shift_numeric(&mut series, args.start.as_millisecond());
    let columns = column_order(&shown, spec, &series)?;
    let index = match &args.at {
        None => series.rows.len().checked_sub(1),
        Some(at) => series.rows.iter().position(|r| &r.label == at),
    }
    .ok_or_else(|| match &args.at {
        Some(at) => anyhow!("--at {at}: no row of {shown} has that time"),
        None => anyhow!("{shown} has no rows"),
    })?;
    let initial = args.initial_replicas.unwrap_or(spec.min_replicas);
    let mut explained = None;
    replay(
        spec,
        &series,
        &columns,
        initial,
        None,
        None,
        |i, input, decision| {
            if i == index {
                explained = Some(engine::explain::explain(input, decision));
            }
        },
    );
    let Some(text) = explained else {
        bail!("row {index} of {shown} was not replayed");
    };
    println!(
        "{} over {shown}, row {} (time {}), starting from {initial} replicas:\n",
        name_of(&policy),
        index + 1,
        series.rows[index].label
    );
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn name_of(policy: &CustomScalingPolicy) -> String {
    let name = policy.metadata.name.as_deref().unwrap_or("<unnamed>");
    match &policy.metadata.namespace {
        Some(ns) => format!("CustomScalingPolicy {ns}/{name}"),
        None => format!("CustomScalingPolicy {name}"),
    }
}

/// One tick's input, rebuilt from the status it left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct Rebuilt {
    pub now: i64,
    pub current_replicas: u32,
    pub samples: Vec<Option<Sample>>,
    pub history: History,
    pub current_nodes: Option<u32>,
}

fn millis(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    time.0.as_millisecond()
}

/// Rebuild the input of the tick that wrote `status`. The tick's time is its
/// newest recommendation (each tick that recommends records one) or its newest
/// sample, whichever is later. The replicas it started from are the status' current replicas less the
/// change it recorded at that time; its history is the status' without what that
/// tick added (its scale event, one count of failed reads). The smoothing state is
/// already the tick's: smoothing the same sample again at the same time keeps it.
pub fn input_from_status(
    spec: &CustomScalingPolicySpec,
    status: &CustomScalingPolicyStatus,
) -> Result<Rebuilt, String> {
    let history = status.history.clone().unwrap_or_default();
    let newest_sample = status
        .metrics
        .iter()
        .filter_map(|m| m.sample_time.as_ref().map(millis))
        .max();
    let now = history
        .recommendations
        .iter()
        .map(|r| r.time)
        .chain(newest_sample)
        .max()
        .ok_or("the status has no decision yet (no recommendation, no sample): wait for the first tick")?;
    let after = status
        .current_replicas
        .ok_or("the status has no currentReplicas yet: wait for the first tick")?;
    let change: i64 = history
        .scale_events
        .iter()
        .filter(|e| e.time == now)
        .map(|e| e.change)
        .sum();
    let current = u32::try_from(i64::from(after) - change)
        .map_err(|_| format!("status.history: a change of {change} from {after} replicas"))?;
    let samples: Vec<Option<Sample>> = spec
        .metrics
        .iter()
        .map(|metric| {
            let m = status.metrics.iter().find(|m| m.name == metric.name)?;
            Some(Sample {
                value: m.raw?,
                time: m.sample_time.as_ref().map(millis)?,
            })
        })
        .collect();
    let mut before = history;
    before.scale_events.retain(|e| e.time != now);
    if samples.iter().any(Option::is_none) {
        before.consecutive_failures = before.consecutive_failures.saturating_sub(1);
    }
    Ok(Rebuilt {
        now,
        current_replicas: current,
        samples,
        history: before,
        current_nodes: status.node_pool.as_ref().and_then(|p| p.current_nodes),
    })
}

fn cluster(args: &ExplainArgs, name: &str) -> anyhow::Result<ExitCode> {
    let runtime = super::run::runtime()?;
    let policy: CustomScalingPolicy = runtime.block_on(async {
        let client = super::run::client(&args.cluster, "explain").await?;
        let api: kube::Api<CustomScalingPolicy> = kube::Api::namespaced(client, &args.namespace);
        api.get(name)
            .await
            .with_context(|| format!("reading CustomScalingPolicy {}/{name}", args.namespace))
    })?;
    let status = policy.status.clone().unwrap_or_default();
    let rebuilt = input_from_status(&policy.spec, &status)
        .map_err(|e| anyhow!("{}: {e}", name_of(&policy)))?;
    let input = Input {
        spec: &policy.spec,
        now: rebuilt.now,
        current_replicas: rebuilt.current_replicas,
        samples: &rebuilt.samples,
        history: &rebuilt.history,
        current_nodes: rebuilt.current_nodes,
        pod_requests: None,
    };
    let decision = engine::decide(&input);
    let at = jiff::Timestamp::from_millisecond(rebuilt.now)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| rebuilt.now.to_string());
    println!(
        "{}, last tick at {at} (rebuilt from its status):\n",
        name_of(&policy)
    );
    print!("{}", engine::explain::explain(&input, &decision));
    if status.observed_generation != policy.metadata.generation {
        println!(
            "\nNote: the status is from generation {:?}; the spec is now at {:?}, explained as it is now.",
            status.observed_generation, policy.metadata.generation
        );
    }
    if let Some(recorded) = status.desired_replicas
        && recorded != decision.desired_replicas
    {
        println!(
            "\nNote: the operator recorded {recorded} desired replicas; decided again from the status this gives {} (the status rounds values to 6 significant digits and keeps no pod requests).",
            decision.desired_replicas
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MetricStatus;
    use crate::engine::Decision;

    fn spec() -> CustomScalingPolicySpec {
        serde_yaml::from_str(
            "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
minReplicas: 1
maxReplicas: 30
smoothing: {halfLife: 30s}
fallback: {failureThreshold: 2, replicas: 3}
metrics:
  - name: a
    query: x
    target: {type: Value, value: '100'}
  - name: b
    query: y
    target: {type: AverageValue, averageValue: '10'}
",
        )
        .expect("spec")
    }

    fn time(ms: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_millisecond(ms).expect("time"),
        )
    }

    /// What the controller writes after a tick (src/controller/report.rs), for the
    /// fields explain reads.
    fn status_after(decision: &Decision) -> CustomScalingPolicyStatus {
        CustomScalingPolicyStatus {
            current_replicas: Some(decision.desired_replicas),
            desired_replicas: Some(decision.desired_replicas),
            metrics: decision
                .metrics
                .iter()
                .map(|m| MetricStatus {
                    name: m.name.clone(),
                    raw: m.raw,
                    smoothed: m.smoothed,
                    forecast: m.forecast,
                    sample_time: m.sample_time.map(time),
                })
                .collect(),
            history: Some(decision.history.clone()),
            ..Default::default()
        }
    }

    /// A tick decided again from the status it left gives the same decision, over
    /// runs with scale-ups, windows, rate limits, missing data and fallback.
    #[test]
    fn a_tick_rebuilt_from_its_status_decides_the_same() {
        let spec = spec();
        let values: [(Option<f64>, Option<f64>); 12] = [
            (Some(120.0), Some(40.0)),
            (Some(900.0), Some(45.0)),
            (Some(2400.0), Some(300.0)),
            (Some(2500.0), None),
            (None, None),
            (None, None),
            (None, None),
            (Some(50.0), Some(5.0)),
            (Some(40.0), Some(4.0)),
            (Some(30.0), Some(3.0)),
            (Some(3000.0), Some(20.0)),
            (Some(10.0), Some(1.0)),
        ];
        let mut history = History::default();
        let mut current = 2;
        let mut checked = 0;
        for (i, (a, b)) in values.iter().enumerate() {
            let now = 1_700_000_000_000 + i as i64 * 15_000;
            let samples: Vec<Option<Sample>> = [a, b]
                .iter()
                .map(|v| {
                    v.map(|value| Sample {
                        value,
                        time: now - 2_000,
                    })
                })
                .collect();
            let input = Input {
                spec: &spec,
                now,
                current_replicas: current,
                samples: &samples,
                history: &history,
                current_nodes: None,
                pod_requests: None,
            };
            let decision = engine::decide(&input);
            let status = status_after(&decision);
            if decision.recommended.is_some() {
                let rebuilt = input_from_status(&spec, &status).expect("rebuilt");
                assert_eq!(rebuilt.now, now, "tick {i}");
                assert_eq!(rebuilt.current_replicas, current, "tick {i}");
                let again = engine::decide(&Input {
                    spec: &spec,
                    now: rebuilt.now,
                    current_replicas: rebuilt.current_replicas,
                    samples: &rebuilt.samples,
                    history: &rebuilt.history,
                    current_nodes: None,
                    pod_requests: None,
                });
                assert_eq!(
                    again.desired_replicas, decision.desired_replicas,
                    "tick {i}"
                );
                assert_eq!(again.reason, decision.reason, "tick {i}");
                assert_eq!(again.data, decision.data, "tick {i}");
                checked += 1;
            }
            current = decision.desired_replicas;
            history = decision.history;
        }
        assert!(checked >= 8, "{checked} ticks checked");
    }

    #[test]
    fn a_status_without_a_tick_is_a_clear_error() {
        let err = input_from_status(&spec(), &CustomScalingPolicyStatus::default()).unwrap_err();
        assert!(err.contains("no decision yet"), "{err}");
    }
}

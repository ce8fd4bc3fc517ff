//! `ballast simulate`: replay a metric series (CSV or a Prometheus range) through a
//! policy with the real engine, and print or plot the replicas it would have set.
//! Each row is one poll; the replicas decided at a row are in effect at the next.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};

use super::lint::read_documents;
use super::plot::SimRow;
use super::series::{Row, Series, parse_cli_time, parse_csv, shift_numeric};
use super::{OutputFormat, SimulateArgs};
use crate::api::documents::lint_document;
use crate::api::history::History;
use crate::api::validation::{self, Severity};
use crate::api::{CustomScalingPolicy, CustomScalingPolicySpec, Duration, Quantity};
use crate::engine::{self, Input, PodRequests, Sample};

/// Load the first `CustomScalingPolicy` of a file, refusing one that does not validate.
pub fn load_policy(path: &Path) -> anyhow::Result<CustomScalingPolicy> {
    let documents = read_documents(path)?;
    for doc in documents {
        let Some(findings) = lint_document(&doc.value, None) else {
            continue;
        };
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.problem.severity == Severity::Error)
            .map(|f| format!("  {}", f.problem))
            .collect();
        if !errors.is_empty() {
            bail!(
                "{} (document {}): the policy does not validate:\n{}",
                path.display(),
                doc.index,
                errors.join("\n")
            );
        }
        if doc.value.get("kind").and_then(|k| k.as_str()) != Some("CustomScalingPolicy") {
            continue;
        }
        let policy = validation::check_policy(&doc.value).object.ok_or_else(|| {
            anyhow!(
                "{} (document {}): the policy does not decode",
                path.display(),
                doc.index
            )
        })?;
        return Ok(policy);
    }
    bail!("{}: no CustomScalingPolicy found", path.display())
}

/// Parse `cpu=500m,memory=1Gi`.
pub fn parse_pod_requests(text: &str) -> anyhow::Result<PodRequests> {
    let mut requests = PodRequests::default();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            anyhow!("--pod-requests: {part:?} is not key=value (e.g. cpu=500m,memory=1Gi)")
        })?;
        let q: Quantity = value
            .trim()
            .parse()
            .with_context(|| format!("--pod-requests: {}", key.trim()))?;
        match key.trim() {
            "cpu" => requests.cpu = Some(q.value()),
            "memory" => requests.memory = Some(q.value()),
            other => bail!("--pod-requests: unknown resource {other:?} (use cpu and memory)"),
        }
    }
    Ok(requests)
}

/// Map the series' columns onto the policy's metrics, refusing unknown or absent ones.
pub fn column_order(
    file: &str,
    spec: &CustomScalingPolicySpec,
    series: &Series,
) -> anyhow::Result<Vec<usize>> {
    for column in &series.metrics {
        if !spec.metrics.iter().any(|m| &m.name == column) {
            let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "{file}: column {column:?} is not a metric of the policy (its metrics: {})",
                names.join(", ")
            );
        }
    }
    spec.metrics
        .iter()
        .map(|m| {
            series
                .metrics
                .iter()
                .position(|c| c == &m.name)
                .ok_or_else(|| anyhow!("{file}: no column for the policy's metric {:?}", m.name))
        })
        .collect()
}

/// Run the engine over the rows. `progress(done, total)` is called now and then.
pub fn simulate(
    spec: &CustomScalingPolicySpec,
    series: &Series,
    columns: &[usize],
    initial_replicas: u32,
    initial_nodes: Option<u32>,
    pod_requests: Option<PodRequests>,
    mut progress: impl FnMut(usize, usize),
) -> Vec<SimRow> {
    let mut out = Vec::with_capacity(series.rows.len());
    let total = series.rows.len();
    let every = (total / 10).max(1);
    replay(
        spec,
        series,
        columns,
        initial_replicas,
        initial_nodes,
        pod_requests,
        |i, input, decision| {
            let row = &series.rows[i];
            out.push(SimRow {
                label: row.label.clone(),
                time: row.time,
                metrics: decision
                    .metrics
                    .iter()
                    .map(|m| (m.raw, m.smoothed))
                    .collect(),
                forecasts: decision.metrics.iter().map(|m| m.forecast).collect(),
                replicas_before: input.current_replicas,
                recommended: decision.recommended,
                replicas: decision.desired_replicas,
                nodes: decision.nodes.as_ref().map(|n| n.desired),
                reason: decision.reason.as_str(),
                schedules: decision.schedules.iter().map(|a| a.name.clone()).collect(),
            });
            if (i + 1) % every == 0 {
                progress(i + 1, total);
            }
        },
    );
    out
}

/// Run the engine over the rows, each decision applied before the next row;
/// `on_tick(row, input, decision)` sees each one.
pub fn replay(
    spec: &CustomScalingPolicySpec,
    series: &Series,
    columns: &[usize],
    initial_replicas: u32,
    initial_nodes: Option<u32>,
    pod_requests: Option<PodRequests>,
    mut on_tick: impl FnMut(usize, &Input<'_>, &engine::Decision),
) {
    let mut history = History::default();
    let mut replicas = initial_replicas;
    let mut nodes = initial_nodes;
    let mut samples: Vec<Option<Sample>> = Vec::with_capacity(columns.len());
    for (i, row) in series.rows.iter().enumerate() {
        samples.clear();
        samples.extend(columns.iter().map(|&c| {
            row.values[c].map(|value| Sample {
                value,
                time: row.time,
            })
        }));
        let input = Input {
            spec,
            now: row.time,
            current_replicas: replicas,
            samples: &samples,
            history: &history,
            current_nodes: nodes,
            pod_requests,
        };
        let decision = engine::decide(&input);
        on_tick(i, &input, &decision);
        replicas = decision.desired_replicas;
        nodes = decision.nodes.as_ref().map(|n| n.desired).or(nodes);
        history = decision.history;
    }
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(v) if v == v.trunc() && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The CSV header and rows, columns as documented.
pub fn to_csv(spec: &CustomScalingPolicySpec, rows: &[SimRow]) -> String {
    let with_nodes = spec.node_pool.is_some();
    let mut out = String::from("time");
    let with_forecast = spec
        .smoothing
        .as_ref()
        .is_some_and(|s| s.lookahead.is_some());
    for m in &spec.metrics {
        let _ = write!(out, ",{0}_raw,{0}_smoothed", m.name);
        if with_forecast {
            let _ = write!(out, ",{}_forecast", m.name);
        }
    }
    out.push_str(",recommended,replicas");
    if with_nodes {
        out.push_str(",nodes");
    }
    let with_schedules = !spec.schedules.is_empty();
    if with_schedules {
        out.push_str(",schedules");
    }
    out.push_str(",reason\n");
    for r in rows {
        out.push_str(&r.label);
        for (i, (raw, smoothed)) in r.metrics.iter().enumerate() {
            let _ = write!(out, ",{},{}", fmt_value(*raw), fmt_value(*smoothed));
            if with_forecast {
                let _ = write!(out, ",{}", fmt_value(r.forecasts.get(i).copied().flatten()));
            }
        }
        let _ = write!(out, ",{},{}", opt(r.recommended), r.replicas);
        if with_nodes {
            let _ = write!(out, ",{}", opt(r.nodes));
        }
        if with_schedules {
            // Several names joined by `+`: the CSV has no quoting.
            let _ = write!(out, ",{}", r.schedules.join("+"));
        }
        let _ = writeln!(out, ",{}", r.reason);
    }
    out
}

fn to_table(spec: &CustomScalingPolicySpec, rows: &[SimRow]) -> String {
    let csv = to_csv(spec, rows);
    let grid: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let columns = grid.first().map_or(0, |h| h.len());
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            grid.iter()
                .map(|r| r.get(c).map_or(0, |s| s.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &grid {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let cell = if cell.is_empty() { "-" } else { cell };
                if c + 1 == row.len() {
                    cell.to_string()
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn to_json(spec: &CustomScalingPolicySpec, rows: &[SimRow]) -> anyhow::Result<String> {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let metrics: serde_json::Map<String, serde_json::Value> = spec
                .metrics
                .iter()
                .zip(&r.metrics)
                .zip(&r.forecasts)
                .map(|((m, (raw, smoothed)), forecast)| {
                    (
                        m.name.clone(),
                        serde_json::json!({"raw": raw, "smoothed": smoothed, "forecast": forecast}),
                    )
                })
                .collect();
            serde_json::json!({
                "time": r.label,
                "metrics": metrics,
                "recommended": r.recommended,
                "replicas": r.replicas,
                "nodes": r.nodes,
                "schedules": r.schedules,
                "reason": r.reason,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&items)? + "\n")
}

/// Replica-seconds a run spent below and above the capacity its load needed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub short: f64,
    pub spare: f64,
}

/// How well a run's replicas matched its load, when every metric is an
/// `AverageValue` (a per-replica capacity): at each row the load needs
/// `ceil(raw / averageValue)` replicas (the largest over the metrics; rows with a
/// missing value are left out), and the replicas ready are those in effect, but an
/// increase only `ready_delay_ms` after the row that decided it (pods, or nodes,
/// take that long); a decrease is immediate. Each row counts until the next.
pub fn capacity(
    spec: &CustomScalingPolicySpec,
    rows: &[SimRow],
    ready_delay_ms: i64,
) -> Option<Capacity> {
    use crate::api::policy::TargetType;
    let targets: Vec<f64> = spec
        .metrics
        .iter()
        .map(|m| match m.target.type_ {
            TargetType::AverageValue => m.target.quantity().map(|q| q.value()),
            TargetType::Value => None,
        })
        .collect::<Option<Vec<f64>>>()?;
    if rows.len() < 2 || targets.iter().any(|t| t.is_nan() || *t <= 0.0) {
        return None;
    }
    let (mut short, mut spare) = (0.0, 0.0);
    for (i, row) in rows.iter().enumerate() {
        let Some(next) = rows.get(i + 1) else { break };
        let dt = (next.time - row.time) as f64 / 1000.0;
        let needed = row
            .metrics
            .iter()
            .zip(&targets)
            .map(|((raw, _), t)| raw.map(|v| (v / t).ceil().max(0.0)))
            .collect::<Option<Vec<f64>>>()
            .and_then(|v| v.into_iter().reduce(f64::max));
        let Some(needed) = needed else { continue };
        // Ready: what was decided by `ready_delay` ago, and never more than what
        // is in effect now.
        let decided_by = row.time - ready_delay_ms;
        let earlier = rows[..i]
            .iter()
            .rev()
            .find(|r| r.time <= decided_by)
            .map_or(rows[0].replicas_before, |r| r.replicas);
        let ready = f64::from(row.replicas_before.min(earlier));
        short += (needed - ready).max(0.0) * dt;
        spare += (ready - needed).max(0.0) * dt;
    }
    Some(Capacity { short, spare })
}

/// Read the series from Prometheus: one range query per metric, aligned on the steps.
fn series_from_prometheus(
    source: &super::source::SourceArgs,
    spec: &CustomScalingPolicySpec,
    from: &str,
    to: &str,
    step: Option<&str>,
) -> anyhow::Result<Series> {
    let now = jiff::Timestamp::now().as_second();
    let start = parse_cli_time(from, now).map_err(|e| anyhow!("--from: {e}"))?;
    let end = parse_cli_time(to, now).map_err(|e| anyhow!("--to: {e}"))?;
    if end <= start {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let step = match step {
        Some(s) => s.parse::<Duration>().map_err(|e| anyhow!("--step: {e}"))?,
        None => spec.poll_interval,
    };
    let step_secs = (step.as_millis() / 1000) as i64;
    if step_secs < 1 {
        bail!("--step must be at least 1s");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let steps = ((end - start) / step_secs + 1) as usize;
    // One row per step is held in memory: refuse ranges that would not fit sensibly.
    const MAX_STEPS: usize = 2_000_000;
    if steps > MAX_STEPS {
        bail!(
            "--from/--to/--step make {steps} polls (at most {MAX_STEPS}); use a larger --step or a shorter range"
        );
    }
    let connected = source.connect(&runtime, std::time::Duration::from_secs(60))?;
    let (client, address) = (connected.client, connected.label);
    let mut rows: Vec<Row> = (0..steps)
        .map(|i| {
            let t = start + i as i64 * step_secs;
            let label = jiff::Timestamp::from_second(t)
                .map(|ts| ts.to_string())
                .unwrap_or_else(|_| t.to_string());
            Row {
                label,
                time: t * 1000,
                values: vec![None; spec.metrics.len()],
            }
        })
        .collect();
    for (i, metric) in spec.metrics.iter().enumerate() {
        eprintln!(
            "querying {address} for {} ({steps} points): {}",
            metric.name, metric.query
        );
        let points = runtime
            .block_on(
                client.query_range(&metric.query, start, end, step_secs, |done, total| {
                    eprintln!("  {}: {done}/{total} points", metric.name);
                }),
            )
            .with_context(|| format!("metric {:?}", metric.name))?;
        for (time, value) in points {
            let index = (time / 1000 - start) / step_secs;
            if let Some(row) = usize::try_from(index).ok().and_then(|i| rows.get_mut(i)) {
                row.values[i] = Some(value);
            }
        }
    }
    Ok(Series {
        metrics: spec.metrics.iter().map(|m| m.name.clone()).collect(),
        rows,
    })
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(&args.policy)?;
    let spec = &policy.spec;
    let name = policy
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "policy".into());
    let (series, file) = match (&args.series, args.source.is_set()) {
        (Some(path), _) => {
            let file = path.display().to_string();
            let text = fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
            let mut series = parse_csv(&file, &text)?;
            shift_numeric(&mut series, args.start.as_millisecond());
            (series, file)
        }
        (None, true) => {
            let (Some(from), Some(to)) = (&args.from, &args.to) else {
                bail!("--prometheus and --source need --from and --to");
            };
            let label = match (&args.source.source, &args.source.prometheus) {
                (Some(name), _) => format!("source {name}"),
                (None, Some(address)) => address.clone(),
                (None, None) => "prometheus".into(),
            };
            (
                series_from_prometheus(&args.source, spec, from, to, args.step.as_deref())?,
                label,
            )
        }
        (None, false) => bail!("give --series FILE, --prometheus URL or --source NAME"),
    };
    let columns = column_order(&file, spec, &series)?;
    let pod_requests = args
        .pod_requests
        .as_deref()
        .map(parse_pod_requests)
        .transpose()?;
    let initial_nodes = match (&spec.node_pool, args.initial_nodes) {
        (None, _) => None,
        (Some(_), Some(n)) => Some(n),
        (Some(pool), None) => engine::nodepool::pods_per_node(pool, pod_requests)
            .ok()
            .map(|per| engine::nodepool::nodes_needed(pool, args.initial_replicas, per)),
    };
    let long = series.rows.len() > 20_000;
    let rows = simulate(
        spec,
        &series,
        &columns,
        args.initial_replicas,
        initial_nodes,
        pod_requests,
        |done, total| {
            if long {
                eprintln!("simulated {done}/{total} polls");
            }
        },
    );
    let text = match args.output {
        OutputFormat::Csv => to_csv(spec, &rows),
        OutputFormat::Table => to_table(spec, &rows),
        OutputFormat::Json => to_json(spec, &rows)?,
    };
    print!("{text}");
    let delay = args.ready_delay.map_or(0, |d| d.as_millis() as i64);
    if let Some(c) = capacity(spec, &rows, delay) {
        eprintln!(
            "capacity against need (needed = ceil(raw / averageValue), the largest over the metrics; new replicas ready {}s after the decision): {:.0} replica-seconds short, {:.0} replica-seconds spare",
            delay / 1000,
            c.short,
            c.spare
        );
    }
    if let Some(path) = &args.plot {
        let title = format!("ballast simulate: {name} over {file}");
        super::plot::draw(path, &title, spec, &rows)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

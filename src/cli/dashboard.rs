//! `ballast dashboard`: draw the time-series panels of a Grafana dashboard JSON
//! (ours: `deploy/grafana/ballast.json`) from a real Prometheus into one SVG, the
//! same PromQL with the template variables filled in. For docs, incident notes and
//! CI artifacts: what Grafana would show, without Grafana.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

use super::plot::PALETTE;
use super::series::parse_cli_time;
use crate::api::Duration;
use crate::metrics::client::Labels;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub source: super::source::SourceArgs,
    /// Grafana dashboard JSON.
    #[arg(
        long,
        default_value = "deploy/grafana/ballast.json",
        value_name = "FILE"
    )]
    pub dashboard: PathBuf,
    /// A template variable, e.g. `--var namespace=shop` (repeat; unset ones match everything).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Start: RFC 3339, Unix seconds, `now` or `now-30m`.
    #[arg(long, default_value = "now-1h")]
    pub from: String,
    /// End (as --from; `now`).
    #[arg(long, default_value = "now")]
    pub to: String,
    /// Resolution of the range queries.
    #[arg(long, default_value = "5s")]
    pub step: Duration,
    /// The SVG to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// One query of a panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub expr: String,
    pub legend: Option<String>,
}

/// A time-series panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub unit: Option<String>,
    pub targets: Vec<Target>,
}

/// The time-series panels of a dashboard, in order. Other panel types (stat,
/// text) have no time axis and are skipped.
pub fn panels(dashboard: &Value) -> Result<Vec<Panel>, String> {
    let list = dashboard
        .get("panels")
        .and_then(Value::as_array)
        .ok_or("the dashboard has no `panels` array")?;
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        if p.get("type").and_then(Value::as_str) != Some("timeseries") {
            continue;
        }
        let title = p
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("panels[{i}] has no title"))?
            .to_string();
        let targets = p
            .get("targets")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("panels[{i}] ({title}) has no targets"))?
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let expr = t
                    .get("expr")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("panels[{i}].targets[{j}] ({title}) has no expr"))?;
                Ok(Target {
                    expr: expr.to_string(),
                    legend: t
                        .get("legendFormat")
                        .and_then(Value::as_str)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let unit = p
            .pointer("/fieldConfig/defaults/unit")
            .and_then(Value::as_str)
            .map(String::from);
        out.push(Panel {
            title,
            unit,
            targets,
        });
    }
    Ok(out)
}

/// Parse `--var NAME=VALUE` flags.
pub fn parse_vars(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((name, value))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok((name.to_string(), value.to_string()))
            }
            _ => Err(format!(
                "--var {f:?}: expected NAME=VALUE, e.g. namespace=shop"
            )),
        })
        .collect()
}

/// Fill in Grafana template variables: `$name`, `${name}`, `[[name]]`. Unset
/// variables become `.*` (Grafana's "All" for regex matchers); `$__rate_interval`
/// and `$__interval` become a window of four steps, at least one minute.
pub fn substitute(expr: &str, vars: &BTreeMap<String, String>, step_secs: i64) -> String {
    let interval = format!("{}s", (4 * step_secs).max(60));
    let value = |name: &str| -> String {
        match name {
            "__rate_interval" | "__interval" => interval.clone(),
            _ => vars.get(name).cloned().unwrap_or_else(|| ".*".into()),
        }
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let name_len = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        if let Some(braced) = tail.strip_prefix("${")
            && let Some(end) = braced.find('}')
        {
            out.push_str(&value(&braced[..end]));
            rest = &braced[end + 1..];
        } else if let Some(bare) = tail.strip_prefix('$')
            && name_len(bare) > 0
        {
            let n = name_len(bare);
            out.push_str(&value(&bare[..n]));
            rest = &bare[n..];
        } else if let Some(old) = tail.strip_prefix("[[")
            && let Some(end) = old.find("]]")
            && name_len(old) == end
            && end > 0
        {
            out.push_str(&value(&old[..end]));
            rest = &old[end + 2..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A series' name in the legend: the target's `legendFormat` with `{{label}}`
/// filled in (a label the series lacks is empty, as in Grafana), else the labels
/// that are not the metric name.
pub fn legend(format: Option<&str>, labels: &Labels) -> String {
    match format {
        Some(f) => {
            let mut out = String::new();
            let mut rest = f;
            while let Some(open) = rest.find("{{") {
                let Some(close) = rest[open + 2..].find("}}") else {
                    break;
                };
                out.push_str(&rest[..open]);
                let name = rest[open + 2..open + 2 + close].trim();
                out.push_str(labels.get(name).map_or("", String::as_str));
                rest = &rest[open + 2 + close + 2..];
            }
            out.push_str(rest);
            let out = out.trim().to_string();
            if out.is_empty() { "value".into() } else { out }
        }
        None => {
            let parts: Vec<String> = labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let name = labels.get("__name__").cloned().unwrap_or_default();
            match (name.is_empty(), parts.is_empty()) {
                (_, true) if !name.is_empty() => name,
                (_, true) => "value".into(),
                (true, false) => parts.join(", "),
                (false, false) => format!("{name}{{{}}}", parts.join(", ")),
            }
        }
    }
}

/// A panel with its data: legend and `(seconds from start, value)` per series.
struct Drawn {
    panel: Panel,
    series: Vec<(String, Vec<(f64, f64)>)>,
    error: Option<String>,
}

/// At most this many series are drawn per panel query.
const MAX_SERIES: usize = 12;

fn draw(path: &Path, drawn: &[Drawn], span: f64, subtitle: &str) -> anyhow::Result<()> {
    let columns = 2usize;
    let rows = drawn.len().div_ceil(columns).max(1);
    let (width, panel_height) = (1400u32, 320u32);
    let height = 60 + panel_height * rows as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    let (header, body) = root.split_vertically(60);
    header
        .draw_text(
            subtitle,
            &("sans-serif", 18).into_font().color(&BLACK),
            (20, 20),
        )
        .map_err(|e| anyhow!("drawing: {e}"))?;
    let areas = body.split_evenly((rows, columns));
    for (area, d) in areas.iter().zip(drawn) {
        let mut y_max = f64::MIN;
        let mut y_min = f64::MAX;
        for (_, points) in &d.series {
            for (_, v) in points {
                if v.is_finite() {
                    y_max = y_max.max(*v);
                    y_min = y_min.min(*v);
                }
            }
        }
        let note = match (&d.error, d.series.is_empty()) {
            (Some(e), _) => Some(format!("query failed: {e}")),
            (None, true) => Some("no data".to_string()),
            _ => None,
        };
        if y_max < y_min {
            (y_min, y_max) = (0.0, 1.0);
        }
        let y_min = y_min.min(0.0);
        let y_max = if y_max > y_min {
            y_max + (y_max - y_min) * 0.1
        } else {
            y_min + 1.0
        };
        // Grafana's "short" and "none" are plain numbers.
        let caption = match d.panel.unit.as_deref() {
            Some(u) if u != "short" && u != "none" => format!("{} ({u})", d.panel.title),
            _ => d.panel.title.clone(),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..span.max(1.0), y_min..y_max)
            .map_err(|e| anyhow!("drawing: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| anyhow!("drawing: {e}"))?;
        if let Some(note) = note {
            let short: String = note.chars().take(90).collect();
            area.draw_text(
                &short,
                &("sans-serif", 14).into_font().color(&RED),
                (70, 140),
            )
            .map_err(|e| anyhow!("drawing: {e}"))?;
        }
        for (i, (name, points)) in d.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied().filter(|(_, v)| v.is_finite()),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow!("drawing: {e}"))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        if !d.series.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 11))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| anyhow!("drawing: {e}"))?;
        }
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(args: &DashboardArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.dashboard)
        .with_context(|| format!("reading {}", args.dashboard.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.dashboard.display()))?;
    let panels = panels(&json).map_err(|e| anyhow!("{}: {e}", args.dashboard.display()))?;
    if panels.is_empty() {
        bail!(
            "{}: no time-series panels to draw",
            args.dashboard.display()
        );
    }
    let vars = parse_vars(&args.vars).map_err(|e| anyhow!(e))?;
    let now = jiff::Timestamp::now().as_second();
    let start = parse_cli_time(&args.from, now).map_err(|e| anyhow!("--from: {e}"))?;
    let end = parse_cli_time(&args.to, now).map_err(|e| anyhow!("--to: {e}"))?;
    if end <= start {
        bail!("--to ({}) must be after --from ({})", args.to, args.from);
    }
    let step_secs = (args.step.as_millis() / 1000) as i64;
    if step_secs < 1 {
        bail!("--step must be at least 1s");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = args
        .source
        .connect(&runtime, std::time::Duration::from_secs(60))?
        .client;
    let mut drawn = Vec::new();
    let total = panels.len();
    for (i, panel) in panels.into_iter().enumerate() {
        eprintln!("panel {}/{total}: {}", i + 1, panel.title);
        let mut series = Vec::new();
        let mut error = None;
        for target in &panel.targets {
            let expr = substitute(&target.expr, &vars, step_secs);
            match runtime.block_on(client.query_range_series(
                &expr,
                start,
                end,
                step_secs,
                MAX_SERIES,
                |_, _| {},
            )) {
                Ok(found) => series.extend(found.into_iter().map(|(labels, points)| {
                    (
                        legend(target.legend.as_deref(), &labels),
                        points
                            .into_iter()
                            .map(|(ms, v)| ((ms / 1000 - start) as f64, v))
                            .collect::<Vec<_>>(),
                    )
                })),
                Err(e) => error = Some(e.to_string()),
            }
        }
        drawn.push(Drawn {
            panel,
            series,
            error,
        });
    }
    let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let subtitle = format!(
        "{} — {} to {} (step {}s){}",
        json.get("title")
            .and_then(Value::as_str)
            .unwrap_or("dashboard"),
        jiff::Timestamp::from_second(start)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        jiff::Timestamp::from_second(end)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        step_secs,
        if shown.is_empty() {
            String::new()
        } else {
            format!(", {}", shown.join(", "))
        }
    );
    draw(&args.out, &drawn, (end - start) as f64, &subtitle)?;
    let empty: Vec<&str> = drawn
        .iter()
        .filter(|d| d.series.is_empty())
        .map(|d| d.panel.title.as_str())
        .collect();
    eprintln!("wrote {} ({} panels)", args.out.display(), drawn.len());
    if !empty.is_empty() {
        eprintln!("no data in: {}", empty.join("; "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_are_filled_in_all_three_syntaxes() {
        let v = vars(&[("namespace", "shop"), ("policy", "cache")]);
        assert_eq!(
            substitute(
                r#"x{namespace=~"$namespace", policy=~"${policy}", a="[[namespace]]"}"#,
                &v,
                5
            ),
            r#"x{namespace=~"shop", policy=~"cache", a="shop"}"#
        );
        assert_eq!(
            substitute(r#"x{p=~"$policy"}"#, &vars(&[]), 5),
            r#"x{p=~".*"}"#,
            "unset: All"
        );
        assert_eq!(
            substitute("rate(x[$__rate_interval])", &v, 5),
            "rate(x[60s])"
        );
        assert_eq!(substitute("rate(x[$__interval])", &v, 30), "rate(x[120s])");
        assert_eq!(
            substitute("x[5m] $ [[ ]] ${", &v, 5),
            "x[5m] $ [[ ]] ${",
            "not variables"
        );
    }

    #[test]
    fn our_dashboard_has_timeseries_panels_and_they_all_parse_once_filled() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/ballast.json"
        ))
        .unwrap();
        let found = panels(&serde_json::from_str(&text).unwrap()).unwrap();
        assert!(found.len() >= 6, "{found:?}");
        for p in &found {
            for t in &p.targets {
                let q = substitute(&t.expr, &vars(&[("namespace", "shop")]), 5);
                assert!(
                    crate::api::validation::check_promql(&q).is_ok(),
                    "{}: {q}",
                    p.title
                );
            }
        }
    }

    #[test]
    fn malformed_dashboards_say_where() {
        assert!(panels(&json!({})).unwrap_err().contains("no `panels`"));
        let e = panels(&json!({"panels": [{"type": "timeseries", "title": "T", "targets": [{}]}]}))
            .unwrap_err();
        assert!(e.contains("panels[0].targets[0] (T) has no expr"), "{e}");
        let e = panels(&json!({"panels": [{"type": "timeseries"}]})).unwrap_err();
        assert!(e.contains("panels[0] has no title"), "{e}");
        let skipped = panels(&json!({"panels": [{"type": "stat", "title": "S"}]})).unwrap();
        assert!(skipped.is_empty());
    }

    #[test]
    fn var_flags_are_checked() {
        assert_eq!(parse_vars(&["a=b=c".into()]).unwrap()["a"], "b=c");
        assert!(
            parse_vars(&["novalue".into()])
                .unwrap_err()
                .contains("NAME=VALUE")
        );
        assert!(parse_vars(&["bad-name=x".into()]).is_err());
        assert!(parse_vars(&["=x".into()]).is_err());
    }

    #[test]
    fn legends_use_the_format_or_the_labels() {
        let labels: Labels = [("__name__", "up"), ("job", "ballast"), ("source", "prom")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            legend(Some("{{source}} via {{job}}"), &labels),
            "prom via ballast"
        );
        assert_eq!(legend(None, &labels), "up{job=ballast, source=prom}");
        let bare: Labels = Labels::new();
        assert_eq!(legend(None, &bare), "value");
        let name_only: Labels = [("__name__".to_string(), "up".to_string())].into();
        assert_eq!(legend(None, &name_only), "up");
        // A label the series lacks is empty, never a literal `{{category}}`.
        assert_eq!(legend(Some("{{category}}"), &bare), "value");
        assert_eq!(legend(Some("{{source}} {{category}}"), &labels), "prom");
        assert_eq!(legend(Some("{{ job }}: {{"), &labels), "ballast: {{");
    }
}

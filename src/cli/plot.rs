//! `ballast simulate --plot`: an SVG of a run. Top: the metric(s) against the target
//! (raw thin, smoothed thick, failed reads marked in red). Bottom: replicas, and
//! nodes when a node pool is set, with the min/max bounds.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::api::policy::{CustomScalingPolicySpec, TargetType};

/// One simulated poll: what `simulate` computes and the plot draws (defined
/// here so the plot does not depend on the simulator).
#[derive(Clone, Debug, PartialEq)]
pub struct SimRow {
    pub label: String,
    pub time: i64,
    /// Per metric: (raw, smoothed).
    pub metrics: Vec<(Option<f64>, Option<f64>)>,
    /// Per metric: the forecast used, with `smoothing.lookahead`.
    pub forecasts: Vec<Option<f64>>,
    /// Replicas in effect when this row was read.
    pub replicas_before: u32,
    pub recommended: Option<u32>,
    /// Replicas decided at this row.
    pub replicas: u32,
    pub nodes: Option<u32>,
    pub reason: &'static str,
    /// The `spec.schedules` windows active at this row.
    pub schedules: Vec<String>,
}

/// The shade of an active schedule window.
const SCHEDULE: RGBColor = RGBColor(255, 236, 179);

/// Line colours (matplotlib's tab10, without its red, kept for failures).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
];
const MISSING: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(120, 120, 120);

/// Draw `rows` of a run of `spec` named `title` into `path`.
pub fn draw(
    path: &Path,
    title: &str,
    spec: &CustomScalingPolicySpec,
    rows: &[SimRow],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Err(anyhow!("nothing to plot: the run has no rows"));
    }
    let t0 = rows[0].time;
    let span_secs = (rows[rows.len() - 1].time - t0) as f64 / 1000.0;
    let (unit, scale) = if span_secs > 2.0 * 3600.0 {
        ("h", 3_600_000.0)
    } else if span_secs > 600.0 {
        ("min", 60_000.0)
    } else {
        ("s", 1000.0)
    };
    let x = |time: i64| (time - t0) as f64 / scale;
    let x_max = x(rows[rows.len() - 1].time).max(1e-9);

    // One metric: absolute values against its target. Several: each as % of target.
    let single = spec.metrics.len() == 1;
    let target_of = |i: usize| spec.metrics[i].target.quantity().map_or(1.0, |q| q.value());
    let metric_y = |i: usize, v: f64| if single { v } else { 100.0 * v / target_of(i) };
    // The line to compare with, at a row (AverageValue targets grow with replicas).
    let target_line = |replicas_in_effect: u32| -> f64 {
        if !single {
            return 100.0;
        }
        match spec.metrics[0].target.type_ {
            TargetType::Value => target_of(0),
            TargetType::AverageValue => target_of(0) * f64::from(replicas_in_effect.max(1)),
        }
    };

    let mut y_max: f64 = 0.0;
    let mut in_effect = Vec::with_capacity(rows.len());
    let mut previous = rows[0].replicas_before;
    for row in rows {
        in_effect.push(previous);
        previous = row.replicas;
    }
    for (row, replicas) in rows.iter().zip(&in_effect) {
        for (i, m) in row.metrics.iter().enumerate() {
            for v in [m.0, m.1].into_iter().flatten() {
                if v.is_finite() {
                    y_max = y_max.max(metric_y(i, v));
                }
            }
        }
        y_max = y_max.max(target_line(*replicas));
    }
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let r_max = rows
        .iter()
        .map(|r| r.replicas.max(r.nodes.unwrap_or(0)).max(r.replicas_before))
        .max()
        .unwrap_or(1)
        .max(
            spec.max_replicas
                .min(rows.iter().map(|r| r.replicas).max().unwrap_or(1) * 2),
        )
        .max(1);
    let r_max = f64::from(r_max) * 1.15;

    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| anyhow!("drawing the title: {e}"))?;
    let (top, bottom) = root.split_vertically(390);

    // --- metrics
    let y_label = if single {
        format!("{} (target {})", spec.metrics[0].name, target_desc(spec))
    } else {
        "metric, % of its target".to_string()
    };
    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .caption("metrics against target", ("sans-serif", 18))
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| anyhow!("drawing the metric chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(format!("time ({unit})"))
        .y_desc(y_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("drawing the metric axes: {e}"))?;
    let target_points: Vec<(f64, f64)> = step_points(
        rows.iter()
            .zip(&in_effect)
            .map(|(r, n)| (x(r.time), target_line(*n))),
    );
    chart
        .draw_series(LineSeries::new(target_points, BLACK.stroke_width(1)))
        .map_err(|e| anyhow!("drawing the target: {e}"))?
        .label(match (single, spec.metrics[0].target.type_) {
            (false, _) => "target (100%)",
            (true, TargetType::Value) => "target",
            (true, TargetType::AverageValue) => "target × replicas in effect",
        })
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    for i in 0..spec.metrics.len() {
        let color = PALETTE[i % PALETTE.len()];
        for segment in segments(rows, |r| r.metrics[i].0.map(|v| metric_y(i, v)), &x) {
            chart
                .draw_series(LineSeries::new(segment, color.mix(0.35).stroke_width(1)))
                .map_err(|e| anyhow!("drawing raw values: {e}"))?;
        }
        let mut first = true;
        for segment in segments(rows, |r| r.metrics[i].1.map(|v| metric_y(i, v)), &x) {
            let series = chart
                .draw_series(LineSeries::new(segment, color.stroke_width(3)))
                .map_err(|e| anyhow!("drawing smoothed values: {e}"))?;
            if first {
                let name = &spec.metrics[i].name;
                series
                    .label(if spec.smoothing.is_some() {
                        format!("{name} (smoothed; raw faint)")
                    } else {
                        name.clone()
                    })
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                first = false;
            }
        }
    }
    // With a lookahead: the forecast each decision used, dashed.
    for i in 0..spec.metrics.len() {
        let color = PALETTE[i % PALETTE.len()];
        let mut first = true;
        for segment in segments(
            rows,
            |r| {
                r.forecasts
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|v| metric_y(i, v))
            },
            &x,
        ) {
            let series = chart
                .draw_series(DashedLineSeries::new(segment, 5, 4, color.stroke_width(2)))
                .map_err(|e| anyhow!("drawing forecasts: {e}"))?;
            if first {
                let name = format!("{} forecast (lookahead)", spec.metrics[i].name);
                series.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                first = false;
            }
        }
    }
    let missing: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.metrics.iter().any(|m| m.0.is_none()))
        .map(|r| (x(r.time), y_max * 0.02))
        .collect();
    if !missing.is_empty() {
        chart
            .draw_series(
                missing
                    .into_iter()
                    .map(|p| Cross::new(p, 5, MISSING.stroke_width(2))),
            )
            .map_err(|e| anyhow!("drawing failed reads: {e}"))?
            .label("failed read")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, MISSING.stroke_width(2)));
    }
    legend(&mut chart)?;

    // --- replicas and nodes
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(
            "replicas decided (in effect from the next poll)",
            ("sans-serif", 18),
        )
        .build_cartesian_2d(0.0..x_max, 0.0..r_max)
        .map_err(|e| anyhow!("drawing the replica chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(format!("time ({unit})"))
        .y_desc("count")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("drawing the replica axes: {e}"))?;
    // Schedule windows, shaded behind the lines: from a row where one is active to
    // the next row.
    let mut first_window = true;
    let mut i = 0;
    while i < rows.len() {
        if rows[i].schedules.is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        while i < rows.len() && !rows[i].schedules.is_empty() {
            i += 1;
        }
        let end = rows.get(i).map_or(x_max, |r| x(r.time));
        let area = chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x(rows[start].time), 0.0), (end, r_max)],
                SCHEDULE.filled(),
            )))
            .map_err(|e| anyhow!("drawing a schedule window: {e}"))?;
        if first_window {
            area.label("schedule window")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], SCHEDULE.filled()));
            first_window = false;
        }
    }
    for (bound, name) in [
        (spec.min_replicas, "minReplicas"),
        (spec.max_replicas, "maxReplicas"),
    ] {
        if f64::from(bound) <= r_max {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, f64::from(bound)), (x_max, f64::from(bound))],
                    6,
                    4,
                    GREY.stroke_width(1),
                ))
                .map_err(|e| anyhow!("drawing {name}: {e}"))?
                .label(format!("{name} {bound}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY));
        }
    }
    let replicas = step_points(rows.iter().map(|r| (x(r.time), f64::from(r.replicas))));
    chart
        .draw_series(LineSeries::new(replicas, PALETTE[0].stroke_width(3)))
        .map_err(|e| anyhow!("drawing replicas: {e}"))?
        .label("replicas")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PALETTE[0].stroke_width(3)));
    if rows.iter().any(|r| r.nodes.is_some()) {
        let nodes = step_points(
            rows.iter()
                .filter_map(|r| r.nodes.map(|n| (x(r.time), f64::from(n)))),
        );
        chart
            .draw_series(LineSeries::new(nodes, PALETTE[1].stroke_width(3)))
            .map_err(|e| anyhow!("drawing nodes: {e}"))?
            .label("nodes")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], PALETTE[1].stroke_width(3))
            });
    }
    legend(&mut chart)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn legend<'a>(chart: &mut Chart<'a, 'a>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .border_style(GREY)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("drawing the legend: {e}"))
}

fn target_desc(spec: &CustomScalingPolicySpec) -> String {
    let m = &spec.metrics[0];
    match (m.target.type_, m.target.quantity()) {
        (TargetType::Value, Some(q)) => format!("{q}"),
        (TargetType::AverageValue, Some(q)) => format!("{q} per replica"),
        _ => "unset".into(),
    }
}

/// Points of a step function: each value holds until the next point.
fn step_points(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((x, prev));
        }
        out.push((x, y));
    }
    out
}

/// Connected runs of present values (a failed read breaks the line).
fn segments(
    rows: &[SimRow],
    value: impl Fn(&SimRow) -> Option<f64>,
    x: &impl Fn(i64) -> f64,
) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![];
    let mut current = vec![];
    for r in rows {
        match value(r).filter(|v| v.is_finite()) {
            Some(v) => current.push((x(r.time), v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

//! Exponential moving average with a half-life, aware of irregular sample spacing:
//! `s = s_prev + (1 - 2^(-Δt/h)) × (x - s_prev)`; the first sample initializes `s`.

/// Smoothed value after a sample `x` at `time`, from the previous state (value, time).
/// A sample not newer than the state leaves it unchanged (out of order or repeated).
pub fn smooth(previous: Option<(f64, i64)>, x: f64, time: i64, half_life_millis: u64) -> f64 {
    let Some((prev, prev_time)) = previous else {
        return x;
    };
    if half_life_millis == 0 || !prev.is_finite() {
        return x;
    }
    // Saturating: a state stamped i64::MIN (from a sample the stale check let through
    // before it saturated too) is simply very old.
    let dt = time.saturating_sub(prev_time);
    if dt <= 0 {
        return prev;
    }
    let alpha = 1.0 - (-(dt as f64) / half_life_millis as f64).exp2();
    let s = prev + alpha * (x - prev);
    // Samples near ±f64::MAX overflow `x - prev`: restart from the sample rather than
    // keep ±Inf or NaN, which the status cannot hold (JSON has no such numbers).
    if s.is_finite() { s } else { x }
}

/// Holt's linear exponential smoothing for irregular spacing: a level and a trend
/// (units per second). From the previous (level, trend, time), the level is first
/// carried along the trend to `time`, then pulled towards `x` with the level's
/// half-life; the trend towards the level's change per second with its own. The
/// first sample starts at (x, 0); a sample not newer than the state leaves it.
pub fn holt(
    previous: Option<(f64, f64, i64)>,
    x: f64,
    time: i64,
    half_life_millis: u64,
    trend_half_life_millis: u64,
) -> (f64, f64) {
    let Some((level, trend, prev_time)) = previous else {
        return (x, 0.0);
    };
    if !level.is_finite() || !trend.is_finite() || half_life_millis == 0 {
        return (x, 0.0);
    }
    let dt = time.saturating_sub(prev_time);
    if dt <= 0 {
        return (level, trend);
    }
    let seconds = dt as f64 / 1000.0;
    let alpha = 1.0 - (-(dt as f64) / half_life_millis as f64).exp2();
    let beta = 1.0 - (-(dt as f64) / trend_half_life_millis.max(1) as f64).exp2();
    let predicted = level + trend * seconds;
    let mut new_level = predicted + alpha * (x - predicted);
    // Carried along a steep fall, the level can overshoot below zero; a metric
    // that is not negative is not smoothed into one that is.
    if x >= 0.0 && new_level < 0.0 {
        new_level = 0.0;
    }
    let new_trend = trend + beta * ((new_level - level) / seconds - trend);
    if new_level.is_finite() && new_trend.is_finite() {
        (new_level, new_trend)
    } else {
        (x, 0.0)
    }
}

/// The value a decision uses with a lookahead: the forecast `level + trend ×
/// lookahead`, at most `limit` × the last raw value (and never below 0 for a
/// non-negative metric); with `up_only` never below the level, so a falling trend
/// does not remove capacity early.
pub fn forecast(
    level: f64,
    trend: f64,
    lookahead_secs: f64,
    raw: f64,
    limit: f64,
    up_only: bool,
) -> f64 {
    let mut f = level + trend * lookahead_secs;
    let cap = raw.max(0.0) * limit.max(1.0);
    if f > cap {
        f = cap;
    }
    if (level >= 0.0 || raw >= 0.0) && f < 0.0 {
        f = 0.0;
    }
    if up_only && f < level {
        f = level;
    }
    if f.is_finite() { f } else { level }
}

#[cfg(test)]
mod tests {

    #[test]
    fn holt_follows_a_ramp_and_its_forecast_leads_it() {
        // x = 10 t (per second), a sample every 15 s.
        let (h, ht) = (30_000, 30_000);
        let mut state = None;
        for i in 0..40 {
            let t = i * 15_000;
            let x = 10.0 * (t as f64 / 1000.0);
            let (level, trend) = holt(state.map(|(l, tr, _)| (l, tr, t - 15_000)), x, t, h, ht);
            state = Some((level, trend, t));
        }
        let (level, trend, t) = state.expect("state");
        let now = 10.0 * (t as f64 / 1000.0);
        assert!((trend - 10.0).abs() < 0.05, "trend {trend}");
        assert!((level - now).abs() < 2.0, "level {level} vs {now}");
        // 60 s ahead: about 600 more; bounded by 2x the last raw value.
        let f = forecast(level, trend, 60.0, now, 2.0, true);
        assert!((f - (now + 600.0)).abs() < 10.0, "forecast {f}");
        assert_eq!(forecast(level, trend, 1e6, now, 2.0, true), 2.0 * now);
        // A falling trend: Up keeps the level, Both follows it (not below 0).
        assert_eq!(forecast(100.0, -5.0, 60.0, 100.0, 2.0, true), 100.0);
        assert_eq!(forecast(100.0, -1.0, 60.0, 100.0, 2.0, false), 40.0);
        assert_eq!(forecast(100.0, -5.0, 60.0, 100.0, 2.0, false), 0.0);
        // Out of order or repeated samples leave the state.
        assert_eq!(holt(Some((5.0, 1.0, 1000)), 99.0, 1000, h, ht), (5.0, 1.0));
        assert_eq!(holt(None, 7.0, 0, h, ht), (7.0, 0.0));
    }
    use super::*;

    #[test]
    fn the_first_sample_initializes_the_average() {
        assert_eq!(smooth(None, 42.0, 0, 30_000), 42.0);
    }

    #[test]
    fn after_one_half_life_the_gap_is_halved() {
        let s = smooth(Some((0.0, 0)), 100.0, 30_000, 30_000);
        assert!((s - 50.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn two_half_steps_equal_one_full_step() {
        // Irregular spacing: two 15 s steps towards a constant equal one 30 s step.
        let a = smooth(Some((0.0, 0)), 100.0, 15_000, 30_000);
        let b = smooth(Some((a, 15_000)), 100.0, 30_000, 30_000);
        let c = smooth(Some((0.0, 0)), 100.0, 30_000, 30_000);
        assert!((b - c).abs() < 1e-9, "{b} vs {c}");
    }

    #[test]
    fn an_average_that_would_overflow_restarts_from_the_sample() {
        // Found by fuzz/engine_decide: 1e308 then -1e308 (both finite samples) made
        // `x - prev` -Inf, and the -Inf was kept in the history written to status.
        assert_eq!(
            smooth(
                Some((1e308, 63_856_420_544_213)),
                -1e308,
                63_905_794_620_818,
                8_145
            ),
            -1e308
        );
        // Tiny alpha times an infinite difference is NaN.
        assert_eq!(
            smooth(Some((f64::MAX, 0)), -f64::MAX, 1, u64::MAX),
            -f64::MAX
        );
    }

    #[test]
    fn a_state_stamped_at_i64_min_is_old_not_an_overflow() {
        // Found by fuzz/engine_decide: `time - prev_time` overflowed.
        assert_eq!(
            smooth(Some((5.0, i64::MIN)), 7.0, 63_856_420_544_897, 30_000),
            7.0
        );
    }

    #[test]
    fn a_sample_from_the_past_is_ignored() {
        assert_eq!(smooth(Some((10.0, 5_000)), 100.0, 1_000, 30_000), 10.0);
    }
}

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

#[cfg(test)]
mod tests {
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

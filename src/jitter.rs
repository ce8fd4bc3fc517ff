//! Deterministic jitter: each policy's tick moves by an offset drawn uniformly from
//! ±jitter × pollInterval, the same for the same (policy uid, tick number), so ticks
//! are reproducible yet many policies never hit Prometheus in lockstep. Used by the
//! tick schedule (`controller::state`) and the metrics sources' backoff
//! (`metrics::breaker`); the engine's decisions do not depend on it.

/// SplitMix64 finalizer: a well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the uid, then mixed with the tick number.
fn hash(uid: &str, tick: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h ^ mix(tick))
}

/// A deterministic number uniform in [0, 1) for (`seed`, `n`).
pub fn unit(seed: &str, n: u64) -> f64 {
    (hash(seed, n) >> 11) as f64 / (1u64 << 53) as f64
}

/// Offset in milliseconds of tick `tick` of the policy `uid`, uniform in
/// `[-jitter × interval, +jitter × interval]`. `jitter` is clamped to [0, 0.5].
pub fn offset_millis(uid: &str, tick: u64, interval_millis: u64, jitter: f64) -> i64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 0.5)
    } else {
        0.0
    };
    let spread = jitter * interval_millis as f64;
    ((2.0 * unit(uid, tick) - 1.0) * spread).round() as i64
}

/// Where in its interval a policy's grid of ticks sits: a deterministic offset
/// uniform in `[0, interval)` per policy uid. Without it every policy seen at
/// the same moment (an operator start, a bulk apply) would tick in the same
/// second of every interval and hit Prometheus in bursts.
pub fn phase_millis(uid: &str, interval_millis: u64) -> i64 {
    (unit(uid, u64::MAX) * interval_millis as f64) as i64
}

/// When tick `tick` is due, counting from `start` (ms): `start + tick × interval + offset`.
pub fn tick_time(start: i64, uid: &str, tick: u64, interval_millis: u64, jitter: f64) -> i64 {
    let base = start.saturating_add((tick.saturating_mul(interval_millis)) as i64);
    base.saturating_add(offset_millis(uid, tick, interval_millis, jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_policies_evenly_over_the_interval() {
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let p = phase_millis(&format!("uid-{i}"), 15_000);
            assert!((0..15_000).contains(&p));
            buckets[(p / 1_500) as usize] += 1;
        }
        // 1,000 expected per tenth; a binomial sd is 30.
        for b in buckets {
            assert!((850..1150).contains(&b), "{buckets:?}");
        }
        assert_eq!(phase_millis("a", 15_000), phase_millis("a", 15_000));
    }

    #[test]
    fn same_inputs_give_the_same_offset() {
        assert_eq!(
            offset_millis("uid-a", 7, 15_000, 0.1),
            offset_millis("uid-a", 7, 15_000, 0.1)
        );
    }

    #[test]
    fn offsets_stay_within_the_jitter() {
        for tick in 0..10_000 {
            let o = offset_millis("policy", tick, 15_000, 0.1);
            assert!((-1_500..=1_500).contains(&o), "{o}");
        }
    }

    #[test]
    fn zero_jitter_means_no_offset() {
        assert_eq!(offset_millis("x", 3, 15_000, 0.0), 0);
    }

    #[test]
    fn offsets_spread_evenly_across_the_window() {
        // 10,000 policies at tick 0: count them in 10 buckets of the ±1.5 s window.
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let o = offset_millis(&format!("uid-{i}"), 0, 15_000, 0.1);
            let b = (((o + 1_500) * 10) / 3_001) as usize;
            buckets[b] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!((850..=1_150).contains(n), "bucket {i} has {n} of 10000");
        }
    }

    #[test]
    fn different_policies_are_decorrelated() {
        let same = (0..1_000)
            .filter(|t| offset_millis("a", *t, 15_000, 0.1) == offset_millis("b", *t, 15_000, 0.1))
            .count();
        assert!(same < 10, "{same} equal offsets of 1000");
    }
}

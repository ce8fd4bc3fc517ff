//! The replica calculation per metric: HPA's formula with tolerance, plus the
//! activation threshold for scale to zero.

use crate::api::policy::{MetricSpec, TargetType};

/// Replicas one metric recommends for `value`, given `current` replicas.
///
/// - `Value`: `ceil(current × value / target)`;
/// - `AverageValue`: `ceil(value / averageValue)`;
/// - no change while the usage ratio is within `tolerance` of 1 (inclusive).
///
/// The product is taken before the division so that 110 against 100 at 10 replicas
/// is exactly 11, not `ceil(11.000000000000002) = 12`. Returns `None` when the
/// target is not usable (missing or not positive; validation refuses such specs).
pub fn recommend(metric: &MetricSpec, value: f64, current: u32, tolerance: f64) -> Option<u32> {
    let target = metric.target.quantity()?.value();
    if target.is_nan() || target <= 0.0 || !value.is_finite() {
        return None;
    }
    // A target at zero replicas that is being woken up is computed from one.
    let base = f64::from(current.max(1));
    let (ratio, proposal) = match metric.target.type_ {
        TargetType::Value => (value / target, value * base / target),
        TargetType::AverageValue => (value / (target * base), value / target),
    };
    // Inclusive, with room for float dust: 110/100 is 1.1000000000000000888.
    if (1.0 - ratio).abs() <= tolerance + 1e-9 && current > 0 {
        return Some(current);
    }
    Some(ceil_u32(proposal))
}

/// Ceiling that forgives floating-point dust (1e-9) and saturates at `u32::MAX`.
fn ceil_u32(x: f64) -> u32 {
    if x <= 0.0 {
        return 0;
    }
    let c = (x - 1e-9 * x.max(1.0)).ceil();
    if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c.max(0.0) as u32
    }
}

/// Whether a metric's value wakes a scaled-to-zero target: strictly above its
/// activation threshold (0 when unset).
pub fn is_active(metric: &MetricSpec, value: f64) -> bool {
    let threshold = metric
        .activation_threshold
        .as_ref()
        .map_or(0.0, |q| q.value());
    value > threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::MetricTarget;

    fn metric(type_: TargetType, target: &str) -> MetricSpec {
        let q = Some(target.parse().unwrap());
        MetricSpec {
            name: "m".into(),
            source: None,
            query: "up".into(),
            target: MetricTarget {
                type_,
                value: if type_ == TargetType::Value {
                    q.clone()
                } else {
                    None
                },
                average_value: if type_ == TargetType::AverageValue {
                    q
                } else {
                    None
                },
            },
            activation_threshold: None,
        }
    }

    #[test]
    fn value_targets_scale_with_the_ratio() {
        let m = metric(TargetType::Value, "100");
        assert_eq!(recommend(&m, 200.0, 3, 0.1), Some(6));
        assert_eq!(recommend(&m, 50.0, 4, 0.1), Some(2));
        assert_eq!(recommend(&m, 150.0, 3, 0.1), Some(5)); // 4.5 rounds up
    }

    #[test]
    fn exact_products_are_not_rounded_up_by_float_dust() {
        let m = metric(TargetType::Value, "100");
        assert_eq!(recommend(&m, 120.0, 10, 0.1), Some(12));
        assert_eq!(recommend(&m, 130.0, 10, 0.1), Some(13));
    }

    #[test]
    fn average_value_targets_divide_by_the_per_replica_target() {
        let m = metric(TargetType::AverageValue, "50");
        assert_eq!(recommend(&m, 500.0, 3, 0.1), Some(10));
        assert_eq!(recommend(&m, 501.0, 3, 0.1), Some(11));
    }

    #[test]
    fn tolerance_is_inclusive_like_hpa() {
        let m = metric(TargetType::Value, "100");
        // Ratio exactly 1.1: within tolerance, no change.
        assert_eq!(recommend(&m, 110.0, 10, 0.1), Some(10));
        assert_eq!(recommend(&m, 90.0, 10, 0.1), Some(10));
        // Just outside.
        assert_eq!(recommend(&m, 111.0, 10, 0.1), Some(12));
        assert_eq!(recommend(&m, 89.0, 10, 0.1), Some(9));
    }

    #[test]
    fn a_woken_target_is_computed_from_one_replica() {
        let m = metric(TargetType::Value, "100");
        assert_eq!(recommend(&m, 250.0, 0, 0.1), Some(3));
    }

    #[test]
    fn activation_is_strictly_above_the_threshold() {
        let mut m = metric(TargetType::Value, "100");
        assert!(!is_active(&m, 0.0));
        assert!(is_active(&m, 0.1));
        m.activation_threshold = Some("5".parse().unwrap());
        assert!(!is_active(&m, 5.0));
        assert!(is_active(&m, 5.5));
    }
}

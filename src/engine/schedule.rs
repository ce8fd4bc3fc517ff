//! `spec.schedules`: the windows active at a time (read by `api::schedule`) and the
//! bounds they set together. Pure: the time is an input. Overlapping windows
//! combine by the largest floor and the largest ceiling; the effective floor never
//! exceeds the ceiling.

use crate::api::policy::CustomScalingPolicySpec;
use crate::api::schedule::parse;

/// One active window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub name: String,
    pub start: i64,
    pub end: i64,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    pub min_nodes: Option<u32>,
}

impl Active {
    /// What the window sets, in the spec's terms: `minReplicas 4, nodePool.minNodes 3`.
    pub fn sets(&self) -> String {
        let mut sets = Vec::new();
        if let Some(m) = self.min_replicas {
            sets.push(format!("minReplicas {m}"));
        }
        if let Some(m) = self.max_replicas {
            sets.push(format!("maxReplicas {m}"));
        }
        if let Some(n) = self.min_nodes {
            sets.push(format!("nodePool.minNodes {n}"));
        }
        sets.join(", ")
    }
}

/// The schedules active at `now`, in spec order. A schedule that does not parse is
/// never active (validation refuses it; the controller reports it).
pub fn active(spec: &CustomScalingPolicySpec, now: i64) -> Vec<Active> {
    spec.schedules
        .iter()
        .filter_map(|s| {
            let (start, end) = parse(s).ok()?.window_at(now)?;
            Some(Active {
                name: s.name.clone(),
                start,
                end,
                min_replicas: s.min_replicas,
                max_replicas: s.max_replicas,
                min_nodes: s.node_pool.as_ref().map(|p| p.min_nodes),
            })
        })
        .collect()
}

/// The bounds in effect: the spec's, with the active windows' largest floor and
/// largest ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The node pool's floor from the windows, if any sets one.
    pub min_nodes: Option<u32>,
}

pub fn bounds(spec: &CustomScalingPolicySpec, active: &[Active]) -> Bounds {
    let floor = active.iter().filter_map(|a| a.min_replicas).max();
    let ceiling = active.iter().filter_map(|a| a.max_replicas).max();
    let min = spec.min_replicas.max(floor.unwrap_or(0));
    let max = ceiling.unwrap_or(spec.max_replicas).max(spec.min_replicas);
    Bounds {
        min_replicas: min,
        // Never below the floor: a ceiling from one window cannot cut what another
        // window's floor (or the spec) keeps.
        max_replicas: max.max(min),
        min_nodes: active.iter().filter_map(|a| a.min_nodes).max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_take_the_largest_floor_and_ceiling() {
        let spec: CustomScalingPolicySpec = serde_yaml::from_str(
            "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
minReplicas: 2
maxReplicas: 20
metrics: [{name: m, query: x, target: {type: Value, value: '1'}}]
",
        )
        .expect("spec");
        let window = |min: Option<u32>, max: Option<u32>, nodes: Option<u32>| Active {
            name: "w".into(),
            start: 0,
            end: 1,
            min_replicas: min,
            max_replicas: max,
            min_nodes: nodes,
        };
        let none = bounds(&spec, &[]);
        assert_eq!(
            (none.min_replicas, none.max_replicas, none.min_nodes),
            (2, 20, None)
        );
        let b = bounds(
            &spec,
            &[
                window(Some(8), None, Some(3)),
                window(Some(12), Some(40), None),
                window(None, Some(30), Some(5)),
            ],
        );
        assert_eq!(
            (b.min_replicas, b.max_replicas, b.min_nodes),
            (12, 40, Some(5))
        );
        // A night ceiling below the spec's maximum.
        let b = bounds(&spec, &[window(None, Some(4), None)]);
        assert_eq!((b.min_replicas, b.max_replicas), (2, 4));
        // One window's ceiling never cuts another's floor.
        let b = bounds(
            &spec,
            &[window(Some(12), None, None), window(None, Some(4), None)],
        );
        assert_eq!((b.min_replicas, b.max_replicas), (12, 12));
    }
}

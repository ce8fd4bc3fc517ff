//! The decision history kept in a policy's status: what the stabilization windows,
//! rate limits, smoothing, fallback and node-pool delay need to carry from one tick
//! to the next, and across a leader change. Times are Unix milliseconds. The engine
//! keeps it bounded (see `engine::history`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most recommendation entries kept.
pub const MAX_RECOMMENDATIONS: usize = 64;
/// Most scale events kept.
pub const MAX_SCALE_EVENTS: usize = 64;

/// Bounded state carried between decisions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Recent recommendations, oldest first. Neighbours may be merged into one entry
    /// (keeping their lowest and highest) to stay within the bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub recommendations: Vec<Recommendation>,
    /// Recent replica changes, oldest first, for the rate limits' periods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub scale_events: Vec<ScaleEvent>,
    /// Smoothed value of each metric at its last sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub smoothed: Vec<SmoothedValue>,
    /// Consecutive ticks with at least one metric missing.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Since when the node pool could shrink (workload already smaller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_shrink_since: Option<i64>,
}

/// One (or several merged) recommendations.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Time of the newest recommendation in this entry.
    pub time: i64,
    /// Lowest recommendation in this entry.
    pub low: u32,
    /// Highest recommendation in this entry.
    pub high: u32,
}

/// A change of replicas made at `time` (positive up, negative down).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub time: i64,
    pub change: i64,
}

/// Smoothing state of one metric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmoothedValue {
    pub name: String,
    pub value: f64,
    pub time: i64,
    /// The trend (units per second), with `smoothing.lookahead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<f64>,
}

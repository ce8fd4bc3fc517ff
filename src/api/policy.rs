//! The `CustomScalingPolicy` resource: what to scale, from which metrics, within
//! which bounds and at which pace. Field doc comments become the CRD's descriptions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::history::History;
use super::quantity::Quantity;

/// Scale a workload (and optionally the node pool under it) from Prometheus metrics.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1alpha1",
    kind = "CustomScalingPolicy",
    plural = "customscalingpolicies",
    singular = "customscalingpolicy",
    shortname = "scalingpolicies",
    shortname = "scalingpolicy",
    shortname = "csp",
    category = "ballast",
    namespaced,
    doc = "A CustomScalingPolicy scales a workload, and optionally the node pool under it, from Prometheus metrics.",
    status = "CustomScalingPolicyStatus",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetRef.name"}"#,
    printcolumn = r#"{"name":"Min","type":"integer","jsonPath":".spec.minReplicas"}"#,
    printcolumn = r#"{"name":"Max","type":"integer","jsonPath":".spec.maxReplicas"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.currentReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredReplicas"}"#,
    printcolumn = r#"{"name":"Metric","type":"string","jsonPath":".status.metrics[0].smoothed"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","priority":1,"jsonPath":".status.activeSchedules[0]"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("spec.minReplicas must be less than or equal to spec.maxReplicas"))]
pub struct CustomScalingPolicySpec {
    /// The object to scale, in the policy's namespace. Any kind with a `/scale`
    /// subresource works: Deployment, StatefulSet, Argo Rollout, ...
    pub target_ref: TargetRef,

    /// Lower bound on replicas. Defaults to 1; `0` (scale to zero) only when written
    /// explicitly, and then `activationThreshold` decides when to wake up.
    #[serde(default = "default_min_replicas")]
    pub min_replicas: u32,

    /// Upper bound on replicas. Ballast never scales above it.
    #[schemars(range(min = 1))]
    pub max_replicas: u32,

    /// The metrics to scale on. With several, the largest recommendation wins.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n.name == m.name))").message("spec.metrics[].name must be unique"))]
    pub metrics: Vec<MetricSpec>,

    /// Exponential moving average applied to each metric before deciding. Absent:
    /// raw values are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<Smoothing>,

    /// Pace of scaling, in the shape of HPA v2's `behavior`, with HPA's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,

    /// How often metrics are read and a decision is made. Each tick is moved by a
    /// deterministic per-policy jitter (see `jitter`).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Duration,

    /// Fraction of `pollInterval` (0 to 0.5) by which each tick is spread, so many
    /// policies never query Prometheus in lockstep.
    #[serde(default = "default_jitter")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 0.5").message("spec.jitter must be between 0 and 0.5"))]
    pub jitter: f64,

    /// What to do while metrics cannot be read. Missing data is never read as zero:
    /// replicas are held, and after `failureThreshold` failed reads they move to
    /// `replicas` when it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,

    /// A second target that holds the nodes the workload runs on, scaled with it:
    /// nodes go up before the workload grows into them, and down only after the
    /// workload has shrunk and `scaleDownDelay` has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<NodePool>,

    /// Windows that set the bounds ahead of known peaks (a floor before the
    /// morning rush, a ceiling overnight), on cron patterns in a time zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("spec.schedules[].name must be unique"))]
    pub schedules: Vec<Schedule>,

    /// Stop all writes (incident response). Metrics are still read and status kept.
    #[serde(default)]
    pub paused: bool,

    /// Compute and publish decisions in status and Events without writing replicas.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_min_replicas() -> u32 {
    1
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_jitter() -> f64 {
    0.1
}

/// A reference to an object in the policy's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target, e.g. `apps/v1`.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// Kind of the target, e.g. `Deployment`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One metric: a PromQL query that returns exactly one series, and its target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Name of the metric within this policy (a DNS label: lowercase letters,
    /// digits and `-`). Used in status, Events and `ballast simulate` columns.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Name of the `ClusterMetricsSource` to query. Absent: the operator's default
    /// source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub source: Option<String>,

    /// PromQL instant query returning exactly one series, e.g.
    /// `sum(rate(redis_evicted_keys_total{job="cache"}[1m]))`. No series is "no data",
    /// never zero.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,

    /// The value the query should settle at.
    pub target: MetricTarget,

    /// With `minReplicas: 0`: while every metric is at or below its activation
    /// threshold the target is scaled to zero; above it, it is woken up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('0')) >= 0").message("spec.metrics[].activationThreshold must be a quantity of at least 0"))]
    pub activation_threshold: Option<Quantity>,
}

/// How a metric's value is compared with the target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'Value' ? (has(self.value) && !has(self.averageValue)) : (has(self.averageValue) && !has(self.value))").message("spec.metrics[].target: type Value needs `value` and type AverageValue needs `averageValue` (exactly one of them)"))]
pub struct MetricTarget {
    /// `Value`: the query's value is compared with `value` (replicas scale with the
    /// ratio). `AverageValue`: the query's value is divided among the replicas and
    /// compared with `averageValue` per replica.
    #[serde(rename = "type")]
    pub type_: TargetType,

    /// Target for type `Value`, a quantity greater than 0 (e.g. `100`, `"1.5k"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.metrics[].target.value must be a quantity greater than 0"))]
    pub value: Option<Quantity>,

    /// Target per replica for type `AverageValue`, a quantity greater than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("spec.metrics[].target.averageValue must be a quantity greater than 0"))]
    pub average_value: Option<Quantity>,
}

impl MetricTarget {
    /// The quantity that matches the type, if it is set.
    pub fn quantity(&self) -> Option<&Quantity> {
        match self.type_ {
            TargetType::Value => self.value.as_ref(),
            TargetType::AverageValue => self.average_value.as_ref(),
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetType {
    Value,
    AverageValue,
}

/// Exponential moving average of each metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.lookaheadLimit) || self.lookaheadLimit >= 1.0").message("spec.smoothing.lookaheadLimit must be at least 1"))]
pub struct Smoothing {
    /// Time for an old value's weight to halve, e.g. `30s`. Irregular sample spacing
    /// is accounted for.
    pub half_life: Duration,
    /// Scale on where the metric is heading: smoothing tracks a level and a trend
    /// (Holt's linear method, for irregular spacing) and the recommendation uses
    /// the forecast this far ahead, e.g. the time new capacity takes to be ready.
    /// Absent: the smoothed value, no forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<Duration>,
    /// Half-life of the trend. Default: `halfLife`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_half_life: Option<Duration>,
    /// `Up` (default): the forecast only ever raises the value used, so a falling
    /// trend never removes capacity early. `Both`: a falling forecast is used too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead_direction: Option<LookaheadDirection>,
    /// The forecast never exceeds the last raw value times this (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead_limit: Option<f64>,
}

impl Smoothing {
    /// An EMA with this half-life and no lookahead.
    pub fn new(half_life: Duration) -> Self {
        Self {
            half_life,
            lookahead: None,
            trend_half_life: None,
            lookahead_direction: None,
            lookahead_limit: None,
        }
    }
}

/// `spec.smoothing.lookaheadDirection`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookaheadDirection {
    Up,
    Both,
}

/// Default `lookaheadLimit`: the forecast is at most twice the last raw value.
pub const DEFAULT_LOOKAHEAD_LIMIT: f64 = 2.0;

/// HPA v2's `behavior`: stabilization windows and rate limits per direction.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Rules for scaling up. HPA defaults: no window; the larger of +100% and +4 pods
    /// per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// Rules for scaling down. HPA defaults: a 300s window; -100% per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
    /// No change while the metric/target ratio is within this fraction of 1
    /// (inclusive). Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self < 1.0").message("spec.behavior.tolerance must be at least 0 and below 1"))]
    pub tolerance: Option<f64>,
}

/// Scaling rules for one direction.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Seconds of past recommendations considered: scale-up takes the lowest of
    /// them, scale-down the highest (0 to 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3600").message("stabilizationWindowSeconds must be between 0 and 3600"))]
    pub stabilization_window_seconds: Option<u32>,
    /// Which policy applies when several do: `Max` (the largest change, default),
    /// `Min` (the smallest), or `Disabled` (no scaling in this direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    /// Rate limits. Absent: HPA's defaults for the direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub policies: Option<Vec<ScalingPolicyRule>>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// A rate limit: at most `value` pods (or percent) of change per `periodSeconds`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyRule {
    /// `Pods` (an absolute count) or `Percent` (of the replicas at the start of the period).
    #[serde(rename = "type")]
    pub type_: PolicyType,
    /// Amount of change allowed per period, greater than 0.
    #[x_kube(validation = Rule::new("self > 0").message("policies[].value must be greater than 0"))]
    pub value: u32,
    /// Length of the period in seconds, 1 to 1800.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1800").message("policies[].periodSeconds must be between 1 and 1800"))]
    pub period_seconds: u32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// A time window, repeating on a cron pattern, that sets the replica bounds (and
/// the node pool's floor) ahead of a known peak. Overlapping windows combine by the
/// largest floor and the largest ceiling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.minReplicas) || has(self.maxReplicas) || has(self.nodePool)").message("spec.schedules[]: set minReplicas, maxReplicas or nodePool.minNodes"))]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("spec.schedules[].minReplicas must be less than or equal to its maxReplicas"))]
pub struct Schedule {
    /// A DNS label, unique in the policy: status and Events name the window by it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// When each window starts: five fields, `minute hour day-of-month month
    /// day-of-week` (e.g. `0 8 * * 1-5`), read in `timezone`. A start that a DST
    /// jump skips happens at the first minute after the gap; a start in a repeated
    /// hour happens once, at its first occurrence.
    #[schemars(length(min = 9, max = 256))]
    pub cron: String,
    /// The IANA time zone of `cron`, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub timezone: Option<String>,
    /// How long each window lasts, e.g. `2h`.
    pub duration: Duration,
    /// Floor while the window is active: replicas below it go to it at once, as
    /// HPA does below `minReplicas`; when it ends they come down only through the
    /// scale-down window and rate policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// Ceiling while the window is active (may be above or below the spec's
    /// `maxReplicas`); replicas above it go down to it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// The node pool's floor while the window is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<ScheduleNodePool>,
}

/// `spec.schedules[].nodePool`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleNodePool {
    /// Nodes to keep at least while the window is active.
    pub min_nodes: u32,
}

/// Behaviour while metrics are unavailable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode == 'Hold' || has(self.replicas)").message("spec.fallback.replicas is required with mode Static or AtLeast"))]
pub struct Fallback {
    /// Consecutive failed reads before the fallback applies (default 3, at least 1).
    #[serde(default = "default_failure_threshold")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.fallback.failureThreshold must be at least 1"))]
    pub failure_threshold: u32,
    /// The replicas `mode` Static and AtLeast use (within bounds and rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// What to do once the threshold is reached. `Hold`: keep the current
    /// replicas. `Static`: move to `replicas`, up or down (a large fleet at its
    /// peak can be cut to `replicas` in one tick). `AtLeast`: the larger of the
    /// current replicas and `replicas`, so an outage never cuts capacity.
    /// Absent: `Static` when `replicas` is set, else `Hold`: what a policy written
    /// before `mode` existed always meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FallbackMode>,
}

/// `spec.fallback.mode`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackMode {
    Hold,
    Static,
    AtLeast,
}

impl FallbackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackMode::Hold => "Hold",
            FallbackMode::Static => "Static",
            FallbackMode::AtLeast => "AtLeast",
        }
    }
}

impl Fallback {
    /// The mode in effect: `mode`, else `Static` with `replicas` and `Hold` without
    /// (the meaning of a policy written before `mode` existed).
    pub fn effective_mode(&self) -> FallbackMode {
        self.mode.unwrap_or(if self.replicas.is_some() {
            FallbackMode::Static
        } else {
            FallbackMode::Hold
        })
    }

    /// The replicas to move to once the threshold is reached, from `current`;
    /// `None` holds.
    pub fn target(&self, current: u32) -> Option<u32> {
        match self.effective_mode() {
            FallbackMode::Hold => None,
            FallbackMode::Static => self.replicas,
            FallbackMode::AtLeast => self.replicas.map(|r| r.max(current)),
        }
    }
}

fn default_failure_threshold() -> u32 {
    3
}

/// The nodes under the workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.podsPerNode) != has(self.nodeAllocatable)").message("spec.nodePool: set exactly one of podsPerNode or nodeAllocatable"))]
#[x_kube(validation = Rule::new("self.minNodes <= self.maxNodes").message("spec.nodePool.minNodes must be less than or equal to spec.nodePool.maxNodes"))]
pub struct NodePool {
    /// The object that holds the nodes, e.g. a Cluster API `MachineDeployment`: any
    /// kind with a `/scale` subresource, or any kind with `replicasPath`.
    pub target_ref: TargetRef,
    /// Dotted path of the replica count for kinds without `/scale`, e.g. `spec.count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
    )]
    pub replicas_path: Option<String>,
    /// How many workload pods fit on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.nodePool.podsPerNode must be at least 1"))]
    pub pods_per_node: Option<u32>,
    /// A node's allocatable resources; pods per node is derived from the target's pod
    /// requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_allocatable: Option<NodeAllocatable>,
    /// Lower bound on nodes (default 0).
    #[serde(default)]
    pub min_nodes: u32,
    /// Upper bound on nodes.
    #[schemars(range(min = 1))]
    pub max_nodes: u32,
    /// Spare nodes kept above what the workload needs (default 0).
    #[serde(default)]
    pub headroom_nodes: u32,
    /// How long nodes stay after the workload shrank before they are removed
    /// (default `10m`).
    #[serde(default = "default_scale_down_delay")]
    pub scale_down_delay: Duration,
    /// Cap the workload's replicas at what `maxNodes` nodes can hold
    /// (`maxNodes` × pods per node), so it is not grown into Pending pods (default
    /// false). Off by default because pods per node is an estimate (from
    /// `podsPerNode` or requests against `nodeAllocatable`): other pods on the
    /// nodes, or a cluster autoscaler adding nodes outside this pool, can make the
    /// real capacity differ. Either way, a pool held at `maxNodes` shows as
    /// `ScalingLimited=True` and `NodePoolReady=False` with reason `NodePoolAtMax`.
    #[serde(default)]
    pub cap_replicas: bool,
}

fn default_scale_down_delay() -> Duration {
    Duration::from_secs(600)
}

/// Allocatable resources of one node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeAllocatable {
    /// Allocatable CPU, e.g. `"4"` or `"3500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Allocatable memory, e.g. `"16Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// What the operator observed and decided.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CustomScalingPolicyStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas of the target when last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<u32>,
    /// Replicas Ballast decided on at the last tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    /// When Ballast last changed the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Per metric: raw and smoothed value with the sample's time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
    /// Node pool current and desired nodes, when a node pool is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<NodePoolStatus>,
    /// The `spec.schedules` windows active at the last tick, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_schedules: Vec<String>,
    /// The bounded decision history the stabilization windows and rate limits need,
    /// so a new leader resumes where the old one stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// `Ready`: the configuration can work (spec, metrics sources, target); False
    /// with the reason when it cannot (`InvalidSpec`, `SourceNotAllowed`,
    /// `SourceInvalid`, `InvalidTarget`, or `SourceNotFound`/`TargetNotFound`
    /// while they do not exist). Run-time state does not change it: see
    /// `MetricsAvailable` (metrics read, fallback), `AbleToScale` (writes,
    /// paused, dryRun), `ScalingLimited`, `NodePoolReady`, and `ReplicasOwned`
    /// (False when another field manager, such as a GitOps sync, wrote the
    /// target's replicas after Ballast). `Stalled` True: only a change of the
    /// spec, a source or the target fixes it (kstatus: Failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The last reading of one metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    pub name: String,
    /// The query's value at the last successful read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<f64>,
    /// The smoothed value the decision used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothed: Option<f64>,
    /// With `smoothing.lookahead`: the forecast the decision used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// When the sample was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_time: Option<Time>,
}

/// Node pool size as observed and decided.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_nodes: Option<u32>,
    /// Nodes the workload needs (with headroom) before `maxNodes`: above
    /// `maxNodes` while the pool is held there (`NodePoolAtMax`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_nodes: Option<u32>,
    /// When Ballast last changed the node pool's replicas (a write by another
    /// field manager after it is a replicas fight: `ReplicasOwned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
}

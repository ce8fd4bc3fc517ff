//! Names shared by the operator, status, Events and metrics: condition types and
//! reasons (PascalCase, as Kubernetes' own), the field manager and lease name.

/// Field manager for server-side apply of status and scale writes.
pub const FIELD_MANAGER: &str = "ballast";
/// Name of the leader-election Lease in the operator's namespace.
pub const LEASE_NAME: &str = "ballast-leader";

pub mod types {
    pub const READY: &str = "Ready";
    pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
    pub const ABLE_TO_SCALE: &str = "AbleToScale";
    pub const SCALING_LIMITED: &str = "ScalingLimited";
    pub const NODE_POOL_READY: &str = "NodePoolReady";
}

pub mod reasons {
    // Why the decision is what it is (HPA's names where HPA has one).
    pub const DESIRED_WITHIN_RANGE: &str = "DesiredWithinRange";
    pub const SCALE_UP_LIMIT: &str = "ScaleUpLimit";
    pub const SCALE_DOWN_LIMIT: &str = "ScaleDownLimit";
    pub const TOO_MANY_REPLICAS: &str = "TooManyReplicas";
    pub const TOO_FEW_REPLICAS: &str = "TooFewReplicas";
    pub const SCALE_UP_STABILIZED: &str = "ScaleUpStabilized";
    pub const SCALE_DOWN_STABILIZED: &str = "ScaleDownStabilized";
    pub const PAUSED: &str = "Paused";
    // Metric availability.
    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    pub const METRICS_PARTIAL: &str = "MetricsPartial";
    pub const FALLBACK_ACTIVE: &str = "FallbackActive";
    pub const VALID_METRICS_FOUND: &str = "ValidMetricsFound";
    pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
    pub const SOURCE_NOT_ALLOWED: &str = "SourceNotAllowed";
    pub const SOURCE_INVALID: &str = "SourceInvalid";
    // Node pool.
    pub const NODE_POOL_SCALE_DOWN_DELAYED: &str = "NodePoolScaleDownDelayed";
    pub const POD_DOES_NOT_FIT: &str = "PodDoesNotFit";
    /// The workload needs more nodes than `maxNodes`: the pool is held at its cap
    /// (and, with `capReplicas`, the workload at what the cap holds).
    pub const NODE_POOL_AT_MAX: &str = "NodePoolAtMax";
    // The spec.
    /// The spec breaks a rule CEL cannot check (PromQL, cross-field): `Ready` and
    /// `AbleToScale` are False until the spec changes.
    pub const INVALID_SPEC: &str = "InvalidSpec";
}

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
    /// Whether the replicas Ballast writes stand: False when another field
    /// manager wrote the target's `spec.replicas` after Ballast did (a GitOps
    /// sync, a person, another autoscaler). Workload targets of the watch caches
    /// (`apps/v1` Deployments and StatefulSets) only.
    pub const REPLICAS_OWNED: &str = "ReplicasOwned";
    /// True (with `Ready` False, the same reason) when the policy cannot work until
    /// its spec, its source or its target changes: an invalid spec, a source that
    /// does not allow the namespace or cannot be used, a target kind without
    /// `/scale`. kstatus (Flux, `kubectl wait`, cli-utils) reads it as `Failed`.
    /// Absent otherwise.
    pub const STALLED: &str = "Stalled";
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
    // Set by the controller, not the engine.
    /// `Ready` True: the policy's configuration can work (spec, sources, target).
    pub const READY: &str = "Ready";
    /// `Ready` False: the target does not exist (yet).
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// `AbleToScale` True: the target's `/scale` can be read and written.
    pub const READY_FOR_NEW_SCALE: &str = "ReadyForNewScale";
    /// `AbleToScale` True under `spec.dryRun`: decisions published, nothing written.
    pub const DRY_RUN: &str = "DryRun";
    /// `AbleToScale` False (and a Warning Event): the node pool's write failed.
    pub const FAILED_UPDATE_NODE_POOL: &str = "FailedUpdateNodePool";
    /// `NodePoolReady` False before the first node-pool decision.
    pub const UNKNOWN: &str = "Unknown";
    /// `ReplicasOwned` True: Ballast's field manager owns `spec.replicas`.
    pub const OWNED_BY_BALLAST: &str = "OwnedByBallast";
    /// `ReplicasOwned` True: Ballast has not written replicas yet (the message
    /// names the current owners, which the first write takes over from).
    pub const NOT_WRITTEN_YET: &str = "NotWrittenYet";
    /// `ReplicasOwned` False, and a Warning Event: another field manager wrote
    /// `spec.replicas` after Ballast (the message names it).
    pub const REPLICAS_OVERWRITTEN: &str = "ReplicasOverwritten";
}

/// Event reasons (besides the condition reasons some Events share). API, like the
/// condition reasons: alerts and runbooks select on them.
pub mod events {
    pub const SCALED_UP: &str = "ScaledUp";
    pub const SCALED_DOWN: &str = "ScaledDown";
    pub const NODE_POOL_SCALED: &str = "NodePoolScaled";
    pub const FALLBACK_APPLIED: &str = "FallbackApplied";
    /// The metrics are back (or the policy changed) after a fallback.
    pub const FALLBACK_ENDED: &str = "FallbackEnded";
    /// A `spec.schedules` window opened (its bounds apply) or closed.
    pub const SCHEDULE_STARTED: &str = "ScheduleStarted";
    pub const SCHEDULE_ENDED: &str = "ScheduleEnded";
    pub const NODE_POOL_WITHIN_MAX: &str = "NodePoolWithinMax";
    pub const CIRCUIT_OPEN: &str = "CircuitOpen";
}

/// Why the engine decided what it did, for the workload or the node pool: the
/// condition reason it reports (HPA's names where HPA has one). The strings are
/// API ([`reasons`]); the enum lets the compiler check every reason the engine
/// gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    DesiredWithinRange,
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
    ScaleUpStabilized,
    ScaleDownStabilized,
    Paused,
    MetricsUnavailable,
    FallbackActive,
    NodePoolScaleDownDelayed,
    PodDoesNotFit,
    NodePoolAtMax,
}

impl Reason {
    /// Every reason the engine gives.
    pub const ALL: [Reason; 13] = [
        Reason::DesiredWithinRange,
        Reason::ScaleUpLimit,
        Reason::ScaleDownLimit,
        Reason::TooManyReplicas,
        Reason::TooFewReplicas,
        Reason::ScaleUpStabilized,
        Reason::ScaleDownStabilized,
        Reason::Paused,
        Reason::MetricsUnavailable,
        Reason::FallbackActive,
        Reason::NodePoolScaleDownDelayed,
        Reason::PodDoesNotFit,
        Reason::NodePoolAtMax,
    ];

    /// The condition reason, as written to the status and Events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::DesiredWithinRange => reasons::DESIRED_WITHIN_RANGE,
            Reason::ScaleUpLimit => reasons::SCALE_UP_LIMIT,
            Reason::ScaleDownLimit => reasons::SCALE_DOWN_LIMIT,
            Reason::TooManyReplicas => reasons::TOO_MANY_REPLICAS,
            Reason::TooFewReplicas => reasons::TOO_FEW_REPLICAS,
            Reason::ScaleUpStabilized => reasons::SCALE_UP_STABILIZED,
            Reason::ScaleDownStabilized => reasons::SCALE_DOWN_STABILIZED,
            Reason::Paused => reasons::PAUSED,
            Reason::MetricsUnavailable => reasons::METRICS_UNAVAILABLE,
            Reason::FallbackActive => reasons::FALLBACK_ACTIVE,
            Reason::NodePoolScaleDownDelayed => reasons::NODE_POOL_SCALE_DOWN_DELAYED,
            Reason::PodDoesNotFit => reasons::POD_DOES_NOT_FIT,
            Reason::NodePoolAtMax => reasons::NODE_POOL_AT_MAX,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_names_itself_in_pascal_case_and_no_two_share_a_name() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert_eq!(format!("{reason:?}"), name, "the variant is its reason");
            assert!(seen.insert(name), "{name} twice");
        }
    }
}

//! The rules `ballast lint` and the admission webhook apply, each with a stable id.
//! Ids are API: CI configurations filter on them and SARIF consumers (GitHub code
//! scanning) track findings by them. Add rules; never rename or reuse an id.

use super::validation::Severity;

macro_rules! rules {
    ($($variant:ident = $id:literal, $severity:ident, $summary:literal;)+) => {
        /// One rule: what a finding is about.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $($variant,)+
        }

        impl Rule {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)+];

            /// The stable id, e.g. `promql-syntax`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)+
                }
            }

            /// The severity a finding of this rule usually has (a rule allowed by an
            /// explicit opt-in may be reported as a warning instead).
            pub fn default_severity(self) -> Severity {
                match self {
                    $(Rule::$variant => Severity::$severity,)+
                }
            }

            /// One sentence on what the rule checks.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Rule::$variant => $summary,)+
                }
            }
        }
    };
}

rules! {
    YamlSyntax = "yaml-syntax", Error, "The file is a stream of valid YAML documents.";
    NonFinite = "yaml-non-finite", Error, "No .nan or .inf: JSON, and so kubectl, cannot carry them.";
    ApiVersion = "api-version", Error, "The apiVersion is one the API server serves.";
    Required = "required", Error, "Fields the API server requires are present.";
    Type = "type", Error, "Each field has the type and format the CRD schema gives it.";
    UnknownField = "unknown-field", Error, "No field the CRD does not know (the API server would drop it silently).";
    TargetRef = "target-ref", Error, "A targetRef names an apiVersion, a kind and a name.";
    ReplicaBounds = "replica-bounds", Error, "maxReplicas is at least 1 and minReplicas at most maxReplicas.";
    MetricCount = "metric-count", Error, "A policy has between 1 and 16 metrics.";
    MetricName = "metric-name", Error, "Metric names are unique DNS labels.";
    MetricSource = "metric-source", Error, "A metric's source, when set, is not empty.";
    PromqlSyntax = "promql-syntax", Error, "A metric's query is valid PromQL.";
    MetricTarget = "metric-target", Error, "A metric target has the one value its type takes, greater than 0.";
    ActivationThreshold = "activation-threshold", Error, "An activation threshold is at least 0.";
    Jitter = "jitter", Error, "jitter is between 0 and 0.5.";
    PollInterval = "poll-interval", Error, "pollInterval is at least 1s.";
    PollIntervalShort = "poll-interval-short", Warning, "pollInterval under 5s adds query load for changes Prometheus rarely shows.";
    HalfLife = "smoothing-half-life", Error, "A smoothing half-life is greater than 0.";
    Lookahead = "lookahead", Error, "A lookahead and a trend half-life are greater than 0, and the forecast limit at least 1.";
    Tolerance = "tolerance", Error, "behavior.tolerance is at least 0 and below 1.";
    StabilizationWindow = "stabilization-window", Error, "A stabilization window is between 0 and 3600 seconds.";
    RatePolicy = "rate-policy", Error, "A rate policy's value is above 0 and its period between 1 and 1800 seconds.";
    FallbackThreshold = "fallback-threshold", Error, "fallback.failureThreshold is at least 1.";
    FallbackMode = "fallback-mode", Error, "fallback.mode Static and AtLeast have the replicas they need; Hold has none to ignore.";
    FallbackReplicas = "fallback-replicas", Warning, "fallback.replicas lies within [minReplicas, maxReplicas].";
    Schedule = "schedule", Error, "A schedule has a five-field cron, an IANA time zone, a positive duration and bounds that fit the policy's.";
    ScheduleName = "schedule-name", Error, "Schedule names are unique DNS labels.";
    NodePoolTarget = "node-pool-target", Error, "A node pool is another object than the workload.";
    NodePoolSizing = "node-pool-sizing", Error, "A node pool sets exactly one of podsPerNode and nodeAllocatable, with positive values.";
    NodePoolBounds = "node-pool-bounds", Error, "maxNodes is at least 1 and minNodes at most maxNodes.";
    NodePoolHeadroom = "node-pool-headroom", Warning, "headroomNodes does not exceed maxNodes.";
    ScaleDownCliff = "scale-down-cliff", Warning, "A scale-down has a stabilization window or a rate policy, so one low reading cannot drop the target to minReplicas.";
    ReplicaSpread = "replica-spread", Warning, "maxReplicas is at most 50 times minReplicas, so a runaway metric cannot cost without bound.";
    SourceAddress = "source-address", Error, "A source address is an http(s) URL with a host and no credentials in it.";
    MetadataEndpoint = "metadata-endpoint", Error, "A source does not point at a cloud metadata or link-local address unless allowLinkLocal says so.";
    AllowedNamespaces = "allowed-namespaces", Error, "A source lists the namespaces that may use it.";
    SourceTimeout = "source-timeout", Error, "A source's timeout is greater than 0.";
    ResponseLimit = "response-limit", Error, "maxResponseBytes is at least 1024.";
    SourceAuth = "source-auth", Error, "auth sets exactly one of bearerToken and basic.";
    SecretNamespace = "secret-namespace", Error, "A source's Secrets live in the operator's namespace, the only one it may read Secrets in.";
    CircuitBreaker = "circuit-breaker", Error, "circuitBreaker.failureThreshold is at least 1.";
    SourceHeader = "source-header", Error, "A header has a token name, exactly one of value and valueFrom, a value without control characters, is not Host, Authorization or hop-by-hop, and appears once.";
    SourceTenant = "source-tenant", Error, "tenant is printable ASCII, and no X-Scope-OrgID header is set beside it.";
    SourceTls = "source-tls", Error, "TLS settings go with an https address; insecureSkipVerify is explicit and always warned about.";
    QueryParameters = "query-parameters", Error, "queryParameters have names and leave query, time, start, end and step to the operator.";
}

/// Where the rules are documented; a SARIF rule's `helpUri` is this plus `#<id>`.
pub const HELP_URI: &str = "https://github.com/ballast-dev/ballast/blob/main/docs/lint.md";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        let docs = include_str!("../../docs/lint.md");
        for rule in Rule::ALL {
            let id = rule.id();
            assert!(seen.insert(id), "{id} twice");
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id}"
            );
            assert!(rule.summary().ends_with('.'), "{id}");
            assert!(
                docs.contains(&format!("| `{id}` |")),
                "docs/lint.md has no row for {id}"
            );
        }
    }
}

//! The `ClusterMetricsSource` resource: a Prometheus-compatible endpoint the cluster
//! admin allows the operator to query, and from which namespaces. Namespaced users
//! never type a URL.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::duration::Duration;

/// A Prometheus-compatible endpoint for `CustomScalingPolicy` metrics.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1alpha1",
    kind = "ClusterMetricsSource",
    plural = "clustermetricssources",
    singular = "clustermetricssource",
    shortname = "cms",
    category = "ballast",
    doc = "A ClusterMetricsSource is a Prometheus-compatible endpoint that CustomScalingPolicies in the allowed namespaces may query.",
    status = "ClusterMetricsSourceStatus",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Circuit","type":"string","jsonPath":".status.circuit"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(r#"(has(self.allowLinkLocal) && self.allowLinkLocal) || !self.address.matches('(?i)^https?://(169\\.254\\.[0-9.]*|100\\.100\\.100\\.200|\\[(fe[89ab][0-9a-f]:[^\\]]*|fd00:ec2::254)\\]|metadata\\.google\\.internal\\.?)([:/?#].*)?$')"#).message("spec.address: a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, metadata.google.internal) serves the node's cloud credentials, not metrics; set spec.allowLinkLocal: true only for a metrics endpoint that really lives there"))]
pub struct ClusterMetricsSourceSpec {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`.
    /// Link-local and cloud metadata addresses are refused unless `allowLinkLocal`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub address: String,

    /// Allow an `address` on a link-local network (169.254.0.0/16, fe80::/10) or a
    /// well-known cloud metadata endpoint (169.254.169.254, fd00:ec2::254,
    /// 100.100.100.200, metadata.google.internal) (default false). Refused by
    /// default because such an address serves the node's cloud credentials, not
    /// metrics, and the operator's queries would carry them into status. Set it
    /// only for a metrics endpoint that really lives there; the admission webhook
    /// warns every time.
    #[serde(default)]
    pub allow_link_local: bool,

    /// Credentials, read from Secrets; never logged or shown in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SourceAuth>,

    /// PEM CA bundle to verify an HTTPS endpoint with (added to the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,

    /// Time limit of one query (default `5s`).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,

    /// Largest response body accepted, in bytes (default 1 MiB).
    #[serde(default = "default_max_response_bytes")]
    #[x_kube(validation = Rule::new("self >= 1024").message("spec.maxResponseBytes must be at least 1024"))]
    pub max_response_bytes: u64,

    /// When to stop querying a failing endpoint for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,

    /// Namespaces whose policies may use this source; `"*"` allows every namespace.
    /// Policies elsewhere get no data and a condition saying why.
    #[schemars(length(min = 1, max = 1024))]
    pub allowed_namespaces: Vec<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_response_bytes() -> u64 {
    1024 * 1024
}

/// Credentials for the endpoint (one of them).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.bearerToken) != has(self.basic)").message("spec.auth: set exactly one of bearerToken or basic"))]
pub struct SourceAuth {
    /// A bearer token from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeyRef>,
    /// Basic auth from a Secret's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
}

/// A key of a Secret in a named namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Basic auth credentials from one Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the user name (default `username`).
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key holding the password (default `password`).
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".into()
}

fn default_password_key() -> String {
    "password".into()
}

/// Circuit breaker: open after `failureThreshold` consecutive failures, probe again
/// after `openDuration`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Consecutive failures that open the circuit (default 5).
    #[serde(default = "default_cb_threshold")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.circuitBreaker.failureThreshold must be at least 1"))]
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe query (default `30s`).
    #[serde(default = "default_open_duration")]
    pub open_duration: Duration,
}

fn default_cb_threshold() -> u32 {
    5
}

fn default_open_duration() -> Duration {
    Duration::from_secs(30)
}

/// What the operator sees of the endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMetricsSourceStatus {
    /// `Closed`, `Open` or `HalfOpen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

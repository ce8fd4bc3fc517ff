//! The `ClusterMetricsSource` resource: a Prometheus-compatible endpoint the cluster
//! admin allows the operator to query, and from which namespaces. Namespaced users
//! never type a URL.

use std::collections::BTreeMap;

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
#[x_kube(validation = Rule::new("!has(self.tls) || self.address.startsWith('https://') || (!has(self.tls.clientCertificate) && !has(self.tls.serverName) && !(has(self.tls.insecureSkipVerify) && self.tls.insecureSkipVerify))").message("spec.tls: TLS settings apply to an https:// address"))]
#[x_kube(validation = Rule::new("!has(self.tenant) || !has(self.headers) || !self.headers.exists(h, h.name.lowerAscii() == 'x-scope-orgid')").message("spec.tenant: the tenant is sent as X-Scope-OrgID; do not also set that header in spec.headers"))]
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

    /// Extra HTTP headers sent with every query, e.g. a gateway's API key. A value
    /// is given inline or read from a Secret key; `Host`, `Authorization` (see
    /// `auth`) and hop-by-hop headers are refused. Values never appear in logs,
    /// Events, status or errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(h, self.exists_one(g, g.name.lowerAscii() == h.name.lowerAscii()))").message("spec.headers: each header name appears once (names are case-insensitive)"))]
    pub headers: Vec<SourceHeader>,

    /// The tenant to query as: sent as `X-Scope-OrgID`, the header Cortex, Mimir
    /// and Thanos Receive read the tenant from. Do not also set that header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[!-~]+$"))]
    pub tenant: Option<String>,

    /// TLS beyond the CA bundle: a client certificate (mTLS), the name the server's
    /// certificate must carry, and, only when set explicitly, no verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SourceTls>,

    /// Extra URL query parameters sent with every query, e.g. Thanos's
    /// `dedup: "true"` or `partial_response: "false"`. `query`, `time`, `start`,
    /// `end` and `step` are the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(k, !(k in ['query', 'time', 'start', 'end', 'step']))").message("spec.queryParameters: query, time, start, end and step are set by the operator"))]
    pub query_parameters: BTreeMap<String, String>,

    /// What to do with an answer that carries `warnings` (Thanos or Prometheus
    /// saying the data may be partial, e.g. a store was unreachable): `Reject`
    /// (default) treats the metric as missing for that tick, never as a smaller
    /// number, and puts the warning in the condition message; `Accept` uses the
    /// value.
    #[serde(default)]
    pub partial_response: PartialResponse,

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

/// Header names a source may not set: hop-by-hop headers (RFC 9110 §7.6.1), those
/// the HTTP client writes itself, and `Authorization`, which `auth` owns.
pub const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One extra header: a name and a value given inline or read from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("spec.headers: each header sets exactly one of value or valueFrom"))]
#[x_kube(validation = Rule::new("!(self.name.lowerAscii() in ['authorization', 'connection', 'content-length', 'host', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])").message("spec.headers: Host, Authorization (use spec.auth), Content-Length and hop-by-hop headers (Connection, Transfer-Encoding, ...) cannot be set"))]
pub struct SourceHeader {
    /// The header name, e.g. `X-Api-Key`.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    )]
    pub name: String,
    /// The value, inline (visible to anyone who can read the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub value: Option<String>,
    /// The value, from a Secret key in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueFrom>,
}

/// Where a header's value comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

/// TLS settings beyond the CA bundle (`spec.caBundle`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourceTls {
    /// A client certificate and key for mutual TLS: a `kubernetes.io/tls` Secret
    /// (keys `tls.crt`, `tls.key`) in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<SecretRef>,
    /// The name the server's certificate must carry, when the address uses
    /// another (an IP, a Service alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,
    /// Accept any server certificate (default false). Anyone on the path can then
    /// read and answer the queries and see the credentials; the admission webhook
    /// warns every time. For a test endpoint only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A Secret in a named namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What an answer with `warnings` (possibly partial data) is worth.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum PartialResponse {
    /// The metric is missing for that tick; the warning is in the condition.
    #[default]
    Reject,
    /// The value is used as it is.
    Accept,
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

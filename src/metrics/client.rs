//! A Prometheus HTTP API client on reqwest, with a timeout, TLS options (CA
//! bundle, client certificate, server name), credentials, extra headers and query
//! parameters. Answers are read with a size limit and decoded by us (`decode`);
//! range queries are split into chunks Prometheus accepts (at most 11,000 points
//! per series) and report progress. An answer with `warnings` (partial data) is
//! refused unless the source accepts partial responses.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

pub use super::decode::Labels;
use super::decode::{DecodeError, Reading, decode_instant_answer, decode_range};
use super::tls::{TlsError, TlsOptions};
use crate::api::PartialResponse;

/// Points per range-query request (Prometheus refuses more than 11,000).
pub const MAX_POINTS_PER_REQUEST: i64 = 10_000;
/// Largest answer to one range-query request.
const MAX_RANGE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid Prometheus address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
    #[error(
        "querying Prometheus at {address} for {query:?}: {source}{}{}",
        cause(source),
        tls_hint(source)
    )]
    QueryPrometheus {
        address: String,
        query: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "query {query:?} returned {count} series; a policy metric must return exactly one (aggregate it, e.g. sum(...))"
    )]
    TooManySeries { query: String, count: usize },
    #[error("query {query:?} returned a {kind} result; expected a vector or a matrix")]
    UnexpectedResult { query: String, kind: String },
    #[error("Prometheus at {address} answered HTTP {status}{}{}", reason_phrase(*status), body_detail(detail))]
    HttpStatus {
        address: String,
        status: u16,
        /// The first bytes of the answer's body, control characters escaped: what
        /// the backend said (`no org id`).
        detail: String,
    },
    #[error("Prometheus at {address} sent more than {limit} bytes; refused")]
    BodyTooLarge { address: String, limit: u64 },
    #[error("reading the answer of Prometheus at {address}: {message}")]
    ReadBody { address: String, message: String },
    #[error("Prometheus at {address}: {source}")]
    Decode {
        address: String,
        #[source]
        source: DecodeError,
    },
    #[error(
        "Prometheus at {address} warned that the answer may be partial: {warnings}; not used (partialResponse: Accept would use it)"
    )]
    Partial { address: String, warnings: String },
}

impl QueryError {
    /// Whether the error says the *source* is unwell (transport, timeout, HTTP
    /// status, an oversized or unreadable body) rather than that this one query is
    /// wrong (several series, a PromQL error, a string result). Only the former
    /// count against the source's breaker, so one tenant's bad query cannot cut
    /// every other tenant off the source.
    pub fn is_source_failure(&self) -> bool {
        match self {
            QueryError::TooManySeries { .. }
            | QueryError::UnexpectedResult { .. }
            | QueryError::Partial { .. } => false,
            QueryError::Decode { source, .. } => matches!(source, DecodeError::Malformed(_)),
            _ => true,
        }
    }

    /// The error as a fact about the source (address, HTTP status, transport
    /// cause), without the query that met it. A source is shared by policies in
    /// many namespaces and its last error is shown to all of them, so it must not
    /// carry one policy's query into another's status or Events. `query` is the
    /// query the error met: an authentication refusal keeps what the backend said
    /// (`no org id`) unless that quotes it.
    pub fn source_message_for(&self, query: &str) -> String {
        match self {
            QueryError::QueryPrometheus {
                address, source, ..
            } => format!(
                "querying Prometheus at {address}: {source}{}{}",
                cause(source),
                tls_hint(source)
            ),
            QueryError::TooManySeries { count, .. } => {
                format!("a query returned {count} series")
            }
            QueryError::UnexpectedResult { kind, .. } => {
                format!("a query returned a {kind} result")
            }
            // The status, not the body: a backend may echo the query in it. An
            // authentication refusal is about the source's credentials or tenant
            // (`no org id`), which every policy on it needs to read; its body is
            // kept unless it holds the query.
            QueryError::HttpStatus {
                address,
                status,
                detail,
            } => {
                let keep = matches!(status, 401 | 403)
                    && !query.trim().is_empty()
                    && !detail.contains(query.trim());
                format!(
                    "Prometheus at {address} answered HTTP {status}{}{}",
                    reason_phrase(*status),
                    if keep {
                        body_detail(detail)
                    } else {
                        String::new()
                    }
                )
            }
            QueryError::Address { .. }
            | QueryError::Tls(_)
            | QueryError::HttpClient(_)
            | QueryError::Partial { .. }
            | QueryError::BodyTooLarge { .. }
            | QueryError::ReadBody { .. }
            | QueryError::Decode { .. } => self.to_string(),
        }
    }
}

/// How much of an error answer's body is kept to show what the backend said.
const DETAIL_BYTES: usize = 256;

/// ` Unauthorized` for 401: the standard reason phrase, if any.
fn reason_phrase(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

fn body_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// The first bytes of a body as one line: lossy UTF-8, trimmed, control
/// characters escaped (a body is the backend's to write, a terminal or a status
/// message is ours), cut at a character boundary with `...` when longer.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(DETAIL_BYTES)]);
    let mut out = String::new();
    for c in text.trim().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if body.len() > DETAIL_BYTES || out.len() > DETAIL_BYTES {
        let mut cut = DETAIL_BYTES.min(out.len());
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// Up to `limit` bytes of a response's body (less when reading fails: a detail,
/// not the answer).
async fn read_some(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(limit + 1);
    body
}

/// How to reach one endpoint, beyond its address.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time limit of one request.
    pub timeout: Duration,
    pub tls: TlsOptions,
    /// `Authorization` (bearer or basic).
    pub authorization: Option<HeaderValue>,
    /// Extra headers (a tenant's `X-Scope-OrgID` among them).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra URL query parameters.
    pub query_parameters: Vec<(String, String)>,
    pub partial_response: PartialResponse,
}

impl ClientOptions {
    /// A hash of everything a client is built from, Secrets' contents included:
    /// equal fingerprints build the same client.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.timeout.hash(&mut h);
        self.tls.hash(&mut h);
        self.authorization.hash(&mut h);
        self.headers.hash(&mut h);
        self.query_parameters.hash(&mut h);
        self.partial_response.hash(&mut h);
        h.finish()
    }

    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            tls: TlsOptions::default(),
            authorization: None,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            partial_response: PartialResponse::Reject,
        }
    }
}

/// Which API a request goes to.
#[derive(Clone, Copy)]
enum Endpoint {
    Query,
    QueryRange,
}

/// One Prometheus-compatible endpoint.
#[derive(Clone)]
pub struct Prometheus {
    address: String,
    /// `<address>/api/v1/query` and `.../query_range`, parsed once (a parse per
    /// request was 2.5% of the operator's CPU at 1,000 policies).
    query_url: url::Url,
    query_range_url: url::Url,
    http: reqwest::Client,
    query_parameters: Vec<(String, String)>,
    partial_response: PartialResponse,
}

impl Prometheus {
    /// A client for `address`, trusting `ca_bundle` (PEM) in addition to the system
    /// roots, with a per-request `timeout`.
    pub fn new(
        address: &str,
        ca_bundle: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, QueryError> {
        let mut options = ClientOptions::new(timeout);
        options.tls.ca_bundle = ca_bundle.map(str::to_string);
        Self::with_options(address, options)
    }

    /// A client for `address` with every option. Header values are marked
    /// sensitive, so they are never logged.
    pub fn with_options(address: &str, options: ClientOptions) -> Result<Self, QueryError> {
        let bad = |message: String| QueryError::Address {
            address: address.to_string(),
            message,
        };
        let mut api = url::Url::parse(address).map_err(|e| bad(e.to_string()))?;
        if !matches!(api.scheme(), "http" | "https") || api.host_str().is_none() {
            return Err(bad("expected an http:// or https:// URL with a host".into()));
        }
        if api.query().is_some() || api.fragment().is_some() {
            return Err(bad(
                "has a query or fragment; put parameters in queryParameters".into(),
            ));
        }
        let base = api.path().trim_end_matches('/').to_string();
        api.set_path(&format!("{base}/api/v1/query"));
        let query_url = api.clone();
        api.set_path(&format!("{base}/api/v1/query_range"));
        let query_range_url = api;

        let mut headers = HeaderMap::new();
        if let Some(mut auth) = options.authorization {
            auth.set_sensitive(true);
            headers.insert(AUTHORIZATION, auth);
        }
        for (name, mut value) in options.headers {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let tls = super::tls::client_config(&options.tls)?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .default_headers(headers)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| QueryError::HttpClient(e.to_string()))?;
        Ok(Self {
            address: address.to_string(),
            query_url,
            query_range_url,
            http,
            query_parameters: options.query_parameters,
            partial_response: options.partial_response,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn query_error(&self, query: &str, source: reqwest::Error) -> QueryError {
        QueryError::QueryPrometheus {
            address: self.address.clone(),
            query: query.to_string(),
            // The URL holds the query and the source's parameters; the error
            // names the address and the query itself.
            source: source.without_url(),
        }
    }

    /// GET `endpoint` with `params` and the source's own parameters: the status
    /// and body (at most `max_bytes`) of an answer worth decoding.
    async fn get(
        &self,
        endpoint: Endpoint,
        query: &str,
        params: &[(&str, String)],
        max_bytes: u64,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), QueryError> {
        let mut url = match endpoint {
            Endpoint::Query => self.query_url.clone(),
            Endpoint::QueryRange => self.query_range_url.clone(),
        };
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("query", query);
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
            for (k, v) in &self.query_parameters {
                pairs.append_pair(k, v);
            }
        }
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|source| self.query_error(query, source))?;
        let status = response.status();
        // Prometheus answers 400/422/503 with a JSON error body worth decoding.
        let decodable = status.is_success() || matches!(status.as_u16(), 400 | 422 | 503);
        if !decodable {
            let detail = snippet(&read_some(&mut response, DETAIL_BYTES).await);
            return Err(QueryError::HttpStatus {
                address: self.address.clone(),
                status: status.as_u16(),
                detail,
            });
        }
        let too_large = || QueryError::BodyTooLarge {
            address: self.address.clone(),
            limit: max_bytes,
        };
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| QueryError::ReadBody {
            address: self.address.clone(),
            message: e.without_url().to_string(),
        })? {
            if body.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// The error for a body that did not decode: under an error status, what the
    /// backend said (an error status is the source's failure, whatever its body
    /// holds); else the decoding error.
    fn undecodable(
        &self,
        status: reqwest::StatusCode,
        body: &[u8],
        source: DecodeError,
    ) -> QueryError {
        if status.is_success() {
            QueryError::Decode {
                address: self.address.clone(),
                source,
            }
        } else {
            QueryError::HttpStatus {
                address: self.address.clone(),
                status: status.as_u16(),
                detail: snippet(&body[..body.len().min(DETAIL_BYTES + 1)]),
            }
        }
    }

    /// An answer with warnings may be partial: refused unless the source accepts
    /// partial responses.
    fn refuse_partial(&self, warnings: &[String]) -> Result<(), QueryError> {
        if warnings.is_empty() || self.partial_response == PartialResponse::Accept {
            return Ok(());
        }
        Err(QueryError::Partial {
            address: self.address.clone(),
            warnings: snippet(warnings.join("; ").as_bytes()),
        })
    }

    /// One instant query, reading at most `max_bytes` of the answer.
    pub async fn query_instant(&self, query: &str, max_bytes: u64) -> Result<Reading, QueryError> {
        let (status, body) = self.get(Endpoint::Query, query, &[], max_bytes).await?;
        let answer =
            decode_instant_answer(&body).map_err(|e| self.undecodable(status, &body, e))?;
        self.refuse_partial(&answer.warnings)?;
        Ok(answer.reading)
    }

    /// Samples `(unix ms, value)` of `query` over `[start, end]` (Unix seconds) every
    /// `step_secs`. The query must return at most one series; none is an empty list.
    /// `progress(done, total)` is called after each chunk.
    pub async fn query_range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_secs: i64,
        progress: impl FnMut(i64, i64),
    ) -> Result<Vec<(i64, f64)>, QueryError> {
        let mut series = self
            .query_range_series(query, start, end, step_secs, 1, progress)
            .await?;
        Ok(series.pop().map(|(_, samples)| samples).unwrap_or_default())
    }

    /// Like [`Self::query_range`], for queries that return several series (at most
    /// `max_series`): each with its labels, sorted by them.
    pub async fn query_range_series(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_secs: i64,
        max_series: usize,
        mut progress: impl FnMut(i64, i64),
    ) -> Result<Vec<(Labels, Vec<(i64, f64)>)>, QueryError> {
        let step = step_secs.max(1);
        let chunk = MAX_POINTS_PER_REQUEST * step;
        let total = ((end - start) / step + 1).max(0);
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut from = start;
        while from <= end {
            let to = (from + chunk - step).min(end);
            let params = [
                ("start", from.to_string()),
                ("end", to.to_string()),
                ("step", step.to_string()),
            ];
            let (status, body) = self
                .get(Endpoint::QueryRange, query, &params, MAX_RANGE_BYTES)
                .await?;
            let answer = match decode_range(&body) {
                Ok(answer) => answer,
                Err(DecodeError::UnexpectedType(kind)) if status.is_success() => {
                    return Err(QueryError::UnexpectedResult {
                        query: query.to_string(),
                        kind,
                    });
                }
                Err(e) => return Err(self.undecodable(status, &body, e)),
            };
            self.refuse_partial(&answer.warnings)?;
            for (labels, samples) in answer.series {
                out.entry(labels).or_default().extend(samples);
            }
            if out.len() > max_series {
                return Err(QueryError::TooManySeries {
                    query: query.to_string(),
                    count: out.len(),
                });
            }
            progress(((to - start) / step + 1).min(total), total);
            from = to + step;
        }
        Ok(out.into_iter().collect())
    }
}

/// The transport cause under a client error ("connection refused", "timed out").
fn cause(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out = format!(": {s}");
        source = s.source();
    }
    out
}

/// What a TLS failure under a client error means, in words: rustls names the
/// alert (`UnknownCA`), not whose certificate was refused.
fn tls_hint(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return tls_meaning(tls)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
        }
        // An io::Error shows its inner error but does not give it as its source.
        source = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    String::new()
}

fn tls_meaning(e: &rustls::Error) -> Option<&'static str> {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(
            A::UnknownCA
            | A::BadCertificate
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied,
        ) => Some(
            "TLS: the server refused the handshake: it wants a client certificate it trusts (tls.clientCertificate)",
        ),
        rustls::Error::InvalidCertificate(_) => Some(
            "TLS: the server's certificate is not trusted for this name (caBundle, tls.serverName)",
        ),
        _ => None,
    }
}

impl crate::error::Category for QueryError {
    /// A short, bounded label for Events and metrics.
    fn category(&self) -> &'static str {
        match self {
            QueryError::Address { .. } | QueryError::Tls(_) | QueryError::HttpClient(_) => {
                "Configuration"
            }
            QueryError::QueryPrometheus { source, .. } if source.is_timeout() => "Timeout",
            QueryError::QueryPrometheus { source, .. } if source.is_connect() => "Connect",
            QueryError::QueryPrometheus { .. } => "QueryPrometheus",
            QueryError::Partial { .. } => "PartialResponse",
            QueryError::ReadBody { .. } => "ReadBody",
            QueryError::HttpStatus { .. } => "HttpStatus",
            QueryError::BodyTooLarge { .. } => "BodyTooLarge",
            QueryError::TooManySeries { .. }
            | QueryError::Decode {
                source: DecodeError::TooManySeries(_),
                ..
            } => "TooManySeries",
            QueryError::Decode {
                source: DecodeError::Api { .. },
                ..
            } => "PrometheusError",
            QueryError::Decode { .. } => "Decode",
            QueryError::UnexpectedResult { .. } => "UnexpectedResult",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_error(source: DecodeError) -> QueryError {
        QueryError::Decode {
            address: "http://p".into(),
            source,
        }
    }

    #[test]
    fn an_http_error_says_what_the_backend_said_bounded_and_escaped() {
        let e = QueryError::HttpStatus {
            address: "http://cortex:9009/prometheus".into(),
            status: 401,
            detail: snippet(b"no org id\n"),
        };
        assert_eq!(
            e.to_string(),
            "Prometheus at http://cortex:9009/prometheus answered HTTP 401 Unauthorized: no org id"
        );
        // The source's message (shown to every namespace) keeps the status only
        // when the body quotes the query...
        assert_eq!(
            e.source_message_for("no org id"),
            "Prometheus at http://cortex:9009/prometheus answered HTTP 401 Unauthorized"
        );
        // ...or what an authentication refusal said, when it does not quote the query.
        assert_eq!(
            e.source_message_for("sum(up)"),
            "Prometheus at http://cortex:9009/prometheus answered HTTP 401 Unauthorized: no org id"
        );
        let echo = QueryError::HttpStatus {
            address: "p".into(),
            status: 403,
            detail: "denied: sum(secret_marker)".into(),
        };
        assert_eq!(
            echo.source_message_for("sum(secret_marker)"),
            "Prometheus at p answered HTTP 403 Forbidden"
        );
        let other = QueryError::HttpStatus {
            address: "p".into(),
            status: 500,
            detail: "boom".into(),
        };
        assert_eq!(
            other.source_message_for("x"),
            "Prometheus at p answered HTTP 500 Internal Server Error"
        );
        assert_eq!(snippet(b"a\x1b[31mred\r\nb"), "a\\u{1b}[31mred\\r\\nb");
        let long = "é".repeat(300);
        let s = snippet(long.as_bytes());
        assert!(
            s.ends_with("...") && s.len() <= DETAIL_BYTES + 3,
            "{}",
            s.len()
        );
        assert_eq!(snippet(b""), "");
        assert_eq!(
            QueryError::HttpStatus {
                address: "p".into(),
                status: 599,
                detail: String::new()
            }
            .to_string(),
            "Prometheus at p answered HTTP 599"
        );
    }

    /// A 503 with Prometheus's JSON error body (the chaos suite's broken
    /// Prometheus) is the source failing, and counts against its breaker.
    #[test]
    fn an_error_status_is_the_sources_failure_whatever_its_body() {
        let p =
            Prometheus::new("http://127.0.0.1:9", None, Duration::from_secs(1)).expect("a client");
        let body = br#"{"status":"error","errorType":"internal","error":"injected 503"}"#;
        let decoded = super::super::decode::decode_instant(body).expect_err("an API error");
        let e = p.undecodable(reqwest::StatusCode::SERVICE_UNAVAILABLE, body, decoded);
        assert!(e.is_source_failure(), "{e}");
        assert!(
            e.to_string()
                .contains("answered HTTP 503 Service Unavailable: {\"status\":\"error\""),
            "{e}"
        );
        let html = super::super::decode::decode_instant(b"<html>").expect_err("not JSON");
        let e = p.undecodable(reqwest::StatusCode::OK, b"<html>", html);
        assert!(
            matches!(e, QueryError::Decode { .. }) && e.is_source_failure(),
            "{e}"
        );
    }

    #[test]
    fn the_api_lives_under_the_address_path() {
        let p = Prometheus::new(
            "http://cortex:9009/prometheus/",
            None,
            Duration::from_secs(1),
        )
        .expect("a client");
        assert_eq!(
            p.query_url.as_str(),
            "http://cortex:9009/prometheus/api/v1/query"
        );
        assert_eq!(
            p.query_range_url.as_str(),
            "http://cortex:9009/prometheus/api/v1/query_range"
        );
        let bad = Prometheus::new("http://p:9090/?x=1", None, Duration::from_secs(1));
        assert!(matches!(bad, Err(QueryError::Address { .. })));
    }

    #[test]
    fn tls_failures_say_whose_certificate() {
        let refused = tls_meaning(&rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA,
        ));
        assert!(refused.is_some_and(|m| m.contains("client certificate")));
        let untrusted = tls_meaning(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(untrusted.is_some_and(|m| m.contains("server's certificate")));
        assert_eq!(
            tls_meaning(&rustls::Error::AlertReceived(
                rustls::AlertDescription::InternalError
            )),
            None
        );
    }

    #[test]
    fn only_errors_of_the_source_count_against_its_breaker() {
        assert!(
            QueryError::HttpStatus {
                address: "p".into(),
                status: 502,
                detail: String::new(),
            }
            .is_source_failure()
        );
        assert!(
            QueryError::BodyTooLarge {
                address: "p".into(),
                limit: 1
            }
            .is_source_failure()
        );
        assert!(decode_error(DecodeError::Malformed("<html>".into())).is_source_failure());
        assert!(!decode_error(DecodeError::TooManySeries(3)).is_source_failure());
        assert!(
            !decode_error(DecodeError::Api {
                kind: "bad_data".into(),
                message: "x".into()
            })
            .is_source_failure()
        );
        assert!(!decode_error(DecodeError::UnexpectedType("string".into())).is_source_failure());
    }
}

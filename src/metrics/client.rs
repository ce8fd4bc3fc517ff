//! A Prometheus HTTP API client over `prometheus-http-query`, with a timeout, an
//! optional CA bundle and credentials. Instant queries read the body with a size
//! limit and decode it ourselves (`decode`); range queries are split into chunks
//! Prometheus accepts (at most 11,000 points per series) and report progress.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_http_query::response::Data;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::decode::{DecodeError, Reading, decode_instant};

/// Points per range-query request (Prometheus refuses more than 11,000).
pub const MAX_POINTS_PER_REQUEST: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid Prometheus address {address:?}: {source}")]
    Address {
        address: String,
        source: prometheus_http_query::Error,
    },
    #[error("invalid CA bundle: {0}")]
    CaBundle(String),
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
    #[error(
        "querying Prometheus at {address} for {query:?}: {source}{}",
        cause(source)
    )]
    QueryPrometheus {
        address: String,
        query: String,
        source: prometheus_http_query::Error,
    },
    #[error(
        "query {query:?} returned {count} series; a policy metric must return exactly one (aggregate it, e.g. sum(...))"
    )]
    TooManySeries { query: String, count: usize },
    #[error("query {query:?} returned a {kind} result; expected a vector or a matrix")]
    UnexpectedResult { query: String, kind: &'static str },
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
        source: DecodeError,
    },
}

impl QueryError {
    /// Whether the error says the *source* is unwell (transport, timeout, HTTP
    /// status, an oversized or unreadable body) rather than that this one query is
    /// wrong (several series, a PromQL error, a string result). Only the former
    /// count against the source's breaker, so one tenant's bad query cannot cut
    /// every other tenant off the source.
    pub fn is_source_failure(&self) -> bool {
        match self {
            QueryError::TooManySeries { .. } | QueryError::UnexpectedResult { .. } => false,
            QueryError::Decode { source, .. } => matches!(source, DecodeError::Malformed(_)),
            _ => true,
        }
    }

    /// The error as a fact about the source (address, HTTP status, transport
    /// cause), without the query that met it. A source is shared by policies in
    /// many namespaces and its last error is shown to all of them, so it must not
    /// carry one policy's query into another's status or Events.
    pub fn source_message(&self) -> String {
        match self {
            QueryError::QueryPrometheus {
                address, source, ..
            } => format!(
                "querying Prometheus at {address}: {source}{}",
                cause(source)
            ),
            QueryError::TooManySeries { count, .. } => {
                format!("a query returned {count} series")
            }
            QueryError::UnexpectedResult { kind, .. } => {
                format!("a query returned a {kind} result")
            }
            // The status, not the body: a backend may echo the query in it.
            QueryError::HttpStatus {
                address, status, ..
            } => format!(
                "Prometheus at {address} answered HTTP {status}{}",
                reason_phrase(*status)
            ),
            QueryError::Address { .. }
            | QueryError::CaBundle(_)
            | QueryError::HttpClient(_)
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

/// One Prometheus-compatible endpoint.
#[derive(Clone)]
pub struct Prometheus {
    address: String,
    client: prometheus_http_query::Client,
    /// `Authorization` header, marked sensitive so it is never logged.
    auth: Option<HeaderValue>,
}

impl Prometheus {
    /// A client for `address`, trusting `ca_bundle` (PEM) in addition to the system
    /// roots, with a per-request `timeout`.
    pub fn new(
        address: &str,
        ca_bundle: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, QueryError> {
        super::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some(pem) = ca_bundle {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| QueryError::CaBundle(e.to_string()))?;
            if certs.is_empty() {
                return Err(QueryError::CaBundle("no PEM certificate found".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| QueryError::HttpClient(e.to_string()))?;
        let client = prometheus_http_query::Client::from(http, address).map_err(|source| {
            QueryError::Address {
                address: address.to_string(),
                source,
            }
        })?;
        Ok(Self {
            address: address.to_string(),
            client,
            auth: None,
        })
    }

    /// Send `Authorization: <value>` with every query (bearer or basic).
    pub fn with_authorization(mut self, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.auth = Some(value);
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn query_error(&self, query: &str, source: prometheus_http_query::Error) -> QueryError {
        QueryError::QueryPrometheus {
            address: self.address.clone(),
            query: query.to_string(),
            source,
        }
    }

    /// One instant query, reading at most `max_bytes` of the answer.
    pub async fn query_instant(&self, query: &str, max_bytes: u64) -> Result<Reading, QueryError> {
        let mut builder = self.client.query(query);
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let mut response = builder
            .get_raw()
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
            message: e.to_string(),
        })? {
            if body.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        match decode_instant(&body) {
            Err(_) if !status.is_success() => Err(QueryError::HttpStatus {
                address: self.address.clone(),
                status: status.as_u16(),
                detail: snippet(&body[..body.len().min(DETAIL_BYTES + 1)]),
            }),
            other => other.map_err(|source| QueryError::Decode {
                address: self.address.clone(),
                source,
            }),
        }
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
            let result = self
                .client
                .query_range(query, from, to, step as f64)
                .get()
                .await
                .map_err(|source| self.query_error(query, source))?;
            match result.data() {
                Data::Matrix(series) => {
                    for s in series {
                        let labels: Labels = s
                            .metric()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        out.entry(labels).or_default().extend(
                            s.samples()
                                .iter()
                                .map(|p| ((p.timestamp() * 1000.0).round() as i64, p.value())),
                        );
                    }
                    if out.len() > max_series {
                        return Err(QueryError::TooManySeries {
                            query: query.to_string(),
                            count: out.len(),
                        });
                    }
                }
                Data::Vector(_) => {
                    return Err(QueryError::UnexpectedResult {
                        query: query.to_string(),
                        kind: "vector",
                    });
                }
                Data::Scalar(_) => {
                    return Err(QueryError::UnexpectedResult {
                        query: query.to_string(),
                        kind: "scalar",
                    });
                }
            }
            progress(((to - start) / step + 1).min(total), total);
            from = to + step;
        }
        Ok(out.into_iter().collect())
    }
}

/// A series' labels, sorted.
pub type Labels = BTreeMap<String, String>;

/// The transport cause under a client error ("connection refused", "timed out"),
/// which `prometheus-http-query` keeps as the error's source.
fn cause(e: &prometheus_http_query::Error) -> String {
    let mut out = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out = format!(": {s}");
        source = s.source();
    }
    out
}

impl crate::error::Category for QueryError {
    /// A short, bounded label for Events and metrics.
    fn category(&self) -> &'static str {
        match self {
            QueryError::Address { .. } | QueryError::CaBundle(_) | QueryError::HttpClient(_) => {
                "Configuration"
            }
            QueryError::QueryPrometheus { source, .. } => match source {
                prometheus_http_query::Error::Client(e)
                    if e.inner().is_some_and(|r| r.is_timeout()) =>
                {
                    "Timeout"
                }
                prometheus_http_query::Error::Client(e)
                    if e.inner().is_some_and(|r| r.is_connect()) =>
                {
                    "Connect"
                }
                _ => "QueryPrometheus",
            },
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
        // The source's message (shown to every namespace) keeps the status only.
        assert_eq!(
            e.source_message(),
            "Prometheus at http://cortex:9009/prometheus answered HTTP 401 Unauthorized"
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

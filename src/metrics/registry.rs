//! The metrics sources the operator may query: one client per `ClusterMetricsSource`
//! (built from the watched object and the Secrets it names, shared by every policy
//! that uses it), plus an optional default source from an operator flag. Each source
//! has one breaker (backoff + circuit), so a failing endpoint is not hammered however
//! many policies use it. `allowedNamespaces` is enforced here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use reqwest::header::{HeaderName, HeaderValue};

use super::breaker::{Admission, Breaker, CircuitState};
use super::client::{ClientOptions, Prometheus, QueryError};
use super::decode::Reading;
use super::flight::{Flights, Origin};
use super::tls::ClientIdentity;
use crate::api::{ClusterMetricsSource, ClusterMetricsSourceSpec, SourceAuth};

/// Name under which the flag-configured default source is known.
pub const DEFAULT_SOURCE: &str = "default";

/// Settings shared by all sources.
#[derive(Clone, Debug)]
pub struct SourceDefaults {
    pub timeout: Duration,
    pub max_response_bytes: u64,
    pub failure_threshold: u32,
    pub open_duration: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Re-read a source's Secrets this often, so rotated ones are picked up
    /// without a restart; the client (and its connections) is rebuilt only when
    /// they changed.
    pub refresh: Duration,
}

impl Default for SourceDefaults {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024 * 1024,
            failure_threshold: 5,
            open_duration: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            refresh: Duration::from_secs(60),
        }
    }
}

/// One usable source.
pub struct SourceHandle {
    pub name: String,
    generation: Option<i64>,
    built_at: std::time::Instant,
    /// What the client was built from (Secrets' contents included), hashed.
    fingerprint: u64,
    client: Prometheus,
    allowed: Vec<String>,
    max_bytes: u64,
    breaker: Arc<Mutex<Breaker>>,
    /// Identical queries at about the same time share one request.
    flights: Flights<Result<Reading, Arc<QueryError>>>,
}

/// What a query against a source gave.
#[derive(Debug)]
pub enum Outcome {
    Reading(Reading),
    Failed {
        /// Shared: policies that asked the same query at once share its error.
        error: Arc<QueryError>,
        opened_circuit: bool,
    },
    /// Not sent: the source is backing off or its circuit is open.
    Skipped(Admission),
}

impl SourceHandle {
    pub fn allows(&self, namespace: &str) -> bool {
        self.allowed.iter().any(|n| n == "*" || n == namespace)
    }

    pub fn address(&self) -> &str {
        self.client.address()
    }

    /// Why the source's last failed query failed, while it is failing.
    pub fn last_error(&self) -> Option<String> {
        self.breaker
            .lock()
            .ok()
            .and_then(|b| b.last_error().map(str::to_string))
    }

    pub fn circuit(&self) -> CircuitState {
        self.breaker
            .lock()
            .map(|b| b.state())
            .unwrap_or(CircuitState::Closed)
    }

    /// Run `query` through the breaker. `now` is Unix ms. The same query asked
    /// again while it is in flight, or within a second of it, has its answer
    /// (flight.rs); only the request actually sent counts for the breaker.
    pub async fn query(&self, query: &str, now: i64) -> Outcome {
        let admission = match self.breaker.lock() {
            Ok(mut b) => b.admit(now),
            Err(_) => Admission::Allowed,
        };
        if admission != Admission::Allowed {
            return Outcome::Skipped(admission);
        }
        let (result, origin) = self
            .flights
            .run(query, || async {
                self.client
                    .query_instant(query, self.max_bytes)
                    .await
                    .map_err(Arc::new)
            })
            .await;
        if origin == Origin::Shared {
            return match result {
                Ok(reading) => Outcome::Reading(reading),
                Err(error) => Outcome::Failed {
                    error,
                    opened_circuit: false,
                },
            };
        }
        let mut breaker = match self.breaker.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        match result {
            Ok(reading) => {
                breaker.success();
                Outcome::Reading(reading)
            }
            Err(error) if error.is_source_failure() => {
                breaker.note_error(error.source_message_for(query));
                let opened_circuit = breaker.failure(now);
                Outcome::Failed {
                    error,
                    opened_circuit,
                }
            }
            Err(error) => {
                // The source answered; the query is what is wrong.
                breaker.success();
                Outcome::Failed {
                    error,
                    opened_circuit: false,
                }
            }
        }
    }
}

/// Why a policy's metric has no source to ask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("metrics source {0:?} does not exist")]
    NotFound(String),
    #[error("no source is named and the operator has no default source (--prometheus-url)")]
    NoDefault,
    #[error(
        "metrics source {name:?} does not allow namespace {namespace:?} (spec.allowedNamespaces)"
    )]
    NotAllowed { name: String, namespace: String },
    #[error("metrics source {name:?} is not usable: {message}")]
    Broken { name: String, message: String },
}

impl LookupError {
    /// Why the metric that names this source has no sample.
    pub fn cause(&self) -> super::MissingCause {
        match self {
            LookupError::NotFound(_) | LookupError::NoDefault => {
                super::MissingCause::SourceNotFound
            }
            LookupError::NotAllowed { .. } => super::MissingCause::SourceNotAllowed,
            LookupError::Broken { .. } => super::MissingCause::SourceInvalid,
        }
    }
}

pub struct Registry {
    client: Client,
    store: Store<ClusterMetricsSource>,
    defaults: SourceDefaults,
    default: Option<Arc<SourceHandle>>,
    cache: Mutex<HashMap<String, Arc<SourceHandle>>>,
}

impl Registry {
    pub fn new(
        client: Client,
        store: Store<ClusterMetricsSource>,
        defaults: SourceDefaults,
        default_url: Option<&str>,
    ) -> Result<Self, QueryError> {
        let default = match default_url {
            Some(url) => Some(Arc::new(SourceHandle {
                name: DEFAULT_SOURCE.into(),
                generation: None,
                built_at: std::time::Instant::now(),
                fingerprint: 0,
                client: Prometheus::new(url, None, defaults.timeout)?,
                allowed: vec!["*".into()],
                max_bytes: defaults.max_response_bytes,
                breaker: Arc::new(Mutex::new(breaker_for(DEFAULT_SOURCE, &defaults, None))),
                flights: Flights::default(),
            })),
            None => None,
        };
        Ok(Self {
            client,
            store,
            defaults,
            default,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The source a metric of a policy in `namespace` uses.
    pub async fn resolve(
        &self,
        name: Option<&str>,
        namespace: &str,
    ) -> Result<Arc<SourceHandle>, LookupError> {
        let Some(name) = name else {
            return self.default.clone().ok_or(LookupError::NoDefault);
        };
        let object = match self.store.get(&ObjectRef::new(name)) {
            Some(object) => object,
            // Created a moment ago (a GitOps sync applies a source and its policies
            // together): the watch may not have delivered it yet. Ask before saying
            // it does not exist.
            None => match Api::<ClusterMetricsSource>::all(self.client.clone())
                .get_opt(name)
                .await
            {
                Ok(Some(object)) => Arc::new(object),
                Ok(None) | Err(_) => return Err(LookupError::NotFound(name.into())),
            },
        };
        // Checked on the object itself, before any client is built or Secret read:
        // a namespace that may not use the source learns nothing else about it.
        if !object
            .spec
            .allowed_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
        {
            return Err(LookupError::NotAllowed {
                name: name.into(),
                namespace: namespace.into(),
            });
        }
        let generation = object.metadata.generation;
        let cached = self.cache.lock().ok().and_then(|c| c.get(name).cloned());
        match cached {
            Some(h)
                if h.generation == generation && h.built_at.elapsed() < self.defaults.refresh =>
            {
                Ok(h)
            }
            previous => {
                match self.build(name, &object, previous.as_deref()).await {
                    Ok(handle) => {
                        let handle = Arc::new(handle);
                        if let Ok(mut cache) = self.cache.lock() {
                            cache.insert(name.to_string(), handle.clone());
                        }
                        Ok(handle)
                    }
                    // A failed periodic refresh (say a Secret read timed out) keeps the
                    // working client of the same spec rather than dropping it.
                    Err(e) => match previous {
                        Some(p) if p.generation == generation => {
                            tracing::warn!(source = %name, error = %e, "refreshing the metrics source failed; keeping the current client");
                            Ok(p)
                        }
                        _ => Err(e),
                    },
                }
            }
        }
    }

    async fn build(
        &self,
        name: &str,
        object: &ClusterMetricsSource,
        previous: Option<&SourceHandle>,
    ) -> Result<SourceHandle, LookupError> {
        let spec = &object.spec;
        let broken = |message: String| LookupError::Broken {
            name: name.into(),
            message,
        };
        // The same rules as admission, for objects admitted before a rule existed
        // (a metadata endpoint, say): never queried, whatever the API server holds.
        let refused = crate::api::validation::source_errors(spec);
        if !refused.is_empty() {
            return Err(broken(refused.join("; ")));
        }
        let options = client_options(&self.client, spec).await.map_err(broken)?;
        let fingerprint = options.fingerprint();
        let client = match previous {
            // Same spec, same Secrets: keep the client and its open connections.
            Some(p)
                if p.generation == object.metadata.generation && p.fingerprint == fingerprint =>
            {
                p.client.clone()
            }
            _ => Prometheus::with_options(&spec.address, options)
                .map_err(|e| broken(e.to_string()))?,
        };
        let breaker = previous.map(|p| p.breaker.clone()).unwrap_or_else(|| {
            Arc::new(Mutex::new(breaker_for(name, &self.defaults, Some(object))))
        });
        Ok(SourceHandle {
            name: name.into(),
            generation: object.metadata.generation,
            built_at: std::time::Instant::now(),
            fingerprint,
            client,
            allowed: spec.allowed_namespaces.clone(),
            max_bytes: spec.max_response_bytes,
            breaker,
            flights: Flights::default(),
        })
    }
}

/// Everything but the address a client for `spec` needs, with the Secrets it
/// names read through `client`. Errors name the Secret and key, never a value.
/// The operator and `ballast query --source` build their clients alike.
pub async fn client_options(
    client: &Client,
    spec: &ClusterMetricsSourceSpec,
) -> Result<ClientOptions, String> {
    let mut options = ClientOptions::new(spec.timeout.to_std());
    options.tls.ca_bundle = spec.ca_bundle.clone();
    if let Some(auth) = &spec.auth {
        options.authorization = Some(authorization(client, auth).await?);
    }
    for (i, header) in spec.headers.iter().enumerate() {
        let field = format!("spec.headers[{i}]");
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("{field}.name: {:?} is not an HTTP header name", header.name))?;
        let value = match (&header.value, &header.value_from) {
            (Some(value), None) => value.clone(),
            (None, Some(from)) => {
                let r = &from.secret_key_ref;
                secret_value(client, &r.namespace, &r.name, &r.key).await?
            }
            _ => return Err(format!("{field}: set exactly one of value or valueFrom")),
        };
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            format!("{field}: the value contains characters not allowed in an HTTP header")
        })?;
        options.headers.push((name, value));
    }
    if let Some(tenant) = &spec.tenant {
        let value = HeaderValue::from_str(tenant)
            .map_err(|_| "spec.tenant: not allowed in an HTTP header".to_string())?;
        options
            .headers
            .push((HeaderName::from_static(TENANT_HEADER), value));
    }
    if let Some(tls) = &spec.tls {
        options.tls.server_name = tls.server_name.clone();
        options.tls.insecure_skip_verify = tls.insecure_skip_verify;
        if let Some(secret) = &tls.client_certificate {
            let [certificate_pem, key_pem] = secret_values(
                client,
                &secret.namespace,
                &secret.name,
                ["tls.crt", "tls.key"],
            )
            .await?;
            options.tls.identity = Some(ClientIdentity {
                certificate_pem,
                key_pem,
            });
        }
    }
    options.query_parameters = spec
        .query_parameters
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    options.partial_response = spec.partial_response;
    Ok(options)
}

/// The header a tenant is sent in (Cortex, Mimir, Thanos Receive).
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// The `Authorization` header from the Secret(s) `auth` names.
async fn authorization(client: &Client, auth: &SourceAuth) -> Result<HeaderValue, String> {
    let value = if let Some(token) = &auth.bearer_token {
        let t = secret_value(client, &token.namespace, &token.name, &token.key).await?;
        format!("Bearer {}", t.trim())
    } else if let Some(basic) = &auth.basic {
        let [user, pass] = secret_values(
            client,
            &basic.namespace,
            &basic.name,
            [&basic.username_key, &basic.password_key],
        )
        .await?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {encoded}")
    } else {
        return Err("spec.auth names neither bearerToken nor basic".into());
    };
    HeaderValue::from_str(&value)
        .map_err(|_| "the credential contains characters not allowed in an HTTP header".into())
}

/// The values of `keys` in one Secret, read with one GET. Errors name the Secret
/// and key, never a value.
async fn secret_values<const N: usize>(
    client: &Client,
    namespace: &str,
    name: &str,
    keys: [&str; N],
) -> Result<[String; N], String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await.map_err(|e| {
        format!(
            "reading Secret {namespace}/{name}: {}",
            crate::kube_error::short(&e)
        )
    })?;
    let mut values = Vec::with_capacity(N);
    for key in keys {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| format!("Secret {namespace}/{name} has no key {key:?}"))?;
        values.push(
            String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("Secret {namespace}/{name} key {key:?} is not UTF-8"))?,
        );
    }
    values
        .try_into()
        .map_err(|_| format!("Secret {namespace}/{name}: a key went missing"))
}

async fn secret_value(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, String> {
    let [value] = secret_values(client, namespace, name, [key]).await?;
    Ok(value)
}

fn breaker_for(name: &str, d: &SourceDefaults, object: Option<&ClusterMetricsSource>) -> Breaker {
    let cb = object.and_then(|o| o.spec.circuit_breaker.as_ref());
    Breaker::new(
        name,
        cb.map_or(d.failure_threshold, |c| c.failure_threshold),
        cb.map_or(d.open_duration, |c| c.open_duration.to_std())
            .as_millis() as i64,
        d.backoff_base.as_millis() as i64,
        d.backoff_cap.as_millis() as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    /// A policy applied together with its source may tick before the source's
    /// watch event arrives: the source is read from the API server, not reported
    /// missing.
    #[tokio::test]
    async fn a_source_not_yet_in_the_cache_is_read_from_the_api_server() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let (store, _writer) = kube::runtime::reflector::store::<ClusterMetricsSource>();
        let registry = Registry::new(
            kube::Client::new(service, "default"),
            store,
            SourceDefaults::default(),
            None,
        )
        .expect("registry");
        let server = tokio::spawn(async move {
            for found in [true, false] {
                let (request, respond) = handle.next_request().await.expect("a GET");
                assert_eq!(
                    request.uri().path(),
                    "/apis/autoscaling.ballast.dev/v1alpha1/clustermetricssources/prom"
                );
                let (status, body) = if found {
                    (
                        200,
                        serde_json::json!({
                            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
                            "metadata": {"name": "prom", "generation": 1},
                            "spec": {"address": "http://127.0.0.1:9090", "allowedNamespaces": ["shop"]}
                        }),
                    )
                } else {
                    (
                        404,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"}),
                    )
                };
                let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap()));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                respond.send_response(response);
            }
        });
        let handle = registry
            .resolve(Some("prom"), "shop")
            .await
            .expect("found through the API");
        assert_eq!(handle.address(), "http://127.0.0.1:9090");
        // Deleted since: asked again (a miss is never cached), and reported missing.
        assert_eq!(
            registry.resolve(Some("prom"), "shop").await.err(),
            Some(LookupError::NotFound("prom".into()))
        );
        server.await.expect("server");
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> serde_json::Value {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    base64::engine::general_purpose::STANDARD.encode(v).into(),
                )
            })
            .collect();
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "ballast-system"}, "data": data})
    }

    /// Headers from Secrets, the tenant and the client certificate reach the
    /// client's options, read as the operator reads them; a missing key is named
    /// without any value.
    #[tokio::test]
    async fn headers_tenant_and_client_certificates_come_from_secrets() {
        let spec: ClusterMetricsSourceSpec = serde_json::from_value(serde_json::json!({
            "address": "https://cortex:9009/prometheus", "allowedNamespaces": ["*"],
            "tenant": "team-a",
            "headers": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef":
                {"namespace": "ballast-system", "name": "gateway", "key": "api-key"}}},
                {"name": "X-Source", "value": "ballast"}],
            "tls": {"clientCertificate": {"namespace": "ballast-system", "name": "client-tls"}},
            "queryParameters": {"dedup": "true"}
        }))
        .expect("spec");
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let server = tokio::spawn(async move {
            let answers = [
                secret("gateway", &[("api-key", "k-123\n")]),
                // Both keys of the TLS Secret from one read.
                secret(
                    "client-tls",
                    &[("tls.crt", "CERT"), ("tls.key", "KEY-MATERIAL")],
                ),
                secret("gateway", &[("other", "k-123")]),
            ];
            for body in answers {
                let (request, respond) = handle.next_request().await.expect("a GET");
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert_eq!(
                    request.uri().path(),
                    format!("/api/v1/namespaces/ballast-system/secrets/{name}")
                );
                respond.send_response(Response::new(Body::from(
                    serde_json::to_vec(&body).expect("json"),
                )));
            }
        });
        let options = client_options(&client, &spec).await.expect("options");
        let headers: Vec<(String, String)> = options
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("x-api-key".to_string(), "k-123".to_string()),
                ("x-source".to_string(), "ballast".to_string()),
                (TENANT_HEADER.to_string(), "team-a".to_string()),
            ]
        );
        let identity = options.tls.identity.as_ref().expect("a client certificate");
        assert_eq!(
            (identity.certificate_pem.as_str(), identity.key_pem.as_str()),
            ("CERT", "KEY-MATERIAL")
        );
        assert_eq!(
            options.query_parameters,
            vec![("dedup".into(), "true".into())]
        );
        // The Secret rotated to lack the key: named, with no value in the message.
        let mut only_header = spec.clone();
        only_header.tls = None;
        let error = client_options(&client, &only_header)
            .await
            .expect_err("no key api-key");
        assert_eq!(
            error,
            "Secret ballast-system/gateway has no key \"api-key\""
        );
        server.await.expect("server");
    }

    /// Policies asking one query of one source at once cost one request, and
    /// all of them have its answer; another query is another request.
    #[tokio::test]
    async fn the_same_query_at_once_is_one_request() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            counted.fetch_add(1, Ordering::SeqCst);
                            // Slow enough for every asker to arrive while in flight.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"7"]}]}}"#;
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let defaults = SourceDefaults::default();
        let source = Arc::new(SourceHandle {
            name: "shared".into(),
            generation: None,
            built_at: std::time::Instant::now(),
            fingerprint: 0,
            client: Prometheus::new(&address, None, Duration::from_secs(5)).expect("client"),
            allowed: vec!["*".into()],
            max_bytes: defaults.max_response_bytes,
            breaker: Arc::new(Mutex::new(breaker_for("shared", &defaults, None))),
            flights: Flights::default(),
        });
        let asks = (0..8).map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.query("sum(up)", 0).await })
        });
        for ask in asks {
            match ask.await.expect("task") {
                Outcome::Reading(Reading::Value { value, .. }) => assert_eq!(value, 7.0),
                other => panic!("every asker has the answer: {other:?}"),
            }
        }
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "eight askers, one request"
        );
        let Outcome::Reading(_) = source.query("sum(other)", 0).await else {
            panic!("another query is answered");
        };
        assert_eq!(
            requests.load(Ordering::SeqCst),
            2,
            "another query, another request"
        );
    }

    /// A shared source's last error reached another namespace's status with the
    /// query of the policy that met it (a connection reset).
    #[tokio::test]
    async fn a_sources_last_error_never_carries_a_query() {
        // Nothing listens on port 1 of loopback: a real refused connection.
        let defaults = SourceDefaults::default();
        let source = SourceHandle {
            name: "shared".into(),
            generation: None,
            built_at: std::time::Instant::now(),
            fingerprint: 0,
            client: Prometheus::new("http://127.0.0.1:1", None, Duration::from_secs(2))
                .expect("client"),
            allowed: vec!["*".into()],
            max_bytes: defaults.max_response_bytes,
            breaker: Arc::new(Mutex::new(breaker_for("shared", &defaults, None))),
            flights: Flights::default(),
        };
        let query = r#"sum(rate(secret_marker_b{team="b"}[1m]))"#;
        let Outcome::Failed { error, .. } = source.query(query, 0).await else {
            panic!("a refused connection fails the query");
        };
        assert!(
            error.to_string().contains("secret_marker_b"),
            "the policy's own error names its query: {error}"
        );
        let last = source
            .last_error()
            .expect("the source keeps its last error");
        assert!(!last.contains("secret_marker_b"), "{last}");
        assert!(last.contains("127.0.0.1:1"), "it names the source: {last}");
    }
}

//! The webhook's HTTPS endpoint: `POST /validate` answers AdmissionReviews for
//! `CustomScalingPolicy` and `ClusterMetricsSource`. Bounded like the admin server
//! (body limit, header and handshake timeouts, connection and concurrency limits).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tracing::{debug, info, warn};

use super::admission::{self, Operation, Request, Verdict};
use super::checks;
use super::facts::FactFinder;
use crate::telemetry::server::{Limits, with_limits};
use crate::telemetry::{AdmissionLabels, Metrics};

/// Limits of the webhook server. The API server sends the object and, on update,
/// the old object: 2 MiB holds two of the largest objects etcd stores.
pub fn limits() -> Limits {
    Limits {
        max_body_bytes: 2 * 1024 * 1024,
        ..Limits::default()
    }
}

struct WebhookState {
    finder: FactFinder,
    metrics: Arc<Metrics>,
    operator_namespace: String,
}

/// The webhook router: `/validate` and a plain `/healthz`.
pub fn router(
    finder: FactFinder,
    metrics: Arc<Metrics>,
    operator_namespace: String,
    limits: &Limits,
) -> Router {
    let state = Arc::new(WebhookState {
        finder,
        metrics,
        operator_namespace,
    });
    let routes = Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state);
    with_limits(routes, limits)
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": message }).to_string(),
    )
        .into_response()
}

async fn validate(State(state): State<Arc<WebhookState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let request = match admission::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "webhook: refused a malformed AdmissionReview");
            state
                .metrics
                .admission_reviews
                .get_or_create(&AdmissionLabels {
                    kind: "unknown".into(),
                    result: "error".into(),
                })
                .inc();
            return bad_request(e.to_string());
        }
    };
    let verdict = review(&state, &request).await;
    let result = if verdict.allowed() {
        "allowed"
    } else {
        "denied"
    };
    let kind = match request.kind.kind.as_str() {
        k @ ("CustomScalingPolicy" | "ClusterMetricsSource") => k.to_string(),
        _ => "other".to_string(),
    };
    state
        .metrics
        .admission_reviews
        .get_or_create(&AdmissionLabels {
            kind: kind.clone(),
            result: result.into(),
        })
        .inc();
    state
        .metrics
        .admission_duration
        .observe(started.elapsed().as_secs_f64());
    info!(
        kind,
        namespace = request.namespace.as_deref().unwrap_or(""),
        name = request.name.as_deref().unwrap_or(""),
        operation = ?request.operation,
        result,
        message = %verdict.message(),
        "webhook: reviewed"
    );
    (
        [(header::CONTENT_TYPE, "application/json")],
        admission::respond(&request.uid, &verdict).to_string(),
    )
        .into_response()
}

/// Decide one request. Anything the webhook is not for is allowed.
async fn review(state: &WebhookState, request: &Request) -> Verdict {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Verdict::default();
    }
    let Some(object) = &request.object else {
        return Verdict {
            denials: vec!["the AdmissionReview carries no object".into()],
            warnings: vec![],
        };
    };
    if request.operation == Operation::Update
        && checks::spec_unchanged(object, request.old_object.as_ref())
    {
        return Verdict::default();
    }
    match request.kind.kind.as_str() {
        "ClusterMetricsSource" => checks::validate_source(object, &state.operator_namespace),
        "CustomScalingPolicy" => {
            let (policy, verdict) = match checks::validate_policy(object) {
                Ok(ok) => ok,
                Err(verdict) => return verdict,
            };
            if !verdict.allowed() {
                // Refused on its own: no need to ask the cluster.
                return verdict;
            }
            // The request's namespace is the one the object is stored in; every
            // lookup stays inside it (a policy scales only its own namespace).
            let Some(namespace) = request
                .namespace
                .clone()
                .or(policy.metadata.namespace.clone())
            else {
                return checks::merge(verdict, Verdict {
                    denials: vec!["metadata.namespace: a CustomScalingPolicy is namespaced; the request has no namespace".into()],
                    warnings: vec![],
                });
            };
            let name = request
                .name
                .clone()
                .or(policy.metadata.name.clone())
                .unwrap_or_default();
            match state
                .finder
                .policy_facts(&namespace, &name, &policy.spec)
                .await
            {
                Ok(facts) => checks::merge(
                    verdict,
                    checks::check_cluster(&namespace, &policy.spec, &facts),
                ),
                Err(e) => {
                    debug!(error = %e, "webhook: a lookup failed");
                    checks::merge(
                        verdict,
                        Verdict {
                            denials: vec![e.to_string()],
                            warnings: vec![],
                        },
                    )
                }
            }
        }
        _ => Verdict::default(),
    }
}

//! `reconcile` against a mocked API server (tower-test), kube-rs controller-rs
//! style: what a tick asks of the API server and in which order, for a leader, a
//! follower, `paused`, `dryRun`, a failing status write, an invalid spec and a node
//! pool. The metrics source is a closed port (no sample): these tests are about the
//! writes, which the engine makes here from the replica bounds alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Context, Error, reconcile};
use crate::api::{ClusterMetricsSource, CustomScalingPolicy};
use crate::error::Category;
use crate::metrics::registry::{Registry, SourceDefaults};
use crate::scale::ReplicaCache;
use crate::telemetry::Metrics;

const NS: &str = "/namespaces/ns";
const POLICY_STATUS: &str =
    "/apis/autoscaling.ballast.dev/v1alpha1/namespaces/ns/customscalingpolicies/p/status";

/// One request the mocked API server answered.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

/// A small API server: Deployments with `/scale` (replicas by name), the policy's
/// status, Events. `fail_status` status writes are answered 500 first.
#[derive(Clone, Default)]
struct FakeApi {
    replicas: Arc<Mutex<HashMap<String, i64>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    fail_status: Arc<AtomicU32>,
}

impl FakeApi {
    fn with(deployments: &[(&str, i64)]) -> Self {
        let api = Self::default();
        api.replicas.lock().unwrap().extend(
            deployments
                .iter()
                .map(|(name, replicas)| (name.to_string(), *replicas)),
        );
        api
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn writes(&self) -> Vec<(Method, String)> {
        self.seen()
            .into_iter()
            .filter(|s| s.method != Method::GET)
            .map(|s| (s.method, s.path))
            .collect()
    }

    fn replicas(&self, name: &str) -> Option<i64> {
        self.replicas.lock().unwrap().get(name).copied()
    }

    /// Serve until the test ends (the task is aborted with the returned handle).
    fn serve(&self) -> (Client, tokio::task::JoinHandle<()>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = self.clone();
        let task = tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let path = parts.uri.path().to_string();
                api.seen.lock().unwrap().push(Seen {
                    method: parts.method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                respond.send_response(api.answer(&parts.method, &path, body));
            }
        });
        (Client::new(service, "default"), task)
    }

    fn answer(&self, method: &Method, path: &str, body: Value) -> Response<Body> {
        let scale = |name: &str, replicas: i64| {
            ok(json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"replicas": replicas}, "status": {"replicas": replicas}
            }))
        };
        if path == "/apis/apps/v1" {
            return ok(crate::scale::apps_v1_discovery());
        }
        if let Some(name) = path
            .strip_prefix(&format!("/apis/apps/v1{NS}/deployments/"))
            .and_then(|rest| rest.strip_suffix("/scale"))
        {
            let mut replicas = self.replicas.lock().unwrap();
            let Some(current) = replicas.get(name).copied() else {
                return status(StatusCode::NOT_FOUND, "NotFound");
            };
            if *method == Method::PATCH {
                let to = body["spec"]["replicas"].as_i64().unwrap_or(current);
                replicas.insert(name.to_string(), to);
                return scale(name, to);
            }
            return scale(name, current);
        }
        if path == POLICY_STATUS && *method == Method::PATCH {
            if self
                .fail_status
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
            }
            let mut object = serde_json::to_value(policy(BASE)).unwrap();
            object["status"] = body["status"].clone();
            return ok(object);
        }
        if path == format!("/apis/events.k8s.io/v1{NS}/events") && *method == Method::POST {
            return ok(body);
        }
        status(StatusCode::NOT_FOUND, "NotFound")
    }
}

fn ok(value: Value) -> Response<Body> {
    Response::new(Body::from(serde_json::to_vec(&value).unwrap()))
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{reason} (from the mocked API server)"),
        "reason": reason, "code": code.as_u16()
    });
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

const BASE: &str = r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: p, namespace: ns, uid: u-1, generation: 1}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 3
  maxReplicas: 10
  metrics:
    - name: m
      query: up
      target: {type: AverageValue, averageValue: "100"}
"#;

fn policy(yaml: &str) -> CustomScalingPolicy {
    serde_yaml::from_str(yaml).expect("policy")
}

/// `BASE` with `extra` spec lines added.
fn policy_with(extra: &str) -> CustomScalingPolicy {
    policy(&format!("{BASE}{extra}"))
}

/// A synced context whose Lease reads back as ours when `leader`.
fn context(client: Client, leader: bool) -> Arc<Context> {
    let (sources, _) = reflector::store::<ClusterMetricsSource>();
    // Nothing listens on port 9 of loopback: every metric is missing.
    let registry = Registry::new(
        client.clone(),
        sources,
        SourceDefaults::default(),
        Some("http://127.0.0.1:9"),
    )
    .expect("registry");
    let (_, receiver) = watch::channel(leader);
    let ctx = Context::new(
        client,
        registry,
        Arc::new(Metrics::new()),
        "test".into(),
        receiver,
        ReplicaCache::default(),
    );
    if leader {
        ctx.lease_valid_until
            .store(i64::MAX / 2, std::sync::atomic::Ordering::Relaxed);
    }
    ctx.policies().leadership(leader);
    ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed);
    Arc::new(ctx)
}

async fn run(ctx: &Arc<Context>, policy: &CustomScalingPolicy) -> Result<Action, Error> {
    reconcile(Arc::new(DeserializeGuard(Ok(policy.clone()))), ctx.clone()).await
}

fn index(writes: &[(Method, String)], method: Method, path: &str) -> usize {
    writes
        .iter()
        .position(|(m, p)| *m == method && p == path)
        .unwrap_or_else(|| panic!("no {method} {path} in {writes:?}"))
}

const WEB_SCALE: &str = "/apis/apps/v1/namespaces/ns/deployments/web/scale";
const POOL_SCALE: &str = "/apis/apps/v1/namespaces/ns/deployments/pool/scale";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

#[tokio::test]
async fn the_leader_writes_the_target_then_the_status() {
    let api = FakeApi::with(&[("web", 1)]);
    let (client, server) = api.serve();
    let ctx = context(client, true);
    let action = run(&ctx, &policy(BASE)).await.expect("a tick");
    assert_ne!(action, Action::await_change(), "the next tick is scheduled");
    server.abort();

    assert_eq!(api.replicas("web"), Some(3), "raised to minReplicas");
    let writes = api.writes();
    let scaled = index(&writes, Method::PATCH, WEB_SCALE);
    let status = index(&writes, Method::PATCH, POLICY_STATUS);
    let event = index(&writes, Method::POST, EVENTS);
    assert!(scaled < status && scaled < event, "{writes:?}");
    let patch = api
        .seen()
        .into_iter()
        .find(|s| s.path == POLICY_STATUS)
        .expect("the status write");
    assert_eq!(patch.body["status"]["desiredReplicas"], json!(3));
    assert_eq!(patch.body["status"]["observedGeneration"], json!(1));
}

#[tokio::test]
async fn a_follower_writes_nothing() {
    let api = FakeApi::with(&[("web", 1)]);
    let (client, server) = api.serve();
    let ctx = context(client, false);
    run(&ctx, &policy(BASE)).await.expect("a tick");
    server.abort();
    assert_eq!(api.writes(), vec![], "only reads");
    assert!(!api.seen().is_empty(), "it did read the target");
    assert_eq!(api.replicas("web"), Some(1));
}

#[tokio::test]
async fn paused_and_dry_run_never_write_the_target() {
    for extra in ["  paused: true\n", "  dryRun: true\n"] {
        let api = FakeApi::with(&[("web", 1)]);
        let (client, server) = api.serve();
        let ctx = context(client, true);
        run(&ctx, &policy_with(extra)).await.expect("a tick");
        server.abort();
        let writes = api.writes();
        assert_eq!(api.replicas("web"), Some(1), "{extra}: {writes:?}");
        assert!(
            writes.iter().all(|(_, p)| p != WEB_SCALE),
            "{extra}: {writes:?}"
        );
        // The leader still reports what it would do.
        index(&writes, Method::PATCH, POLICY_STATUS);
    }
}

#[tokio::test]
async fn a_failed_status_write_is_retried_before_the_next_tick() {
    let api = FakeApi::with(&[("web", 1)]);
    api.fail_status.store(1, Ordering::SeqCst);
    let (client, server) = api.serve();
    let ctx = context(client, true);
    let p = policy(BASE);
    let error = run(&ctx, &p).await.expect_err("the status write failed");
    assert_eq!(error.category(), "UpdateStatus");
    assert!(
        std::error::Error::source(&error).is_some(),
        "the kube error is kept as the source: {error}"
    );
    assert_eq!(api.replicas("web"), Some(3), "the scale write stands");
    let before = api.seen().len();

    // The controller requeues after the error; the next reconcile (before the
    // next tick is due) writes the status again, and reads nothing.
    run(&ctx, &p).await.expect("the retry");
    server.abort();
    let retried: Vec<(Method, String)> = api.seen()[before..]
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(retried, vec![(Method::PATCH, POLICY_STATUS.to_string())]);
    let last = api.seen().pop().expect("the retried write");
    assert_eq!(last.body["status"]["desiredReplicas"], json!(3));
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_never_ticks() {
    let api = FakeApi::with(&[("web", 1)]);
    let (client, server) = api.serve();
    let ctx = context(client, true);
    let mut p = policy(&BASE.replace("query: up", "query: 'sum(rate(x[1m])'"));
    assert_eq!(
        run(&ctx, &p).await.expect("reported"),
        Action::await_change()
    );
    let seen = api.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.clone(), s.path.as_str()))
            .collect::<Vec<_>>(),
        vec![(Method::PATCH, POLICY_STATUS)],
        "no read of the target, no metric query: only the status"
    );
    let conditions = &seen[0].body["status"]["conditions"];
    assert_eq!(conditions[0]["reason"], json!("InvalidSpec"));
    assert!(
        conditions[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.metrics[0].query")),
        "{conditions}"
    );

    // The watch event of our own status write, and any later event: nothing.
    p.status = serde_json::from_value(seen[0].body["status"].clone()).ok();
    for _ in 0..3 {
        assert_eq!(run(&ctx, &p).await.expect("quiet"), Action::await_change());
    }
    server.abort();
    assert_eq!(api.seen().len(), 1);
}

#[tokio::test]
async fn a_node_pool_is_raised_before_the_workload() {
    let api = FakeApi::with(&[("web", 1), ("pool", 1)]);
    let (client, server) = api.serve();
    let ctx = context(client, true);
    let p = policy_with(
        "  nodePool:\n    targetRef: {apiVersion: apps/v1, kind: Deployment, name: pool}\n    podsPerNode: 2\n    minNodes: 1\n    maxNodes: 5\n",
    );
    run(&ctx, &p).await.expect("a tick");
    server.abort();
    let writes = api.writes();
    assert_eq!(api.replicas("pool"), Some(2), "{writes:?}");
    assert_eq!(api.replicas("web"), Some(3));
    assert!(
        index(&writes, Method::PATCH, POOL_SCALE) < index(&writes, Method::PATCH, WEB_SCALE),
        "nodes first: {writes:?}"
    );
}

#[tokio::test]
async fn a_node_pool_is_lowered_after_the_workload() {
    let api = FakeApi::with(&[("web", 8), ("pool", 4)]);
    let (client, server) = api.serve();
    let ctx = context(client, true);
    // maxReplicas below the current replicas: down at once (as HPA does), and the
    // pool with no delay.
    let p = policy(
        &format!(
            "{BASE}  nodePool:\n    targetRef: {{apiVersion: apps/v1, kind: Deployment, name: pool}}\n    podsPerNode: 2\n    minNodes: 1\n    maxNodes: 5\n    scaleDownDelay: 0s\n"
        )
        .replace("maxReplicas: 10", "maxReplicas: 4"),
    );
    run(&ctx, &p).await.expect("a tick");
    let writes = api.writes();
    assert_eq!(api.replicas("web"), Some(4), "{writes:?}");
    assert_eq!(
        api.replicas("pool"),
        Some(4),
        "the pool waits for the workload to be down: {writes:?}"
    );
    // The next tick (woken here as by an out-of-band watch event) lowers the pool.
    assert!(ctx.policies().target_changed("ns/p", Some(0)));
    run(&ctx, &p).await.expect("the next tick");
    server.abort();
    let writes = api.writes();
    assert_eq!(api.replicas("pool"), Some(2), "{writes:?}");
    assert!(
        index(&writes, Method::PATCH, WEB_SCALE) < index(&writes, Method::PATCH, POOL_SCALE),
        "workload first: {writes:?}"
    );
}

/// `make demo` showed `SourceNotFound` for a source created before the operator
/// started: the first tick ran on an empty source cache.
#[tokio::test]
async fn no_policy_is_evaluated_before_the_caches_have_synced() {
    let api = FakeApi::with(&[("web", 3)]);
    let (client, server) = api.serve();
    let ctx = context(client, false);
    ctx.synced
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let p = policy(BASE);

    assert_eq!(
        run(&ctx, &p).await.expect("reconcile"),
        Action::await_change(),
        "no polling: the sync reconciles every policy"
    );
    assert!(
        ctx.policies().is_empty(),
        "not even scheduled: the first tick is due at the sync"
    );
    assert!(api.seen().is_empty(), "nothing asked of the API server");

    // Once synced, the same reconcile ticks (and reads the target).
    ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed);
    run(&ctx, &p).await.expect("a tick");
    server.abort();
    assert!(ctx.policies().contains("ns/p"));
    let reads: Vec<String> = api.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        reads,
        vec!["/apis/apps/v1".to_string(), WEB_SCALE.to_string()]
    );
}

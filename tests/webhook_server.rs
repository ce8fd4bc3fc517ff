//! The webhook server on a real TLS socket, with a certificate from our own CA code:
//! reviews are answered, malformed and oversized bodies get clean errors, stalled
//! handshakes and plain HTTP are cut off, overload is shed with 503 rather than
//! queued, and the server stays healthy through all of it.
//!
//! The Kubernetes API behind the webhook is a TCP listener that accepts and never
//! answers: the one fault a real API server will not produce on demand (a hang).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::telemetry::Metrics;
use ballast::telemetry::server::{Limits, serve_tls};
use ballast::webhook::certs::{self, CertConfig, Reloadable, Step};
use ballast::webhook::facts::FactFinder;
use ballast::webhook::server::router;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

fn limits() -> Limits {
    Limits {
        max_body_bytes: 8 * 1024,
        header_read_timeout: Duration::from_millis(700),
        request_timeout: Duration::from_secs(2),
        max_connections: 32,
        max_concurrent_requests: 2,
    }
}

struct Server {
    addr: SocketAddr,
    ca_pem: String,
}

/// Start the webhook on an ephemeral loopback port, its API server a black hole.
fn start() -> Server {
    let now = jiff::Timestamp::now().as_second();
    let config = CertConfig {
        leaf_validity: Duration::from_secs(3600),
        ca_validity: Duration::from_secs(36000),
        promote_after: Duration::from_secs(10),
        sans: vec!["127.0.0.1".into()],
    };
    let material = certs::apply(Step::Create, None, now, &config)
        .expect("issue")
        .expect("material");
    let resolver = Arc::new(Reloadable::default());
    resolver.load(&material.leaf).expect("load");
    // Accepts connections and never answers them.
    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = black_hole.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in black_hole.incoming().flatten() {
            held.push(s);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let kube_config = kube::Config::new(format!("http://{api}").parse().expect("url"));
            let client = kube::Client::try_from(kube_config).expect("client");
            let tls = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_cert_resolver(resolver);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = router(
                FactFinder::new(client),
                Arc::new(Metrics::new()),
                "ballast-system".into(),
                &limits(),
            );
            serve_tls(
                listener,
                app,
                limits(),
                tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
                std::future::pending(),
            )
            .await;
        });
    });
    Server {
        addr: rx.recv_timeout(Duration::from_secs(10)).expect("started"),
        ca_pem: material.ca.cert_pem,
    }
}

/// One HTTPS request (raw HTTP/1.1 over rustls, verifying the server against our
/// CA for the name 127.0.0.1). Returns the whole response text, or "" when the
/// server closed the connection without one.
fn https(server: &Server, raw: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.ca_pem.as_bytes()).expect("CA"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(server.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // A server that refuses early (413) may close before the body is all sent: the
    // write fails, the response is still there to read.
    let _ = tls.write_all(raw).and_then(|()| tls.flush());
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn post(server: &Server, body: &[u8]) -> String {
    let mut raw = format!(
        "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    https(server, &raw)
}

fn review(kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "test-uid", "operation": "CREATE", "namespace": "shop", "name": "x",
            "kind": {"group": "autoscaling.ballast.dev", "version": "v1alpha1", "kind": kind},
            "object": object
        }
    }))
    .expect("json")
}

fn source(address: &str) -> Vec<u8> {
    review(
        "ClusterMetricsSource",
        json!({"apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
               "metadata": {"name": "prom"},
               "spec": {"address": address, "allowedNamespaces": ["*"]}}),
    )
}

fn body_json(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON body")
}

#[test]
fn reviews_are_answered_over_tls() {
    let server = start();
    let ok = post(&server, &source("http://prometheus:9090"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let r = body_json(&ok);
    assert_eq!(r["response"]["uid"], "test-uid");
    assert_eq!(r["response"]["allowed"], true);
    let bad = post(&server, &source("ftp://prometheus"));
    let r = body_json(&bad);
    assert_eq!(r["response"]["allowed"], false);
    let message = r["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(message.starts_with("spec.address:"), "{message}");
}

#[test]
fn malformed_and_oversized_bodies_get_clean_errors() {
    let server = start();
    let garbage = post(&server, b"{this is not json");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(
        body_json(&garbage)["error"]
            .as_str()
            .is_some_and(|e| e.contains("not JSON"))
    );
    let wrong = post(
        &server,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    );
    assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
    assert!(wrong.contains("no request"), "{wrong}");
    // A body over the limit is refused from its Content-Length, before it is sent
    // (as the API server and curl send large bodies: `Expect: 100-continue`).
    let huge = https(
        &server,
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65536\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    );
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    // Still fine afterwards.
    assert!(post(&server, &source("http://p:9090")).starts_with("HTTP/1.1 200"));
}

#[test]
fn stalled_handshakes_and_plain_http_are_cut_off() {
    let server = start();
    // Connect and say nothing: closed after the handshake timeout, not held.
    let mut idle = TcpStream::connect(server.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "nothing is sent to a client that never starts TLS");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(9), "closed after {waited:?}");
    // Plain HTTP on the TLS port: no HTTP response, the connection is dropped.
    let mut plain = TcpStream::connect(server.addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1 200"));
    assert!(post(&server, &source("http://p:9090")).starts_with("HTTP/1.1 200"));
}

#[test]
fn overload_is_shed_with_503_and_hung_lookups_time_out() {
    let server = Arc::new(start());
    // A valid policy makes the webhook ask the API server, which never answers:
    // these two hold both concurrency slots until the request timeout.
    let policy = review(
        "CustomScalingPolicy",
        json!({"apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
               "metadata": {"name": "x", "namespace": "shop"},
               "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "maxReplicas": 3,
                        "metrics": [{"name": "m", "query": "vector(1)", "target": {"type": "Value", "value": "1"}}]}}),
    );
    let hung: Vec<_> = (0..2)
        .map(|_| {
            let server = server.clone();
            let policy = policy.clone();
            std::thread::spawn(move || post(&server, &policy))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let shed = post(&server, &source("http://p:9090"));
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shed at once, not queued"
    );
    for h in hung {
        let r = h.join().expect("thread");
        assert!(
            r.starts_with("HTTP/1.1 408"),
            "a hung lookup ends at the request timeout: {r}"
        );
    }
    assert!(post(&server, &source("http://p:9090")).starts_with("HTTP/1.1 200"));
}

//! The bounded admin server on a real socket: oversized bodies are refused, slow
//! clients are cut off, overload is shed with 503 rather than queued, and the
//! server stays healthy through all of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use ballast::telemetry::Metrics;
use ballast::telemetry::server::{Health, Limits, router, serve, with_limits};

fn limits() -> Limits {
    Limits {
        max_body_bytes: 1024,
        header_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        max_connections: 32,
        max_concurrent_requests: 2,
    }
}

/// Serve `app` on an ephemeral loopback port; returns the address.
fn start(app: Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            serve(listener, app, limits(), std::future::pending()).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server started")
}

fn request(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn get_path(addr: std::net::SocketAddr, path: &str) -> String {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn serves_metrics_health_and_readiness() {
    let health = Arc::new(Health::default());
    let addr = start(router(Arc::new(Metrics::new()), health.clone(), &limits()));
    assert!(get_path(addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(
        get_path(addr, "/readyz").starts_with("HTTP/1.1 503"),
        "not ready before the caches sync"
    );
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(get_path(addr, "/readyz").starts_with("HTTP/1.1 200"));
    let metrics = get_path(addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("# HELP ballast_leader"), "{metrics}");
    assert!(
        metrics.contains("ballast_reconcile_duration_seconds"),
        "{metrics}"
    );
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let app = with_limits(
        Router::new().route("/echo", post(|body: String| async move { body })),
        &limits(),
    );
    let addr = start(app);
    let body = "x".repeat(64 * 1024);
    let answer = request(
        addr,
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let small = request(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(
        small.starts_with("HTTP/1.1 200") && small.ends_with("hello"),
        "{small}"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let addr = start(router(
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
        &limits(),
    ));
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    // The server closes the connection (read returns 0 or an error, or a 408).
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || answer.starts_with("HTTP/1.1 408"),
        "unexpected answer {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after {:?}",
        started.elapsed()
    );
    // And the server still answers others.
    assert!(get_path(addr, "/healthz").starts_with("HTTP/1.1 200"));
}

#[test]
fn overload_is_shed_with_503_not_queued() {
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    );
    let addr = start(with_limits(slow, &limits()));
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get_path(addr, "/slow")))
        .collect();
    let answers: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let ok = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    let shed = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    assert!((1..=2).contains(&ok), "at most 2 in flight: {ok} succeeded");
    assert_eq!(
        ok + shed,
        8,
        "every request answered 200 or 503: {answers:?}"
    );
    // Healthy afterwards.
    assert!(get_path(addr, "/slow").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_request_that_takes_too_long_gets_408() {
    let stuck = Router::new().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "never"
        }),
    );
    let addr = start(with_limits(stuck, &limits()));
    let started = Instant::now();
    let answer = get_path(addr, "/stuck");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

//! GitOps health over status objects captured from e2e runs (the `health`
//! scenario writes them to target/e2e/health-fixtures/; tests/fixtures/argocd/
//! holds a copy): Argo CD's script, deploy/argocd/health.lua, run by
//! deploy/argocd/check with Debian's lua5.1 (Lua 5.1, as Argo CD's gopher-lua),
//! and the kstatus library that Flux uses (the harness's checker, built from
//! sigs.k8s.io/cli-utils by e2e/tool). The same judges run on live objects in the
//! `health` scenario.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::root;

mod support;

fn fixture(name: &str) -> Value {
    let path = root().join(format!("tests/fixtures/argocd/{name}.json"));
    serde_json::from_str(&fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

fn pipe(program: &Path, input: &Value) -> (bool, String, String) {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Argo CD's verdict: (status, message).
fn argo(obj: &Value) -> (String, String) {
    let (ok, out, err) = pipe(&root().join("deploy/argocd/check"), obj);
    assert!(ok, "deploy/argocd/check: {err}");
    let (status, message) = out.split_once('\t').unwrap_or((&out, ""));
    (status.to_string(), message.to_string())
}

fn kstatus_tool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| support::go_tool("e2e/controlplane/kstatus"))
}

fn kstatus(obj: &Value) -> String {
    let (ok, out, err) = pipe(kstatus_tool(), obj);
    assert!(ok, "kstatus: {err}");
    let verdict: Value = serde_json::from_str(&out).expect("kstatus JSON");
    verdict["status"].as_str().expect("a status").to_string()
}

/// Each captured state, as both judges see it.
#[test]
fn every_captured_state_gets_its_health() {
    for (name, flux, argo_cd) in [
        ("healthy", "Current", "Healthy"),
        ("not-evaluated", "InProgress", "Progressing"),
        ("invalid", "Failed", "Degraded"),
        ("refused", "Failed", "Degraded"),
        ("no-scale", "Failed", "Degraded"),
        ("outage", "Current", "Healthy"),
        ("paused", "Current", "Suspended"),
    ] {
        let obj = fixture(name);
        assert_eq!(kstatus(&obj), flux, "{name}: kstatus");
        assert_eq!(argo(&obj).0, argo_cd, "{name}: Argo CD");
    }
}

#[test]
fn a_metrics_outage_is_healthy_and_says_so() {
    let (status, message) = argo(&fixture("outage"));
    assert_eq!(status, "Healthy");
    assert!(
        message.starts_with("runtime: MetricsUnavailable"),
        "{message}"
    );
}

/// A target that does not exist: Progressing while it may still come, Degraded
/// once it has been missing for 3 poll intervals (at least a minute).
#[test]
fn a_missing_target_is_progressing_then_degraded() {
    let mut obj = fixture("missing");
    assert_eq!(kstatus(&obj), "InProgress");
    let set_since = |obj: &mut Value, seconds_ago: i64| {
        let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
        for c in obj["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
        {
            if c["type"] == "Ready" {
                c["lastTransitionTime"] = json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
            }
        }
    };
    set_since(&mut obj, 5);
    assert_eq!(argo(&obj).0, "Progressing");
    set_since(&mut obj, 59);
    assert_eq!(
        argo(&obj).0,
        "Progressing",
        "pollInterval 2s: the grace is a minute"
    );
    set_since(&mut obj, 120);
    let (status, message) = argo(&obj);
    assert_eq!(status, "Degraded");
    assert!(
        message.starts_with("TargetNotFound for more than 60s"),
        "{message}"
    );
    // A longer interval, a longer grace.
    obj["spec"]["pollInterval"] = json!("1m");
    assert_eq!(argo(&obj).0, "Progressing");
}

#[test]
fn a_replicas_fight_is_degraded() {
    let mut obj = fixture("healthy");
    for c in obj["status"]["conditions"]
        .as_array_mut()
        .expect("conditions")
    {
        if c["type"] == "ReplicasOwned" {
            c["status"] = json!("False");
            c["reason"] = json!("ReplicasOverwritten");
            c["message"] =
                json!("spec.replicas of Deployment/healthy was written by argocd-controller");
        }
    }
    let (status, message) = argo(&obj);
    assert_eq!(status, "Degraded");
    assert!(message.contains("argocd-controller"), "{message}");
}

#[test]
fn no_status_yet_or_being_deleted_is_progressing() {
    let mut fresh = fixture("healthy");
    fresh.as_object_mut().expect("object").remove("status");
    assert_eq!(argo(&fresh).0, "Progressing");
    let mut deleting = fixture("healthy");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:00:00Z");
    assert_eq!(argo(&deleting).0, "Progressing");
    assert_eq!(kstatus(&deleting), "Terminating");
}

/// Paused and Stalled: the configuration problem is what Argo CD shows.
#[test]
fn an_invalid_paused_policy_is_degraded_not_suspended() {
    let mut obj = fixture("invalid");
    obj["spec"]["paused"] = json!(true);
    assert_eq!(argo(&obj).0, "Degraded");
}

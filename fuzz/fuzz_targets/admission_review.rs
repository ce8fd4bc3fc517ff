//! An AdmissionReview body from the API server (or anyone who can reach the
//! webhook) through `webhook::admission::decode`; when it decodes, the pure part of
//! the review (`checks::validate_policy` / `validate_source`, as the server does it)
//! and `admission::respond`.
//!
//! Properties:
//! - never a panic: a bad body is a `DecodeError` (which the server sends as 400);
//! - a decoded request has a non-empty uid and came from an
//!   `admission.k8s.io/v1` `AdmissionReview`;
//! - the response serializes, parses back to the same JSON, and says what the
//!   verdict says: same uid, `allowed` iff no denial, a 403 status carrying
//!   `Verdict::message` when denied, and every warning at most 240 characters and
//!   free of control characters, which make the API server drop it (unchanged apart
//!   from that when it was short enough).
#![cfg_attr(fuzzing, no_main)]

use std::collections::BTreeMap;

use ballast::api::CustomScalingPolicySpec;
use ballast::webhook::admission::{self, API_VERSION, Operation, Verdict};
use ballast::webhook::checks::{self, KindInfo, OtherPolicy, PolicyFacts, ScaleRef};
use serde_json::Value;

const MAX_WARNING_CHARS: usize = 240;

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_one(data));

/// One input: the properties above, asserted (also replayed over the seeds by
/// `tests/fuzz_seeds.rs` in `make unit`).
pub fn fuzz_one(data: &[u8]) {
    let request = match admission::decode(data) {
        Ok(r) => r,
        Err(e) => {
            // The 400 body.
            let _ = serde_json::json!({ "error": e.to_string() }).to_string();
            return;
        }
    };
    assert!(!request.uid.is_empty());
    let body: Value = serde_json::from_slice(data).expect("decoded a body that is not JSON");
    assert_eq!(body["apiVersion"], API_VERSION);
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["request"]["uid"], request.uid.as_str());

    // What the server decides without the cluster.
    let mut verdict = match (&request.object, request.operation) {
        (_, Operation::Delete | Operation::Connect) => Verdict::default(),
        (None, _) => Verdict {
            denials: vec!["the AdmissionReview carries no object".into()],
            warnings: vec![],
        },
        (Some(object), op) => {
            if op == Operation::Update
                && checks::spec_unchanged(object, request.old_object.as_ref())
            {
                Verdict::default()
            } else {
                match request.kind.kind.as_str() {
                    "ClusterMetricsSource" => checks::validate_source(object, "ballast-system"),
                    "CustomScalingPolicy" => match checks::validate_policy(object) {
                        Ok((policy, v)) if v.allowed() => {
                            // The cluster's answers are made up: the ones that echo
                            // the request's own names back in warnings and denials.
                            let namespace = request.namespace.as_deref().unwrap_or("default");
                            let facts = facts(&policy.spec);
                            checks::merge(v, checks::check_cluster(namespace, &policy.spec, &facts))
                        }
                        Ok((_, v)) | Err(v) => v,
                    },
                    _ => Verdict::default(),
                }
            }
        }
    };
    check_response(&request.uid, &verdict);

    // The request's own texts as warnings and denials: arbitrary Unicode, control
    // characters and lengths around the cut.
    let texts: Vec<String> = [
        Some(request.uid.clone()),
        request.name.clone(),
        request.namespace.clone(),
        Some(request.kind.kind.clone()),
        Some(request.kind.group.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    verdict.warnings.extend(texts.iter().cloned());
    verdict
        .warnings
        .extend(texts.iter().map(|t| t.repeat(240 / t.len().max(1) + 1)));
    check_response(&request.uid, &verdict);
    verdict.denials.extend(texts);
    check_response(&request.uid, &verdict);
}

/// Cluster facts that make `check_cluster` say something about every part of the
/// spec: the target's kind not served, a node pool kind without `/scale`, another
/// policy and an HPA on the same target, every named source missing.
fn facts(spec: &CustomScalingPolicySpec) -> PolicyFacts {
    let target = ScaleRef::of(&spec.target_ref);
    PolicyFacts {
        other_policies: vec![OtherPolicy {
            name: "other".into(),
            target: target.clone(),
            node_pool: spec.node_pool.as_ref().map(|p| ScaleRef::of(&p.target_ref)),
        }],
        hpas: vec![("hpa".into(), target.clone())],
        scaled_objects: Some(vec![("so".into(), target)]),
        target_kind: KindInfo::NotServed(format!("no kind {:?}", spec.target_ref.kind)),
        target_exists: Some(false),
        // A manifest applier owning replicas: its warning names the target too.
        target_replicas_owners: vec![ballast::controller::owners::ReplicasOwner {
            manager: "argocd-controller".into(),
            operation: "Apply".into(),
            subresource: None,
            time: None,
        }],
        node_pool_kind: Some(KindInfo::NoScale),
        sources: spec
            .metrics
            .iter()
            .filter_map(|m| m.source.clone())
            .map(|s| (s, None))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn check_response(uid: &str, verdict: &Verdict) {
    let response = admission::respond(uid, verdict);
    let text = serde_json::to_string(&response).expect("the response serializes");
    let back: Value = serde_json::from_str(&text).expect("the response is JSON");
    assert_eq!(
        back, response,
        "the response does not survive serialization"
    );

    assert_eq!(response["apiVersion"], API_VERSION);
    assert_eq!(response["kind"], "AdmissionReview");
    let r = &response["response"];
    assert_eq!(r["uid"], uid);
    assert_eq!(r["allowed"], verdict.denials.is_empty());
    if verdict.denials.is_empty() {
        assert!(r.get("status").is_none());
    } else {
        assert_eq!(r["status"]["code"], 403);
        assert_eq!(r["status"]["message"], verdict.message().as_str());
        if let [one] = verdict.denials.as_slice() {
            assert_eq!(&verdict.message(), one);
        }
    }
    match r.get("warnings") {
        None => assert!(verdict.warnings.is_empty()),
        Some(w) => {
            let w = w.as_array().expect("warnings are a list");
            assert_eq!(w.len(), verdict.warnings.len());
            for (sent, original) in w.iter().zip(&verdict.warnings) {
                let sent = sent.as_str().expect("a warning is a string");
                // The API server drops a warning with any control character
                // (k8s.io/apimachinery/pkg/util/net.NewWarningHeader: unicode.IsControl).
                assert!(
                    !sent.chars().any(char::is_control),
                    "a warning the API server would drop: {sent:?}"
                );
                let chars = sent.chars().count();
                assert!(
                    chars <= MAX_WARNING_CHARS,
                    "a warning of {chars} characters"
                );
                if original.chars().count() <= MAX_WARNING_CHARS {
                    let printable: String = original
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    assert_eq!(sent, printable);
                } else {
                    assert!(sent.ends_with("..."), "{sent:?}");
                }
            }
        }
    }
}

//! `ballast lint` on arbitrary text: a multi-document YAML file through
//! `parse_documents`, then `lint_document` on each document.
//!
//! Properties:
//! - never a panic: bad input is an `Err` from `parse_documents` or findings;
//! - documents are numbered from 1, in file order;
//! - `lint_document` answers `Some` exactly for our kinds (`kind` is one of ours and
//!   `apiVersion` is in our group), and names every problem with a message;
//! - an apiVersion other than the served one is always an error finding;
//! - a document of ours holding `.nan` or `.inf` anywhere does not pass: JSON has no
//!   such numbers, so kubectl refuses the file (and read as JSON they would become
//!   null, i.e. an absent optional field or an ignored unknown one);
//! - a policy lint accepts (no error) survives the round trip it makes through the
//!   API server: serialized and decoded again it is the same spec, and validating it
//!   again finds exactly the same problems.
#![cfg_attr(fuzzing, no_main)]

use ballast::api::CustomScalingPolicy;
use ballast::api::documents::{Finding, lint_document, parse_documents};
use ballast::api::validation::{self, Severity};
use serde::Deserialize;

const GROUP_VERSION: &str = "autoscaling.ballast.dev/v1alpha1";

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_one(data));

/// One input: the properties above, asserted (also replayed over the seeds by
/// `tests/fuzz_seeds.rs` in `make unit`).
pub fn fuzz_one(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let documents = match parse_documents(text) {
        Ok(d) => d,
        Err(err) => {
            // What `ballast lint` prints for a file it cannot read.
            let message = format!("{err:#}");
            assert!(!message.is_empty());
            return;
        }
    };
    // The documents holding a float JSON cannot carry, read independently.
    let non_finite: Vec<usize> = serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .filter_map(|(i, doc)| {
            let value = serde_yaml::Value::deserialize(doc).ok()?;
            has_non_finite(&value).then_some(i + 1)
        })
        .collect();
    let mut previous = 0;
    for doc in &documents {
        assert!(doc.index > previous, "documents out of order");
        previous = doc.index;
        if doc.value.is_null() {
            // Only a bare `.nan`/`.inf` document reads as JSON null: not one of ours.
            assert!(
                non_finite.contains(&doc.index),
                "null documents are skipped"
            );
            continue;
        }
        let findings = check_document(&doc.value);
        if non_finite.contains(&doc.index)
            && let Some(findings) = findings
        {
            assert!(
                findings
                    .iter()
                    .any(|f| f.problem.severity == Severity::Error),
                "document {} holds .nan or .inf and passed lint: {findings:?}",
                doc.index
            );
        }
    }
}

fn has_non_finite(value: &serde_yaml::Value) -> bool {
    use serde_yaml::Value;
    match value {
        Value::Number(n) => n.as_f64().is_some_and(|f| !f.is_finite()),
        Value::Sequence(s) => s.iter().any(has_non_finite),
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| has_non_finite(k) || has_non_finite(v)),
        Value::Tagged(t) => has_non_finite(&t.value),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

fn check_document(value: &serde_json::Value) -> Option<Vec<Finding>> {
    let kind = value.get("kind").and_then(|k| k.as_str());
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let ours = matches!(kind, Some("CustomScalingPolicy" | "ClusterMetricsSource"))
        && api_version.starts_with("autoscaling.ballast.dev/");

    let Some(findings) = lint_document(value, Some("ballast-system")) else {
        assert!(
            !ours,
            "one of our kinds was skipped: {kind:?} {api_version:?}"
        );
        return None;
    };
    assert!(
        ours,
        "a foreign object was linted: {kind:?} {api_version:?}"
    );
    for f in &findings {
        assert_eq!(Some(f.kind.as_str()), kind);
        assert!(!f.problem.message.is_empty(), "{f:?}");
        // What lint prints.
        let _ = f.problem.to_string();
    }
    if api_version != GROUP_VERSION {
        assert!(
            findings
                .iter()
                .any(|f| f.problem.field == "apiVersion" && f.problem.severity == Severity::Error),
            "an unserved apiVersion passed: {api_version:?}"
        );
    }

    // Decoding that sets bad fields aside reports type errors exactly when a plain
    // decode fails, and each with its field.
    if kind == Some("CustomScalingPolicy") {
        let decoded = validation::decode::<CustomScalingPolicy>(value);
        let plain = serde_json::from_value::<CustomScalingPolicy>(value.clone());
        assert_eq!(
            decoded.has_type_errors(),
            plain.is_err(),
            "{plain:?} vs {:?}",
            decoded.problems
        );
    }

    let accepted = !findings
        .iter()
        .any(|f| f.problem.severity == Severity::Error);
    if accepted && kind == Some("CustomScalingPolicy") {
        round_trip(value);
    }
    Some(findings)
}

/// A policy lint accepts is the same after a JSON round trip (what the API server
/// stores and the operator reads back), and validates the same.
fn round_trip(value: &serde_json::Value) {
    let policy = validation::decode::<CustomScalingPolicy>(value)
        .object
        .expect("lint accepted a policy that does not decode");
    let problems = validation::validate_policy(&policy.spec);
    let json = serde_json::to_value(&policy.spec).expect("an accepted spec serializes");
    let again: ballast::api::CustomScalingPolicySpec = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| {
            panic!("an accepted spec does not decode after a round trip: {e}\n{json}")
        });
    assert_eq!(again, policy.spec, "the round trip changed the spec");
    assert_eq!(
        validation::validate_policy(&again),
        problems,
        "the round trip changed the findings"
    );
}

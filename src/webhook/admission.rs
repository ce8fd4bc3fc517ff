//! `admission.k8s.io/v1` AdmissionReview: decoding a request body and building the
//! response. Our own small types (not kube's): only the fields we read, every one
//! checked, and a decode error that says what was wrong instead of a panic.

use serde::Deserialize;
use serde_json::{Value, json};

/// The API version we accept and answer with.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// The part of an AdmissionReview request the webhook uses.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

/// Why a body is not an AdmissionReview we can answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not an AdmissionReview: {0}")]
    Shape(String),
    #[error("apiVersion {0:?} is not supported; send admission.k8s.io/v1")]
    Version(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("request.uid is empty")]
    NoUid,
}

/// Decode a request body. Errors name the field that failed to decode.
pub fn decode(body: &[u8]) -> Result<Request, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let review: Review = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Shape(format!("{path}: {}", e.into_inner()))
    })?;
    if review.api_version != API_VERSION {
        return Err(DecodeError::Version(review.api_version));
    }
    if review.kind != "AdmissionReview" {
        return Err(DecodeError::Kind(review.kind));
    }
    let request = review.request.ok_or(DecodeError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(DecodeError::NoUid);
    }
    Ok(request)
}

/// What the webhook decided about one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why the request is refused; empty: allowed.
    pub denials: Vec<String>,
    /// Shown by kubectl as `Warning: ...` (allowed or not).
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// The message a user sees after `admission webhook "..." denied the request: `.
    pub fn message(&self) -> String {
        match self.denials.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            many => format!("{} problems: {}", many.len(), many.join("; ")),
        }
    }
}

/// The longest warning the API server passes on (it truncates longer ones).
const MAX_WARNING_CHARS: usize = 240;

/// The response body for `uid`.
pub fn respond(uid: &str, verdict: &Verdict) -> Value {
    let warnings: Vec<String> = verdict
        .warnings
        .iter()
        .map(|w| {
            // Warnings must be single-line printable text: the API server drops one
            // with any control character.
            let w = w.replace(char::is_control, " ");
            if w.chars().count() > MAX_WARNING_CHARS {
                let cut: String = w.chars().take(MAX_WARNING_CHARS - 3).collect();
                format!("{cut}...")
            } else {
                w
            }
        })
        .collect();
    let mut response = json!({ "uid": uid, "allowed": verdict.allowed() });
    if !verdict.allowed() {
        response["status"] = json!({
            "code": 403,
            "reason": "Forbidden",
            "message": verdict.message(),
        });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
        }))
        .unwrap()
    }

    #[test]
    fn decodes_a_create() {
        let body = review(json!({
            "uid": "u1", "operation": "CREATE", "namespace": "shop", "name": "p",
            "kind": {"group": "autoscaling.ballast.dev", "version": "v1alpha1", "kind": "CustomScalingPolicy"},
            "object": {"spec": {}}, "oldObject": null, "dryRun": false
        }));
        let r = decode(&body).unwrap();
        assert_eq!(r.uid, "u1");
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(r.kind.kind, "CustomScalingPolicy");
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert!(r.old_object.is_none());
    }

    #[test]
    fn malformed_bodies_are_named() {
        assert!(matches!(decode(b"{not json"), Err(DecodeError::NotJson(_))));
        assert!(matches!(decode(b""), Err(DecodeError::NotJson(_))));
        assert_eq!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#),
            Err(DecodeError::Version("admission.k8s.io/v1beta1".into()))
        );
        assert_eq!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#),
            Err(DecodeError::Kind("Pod".into()))
        );
        assert_eq!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(DecodeError::NoRequest)
        );
        let e = decode(&review(json!({"uid": "u", "operation": "EXPLODE",
            "kind": {"version": "v1", "kind": "X"}})))
        .unwrap_err();
        assert!(
            matches!(&e, DecodeError::Shape(m) if m.starts_with("request.operation")),
            "{e}"
        );
        let e = decode(&review(json!({"uid": "", "operation": "CREATE",
            "kind": {"version": "v1", "kind": "X"}})))
        .unwrap_err();
        assert_eq!(e, DecodeError::NoUid);
        let e = decode(&review(json!({"operation": "CREATE"}))).unwrap_err();
        assert!(
            matches!(&e, DecodeError::Shape(m) if m.contains("uid")),
            "{e}"
        );
    }

    #[test]
    fn warnings_carry_no_control_characters() {
        // Found by fuzz/admission_review: the API server drops a warning holding any
        // control character (apimachinery's NewWarningHeader refuses it), not only
        // \n, \r and \t; warnings echo names from the request, e.g. a targetRef kind.
        let r = respond(
            "u",
            &Verdict {
                denials: vec![],
                warnings: vec![
                    "pr\u{7f}m".into(),
                    "kind Deploy\u{7}ment\u{1b}[0m is not served\u{85}".into(),
                ],
            },
        );
        assert_eq!(r["response"]["warnings"][0], "pr m");
        assert_eq!(
            r["response"]["warnings"][1],
            "kind Deploy ment [0m is not served "
        );
    }

    #[test]
    fn responses_carry_uid_status_and_clean_warnings() {
        let allowed = respond(
            "a",
            &Verdict {
                denials: vec![],
                warnings: vec!["two\nlines".into(), "x".repeat(500)],
            },
        );
        assert_eq!(allowed["response"]["uid"], "a");
        assert_eq!(allowed["response"]["allowed"], true);
        assert!(allowed["response"].get("status").is_none());
        assert_eq!(allowed["response"]["warnings"][0], "two lines");
        assert_eq!(
            allowed["response"]["warnings"][1]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_WARNING_CHARS
        );
        let denied = respond(
            "b",
            &Verdict {
                denials: vec!["one".into(), "two".into()],
                warnings: vec![],
            },
        );
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(denied["response"]["status"]["code"], 403);
        assert_eq!(
            denied["response"]["status"]["message"],
            "2 problems: one; two"
        );
        assert_eq!(denied["apiVersion"], API_VERSION);
    }
}

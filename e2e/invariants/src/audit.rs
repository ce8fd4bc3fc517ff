//! The kube-apiserver's JSON audit log (e2e/cluster writes one, level Request for
//! writes): Ballast's replica writes and Lease writes, and everybody else's writes
//! to workloads.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

/// Ballast's ServiceAccount in the harness.
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:ballast-system:ballast";

/// One completed request, as much of it as the checker reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Event {
    stage: String,
    verb: String,
    user: User,
    user_agent: String,
    object_ref: ObjectRef,
    response_status: ResponseStatus,
    request_received_timestamp: String,
    request_object: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    username: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ObjectRef {
    resource: String,
    namespace: Option<String>,
    name: String,
    subresource: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResponseStatus {
    code: u16,
}

/// A replica write by Ballast through `/scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// Unix seconds (the API server's clock).
    pub t: f64,
    /// The replica that wrote, from its user agent `ballast/VERSION (identity)`.
    pub who: String,
    pub resource: String,
    pub target: String,
    /// `spec.replicas` of the request, when it had one.
    pub value: Option<i64>,
}

/// A write of a Lease by Ballast.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseWrite {
    pub t: f64,
    pub who: String,
    pub name: String,
}

/// Somebody else's write to a workload or its `/scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherWrite {
    pub t: f64,
    pub resource: String,
    pub target: String,
}

/// Everything the checker reads from the audit log, each list in time order.
#[derive(Debug, Default)]
pub struct Records {
    pub writes: Vec<Write>,
    pub leases: Vec<LeaseWrite>,
    pub others: Vec<OtherWrite>,
}

/// `2026-11-27T05:40:12.123456Z` (any fraction) as Unix seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    Some(ts.as_nanosecond() as f64 / 1e9)
}

/// The identity in a user agent `ballast/VERSION (identity)`, else the whole agent.
fn identity(agent: &str) -> String {
    agent
        .strip_prefix("ballast/")
        .and_then(|rest| rest.split_once(" ("))
        .and_then(|(_, who)| who.strip_suffix(')'))
        .unwrap_or(if agent.is_empty() { "?" } else { agent })
        .to_string()
}

/// Read the successful writes in `namespace` from the audit log at `path`. A missing
/// file has none; an unreadable line is skipped.
pub fn records(path: &Path, namespace: &str) -> std::io::Result<Records> {
    let mut out = Records::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        let line = line?;
        let Ok(e) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if e.stage != "ResponseComplete" {
            continue;
        }
        let Some(t) = parse_time(&e.request_received_timestamp) else {
            continue;
        };
        let r = &e.object_ref;
        if r.namespace.as_deref() != Some(namespace)
            || !(200..300).contains(&e.response_status.code)
        {
            continue;
        }
        let scale_or_object = matches!(r.subresource.as_deref(), None | Some("scale"));
        if e.user.username != SERVICE_ACCOUNT {
            if matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete")
                && scale_or_object
            {
                out.others.push(OtherWrite {
                    t,
                    resource: r.resource.clone(),
                    target: r.name.clone(),
                });
            }
            continue;
        }
        if !matches!(e.verb.as_str(), "create" | "update" | "patch") {
            continue;
        }
        let who = identity(&e.user_agent);
        if r.resource == "leases" {
            out.leases.push(LeaseWrite {
                t,
                who,
                name: r.name.clone(),
            });
        } else if r.subresource.as_deref() == Some("scale") {
            let value = e
                .request_object
                .as_ref()
                .and_then(|o| o.pointer("/spec/replicas"))
                .and_then(|v| v.as_i64());
            out.writes.push(Write {
                t,
                who,
                resource: r.resource.clone(),
                target: r.name.clone(),
                value,
            });
        }
    }
    out.writes.sort_by(|a, b| a.t.total_cmp(&b.t));
    out.leases.sort_by(|a, b| a.t.total_cmp(&b.t));
    out.others.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_identities() {
        let t = parse_time("2026-11-27T05:40:12.5Z").expect("a time");
        assert!((t - 1_795_758_012.5).abs() < 1e-6, "{t}");
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(identity("ballast/0.1.0 (chaos-a)"), "chaos-a");
        assert_eq!(identity("kubectl/v1.34"), "kubectl/v1.34");
        assert_eq!(identity(""), "?");
    }

    /// An audit line: `(verb, resource, subresource)` by `user` in `namespace`.
    fn event(
        t: &str,
        user: &str,
        (verb, resource, subresource): (&str, &str, Option<&str>),
        namespace: &str,
        code: u16,
        replicas: Option<i64>,
    ) -> String {
        let mut e = serde_json::json!({
            "stage": "ResponseComplete", "verb": verb,
            "user": {"username": user}, "userAgent": "ballast/0.1.0 (chaos-a)",
            "objectRef": {"resource": resource, "namespace": namespace, "name": "web"},
            "responseStatus": {"code": code},
            "requestReceivedTimestamp": t,
        });
        if let Some(sub) = subresource {
            e["objectRef"]["subresource"] = sub.into();
        }
        if let Some(n) = replicas {
            e["requestObject"] = serde_json::json!({"spec": {"replicas": n}});
        }
        e.to_string()
    }

    #[test]
    fn only_successful_writes_in_the_namespace_are_read_and_sorted() {
        let sa = SERVICE_ACCOUNT;
        let lines = [
            event(
                "2026-11-27T05:40:13Z",
                sa,
                ("patch", "deployments", Some("scale")),
                "ns",
                200,
                Some(5),
            ),
            event(
                "2026-11-27T05:40:12Z",
                sa,
                ("patch", "deployments", Some("scale")),
                "ns",
                200,
                Some(4),
            ),
            event(
                "2026-11-27T05:40:12Z",
                sa,
                ("patch", "deployments", Some("scale")),
                "ns",
                409,
                Some(9),
            ),
            event(
                "2026-11-27T05:40:12Z",
                sa,
                ("patch", "deployments", Some("scale")),
                "other",
                200,
                Some(9),
            ),
            event(
                "2026-11-27T05:40:12Z",
                sa,
                ("get", "deployments", Some("scale")),
                "ns",
                200,
                None,
            ),
            event(
                "2026-11-27T05:40:11Z",
                sa,
                ("update", "leases", None),
                "ns",
                200,
                None,
            ),
            event(
                "2026-11-27T05:40:14Z",
                "admin",
                ("patch", "deployments", None),
                "ns",
                200,
                Some(7),
            ),
            event(
                "2026-11-27T05:40:14Z",
                "admin",
                ("patch", "deployments", Some("status")),
                "ns",
                200,
                None,
            ),
            "not json".to_string(),
        ];
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let r = records(&path, "ns").expect("read");
        let values: Vec<Option<i64>> = r.writes.iter().map(|w| w.value).collect();
        assert_eq!(
            values,
            vec![Some(4), Some(5)],
            "sorted by time; failed, other namespaces and reads left out"
        );
        assert_eq!(r.writes[0].who, "chaos-a");
        assert_eq!(r.leases.len(), 1);
        assert_eq!(
            r.others.len(),
            1,
            "a status write is not a write of replicas"
        );
        assert!(
            records(&dir.path().join("missing.log"), "ns")
                .expect("none")
                .writes
                .is_empty()
        );
    }
}

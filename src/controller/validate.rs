//! Step 1, **validate** (no client): an object the API server admitted may still
//! break rules CEL cannot see (PromQL, cross-field rules), so the spec is checked
//! with the validator `ballast lint` and the webhook use, once per generation
//! (`state::Policies::needs_validation`). An invalid spec is reported on the
//! policy (`Ready` and `AbleToScale` False and `Stalled` True, reason
//! `InvalidSpec`) and never ticks
//! until the spec changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::report;
use crate::api::conditions::{reasons, types};
use crate::api::validation::{self, Severity};
use crate::api::{CustomScalingPolicy, CustomScalingPolicySpec, CustomScalingPolicyStatus};

/// Longest message kept in a condition.
const MAX_MESSAGE: usize = 1024;

/// The spec's errors, joined, or `None` when it may run. Warnings do not stop it.
pub fn problems(spec: &CustomScalingPolicySpec) -> Option<String> {
    let errors: Vec<String> = validation::validate_policy(spec)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The status that reports `problems`, or `None` when the stored status already
/// says exactly that (so an invalid policy costs one write, not one per event).
pub fn invalid_status(
    policy: &CustomScalingPolicy,
    problems: &str,
    now: jiff::Timestamp,
) -> Option<CustomScalingPolicyStatus> {
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    let message: String = problems.chars().take(MAX_MESSAGE).collect();
    let conditions = [types::READY, types::ABLE_TO_SCALE, types::STALLED]
        .into_iter()
        .map(|t| Condition {
            type_: t.into(),
            status: if t == types::STALLED { "True" } else { "False" }.into(),
            reason: reasons::INVALID_SPEC.into(),
            message: message.clone(),
            observed_generation: policy.metadata.generation,
            last_transition_time: Time(now),
        })
        .collect();
    let old = policy
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    status.conditions = report::keep_transition_times(conditions, &old);
    let unchanged = policy.status.as_ref().is_some_and(|s| {
        s.observed_generation == status.observed_generation
            && s.conditions.len() == status.conditions.len()
            && s.conditions.iter().zip(&status.conditions).all(|(a, b)| {
                (&a.type_, &a.status, &a.reason, &a.message)
                    == (&b.type_, &b.status, &b.reason, &b.message)
            })
    });
    (!unchanged).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(query: &str) -> CustomScalingPolicy {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {{name: p, namespace: ns, uid: u-1, generation: 3}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  maxReplicas: 10
  metrics:
    - name: m
      query: '{query}'
      target: {{type: AverageValue, averageValue: "100"}}
"#
        ))
        .expect("policy")
    }

    #[test]
    fn a_valid_spec_has_no_problems_and_an_invalid_one_names_the_field() {
        assert_eq!(problems(&policy("sum(rate(x[1m]))").spec), None);
        let found = problems(&policy("sum(rate(x[1m])").spec).expect("a PromQL error");
        assert!(found.contains("spec.metrics[0].query"), "{found}");
    }

    #[test]
    fn an_invalid_spec_is_reported_once() {
        let mut p = policy("sum(");
        let found = problems(&p.spec).expect("invalid");
        let t0 = jiff::Timestamp::from_second(1_000).expect("time");
        let status = invalid_status(&p, &found, t0).expect("a first report");
        assert_eq!(status.observed_generation, Some(3));
        let reasons_: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            reasons_,
            [
                (types::READY, "False", "InvalidSpec"),
                (types::ABLE_TO_SCALE, "False", "InvalidSpec"),
                (types::STALLED, "True", "InvalidSpec")
            ]
        );
        // Stored: the same problem later is not written again.
        p.status = Some(status);
        let t1 = jiff::Timestamp::from_second(2_000).expect("time");
        assert!(invalid_status(&p, &found, t1).is_none());
        // A different problem (or generation) is.
        assert!(invalid_status(&p, "spec.maxReplicas: other", t1).is_some());
        p.metadata.generation = Some(4);
        assert!(invalid_status(&p, &found, t1).is_some());
    }
}

//! Who owns a target's `spec.replicas`, from its `managedFields`: the replicas
//! fight with a GitOps sync (or anyone else) detected, not only documented.
//!
//! Ballast writes replicas through `/scale` with the field manager `ballast`
//! (operation `Update`), which makes it the owner of `spec.replicas`. A later
//! write of that field by another manager — Argo CD's `argocd-controller`, Flux's
//! `kustomize-controller`, `kubectl-client-side-apply`, `kubectl` (scale) — takes
//! the ownership away, so "Ballast has written replicas and no longer owns them"
//! means someone wrote after it. The watch caches keep only these entries,
//! shrunk to who and when (see [`keep_replicas_owners`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, Time,
};

use crate::api::conditions::FIELD_MANAGER;

/// One manager that owns `spec.replicas`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicasOwner {
    pub manager: String,
    /// `Apply` (server-side apply) or `Update` (anything else).
    pub operation: String,
    /// `scale` when written through `/scale`.
    pub subresource: Option<String>,
    /// When this manager last changed a field it owns.
    pub time: Option<Time>,
}

impl ReplicasOwner {
    /// `argocd-controller (server-side apply, 2026-12-01T10:00:00Z)`.
    pub fn describe(&self) -> String {
        let how = match (self.operation.as_str(), self.subresource.as_deref()) {
            ("Apply", _) => "server-side apply",
            (_, Some("scale")) => "/scale",
            _ => "update",
        };
        match &self.time {
            Some(t) => format!("{} ({how}, {})", self.manager, t.0),
            None => format!("{} ({how})", self.manager),
        }
    }
}

fn owns_replicas(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.get("f:spec"))
        .and_then(|spec| spec.get("f:replicas"))
        .is_some()
}

/// The watch caches' transform: of `managedFields`, only the entries that own
/// `spec.replicas`, each without the rest of its field set (a Deployment's
/// entries are most of its size once the template is dropped).
pub fn keep_replicas_owners(meta: &mut ObjectMeta) {
    let Some(entries) = meta.managed_fields.take() else {
        return;
    };
    let kept: Vec<ManagedFieldsEntry> = entries
        .into_iter()
        .filter(owns_replicas)
        .map(|e| ManagedFieldsEntry {
            manager: e.manager,
            operation: e.operation,
            subresource: e.subresource,
            time: e.time,
            fields_type: e.fields_type,
            fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {"f:replicas": {}}}))),
            api_version: None,
        })
        .collect();
    meta.managed_fields = (!kept.is_empty()).then_some(kept);
}

/// The managers that own `spec.replicas`.
pub fn replicas_owners(meta: &ObjectMeta) -> Vec<ReplicasOwner> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|e| owns_replicas(e))
        .map(|e| ReplicasOwner {
            manager: e.manager.clone().unwrap_or_else(|| "(unnamed)".into()),
            operation: e.operation.clone().unwrap_or_default(),
            subresource: e.subresource.clone().filter(|s| !s.is_empty()),
            time: e.time.clone(),
        })
        .collect()
}

/// Field managers that apply a manifest: client-side `kubectl apply` and Argo CD
/// (operation `Update`, so known by name), and anything that uses server-side
/// apply (operation `Apply`: Flux, `kubectl apply --server-side`, Argo CD with
/// `ServerSideApply=true`).
const CLIENT_SIDE_APPLIERS: [&str; 3] = ["kubectl-client-side-apply", "argocd-controller", "helm"];

/// The owners of `spec.replicas` that re-apply a manifest (GitOps, `kubectl
/// apply`, Helm): a manifest that sets replicas will set them again after
/// Ballast, on every sync. Ballast itself and one-off writers (`kubectl scale`,
/// `kubectl create`) are left out.
pub fn appliers(owners: &[ReplicasOwner]) -> Vec<&ReplicasOwner> {
    owners
        .iter()
        .filter(|o| o.manager != FIELD_MANAGER)
        .filter(|o| o.operation == "Apply" || CLIENT_SIDE_APPLIERS.contains(&o.manager.as_str()))
        .collect()
}

/// Who overwrote Ballast's replicas, given when Ballast last wrote them (the
/// policy's `lastScaleTime`): `None` while Ballast owns them, before it has ever
/// written them (the creator owns them then, which is no fight yet), or when the
/// other owners wrote before Ballast's last write (a policy retargeted to a
/// workload it has not written yet); else the other owner that wrote last.
/// Managed-field times have whole seconds, so a write in the same second counts.
pub fn overwritten_by(
    owners: &[ReplicasOwner],
    last_write: Option<jiff::Timestamp>,
) -> Option<&ReplicasOwner> {
    let since = last_write?;
    if owners.iter().any(|o| o.manager == FIELD_MANAGER) {
        return None;
    }
    let since = since.as_second();
    owners
        .iter()
        .filter(|o| o.time.as_ref().is_none_or(|t| t.0.as_second() >= since))
        .max_by_key(|o| o.time.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(
        manager: &str,
        operation: &str,
        sub: Option<&str>,
        time: &str,
        fields: serde_json::Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: sub.map(Into::into),
            time: Some(Time(time.parse().expect("a timestamp"))),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            api_version: Some("apps/v1".into()),
        }
    }

    fn replicas() -> serde_json::Value {
        json!({"f:spec": {"f:replicas": {}}})
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(entries),
            ..Default::default()
        }
    }

    #[test]
    fn the_cache_keeps_only_who_owns_replicas_and_when() {
        let mut m = meta(vec![
            entry(
                "kubectl-client-side-apply",
                "Update",
                None,
                "2026-12-01T10:00:00Z",
                json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:template": {"f:spec": {}}}}),
            ),
            entry(
                "argocd-controller",
                "Apply",
                None,
                "2026-12-01T10:05:00Z",
                json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {}}}),
            ),
        ]);
        keep_replicas_owners(&mut m);
        let kept = m.managed_fields.as_ref().expect("one entry kept");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].manager.as_deref(), Some("argocd-controller"));
        assert_eq!(kept[0].fields_v1.as_ref().map(|f| &f.0), Some(&replicas()));
        assert_eq!(kept[0].api_version, None);
        assert_eq!(
            replicas_owners(&m),
            vec![ReplicasOwner {
                manager: "argocd-controller".into(),
                operation: "Apply".into(),
                subresource: None,
                time: Some(Time("2026-12-01T10:05:00Z".parse().expect("time"))),
            }]
        );
        let mut none = meta(vec![entry(
            "kube-controller-manager",
            "Update",
            Some("status"),
            "2026-12-01T10:00:00Z",
            json!({"f:status": {}}),
        )]);
        keep_replicas_owners(&mut none);
        assert_eq!(none.managed_fields, None);
    }

    #[test]
    fn ballast_owning_replicas_is_no_fight() {
        let m = meta(vec![entry(
            FIELD_MANAGER,
            "Update",
            Some("scale"),
            "2026-12-01T10:00:00Z",
            replicas(),
        )]);
        assert_eq!(
            overwritten_by(&replicas_owners(&m), at("2026-12-01T10:00:00Z")),
            None
        );
    }

    fn at(t: &str) -> Option<jiff::Timestamp> {
        Some(t.parse().expect("a timestamp"))
    }

    #[test]
    fn before_ballast_wrote_the_creator_owning_replicas_is_no_fight() {
        let m = meta(vec![entry(
            "kubectl-client-side-apply",
            "Update",
            None,
            "2026-12-01T10:00:00Z",
            replicas(),
        )]);
        assert_eq!(overwritten_by(&replicas_owners(&m), None), None);
    }

    #[test]
    fn after_ballast_wrote_the_last_other_writer_is_named() {
        let m = meta(vec![
            entry(
                "kubectl",
                "Update",
                Some("scale"),
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
            entry(
                "argocd-controller",
                "Apply",
                None,
                "2026-12-01T10:05:00Z",
                replicas(),
            ),
        ]);
        let owners = replicas_owners(&m);
        let by = overwritten_by(&owners, at("2026-12-01T09:59:00Z")).expect("overwritten");
        assert_eq!(by.manager, "argocd-controller");
        assert_eq!(
            by.describe(),
            "argocd-controller (server-side apply, 2026-12-01T10:05:00Z)"
        );
        assert_eq!(
            owners[0].describe(),
            "kubectl (/scale, 2026-12-01T10:00:00Z)"
        );
    }

    #[test]
    fn a_write_in_the_same_second_as_ballasts_counts_and_an_older_one_does_not() {
        let m = meta(vec![entry(
            "kustomize-controller",
            "Apply",
            None,
            "2026-12-01T10:05:00Z",
            replicas(),
        )]);
        let owners = replicas_owners(&m);
        let same_second = "2026-12-01T10:05:00.700Z".parse().ok();
        assert_eq!(
            overwritten_by(&owners, same_second).map(|o| o.manager.as_str()),
            Some("kustomize-controller")
        );
        // Retargeted: the new workload's creator wrote before Ballast's last write
        // (to the old target).
        assert_eq!(overwritten_by(&owners, at("2026-12-01T11:00:00Z")), None);
    }

    #[test]
    fn appliers_are_those_that_re_apply_a_manifest() {
        let owners = replicas_owners(&meta(vec![
            entry(
                "kubectl-create",
                "Update",
                None,
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
            entry(
                "kubectl",
                "Update",
                Some("scale"),
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
            entry(
                FIELD_MANAGER,
                "Update",
                Some("scale"),
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
            entry(
                "kustomize-controller",
                "Apply",
                None,
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
            entry(
                "kubectl-client-side-apply",
                "Update",
                None,
                "2026-12-01T10:00:00Z",
                replicas(),
            ),
        ]));
        let names: Vec<&str> = appliers(&owners)
            .iter()
            .map(|o| o.manager.as_str())
            .collect();
        assert_eq!(names, ["kustomize-controller", "kubectl-client-side-apply"]);
    }

    #[test]
    fn no_owner_at_all_is_no_fight() {
        assert_eq!(overwritten_by(&[], at("2026-12-01T10:00:00Z")), None);
    }
}

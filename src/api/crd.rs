//! The CRDs as YAML, exactly what `ballast crd` prints and `crds/` holds.

use kube::CustomResourceExt;

use super::{ClusterMetricsSource, CustomScalingPolicy};

/// File names under `crds/` and their contents, in a stable order.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        (
            "customscalingpolicies.yaml",
            serde_yaml::to_string(&CustomScalingPolicy::crd())?,
        ),
        (
            "clustermetricssources.yaml",
            serde_yaml::to_string(&ClusterMetricsSource::crd())?,
        ),
    ])
}

/// Both CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let files = crd_files()?;
    Ok(files
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect())
}

//! The CRD's CEL rules, evaluated client-side (kube's CEL validator, the same rule
//! language the API server runs) on the fixtures: every valid fixture passes, every
//! invalid fixture that names a CEL rule is refused with that rule's message. The
//! schema is read from `crds/`, so the file users install is what is tested.

use std::fs;
use std::path::{Path, PathBuf};

use kube::core::cel::Validator;

fn schema(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(file);
    let crd: serde_json::Value =
        serde_yaml::from_str(&fs::read_to_string(&path).expect("crds/ file exists"))
            .expect("CRD YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn object(path: &Path) -> serde_json::Value {
    serde_yaml::from_str(&fs::read_to_string(path).expect("fixture readable"))
        .expect("fixture YAML")
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn schema_for(value: &serde_json::Value) -> serde_json::Value {
    match value["kind"].as_str() {
        Some("ClusterMetricsSource") => schema("clustermetricssources.yaml"),
        _ => schema("customscalingpolicies.yaml"),
    }
}

#[test]
fn cel_rules_accept_every_valid_fixture() {
    let validator = Validator::new();
    for file in fixtures("valid").into_iter().chain(fixtures("warnings")) {
        // Multi-document fixtures: check our kinds only.
        let text = fs::read_to_string(&file).expect("readable");
        for doc in text.split("\n---\n") {
            let value: serde_json::Value = serde_yaml::from_str(doc).expect("YAML");
            if !value["apiVersion"]
                .as_str()
                .unwrap_or("")
                .starts_with("autoscaling.ballast.dev/")
            {
                continue;
            }
            let result = validator.validate(&schema_for(&value), &value, None);
            assert!(result.is_ok(), "{}: {:?}", file.display(), result.err());
        }
    }
}

#[test]
fn cel_rules_refuse_the_invalid_fixtures_they_cover() {
    let validator = Validator::new();
    let mut covered = 0;
    for file in fixtures("invalid") {
        let body = fs::read_to_string(&file).expect("readable");
        let Some(message) = body.lines().find_map(|l| l.strip_prefix("# cel: ")) else {
            continue;
        };
        covered += 1;
        let value = object(&file);
        let errors = validator
            .validate(&schema_for(&value), &value, None)
            .err()
            .unwrap_or_else(|| panic!("{}: CEL accepted it", file.display()));
        let text: Vec<String> = errors.as_slice().iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter().any(|t| t.contains(message.trim())),
            "{}: expected {message:?}, got {text:?}",
            file.display()
        );
    }
    assert!(covered >= 12, "only {covered} fixtures name a CEL rule");
}

//! Validation of policies and sources, written once and used by `ballast lint`
//! (offline, in GitOps CI) and by the admission webhook. It covers every CEL rule in
//! the CRD, and what CEL cannot see: PromQL syntax, unknown fields, foot-guns.

use std::collections::HashSet;
use std::fmt;

use serde::de::DeserializeOwned;

use super::duration::Duration;
use super::policy::{
    CustomScalingPolicySpec, FallbackMode, MetricSpec, NodePool, ScalingRules, TargetRef,
    TargetType,
};
use super::quantity::Quantity;
pub use super::rules::Rule;
use super::source::ClusterMetricsSourceSpec;

/// How bad a problem is: errors are refused, warnings are foot-guns to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem with an object: the field path (e.g. `spec.metrics[0].query`) and what
/// is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub rule: Rule,
    pub severity: Severity,
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn error(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// `field: message`, said once: see [`field_message`].
    pub fn text(&self) -> String {
        field_message(&self.field, &self.message)
    }
}

/// `field: message`, without the field when there is none or when the message
/// already starts with it (CEL rules name theirs: `spec.jitter must be ...`).
pub fn field_message(field: &str, message: &str) -> String {
    let repeats = message
        .strip_prefix(field)
        .is_some_and(|rest| rest.starts_with(": ") || rest.starts_with(' '));
    if field.is_empty() || repeats {
        message.to_string()
    } else {
        format!("{field}: {message}")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.text())
    }
}

/// Largest number of metrics in one policy (the CRD's `maxItems`).
pub const MAX_METRICS: usize = 16;
/// Longest HPA stabilization window.
pub const MAX_WINDOW_SECONDS: u32 = 3600;
/// Longest rate-limit period.
pub const MAX_PERIOD_SECONDS: u32 = 1800;
/// Below this poll interval, lint warns.
pub const MIN_SENSIBLE_POLL: Duration = Duration::from_secs(5);

/// An object decoded for validation: every field that could not be decoded is a
/// problem, not only the first, and the rest of the object is still there to
/// validate (see [`decode`]).
#[derive(Debug)]
pub struct Decoded<T> {
    /// The object, with a placeholder (or nothing) where a field did not decode;
    /// `None` when no placeholder made it decode.
    pub object: Option<T>,
    /// What did not decode (rules `type` and `required`), then fields under `spec`
    /// the type does not know (rule `unknown-field`).
    pub problems: Vec<Problem>,
    /// The fields that did not decode: what validation says at or under them is
    /// about a placeholder, not about the input.
    placeholders: Vec<String>,
}

impl<T> Decoded<T> {
    /// Whether any field failed to decode.
    pub fn has_type_errors(&self) -> bool {
        !self.placeholders.is_empty() || self.object.is_none()
    }

    /// Add what validation found in the decoded object, leaving out what it says
    /// about placeholders.
    pub fn extend_validation(&mut self, problems: Vec<Problem>) {
        let keep: Vec<Problem> = problems
            .into_iter()
            .filter(|p| !self.placeholders.iter().any(|at| under(&p.field, at)))
            .collect();
        self.problems.extend(keep);
    }
}

/// `field` is `at` or below it.
fn under(field: &str, at: &str) -> bool {
    at.is_empty()
        || field
            .strip_prefix(at)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// At most this many fields of one object are reported as not decoding.
const MAX_DECODE_ERRORS: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path of a decode error, `None` when it passes through something that
/// cannot be addressed in the input (an enum variant).
fn error_path(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// The key serde says is missing: `missing field `x``.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn slot<'a>(value: &'a mut serde_json::Value, path: &[Step]) -> Option<&'a mut serde_json::Value> {
    let mut here = value;
    for step in path {
        here = match step {
            Step::Key(k) => here.as_object_mut()?.get_mut(k)?,
            Step::Index(i) => here.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(here)
}

/// The first value serde says it expected: `unknown variant `x`, expected `A` or `B``.
fn expected_variant(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("expected ")?;
    let rest = rest.strip_prefix("one of ").unwrap_or(rest);
    let variant = rest.strip_prefix('`')?.split('`').next()?;
    (!variant.is_empty()).then_some(variant)
}

/// Values tried in place of one that does not decode, in order: what serde says
/// it expected (an enum's first variant), then one of each JSON type.
fn placeholders_for(message: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = Vec::new();
    if let Some(variant) = expected_variant(message) {
        out.push(json!(variant));
    }
    out.extend([
        json!(1),
        json!("1"),
        json!("1s"),
        json!(true),
        json!([]),
        json!({}),
        json!(1.5),
    ]);
    out
}

/// The first decode error of `value` as a path and message; `None` when it decodes.
fn first_error<T: DeserializeOwned>(
    value: &serde_json::Value,
) -> Option<(Option<Vec<Step>>, String)> {
    serde_path_to_error::deserialize::<_, T>(value)
        .err()
        .map(|err| {
            let path = error_path(err.path());
            (path, err.into_inner().to_string())
        })
}

/// Whether an error is still about `at` (the field itself, or its key missing).
fn still_at(error: &Option<(Option<Vec<Step>>, String)>, at: &[Step]) -> bool {
    let Some((Some(path), message)) = error else {
        return error.is_some();
    };
    if path.as_slice() == at {
        // A placeholder object missing fields of its own is progress: they are
        // filled in turn.
        return missing_field(message).is_none();
    }
    match (missing_field(message), at.split_last()) {
        (Some(key), Some((Step::Key(last), parent))) => key == last && path.as_slice() == parent,
        _ => false,
    }
}

/// Most decode attempts one object may cost (the webhook runs this on every
/// admission, so a hostile object with many bad fields must stay cheap).
const DECODE_BUDGET: usize = 256;

/// Replace the field at `at` so that decoding gets past it: drop it when it is
/// optional, else try placeholders. `false` when nothing works or `budget` (decode
/// attempts left) runs out.
fn patch<T: DeserializeOwned>(
    work: &mut serde_json::Value,
    at: &[Step],
    message: &str,
    budget: &mut usize,
) -> bool {
    let Some((last, parent)) = at.split_last() else {
        return false;
    };
    if let Step::Key(key) = last {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let mut trial = work.clone();
        let removed = slot(&mut trial, parent)
            .and_then(|p| p.as_object_mut())
            .and_then(|o| o.remove(key))
            .is_some();
        if removed && !still_at(&first_error::<T>(&trial), at) {
            *work = trial;
            return true;
        }
    }
    let mut candidates: std::collections::VecDeque<_> = placeholders_for(message).into();
    let mut tried = 0;
    while let Some(candidate) = candidates.pop_front() {
        tried += 1;
        if tried > 16 || *budget == 0 {
            return false;
        }
        *budget -= 1;
        let mut trial = work.clone();
        let Some(container) = slot(&mut trial, parent) else {
            return false;
        };
        match (last, container) {
            (Step::Key(key), serde_json::Value::Object(map)) => {
                map.insert(key.clone(), candidate);
            }
            (Step::Index(i), serde_json::Value::Array(items)) if *i < items.len() => {
                items[*i] = candidate;
            }
            _ => return false,
        }
        let error = first_error::<T>(&trial);
        if !still_at(&error, at) {
            *work = trial;
            return true;
        }
        // A placeholder of the right type may be told what it should be instead
        // (an enum's variants): try that first.
        if let Some((_, message)) = &error
            && let Some(suggested) = expected_variant(message)
        {
            candidates.push_front(serde_json::json!(suggested));
        }
    }
    false
}

/// Decode a JSON/YAML value into a typed object, reporting every field that does
/// not decode (not only the first: each is set aside, dropped when optional or
/// given a placeholder, and decoding goes on), then fields under `spec` that the
/// type does not know (typos that the API server would silently prune).
pub fn decode<T>(value: &serde_json::Value) -> Decoded<T>
where
    T: DeserializeOwned + serde::Serialize,
{
    let mut work = value.clone();
    let mut problems = Vec::new();
    let mut placeholders = Vec::new();
    let mut object = None;
    let mut budget = DECODE_BUDGET;
    for _ in 0..=MAX_DECODE_ERRORS {
        let Some((path, message)) = first_error::<T>(&work) else {
            object = serde_json::from_value::<T>(work.clone()).ok();
            break;
        };
        let (at, problem) = match (path, missing_field(&message)) {
            (Some(mut path), Some(key)) => {
                path.push(Step::Key(key.to_string()));
                let field = path_text(&path);
                let problem = Problem::error(Rule::Required, field, "required");
                (Some(path), problem)
            }
            (Some(path), None) => {
                let problem = Problem::error(Rule::Type, path_text(&path), message.clone());
                (Some(path), problem)
            }
            (None, _) => (None, Problem::error(Rule::Type, "", message.clone())),
        };
        let Some(at) = at else {
            problems.push(problem);
            break;
        };
        let field = path_text(&at);
        // Inside a placeholder, what is missing is the placeholder's, not the input's.
        if !placeholders.iter().any(|p: &String| under(&field, p)) {
            problems.push(problem);
            placeholders.push(field);
        }
        if problems.len() >= MAX_DECODE_ERRORS || !patch::<T>(&mut work, &at, &message, &mut budget)
        {
            break;
        }
    }
    let mut decoded = Decoded {
        object,
        problems,
        placeholders,
    };
    if let (Some(input), Some(known)) = (
        value.get("spec"),
        decoded
            .object
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok()),
    ) && let Some(known) = known.get("spec")
    {
        let mut unknown = Vec::new();
        unknown_fields("spec", input, known, &mut unknown);
        decoded.extend_validation(unknown);
    }
    decoded
}

fn unknown_fields(
    path: &str,
    input: &serde_json::Value,
    known: &serde_json::Value,
    out: &mut Vec<Problem>,
) {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let child = format!("{path}.{key}");
                match known.get(key) {
                    Some(k) => unknown_fields(&child, value, k, out),
                    None if value.is_null() => {}
                    None => out.push(Problem::error(
                        Rule::UnknownField,
                        child,
                        "unknown field (the API server would drop it silently; check the spelling)",
                    )),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, k)) in input.iter().zip(known).enumerate() {
                unknown_fields(&format!("{path}[{i}]"), value, k, out);
            }
        }
        _ => {}
    }
}

/// Decode a `CustomScalingPolicy` and apply every rule to it: what `ballast lint`
/// and the admission webhook both run.
pub fn check_policy(value: &serde_json::Value) -> Decoded<super::CustomScalingPolicy> {
    let mut decoded = decode::<super::CustomScalingPolicy>(value);
    if let Some(policy) = &decoded.object {
        let problems = validate_policy(&policy.spec);
        decoded.extend_validation(problems);
    }
    decoded
}

/// Decode a `ClusterMetricsSource` and apply every rule to it. `operator_namespace`:
/// where the operator runs and so where the source's Secrets must be (`None`: not
/// checked).
pub fn check_source(
    value: &serde_json::Value,
    operator_namespace: Option<&str>,
) -> Decoded<super::ClusterMetricsSource> {
    let mut decoded = decode::<super::ClusterMetricsSource>(value);
    if let Some(source) = &decoded.object {
        let mut problems = validate_source(&source.spec);
        if let Some(namespace) = operator_namespace {
            secret_namespaces(&source.spec, namespace, &mut problems);
        }
        decoded.extend_validation(problems);
    }
    decoded
}

/// A source's credentials must live in the operator's namespace: that is the only
/// place its RBAC lets it read Secrets.
fn secret_namespaces(
    spec: &ClusterMetricsSourceSpec,
    operator_namespace: &str,
    p: &mut Vec<Problem>,
) {
    let auth = spec.auth.as_ref();
    let mut secrets: Vec<(String, &String)> = [
        auth.and_then(|a| a.bearer_token.as_ref())
            .map(|s| ("spec.auth.bearerToken.namespace".to_string(), &s.namespace)),
        auth.and_then(|a| a.basic.as_ref())
            .map(|b| ("spec.auth.basic.namespace".to_string(), &b.namespace)),
        spec.tls
            .as_ref()
            .and_then(|t| t.client_certificate.as_ref())
            .map(|c| {
                (
                    "spec.tls.clientCertificate.namespace".to_string(),
                    &c.namespace,
                )
            }),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (i, header) in spec.headers.iter().enumerate() {
        if let Some(from) = &header.value_from {
            secrets.push((
                format!("spec.headers[{i}].valueFrom.secretKeyRef.namespace"),
                &from.secret_key_ref.namespace,
            ));
        }
    }
    for (field, namespace) in secrets {
        if namespace != operator_namespace {
            p.push(Problem::error(
                Rule::SecretNamespace,
                field,
                format!(
                    "the Secret must be in the operator's namespace {operator_namespace:?}, not {namespace:?} (the operator may read Secrets only there)"
                ),
            ));
        }
    }
}

/// Every rule about one policy spec. Errors first, then warnings, in field order.
pub fn validate_policy(spec: &CustomScalingPolicySpec) -> Vec<Problem> {
    let mut p = Vec::new();
    target_ref("spec.targetRef", &spec.target_ref, &mut p);

    if spec.max_replicas == 0 {
        p.push(Problem::error(
            Rule::ReplicaBounds,
            "spec.maxReplicas",
            "must be at least 1",
        ));
    }
    if spec.min_replicas > spec.max_replicas {
        p.push(Problem::error(
            Rule::ReplicaBounds,
            "spec.minReplicas",
            format!(
                "spec.minReplicas ({}) must be less than or equal to spec.maxReplicas ({})",
                spec.min_replicas, spec.max_replicas
            ),
        ));
    }

    if spec.metrics.is_empty() {
        p.push(Problem::error(
            Rule::MetricCount,
            "spec.metrics",
            "at least one metric is required",
        ));
    }
    if spec.metrics.len() > MAX_METRICS {
        p.push(Problem::error(
            Rule::MetricCount,
            "spec.metrics",
            format!(
                "at most {MAX_METRICS} metrics, found {}",
                spec.metrics.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    for (i, metric) in spec.metrics.iter().enumerate() {
        let field = format!("spec.metrics[{i}]");
        if !names.insert(metric.name.as_str()) {
            p.push(Problem::error(
                Rule::MetricName,
                format!("{field}.name"),
                format!(
                    "spec.metrics[].name must be unique: {:?} appears more than once",
                    metric.name
                ),
            ));
        }
        validate_metric(&field, metric, &mut p);
    }

    if !(0.0..=0.5).contains(&spec.jitter) {
        p.push(Problem::error(
            Rule::Jitter,
            "spec.jitter",
            format!("spec.jitter must be between 0 and 0.5, got {}", spec.jitter),
        ));
    }
    if spec.poll_interval.as_millis() < 1000 {
        p.push(Problem::error(
            Rule::PollInterval,
            "spec.pollInterval",
            format!("must be at least 1s, got {}", spec.poll_interval),
        ));
    } else if spec.poll_interval < MIN_SENSIBLE_POLL {
        p.push(Problem::warning(
            Rule::PollIntervalShort, "spec.pollInterval",
            format!(
                "{} is below 5s: Prometheus scrapes rarely change that fast, and every policy polling this often adds query load",
                spec.poll_interval
            ),
        ));
    }
    if let Some(smoothing) = &spec.smoothing
        && smoothing.half_life.as_millis() == 0
    {
        p.push(Problem::error(
            Rule::HalfLife,
            "spec.smoothing.halfLife",
            "must be greater than 0 (remove `smoothing` to use raw values)",
        ));
    }
    if let Some(smoothing) = &spec.smoothing {
        for (name, d) in [
            ("lookahead", smoothing.lookahead),
            ("trendHalfLife", smoothing.trend_half_life),
        ] {
            if d.is_some_and(|d| d.as_millis() == 0) {
                p.push(Problem::error(
                    Rule::Lookahead,
                    format!("spec.smoothing.{name}"),
                    "must be greater than 0 (omit it for none)",
                ));
            }
        }
        if let Some(limit) = smoothing.lookahead_limit
            && !(limit.is_finite() && limit >= 1.0)
        {
            p.push(Problem::error(
                Rule::Lookahead,
                "spec.smoothing.lookaheadLimit",
                format!("spec.smoothing.lookaheadLimit must be at least 1, got {limit}"),
            ));
        }
        if smoothing.lookahead.is_none()
            && (smoothing.trend_half_life.is_some()
                || smoothing.lookahead_direction.is_some()
                || smoothing.lookahead_limit.is_some())
        {
            p.push(Problem::warning(
                Rule::Lookahead,
                "spec.smoothing",
                "trendHalfLife, lookaheadDirection and lookaheadLimit do nothing without lookahead",
            ));
        }
    }

    if let Some(behavior) = &spec.behavior {
        if let Some(t) = behavior.tolerance
            && !(0.0..1.0).contains(&t)
        {
            p.push(Problem::error(
                Rule::Tolerance,
                "spec.behavior.tolerance",
                format!("spec.behavior.tolerance must be at least 0 and below 1, got {t}"),
            ));
        }
        if let Some(rules) = &behavior.scale_up {
            scaling_rules("spec.behavior.scaleUp", rules, &mut p);
        }
        if let Some(rules) = &behavior.scale_down {
            scaling_rules("spec.behavior.scaleDown", rules, &mut p);
        }
    }

    if let Some(fallback) = &spec.fallback {
        if fallback.failure_threshold == 0 {
            p.push(Problem::error(
                Rule::FallbackThreshold,
                "spec.fallback.failureThreshold",
                "spec.fallback.failureThreshold must be at least 1",
            ));
        }
        match (fallback.mode, fallback.replicas) {
            (Some(mode @ (FallbackMode::Static | FallbackMode::AtLeast)), None) => {
                p.push(Problem::error(
                    Rule::FallbackMode,
                    "spec.fallback.replicas",
                    format!("spec.fallback.replicas is required with mode {}", mode.as_str()),
                ));
            }
            (Some(FallbackMode::Hold), Some(r)) => p.push(Problem::warning(
                Rule::FallbackMode,
                "spec.fallback.replicas",
                format!("{r} is ignored with mode Hold (the current replicas are held); remove it, or use mode AtLeast to never go below it"),
            )),
            _ => {}
        }
        if let Some(r) = fallback.replicas
            && (r < spec.min_replicas || r > spec.max_replicas)
        {
            p.push(Problem::warning(
                Rule::FallbackReplicas,
                "spec.fallback.replicas",
                format!(
                    "{r} is outside [minReplicas, maxReplicas] = [{}, {}] and will be clamped",
                    spec.min_replicas, spec.max_replicas
                ),
            ));
        }
    }

    if let Some(pool) = &spec.node_pool {
        validate_node_pool(spec, pool, &mut p);
    }
    validate_schedules(spec, &mut p);

    foot_guns(spec, &mut p);
    p.sort_by_key(|problem| std::cmp::Reverse(problem.severity));
    p
}

fn target_ref(field: &str, target: &TargetRef, p: &mut Vec<Problem>) {
    for (name, value) in [
        ("apiVersion", &target.api_version),
        ("kind", &target.kind),
        ("name", &target.name),
    ] {
        if value.trim().is_empty() {
            p.push(Problem::error(
                Rule::TargetRef,
                format!("{field}.{name}"),
                "must not be empty",
            ));
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn validate_metric(field: &str, metric: &MetricSpec, p: &mut Vec<Problem>) {
    if !is_dns_label(&metric.name) {
        p.push(Problem::error(
            Rule::MetricName,
            format!("{field}.name"),
            format!(
                "{:?} is not a DNS label (lowercase letters, digits and '-', at most 63)",
                metric.name
            ),
        ));
    }
    if let Some(source) = &metric.source
        && source.trim().is_empty()
    {
        p.push(Problem::error(
            Rule::MetricSource,
            format!("{field}.source"),
            "must not be empty (omit it to use the default source)",
        ));
    }
    if let Err(message) = check_promql(&metric.query) {
        p.push(Problem::error(
            Rule::PromqlSyntax,
            format!("{field}.query"),
            message,
        ));
    }

    let target = &metric.target;
    let (wanted, other, wanted_name, other_name) = match target.type_ {
        TargetType::Value => (
            &target.value,
            &target.average_value,
            "value",
            "averageValue",
        ),
        TargetType::AverageValue => (
            &target.average_value,
            &target.value,
            "averageValue",
            "value",
        ),
    };
    let type_name = match target.type_ {
        TargetType::Value => "Value",
        TargetType::AverageValue => "AverageValue",
    };
    match wanted {
        None => p.push(Problem::error(
            Rule::MetricTarget,
            format!("{field}.target.{wanted_name}"),
            format!("type {type_name} needs `{wanted_name}`"),
        )),
        Some(q) => positive_quantity(&format!("{field}.target.{wanted_name}"), q, p),
    }
    if other.is_some() {
        p.push(Problem::error(
            Rule::MetricTarget,
            format!("{field}.target.{other_name}"),
            format!("type {type_name} takes `{wanted_name}`, not `{other_name}`"),
        ));
    }
    if let Some(q) = &metric.activation_threshold
        && q.value() < 0.0
    {
        p.push(Problem::error(
            Rule::ActivationThreshold,
            format!("{field}.activationThreshold"),
            format!("must be at least 0, got {q}"),
        ));
    }
}

fn positive_quantity(field: &str, q: &Quantity, p: &mut Vec<Problem>) {
    if q.value() <= 0.0 {
        p.push(Problem::error(
            Rule::MetricTarget,
            field,
            format!("must be a quantity greater than 0, got {q}"),
        ));
    }
}

/// PromQL syntax check. `promql-parser` reports no position, so the message adds
/// one where we can find it: the first unbalanced bracket or unterminated string.
pub fn check_promql(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("query must not be empty".into());
    }
    promql_parser::parser::parse(query)
        .map(|_| ())
        .map_err(|err| match delimiter_problem(query) {
            Some((offset, what)) => {
                let (line, column) = line_column(query, offset);
                format!("invalid PromQL at line {line}, column {column}: {what} ({err})")
            }
            None => {
                let (offset, hint) = super::promql::locate(query, &err);
                let (line, column) = line_column(query, offset);
                match hint {
                    // The parser's generic message says nothing the hint does not.
                    Some(hint) if err == "invalid promql query" => {
                        format!("invalid PromQL at line {line}, column {column}: {hint}")
                    }
                    Some(hint) => {
                        format!("invalid PromQL at line {line}, column {column}: {err}; {hint}")
                    }
                    None => format!("invalid PromQL at line {line}, column {column}: {err}"),
                }
            }
        })
}

/// Byte offset and description of the first unbalanced delimiter or unterminated
/// string, if any.
fn delimiter_problem(query: &str) -> Option<(usize, String)> {
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Some((i, format!("unterminated string starting with {c}")));
                }
            }
            '(' | '[' | '{' => stack.push((i, c)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((_, o)) if o == open => {}
                    Some((j, o)) => {
                        return Some((
                            i,
                            format!(
                                "{c:?} closes {o:?} opened at column {}",
                                line_column(query, j).1
                            ),
                        ));
                    }
                    None => return Some((i, format!("{c:?} without a matching {open:?}"))),
                }
            }
            _ => {}
        }
    }
    stack
        .pop()
        .map(|(i, c)| (i, format!("{c:?} is never closed")))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn scaling_rules(field: &str, rules: &ScalingRules, p: &mut Vec<Problem>) {
    if let Some(w) = rules.stabilization_window_seconds
        && w > MAX_WINDOW_SECONDS
    {
        p.push(Problem::error(
            Rule::StabilizationWindow,
            format!("{field}.stabilizationWindowSeconds"),
            format!(
                "stabilizationWindowSeconds must be between 0 and {MAX_WINDOW_SECONDS}, got {w}"
            ),
        ));
    }
    for (j, policy) in rules.policies.iter().flatten().enumerate() {
        let pf = format!("{field}.policies[{j}]");
        if policy.value == 0 {
            p.push(Problem::error(
                Rule::RatePolicy,
                format!("{pf}.value"),
                "policies[].value must be greater than 0",
            ));
        }
        if !(1..=MAX_PERIOD_SECONDS).contains(&policy.period_seconds) {
            p.push(Problem::error(
                Rule::RatePolicy,
                format!("{pf}.periodSeconds"),
                format!(
                    "policies[].periodSeconds must be between 1 and {MAX_PERIOD_SECONDS}, got {}",
                    policy.period_seconds
                ),
            ));
        }
    }
}

fn validate_node_pool(spec: &CustomScalingPolicySpec, pool: &NodePool, p: &mut Vec<Problem>) {
    target_ref("spec.nodePool.targetRef", &pool.target_ref, p);
    if pool.target_ref == spec.target_ref {
        p.push(Problem::error(
            Rule::NodePoolTarget,
            "spec.nodePool.targetRef",
            "must differ from spec.targetRef (the node pool and the workload are two objects)",
        ));
    }
    match (&pool.pods_per_node, &pool.node_allocatable) {
        (None, None) | (Some(_), Some(_)) => p.push(Problem::error(
            Rule::NodePoolSizing,
            "spec.nodePool",
            "spec.nodePool: set exactly one of podsPerNode or nodeAllocatable",
        )),
        (Some(0), None) => p.push(Problem::error(
            Rule::NodePoolSizing,
            "spec.nodePool.podsPerNode",
            "spec.nodePool.podsPerNode must be at least 1",
        )),
        (None, Some(alloc)) => {
            if alloc.cpu.is_none() && alloc.memory.is_none() {
                p.push(Problem::error(
                    Rule::NodePoolSizing,
                    "spec.nodePool.nodeAllocatable",
                    "set cpu, memory or both",
                ));
            }
            for (name, q) in [("cpu", &alloc.cpu), ("memory", &alloc.memory)] {
                if let Some(q) = q {
                    positive_quantity(&format!("spec.nodePool.nodeAllocatable.{name}"), q, p);
                }
            }
        }
        _ => {}
    }
    if pool.max_nodes == 0 {
        p.push(Problem::error(
            Rule::NodePoolBounds,
            "spec.nodePool.maxNodes",
            "must be at least 1",
        ));
    }
    if pool.min_nodes > pool.max_nodes {
        p.push(Problem::error(
            Rule::NodePoolBounds, "spec.nodePool.minNodes",
            format!(
                "spec.nodePool.minNodes ({}) must be less than or equal to spec.nodePool.maxNodes ({})",
                pool.min_nodes, pool.max_nodes
            ),
        ));
    }
    if pool.headroom_nodes > pool.max_nodes {
        p.push(Problem::warning(
            Rule::NodePoolHeadroom,
            "spec.nodePool.headroomNodes",
            format!(
                "{} headroom nodes exceed maxNodes ({}); the pool will sit at maxNodes",
                pool.headroom_nodes, pool.max_nodes
            ),
        ));
    }
}

/// Most windows in one policy (the CRD's `maxItems`).
pub const MAX_SCHEDULES: usize = 16;

fn validate_schedules(spec: &CustomScalingPolicySpec, p: &mut Vec<Problem>) {
    if spec.schedules.len() > MAX_SCHEDULES {
        p.push(Problem::error(
            Rule::Schedule,
            "spec.schedules",
            format!(
                "at most {MAX_SCHEDULES} schedules, found {}",
                spec.schedules.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    for (i, s) in spec.schedules.iter().enumerate() {
        let field = format!("spec.schedules[{i}]");
        if !is_dns_label(&s.name) {
            p.push(Problem::error(
                Rule::ScheduleName,
                format!("{field}.name"),
                format!(
                    "{:?} is not a DNS label (lowercase letters, digits and '-', at most 63)",
                    s.name
                ),
            ));
        } else if !names.insert(s.name.as_str()) {
            p.push(Problem::error(
                Rule::ScheduleName,
                format!("{field}.name"),
                format!(
                    "spec.schedules[].name must be unique: {:?} appears more than once",
                    s.name
                ),
            ));
        }
        if let Err(err) = super::schedule::parse(s) {
            p.push(Problem::error(
                Rule::Schedule,
                format!("{field}.{}", err.field()),
                err.to_string(),
            ));
        }
        if s.min_replicas.is_none() && s.max_replicas.is_none() && s.node_pool.is_none() {
            p.push(Problem::error(
                Rule::Schedule,
                field.clone(),
                "set minReplicas, maxReplicas or nodePool.minNodes: a window that sets nothing does nothing",
            ));
        }
        match (s.min_replicas, s.max_replicas) {
            (Some(min), Some(max)) if min > max => p.push(Problem::error(
                Rule::Schedule,
                format!("{field}.minReplicas"),
                format!("{min} is above this schedule's maxReplicas ({max})"),
            )),
            (Some(min), None) if min > spec.max_replicas => p.push(Problem::error(
                Rule::Schedule,
                format!("{field}.minReplicas"),
                format!(
                    "{min} is above spec.maxReplicas ({}): set this schedule's maxReplicas too",
                    spec.max_replicas
                ),
            )),
            (_, Some(0)) => p.push(Problem::error(
                Rule::Schedule,
                format!("{field}.maxReplicas"),
                "must be at least 1",
            )),
            _ => {}
        }
        if let Some(nodes) = &s.node_pool {
            match &spec.node_pool {
                None => p.push(Problem::error(
                    Rule::Schedule,
                    format!("{field}.nodePool"),
                    "the policy has no spec.nodePool to set a floor for",
                )),
                Some(pool) if nodes.min_nodes > pool.max_nodes => p.push(Problem::error(
                    Rule::Schedule,
                    format!("{field}.nodePool.minNodes"),
                    format!(
                        "{} is above spec.nodePool.maxNodes ({})",
                        nodes.min_nodes, pool.max_nodes
                    ),
                )),
                _ => {}
            }
        }
    }
}

fn foot_guns(spec: &CustomScalingPolicySpec, p: &mut Vec<Problem>) {
    let scale_down = spec.behavior.as_ref().and_then(|b| b.scale_down.as_ref());
    if let Some(rules) = scale_down {
        let window = rules.stabilization_window_seconds.unwrap_or(300);
        let no_policy = rules.policies.as_ref().is_none_or(|v| v.is_empty());
        if window == 0 && no_policy {
            p.push(Problem::warning(
                Rule::ScaleDownCliff, "spec.behavior.scaleDown",
                "stabilizationWindowSeconds is 0 and no rate policy is set: one low reading can drop the target to minReplicas in a single tick",
            ));
        }
    }
    let floor = spec.min_replicas.max(1);
    if u64::from(spec.max_replicas) > 50 * u64::from(floor) {
        p.push(Problem::warning(
            Rule::ReplicaSpread, "spec.maxReplicas",
            format!(
                "maxReplicas ({}) is more than 50 times minReplicas ({}): a runaway metric could cost a lot",
                spec.max_replicas, spec.min_replicas
            ),
        ));
    }
}

/// Every rule about one metrics source.
/// Hosts that serve cloud instance metadata (and with it the node's credentials).
const METADATA_HOSTS: [&str; 1] = ["metadata.google.internal"];

/// Why `address` points at a link-local network or a cloud metadata endpoint, if
/// it does. The host is read as HTTP clients read it (WHATWG URL rules), so
/// spellings such as `http://2852039166/` or `http://0xA9FEA9FE/` (both
/// 169.254.169.254) and IPv4-mapped IPv6 addresses are caught too. Names are not
/// resolved: see docs/admission.md.
pub fn metadata_address(address: &str) -> Option<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let url = url::Url::parse(address).ok()?;
    let v4 = |ip: Ipv4Addr| -> Option<String> {
        if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
            Some(format!("{ip} is a cloud metadata endpoint"))
        } else if ip.is_link_local() {
            Some(format!("{ip} is link-local (169.254.0.0/16)"))
        } else {
            None
        }
    };
    let ip = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return METADATA_HOSTS
                .contains(&name.as_str())
                .then(|| format!("{name} is a cloud metadata endpoint"));
        }
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
    };
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return v4(mapped);
            }
            if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
                Some(format!("{ip} is a cloud metadata endpoint"))
            } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
                Some(format!("{ip} is link-local (fe80::/10)"))
            } else {
                None
            }
        }
    }
}

/// Query parameters the operator sets itself.
pub const OPERATOR_PARAMETERS: &[&str] = &["query", "time", "start", "end", "step"];

/// Whether `name` is an HTTP field name (RFC 9110 token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `spec.headers` and `spec.tenant`. Values are never echoed: a header may carry
/// a key.
fn source_headers(spec: &ClusterMetricsSourceSpec, p: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    for (i, header) in spec.headers.iter().enumerate() {
        let field = format!("spec.headers[{i}]");
        let lower = header.name.to_ascii_lowercase();
        if !is_token(&header.name) {
            p.push(Problem::error(
                Rule::SourceHeader,
                format!("{field}.name"),
                format!(
                    "{:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                    header.name
                ),
            ));
        } else if crate::api::RESERVED_HEADERS.contains(&lower.as_str()) {
            let why = if lower == "authorization" {
                "is set from spec.auth (bearerToken or basic)"
            } else if matches!(lower.as_str(), "host" | "content-length") {
                "is written by the HTTP client"
            } else {
                "is a hop-by-hop header, meant for one connection, not the endpoint"
            };
            p.push(Problem::error(
                Rule::SourceHeader,
                format!("{field}.name"),
                format!("{} cannot be set: it {why}", header.name),
            ));
        } else if lower == "x-scope-orgid" && spec.tenant.is_some() {
            p.push(Problem::error(
                Rule::SourceTenant,
                format!("{field}.name"),
                "spec.tenant is sent as X-Scope-OrgID; set one of them, not both",
            ));
        }
        if !header.name.is_empty() && !seen.insert(lower) {
            p.push(Problem::error(
                Rule::SourceHeader,
                format!("{field}.name"),
                format!(
                    "{} is set twice (header names are case-insensitive)",
                    header.name
                ),
            ));
        }
        match (&header.value, &header.value_from) {
            (Some(_), Some(_)) => p.push(Problem::error(
                Rule::SourceHeader,
                format!("{field}.valueFrom"),
                "set exactly one of value or valueFrom",
            )),
            (None, None) => p.push(Problem::error(
                Rule::SourceHeader,
                field,
                "set exactly one of value or valueFrom",
            )),
            (Some(value), None) if !is_header_value(value) => p.push(Problem::error(
                Rule::SourceHeader,
                format!("{field}.value"),
                "contains characters not allowed in an HTTP header (control characters or non-ASCII)",
            )),
            _ => {}
        }
    }
    if let Some(tenant) = &spec.tenant
        && (tenant.is_empty() || !tenant.bytes().all(|b| b.is_ascii_graphic()))
    {
        p.push(Problem::error(
            Rule::SourceTenant,
            "spec.tenant",
            format!("{tenant:?} must be printable ASCII without spaces"),
        ));
    }
}

/// Whether `value` can be sent as a header value as it is: visible ASCII, spaces
/// and tabs.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn source_tls(spec: &ClusterMetricsSourceSpec, p: &mut Vec<Problem>) {
    let Some(tls) = &spec.tls else { return };
    if !spec.address.starts_with("https://")
        && (tls.client_certificate.is_some()
            || tls.server_name.is_some()
            || tls.insecure_skip_verify)
    {
        p.push(Problem::error(
            Rule::SourceTls,
            "spec.tls",
            format!(
                "applies to an https:// address; {:?} is not one",
                spec.address
            ),
        ));
    }
    if let Some(name) = &tls.server_name
        && (name.is_empty()
            || name.len() > 253
            || !name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
    {
        p.push(Problem::error(
            Rule::SourceTls,
            "spec.tls.serverName",
            format!("{name:?} is not a DNS name"),
        ));
    }
    if tls.insecure_skip_verify {
        p.push(Problem::warning(
            Rule::SourceTls,
            "spec.tls.insecureSkipVerify",
            "the server's certificate is not verified: anyone on the path can read and answer the queries and see the credentials; for a test endpoint only",
        ));
    }
}

/// The errors (not warnings) of [`validate_source`], as "field: message": what
/// keeps a source from being used, whatever the API server admitted.
pub fn source_errors(spec: &ClusterMetricsSourceSpec) -> Vec<String> {
    validate_source(spec)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect()
}

pub fn validate_source(spec: &ClusterMetricsSourceSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    match spec.address.split_once("://") {
        Some(("http" | "https", rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.contains('@') {
                // Never echo the value: it holds a credential.
                p.push(Problem::error(
                    Rule::SourceAddress,
                    "spec.address",
                    "must not contain credentials (user:password@); use spec.auth with a Secret",
                ));
            } else if authority.is_empty() {
                p.push(Problem::error(
                    Rule::SourceAddress,
                    "spec.address",
                    "has no host",
                ));
            }
        }
        _ => p.push(Problem::error(
            Rule::SourceAddress,
            "spec.address",
            format!("{:?} must start with http:// or https://", spec.address),
        )),
    }
    if let Some(why) = metadata_address(&spec.address) {
        if spec.allow_link_local {
            p.push(Problem::warning(
                Rule::MetadataEndpoint, "spec.address",
                format!("{why}: it may serve the node's cloud credentials; allowed by spec.allowLinkLocal"),
            ));
        } else {
            p.push(Problem::error(
                Rule::MetadataEndpoint, "spec.address",
                format!("{why}: it serves the node's cloud credentials, not metrics; set spec.allowLinkLocal: true only for a metrics endpoint that really lives there"),
            ));
        }
    }
    if spec.allowed_namespaces.is_empty() {
        p.push(Problem::error(
            Rule::AllowedNamespaces,
            "spec.allowedNamespaces",
            "list at least one namespace, or \"*\" for all",
        ));
    }
    if spec.timeout.as_millis() == 0 {
        p.push(Problem::error(
            Rule::SourceTimeout,
            "spec.timeout",
            "must be greater than 0",
        ));
    }
    if spec.max_response_bytes < 1024 {
        p.push(Problem::error(
            Rule::ResponseLimit,
            "spec.maxResponseBytes",
            "spec.maxResponseBytes must be at least 1024",
        ));
    }
    if let Some(auth) = &spec.auth
        && auth.bearer_token.is_some() == auth.basic.is_some()
    {
        p.push(Problem::error(
            Rule::SourceAuth,
            "spec.auth",
            "spec.auth: set exactly one of bearerToken or basic",
        ));
    }
    source_headers(spec, &mut p);
    source_tls(spec, &mut p);
    for name in spec.query_parameters.keys() {
        let field = format!("spec.queryParameters.{name}");
        if name.is_empty() {
            p.push(Problem::error(
                Rule::QueryParameters,
                "spec.queryParameters",
                "a parameter needs a name",
            ));
        } else if OPERATOR_PARAMETERS.contains(&name.as_str()) {
            p.push(Problem::error(
                Rule::QueryParameters,
                field,
                "query, time, start, end and step are set by the operator",
            ));
        }
    }
    if let Some(cb) = &spec.circuit_breaker
        && cb.failure_threshold == 0
    {
        p.push(Problem::error(
            Rule::CircuitBreaker,
            "spec.circuitBreaker.failureThreshold",
            "spec.circuitBreaker.failureThreshold must be at least 1",
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(spec: serde_json::Value) -> Vec<Problem> {
        let spec: ClusterMetricsSourceSpec = serde_json::from_value(spec).expect("spec decodes");
        validate_source(&spec)
    }

    #[test]
    fn header_values_are_checked_and_never_echoed() {
        let p = source(serde_json::json!({
            "address": "https://g:8443", "allowedNamespaces": ["*"],
            "headers": [{"name": "X-Api-Key", "value": "s3cret\r\nX-Evil: 1"},
                {"name": "Keep-Alive", "value": "5"}, {"name": "X-Empty"}],
            "tenant": "team a"
        }));
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.headers[0].value",
                "spec.headers[1].name",
                "spec.headers[2]",
                "spec.tenant"
            ],
            "{p:?}"
        );
        assert!(p.iter().all(|p| !p.message.contains("s3cret")), "{p:?}");
        assert!(p[1].message.contains("hop-by-hop"), "{p:?}");
        assert!(
            source(
                serde_json::json!({"address": "https://g:8443", "allowedNamespaces": ["*"],
                "headers": [{"name": "X-Api-Key", "value": "abc def"}], "tenant": "team-a",
                "queryParameters": {"dedup": "true"}})
            )
            .is_empty()
        );
    }

    #[test]
    fn many_bad_fields_are_all_named_within_a_bounded_cost() {
        let mut metrics = Vec::new();
        for i in 0..40 {
            metrics.push(serde_json::json!({"name": format!("m{i}"), "query": "x",
                "target": {"type": "Valu", "value": "1"}, "activationThreshold": "lots"}));
        }
        let value = serde_json::json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
            "metadata": {"name": "p"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
                "maxReplicas": "ten", "metrics": metrics}
        });
        let decoded = check_policy(&value);
        assert!(decoded.has_type_errors());
        let types = decoded
            .problems
            .iter()
            .filter(|p| p.rule == Rule::Type)
            .count();
        // Every bad field up to the cap, each named; the decode attempts are bounded.
        assert!(types >= 16, "{types}: {:?}", decoded.problems);
        assert!(decoded.problems.len() <= MAX_DECODE_ERRORS + 64);
        assert!(
            decoded
                .problems
                .iter()
                .any(|p| p.field == "spec.maxReplicas")
        );
    }

    #[test]
    fn promql_errors_point_at_the_unbalanced_bracket() {
        let err = check_promql("sum(rate(x[1m])").unwrap_err();
        assert!(
            err.starts_with("invalid PromQL at line 1, column 4: '(' is never closed"),
            "{err}"
        );
        let err = check_promql("rate(x[1m)]").unwrap_err();
        assert!(err.contains("column 10: ')' closes '['"), "{err}");
        let err = check_promql("x{a=\"b}").unwrap_err();
        assert!(err.contains("column 5: unterminated string"), "{err}");
        assert!(check_promql("sum(rate(redis_evicted_keys_total{job=\"a(\"}[1m]))").is_ok());
        // Every error has a position, and a hint where one is cheap.
        assert_eq!(
            check_promql("sum(rate(x[5m])) /").unwrap_err(),
            "invalid PromQL at line 1, column 18: \"/\" has nothing after it"
        );
        assert_eq!(
            check_promql("summ(rate(x[5m]))").unwrap_err(),
            "invalid PromQL at line 1, column 1: unknown function with name 'summ'; did you mean sum?"
        );
        assert!(
            check_promql("sum(\n  rate(x[5x]))")
                .unwrap_err()
                .starts_with(
                    "invalid PromQL at line 2, column 10: bad number or duration syntax: 5x; "
                ),
            "{:?}",
            check_promql("sum(\n  rate(x[5x]))")
        );
        for bad in [
            "x +",
            "1 +* 2",
            "x{a=~}",
            "sum(x) by",
            "x offset 5x",
            "abs(x, y)",
            "x[5m] + 1",
        ] {
            let err = check_promql(bad).unwrap_err();
            assert!(
                err.starts_with("invalid PromQL at line 1, column "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn metadata_and_link_local_addresses_are_named() {
        for (address, why) in [
            (
                "http://169.254.169.254/",
                "169.254.169.254 is a cloud metadata endpoint",
            ),
            (
                "http://169.254.169.254/latest/meta-data/iam/",
                "cloud metadata endpoint",
            ),
            (
                "http://169.254.10.1:9090",
                "169.254.10.1 is link-local (169.254.0.0/16)",
            ),
            (
                "http://2852039166/",
                "169.254.169.254 is a cloud metadata endpoint",
            ),
            (
                "http://0xA9FEA9FE/",
                "169.254.169.254 is a cloud metadata endpoint",
            ),
            (
                "http://[::ffff:169.254.169.254]/",
                "cloud metadata endpoint",
            ),
            (
                "http://[fd00:ec2::254]/",
                "fd00:ec2::254 is a cloud metadata endpoint",
            ),
            (
                "http://[fe80::1]:9090/",
                "fe80::1 is link-local (fe80::/10)",
            ),
            ("http://[febf::1]/", "link-local (fe80::/10)"),
            (
                "http://Metadata.Google.Internal./computeMetadata/v1/",
                "metadata.google.internal is a cloud metadata endpoint",
            ),
            (
                "https://100.100.100.200/",
                "100.100.100.200 is a cloud metadata endpoint",
            ),
        ] {
            let found = metadata_address(address);
            assert!(
                found.as_deref().is_some_and(|f| f.contains(why)),
                "{address}: {found:?}"
            );
        }
        for address in [
            "http://prometheus.monitoring:9090",
            "http://127.0.0.1:9090",
            "http://10.0.0.1",
            "http://[fec0::1]/",
            "http://metadata.monitoring:9090",
            "http://169.253.1.1",
        ] {
            assert_eq!(metadata_address(address), None, "{address}");
        }
    }

    #[test]
    fn a_metadata_address_is_refused_unless_allowed_and_then_warned_about() {
        let mut spec: ClusterMetricsSourceSpec = serde_yaml::from_str(
            "address: http://169.254.169.254/latest/meta-data/iam/\nallowedNamespaces: ['*']",
        )
        .expect("spec");
        let problems = validate_source(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].severity, Severity::Error);
        assert!(
            problems[0]
                .to_string()
                .contains("spec.address: 169.254.169.254 is a cloud metadata endpoint"),
            "{}",
            problems[0]
        );
        assert!(problems[0].to_string().contains("spec.allowLinkLocal"));
        spec.allow_link_local = true;
        let problems = validate_source(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].severity, Severity::Warning);
    }
}

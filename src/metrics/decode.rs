//! Decoding a Prometheus instant-query response into one reading. Exactly one
//! series is expected: none is "no data" (never zero), several are an error naming
//! how many; NaN and ±Inf are "no data"; vector and scalar results are accepted.

use serde::Deserialize;

/// What one query yielded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    /// A finite value sampled at `time` (Unix ms).
    Value { value: f64, time: i64 },
    /// The query answered but carries no usable number.
    NoData(NoData),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// No series matched.
    EmptyResult,
    /// The value was NaN or ±Inf.
    NotFinite,
}

impl NoData {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoData::EmptyResult => "the query returned no series",
            NoData::NotFinite => "the query returned NaN or Inf",
        }
    }
}

/// Why a body could not be read as one reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the response is not Prometheus API JSON: {0}")]
    Malformed(String),
    #[error("Prometheus answered with an error ({kind}): {message}")]
    Api { kind: String, message: String },
    #[error(
        "the query returned {0} series; a policy metric must return exactly one (aggregate it, e.g. sum(...))"
    )]
    TooManySeries(usize),
    #[error("the query returned a {0} result; expected a vector or a scalar")]
    UnexpectedType(String),
    #[error("the sample {0:?} is not a number")]
    BadSample(String),
}

/// The response around the result. The result itself stays raw text borrowed
/// from the body and is decoded straight into its final shape: no intermediate
/// JSON tree (decoding was 2.5% of the CPU in a profile at 1,000 policies).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// Prometheus and Thanos say here that the answer may be incomplete (a store
    /// that did not answer, a PromQL annotation).
    #[serde(default)]
    warnings: Vec<String>,
}

/// An instant query's reading with the warnings the answer carried.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub reading: Reading,
    pub warnings: Vec<String>,
}

/// A range query's series (labels sorted, samples `(unix ms, value)`) with the
/// warnings the answer carried.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RangeAnswer {
    pub series: Vec<(Labels, Vec<(i64, f64)>)>,
    pub warnings: Vec<String>,
}

/// A series' labels, sorted.
pub type Labels = std::collections::BTreeMap<String, String>;

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Decode a range-query response body: a matrix (anything else is an error).
/// Samples that are not finite are kept as they are (NaN, ±Inf).
pub fn decode_range(body: &[u8]) -> Result<RangeAnswer, DecodeError> {
    let (data, warnings) = envelope(body)?;
    if data.result_type != "matrix" {
        return Err(DecodeError::UnexpectedType(truncate(&data.result_type)));
    }
    let series: Vec<MatrixSeries> = serde_json::from_str(data.result.get())
        .map_err(|e| DecodeError::Malformed(truncate(&e.to_string())))?;
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let mut samples = Vec::with_capacity(s.values.len());
        for (time, text) in s.values {
            samples.push(((time * 1000.0).round() as i64, parse_sample(&text)?));
        }
        out.push((s.metric, samples));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(RangeAnswer {
        series: out,
        warnings: warnings.into_iter().map(|w| truncate(&w)).collect(),
    })
}

/// The envelope's data, or the API error it carries.
fn envelope(body: &[u8]) -> Result<(Data<'_>, Vec<String>), DecodeError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| DecodeError::Malformed(truncate(&e.to_string())))?;
    if envelope.status != "success" {
        return Err(DecodeError::Api {
            kind: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: truncate(&envelope.error.unwrap_or_default()),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| DecodeError::Malformed("no `data` in a success response".into()))?;
    Ok((data, envelope.warnings))
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType", borrow)]
    result_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct Series {
    value: (f64, String),
}

/// Decode an instant-query response body (its warnings dropped).
pub fn decode_instant(body: &[u8]) -> Result<Reading, DecodeError> {
    decode_instant_answer(body).map(|a| a.reading)
}

/// Decode an instant-query response body with the warnings it carries.
pub fn decode_instant_answer(body: &[u8]) -> Result<Answer, DecodeError> {
    let (data, warnings) = envelope(body)?;
    let warnings = warnings.into_iter().map(|w| truncate(&w)).collect();
    let (time, text) = match data.result_type.as_ref() {
        "vector" => {
            let series: Vec<Series> = serde_json::from_str(data.result.get())
                .map_err(|e| DecodeError::Malformed(truncate(&e.to_string())))?;
            match series.len() {
                0 => {
                    return Ok(Answer {
                        reading: Reading::NoData(NoData::EmptyResult),
                        warnings,
                    });
                }
                1 => series
                    .into_iter()
                    .next()
                    .map(|s| s.value)
                    .ok_or_else(|| DecodeError::Malformed("vector result vanished".into()))?,
                n => return Err(DecodeError::TooManySeries(n)),
            }
        }
        "scalar" => serde_json::from_str::<(f64, String)>(data.result.get())
            .map_err(|e| DecodeError::Malformed(truncate(&e.to_string())))?,
        other => return Err(DecodeError::UnexpectedType(truncate(other))),
    };
    let value = parse_sample(&text)?;
    let reading = if value.is_finite() {
        Reading::Value {
            value,
            time: (time * 1000.0).round() as i64,
        }
    } else {
        Reading::NoData(NoData::NotFinite)
    };
    Ok(Answer { reading, warnings })
}

/// Prometheus writes samples as strings, with `NaN`, `+Inf` and `-Inf` spelled out.
fn parse_sample(text: &str) -> Result<f64, DecodeError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| DecodeError::BadSample(truncate(text))),
    }
}

/// Keep messages from a remote server short: they end up in logs and conditions.
fn truncate(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(samples: &[&str]) -> String {
        let items: Vec<String> = samples
            .iter()
            .map(|v| format!(r#"{{"metric":{{"job":"redis"}},"value":[1700000000.5,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    #[test]
    fn one_series_is_a_value_with_its_time() {
        assert_eq!(
            decode_instant(vector(&["42.5"]).as_bytes()),
            Ok(Reading::Value {
                value: 42.5,
                time: 1_700_000_000_500
            })
        );
    }

    #[test]
    fn no_series_is_no_data_never_zero() {
        assert_eq!(
            decode_instant(vector(&[]).as_bytes()),
            Ok(Reading::NoData(NoData::EmptyResult))
        );
    }

    #[test]
    fn several_series_are_an_error_naming_how_many() {
        let err = decode_instant(vector(&["1", "2", "3"]).as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::TooManySeries(3));
        assert!(err.to_string().contains("returned 3 series"));
    }

    #[test]
    fn nan_and_inf_are_no_data() {
        for v in ["NaN", "+Inf", "-Inf"] {
            assert_eq!(
                decode_instant(vector(&[v]).as_bytes()),
                Ok(Reading::NoData(NoData::NotFinite))
            );
        }
    }

    #[test]
    fn scalars_are_accepted() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}"#;
        assert_eq!(
            decode_instant(body.as_bytes()),
            Ok(Reading::Value {
                value: 7.0,
                time: 1_700_000_000_000
            })
        );
    }

    #[test]
    fn warnings_are_kept_with_the_reading() {
        let body = r#"{"status":"success","warnings":["No StoreAPIs matched for this query"],
            "data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"3"]}]}}"#;
        let answer = decode_instant_answer(body.as_bytes()).expect("decodes");
        assert_eq!(answer.warnings, vec!["No StoreAPIs matched for this query"]);
        assert_eq!(
            answer.reading,
            Reading::Value {
                value: 3.0,
                time: 1_700_000_000_000
            }
        );
        assert!(
            decode_instant_answer(vector(&["1"]).as_bytes())
                .expect("decodes")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn a_matrix_decodes_sorted_by_labels_with_its_warnings() {
        let body = r#"{"status":"success","warnings":["partial"],"data":{"resultType":"matrix","result":[
            {"metric":{"pod":"b"},"values":[[1700000000,"1"],[1700000015.5,"NaN"]]},
            {"metric":{"pod":"a"},"values":[[1700000000,"2"]]}]}}"#;
        let answer = decode_range(body.as_bytes()).expect("decodes");
        assert_eq!(answer.warnings, vec!["partial"]);
        assert_eq!(answer.series.len(), 2);
        assert_eq!(answer.series[0].0.get("pod").map(String::as_str), Some("a"));
        assert_eq!(answer.series[0].1, vec![(1_700_000_000_000, 2.0)]);
        let b = &answer.series[1].1;
        assert_eq!(b[0], (1_700_000_000_000, 1.0));
        assert_eq!(b[1].0, 1_700_000_015_500);
        assert!(b[1].1.is_nan());
        assert_eq!(
            decode_range(vector(&["1"]).as_bytes()),
            Err(DecodeError::UnexpectedType("vector".into()))
        );
        let bad = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#;
        assert!(matches!(
            decode_range(bad.as_bytes()),
            Err(DecodeError::BadSample(_))
        ));
    }

    #[test]
    fn other_result_types_and_garbage_are_errors() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            decode_instant(matrix.as_bytes()),
            Err(DecodeError::UnexpectedType("matrix".into()))
        );
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            decode_instant(string.as_bytes()),
            Err(DecodeError::UnexpectedType(_))
        ));
        assert!(matches!(
            decode_instant(b"{\"status\":\"succ"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_instant(b"<html>502</html>"),
            Err(DecodeError::Malformed(_))
        ));
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            decode_instant(error.as_bytes()),
            Err(DecodeError::Api {
                kind: "bad_data".into(),
                message: "parse error".into()
            })
        );
        assert!(matches!(
            decode_instant(vector(&["abc"]).as_bytes()),
            Err(DecodeError::BadSample(_))
        ));
    }
}

//! A Prometheus instant-query response body, as any server (or proxy) might send
//! it, through `metrics::decode::decode_instant`.
//!
//! The contract (src/metrics/decode.rs): a `Reading::Value` carries a finite number;
//! NaN and ±Inf are `NoData(NotFinite)`, never a value; no series is
//! `NoData(EmptyResult)`, never zero; several series are an error; texts from the
//! server are cut to 200 bytes before they reach logs and conditions.
//!
//! Properties:
//! - never a panic;
//! - a value is finite, comes only from a `"status": "success"` body of result type
//!   vector or scalar, and is the number the server wrote (checked against an
//!   independent reading of the JSON);
//! - `NoData(EmptyResult)` only for an empty vector, `NotFinite` only for a sample
//!   that reads as NaN or ±Inf;
//! - `TooManySeries(n)` names the real number of series (n >= 2);
//! - server-controlled texts in errors are at most 200 bytes plus the ellipsis.
#![cfg_attr(fuzzing, no_main)]

use ballast::metrics::decode::{DecodeError, NoData, Reading, decode_instant};
use serde_json::Value;

/// 200 bytes of the server's text, then "…" (3 bytes in UTF-8).
const MAX_TEXT: usize = 200 + '…'.len_utf8();

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_one(data));

/// One input: the properties above, asserted (also replayed over the seeds by
/// `tests/fuzz_seeds.rs` in `make unit`).
pub fn fuzz_one(data: &[u8]) {
    let result = decode_instant(data);
    // Every outcome can be logged.
    let _ = format!("{result:?}");
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    // decode skips the fields it does not read without checking their UTF-8 (serde
    // ignores them), so read the body leniently: the fields it reads are unchanged.
    let json: Option<Value> = serde_json::from_slice(data)
        .ok()
        .or_else(|| serde_json::from_str(&String::from_utf8_lossy(data)).ok());
    match result {
        Ok(reading) => {
            let json = json.expect("decoded a body that is not JSON");
            assert_eq!(json["status"], "success", "a reading from a failed query");
            let result_type = json["data"]["resultType"].as_str();
            match reading {
                Reading::Value { value, time: _ } => {
                    assert!(value.is_finite(), "non-finite value {value} came out");
                    let sample = match result_type {
                        Some("vector") => {
                            let series = json["data"]["result"].as_array().expect("vector");
                            assert_eq!(series.len(), 1, "a value from {} series", series.len());
                            &series[0]["value"][1]
                        }
                        Some("scalar") => &json["data"]["result"][1],
                        other => panic!("a value from result type {other:?}"),
                    };
                    let text = sample.as_str().expect("the sample is a string");
                    let expected: f64 = text.parse().expect("the sample is a number");
                    assert_eq!(
                        value.to_bits(),
                        expected.to_bits(),
                        "{text:?} read as {value}"
                    );
                }
                Reading::NoData(NoData::EmptyResult) => {
                    assert_eq!(result_type, Some("vector"));
                    assert_eq!(
                        json["data"]["result"].as_array().map(Vec::len),
                        Some(0),
                        "no data although series came back"
                    );
                }
                Reading::NoData(NoData::NotFinite) => {
                    let sample = match result_type {
                        Some("vector") => &json["data"]["result"][0]["value"][1],
                        Some("scalar") => &json["data"]["result"][1],
                        other => panic!("NotFinite from result type {other:?}"),
                    };
                    let text = sample.as_str().expect("the sample is a string");
                    let v = match text {
                        "NaN" => f64::NAN,
                        "+Inf" | "Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        t => t.parse().expect("the sample is a number"),
                    };
                    assert!(
                        !v.is_finite(),
                        "{text:?} is finite but came out as NotFinite"
                    );
                }
            }
        }
        Err(DecodeError::TooManySeries(n)) => {
            assert!(n >= 2, "TooManySeries({n})");
            if let Some(json) = json {
                assert_eq!(json["data"]["result"].as_array().map(Vec::len), Some(n));
            }
        }
        Err(DecodeError::Api { message, .. }) => {
            assert!(message.len() <= MAX_TEXT, "{} bytes", message.len());
            if let Some(json) = json {
                assert_ne!(json["status"], "success");
            }
        }
        Err(
            DecodeError::Malformed(text)
            | DecodeError::UnexpectedType(text)
            | DecodeError::BadSample(text),
        ) => {
            assert!(text.len() <= MAX_TEXT, "{} bytes", text.len());
        }
    }
}

//! A duration written the way Kubernetes users write them (`15s`, `10m`, `1h30m`,
//! `500ms`), with its own JSON schema and a parser that names what is wrong.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern the CRD schema enforces; the parser below accepts exactly this.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// A non-negative duration with millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (write e.g. \"15s\", \"10m\", \"1h30m\")")]
    Empty,
    #[error(
        "invalid duration {input:?}: {why} (write e.g. \"15s\", \"10m\", \"1h30m\", \"500ms\")"
    )]
    Invalid { input: String, why: &'static str },
    #[error("duration {input:?} is too long")]
    Overflow { input: String },
}

impl Duration {
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs * 1000,
        }
    }

    pub const fn as_millis(&self) -> u64 {
        self.millis
    }

    pub fn as_secs_f64(&self) -> f64 {
        self.millis as f64 / 1000.0
    }

    pub fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(DurationError::Empty);
        }
        let invalid = |why| DurationError::Invalid {
            input: input.to_string(),
            why,
        };
        let bytes = input.as_bytes();
        let mut i = 0;
        let mut total: f64 = 0.0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let number = &input[start..i];
            if number.is_empty() {
                return Err(invalid("expected a number"));
            }
            if number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
                return Err(invalid("malformed number"));
            }
            let value: f64 = number.parse().map_err(|_| invalid("malformed number"))?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let factor = match &input[unit_start..i] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "" => return Err(invalid("missing unit (ms, s, m or h)")),
                _ => return Err(invalid("unknown unit (use ms, s, m or h)")),
            };
            total += value * factor;
        }
        // One year is far beyond any interval or delay that makes sense here.
        if !total.is_finite() || total > 365.0 * 86_400_000.0 {
            return Err(DurationError::Overflow {
                input: input.to_string(),
            });
        }
        Ok(Self {
            millis: total.round() as u64,
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.millis;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_users_write() {
        for (text, millis) in [
            ("15s", 15_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("0s", 0),
        ] {
            assert_eq!(
                text.parse::<Duration>().unwrap().as_millis(),
                millis,
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_kubernetes_would_not_accept() {
        for text in ["", "15", "s", "10 m", "-5s", "1d", "1.s", ".5s", "5sec"] {
            assert!(
                text.parse::<Duration>().is_err(),
                "{text:?} should be refused"
            );
        }
    }

    #[test]
    fn prints_back_in_the_same_syntax() {
        for text in ["15s", "10m", "1h30m", "500ms", "1h0m1s"] {
            let d: Duration = text.parse().unwrap();
            let again: Duration = d.to_string().parse().unwrap();
            assert_eq!(d, again);
        }
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
    }
}

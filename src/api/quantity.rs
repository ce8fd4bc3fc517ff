//! Kubernetes quantities (`100`, `"1.5k"`, `"250m"`, `"2Gi"`) as written in metric
//! targets and node sizes, parsed to a number the engine can use.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity as the user wrote it, and its value. Serialized back as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    text: String,
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {why} (write e.g. \"100\", \"1.5k\", \"250m\", \"2Gi\")")]
pub struct QuantityError {
    pub input: String,
    pub why: &'static str,
}

impl Quantity {
    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why| QuantityError {
            input: input.to_string(),
            why,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(err("empty"));
        }
        if text.len() > 64 {
            return Err(err("longer than 64 characters"));
        }
        let (sign, body) = match text.as_bytes()[0] {
            b'-' => (-1.0, &text[1..]),
            b'+' => (1.0, &text[1..]),
            _ => (1.0, text),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err("expected a number"));
        }
        let base: f64 = number.parse().map_err(|_| err("expected a number"))?;
        let multiplier = match suffix {
            "" => 1.0,
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "Ki" => 1024.0,
            "Mi" => 1024.0_f64.powi(2),
            "Gi" => 1024.0_f64.powi(3),
            "Ti" => 1024.0_f64.powi(4),
            "Pi" => 1024.0_f64.powi(5),
            "Ei" => 1024.0_f64.powi(6),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| err("malformed exponent"))?;
                if !(-30..=30).contains(&exp) {
                    return Err(err("exponent out of range"));
                }
                10f64.powi(exp)
            }
            _ => return Err(err("unknown suffix")),
        };
        let value = sign * base * multiplier;
        if !value.is_finite() {
            return Err(err("not a finite number"));
        }
        Ok(Self {
            text: text.to_string(),
            value,
        })
    }
}

impl From<u32> for Quantity {
    fn from(v: u32) -> Self {
        Self {
            text: v.to_string(),
            value: f64::from(v),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity: an integer or a string such as \"1.5k\" or \"250m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Err(E::custom(format!(
                    "a fractional quantity must be quoted, e.g. \"{v}\" (Kubernetes accepts integers or strings here)"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Kubernetes' int-or-string, as for `resource.Quantity`; the CEL rules on each
        // field (and `api::validation`) check the value itself. `maxLength` bounds the
        // CEL cost estimate (without it the API server refuses the quantity rules).
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "maxLength": 64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_binary_suffixes() {
        for (text, value) in [
            ("100", 100.0),
            ("1.5k", 1500.0),
            ("250m", 0.25),
            ("2Gi", 2.0 * 1024.0 * 1024.0 * 1024.0),
            ("1e3", 1000.0),
            ("0.5", 0.5),
            ("-3", -3.0),
        ] {
            let q: Quantity = text.parse().unwrap();
            assert!((q.value() - value).abs() < 1e-9, "{text} -> {}", q.value());
        }
    }

    #[test]
    fn refuses_garbage() {
        for text in ["", "abc", "1.2.3", "5 k", "10x", "1e999", "."] {
            assert!(text.parse::<Quantity>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn integers_in_yaml_are_accepted_and_floats_are_refused_with_a_hint() {
        let q: Quantity = serde_yaml::from_str("100").unwrap();
        assert_eq!(q.value(), 100.0);
        let err = serde_yaml::from_str::<Quantity>("0.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be quoted"), "{err}");
    }
}

//! Where a PromQL error is. `promql-parser` reports most errors without a position
//! (`invalid promql query`, `unknown function with name 'summ'`, `bad number or
//! duration syntax: 5x`), so they are located here from the query's own tokens and
//! the token the message quotes, with a hint where one is cheap (`did you mean
//! sum?`). Pure: text in, an offset and a description out.

/// PromQL's functions, for "did you mean" (with [`AGGREGATIONS`]).
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "time",
    "timestamp",
    "vector",
    "year",
];

const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

/// Keywords that need something after them.
const NEEDS_OPERAND: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "offset",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
];

const BINARY_OPS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">=", "@",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Str,
    Op,
    Open,
    Close,
    Comma,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    start: usize,
    text: &'a str,
    kind: Kind,
}

/// PromQL's tokens, roughly: enough to point at one. Comments and spaces are
/// skipped; an unterminated string runs to the end.
fn tokens(query: &str) -> Vec<Token<'_>> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                Kind::Str
            }
            b'(' | b'[' | b'{' => {
                i += 1;
                Kind::Open
            }
            b')' | b']' | b'}' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                // Operators, longest first: ==, !=, <=, >=, =~, !~, then one byte.
                let two = query.get(i..i + 2).unwrap_or("");
                i += if ["==", "!=", "<=", ">=", "=~", "!~"].contains(&two) {
                    2
                } else {
                    query[i..].chars().next().map_or(1, char::len_utf8)
                };
                Kind::Op
            }
        };
        out.push(Token {
            start,
            text: &query[start..i],
            kind,
        });
    }
    out
}

fn is_binary(t: &Token<'_>) -> bool {
    (t.kind == Kind::Op && BINARY_OPS.contains(&t.text))
        || (t.kind == Kind::Ident && ["and", "or", "unless"].contains(&t.text))
}

/// The text between the first pair of single quotes in `message`.
fn quoted(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('\'')?;
    rest.split_once('\'').map(|(q, _)| q)
}

/// The closest known name within two edits, for "did you mean".
fn closest(name: &str) -> Option<&'static str> {
    AGGREGATIONS
        .iter()
        .chain(FUNCTIONS)
        .map(|n| (edit_distance(name, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// A call of `name`: the identifier followed by `(`.
fn call_of<'a>(tokens: &[Token<'a>], name: &str) -> Option<Token<'a>> {
    tokens
        .windows(2)
        .find(|w| w[0].kind == Kind::Ident && w[0].text == name && w[1].text == "(")
        .map(|w| w[0])
}

/// Where the parser's `message` about `query` points, as a byte offset, and what
/// to say there beyond the message itself (a hint, or which token is at fault).
pub fn locate(query: &str, message: &str) -> (usize, Option<String>) {
    let tokens = tokens(query);
    let end = query.trim_end().len();
    let Some(last) = tokens.last().copied() else {
        return (0, None);
    };
    if message.starts_with("unknown function with name") {
        if let Some(name) = quoted(message)
            && let Some(t) = call_of(&tokens, name)
        {
            return (t.start, closest(name).map(|n| format!("did you mean {n}?")));
        }
    } else if let Some(bad) = message.strip_prefix("bad number or duration syntax: ") {
        let at = tokens
            .iter()
            .find(|t| t.text == bad)
            .map(|t| t.start)
            .or_else(|| query.find(bad));
        if let Some(at) = at {
            return (
                at,
                Some("a duration is a number with a unit: ms, s, m, h, d, w or y".into()),
            );
        }
    } else if message.contains("unexpected end of input") {
        return (end, None);
    } else if message.contains("call to function '") || message.contains("call to '") {
        if let Some(t) = quoted(message).and_then(|name| call_of(&tokens, name)) {
            return (t.start, None);
        }
    } else if message.contains("aggregate expression") {
        if let Some(t) = tokens
            .iter()
            .find(|t| t.kind == Kind::Ident && AGGREGATIONS.contains(&t.text))
        {
            return (t.start, None);
        }
    } else if message.starts_with("binary expression") {
        if let Some(t) = tokens.iter().find(|t| is_binary(t)) {
            return (t.start, None);
        }
    } else if let Some(q) = quoted(message)
        && let Some(t) = tokens.iter().find(|t| t.text == q)
    {
        return (t.start, None);
    }
    // A grammar error the parser does not place: the first token that cannot be
    // where it is.
    for w in tokens.windows(2) {
        let (a, b) = (w[0], w[1]);
        if ["=", "!=", "=~", "!~"].contains(&a.text) && matches!(b.kind, Kind::Close | Kind::Comma)
        {
            return (
                a.start,
                Some(format!("the label matcher {:?} has no value", a.text)),
            );
        }
        if is_binary(&a) && is_binary(&b) && !["-", "+"].contains(&b.text) {
            return (
                b.start,
                Some(format!("{:?} cannot follow {:?}", b.text, a.text)),
            );
        }
        if ["by", "without"].contains(&a.text) && b.text != "(" {
            return (
                b.start,
                Some(format!(
                    "{:?} takes a list of labels in parentheses",
                    a.text
                )),
            );
        }
    }
    if is_binary(&last) || (last.kind == Kind::Ident && NEEDS_OPERAND.contains(&last.text)) {
        return (
            last.start,
            Some(format!("{:?} has nothing after it", last.text)),
        );
    }
    (last.start, Some(format!("near {:?}", last.text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(query: &str, message: &str) -> (usize, Option<String>) {
        locate(query, message)
    }

    #[test]
    fn the_acceptance_findings_get_a_position_and_a_hint() {
        // `sum(rate(x[5m])) /` -> the trailing operator.
        let q = "sum(rate(x[5m])) /";
        assert_eq!(
            at(q, "invalid promql query"),
            (17, Some("\"/\" has nothing after it".into()))
        );
        assert_eq!(
            at("summ(rate(x[5m]))", "unknown function with name 'summ'"),
            (0, Some("did you mean sum?".into()))
        );
        let (offset, hint) = at("rate(x[5x])", "bad number or duration syntax: 5x");
        assert_eq!(offset, 7);
        assert!(hint.is_some_and(|h| h.contains("ms, s, m, h")));
    }

    #[test]
    fn other_errors_point_at_their_token() {
        assert_eq!(at("1 +* 2", "invalid promql query").0, 3);
        assert_eq!(
            at("x{a=~}", "invalid promql query"),
            (3, Some("the label matcher \"=~\" has no value".into()))
        );
        assert_eq!(at("sum(x) by", "invalid promql query").0, 7);
        assert_eq!(
            at(
                "x{a=b}",
                "unexpected identifier 'b' in label matching, expected string"
            )
            .0,
            4
        );
        assert_eq!(
            at(
                "x + abs(x, y)",
                "expected 1 argument(s) in call to 'abs', got 2"
            )
            .0,
            4
        );
        assert_eq!(
            at(
                "x + rate(x)",
                "expected type matrix in call to function 'rate', got vector"
            )
            .0,
            4
        );
        assert_eq!(
            at(
                "x + topk(x)",
                "wrong number of arguments for aggregate expression provided, expected 2, got 1"
            )
            .0,
            4
        );
        assert_eq!(
            at(
                "x offset",
                "unexpected end of input in offset, expected duration"
            )
            .0,
            8
        );
        assert_eq!(
            at(
                "x[5m] + 1",
                "binary expression must contain only scalar and instant vector types"
            )
            .0,
            6
        );
        // A function name too far from any known one gets no guess.
        assert_eq!(
            at("frobnicate(x)", "unknown function with name 'frobnicate'"),
            (0, None)
        );
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("summ", "sum"), 1);
        assert_eq!(edit_distance("rat", "rate"), 1);
        assert_eq!(edit_distance("irate", "rate"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
        assert_eq!(closest("histogram_quantil"), Some("histogram_quantile"));
    }
}

//! Metric series for `ballast simulate`: the CSV format (`time,<metric>...`, one row
//! per poll, an empty cell for a failed read) and times (`now-1h`, RFC 3339, Unix
//! seconds).

use std::str::FromStr;

use crate::api::Duration;

/// A series: metric names (in column order) and rows in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub metrics: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The time as written (seconds from the start or RFC 3339).
    pub label: String,
    /// Unix milliseconds (seconds-from-start rows count from the epoch).
    pub time: i64,
    /// One entry per metric; `None` is a failed read.
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeriesError {
    #[error("{file}: empty file; expected a header `time,<metric>[,<metric>...]`")]
    Empty { file: String },
    #[error("{file}: line 1: the first column must be `time`, found {found:?}")]
    NoTimeColumn { file: String, found: String },
    #[error("{file}: line 1: no metric columns after `time`")]
    NoMetrics { file: String },
    #[error("{file}: line 1: column {column:?} appears twice")]
    DuplicateColumn { file: String, column: String },
    #[error("{file}: line {line}: expected {expected} cells, found {found}")]
    Width {
        file: String,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("{file}: line {line}: time {value:?} is neither seconds nor an RFC 3339 timestamp")]
    BadTime {
        file: String,
        line: usize,
        value: String,
    },
    #[error(
        "{file}: line {line}: time {value:?} is not after the previous row's time (rows must go forward in time)"
    )]
    Backwards {
        file: String,
        line: usize,
        value: String,
    },
    #[error(
        "{file}: line {line}, column {column:?}: {value:?} is not a number (leave the cell empty for a failed read)"
    )]
    BadNumber {
        file: String,
        line: usize,
        column: String,
        value: String,
    },
    #[error("{file}: no data rows after the header")]
    NoRows { file: String },
}

fn cells(line: &str) -> Vec<String> {
    line.split(',')
        .map(|c| c.trim().trim_matches('"').trim().to_string())
        .collect()
}

/// Move rows written as seconds from the start (not RFC 3339) to count from
/// `start` (Unix ms) instead of the epoch, so that schedules see them at real
/// times. RFC 3339 rows are left as they are.
pub fn shift_numeric(series: &mut Series, start: i64) {
    for row in &mut series.rows {
        if row.label.trim().parse::<f64>().is_ok() {
            row.time = row.time.saturating_add(start);
        }
    }
}

/// Parse the CSV text of `file`.
pub fn parse_csv(file: &str, text: &str) -> Result<Series, SeriesError> {
    let file = file.to_string();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(SeriesError::Empty { file });
    };
    let header = cells(header.trim_start_matches('\u{feff}'));
    if header[0] != "time" {
        return Err(SeriesError::NoTimeColumn {
            file,
            found: header[0].clone(),
        });
    }
    let metrics: Vec<String> = header[1..].to_vec();
    if metrics.is_empty() || metrics.iter().all(|m| m.is_empty()) {
        return Err(SeriesError::NoMetrics { file });
    }
    for (i, m) in metrics.iter().enumerate() {
        if metrics[..i].contains(m) {
            return Err(SeriesError::DuplicateColumn {
                file,
                column: m.clone(),
            });
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for (line, text) in lines {
        let row = cells(text);
        if row.len() != header.len() {
            return Err(SeriesError::Width {
                file,
                line,
                expected: header.len(),
                found: row.len(),
            });
        }
        let time = parse_row_time(&row[0]).ok_or_else(|| SeriesError::BadTime {
            file: file.clone(),
            line,
            value: row[0].clone(),
        })?;
        if rows.last().is_some_and(|prev| time <= prev.time) {
            return Err(SeriesError::Backwards {
                file,
                line,
                value: row[0].clone(),
            });
        }
        let mut values = Vec::with_capacity(metrics.len());
        for (cell, column) in row[1..].iter().zip(&metrics) {
            if cell.is_empty() {
                values.push(None);
                continue;
            }
            let v: f64 = cell
                .parse()
                .ok()
                .filter(|v: &f64| !v.is_nan() || cell.eq_ignore_ascii_case("nan"))
                .ok_or_else(|| SeriesError::BadNumber {
                    file: file.clone(),
                    line,
                    column: column.clone(),
                    value: cell.clone(),
                })?;
            values.push(Some(v));
        }
        rows.push(Row {
            label: row[0].clone(),
            time,
            values,
        });
    }
    if rows.is_empty() {
        return Err(SeriesError::NoRows { file });
    }
    Ok(Series { metrics, rows })
}

/// A row's time: seconds (from the start) or RFC 3339, as Unix milliseconds.
fn parse_row_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as i64);
    }
    jiff::Timestamp::from_str(text)
        .ok()
        .map(|t| t.as_millisecond())
}

/// A command-line time: `now`, `now-<duration>`, RFC 3339, or Unix seconds; as Unix
/// seconds. `now` is passed in (the CLI reads the clock, not this function).
pub fn parse_cli_time(text: &str, now_secs: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_secs);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let d = Duration::from_str(ago).map_err(|e| e.to_string())?;
        return Ok(now_secs - (d.as_millis() / 1000) as i64);
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    jiff::Timestamp::from_str(text)
        .map(|t| t.as_second())
        .map_err(|_| {
            format!("{text:?} is not a time (use RFC 3339, Unix seconds, `now` or `now-1h`)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seconds_rfc3339_and_empty_cells() {
        let s = parse_csv("s.csv", "time,a,b\n0,1,2\n15,,3.5\n").unwrap();
        assert_eq!(s.metrics, vec!["a", "b"]);
        assert_eq!(s.rows[1].time, 15_000);
        assert_eq!(s.rows[1].values, vec![None, Some(3.5)]);
        let s = parse_csv(
            "s.csv",
            "time,a\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:15Z,2\n",
        )
        .unwrap();
        assert_eq!(s.rows[1].time - s.rows[0].time, 15_000);
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let err = parse_csv("s.csv", "time,a\n0,1\n15,abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.csv: line 3, column \"a\": \"abc\" is not a number (leave the cell empty for a failed read)"
        );
        let err = parse_csv("s.csv", "time,a\n15,1\n10,2\n").unwrap_err();
        assert!(
            matches!(err, SeriesError::Backwards { line: 3, .. }),
            "{err}"
        );
        let err = parse_csv("s.csv", "when,a\n0,1\n").unwrap_err();
        assert!(matches!(err, SeriesError::NoTimeColumn { .. }));
        let err = parse_csv("s.csv", "time,a\n0,1,2\n").unwrap_err();
        assert!(matches!(
            err,
            SeriesError::Width {
                line: 2,
                expected: 2,
                found: 3,
                ..
            }
        ));
    }

    #[test]
    fn cli_times() {
        assert_eq!(parse_cli_time("now", 1000), Ok(1000));
        assert_eq!(parse_cli_time("now-1m", 1000), Ok(940));
        assert_eq!(parse_cli_time("1700000000", 0), Ok(1_700_000_000));
        assert_eq!(parse_cli_time("1970-01-01T00:01:00Z", 0), Ok(60));
        assert!(parse_cli_time("yesterday", 0).is_err());
    }
}

//! A JUnit XML report of a run (`target/e2e/junit.xml`), the format CI systems
//! show per test: one `<testcase>` per scenario with its time, and the failure's
//! message when it failed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;

/// One scenario's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    pub time: Duration,
    /// `None` when it passed.
    pub failure: Option<String>,
}

/// The outcomes of a run, recorded from the test threads as they finish.
#[derive(Debug, Default)]
pub struct Report {
    cases: Mutex<Vec<Case>>,
}

impl Report {
    pub fn record(&self, case: Case) {
        // A poisoned lock only means another thread panicked while pushing.
        self.cases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(case);
    }

    /// The XML of a `<testsuite>` named `suite`, cases in name order.
    pub fn xml(&self, suite: &str) -> String {
        let mut cases = self.cases.lock().unwrap_or_else(|p| p.into_inner()).clone();
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        let failures = cases.iter().filter(|c| c.failure.is_some()).count();
        let total: f64 = cases.iter().map(|c| c.time.as_secs_f64()).sum();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">",
            escape(suite),
            cases.len()
        );
        for case in &cases {
            let _ = write!(
                xml,
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                escape(suite),
                escape(&case.name),
                case.time.as_secs_f64()
            );
            match &case.failure {
                None => xml.push_str("/>\n"),
                Some(message) => {
                    let first = message.lines().next().unwrap_or_default();
                    let _ = writeln!(
                        xml,
                        ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                        escape(first),
                        escape(message)
                    );
                }
            }
        }
        xml.push_str("</testsuite></testsuites>\n");
        xml
    }

    pub fn write(&self, suite: &str, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, self.xml(suite)).with_context(|| format!("writing {}", path.display()))
    }
}

/// Text and attribute values: the five XML specials, and control characters
/// (which XML 1.0 cannot carry at all) as U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_counts_failures_and_escapes_messages() {
        let report = Report::default();
        report.record(Case {
            name: "b-fails".into(),
            time: Duration::from_millis(2500),
            failure: Some("expected <3> & got \"5\"\nsecond line\u{1b}".into()),
        });
        report.record(Case {
            name: "a-passes".into(),
            time: Duration::from_secs(1),
            failure: None,
        });
        let xml = report.xml("e2e");
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("time=\"3.500\""), "{xml}");
        let a = xml.find("a-passes").unwrap();
        let b = xml.find("b-fails").unwrap();
        assert!(a < b, "cases in name order: {xml}");
        assert!(
            xml.contains("<failure message=\"expected &lt;3&gt; &amp; got &quot;5&quot;\">"),
            "{xml}"
        );
        assert!(xml.contains("second line\u{FFFD}</failure>"), "{xml}");
        assert!(xml.contains("name=\"a-passes\" time=\"1.000\"/>"), "{xml}");
    }
}

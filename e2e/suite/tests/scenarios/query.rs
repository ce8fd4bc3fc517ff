//! `ballast query`: the operator's Prometheus client and its decoding, against the
//! harness's real Prometheus.

use ballast_e2e::{Scenario, free_port};

/// The query's exit code is `code` and its output matches `expected` (a substring).
async fn expect(
    s: &Scenario,
    url: &str,
    query: &str,
    extra: &[&str],
    code: i32,
    expected: &str,
) -> anyhow::Result<()> {
    let mut args = vec!["query", "--prometheus", url];
    args.extend_from_slice(extra);
    args.push(query);
    let (rc, out) = s.ballast(&args).await?;
    s.say(format!("ballast query '{query}' -> {out} (exit {rc})"));
    anyhow::ensure!(
        rc == code && out.contains(expected),
        "query '{query}': exit {rc}, '{out}'; expected exit {code} and '{expected}'"
    );
    Ok(())
}

pub async fn metrics_client(s: &mut Scenario) -> anyhow::Result<()> {
    let url = s.env.prometheus_url.clone();
    expect(s, &url, "vector(5)", &[], 0, "value 5 at ").await?;
    expect(s, &url, "scalar(vector(3))", &[], 0, "value 3 at ").await?;
    // Two series whatever Prometheus scrapes at the moment.
    let two = r#"vector(1) or label_replace(vector(2), "side", "b", "", "")"#;
    expect(s, &url, two, &[], 2, "returned 2 series").await?;
    expect(
        s,
        &url,
        "no_such_metric_ballast_e2e",
        &[],
        1,
        "no data: the query returned no series",
    )
    .await?;
    expect(
        s,
        &url,
        "0/0",
        &[],
        1,
        "no data: the query returned NaN or Inf",
    )
    .await?;
    expect(s, &url, r#""text""#, &[], 2, "string result").await?;
    // An HTTP error says what the server said: Prometheus's own 404 page under a
    // path prefix it does not serve.
    expect(
        s,
        &format!("{url}/no-such-prefix"),
        "vector(1)",
        &[],
        2,
        "answered HTTP 404 Not Found: 404 page not found",
    )
    .await?;
    expect(
        s,
        &url,
        "vector(1)",
        &["--max-response-bytes", "50"],
        2,
        "(BodyTooLarge)",
    )
    .await?;
    let nobody = format!("http://127.0.0.1:{}", free_port()?);
    expect(s, &nobody, "vector(1)", &[], 2, "(Connect)").await?;
    Ok(())
}

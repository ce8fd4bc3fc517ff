//! Waiting on a shared, sometimes loaded machine: deadlines are counted in the
//! policy's own poll intervals, with a margin for what one tick costs (a query, a
//! `/scale` write, a watch event), never in bare seconds picked to pass.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What one tick may take beyond its interval on a loaded machine: the query, the
/// writes, the watch event that shows them, and the operator's own jitter.
pub const SLACK: Duration = Duration::from_secs(10);

/// How often a condition is probed.
const PROBE: Duration = Duration::from_millis(500);

/// The deadline for something that takes `n` ticks of a policy polled every `poll`:
/// `n` intervals (each late by at most the 10 % jitter) plus [`SLACK`].
pub fn polls(poll: Duration, n: u32) -> Duration {
    poll.mul_f64(f64::from(n) * 1.1) + SLACK
}

/// Probes until `probe` succeeds, and returns what it returned. After `within`,
/// fails with `what` and the last reason the probe gave.
pub async fn eventually<T, F, Fut>(
    within: Duration,
    what: impl Display,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                anyhow::bail!(
                    "{what}: not within {:.1}s; last seen: {last:#}",
                    within.as_secs_f64()
                )
            }
            Err(_) => tokio::time::sleep(PROBE).await,
        }
    }
}

/// Probes for the whole of `during`; fails with `what` at the first probe that
/// fails (something that must not happen, e.g. a write by a paused policy).
pub async fn holds<F, Fut>(during: Duration, what: impl Display, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let end = Instant::now() + during;
    loop {
        if let Err(broken) = probe().await {
            anyhow::bail!(
                "{what}: broken after {:.1}s: {broken:#}",
                (during - (end - Instant::now().min(end))).as_secs_f64()
            );
        }
        if Instant::now() >= end {
            return Ok(());
        }
        tokio::time::sleep(PROBE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn deadlines_grow_with_the_interval_and_the_count() {
        assert_eq!(polls(Duration::from_secs(2), 0), SLACK);
        assert_eq!(
            polls(Duration::from_secs(2), 5),
            Duration::from_secs(11) + SLACK
        );
        assert!(polls(Duration::from_secs(15), 2) > polls(Duration::from_secs(2), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_the_first_success_and_fails_with_the_last_reason() {
        let n = Cell::new(0);
        let got = eventually(Duration::from_secs(10), "three", || {
            n.set(n.get() + 1);
            let seen = n.get();
            async move {
                anyhow::ensure!(seen >= 3, "at {seen}");
                Ok(seen)
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);

        let err = eventually::<(), _, _>(Duration::from_secs(2), "never", || async {
            anyhow::bail!("still 1")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("never: not within 2.0s"), "{err}");
        assert!(err.ends_with("last seen: still 1"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn holds_fails_at_the_first_broken_probe() {
        let n = Cell::new(0);
        let err = holds(Duration::from_secs(10), "stays at 2", || {
            n.set(n.get() + 1);
            let seen = n.get();
            async move {
                anyhow::ensure!(seen < 4, "wrote 5");
                Ok(())
            }
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("stays at 2: broken after 1.5s"), "{err}");
        assert!(
            holds(Duration::from_secs(3), "fine", || async { Ok(()) })
                .await
                .is_ok()
        );
    }
}

//! Per-source protection: exponential backoff with full jitter after each failure,
//! and a circuit breaker (closed → open after N consecutive failures → one half-open
//! probe after a cool-down). Pure: the caller passes the time in (Unix ms).

use crate::jitter;

/// Circuit state, as shown in status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// Whether a query may be sent now, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Backing off after a failure until this time.
    BackingOff {
        until: i64,
    },
    /// The circuit is open (or its one probe is in flight).
    CircuitOpen,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    name: String,
    threshold: u32,
    open_millis: i64,
    backoff_base_millis: i64,
    backoff_cap_millis: i64,
    failures: u32,
    state: CircuitState,
    opened_at: i64,
    retry_at: i64,
    probing: bool,
    /// Why the last failed query failed, for the messages of skipped ones.
    last_error: Option<String>,
}

impl Breaker {
    /// `threshold` consecutive failures open the circuit for `open_millis`; after each
    /// failure, queries wait a random time in [0, min(cap, base × 2^(failures-1))].
    pub fn new(
        name: &str,
        threshold: u32,
        open_millis: i64,
        backoff_base_millis: i64,
        backoff_cap_millis: i64,
    ) -> Self {
        Self {
            name: name.to_string(),
            threshold: threshold.max(1),
            open_millis,
            backoff_base_millis,
            backoff_cap_millis,
            failures: 0,
            state: CircuitState::Closed,
            opened_at: 0,
            retry_at: 0,
            probing: false,
            last_error: None,
        }
    }

    /// Why the last failure failed (None after a success).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Keep why a query failed, to say so while later queries are held back.
    pub fn note_error(&mut self, error: String) {
        self.last_error = Some(error);
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// May a query go out at `now`? A half-open circuit lets exactly one through.
    pub fn admit(&mut self, now: i64) -> Admission {
        match self.state {
            CircuitState::Open if now >= self.opened_at + self.open_millis => {
                self.state = CircuitState::HalfOpen;
                self.probing = true;
                Admission::Allowed
            }
            CircuitState::Open => Admission::CircuitOpen,
            CircuitState::HalfOpen if self.probing => Admission::CircuitOpen,
            CircuitState::HalfOpen => {
                self.probing = true;
                Admission::Allowed
            }
            CircuitState::Closed if now < self.retry_at => Admission::BackingOff {
                until: self.retry_at,
            },
            CircuitState::Closed => Admission::Allowed,
        }
    }

    /// A query succeeded: close the circuit and forget the failures.
    pub fn success(&mut self) {
        self.last_error = None;
        self.failures = 0;
        self.state = CircuitState::Closed;
        self.retry_at = 0;
        self.probing = false;
    }

    /// A query failed at `now`. Returns true when this failure opened the circuit.
    pub fn failure(&mut self, now: i64) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.probing = false;
        let exp = self.failures.saturating_sub(1).min(20);
        let ceiling = self
            .backoff_base_millis
            .saturating_mul(1i64 << exp)
            .min(self.backoff_cap_millis)
            .max(0);
        // Full jitter: uniform in [0, ceiling].
        let draw = jitter::unit(
            &self.name,
            u64::from(self.failures) ^ (now as u64).rotate_left(17),
        );
        self.retry_at = now + (draw * ceiling as f64) as i64;
        match self.state {
            CircuitState::HalfOpen => {
                self.state = CircuitState::Open;
                self.opened_at = now;
                true
            }
            CircuitState::Closed if self.failures >= self.threshold => {
                self.state = CircuitState::Open;
                self.opened_at = now;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new("prom", 3, 30_000, 500, 10_000)
    }

    #[test]
    fn keeps_the_last_error_until_a_success() {
        let mut b = breaker();
        assert_eq!(b.last_error(), None);
        b.note_error("HTTP 503".into());
        b.failure(0);
        b.note_error("timed out".into());
        b.failure(1);
        assert_eq!(b.last_error(), Some("timed out"));
        b.success();
        assert_eq!(b.last_error(), None);
    }

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cool_down() {
        let mut b = breaker();
        assert!(!b.failure(0));
        assert!(!b.failure(1));
        assert!(b.failure(2), "third consecutive failure opens");
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.admit(10_000), Admission::CircuitOpen);
        assert_eq!(b.admit(30_002), Admission::Allowed, "one probe after 30 s");
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(
            b.admit(30_003),
            Admission::CircuitOpen,
            "only one probe at a time"
        );
        b.success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.admit(30_004), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let mut b = breaker();
        for t in 0..3 {
            b.failure(t);
        }
        assert_eq!(b.admit(40_000), Admission::Allowed);
        assert!(b.failure(40_000));
        assert_eq!(b.admit(50_000), Admission::CircuitOpen);
        assert_eq!(b.admit(70_000), Admission::Allowed);
    }

    #[test]
    fn backoff_grows_but_stays_under_its_cap_with_full_jitter() {
        let mut b = Breaker::new("prom", 1000, 30_000, 500, 10_000);
        let mut max_seen = 0;
        for n in 1..=40 {
            b.failure(n * 100_000);
            let Admission::BackingOff { until } = b.admit(n * 100_000) else {
                // A zero wait is a valid full-jitter draw.
                continue;
            };
            let wait = until - n * 100_000;
            let ceiling = (500i64 << (n - 1).min(20)).min(10_000);
            assert!((0..=ceiling).contains(&wait), "wait {wait} above {ceiling}");
            max_seen = max_seen.max(wait);
        }
        assert!(max_seen > 5_000, "waits grow towards the cap: {max_seen}");
    }
}

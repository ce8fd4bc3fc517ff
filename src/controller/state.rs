//! What this process remembers about each policy between ticks, as a synchronous
//! state machine: plain methods that take `now` and an event (the spec changed,
//! the target changed out of band, a reconcile asks whether a tick is due, a tick
//! decided, a status write failed, leadership changed) and say what to do next.
//! No clock, no I/O, no lock: the controller keeps one [`Policies`] behind a
//! mutex and calls one method per lock, so everything here is tested in memory.
//!
//! The rules, each with its tests below:
//! - **Schedule.** A new policy, a re-created one (new uid) or a new generation
//!   ticks at once and re-anchors its grid at its own phase of the interval, a
//!   whole interval on; then tick `n` is due at `start + n × interval ± jitter`
//!   ([`jitter::tick_time`]). Missed ticks are skipped, not replayed; a forced
//!   tick (out-of-band change) does not move the grid.
//! - **Validation** runs once per generation; an invalid spec waits for a change.
//! - **History.** While this process leads, the history its last tick kept is
//!   trusted, in the same leadership epoch only. Otherwise the persisted one is
//!   restored, and a new leader marks the takeover unless a scale-down is already
//!   waiting in its window (docs/architecture.md, "A new leader resumes the
//!   windows"). A follower keeps no history.
//! - **Status.** A status whose write failed is retried before the next tick.
//! - **Errors.** A failed tick backs off exponentially with jitter, capped at the
//!   poll interval; a good tick resets it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::api::history::History;
use crate::api::{CustomScalingPolicy, CustomScalingPolicyStatus};
use crate::engine;
use crate::jitter;

/// `next_due` of a policy that waits for a spec change (invalid spec).
const NEVER: i64 = i64::MAX / 2;
/// The shortest interval a policy ticks on (a lower `pollInterval` is refused by
/// validation; this keeps the arithmetic sane for objects that slipped past it).
const MIN_INTERVAL_MS: u64 = 1000;
/// The first retry of a failed tick is within this (then doubling).
const FIRST_BACKOFF_MS: u64 = 500;
/// A failed tick retries no sooner than this.
const MIN_BACKOFF_MS: u64 = 100;

/// The state key of a policy: `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What the schedule needs of a policy.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub uid: &'a str,
    pub generation: Option<i64>,
    pub interval_ms: u64,
    pub jitter: f64,
    pub policy: &'a CustomScalingPolicy,
}

impl<'a> Facts<'a> {
    pub fn of(policy: &'a CustomScalingPolicy) -> Self {
        Self {
            uid: policy.metadata.uid.as_deref().unwrap_or(""),
            generation: policy.metadata.generation,
            interval_ms: policy.spec.poll_interval.as_millis().max(MIN_INTERVAL_MS),
            jitter: policy.spec.jitter,
            policy,
        }
    }
}

/// Whether a reconcile should tick now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Tick now; `late_by_ms` after the tick was due (0 for a forced tick).
    Now { late_by_ms: i64 },
    /// Not yet: reconcile again after this long.
    Wait(Duration),
    /// Nothing to do until the spec changes.
    Never,
}

/// Who this process is for one tick: taken when the tick starts and handed back
/// when it records what it decided, so a tick that straddles a leadership change
/// keeps nothing into the new epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    leading: bool,
    epoch: u64,
}

impl Ticket {
    /// The lease manager's view at the tick's start: whose history the tick used.
    /// (Writes also need the Lease read back, checked right before each write.)
    pub fn leading(&self) -> bool {
        self.leading
    }
}

/// One policy's memory.
#[derive(Debug, Default)]
struct PolicyState {
    uid: String,
    generation: Option<i64>,
    /// Origin of the tick grid (Unix ms) and the number of the next tick.
    start: i64,
    tick: u64,
    next_due: i64,
    /// Tick at the next reconcile (the target changed out of band).
    force: bool,
    /// The history the last tick handed on, while this process leads, and the
    /// leadership epoch it belongs to.
    history: Option<(u64, History)>,
    /// Target replicas seen at the last tick (or about to be written).
    last_current: Option<u32>,
    /// The status this process last wrote.
    last_written: Option<CustomScalingPolicyStatus>,
    /// A status whose write failed, retried before the next tick.
    pending_status: Option<CustomScalingPolicyStatus>,
    /// Consecutive failed ticks, for the error backoff.
    errors: u32,
    /// This generation's spec passed validation.
    validated: bool,
    /// The policy's metric names (their series are forgotten with the policy).
    metric_names: Vec<String>,
}

/// Every policy's memory in this process, and the leadership epoch.
#[derive(Debug, Default)]
pub struct Policies {
    states: HashMap<String, PolicyState>,
    leading: bool,
    /// Bumped on every leadership change: a history from another epoch is not
    /// trusted (another replica may have scaled in between).
    epoch: u64,
}

impl Policies {
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease manager reports leadership (at start and on every change).
    pub fn leadership(&mut self, leading: bool) {
        self.leading = leading;
        self.epoch += 1;
    }

    /// Whether the lease manager last said this process leads.
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Is a tick due? Also where a new policy, a re-created one or a new
    /// generation is noticed: it ticks now and its grid is re-anchored.
    pub fn due(&mut self, key: &str, facts: Facts<'_>, now: i64) -> Due {
        let st = self.states.entry(key.to_string()).or_default();
        if st.uid != facts.uid || st.generation != facts.generation {
            // Tick now, then on a grid at this policy's own phase of the interval
            // (policies seen together, e.g. at an operator start, do not stay in
            // lockstep). The grid starts a whole interval on, so ticks are never
            // closer than pollInterval less jitter: `failureThreshold` ticks always
            // span as long as it says.
            st.start = now.saturating_add(jitter::phase_millis(facts.uid, facts.interval_ms));
            st.uid = facts.uid.to_string();
            st.generation = facts.generation;
            st.tick = 0;
            st.next_due = now;
            st.history = None;
            st.force = false;
            st.metric_names = facts
                .policy
                .spec
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .collect();
            st.validated = false;
            return Due::Now { late_by_ms: 0 };
        }
        if st.force {
            st.force = false;
            return Due::Now { late_by_ms: 0 };
        }
        if st.next_due == NEVER {
            return Due::Never;
        }
        if now >= st.next_due {
            return Due::Now {
                late_by_ms: now - st.next_due,
            };
        }
        Due::Wait(Duration::from_millis((st.next_due - now) as u64))
    }

    /// After a tick (whatever its outcome): when the next one is due, skipping any
    /// that were missed but never one still ahead, so a tick forced early does not
    /// cost the policy its next scheduled one.
    pub fn next_tick(&mut self, key: &str, facts: Facts<'_>, now: i64) -> Duration {
        let Some(st) = self.states.get_mut(key) else {
            return Duration::from_millis(facts.interval_ms);
        };
        if st.next_due == NEVER {
            return Duration::from_millis(facts.interval_ms);
        }
        while st.next_due <= now {
            st.tick += 1;
            st.next_due =
                jitter::tick_time(st.start, &st.uid, st.tick, facts.interval_ms, facts.jitter);
        }
        Duration::from_millis((st.next_due - now).max(1) as u64)
    }

    /// The target's replicas as a watch event shows them: a change from what the
    /// last tick saw (or wrote) is out of band, and forces a tick. Returns whether
    /// it did.
    pub fn target_changed(&mut self, key: &str, replicas: Option<i32>) -> bool {
        let Some(st) = self.states.get_mut(key) else {
            return false;
        };
        let Some(seen) = st.last_current else {
            return false;
        };
        if replicas.map(i64::from) != Some(i64::from(seen)) {
            st.force = true;
            return true;
        }
        false
    }

    /// This process is about to write `replicas` to the policy's target: the watch
    /// event that write causes is not out of band.
    pub fn expect_replicas(&mut self, key: &str, replicas: u32) {
        if let Some(st) = self.states.get_mut(key) {
            st.last_current = Some(replicas);
        }
    }

    /// Must this generation's spec still be validated?
    pub fn needs_validation(&self, key: &str) -> bool {
        self.states.get(key).is_none_or(|st| !st.validated)
    }

    /// The spec passed validation: not checked again until the next generation.
    pub fn valid(&mut self, key: &str) {
        if let Some(st) = self.states.get_mut(key) {
            st.validated = true;
        }
    }

    /// The spec failed validation: no tick until the spec changes.
    pub fn invalid(&mut self, key: &str) {
        if let Some(st) = self.states.get_mut(key) {
            st.next_due = NEVER;
        }
    }

    /// The tick has read the target's replicas: the history to decide on, and the
    /// ticket to hand back with what it decided. Leading in the same epoch as the
    /// last tick: the history that tick kept. Otherwise the persisted one, marked
    /// with the takeover when this process leads (see the module docs).
    pub fn begin(
        &self,
        key: &str,
        persisted: Option<&History>,
        current: u32,
        now: i64,
    ) -> (History, Ticket) {
        let ticket = Ticket {
            leading: self.leading,
            epoch: self.epoch,
        };
        let kept = self
            .states
            .get(key)
            .and_then(|st| st.history.as_ref())
            .filter(|(epoch, _)| self.leading && *epoch == self.epoch);
        if let Some((_, history)) = kept {
            return (history.clone(), ticket);
        }
        let mut history = persisted.cloned().unwrap_or_default();
        if self.leading && engine::history::needs_takeover_mark(&history, current) {
            engine::history::record_recommendation(&mut history, now, current);
        }
        (history, ticket)
    }

    /// The tick decided and applied: the history to hand on (kept only while
    /// leading, in the ticket's epoch) and the target's replicas now. A good tick
    /// also resets the error backoff.
    pub fn decided(&mut self, key: &str, ticket: Ticket, history: History, replicas: u32) {
        let trusted = ticket.leading && ticket.epoch == self.epoch && self.leading;
        if let Some(st) = self.states.get_mut(key) {
            st.history = trusted.then_some((ticket.epoch, history));
            st.last_current = Some(replicas);
            st.errors = 0;
        }
    }

    /// The tick could not read the target: nothing it sees next is out of band.
    pub fn target_unknown(&mut self, key: &str) {
        if let Some(st) = self.states.get_mut(key) {
            st.last_current = None;
        }
    }

    /// The status this process last wrote, if any.
    pub fn last_written(&self, key: &str) -> Option<&CustomScalingPolicyStatus> {
        self.states.get(key).and_then(|st| st.last_written.as_ref())
    }

    /// A status write succeeded.
    pub fn status_written(&mut self, key: &str, status: CustomScalingPolicyStatus) {
        if let Some(st) = self.states.get_mut(key) {
            st.last_written = Some(status);
            st.pending_status = None;
        }
    }

    /// A status write failed: it is retried before the next tick.
    pub fn status_failed(&mut self, key: &str, status: CustomScalingPolicyStatus) {
        if let Some(st) = self.states.get_mut(key) {
            st.pending_status = Some(status);
        }
    }

    /// A status to retry now (between ticks), taken out: hand it back with
    /// [`Policies::status_failed`] if the retry fails too.
    pub fn take_pending_status(&mut self, key: &str) -> Option<CustomScalingPolicyStatus> {
        self.states
            .get_mut(key)
            .and_then(|st| st.pending_status.take())
    }

    /// A tick failed: how long until the next attempt. Exponential from 500 ms,
    /// drawn uniformly below the ceiling (deterministic per policy and attempt),
    /// capped at the poll interval, never below 100 ms.
    pub fn failed(&mut self, key: &str, interval_ms: u64) -> Duration {
        let attempt = match self.states.get_mut(key) {
            Some(st) => {
                st.errors = st.errors.saturating_add(1);
                st.errors
            }
            None => 1,
        };
        let ceiling = (FIRST_BACKOFF_MS << attempt.min(16)).min(interval_ms);
        let delay = (jitter::unit(key, u64::from(attempt)) * ceiling as f64) as u64;
        Duration::from_millis(delay.max(MIN_BACKOFF_MS))
    }

    /// Forget every policy not in `live` (deleted): their keys and metric names,
    /// so their metric series can be removed too.
    pub fn forget_all_but(&mut self, live: &HashSet<String>) -> Vec<(String, Vec<String>)> {
        let dead: Vec<String> = self
            .states
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        dead.into_iter()
            .filter_map(|k| self.states.remove(&k).map(|st| (k, st.metric_names)))
            .collect()
    }

    /// How many policies this process remembers.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.states.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::Recommendation;
    use proptest::prelude::*;

    const K: &str = "ns/p";

    fn policy(uid: &str, generation: i64, poll: &str, jitter: f64) -> CustomScalingPolicy {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {{name: p, namespace: ns, uid: {uid}, generation: {generation}}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  maxReplicas: 10
  pollInterval: {poll}
  jitter: {jitter}
  metrics:
    - name: m
      query: up
      target: {{type: AverageValue, averageValue: "100"}}
"#
        ))
        .expect("policy")
    }

    fn p() -> CustomScalingPolicy {
        policy("u-1", 1, "15s", 0.1)
    }

    fn history_with(time: i64, replicas: u32) -> History {
        History {
            recommendations: vec![Recommendation {
                time,
                low: replicas,
                high: replicas,
            }],
            ..History::default()
        }
    }

    /// Due, then ticked: the next due time (absolute).
    fn tick_at(s: &mut Policies, policy: &CustomScalingPolicy, now: i64) -> (Due, i64) {
        let due = s.due(K, Facts::of(policy), now);
        let wait = s.next_tick(K, Facts::of(policy), now);
        (due, now + wait.as_millis() as i64)
    }

    #[test]
    fn a_new_policy_ticks_at_once_then_a_whole_interval_on_at_its_phase() {
        let mut s = Policies::new();
        let pol = p();
        assert_eq!(s.due(K, Facts::of(&pol), 1_000), Due::Now { late_by_ms: 0 });
        let next = 1_000 + s.next_tick(K, Facts::of(&pol), 1_000).as_millis() as i64;
        let start = 1_000 + jitter::phase_millis("u-1", 15_000);
        assert_eq!(next, jitter::tick_time(start, "u-1", 1, 15_000, 0.1));
        assert!(
            next - 1_000 >= 15_000 - 1_500,
            "never closer than interval less jitter"
        );
        // Before it: wait exactly the remainder.
        assert_eq!(
            s.due(K, Facts::of(&pol), next - 10),
            Due::Wait(Duration::from_millis(10))
        );
        assert_eq!(
            s.due(K, Facts::of(&pol), next + 7),
            Due::Now { late_by_ms: 7 }
        );
    }

    #[test]
    fn a_new_generation_or_uid_ticks_now_and_forgets_the_kept_history() {
        let mut s = Policies::new();
        s.leadership(true);
        let pol = p();
        tick_at(&mut s, &pol, 0);
        let (_, ticket) = s.begin(K, None, 3, 0);
        s.decided(K, ticket, history_with(0, 5), 3);
        assert_eq!(s.begin(K, None, 3, 1).0, history_with(0, 5), "kept");

        let newer = policy("u-1", 2, "15s", 0.1);
        assert_eq!(s.due(K, Facts::of(&newer), 10), Due::Now { late_by_ms: 0 });
        assert!(s.needs_validation(K), "a new generation is validated again");
        let persisted = history_with(0, 3);
        assert_eq!(
            s.begin(K, Some(&persisted), 3, 10).0.recommendations.len(),
            2,
            "the kept history is gone: the persisted one, with the takeover mark"
        );

        let recreated = policy("u-2", 2, "15s", 0.1);
        assert_eq!(
            s.due(K, Facts::of(&recreated), 20),
            Due::Now { late_by_ms: 0 }
        );
    }

    #[test]
    fn a_spec_is_validated_once_per_generation_and_an_invalid_one_waits_for_a_change() {
        let mut s = Policies::new();
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        assert!(s.needs_validation(K));
        s.valid(K);
        assert!(!s.needs_validation(K));
        s.next_tick(K, Facts::of(&pol), 0);
        assert!(!s.needs_validation(K), "still valid at the next tick");

        let bad = policy("u-1", 2, "15s", 0.1);
        s.due(K, Facts::of(&bad), 100);
        assert!(s.needs_validation(K));
        s.invalid(K);
        s.next_tick(K, Facts::of(&bad), 100);
        for now in [200, 60_000, 3_600_000] {
            assert_eq!(s.due(K, Facts::of(&bad), now), Due::Never, "at {now}");
        }
        // Out-of-band changes do not wake it either: only a new generation.
        s.target_changed(K, Some(7));
        assert_eq!(s.due(K, Facts::of(&bad), 1), Due::Never);
        let fixed = policy("u-1", 3, "15s", 0.1);
        assert_eq!(s.due(K, Facts::of(&fixed), 2), Due::Now { late_by_ms: 0 });
        assert!(s.needs_validation(K));
    }

    #[test]
    fn an_out_of_band_change_forces_one_tick_and_keeps_the_grid() {
        let mut s = Policies::new();
        let pol = p();
        let (_, next) = tick_at(&mut s, &pol, 0);
        // Not seen a count yet: nothing is out of band.
        assert!(!s.target_changed(K, Some(4)));
        s.decided(K, s.begin(K, None, 3, 0).1, History::default(), 3);
        assert!(!s.target_changed(K, Some(3)), "what we saw");
        s.expect_replicas(K, 5);
        assert!(!s.target_changed(K, Some(5)), "what we wrote");
        assert!(s.target_changed(K, Some(6)), "someone else's");
        assert!(s.target_changed(K, None), "replicas removed");
        assert_eq!(s.due(K, Facts::of(&pol), 1_000), Due::Now { late_by_ms: 0 });
        let (due, after) = tick_at(&mut s, &pol, 1_000);
        assert_eq!(due, Due::Wait(Duration::from_millis((next - 1_000) as u64)));
        assert_eq!(
            after, next,
            "the forced tick did not cost the scheduled one"
        );
        // A tick that could not read the target: the next event is not out of band.
        s.target_unknown(K);
        assert!(!s.target_changed(K, Some(9)));
    }

    #[test]
    fn missed_ticks_are_skipped_not_replayed() {
        let mut s = Policies::new();
        let pol = policy("u-1", 1, "10s", 0.0);
        let (_, first) = tick_at(&mut s, &pol, 0);
        // Five intervals late (a stalled process): one tick, then the grid again.
        let late = first + 50_000 + 3;
        assert_eq!(
            s.due(K, Facts::of(&pol), late),
            Due::Now { late_by_ms: 50_003 }
        );
        let next = late + s.next_tick(K, Facts::of(&pol), late).as_millis() as i64;
        assert_eq!(next, first + 60_000);
    }

    #[test]
    fn a_leader_trusts_its_own_history_in_the_same_epoch_only() {
        let mut s = Policies::new();
        s.leadership(true);
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        let persisted = history_with(-5_000, 3);
        let (first, ticket) = s.begin(K, Some(&persisted), 3, 0);
        assert!(ticket.leading());
        assert_eq!(
            first.recommendations.len(),
            2,
            "the first tick marks the takeover"
        );
        s.decided(K, ticket, history_with(0, 4), 4);
        assert_eq!(s.begin(K, Some(&persisted), 4, 1).0, history_with(0, 4));

        // Leadership lost and regained: another replica may have scaled in between.
        s.leadership(false);
        s.leadership(true);
        let (h, _) = s.begin(K, Some(&persisted), 3, 2);
        assert_eq!(h.recommendations[0], persisted.recommendations[0]);
        assert_eq!(
            h.recommendations.len(),
            2,
            "restored, with the takeover mark"
        );
    }

    #[test]
    fn a_tick_that_straddles_a_leadership_change_keeps_nothing() {
        let mut s = Policies::new();
        s.leadership(true);
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        let (_, ticket) = s.begin(K, None, 3, 0);
        s.leadership(false);
        s.leadership(true);
        s.decided(K, ticket, history_with(0, 9), 3);
        let persisted = history_with(-1, 3);
        assert_ne!(s.begin(K, Some(&persisted), 3, 1).0, history_with(0, 9));
    }

    #[test]
    fn a_follower_keeps_no_history_and_never_marks_a_takeover() {
        let mut s = Policies::new();
        s.leadership(false);
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        let persisted = history_with(-5_000, 3);
        let (h, ticket) = s.begin(K, Some(&persisted), 3, 0);
        assert!(!ticket.leading());
        assert_eq!(h, persisted, "the persisted history, unchanged");
        s.decided(K, ticket, history_with(0, 9), 3);
        assert_eq!(s.begin(K, Some(&persisted), 3, 1).0, persisted);
        // Becoming leader later: restored from the status, not from the follower.
        s.leadership(true);
        let (h, _) = s.begin(K, Some(&persisted), 3, 2);
        assert_eq!(h.recommendations.len(), 2);
        assert_eq!(h.recommendations[1].time, 2);
    }

    /// docs/architecture.md: a new leader resumes a scale-down window under way
    /// (no takeover mark), and otherwise records the current replicas now.
    #[test]
    fn a_new_leader_resumes_a_waiting_scale_down_and_marks_otherwise() {
        let mut s = Policies::new();
        s.leadership(true);
        let pol = p();
        s.due(K, Facts::of(&pol), 100_000);
        // The predecessor recommended 3 while at 6: a scale-down is waiting.
        let waiting = History {
            recommendations: vec![
                Recommendation {
                    time: 60_000,
                    low: 6,
                    high: 6,
                },
                Recommendation {
                    time: 80_000,
                    low: 3,
                    high: 3,
                },
            ],
            ..History::default()
        };
        assert_eq!(s.begin(K, Some(&waiting), 6, 100_000).0, waiting);
        // Nothing below the current replicas: the takeover counts as a
        // recommendation of the current replicas made now.
        let steady = history_with(60_000, 6);
        let (h, _) = s.begin(K, Some(&steady), 6, 100_000);
        assert_eq!(
            h.recommendations.last(),
            Some(&Recommendation {
                time: 100_000,
                low: 6,
                high: 6,
            })
        );
        // No status at all: the same.
        let (h, _) = s.begin(K, None, 2, 100_000);
        assert_eq!(h, history_with(100_000, 2));
    }

    #[test]
    fn a_failed_status_write_is_retried_before_the_next_tick() {
        let mut s = Policies::new();
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        let status = CustomScalingPolicyStatus {
            desired_replicas: Some(4),
            ..Default::default()
        };
        s.status_failed(K, status.clone());
        assert_eq!(s.take_pending_status(K), Some(status.clone()));
        assert_eq!(s.take_pending_status(K), None, "taken once");
        // The retry failed too: handed back, and retried again.
        s.status_failed(K, status.clone());
        s.status_written(K, status.clone());
        assert_eq!(
            s.take_pending_status(K),
            None,
            "a later write supersedes it"
        );
        assert_eq!(s.last_written(K), Some(&status));
    }

    #[test]
    fn the_error_backoff_grows_is_capped_by_the_interval_and_resets() {
        let mut s = Policies::new();
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        let ceilings: Vec<u64> = (1..=8u32).map(|a| (500u64 << a).min(15_000)).collect();
        let delays: Vec<u64> = (0..8)
            .map(|_| s.failed(K, 15_000).as_millis() as u64)
            .collect();
        for (i, (d, c)) in delays.iter().zip(&ceilings).enumerate() {
            assert!(
                *d >= 100 && *d <= *c,
                "attempt {}: {d} ms not in [100, {c}]",
                i + 1
            );
        }
        assert!(delays.iter().all(|d| *d <= 15_000));
        // Deterministic: the same attempt of the same policy waits the same.
        s.decided(K, s.begin(K, None, 1, 0).1, History::default(), 1);
        assert_eq!(s.failed(K, 15_000).as_millis() as u64, delays[0], "reset");
        // Growth: over many policies, the mean delay of attempt 4 is far above
        // that of attempt 1 (ceilings 8 s and 1 s).
        let mean = |attempt: usize| -> f64 {
            let mut total = 0u64;
            for i in 0..200 {
                let mut s = Policies::new();
                let k = format!("ns/p{i}");
                s.due(&k, Facts::of(&pol), 0);
                let mut d = 0;
                for _ in 0..attempt {
                    d = s.failed(&k, 15_000).as_millis() as u64;
                }
                total += d;
            }
            total as f64 / 200.0
        };
        assert!(mean(4) > 4.0 * mean(1), "{} vs {}", mean(4), mean(1));
    }

    #[test]
    fn deleted_policies_are_forgotten_with_their_metric_names() {
        let mut s = Policies::new();
        let pol = p();
        s.due(K, Facts::of(&pol), 0);
        s.due("ns/q", Facts::of(&pol), 0);
        let live: HashSet<String> = ["ns/q".to_string()].into();
        assert_eq!(
            s.forget_all_but(&live),
            vec![(K.to_string(), vec!["m".to_string()])]
        );
        assert!(!s.contains(K) && s.contains("ns/q"));
        assert_eq!(s.len(), 1);
    }

    proptest! {
        /// Whatever the reconcile times (watch events, forced ticks, stalls), every
        /// scheduled tick is on the policy's jittered grid, at most one tick runs
        /// per due time, and scheduled ticks are never closer than the interval
        /// less twice the jitter.
        #[test]
        fn ticks_never_drift_from_their_jittered_schedule(
            gaps in proptest::collection::vec((1i64..40_000, any::<bool>()), 1..80),
            jitter_pct in 0u32..=50,
            interval_s in 1u64..120,
        ) {
            let jitter = f64::from(jitter_pct) / 100.0;
            let pol = policy("u-prop", 1, &format!("{interval_s}s"), jitter);
            let interval = interval_s * 1000;
            let mut s = Policies::new();
            let mut now = 1_000_000i64;
            prop_assert_eq!(s.due(K, Facts::of(&pol), now), Due::Now { late_by_ms: 0 });
            let start = now + jitter::phase_millis("u-prop", interval);
            s.decided(K, s.begin(K, None, 3, now).1, History::default(), 3);
            let mut next = now + s.next_tick(K, Facts::of(&pol), now).as_millis() as i64;
            let mut scheduled = vec![];
            for (gap, out_of_band) in gaps {
                now += gap;
                if out_of_band {
                    s.target_changed(K, Some(4));
                }
                match s.due(K, Facts::of(&pol), now) {
                    Due::Now { late_by_ms } => {
                        if out_of_band {
                            prop_assert_eq!(late_by_ms, 0, "a forced tick is not late");
                        } else {
                            prop_assert!(now >= next, "a tick before its time");
                            prop_assert_eq!(late_by_ms, now - next);
                        }
                        if now >= next {
                            scheduled.push(next);
                        }
                        s.decided(K, s.begin(K, None, 3, now).1, History::default(), 3);
                        let wait = s.next_tick(K, Facts::of(&pol), now).as_millis() as i64;
                        prop_assert!(wait >= 1);
                        let due = now + wait;
                        // On the grid: some tick number n lands exactly there.
                        let n = (0..=((due - start) / interval as i64 + 2) as u64)
                            .find(|n| jitter::tick_time(start, "u-prop", *n, interval, jitter) == due);
                        prop_assert!(n.is_some(), "{} is not on the grid", due);
                        prop_assert!(due > now);
                        next = due;
                    }
                    Due::Wait(w) => {
                        prop_assert!(now < next);
                        prop_assert_eq!(now + w.as_millis() as i64, next);
                    }
                    Due::Never => prop_assert!(false, "a valid policy never waits forever"),
                }
            }
            let min_gap = interval as f64 * (1.0 - 2.0 * jitter) - 1.0;
            for w in scheduled.windows(2) {
                prop_assert!((w[1] - w[0]) as f64 >= min_gap, "{:?} closer than {}", w, min_gap);
            }
        }
    }
}

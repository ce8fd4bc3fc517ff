//! Keeping the decision history bounded: entries older than any window or period
//! are dropped, and when there are still too many, neighbours are merged in the way
//! that errs on the safe side (a merged entry counts as long as its newest part).

use crate::api::history::{
    History, MAX_RECOMMENDATIONS, MAX_SCALE_EVENTS, Recommendation, ScaleEvent,
};

/// Record a recommendation made at `now`.
pub fn record_recommendation(history: &mut History, now: i64, replicas: u32) {
    history.recommendations.push(Recommendation {
        time: now,
        low: replicas,
        high: replicas,
    });
}

/// A scale-down waiting in its window: a recommendation below `current` made
/// since the replicas last changed (lower ones from before a scale-up are over).
fn scale_down_waiting(history: &History, current: u32) -> bool {
    let since = history
        .scale_events
        .iter()
        .map(|e| e.time)
        .max()
        .unwrap_or(i64::MIN);
    history
        .recommendations
        .iter()
        .any(|r| r.time >= since && r.low < current)
}

/// While a scale-down waits in its window, the time of the newest recommendation
/// still at or above `current`: the window runs from there. None otherwise, so a
/// steady state (and the time after a scale-up) costs no status writes.
///
/// The status keeps a snapshot of the whole history, written when something a
/// successor needs changes; this is part of that, so a recommendation that holds the
/// replicas up again during a window is written, and a new leader can trust the
/// snapshot's window instead of restarting it (see `needs_takeover_mark`).
pub fn held_at(history: &History, current: u32) -> Option<i64> {
    if !scale_down_waiting(history, current) {
        return None;
    }
    history
        .recommendations
        .iter()
        .filter(|r| r.high >= current)
        .map(|r| r.time)
        .max()
}

/// Must a replica taking over record the current replicas as a recommendation
/// made now? Yes unless the restored history shows a scale-down already waiting
/// in its window: recommendations equal to the current replicas are not written
/// on their own, so otherwise the snapshot may be older than the predecessor's
/// last ticks, and "now" is the safe assumption. With one waiting, every later
/// recommendation at or above `current` changed `held_at` and was written, so the
/// snapshot's window is the predecessor's.
pub fn needs_takeover_mark(history: &History, current: u32) -> bool {
    !scale_down_waiting(history, current)
}

/// Record a change of replicas made at `now`.
pub fn record_scale_event(history: &mut History, now: i64, from: u32, to: u32) {
    let change = i64::from(to) - i64::from(from);
    if change != 0 {
        history.scale_events.push(ScaleEvent { time: now, change });
    }
}

/// Drop what no window or period can see any more (`horizon_millis` back from
/// `now`), then merge down to the size bounds.
pub fn prune(history: &mut History, now: i64, horizon_millis: i64) {
    // Entries stamped in the future (a skewed clock, a hand-edited status) count as
    // now: they stay in the windows as long as a fresh entry would, not forever.
    for r in &mut history.recommendations {
        r.time = r.time.min(now);
    }
    for e in &mut history.scale_events {
        e.time = e.time.min(now);
    }
    if let Some(since) = &mut history.node_shrink_since {
        *since = (*since).min(now);
    }
    let cutoff = now - horizon_millis;
    history.recommendations.retain(|r| r.time > cutoff);
    history.scale_events.retain(|e| e.time > cutoff);
    while history.recommendations.len() > MAX_RECOMMENDATIONS {
        merge_recommendations(&mut history.recommendations);
    }
    while history.scale_events.len() > MAX_SCALE_EVENTS {
        merge_scale_events(&mut history.scale_events);
    }
}

/// Merge the adjacent pair whose merged entry spans the least time.
fn merge_recommendations(recs: &mut Vec<Recommendation>) {
    let span = |i: usize| {
        let start = if i == 0 {
            recs[0].time
        } else {
            recs[i - 1].time
        };
        recs[i + 1].time - start
    };
    let Some(i) = (0..recs.len() - 1).min_by_key(|&i| span(i)) else {
        return;
    };
    let older = recs.remove(i);
    let newer = &mut recs[i];
    newer.low = newer.low.min(older.low);
    newer.high = newer.high.max(older.high);
}

/// Merge the closest adjacent pair of the same direction; failing that, drop the
/// oldest event.
fn merge_scale_events(events: &mut Vec<ScaleEvent>) {
    let candidate = (0..events.len() - 1)
        .filter(|&i| (events[i].change > 0) == (events[i + 1].change > 0))
        .min_by_key(|&i| events[i + 1].time - events[i].time);
    match candidate {
        Some(i) => {
            let older = events.remove(i);
            events[i].change += older.change;
        }
        None => {
            events.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_under_way_is_resumed_not_restarted() {
        // Steady at 6 (ticks every 3 s), then the demand falls at 30 s.
        let mut h = History::default();
        for t in (0..30_000).step_by(3_000) {
            record_recommendation(&mut h, t, 6);
        }
        assert_eq!(held_at(&h, 6), None, "no scale-down waiting: nothing held");
        assert!(needs_takeover_mark(&h, 6), "the snapshot may be stale");
        record_recommendation(&mut h, 30_000, 1);
        record_recommendation(&mut h, 33_000, 1);
        // The window runs from the last tick at 6.
        assert_eq!(held_at(&h, 6), Some(27_000));
        assert!(!needs_takeover_mark(&h, 6));
        // The demand back up for one tick moves it (and so is written).
        record_recommendation(&mut h, 36_000, 6);
        assert_eq!(held_at(&h, 6), Some(36_000));
        // Scaled down to 4 (rate): 6s still hold 4 up; the 1s wait.
        assert_eq!(held_at(&h, 4), Some(36_000));
        assert_eq!(held_at(&h, 1), None);
    }

    #[test]
    fn lower_recommendations_before_a_scale_up_hold_nothing() {
        // At 1, then the demand rose and it scaled up to 6 at 10 s: the old 1s are
        // no scale-down waiting, so steady ticks at 6 are not worth a write, and a
        // new leader marks its takeover (it cannot know the predecessor's last ticks).
        let mut h = History::default();
        record_recommendation(&mut h, 0, 1);
        record_recommendation(&mut h, 3_000, 1);
        record_recommendation(&mut h, 10_000, 6);
        record_scale_event(&mut h, 10_000, 1, 6);
        for t in (13_000..60_000).step_by(3_000) {
            record_recommendation(&mut h, t, 6);
        }
        assert_eq!(held_at(&h, 6), None);
        assert!(needs_takeover_mark(&h, 6));
        // The demand falls after the scale-up: now a scale-down waits.
        record_recommendation(&mut h, 60_000, 2);
        assert_eq!(held_at(&h, 6), Some(58_000));
        assert!(!needs_takeover_mark(&h, 6));
    }

    #[test]
    fn old_entries_are_dropped() {
        let mut h = History::default();
        record_recommendation(&mut h, 0, 3);
        record_recommendation(&mut h, 150_000, 4);
        record_scale_event(&mut h, 0, 1, 3);
        prune(&mut h, 400_000, 300_000);
        assert_eq!(h.recommendations.len(), 1);
        assert_eq!(h.recommendations[0].low, 4);
        assert!(h.scale_events.is_empty());
    }

    #[test]
    fn entries_from_the_future_count_as_now() {
        let mut h = History::default();
        record_recommendation(&mut h, 10_000_000, 9);
        prune(&mut h, 1_000, 300_000);
        assert_eq!(h.recommendations[0].time, 1_000);
        prune(&mut h, 400_000, 300_000);
        assert!(
            h.recommendations.is_empty(),
            "and they age out like any other"
        );
    }

    #[test]
    fn merging_keeps_the_extremes_and_the_bound() {
        let mut h = History::default();
        for i in 0..200 {
            record_recommendation(&mut h, i * 15_000, (i % 7) as u32 + 1);
        }
        prune(&mut h, 200 * 15_000, 3_600_000);
        assert_eq!(h.recommendations.len(), MAX_RECOMMENDATIONS);
        assert_eq!(h.recommendations.iter().map(|r| r.low).min(), Some(1));
        assert_eq!(h.recommendations.iter().map(|r| r.high).max(), Some(7));
        // Buckets stay small: no entry swallowed a large part of the history.
        let times: Vec<i64> = h.recommendations.iter().map(|r| r.time).collect();
        let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(widest <= 5 * 15_000, "widest bucket {widest} ms");
    }

    #[test]
    fn merged_scale_events_keep_their_sum() {
        let mut h = History::default();
        for i in 0..100 {
            h.scale_events.push(ScaleEvent {
                time: i * 1_000,
                change: 1,
            });
        }
        prune(&mut h, 100_000, 1_800_000);
        assert_eq!(h.scale_events.len(), MAX_SCALE_EVENTS);
        assert_eq!(h.scale_events.iter().map(|e| e.change).sum::<i64>(), 100);
    }
}

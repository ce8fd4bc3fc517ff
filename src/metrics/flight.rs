//! One request for many askers: policies that send the same query to the same
//! source at about the same time share one answer. The first asker sends it; the
//! others wait for its answer, or take it as it is while it is younger than the
//! reuse window (a second: Prometheus' samples are seconds apart, so an answer that
//! young is the one a new request would get). Many policies on one query (a
//! cluster-wide signal, a template stamped per team) then cost the source, and the
//! operator, one request per window instead of one each.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long an answer is shared after its request was sent.
pub const REUSE: Duration = Duration::from_secs(1);

/// Requests in flight or just answered, by key.
pub struct Flights<T> {
    reuse: Duration,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    entries: HashMap<String, Entry<T>>,
    /// Answers older than the window are dropped when the map reaches this size.
    purge_at: usize,
}

struct Entry<T> {
    started: Instant,
    answer: watch::Receiver<Option<T>>,
}

/// Whether an answer came from this asker's own request or from another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Sent,
    Shared,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self::new(REUSE)
    }
}

impl<T: Clone> Flights<T> {
    pub fn new(reuse: Duration) -> Self {
        Self {
            reuse,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                purge_at: 64,
            }),
        }
    }

    /// The answer for `key`: another asker's if one was sent less than the reuse
    /// window ago (waiting for it if it is still in flight), else `send()`'s,
    /// which askers that come meanwhile share. An asker whose request is dropped
    /// before it is answered leaves nothing behind: those waiting on it send
    /// their own.
    pub async fn run<F, Fut>(&self, key: &str, send: F) -> (T, Origin)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let now = Instant::now();
        let (tx, rx) = {
            let mut inner = self.lock();
            let waiting = inner
                .entries
                .get(key)
                .filter(|e| now.saturating_duration_since(e.started) < self.reuse)
                .map(|e| e.answer.clone());
            match waiting {
                Some(rx) => (None, rx),
                None => {
                    if inner.entries.len() >= inner.purge_at {
                        let reuse = self.reuse;
                        inner
                            .entries
                            .retain(|_, e| now.saturating_duration_since(e.started) < reuse);
                        inner.purge_at = (inner.entries.len() * 2).max(64);
                    }
                    let (tx, rx) = watch::channel(None);
                    inner.entries.insert(
                        key.to_string(),
                        Entry {
                            started: now,
                            answer: rx.clone(),
                        },
                    );
                    (Some(tx), rx)
                }
            }
        };
        let Some(tx) = tx else {
            let mut rx = rx;
            if let Ok(answer) = rx.wait_for(Option::is_some).await
                && let Some(answer) = answer.as_ref()
            {
                return (answer.clone(), Origin::Shared);
            }
            // The request it waited for was dropped unanswered: its own.
            return (send().await, Origin::Sent);
        };
        let guard = Unanswered {
            flights: self,
            key,
            answer: &rx,
            armed: true,
        };
        let answer = send().await;
        tx.send_replace(Some(answer.clone()));
        guard.disarm();
        (answer, Origin::Sent)
    }

    /// Entries held (answered, in flight or expired and not yet purged).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a request's entry if it is dropped before its answer is sent, so
/// later askers do not wait on a request that will never be answered.
struct Unanswered<'a, T: Clone> {
    flights: &'a Flights<T>,
    key: &'a str,
    answer: &'a watch::Receiver<Option<T>>,
    armed: bool,
}

impl<T: Clone> Unanswered<'_, T> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<T: Clone> Drop for Unanswered<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut inner = self.flights.lock();
        if inner
            .entries
            .get(self.key)
            .is_some_and(|e| e.answer.same_channel(self.answer))
        {
            inner.entries.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the requests `send` would make; each answers with its number.
    fn sender(
        sent: &Arc<AtomicUsize>,
        delay: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>> {
        let sent = sent.clone();
        move || {
            Box::pin(async move {
                let n = sent.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                n
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn askers_at_the_same_time_share_one_request() {
        let flights = Arc::new(Flights::<usize>::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (flights, sent) = (flights.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("up", sender(&sent, Duration::from_millis(100)))
                    .await
            }));
        }
        let mut origins = Vec::new();
        for t in tasks {
            let (answer, origin) = t.await.expect("task");
            assert_eq!(answer, 1, "everyone has the first request's answer");
            origins.push(origin);
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        assert_eq!(origins.iter().filter(|o| **o == Origin::Sent).count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_reused_inside_the_window_and_not_after() {
        let flights = Flights::<usize>::default();
        let sent = Arc::new(AtomicUsize::new(0));
        let d = Duration::from_millis(10);
        assert_eq!(flights.run("q", sender(&sent, d)).await, (1, Origin::Sent));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            flights.run("q", sender(&sent, d)).await,
            (1, Origin::Shared)
        );
        tokio::time::advance(REUSE).await;
        assert_eq!(flights.run("q", sender(&sent, d)).await, (2, Origin::Sent));
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_are_different_requests() {
        let flights = Flights::<usize>::default();
        let sent = Arc::new(AtomicUsize::new(0));
        let d = Duration::from_millis(10);
        assert_eq!(flights.run("a", sender(&sent, d)).await.0, 1);
        assert_eq!(flights.run("b", sender(&sent, d)).await.0, 2);
        assert_eq!(flights.run("a", sender(&sent, d)).await.0, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_request_leaves_its_waiters_to_send_their_own() {
        let flights = Arc::new(Flights::<usize>::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (flights, sent) = (flights.clone(), sent.clone());
            tokio::spawn(async move {
                flights
                    .run("q", sender(&sent, Duration::from_secs(60)))
                    .await
            })
        };
        tokio::time::advance(Duration::from_millis(10)).await;
        let follower = {
            let (flights, sent) = (flights.clone(), sent.clone());
            tokio::spawn(async move {
                flights
                    .run("q", sender(&sent, Duration::from_millis(10)))
                    .await
            })
        };
        tokio::time::advance(Duration::from_millis(10)).await;
        leader.abort();
        let (answer, origin) = follower.await.expect("follower");
        assert_eq!((answer, origin), (2, Origin::Sent), "it sent its own");
        // And the dropped request's entry is gone: a new asker is not sent to wait on it.
        let (answer, origin) = flights
            .run("q", sender(&sent, Duration::from_millis(10)))
            .await;
        assert_eq!(origin, Origin::Sent);
        assert_eq!(answer, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_answers_are_purged_as_the_map_grows() {
        let flights = Flights::<usize>::default();
        let sent = Arc::new(AtomicUsize::new(0));
        for i in 0..64 {
            flights
                .run(&format!("q{i}"), sender(&sent, Duration::ZERO))
                .await;
        }
        assert_eq!(flights.len(), 64);
        tokio::time::advance(REUSE * 2).await;
        flights.run("fresh", sender(&sent, Duration::ZERO)).await;
        assert_eq!(flights.len(), 1, "only the fresh answer is left");
    }
}

//! The bot's view of whether Discord is there.
//!
//! After [`FAILURES_TO_OPEN`] answers in a row that say Discord is away (a
//! 5xx, a 408, a timeout, no connection) the breaker opens: the consumer
//! takes no new notification ([`Breaker::paused`]), the ones in hand wait,
//! and one of them is posted every [`PROBE_INTERVAL`] as a probe. The first
//! answer from Discord (a post accepted, a 429, a refusal) closes it, and
//! every waiting post goes, paced by the rate limits. A probe waits at most
//! [`PROBE_TIMEOUT`] for its answer, so a probe lost to an outage does not
//! hold up the next.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::metrics::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

/// Failures in a row that open the breaker: one lost answer is a blip,
/// three are an outage.
pub(crate) const FAILURES_TO_OPEN: u32 = 3;
/// Time between two probes while the breaker is open.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for a probe's answer.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a post may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Discord is there: post as usual.
    Post,
    /// Discord is away and this post is the probe.
    Probe,
}

/// Whether Discord is there, shared by every delivery of the bot.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    open: Arc<watch::Sender<bool>>,
    failures: Arc<AtomicU32>,
    /// When the next probe may go.
    next_probe: Arc<Mutex<Instant>>,
    /// `gamenight.discord.breaker.open`: 1 while open.
    state: Gauge<u64>,
}

impl Breaker {
    /// A closed breaker reporting its state on `state`.
    pub(crate) fn new(state: Gauge<u64>) -> Self {
        state.record(0, &[]);
        Self {
            open: Arc::new(watch::channel(false).0),
            failures: Arc::default(),
            next_probe: Arc::new(Mutex::new(Instant::now())),
            state,
        }
    }

    /// `true` while open: the consumer takes no new notification.
    pub(crate) fn paused(&self) -> watch::Receiver<bool> {
        self.open.subscribe()
    }

    pub(crate) fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Discord answered: close.
    pub(crate) fn answered(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open.send_replace(false) {
            self.state.record(0, &[]);
            tracing::info!("Discord answers again: taking notifications again");
        }
    }

    /// Discord did not answer (`reason`): open after enough in a row.
    pub(crate) fn failed(&self, reason: &str) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < FAILURES_TO_OPEN || self.is_open() {
            return;
        }
        *self.lock() = Instant::now() + PROBE_INTERVAL;
        if !self.open.send_replace(true) {
            self.state.record(1, &[]);
            tracing::warn!(
                reason,
                failures,
                "Discord is unavailable: taking no new notifications, probing every {PROBE_INTERVAL:?}"
            );
        }
    }

    /// Waits for this post's turn: at once while closed; while open, until
    /// it closes or the next probe is due and this post takes it.
    pub(crate) async fn turn(&self) -> Turn {
        let mut open = self.open.subscribe();
        loop {
            if !*open.borrow_and_update() {
                return Turn::Post;
            }
            let due = {
                let mut next = self.lock();
                let now = Instant::now();
                if *next <= now {
                    *next = now + PROBE_INTERVAL;
                    return Turn::Probe;
                }
                *next
            };
            tokio::select! {
                _ = open.changed() => {}
                () = tokio::time::sleep_until(due) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.next_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    fn breaker() -> Breaker {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        Breaker::new(meter.u64_gauge("test").build())
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_failures_in_a_row_and_probes_once_per_interval() {
        let breaker = breaker();
        let paused = breaker.paused();
        breaker.failed("500");
        breaker.answered();
        breaker.failed("500");
        breaker.failed("500");
        assert_eq!(breaker.turn().await, Turn::Post, "a blip does not open it");
        breaker.failed("500");
        assert!(*paused.borrow(), "three in a row open it");

        let start = Instant::now();
        let (first, second) = tokio::join!(breaker.turn(), breaker.turn());
        assert_eq!((first, second), (Turn::Probe, Turn::Probe));
        // One probe per interval, the first one interval after opening.
        assert_eq!(start.elapsed(), 2 * PROBE_INTERVAL);

        breaker.answered();
        assert!(!*paused.borrow());
        assert_eq!(breaker.turn().await, Turn::Post);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_waiting_for_its_probe_goes_as_soon_as_discord_answers() {
        let breaker = breaker();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.failed("timeout");
        }
        let waiting = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.turn().await }
        });
        tokio::time::sleep(PROBE_INTERVAL / 10).await;
        let start = Instant::now();
        breaker.answered();
        assert_eq!(waiting.await.unwrap(), Turn::Post);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

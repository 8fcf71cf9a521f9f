//! A background pass that runs when woken, on an interval otherwise, and
//! soon again while it fails: the shape of the outbox relay and the
//! notification scheduler.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::BackoffBuilder as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// First wait after a failed pass.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between failed passes, before jitter (which adds up to as
/// much again): a dependency that comes back is used again within a second.
/// A failing pass is a refused connection or a query, cheap to repeat.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::new()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs `pass` until `shutdown` is cancelled: whenever `wake` is notified,
/// every `interval` otherwise, and after a failure again within a second
/// (jittered exponential backoff, 100 ms to 500 ms before jitter). The first
/// failure and the recovery are logged with `what`, not every retry between.
/// A notification that arrives during a pass is kept, so no wake-up is lost.
pub async fn run<F, Fut, E>(
    what: &str,
    wake: &Notify,
    interval: Duration,
    shutdown: &CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut delays = backoff();
    let mut failing_since: Option<Instant> = None;
    let mut wait = interval;
    loop {
        tokio::select! {
            // A stop wins over a wake-up that arrived with it.
            biased;
            () = shutdown.cancelled() => return,
            // While failing, only the backoff decides when to try again.
            () = wake.notified(), if failing_since.is_none() => {}
            () = tokio::time::sleep(wait) => {}
        }
        match pass().await {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(failed_for = ?since.elapsed(), "{what} recovered");
                    delays = backoff();
                }
                wait = interval;
            }
            Err(err) => {
                wait = delays.next().unwrap_or(MAX_BACKOFF);
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!(error = %err, "{what} failed; retrying until it succeeds");
                } else {
                    tracing::debug!(error = %err, retry_in = ?wait, "{what} failed again");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_wake_runs_a_pass_at_once_and_failures_back_off() {
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let passes = Arc::new(AtomicU32::new(0));
        let task = {
            let (wake, shutdown, passes) = (wake.clone(), shutdown.clone(), passes.clone());
            tokio::spawn(async move {
                run(
                    "test pass",
                    &wake,
                    Duration::from_secs(3600),
                    &shutdown,
                    || {
                        let n = passes.fetch_add(1, Ordering::SeqCst) + 1;
                        async move { if n <= 2 { Err("down") } else { Ok(()) } }
                    },
                )
                .await;
            })
        };
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            1,
            "woken at once, not after the hour"
        );
        // Failing: retried after 100–200 ms (jittered), then 200–400 ms,
        // then it succeeds and goes back to waiting for a wake-up or the
        // interval.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_stop_wins_over_a_wake_up_that_arrived_with_it() {
        // An unbiased choice would run a pass half the time: 20 rounds make
        // a lucky pass through all of them a one-in-a-million event.
        for _ in 0..20 {
            let wake = Notify::new();
            wake.notify_one();
            let shutdown = CancellationToken::new();
            shutdown.cancel();
            let mut passes = 0;
            run(
                "test pass",
                &wake,
                Duration::from_secs(3600),
                &shutdown,
                || {
                    passes += 1;
                    async { Ok::<(), &str>(()) }
                },
            )
            .await;
            assert_eq!(passes, 0, "a pass ran after the stop");
        }
    }
}

//! `loadgen`: traffic worth looking at. Sends a realistic mix of requests
//! to the api ([`mix::MIX`]: games created, joined until full, left,
//! cancelled, read — cache hits and misses — and a share of bad requests)
//! at a target rate, for a duration or until stopped, shows progress, and
//! sums up every outcome with its latency percentiles and a trace.
//!
//! Each request is the root of a trace: an INTERNAL span named after the
//! operation (`join game`) around the HTTP CLIENT span whose context the
//! api continues, so Tempo shows loadgen → api → worker → bot.

pub mod mix;
pub mod stats;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use opentelemetry::trace::{Status, TraceContextExt};
use reqwest::Url;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use mix::{Games, Request};
use stats::{Outcome, Stats};

/// `service.name`, `service.version` and `service.namespace` of the generator's telemetry.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_namespace(service_runtime::SERVICE_NAMESPACE);

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// The api's base URL.
    pub target: Url,
    /// Requests started per second.
    pub rate: f64,
    /// How long to run; until stopped (SIGINT, SIGTERM) when `None`.
    pub duration: Option<Duration>,
    /// Most requests in flight at once: when the api is slower than the
    /// rate asks, the requests beyond are not sent and counted instead.
    pub concurrency: usize,
    /// Longest wait for one answer.
    pub timeout: Duration,
}

/// What a run did.
#[derive(Debug)]
pub struct Run {
    /// Outcomes and latencies.
    pub stats: Stats,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Requests not sent because `concurrency` were already in flight.
    pub not_sent: u64,
}

/// Everything the request tasks share.
struct Shared {
    client: reqwest::Client,
    target: Url,
    games: Mutex<Games>,
    stats: Mutex<Stats>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends the mix until `options.duration` has passed or `stop` is
/// cancelled, then waits for the requests in flight (up to the timeout).
pub async fn run(options: &Options, stop: CancellationToken) -> anyhow::Result<Run> {
    anyhow::ensure!(
        options.rate.is_finite() && options.rate > 0.0,
        "the rate must be a positive number of requests per second"
    );
    anyhow::ensure!(
        options.concurrency > 0,
        "the concurrency must be at least 1"
    );
    let shared = Arc::new(Shared {
        client: reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .context("cannot build the HTTP client")?,
        target: options.target.clone(),
        games: Mutex::new(Games::default()),
        stats: Mutex::new(Stats::default()),
    });
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let started = Instant::now();
    let mut progress = Progress::start(options.duration, started);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
    // Behind schedule (a paused process), start the missed requests at once
    // rather than dropping them: the rate is kept over the run.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut not_sent = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        let task = shared.clone();
        tokio::spawn(async move {
            send_one(&task).await;
            drop(permit);
        });
        progress.update(
            &shared.stats,
            options.concurrency - permits.available_permits(),
            not_sent,
        );
    }
    // Let the requests in flight finish.
    let all = u32::try_from(options.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(options.timeout, permits.acquire_many(all)).await;
    progress.finish();
    let elapsed = started.elapsed();
    let stats = std::mem::take(&mut *lock(&shared.stats));
    Ok(Run {
        stats,
        elapsed,
        not_sent,
    })
}

/// Plans, sends and records one request, inside its root span.
async fn send_one(shared: &Shared) {
    let request = {
        let mut rng = rand::rng();
        let operation = Games::draw(&mut rng);
        lock(&shared.games).plan(operation, &mut rng)
    };
    let span = tracing::info_span!(
        "loadgen operation",
        otel.name = request.operation.name(),
        loadgen.operation = request.operation.name(),
    );
    let trace_id = span.context().span().span_context().trace_id();
    let started = Instant::now();
    let (outcome, body) = send(shared, &request).instrument(span.clone()).await;
    let latency = started.elapsed();
    if outcome.is_failure() {
        span.set_status(Status::error(outcome.to_string()));
    }
    if let Outcome::Status(status) = outcome {
        lock(&shared.games).learn(&request, status, body.as_ref());
    }
    let trace = if trace_id == opentelemetry::TraceId::INVALID {
        "-".to_owned()
    } else {
        trace_id.to_string()
    };
    lock(&shared.stats).record(request.operation, outcome, latency, &trace);
}

async fn send(shared: &Shared, request: &Request) -> (Outcome, Option<serde_json::Value>) {
    let Ok(url) = shared.target.join(&request.path) else {
        return (Outcome::NoAnswer("request"), None);
    };
    let mut builder = shared.client.request(request.method.clone(), url);
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let Ok(http_request) = builder.build() else {
        return (Outcome::NoAnswer("request"), None);
    };
    match telemetry::spans::send_traced(&shared.client, http_request, Some(request.template)).await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json::<serde_json::Value>().await.ok();
            (Outcome::Status(status), body)
        }
        Err(err) if err.is_timeout() => (Outcome::NoAnswer("timeout"), None),
        Err(err) if err.is_connect() => (Outcome::NoAnswer("connect"), None),
        Err(_) => (Outcome::NoAnswer("request"), None),
    }
}

/// A live progress bar on a terminal; a log line every ten seconds
/// elsewhere (compose logs, CI).
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_update: Option<Instant>,
}

/// How often the bar's figures change.
const DRAW_EVERY: Duration = Duration::from_millis(250);
/// How often progress is logged when there is no terminal to draw on.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn start(duration: Option<Duration>, started: Instant) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match duration {
                Some(d) => (
                    ProgressBar::new(d.as_secs().max(1)),
                    "{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{elapsed_precise} {spinner} {msg}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            started,
            last_update: None,
        }
    }

    /// Shows the figures so far, at most every [`DRAW_EVERY`] (every
    /// [`LOG_EVERY`] as a log line); the stats are read only then.
    fn update(&mut self, stats: &Mutex<Stats>, in_flight: usize, not_sent: u64) {
        let every = if self.bar.is_some() {
            DRAW_EVERY
        } else {
            LOG_EVERY
        };
        let since = self.last_update.unwrap_or(self.started);
        if since.elapsed() < every {
            return;
        }
        self.last_update = Some(Instant::now());
        let elapsed = self.started.elapsed();
        let message = {
            let stats = lock(stats);
            format!(
                "{} done, {:.1}/s, {in_flight} in flight, p50 {:.1} ms, p99 {:.1} ms, {} failed{}",
                stats.done(),
                stats.done() as f64 / elapsed.as_secs_f64().max(0.001),
                stats.quantile(0.5).as_secs_f64() * 1000.0,
                stats.quantile(0.99).as_secs_f64() * 1000.0,
                stats.failures(),
                if not_sent > 0 {
                    format!(", {not_sent} not sent")
                } else {
                    String::new()
                },
            )
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(message);
            }
            None => tracing::info!(progress = %message, "loadgen running"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Parses `90s`, `5m`, `2h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 5m or 2h"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("1.5m").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("ms, s, m or h"));
    }
}

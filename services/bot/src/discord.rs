//! Discord, as the bot posts to it: the webhook (or a dry run standing in
//! for it), and the webhook fault switches that answer in Discord's place.
//!
//! A post first waits for its turn: while Discord is away, for the
//! [`Breaker`] to close or to be the next probe; then for the rate limit
//! ([`Pacer`]). Only the waits end at the notification's deadline or at
//! shutdown; a post in flight is always seen through, so that Discord never
//! takes a message the bot then posts again. Discord's answer decides what
//! follows: taken; refused for good (a 4xx other than 408 and 429: the
//! message's failure); rate-limited (every post waits the `Retry-After`); or
//! lost (5xx, 408, timeout, no connection: posted again after a backoff,
//! and the breaker counts it). None of these spends an attempt.
//!
//! The webhook's URL is a credential (its path holds the token): it never
//! appears in a log, a span (`url.full` carries [`WEBHOOK_TEMPLATE`]), an
//! error or `Debug` output, and no trace context is sent to Discord.

use std::pin::pin;
use std::time::Duration;

use backon::BackoffBuilder as _;
use broker::consumer::Failure;
use events::Notification;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use reqwest::StatusCode;
use service_runtime::CancellationToken;
use service_runtime::fault::Fault;
use telemetry::spans::{http_client_span, record_response, send_traced_to_third_party};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::HTTP_TIMEOUT;
use crate::breaker::{Breaker, PROBE_INTERVAL, PROBE_TIMEOUT, Turn};
use crate::config::{Destination, Faults};
use crate::pacing::{Pacer, RateLimited, Scope};

/// How the webhook's URL appears in spans: its path holds the token.
const WEBHOOK_TEMPLATE: &str = "/api/webhooks/{id}/{token}";
/// A wait for the rate limiter's go-ahead (a message to its task) or for
/// a post in flight on the same bucket this short goes unreported.
const UNNOTICED_WAIT: Duration = Duration::from_millis(5);
/// The host a fault switch's stand-in webhook call names in dry run.
const DRY_RUN_WEBHOOK: &str = "https://discord.com/api/webhooks/0/dry-run";

/// Where messages go.
#[derive(Clone)]
enum Webhook {
    Discord(reqwest::Url),
    DryRun,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: its path is the webhook's credential.
        match self {
            Self::Discord(_) => f.write_str("Discord(<redacted>)"),
            Self::DryRun => f.write_str("DryRun"),
        }
    }
}

/// What became of a message handed to [`Discord::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Discord took it; the id it gave the message, when its answer said.
    Posted { message_id: Option<String> },
    /// Logged, in dry run.
    DryRun,
    /// Its deadline passed while Discord was away or pacing us: not posted.
    Expired,
}

/// What one post got back.
#[derive(Debug)]
enum Answer {
    /// Taken, with the message's id when Discord's answer gave it.
    Posted(Option<String>),
    /// 429: Discord asks us to slow down.
    RateLimited(RateLimited),
    /// No answer from Discord itself: a 5xx or 408, a timeout, no
    /// connection. Discord is away, the message is fine.
    Away(String),
    /// Any other 4xx: Discord will never take this message.
    Refused(StatusCode),
    /// The request could not even be built: nothing was sent.
    Unsendable,
}

/// The bot's instruments for Discord.
#[derive(Debug, Clone)]
struct Instruments {
    /// `gamenight.discord.wait`: time a post waited, by `reason`.
    waits: Histogram<f64>,
    /// `gamenight.discord.rate_limited`: 429s, by `scope`.
    rate_limited: Counter<u64>,
    /// `gamenight.discord.invalid_requests`: answers Cloudflare counts
    /// toward its ban (401, 403, 429 other than `shared`).
    invalid: Counter<u64>,
}

/// Posts messages to the webhook, or logs them in dry run.
#[derive(Debug, Clone)]
pub(crate) struct Discord {
    client: reqwest::Client,
    webhook: Webhook,
    pacer: Pacer,
    breaker: Breaker,
    /// First wait before posting again after a lost answer.
    retry_backoff: Duration,
    instruments: Instruments,
    /// `FAULT_WEBHOOK_FAILURE_PERCENT`: answered 503 in Discord's place.
    failure: Option<Fault>,
    /// `FAULT_WEBHOOK_RATE_LIMIT_PERCENT`: answered 429 in Discord's place.
    rate_limit: Option<Fault>,
}

impl Discord {
    /// Posts to `destination` through `client`, with the webhook fault
    /// switches of `faults`, waiting `retry_backoff` (doubling, up to a
    /// second) before posting again after a lost answer.
    pub(crate) fn new(
        client: reqwest::Client,
        destination: &Destination,
        faults: &Faults,
        retry_backoff: Duration,
        meter: &Meter,
    ) -> Self {
        let (webhook, webhook_id) = match destination {
            Destination::Discord(url) => {
                let mut url = secrecy::ExposeSecret::expose_secret(url).clone();
                // `/api/webhooks/{id}/{token}`: the id names the bucket.
                let id = url
                    .path_segments()
                    .and_then(|segments| segments.rev().nth(1))
                    .unwrap_or_default()
                    .to_owned();
                // Discord then answers 200 with the message it created, whose
                // id goes into the delivery record.
                url.query_pairs_mut().append_pair("wait", "true");
                (Webhook::Discord(url), id)
            }
            Destination::DryRun => {
                tracing::warn!("BOT_DRY_RUN=true: messages are logged, not sent to Discord");
                (Webhook::DryRun, "dry-run".to_owned())
            }
        };
        let instruments = Instruments {
            waits: meter
                .f64_histogram("gamenight.discord.wait")
                .with_unit("s")
                .with_description(
                    "Time a post waited (over 5 ms) before going to Discord, by reason: \
                     rate_limit (its bucket spent, or a 429's Retry-After), \
                     outage (Discord unavailable).",
                )
                .with_boundaries(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                ])
                .build(),
            rate_limited: meter
                .u64_counter("gamenight.discord.rate_limited")
                .with_unit("{response}")
                .with_description("429 answers from Discord, by scope: user, global, shared.")
                .build(),
            invalid: meter
                .u64_counter("gamenight.discord.invalid_requests")
                .with_unit("{response}")
                .with_description(
                    "Answers Discord counts as invalid requests (401, 403, 429 but \
                     shared): 10,000 in 10 minutes ban the IP for a while.",
                )
                .build(),
        };
        // Every series from the start: Prometheus sees no increase in a
        // counter's first sample, so a first 429 counted before the first
        // export would never show.
        for scope in [Scope::User, Scope::Global, Scope::Shared] {
            let scope = KeyValue::new("scope", scope.as_str());
            instruments.rate_limited.add(0, &[scope]);
        }
        for status in [401, 403, 429] {
            let status = KeyValue::new("http.response.status_code", status);
            instruments.invalid.add(0, &[status]);
        }
        Self {
            client,
            webhook,
            pacer: Pacer::new(&webhook_id),
            breaker: Breaker::new(
                meter
                    .u64_gauge("gamenight.discord.breaker.open")
                    .with_description(
                        "1 while Discord is unavailable: no new notification is taken, \
                         one is posted every second as a probe.",
                    )
                    .build(),
            ),
            retry_backoff,
            instruments,
            failure: faults.webhook_failure.clone(),
            rate_limit: faults.webhook_rate_limit.clone(),
        }
    }

    /// `true` while Discord is unavailable: the consumer takes no new
    /// notification.
    pub(crate) fn paused(&self) -> tokio::sync::watch::Receiver<bool> {
        self.breaker.paused()
    }

    /// Sends `body`, the rendered `notification`: posted to the webhook, or
    /// logged in dry run. Discord being away or pacing us is waited out,
    /// spending no attempt, until `deadline` (then [`Sent::Expired`]) or
    /// `shutdown` (then the notification goes back to the queue). Only a
    /// refusal (a 4xx other than 408 and 429) is the message's failure.
    pub(crate) async fn send(
        &self,
        notification: &Notification,
        body: &serde_json::Value,
        deadline: Instant,
        shutdown: &CancellationToken,
    ) -> Result<Sent, Failure> {
        let mut backoff = backon::ExponentialBuilder::new()
            .with_min_delay(self.retry_backoff)
            .with_max_delay(PROBE_INTERVAL)
            .with_jitter()
            .without_max_times()
            .build();
        // Before posting again after a lost answer, while the breaker is
        // still closed.
        let mut backing_off = Duration::ZERO;
        loop {
            // Waits only: a post in flight is never abandoned, or Discord
            // could take a message we then post again.
            let wait = async {
                if !backing_off.is_zero() {
                    tokio::time::sleep(backing_off).await;
                }
                let turn = self.waited("outage", self.breaker.turn()).await;
                let permit = match turn {
                    Turn::Post => Some(self.waited("rate_limit", self.pacer.acquire()).await),
                    Turn::Probe => None,
                };
                (turn, permit)
            };
            let (turn, permit) = tokio::select! {
                biased;
                // Back to the queue.
                () = shutdown.cancelled() => {
                    return Err(Failure::unavailable("shutting down while waiting for Discord"));
                }
                () = tokio::time::sleep_until(deadline) => return Ok(Sent::Expired),
                ready = wait => ready,
            };
            if turn == Turn::Post && self.breaker.is_open() {
                // Opened while this post waited for its permit: wait for
                // the probe instead (the permit is handed back unused).
                continue;
            }
            let answer = match self.injected_answer() {
                Some(answer) => answer,
                None => match &self.webhook {
                    Webhook::DryRun => {
                        dry_run(notification);
                        return Ok(Sent::DryRun);
                    }
                    Webhook::Discord(url) => {
                        let timeout = match turn {
                            Turn::Post => HTTP_TIMEOUT,
                            Turn::Probe => PROBE_TIMEOUT,
                        };
                        self.post(url, body, timeout, permit).await
                    }
                },
            };
            backing_off = Duration::ZERO;
            match answer {
                Answer::Posted(message_id) => {
                    self.breaker.answered();
                    tracing::info!(
                        kind = notification.kind.as_str(),
                        "notification delivered to Discord"
                    );
                    return Ok(Sent::Posted { message_id });
                }
                Answer::Refused(status) => {
                    self.breaker.answered();
                    return Err(Failure::Permanent(format!(
                        "webhook refused the message: {status}"
                    )));
                }
                Answer::Unsendable => {
                    return Err(Failure::Permanent(
                        "cannot build the webhook request".into(),
                    ));
                }
                Answer::RateLimited(limited) => {
                    self.breaker.answered();
                    self.pacer.pause(limited.retry_after);
                    let scope = limited.scope.as_str();
                    self.instruments
                        .rate_limited
                        .add(1, &[KeyValue::new("scope", scope)]);
                    tracing::warn!(
                        scope,
                        retry_after = ?limited.retry_after,
                        "Discord rate-limited the post; every post waits"
                    );
                }
                Answer::Away(reason) => {
                    self.breaker.failed(&reason);
                    tracing::warn!(reason, "Discord did not answer; the post waits for it");
                    // Once open, the breaker paces the probes.
                    if !self.breaker.is_open() {
                        backing_off = backoff.next().unwrap_or(PROBE_INTERVAL);
                    }
                }
            }
        }
    }

    /// Runs `wait`; one that takes longer than [`UNNOTICED_WAIT`] is a
    /// span of the trace (from then on) and a `gamenight.discord.wait`
    /// sample with `reason`.
    async fn waited<T>(&self, reason: &'static str, wait: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let mut wait = pin!(wait);
        if let Ok(ready) = tokio::time::timeout(UNNOTICED_WAIT, wait.as_mut()).await {
            return ready;
        }
        let span = tracing::info_span!("wait for discord", gamenight.discord.wait.reason = reason);
        let ready = wait.instrument(span).await;
        self.instruments.waits.record(
            start.elapsed().as_secs_f64(),
            &[KeyValue::new("reason", reason)],
        );
        ready
    }

    /// A webhook fault switch standing in for Discord's answer, in dry run
    /// too: the call is traced as if the webhook had answered, and nothing
    /// is posted. The answer then takes the path a real one does.
    fn injected_answer(&self) -> Option<Answer> {
        let fired = |fault: &Option<Fault>| fault.as_ref().filter(|f| f.fires()).cloned();
        let (fault, status, answer) = if let Some(fault) = fired(&self.failure) {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            (
                fault,
                status,
                Answer::Away(format!("webhook answered {status}")),
            )
        } else if let Some(fault) = fired(&self.rate_limit) {
            let limited = RateLimited {
                scope: Scope::User,
                retry_after: Duration::from_secs(1),
            };
            (
                fault,
                StatusCode::TOO_MANY_REQUESTS,
                Answer::RateLimited(limited),
            )
        } else {
            return None;
        };
        let url = match &self.webhook {
            Webhook::Discord(url) => url.clone(),
            Webhook::DryRun => reqwest::Url::parse(DRY_RUN_WEBHOOK).ok()?,
        };
        let span = http_client_span(&reqwest::Method::POST, &url, Some(WEBHOOK_TEMPLATE));
        span.in_scope(|| fault.report(&format!("the webhook answers {status}; nothing is posted")));
        record_response(&span, status);
        Some(answer)
    }

    /// Posts `body` to the webhook, waiting up to `timeout` for the answer,
    /// and hands the answer's rate-limit headers to the pacer.
    async fn post(
        &self,
        url: &reqwest::Url,
        body: &serde_json::Value,
        timeout: Duration,
        permit: Option<twilight_http_ratelimiting::Permit>,
    ) -> Answer {
        let request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(timeout)
            .build();
        let Ok(request) = request else {
            return Answer::Unsendable;
        };
        // Errors from reqwest name the URL, which holds the token: report
        // the kind of failure only. No answer: the permit goes back unused.
        let response =
            match send_traced_to_third_party(&self.client, request, Some(WEBHOOK_TEMPLATE)).await {
                Ok(response) => response,
                Err(err) if err.is_timeout() => return Answer::Away("webhook timed out".into()),
                Err(_) => return Answer::Away("webhook unreachable".into()),
            };
        let status = response.status();
        let limited = match permit {
            Some(permit) => self.pacer.complete(permit, status, response.headers()),
            None => crate::pacing::limited(status, response.headers()),
        };
        if matches!(status.as_u16(), 401 | 403)
            || limited.is_some_and(|limited| limited.scope != Scope::Shared)
        {
            self.instruments.invalid.add(
                1,
                &[KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                )],
            );
        }
        if status.is_success() {
            // Posted. The id only enriches the record: an answer that cannot
            // be read must not make us post again.
            let posted = response.json::<PostedMessage>().await.inspect_err(|_| {
                tracing::warn!(
                    status = status.as_u16(),
                    "Discord's answer carries no message id"
                );
            });
            return Answer::Posted(posted.ok().map(|message| message.id));
        }
        match limited {
            Some(limited) => Answer::RateLimited(limited),
            None if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() => {
                Answer::Away(format!("webhook answered {status}"))
            }
            None => Answer::Refused(status),
        }
    }
}

/// Logs the message that would have been posted, in a span shaped like
/// the real call, so the trace looks the same with or without a webhook.
fn dry_run(notification: &Notification) {
    tracing::info_span!("discord webhook (dry run)", otel.kind = "internal").in_scope(|| {
        tracing::info!(
            kind = notification.kind.as_str(),
            notification_id = %notification.notification_id,
            game_id = %notification.game_id,
            "dry run: would post to Discord"
        );
    });
}

/// The part of Discord's answer to `?wait=true` the bot keeps.
#[derive(Debug, serde::Deserialize)]
struct PostedMessage {
    /// The message's snowflake, a 64-bit number sent as a string.
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_never_shows_in_debug_output() {
        let webhook = Webhook::Discord(
            "https://discord.test/api/webhooks/1/s3cret"
                .parse()
                .unwrap(),
        );
        assert_eq!(format!("{webhook:?}"), "Discord(<redacted>)");
    }
}

//! The `bot` service: delivers notifications to a Discord webhook, once.
//!
//! For each notification it claims the notification in PostgreSQL, fetches
//! the game from the api (a traced HTTP call carrying `traceparent`), renders
//! a Discord message, posts it with `?wait=true` and records the message id
//! Discord answers with. A notification delivered again inside the system (at
//! least once is the queue's promise) finds its record and is acknowledged
//! without a second post; a notification about a cancelled game (events can
//! arrive out of order) is acknowledged without posting, except the
//! cancellation itself.
//!
//! Only what belongs to the message counts against it: a 4xx from Discord
//! (other than 408 and 429) and a game the api does not know are
//! dead-lettered at once, a 500 from Discord after `BOT_MAX_ATTEMPTS`. A
//! dependency that is down or asks us to slow down (PostgreSQL unreachable;
//! the api or Discord unreachable, timing out, answering 408, 429, 502, 503
//! or 504, any 5xx from the api) is waited out, honouring `Retry-After`: the
//! notification goes back on the queue, never to the dead letters.
//!
//! # What "once" leaves open
//! The post and its record cannot be one transaction. If recording fails
//! after Discord accepted the message, the bot keeps retrying the record
//! (never the post) until it succeeds or the bot shuts down. Two windows
//! remain where a notification can be posted twice: the bot is killed (or
//! its host dies) after Discord accepted the message and before the record
//! commits; or the post's answer is lost (a timeout, a dropped connection)
//! after Discord accepted it, and the retry posts again. Discord webhooks
//! take no idempotency key that would close them.
//!
//! `BOT_DRY_RUN=true` logs the message instead of posting it; without it
//! `DISCORD_WEBHOOK_URL` is required.
//!
//! # Layout
//! - [`config`]: the command line: settings, each also set by its
//!   environment variable, and subcommands.
//! - [`deliveries`]: the record of what was posted.
//! - [`render`]: the Discord message.
//! - [`Bot`]: consuming, fetching, delivering.

pub mod config;
pub mod deliveries;
pub mod render;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use broker::consumer::{self, Failure, Message, Settings};
use broker::{Broker, QueueSpec, Topology};
use chrono::Utc;
use events::{Notification, NotificationKind};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use service_runtime::CancellationToken;
use service_runtime::fault::Fault;
use sqlx::PgPool;
use telemetry::db::DbError as _;
use telemetry::spans::{
    http_client_span, record_error, record_response, send_traced, send_traced_to_third_party,
};
use tracing::Instrument;

pub use config::Config;
use config::Destination;
use deliveries::{Claim, Deliveries};
use render::{GameStatus, GameView};

/// `service.name`, `service.version` and `service.namespace` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_namespace(service_runtime::SERVICE_NAMESPACE);

/// How the webhook's URL appears in spans: its path holds the token.
const WEBHOOK_TEMPLATE: &str = "/api/webhooks/{id}/{token}";
/// The host a fault switch's stand-in webhook call names in dry run.
const DRY_RUN_WEBHOOK: &str = "https://discord.com/api/webhooks/0/dry-run";
/// Longest wait for an answer from the api or the webhook.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait a `Retry-After` may impose on one attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest wait between attempts to record a delivery already posted.
const MAX_RECORD_BACKOFF: Duration = Duration::from_secs(5);

/// The bot could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `RABBITMQ_URL` could not be used.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The health server failed.
    #[error("health server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Where delivered messages go.
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

/// The delivery side, shared by every message.
#[derive(Debug, Clone)]
struct Delivery {
    client: reqwest::Client,
    api_base_url: reqwest::Url,
    webhook: Webhook,
    deliveries: Deliveries,
    /// First wait between attempts to record a posted delivery.
    record_backoff: Duration,
    faults: config::Faults,
    delivered: Counter<u64>,
    lag: Histogram<f64>,
}

/// What became of a notification that needs no retry: the `outcome` of
/// `gamenight.notifications.delivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// Posted to Discord.
    Sent,
    /// Logged, in dry run.
    DryRun,
    /// Delivered before: acknowledged without posting again.
    Duplicate,
    /// About a game that was cancelled meanwhile: acknowledged, not posted.
    Skipped,
}

impl Delivered {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::DryRun => "dry_run",
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
        }
    }
}

/// The bot, wired but not yet running.
#[derive(Debug)]
pub struct Bot {
    broker: Arc<Broker>,
    pool: PgPool,
    retention: schema::retention::Retention,
    settings: Settings,
    delivery: Delivery,
}

impl Bot {
    /// Wires the bot from `config`. Connects lazily.
    pub fn new(config: &Config, meter: &Meter) -> Result<Self, StartError> {
        let (pool, db) = schema::connect_lazy(
            config.database.database_url.expose_secret(),
            config.database.database_pool_size,
            meter,
        );
        let queue = QueueSpec::bound(
            &config.queue,
            &config.notifications_exchange,
            events::NOTIFICATION_PATTERN,
        );
        let broker = Arc::new(Broker::new(
            config.rabbitmq.rabbitmq_url.to_secret_string(),
            Topology {
                exchanges: vec![config.notifications_exchange.clone()],
                queues: vec![queue.clone()],
            },
            meter,
        )?);
        let webhook = match &config.destination {
            Destination::Discord(url) => {
                let mut url = url.expose_secret().clone();
                // Discord then answers 200 with the message it created, whose
                // id goes into the delivery record.
                url.query_pairs_mut().append_pair("wait", "true");
                Webhook::Discord(url)
            }
            Destination::DryRun => {
                tracing::warn!("BOT_DRY_RUN=true: messages are logged, not sent to Discord");
                Webhook::DryRun
            }
        };
        Ok(Self {
            broker,
            retention: schema::retention::Retention::new(
                pool.clone(),
                db.clone(),
                &[schema::retention::DELIVERIES],
                config.retention.retention,
            ),
            pool: pool.clone(),
            settings: Settings {
                queue,
                prefetch: config.consumer.prefetch,
                concurrency: config.consumer.concurrency.into(),
                max_attempts: config.consumer.max_attempts,
                initial_backoff: config.consumer.retry_backoff,
                max_backoff: MAX_RETRY_AFTER,
            },
            delivery: Delivery {
                client: reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?,
                api_base_url: config.api_base_url.clone(),
                webhook,
                deliveries: Deliveries::new(pool, db),
                record_backoff: config.consumer.retry_backoff,
                faults: config.faults.clone(),
                delivered: meter
                    .u64_counter("gamenight.notifications.delivered")
                    .with_unit("{notification}")
                    .with_description(
                        "Notifications handled, by kind and outcome: sent, dry_run, \
                         duplicate (delivered before, not posted again), skipped (game \
                         cancelled), rejected (dead-lettered), retried.",
                    )
                    .build(),
                lag: meter
                    .f64_histogram("gamenight.notification.delivery_lag")
                    .with_unit("s")
                    .with_description("Time from a notification being due to its delivery.")
                    .with_boundaries(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
                    .build(),
            },
        })
    }

    /// Consumes notifications and serves `/healthz` until `shutdown`; the
    /// message in hand is finished (acked, requeued or dead-lettered) first.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        meter: &Meter,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let delivery = self.delivery.clone();
        let stop = shutdown.clone();
        let consumer = consumer::run(
            self.broker.clone(),
            self.settings.clone(),
            meter,
            shutdown.clone(),
            move |message| {
                let delivery = delivery.clone();
                let stop = stop.clone();
                async move { delivery.deliver(message, &stop).await }
            },
        );
        let broker = self.broker.clone();
        let pool = self.pool.clone();
        let health = service_runtime::health_routes().route(
            "/readyz",
            axum::routing::get(move || {
                let broker = broker.clone();
                let pool = pool.clone();
                async move {
                    let (rabbitmq, postgresql) = tokio::join!(
                        service_runtime::check(broker.is_ready()),
                        service_runtime::check(schema::is_ready(&pool)),
                    );
                    service_runtime::readiness(
                        &[("rabbitmq", rabbitmq), ("postgresql", postgresql)],
                        &[],
                    )
                }
            }),
        );
        let retention = self.retention.clone().run(shutdown.clone());
        let (served, (), ()) = tokio::join!(
            service_runtime::serve(listener, health, shutdown),
            consumer,
            retention
        );
        Ok(served?)
    }
}

impl Delivery {
    /// Handles one message: delivered (or acknowledged as a duplicate or
    /// skipped) is `Ok`; otherwise the failure for the consumer to act on,
    /// with the wait a server asked for.
    async fn deliver(&self, message: Message, shutdown: &CancellationToken) -> Result<(), Failure> {
        let notification: Notification = serde_json::from_slice(&message.body)
            .map_err(|err| Failure::Permanent(format!("malformed notification: {err}")))?;
        let kind = notification.kind.as_str();
        let result = self.deliver_notification(&notification, shutdown).await;
        let outcome = match &result {
            Ok(delivered) => delivered.as_str(),
            Err(Failure::Permanent(_)) => "rejected",
            Err(_) => "retried",
        };
        self.delivered.add(
            1,
            &[
                KeyValue::new("kind", kind),
                KeyValue::new("outcome", outcome),
            ],
        );
        if let Ok(Delivered::Sent | Delivered::DryRun) = result {
            let lag = (Utc::now() - notification.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.lag.record(lag, &[KeyValue::new("kind", kind)]);
        }
        result.map(|_| ())
    }

    async fn deliver_notification(
        &self,
        notification: &Notification,
        shutdown: &CancellationToken,
    ) -> Result<Delivered, Failure> {
        let id = notification.notification_id;
        // Whether it was delivered before cannot be known without the
        // database: wait for it rather than risk a second post.
        let claim = match self.deliveries.claim(id).await {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                tracing::info!(
                    notification.id = %id,
                    kind = notification.kind.as_str(),
                    "delivered before; not posted again"
                );
                return Ok(Delivered::Duplicate);
            }
            Err(err) if err.is_transient() => {
                return Err(Failure::unavailable(
                    "PostgreSQL unavailable: cannot tell whether the notification was delivered",
                ));
            }
            // Not an outage (a bug, a schema out of step): retried, then
            // dead-lettered. Nothing was posted.
            Err(err) => {
                return Err(Failure::transient(format!(
                    "cannot claim the notification: database error {}: {}",
                    err.error_type(),
                    err.describe()
                )));
            }
        };
        let game = self.fetch_game(notification).await?;
        if game.status == GameStatus::Cancelled && notification.kind != NotificationKind::Cancelled
        {
            tracing::info!(
                notification.id = %id,
                kind = notification.kind.as_str(),
                "the game was cancelled; not posted"
            );
            claim.release().await;
            return Ok(Delivered::Skipped);
        }
        let body = render::discord_message(notification, &game);
        if let Some(failure) = self.injected_webhook_failure() {
            return Err(failure);
        }
        let (delivered, message_id) = match &self.webhook {
            Webhook::DryRun => {
                // Recorded like the real call would be, so the trace has the
                // same shape with or without a webhook.
                tracing::info_span!("discord webhook (dry run)", otel.kind = "internal").in_scope(
                    || {
                        tracing::info!(
                            kind = notification.kind.as_str(),
                            notification_id = %notification.notification_id,
                            game_id = %notification.game_id,
                            "dry run: would post to Discord"
                        );
                    },
                );
                (Delivered::DryRun, None)
            }
            Webhook::Discord(url) => {
                let message_id = self.post(url, &body).await?;
                tracing::info!(
                    kind = notification.kind.as_str(),
                    "notification delivered to Discord"
                );
                (Delivered::Sent, message_id)
            }
        };
        self.record(claim, id, message_id.as_deref(), shutdown)
            .await;
        Ok(delivered)
    }

    /// Records a posted delivery. It was posted: whatever happens here, the
    /// notification is acknowledged and never posted again by this bot. A
    /// record that fails (PostgreSQL down) is retried until it succeeds or
    /// the bot shuts down.
    async fn record(
        &self,
        claim: Claim,
        id: uuid::Uuid,
        message_id: Option<&str>,
        shutdown: &CancellationToken,
    ) {
        if self.deliveries.complete(claim, message_id).await.is_ok() {
            return;
        }
        // The claim went with its connection; record the delivery anew.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.record_backoff)
            .with_max_delay(MAX_RECORD_BACKOFF)
            .with_jitter()
            .without_max_times();
        let recorded = (|| self.deliveries.record(id, message_id))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|err, wait| {
                tracing::warn!(
                    notification.id = %id,
                    error.type = %err.error_type(),
                    error = %err.describe(),
                    retry_in = ?wait,
                    "posted, but PostgreSQL cannot record it yet; retrying the record"
                );
            });
        tokio::select! {
            _ = recorded => {
                tracing::info!(notification.id = %id, "delivery recorded");
            }
            () = shutdown.cancelled() => {
                tracing::error!(
                    notification.id = %id,
                    "shutting down with a delivery posted but not recorded: \
                     if the notification is published again, it will be posted again"
                );
            }
        }
    }

    /// `GET /games/{id}` on the api, as a traced client call.
    async fn fetch_game(&self, notification: &Notification) -> Result<GameView, Failure> {
        let url = self
            .api_base_url
            .join(&format!("games/{}", notification.game_id))
            .map_err(|err| Failure::Permanent(format!("cannot build the game URL: {err}")))?;
        if let Some(fault) = self.faults.api_timeout.as_ref().filter(|f| f.fires()) {
            // Traced as the real call would be: a GET that gets no answer
            // within the client's timeout.
            let span = http_client_span(&reqwest::Method::GET, &url, None);
            async {
                fault.report("the call to the api times out");
                tokio::time::sleep(HTTP_TIMEOUT).await;
            }
            .instrument(span.clone())
            .await;
            let timeout = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within the timeout (fault injected)",
            );
            record_error(&span, "timeout", &timeout);
            return Err(Failure::unavailable(format!("api unreachable: {timeout}")));
        }
        let request = self
            .client
            .get(url)
            .build()
            .map_err(|err| Failure::Permanent(err.to_string()))?;
        let response = send_traced(&self.client, request, None)
            .await
            .map_err(|err| Failure::unavailable(format!("api unreachable: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|err| {
                // Without the URL: the reason is logged and put on spans.
                let err = err.without_url();
                Failure::unavailable(format!("unreadable game from the api: {err}"))
            });
        }
        Err(api_failure(status, retry_after(response.headers())))
    }

    /// A webhook fault switch standing in for Discord's answer, in dry run
    /// too: the call is traced as if the webhook had answered, and nothing
    /// is posted. The failure then takes the path a real one does.
    fn injected_webhook_failure(&self) -> Option<Failure> {
        let fired = |fault: &Option<Fault>| fault.as_ref().filter(|f| f.fires()).cloned();
        let (fault, status, retry_after) = if let Some(fault) = fired(&self.faults.webhook_failure)
        {
            (fault, StatusCode::SERVICE_UNAVAILABLE, None)
        } else if let Some(fault) = fired(&self.faults.webhook_rate_limit) {
            (
                fault,
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(1)),
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
        Some(webhook_failure(status, retry_after))
    }

    /// Posts `body` to the webhook and classifies the answer; on success,
    /// the id Discord gave the message.
    async fn post(
        &self,
        url: &reqwest::Url,
        body: &serde_json::Value,
    ) -> Result<Option<String>, Failure> {
        let request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .build()
            .map_err(|_| Failure::Permanent("cannot build the webhook request".into()))?;
        // Errors from reqwest name the URL, which holds the token: report
        // the kind of failure only.
        let response = send_traced_to_third_party(&self.client, request, Some(WEBHOOK_TEMPLATE))
            .await
            .map_err(|err| {
                Failure::unavailable(if err.is_timeout() {
                    "webhook timed out"
                } else {
                    "webhook unreachable"
                })
            })?;
        let status = response.status();
        if status.is_success() {
            // Posted. The id only enriches the record: an answer that cannot
            // be read must not make us post again.
            let message_id = match response.json::<PostedMessage>().await {
                Ok(message) => Some(message.id),
                Err(_) => {
                    tracing::warn!(
                        status = status.as_u16(),
                        "Discord's answer carries no message id"
                    );
                    None
                }
            };
            return Ok(message_id);
        }
        Err(webhook_failure(status, retry_after(response.headers())))
    }
}

/// The part of Discord's answer to `?wait=true` the bot keeps.
#[derive(Debug, serde::Deserialize)]
struct PostedMessage {
    /// The message's snowflake, a 64-bit number sent as a string.
    id: String,
}

/// Whose failure an api answer other than 2xx is.
fn api_failure(status: StatusCode, retry_after: Option<Duration>) -> Failure {
    match status {
        // The api (or a gateway in front of it) is overloaded, restarting or
        // asks us to slow down: wait.
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Failure::Unavailable {
            reason: format!("api answered {status}"),
            retry_after,
        },
        _ if status.is_server_error() => Failure::Unavailable {
            reason: format!("api answered {status}"),
            retry_after,
        },
        // 404: the game is gone; any other 4xx: a request that will never
        // succeed. Both belong to the message.
        _ => Failure::Permanent(format!("api answered {status} for the game")),
    }
}

/// Whose failure a webhook answer other than 2xx is.
fn webhook_failure(status: StatusCode, retry_after: Option<Duration>) -> Failure {
    match status {
        // Discord asks us to slow down, or is not there: wait.
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Failure::Unavailable {
            reason: format!("webhook answered {status}"),
            retry_after,
        },
        // Discord failed on this message: retried, up to BOT_MAX_ATTEMPTS.
        _ if status.is_server_error() => Failure::transient(format!("webhook answered {status}")),
        // Any other 4xx: Discord will never take this message.
        _ => Failure::Permanent(format!("webhook refused the message: {status}")),
    }
}

/// `Retry-After` in seconds (Discord sends fractions), if present and sane.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER))
}

/// `bot [healthcheck]`, as `args` (the binary's name first) and the
/// environment say: the body of the binary's `main`, and of `demo service
/// bot`. Exits 2, naming the variable, on bad configuration.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    use service_runtime::cli::{Invocation, try_parse_from};
    let cli = try_parse_from::<Config, config::Command>(SERVICE, config::ABOUT, args)
        .unwrap_or_else(|err| err.exit());
    match cli.invocation {
        Invocation::Run(config) => {
            service_runtime::main(SERVICE, &cli.telemetry, |shutdown| run(config, shutdown)).await
        }
        Invocation::Command(config::Command::Healthcheck(listen)) => {
            service_runtime::healthcheck(listen.addr).await
        }
    }
}

/// Runs the bot as `config` says until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let meter = opentelemetry::global::meter(SERVICE.name);
    let bot = Bot::new(&config, &meter)?;
    let listener = service_runtime::bind(config.listen.addr).await?;
    Ok(bot.run(listener, &meter, shutdown).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    fn delivery(api_base_url: &str) -> Delivery {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        // Never connected: these tests stop before the database.
        let (pool, db) = schema::connect_lazy(
            &"postgres://nobody@127.0.0.1:1/none".parse().unwrap(),
            1,
            &meter,
        );
        Delivery {
            client: reqwest::Client::new(),
            api_base_url: api_base_url.parse().unwrap(),
            webhook: Webhook::DryRun,
            deliveries: Deliveries::new(pool, db),
            record_backoff: Duration::from_millis(10),
            faults: config::Faults::default(),
            delivered: meter.u64_counter("d").build(),
            lag: meter.f64_histogram("l").build(),
        }
    }

    fn notification() -> Notification {
        Notification {
            notification_id: uuid::Uuid::new_v4(),
            game_id: uuid::Uuid::new_v4(),
            kind: events::NotificationKind::Announcement,
            player: None,
            due_at: Utc::now(),
        }
    }

    fn is_unavailable(failure: &Failure) -> bool {
        matches!(failure, Failure::Unavailable { .. })
    }

    #[tokio::test]
    async fn an_unreachable_api_is_unavailable_not_permanent() {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        match delivery(&url).fetch_game(&notification()).await {
            Err(Failure::Unavailable { reason, .. }) => {
                assert!(reason.starts_with("api unreachable"), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn an_api_that_is_overloaded_or_down_is_waited_out_honouring_retry_after() {
        let wait = Some(Duration::from_secs(2));
        for status in [
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            match api_failure(status, wait) {
                Failure::Unavailable { retry_after, .. } => {
                    assert_eq!(retry_after, wait, "{status}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_game_the_api_does_not_know_is_the_messages_own_failure() {
        for status in [StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST] {
            assert!(
                matches!(api_failure(status, None), Failure::Permanent(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn discord_throttling_or_unavailable_is_waited_out_and_a_refusal_is_final() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ] {
            assert!(is_unavailable(&webhook_failure(status, None)), "{status}");
        }
        assert!(matches!(
            webhook_failure(StatusCode::INTERNAL_SERVER_ERROR, None),
            Failure::Transient { .. }
        ));
        for status in [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND] {
            assert!(
                matches!(webhook_failure(status, None), Failure::Permanent(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            headers
        };
        assert_eq!(
            retry_after(&headers("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&headers("3600")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

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

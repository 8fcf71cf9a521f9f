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
//! dead-lettered at once. A dependency that is down or asks us to slow down
//! is waited out and never dead-letters: PostgreSQL or the api (unreachable,
//! timing out, 408, 429, 5xx) by putting the notification back on the queue,
//! honouring `Retry-After`; Discord (the same, and its rate-limit headers)
//! by holding the notification while the consumer takes no new one (see
//! `discord`). A notification whose moment has passed (more than
//! `NOTIFICATION_MAX_AGE_MINUTES` past due, or an announcement or reminder
//! of a game that has started) is acknowledged as `expired`, not posted.
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
//! - `delivery`: one notification, delivered once (claim, fetch, render,
//!   send, record), and what it counts.
//! - `api`: the call to the api for the game, and whose failure its
//!   answer is.
//! - `discord`: the webhook (or the dry run): each post waits for its
//!   turn, and what Discord's answer means; the webhook fault switches
//!   answering in its place.
//! - `pacing`: Discord's rate limits, read from its answers.
//! - `breaker`: whether Discord is there; the consumer's pause.
//! - [`deliveries`]: the record of what was posted.
//! - [`render`]: the Discord message.
//! - [`Bot`]: the wiring: the consumer, `/readyz`, retention.

mod api;
mod breaker;
pub mod config;
pub mod deliveries;
mod delivery;
mod discord;
mod pacing;
pub mod render;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use broker::consumer::{self, Settings};
use broker::{Broker, QueueSpec, Topology};
use opentelemetry::metrics::Meter;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use service_runtime::CancellationToken;
use sqlx::PgPool;

use api::GameApi;
pub use config::Config;
use deliveries::Deliveries;
use delivery::Delivery;
use discord::Discord;

/// `service.name`, `service.version` and `service.namespace` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_namespace(service_runtime::SERVICE_NAMESPACE);

/// Longest wait for an answer from the api or the webhook.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait a `Retry-After` may impose on one attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
        let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
        let discord = Discord::new(
            client.clone(),
            &config.destination,
            &config.faults,
            config.consumer.retry_backoff,
            meter,
        );
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
                pause: Some(discord.paused()),
            },
            delivery: Delivery {
                api: GameApi {
                    client,
                    base_url: config.api_base_url.clone(),
                    timeout: config.faults.api_timeout.clone(),
                },
                discord,
                deliveries: Deliveries { pool, db },
                record_backoff: config.consumer.retry_backoff,
                max_age: config.notification_max_age,
                delivered: meter
                    .u64_counter("gamenight.notifications.delivered")
                    .with_unit("{notification}")
                    .with_description(
                        "Notifications handled, by kind and outcome: sent, dry_run, \
                         duplicate (delivered before, not posted again), skipped (game \
                         cancelled), expired (its moment passed, not posted), rejected \
                         (dead-lettered), retried.",
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
        let (broker, pool) = (self.broker.clone(), self.pool.clone());
        let health = service_runtime::health_routes().route(
            "/readyz",
            axum::routing::get(move || async move {
                use service_runtime::check;
                let (rabbitmq, postgresql) =
                    tokio::join!(check(broker.is_ready()), check(schema::is_ready(&pool)));
                service_runtime::readiness(
                    &[("rabbitmq", rabbitmq), ("postgresql", postgresql)],
                    &[],
                )
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

/// `Retry-After` in seconds (Discord sends fractions), if present and sane:
/// how long the api or Discord asked us to wait.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    seconds(headers, reqwest::header::RETRY_AFTER.as_str())
}

/// Header `name` as seconds (fractions allowed), if present and sane,
/// capped at [`MAX_RETRY_AFTER`]: no server makes us wait longer.
pub(crate) fn seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER))
}

/// `bot [healthcheck]`, as `args` (the binary's name first) and the
/// environment say: the body of the binary's `main`, and of `demo service
/// bot`. Exits 2, naming the variable, on bad configuration.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    use service_runtime::cli::Task;
    service_runtime::cli::main(SERVICE, config::ABOUT, args, run, |command| match command {
        config::Command::Healthcheck(listen) => Task::Healthcheck(listen.addr),
    })
    .await
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
}

//! The `bot` service: delivers notifications to a Discord webhook.
//!
//! For each notification it fetches the game from the api (a traced HTTP
//! call carrying `traceparent`), renders a Discord message and posts it. A
//! 429 is retried after Discord's `Retry-After`, a 5xx with backoff; any other
//! 4xx is dead-lettered with the reason. An api that is down is retried and
//! the notification put back on the queue, never dropped. Without
//! `DISCORD_WEBHOOK_URL` it runs dry: the message is logged, not sent.
//!
//! # Layout
//! - [`config`]: settings read from the environment.
//! - [`render`]: the Discord message.
//! - [`Bot`]: consuming, fetching, delivering.

pub mod config;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use broker::consumer::{self, Failure, Message, Settings};
use broker::{Broker, QueueSpec, Topology};
use chrono::Utc;
use events::Notification;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use secrecy::ExposeSecret;
use service_runtime::CancellationToken;
use telemetry::spans::send_traced;

pub use config::Config;
use render::GameView;

/// `service.name` and `service.version` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

/// How the webhook's URL appears in spans: its path holds the token.
const WEBHOOK_TEMPLATE: &str = "/api/webhooks/{id}/{token}";
/// Longest wait a `Retry-After` may impose before the attempt counts as
/// failed anyway.
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
    deliveries: Counter<u64>,
    lag: Histogram<f64>,
}

/// The bot, wired but not yet running.
#[derive(Debug)]
pub struct Bot {
    broker: Arc<Broker>,
    settings: Settings,
    delivery: Delivery,
}

impl Bot {
    /// Wires the bot from `config`. Connects lazily.
    pub fn new(config: &Config, meter: &Meter) -> Result<Self, StartError> {
        let queue = QueueSpec::bound(
            &config.queue,
            &config.notifications_exchange,
            events::NOTIFICATION_PATTERN,
        );
        let broker = Arc::new(Broker::new(
            config.rabbitmq_url.clone(),
            Topology {
                exchanges: vec![config.notifications_exchange.clone()],
                queues: vec![queue.clone()],
            },
            meter,
        )?);
        let webhook = match &config.discord_webhook_url {
            Some(url) => match reqwest::Url::parse(url.expose_secret()) {
                Ok(url) => Webhook::Discord(url),
                Err(_) => Webhook::DryRun,
            },
            None => {
                tracing::warn!(
                    "DISCORD_WEBHOOK_URL is not set: dry run, messages are logged, not sent"
                );
                Webhook::DryRun
            }
        };
        Ok(Self {
            broker,
            settings: Settings {
                queue,
                prefetch: config.prefetch,
                max_attempts: config.max_attempts,
                initial_backoff: config.retry_backoff,
                max_backoff: MAX_RETRY_AFTER,
            },
            delivery: Delivery {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
                api_base_url: config.api_base_url.clone(),
                webhook,
                deliveries: meter
                    .u64_counter("gamenight.notifications.delivered")
                    .with_unit("{notification}")
                    .with_description("Notification deliveries by kind and outcome.")
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
        let consumer = consumer::run(
            self.broker.clone(),
            self.settings.clone(),
            meter,
            shutdown.clone(),
            move |message| {
                let delivery = delivery.clone();
                async move { delivery.deliver(message).await }
            },
        );
        let broker = self.broker.clone();
        let health = service_runtime::health_routes().route(
            "/readyz",
            axum::routing::get(move || {
                let broker = broker.clone();
                async move {
                    let rabbitmq = service_runtime::check(broker.is_ready()).await;
                    service_runtime::readiness(&[("rabbitmq", rabbitmq)], &[])
                }
            }),
        );
        let (served, ()) =
            tokio::join!(service_runtime::serve(listener, health, shutdown), consumer);
        Ok(served?)
    }
}

impl Delivery {
    async fn deliver(&self, message: Message) -> Result<(), Failure> {
        let notification: Notification = serde_json::from_slice(&message.body)
            .map_err(|err| Failure::Permanent(format!("malformed notification: {err}")))?;
        let kind = notification.kind.as_str();
        let result = self.deliver_notification(&notification).await;
        let outcome = match (&result, &self.webhook) {
            (Ok(()), Webhook::Discord(_)) => "sent",
            (Ok(()), Webhook::DryRun) => "dry_run",
            (Err(Failure::Permanent(_)), _) => "rejected",
            (Err(_), _) => "retried",
        };
        self.deliveries.add(
            1,
            &[
                KeyValue::new("kind", kind),
                KeyValue::new("outcome", outcome),
            ],
        );
        if result.is_ok() {
            let lag = (Utc::now() - notification.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.lag.record(lag, &[KeyValue::new("kind", kind)]);
        }
        result
    }

    async fn deliver_notification(&self, notification: &Notification) -> Result<(), Failure> {
        let game = self.fetch_game(notification).await?;
        let body = render::discord_message(notification, &game);
        match &self.webhook {
            Webhook::DryRun => {
                // Recorded like the real call would be, so the trace has the
                // same shape with or without a webhook.
                tracing::info_span!("discord webhook (dry run)", otel.kind = "internal").in_scope(
                    || {
                        tracing::info!(message = %body, "dry run: would post to Discord");
                    },
                );
                Ok(())
            }
            Webhook::Discord(url) => {
                self.post(url, &body).await?;
                tracing::info!(
                    kind = notification.kind.as_str(),
                    "notification delivered to Discord"
                );
                Ok(())
            }
        }
    }

    /// `GET /games/{id}` on the api, as a traced client call.
    async fn fetch_game(&self, notification: &Notification) -> Result<GameView, Failure> {
        let url = self
            .api_base_url
            .join(&format!("games/{}", notification.game_id))
            .map_err(|err| Failure::Permanent(format!("cannot build the game URL: {err}")))?;
        let request = self
            .client
            .get(url)
            .build()
            .map_err(|err| Failure::Permanent(err.to_string()))?;
        let response = send_traced(&self.client, request, None)
            .await
            .map_err(|err| Failure::Unavailable(format!("api unreachable: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|err| {
                Failure::Unavailable(format!("unreadable game from the api: {err}"))
            });
        }
        if status.is_server_error() {
            return Err(Failure::Unavailable(format!("api answered {status}")));
        }
        Err(Failure::Permanent(format!(
            "api answered {status} for the game"
        )))
    }

    /// Posts `body` to the webhook and classifies the answer.
    async fn post(&self, url: &reqwest::Url, body: &serde_json::Value) -> Result<(), Failure> {
        let request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .build()
            .map_err(|_| Failure::Permanent("cannot build the webhook request".into()))?;
        // Errors from reqwest name the URL, which holds the token: report
        // the kind of failure only.
        let response = send_traced(&self.client, request, Some(WEBHOOK_TEMPLATE))
            .await
            .map_err(|err| {
                Failure::transient(if err.is_timeout() {
                    "webhook timed out"
                } else {
                    "webhook unreachable"
                })
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<f64>().ok())
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .map(|seconds| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER));
            return Err(Failure::Transient {
                reason: "webhook rate-limited (429)".into(),
                retry_after,
            });
        }
        if status.is_server_error() {
            return Err(Failure::transient(format!("webhook answered {status}")));
        }
        Err(Failure::Permanent(format!(
            "webhook refused the message: {status}"
        )))
    }
}

/// Runs the bot as configured by the environment until `shutdown`.
pub async fn run_from_env(shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = Config::from_env().context("invalid configuration")?;
    let meter = opentelemetry::global::meter(SERVICE.name);
    let bot = Bot::new(&config, &meter)?;
    let listener = service_runtime::bind(config.listen_addr).await?;
    Ok(bot.run(listener, &meter, shutdown).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    fn delivery(api_base_url: &str) -> Delivery {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        Delivery {
            client: reqwest::Client::new(),
            api_base_url: api_base_url.parse().unwrap(),
            webhook: Webhook::DryRun,
            deliveries: meter.u64_counter("d").build(),
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

    #[tokio::test]
    async fn an_unreachable_api_is_unavailable_not_permanent() {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        match delivery(&url).fetch_game(&notification()).await {
            Err(Failure::Unavailable(reason)) => {
                assert!(reason.starts_with("api unreachable"), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
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

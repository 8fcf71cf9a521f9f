//! The bot against real RabbitMQ and PostgreSQL, posting to a Discord
//! stand-in: what it waits out, and that a notification is posted once even
//! when PostgreSQL fails after the post.
//!
//! The api here is a stand-in too: it plays the gateway in front of the api
//! (a load balancer or rate limiter), which is what answers 408 and 429 in
//! production; the real api never does.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bot::config::Faults;
use bot::{Bot, Config};
use broker::lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use broker::lapin::types::FieldTable;
use broker::lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use otlp_testkit::Receiver;
use service_runtime::CancellationToken;
use telemetry::{Protocol, Telemetry, TelemetryConfig};
use test_support::{FakeDiscord, Reply, TcpProxy, TestBroker, TestDatabase};
use uuid::Uuid;

/// A bot running in this process, its queue, and what it talks to.
struct Running {
    discord: FakeDiscord,
    _owned: (TestDatabase, TestBroker),
    database_url: String,
    database: TcpProxy,
    queue: String,
    exchange: String,
    channel: Channel,
    connection: Connection,
    shutdown: CancellationToken,
    bot: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a bot fetching games from `api_url`, its database behind a
    /// proxy the test can cut.
    async fn start(api_url: &str) -> Self {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        Self::start_with(api_url, meter, Faults::default()).await
    }

    /// Like [`Running::start`], recording metrics with `meter`, with
    /// `faults` switched on.
    async fn start_with(api_url: &str, meter: Meter, faults: Faults) -> Self {
        let discord = FakeDiscord::start().await;
        let owned = (test_support::fresh_database().await, TestBroker::new());
        let database_url = owned.0.url().to_owned();
        let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
        schema::MIGRATOR.run(&pool).await.unwrap();
        let database = TcpProxy::for_url(&database_url).await;
        let queue = owned.1.queue("gamenight.test.bot.");
        let exchange = owned.1.exchange("gamenight.test.bot.notifications.");
        let (rabbitmq_url, database_url_proxied) =
            (test_support::rabbitmq_url(), database.url(&database_url));
        let webhook_url = discord.webhook_url();
        let mut config: Config = service_runtime::cli::from_vars([
            ("RABBITMQ_URL", rabbitmq_url.as_str()),
            ("DATABASE_URL", &database_url_proxied),
            ("API_BASE_URL", api_url),
            ("DISCORD_WEBHOOK_URL", &webhook_url),
            ("NOTIFICATIONS_EXCHANGE", &exchange),
            ("BOT_QUEUE", &queue),
            // As deployed: several notifications in hand at once.
            ("BOT_CONCURRENCY", "8"),
            ("BOT_MAX_ATTEMPTS", "3"),
            ("BOT_RETRY_BACKOFF_MS", "50"),
            ("RETENTION_HOURS", "1"),
        ])
        .unwrap();
        config.faults = faults;
        let shutdown = CancellationToken::new();
        let bot = Bot::new(&config, &meter).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = shutdown.clone();
        let bot = tokio::spawn(async move { bot.run(listener, &meter, stop).await.unwrap() });

        let connection = Connection::connect(
            &test_support::rabbitmq_url(),
            ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let running = Self {
            discord,
            _owned: owned,
            database_url,
            database,
            queue,
            exchange,
            channel,
            connection,
            shutdown,
            bot,
        };
        // Published before the bot declared and consumes its queue, a
        // notification would be unroutable.
        running
            .poll("the bot consuming", || async {
                running
                    .queue_counts(&running.queue)
                    .await
                    .map(|(_, consumers)| consumers)
                    == Some(1)
            })
            .await;
        running
    }

    /// Messages and consumers on `queue`, if it exists.
    async fn queue_counts(&self, queue: &str) -> Option<(u32, u32)> {
        // A passive declare of a missing queue closes the channel: use a
        // channel of its own.
        let channel = self.connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        let _ = channel.close(200, "done".into()).await;
        Some((declared.message_count(), declared.consumer_count()))
    }

    /// Publishes a notification as the worker's scheduler does, due now.
    async fn publish(&self, notification_id: Uuid, kind: &str, player: Option<&str>) {
        self.publish_due(notification_id, kind, player, chrono::Utc::now())
            .await;
    }

    /// Publishes a notification that was due at `due_at`.
    async fn publish_due(
        &self,
        notification_id: Uuid,
        kind: &str,
        player: Option<&str>,
        due_at: chrono::DateTime<chrono::Utc>,
    ) {
        let body = serde_json::json!({
            "notification_id": notification_id,
            "game_id": Uuid::new_v4(),
            "kind": kind,
            "player": player,
            "due_at": due_at,
        })
        .to_string();
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                format!("notification.{kind}").as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_message_id(notification_id.to_string().as_str().into())
                    .with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Asserts that the bot's dead-letter queue is empty.
    async fn assert_nothing_dead_lettered(&self) {
        let dlq = format!("{}.dlq", self.queue);
        let dead = self.queue_counts(&dlq).await.map(|(messages, _)| messages);
        assert_eq!(dead, Some(0), "nothing dead-lettered");
    }

    /// Waits until the queue is empty and the bot has asked `gateway` for
    /// a game: what was published has been taken.
    async fn wait_until_taken(&self, gateway: &Gateway) {
        self.poll("the notifications taken", || async {
            self.queue_counts(&self.queue)
                .await
                .is_some_and(|(ready, _)| ready == 0)
                && !gateway.requests().is_empty()
        })
        .await;
    }

    /// Polls `condition` every 50 ms for up to 30 s.
    async fn poll<F, Fut>(&self, what: &str, condition: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Discord's message id recorded for `notification_id`, if recorded.
    async fn recorded(&self, notification_id: Uuid) -> Option<Option<String>> {
        let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT discord_message_id FROM deliveries WHERE notification_id = $1")
                .bind(notification_id)
                .fetch_optional(&pool)
                .await
                .unwrap();
        pool.close().await;
        row.map(|(id,)| id)
    }

    /// Stops the bot; it must finish cleanly.
    async fn stop(self) -> FakeDiscord {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.bot)
            .await
            .expect("the bot stops within 30 s")
            .unwrap();
        self.discord
    }
}

/// A status the gateway answers with, and its `Retry-After`.
type Refusal = (StatusCode, Option<&'static str>);

/// The gateway in front of the api: answers each `GET /games/{id}` with the
/// next scripted status (with `Retry-After`), then with the game.
#[derive(Clone, Default)]
struct Gateway {
    script: Arc<Mutex<VecDeque<Refusal>>>,
    requests: Arc<Mutex<Vec<Instant>>>,
    /// The game it answers with is cancelled.
    cancelled: Arc<AtomicBool>,
    /// When the game it answers with starts (default: in 2035).
    scheduled_at: Arc<Mutex<Option<chrono::DateTime<chrono::Utc>>>>,
}

impl Gateway {
    async fn start(script: impl IntoIterator<Item = Refusal>) -> (Self, String) {
        let gateway = Self::default();
        gateway.script.lock().unwrap().extend(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/games/{id}", axum::routing::get(Self::game))
            .with_state(gateway.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (gateway, url)
    }

    async fn game(axum::extract::State(gateway): axum::extract::State<Self>) -> Response {
        gateway.requests.lock().unwrap().push(Instant::now());
        let next = gateway.script.lock().unwrap().pop_front();
        match next {
            Some((status, Some(retry_after))) => {
                (status, [("retry-after", retry_after)]).into_response()
            }
            Some((status, None)) => status.into_response(),
            None => axum::Json(serde_json::json!({
                "id": Uuid::new_v4(),
                "title": "Catan night",
                "host": "ada",
                "scheduled_at": gateway.scheduled_at.lock().unwrap().map_or_else(
                    || "2035-01-04T19:00:00Z".to_owned(),
                    |at| at.to_rfc3339(),
                ),
                "max_players": 4,
                "reminder_minutes": 60,
                "status": if gateway.cancelled.load(Ordering::Relaxed) {
                    "cancelled"
                } else {
                    "scheduled"
                },
                "players": ["grace"],
            }))
            .into_response(),
        }
    }

    fn requests(&self) -> Vec<Instant> {
        self.requests.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn an_api_answering_429_or_503_is_waited_out_not_dead_lettered() {
    let (gateway, api_url) = Gateway::start([
        (StatusCode::TOO_MANY_REQUESTS, Some("1")),
        (StatusCode::SERVICE_UNAVAILABLE, None),
        (StatusCode::REQUEST_TIMEOUT, None),
    ])
    .await;
    let running = Running::start(&api_url).await;
    running.publish(Uuid::new_v4(), "announcement", None).await;

    let posts = running
        .discord
        .wait_for_requests(1, Duration::from_secs(30))
        .await;
    assert_eq!(posts[0].reply, Reply::Delivered);
    let requests = gateway.requests();
    assert_eq!(
        requests.len(),
        4,
        "three refusals waited out, then the game"
    );
    assert!(
        requests[1].duration_since(requests[0]) >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    running.assert_nothing_dead_lettered().await;
    running.stop().await;
}

#[tokio::test]
async fn a_post_whose_record_fails_is_recorded_later_and_never_posted_again() {
    let (_gateway, api_url) = Gateway::start([]).await;
    let running = Running::start(&api_url).await;
    // Discord takes its time: PostgreSQL goes down after the claim, while
    // the bot waits for the answer to a post Discord has accepted.
    running
        .discord
        .reply_next([Reply::DeliveredAfter(Duration::from_millis(500))]);
    let notification = Uuid::new_v4();
    running.publish(notification, "announcement", None).await;
    running
        .discord
        .wait_for_requests(1, Duration::from_secs(30))
        .await;
    running.database.cut();
    // The outage outlasts Discord's answer, so the first record fails.
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.database.restore();
    running
        .poll("the delivery recorded", || async {
            running.recorded(notification).await.is_some()
        })
        .await;
    let posts = running.discord.received();
    assert_eq!(
        running.recorded(notification).await,
        Some(posts[0].message_id.clone()),
        "recorded with Discord's message id"
    );

    // The same notification again, then another: the copy is not posted.
    running.publish(notification, "announcement", None).await;
    running
        .publish(Uuid::new_v4(), "player_joined", Some("linus"))
        .await;
    let posts = running
        .discord
        .wait_for_requests(2, Duration::from_secs(30))
        .await;
    assert!(
        posts[1].body["content"]
            .as_str()
            .unwrap()
            .contains("linus joined"),
        "the announcement was posted again: {:?}",
        posts[1].body
    );
    let discord = running.stop().await;
    assert_eq!(discord.received().len(), 2);
}

/// What the bot did with each notification, as its metrics say: skipped
/// (a reminder of a cancelled game) is counted as such and not posted; a
/// cancellation notice of that game is posted, counted as sent, and its
/// lag behind when it was due is recorded in seconds.
#[tokio::test]
async fn outcomes_are_counted_and_the_lag_recorded_in_seconds() {
    let (receiver, telemetry) = exporting().await;
    let (gateway, api_url) = Gateway::start([]).await;
    gateway.cancelled.store(true, Ordering::Relaxed);
    let running = Running::start_with(&api_url, telemetry.meter("bot"), Faults::default()).await;

    running.publish(Uuid::new_v4(), "reminder", None).await;
    running.wait_until_taken(&gateway).await;
    let due_at = chrono::Utc::now() - chrono::Duration::seconds(90);
    running
        .publish_due(Uuid::new_v4(), "cancelled", None, due_at)
        .await;
    let posts = running
        .discord
        .wait_for_requests(1, Duration::from_secs(30))
        .await;
    let discord = running.stop().await;
    telemetry.shutdown().await;

    assert_eq!(
        discord.received().len(),
        1,
        "only the cancellation: {posts:?}"
    );
    let delivered = "gamenight.notifications.delivered";
    assert_eq!(
        receiver.counter_total(delivered, &[("kind", "reminder"), ("outcome", "skipped")]),
        Some(1)
    );
    assert_eq!(
        receiver.counter_total(delivered, &[("kind", "cancelled"), ("outcome", "sent")]),
        Some(1)
    );
    let lag: Vec<f64> = receiver
        .metrics()
        .iter()
        .filter(|metric| metric.name() == "gamenight.notification.delivery_lag")
        .flat_map(|metric| metric.histogram_points().to_vec())
        .filter_map(|point| point.sum)
        .collect();
    let lag = lag.last().copied().unwrap_or_default();
    assert!((90.0..120.0).contains(&lag), "lag {lag} s, due 90 s before");
}

/// The webhook-failure fault switch stands in for Discord answering 503:
/// nothing is posted, the bot tries again until the answers in a row open
/// its breaker, and the notification stays in hand, then goes back to the
/// queue on shutdown; never to the dead letters.
#[tokio::test]
async fn with_the_webhook_failure_switch_on_nothing_is_posted_and_the_bot_waits() {
    let faults = service_runtime::cli::from_vars::<Config>([
        ("RABBITMQ_URL", "amqp://h"),
        ("DATABASE_URL", "postgres://h/db"),
        ("API_BASE_URL", "http://h"),
        ("BOT_DRY_RUN", "true"),
        ("FAULT_WEBHOOK_FAILURE_PERCENT", "100"),
    ])
    .unwrap()
    .faults;
    let (receiver, telemetry) = exporting().await;
    let (_gateway, api_url) = Gateway::start([]).await;
    let running = Running::start_with(&api_url, telemetry.meter("bot"), faults).await;
    running.publish(Uuid::new_v4(), "announcement", None).await;
    // Three answers in a row, 50 ms apart and more, open the breaker.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Held, not dead-lettered.
    running.assert_nothing_dead_lettered().await;
    assert_eq!(
        running
            .queue_counts(&running.queue)
            .await
            .map(|(ready, _)| ready),
        Some(0)
    );
    let discord = running.stop().await;
    telemetry.shutdown().await;

    assert!(discord.received().is_empty());
    let breaker: Vec<_> = receiver
        .metrics()
        .iter()
        .filter(|metric| metric.name() == "gamenight.discord.breaker.open")
        .flat_map(|metric| metric.gauge_points().to_vec())
        .filter_map(|point| point.value)
        .collect();
    assert_eq!(
        breaker.last(),
        Some(&otlp_testkit::proto::metrics::v1::number_data_point::Value::AsInt(1)),
        "the breaker opened: {breaker:?}"
    );
}

/// An OTLP receiver, and the bot's telemetry exporting to it.
async fn exporting() -> (Receiver, Telemetry) {
    let receiver = Receiver::start().await.unwrap();
    let config = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    let telemetry = Telemetry::build_with_writer(bot::SERVICE, &config, std::io::sink).unwrap();
    (receiver, telemetry)
}

/// Posts that reached the fake and were taken.
fn delivered(discord: &FakeDiscord) -> Vec<test_support::Received> {
    discord
        .received()
        .into_iter()
        .filter(|post| post.reply == Reply::Delivered)
        .collect()
}

/// Discord down for 60 s, answering 500: a notification is Discord's to
/// wait for, not the message's fault. Nothing is dead-lettered (the bot
/// allows 3 attempts here), the bot probes about once a second instead of
/// spinning its messages, and every notification is posted once within
/// 2 s of Discord's return.
#[tokio::test]
async fn a_60_s_discord_outage_answering_500_dead_letters_nothing() {
    let (_gateway, api_url) = Gateway::start([]).await;
    let running = Running::start(&api_url).await;
    running.discord.reply_always(Reply::ServerError);
    let notifications: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    for id in &notifications {
        running.publish(*id, "announcement", None).await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = running.discord.received().len();
    running.discord.reply_always(Reply::Delivered);
    let back = Instant::now();
    running
        .poll("every notification posted", || async {
            delivered(&running.discord).len() >= notifications.len()
        })
        .await;

    let posts = delivered(&running.discord);
    let first = posts.iter().map(|post| post.at).min().unwrap();
    assert!(
        first.saturating_duration_since(back) <= Duration::from_secs(2),
        "first post {:?} after Discord's return",
        first.saturating_duration_since(back)
    );
    // Three failures open the breaker; then about one probe a second.
    assert!(during <= 75, "{during} posts tried in a 60 s outage");
    running.assert_nothing_dead_lettered().await;
    for id in &notifications {
        assert!(running.recorded(*id).await.is_some(), "{id} not recorded");
    }
    let discord = running.stop().await;
    assert_eq!(
        delivered(&discord).len(),
        notifications.len(),
        "each posted once"
    );
}

/// A notification past `NOTIFICATION_MAX_AGE_MINUTES` (60 by default), or
/// an announcement whose game starts while Discord is away, is recorded
/// `expired`: counted, acknowledged, not posted and not dead-lettered.
#[tokio::test]
async fn a_notification_past_its_deadline_is_expired_not_posted() {
    let (receiver, telemetry) = exporting().await;
    let (gateway, api_url) = Gateway::start([]).await;
    *gateway.scheduled_at.lock().unwrap() = Some(chrono::Utc::now() + chrono::Duration::seconds(3));
    let running = Running::start_with(&api_url, telemetry.meter("bot"), Faults::default()).await;

    let stale = Uuid::new_v4();
    let due_at = chrono::Utc::now() - chrono::Duration::minutes(61);
    running
        .publish_due(stale, "player_joined", Some("linus"), due_at)
        .await;
    // Discord is away until after the game has started.
    running.discord.reply_always(Reply::ServerError);
    let announced = Uuid::new_v4();
    running.publish(announced, "announcement", None).await;
    running.wait_until_taken(&gateway).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    running.discord.reply_always(Reply::Delivered);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running.recorded(stale).await, None);
    assert_eq!(running.recorded(announced).await, None);
    running.assert_nothing_dead_lettered().await;
    let discord = running.stop().await;
    telemetry.shutdown().await;

    assert!(
        delivered(&discord).is_empty(),
        "posted late: {:?}",
        discord.received()
    );
    assert_eq!(
        gateway.requests().len(),
        1,
        "the stale one is not even looked up"
    );
    let delivered = "gamenight.notifications.delivered";
    for kind in ["player_joined", "announcement"] {
        assert_eq!(
            receiver.counter_total(delivered, &[("kind", kind), ("outcome", "expired")]),
            Some(1),
            "{kind}"
        );
    }
}

/// A 429 with `X-RateLimit-Global` stops every post, not just the one it
/// answered, for its `Retry-After`; then each notification is posted once,
/// and the 429 spent no attempt.
#[tokio::test]
async fn a_global_429_pauses_every_post_for_its_retry_after() {
    let (_gateway, api_url) = Gateway::start([]).await;
    let running = Running::start(&api_url).await;
    running.discord.reply_next([Reply::GlobalRateLimited(2.0)]);
    let notifications: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for id in &notifications {
        running.publish(*id, "announcement", None).await;
    }
    running
        .poll("every notification posted", || async {
            delivered(&running.discord).len() >= notifications.len()
        })
        .await;
    let discord = running.stop().await;

    let received = discord.received();
    let limited = received
        .iter()
        .find(|post| post.status == 429)
        .expect("the global 429");
    let after: Vec<Duration> = received
        .iter()
        .filter(|post| post.at > limited.at)
        .map(|post| post.at - limited.at)
        .collect();
    assert_eq!(after.len(), notifications.len(), "{received:?}");
    assert!(
        after.iter().all(|wait| *wait >= Duration::from_secs(2)),
        "posted within the global Retry-After: {after:?}"
    );
    assert_eq!(
        delivered(&discord).len(),
        notifications.len(),
        "each posted once"
    );
    assert_eq!(discord.stats().rate_limited_global, 1);
}

//! Set-up shared by the api tests: isolated servers, the app in-process or as
//! a child process, and a tap on the events exchange.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api::{App, Config, Game};
use broker::lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use broker::lapin::types::FieldTable;
use broker::lapin::{Connection, ConnectionProperties, Consumer, ExchangeKind};
use futures_util::StreamExt;
use opentelemetry::metrics::MeterProvider as _;
use service_runtime::CancellationToken;
use test_support::{TestBroker, TestDatabase};

/// What one test owns on the shared servers: a fresh database, a Redis key
/// prefix and an events exchange no other test uses. The database and the
/// exchange are removed when the last clone is dropped; the keys expire.
#[derive(Debug, Clone)]
pub(crate) struct Servers {
    pub(crate) database_url: String,
    pub(crate) redis_url: String,
    pub(crate) rabbitmq_url: String,
    pub(crate) redis_prefix: String,
    pub(crate) exchange: String,
    pub(crate) _owned: Arc<(TestDatabase, TestBroker)>,
}

impl Servers {
    pub(crate) async fn fresh() -> Self {
        let database = test_support::fresh_database().await;
        let broker = TestBroker::new();
        Self {
            database_url: database.url().to_owned(),
            redis_url: test_support::redis_url(),
            rabbitmq_url: test_support::rabbitmq_url(),
            redis_prefix: test_support::unique_name("gamenight-test:") + ":",
            exchange: broker.exchange("gamenight.test.events."),
            _owned: Arc::new((database, broker)),
        }
    }

    /// The environment the api reads, pointing at these servers.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("RABBITMQ_URL", self.rabbitmq_url.clone()),
            ("REDIS_KEY_PREFIX", self.redis_prefix.clone()),
            ("EVENTS_EXCHANGE", self.exchange.clone()),
            ("OUTBOX_POLL_INTERVAL_MS", "100".to_owned()),
        ]
    }

    pub(crate) fn config(&self) -> Config {
        let env = self.env();
        service_runtime::cli::from_vars(env.iter().map(|(var, value)| (*var, value.as_str())))
            .unwrap()
    }

    /// The Redis key of game `id`'s cached copy.
    pub(crate) fn cache_key(&self, id: uuid::Uuid) -> String {
        format!("{}game:{id}", self.redis_prefix)
    }
}

/// The api running in this process on a free port.
pub(crate) struct TestApp {
    pub(crate) base_url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) servers: Servers,
    pub(crate) relay: api::outbox::Relay,
    shutdown: CancellationToken,
}

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(Servers::fresh().await).await
    }

    pub(crate) async fn spawn_with(servers: Servers) -> Self {
        Self::spawn_config(servers.clone(), servers.config()).await
    }

    pub(crate) async fn spawn_config(servers: Servers, config: Config) -> Self {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        let app = App::new(&config, &meter).unwrap();
        app.migrate().await.unwrap();
        let relay = app.relay().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move { app.serve(listener, &meter, token).await.unwrap() });
        Self {
            base_url,
            client: reqwest::Client::new(),
            servers,
            relay,
            shutdown,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Creates a valid game with `max_players` seats.
    pub(crate) async fn create_game(&self, max_players: i32) -> Game {
        let response = self.post("/games", game_body(max_players)).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub(crate) async fn join(&self, id: uuid::Uuid, player: &str) -> reqwest::Response {
        self.post(
            &format!("/games/{id}/participants"),
            serde_json::json!({ "player": player }),
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A valid `POST /games` body.
pub(crate) fn game_body(max_players: i32) -> serde_json::Value {
    let at = chrono::Utc::now() + chrono::Duration::days(7);
    serde_json::json!({
        "title": "Catan night",
        "host": "ada",
        "scheduled_at": at.to_rfc3339(),
        "max_players": max_players,
        "reminder_minutes": 60,
    })
}

/// A message read off the events exchange.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) routing_key: String,
    pub(crate) body: serde_json::Value,
    pub(crate) message_id: Option<String>,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) persistent: bool,
}

/// A queue of our own bound to a test's exchange (every routing key, unless
/// told otherwise).
pub(crate) struct EventTap {
    _connection: Connection,
    consumer: Consumer,
    channel: broker::lapin::Channel,
}

impl EventTap {
    pub(crate) async fn bind(servers: &Servers) -> Self {
        Self::bind_to(servers, &["#"]).await
    }

    /// A tap that takes only the routing keys matching `patterns` (include
    /// `test.#` for [`EventTap::drain`]'s sentinel).
    pub(crate) async fn bind_to(servers: &Servers, patterns: &[&str]) -> Self {
        let connection =
            Connection::connect(&servers.rabbitmq_url, ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                servers.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = test_support::unique_name("gamenight.test.tap.");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        for pattern in patterns {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    servers.exchange.as_str().into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            consumer,
            channel,
        }
    }

    /// The next message, or a panic after 30 s.
    pub(crate) async fn next(&mut self) -> Published {
        let delivery = tokio::time::timeout(Duration::from_secs(30), self.consumer.next())
            .await
            .expect("an event within 30 s")
            .expect("the consumer is open")
            .unwrap();
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .filter_map(|(key, value)| match value {
                        broker::lapin::types::AMQPValue::LongString(s) => Some((
                            key.to_string(),
                            String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Published {
            routing_key: delivery.routing_key.to_string(),
            body: serde_json::from_slice(&delivery.data).unwrap(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string()),
            headers,
            persistent: *delivery.properties.delivery_mode() == Some(2),
        }
    }

    /// Every message delivered so far and not yet read, in order: publishes a
    /// sentinel of our own and reads up to it. Anything the api published
    /// (and had confirmed) before this call is in the queue ahead of it.
    pub(crate) async fn drain(&mut self, exchange: &str) -> Vec<Published> {
        self.channel
            .basic_publish(
                exchange.into(),
                "test.sentinel".into(),
                Default::default(),
                b"{}",
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            if message.routing_key == "test.sentinel" {
                return seen;
            }
            seen.push(message);
        }
    }
}

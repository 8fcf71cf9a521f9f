//! A stack per test, with its receiver and webhook.

use std::path::Path;
use std::time::Duration;

use broker::lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use broker::lapin::types::{AMQPValue, FieldTable};
use broker::lapin::{BasicProperties, Connection, ConnectionProperties};
use demo::{Names, Options, RemovedOnDrop, Stack};
use futures_util::StreamExt;
use otlp_testkit::Receiver;
use test_support::FakeDiscord;

pub(crate) struct Running {
    pub(crate) receiver: Receiver,
    pub(crate) discord: FakeDiscord,
    pub(crate) stack: Stack,
    pub(crate) client: reqwest::Client,
    /// Last, so it goes after the stack's processes.
    _names: RemovedOnDrop,
}

impl Running {
    /// A stack with `extra_env` for every service.
    pub(crate) async fn start(extra_env: &[(&str, &str)]) -> Self {
        let receiver = Receiver::start().await.unwrap();
        let discord = FakeDiscord::start().await;
        let options = Options {
            otlp_endpoint: receiver.http_endpoint(),
            webhook_url: Some(discord.webhook_url()),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let names = Names::unique("e2e").await;
        let removed = names.removed_on_drop();
        let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_demo")), names, &options)
            .await
            .unwrap();
        Self {
            receiver,
            discord,
            stack,
            client: reqwest::Client::new(),
            _names: removed,
        }
    }

    /// Creates a game starting `starts_in` from now, reminding
    /// `reminder_minutes` before.
    pub(crate) async fn create_game(
        &self,
        starts_in: chrono::Duration,
        reminder_minutes: i32,
    ) -> serde_json::Value {
        let response = self
            .client
            .post(format!("{}/games", self.stack.api_url))
            .json(&serde_json::json!({
                "title": "Catan night",
                "host": "ada",
                "scheduled_at": (chrono::Utc::now() + starts_in).to_rfc3339(),
                "max_players": 4,
                "reminder_minutes": reminder_minutes,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// The URL of a game [`Running::create_game`] made.
    pub(crate) fn game_url(&self, game: &serde_json::Value) -> String {
        format!(
            "{}/games/{}",
            self.stack.api_url,
            game["id"].as_str().unwrap()
        )
    }

    /// Stops the stack; every service must exit cleanly.
    pub(crate) async fn stop(self) -> (Receiver, FakeDiscord) {
        for (name, status) in self.stack.stop().await.unwrap() {
            assert!(status.success(), "{name} exited with {status}");
        }
        (self.receiver, self.discord)
    }
}

/// A raw AMQP connection for publishing and reading queues directly.
pub(crate) struct Amqp {
    channel: broker::lapin::Channel,
    _connection: Connection,
}

impl Amqp {
    pub(crate) async fn connect() -> Self {
        let connection = Connection::connect(
            &test_support::rabbitmq_url(),
            ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        Self {
            channel,
            _connection: connection,
        }
    }

    /// Publishes `body` as the api would (persistent, with `message_id`).
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) {
        self.channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_message_id(message_id.into())
                    .with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// How many messages wait in `queue`, ready to be delivered.
    pub(crate) async fn ready_messages(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// The next message on `queue` (consumed), with its reason header, or a
    /// panic after 30 s.
    pub(crate) async fn next_dead_letter(&self, queue: &str) -> (Vec<u8>, String) {
        let mut consumer = self
            .channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("a dead letter within 30 s")
            .unwrap()
            .unwrap();
        let reason = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(
                |headers| match headers.inner().get(broker::consumer::REASON_HEADER) {
                    Some(AMQPValue::LongString(reason)) => {
                        Some(String::from_utf8_lossy(reason.as_bytes()).into_owned())
                    }
                    _ => None,
                },
            )
            .unwrap_or_default();
        (delivery.data, reason)
    }
}

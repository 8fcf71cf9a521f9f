//! The traces the scheduler's notifications go out in, read back from a
//! real OTLP receiver.
//!
//! A test binary of its own: the pass runs under this test's `tracing`
//! dispatcher, set for this thread, and other tests hitting the same
//! callsites on other threads at the same moment can leave them cached as
//! uninteresting to it.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use broker::lapin::options::BasicGetOptions;
use broker::lapin::types::AMQPValue;
use events::{Envelope, GameEvent};
use opentelemetry::propagation::TextMapPropagator as _;
use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::db::DbClient;
use telemetry::spans::Peer;
use telemetry::{Protocol, Telemetry, TelemetryConfig};
use test_support::TestBroker;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use worker::apply::Applier;
use worker::{Config, Worker};

/// A worker on `database_url` and exchanges and queues named by `broker`,
/// with the settings it was given.
fn worker_on(
    database_url: &str,
    broker: &TestBroker,
    meter: &opentelemetry::metrics::Meter,
) -> (Worker, HashMap<&'static str, String>) {
    let env = HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        ("RABBITMQ_URL", test_support::rabbitmq_url()),
        ("EVENTS_EXCHANGE", broker.exchange("gamenight.test.events.")),
        (
            "NOTIFICATIONS_EXCHANGE",
            broker.exchange("gamenight.test.notifications."),
        ),
        ("WORKER_QUEUE", broker.queue("gamenight.test.worker.")),
        ("BOT_QUEUE", broker.queue("gamenight.test.bot.")),
    ]);
    let config =
        service_runtime::cli::from_vars::<Config>(env.iter().map(|(k, v)| (*k, v.as_str())))
            .unwrap();
    (Worker::new(&config, meter).unwrap(), env)
}

/// The trace each notification goes out in, as the scheduler publishes it:
/// an announcement continues the trace of the request that caused it; a
/// reminder, sent long after, starts a trace of its own linked to that
/// one. Each is counted by kind.
#[tokio::test]
async fn an_announcement_continues_its_trace_and_a_reminder_links_to_it() {
    const CAUSE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = Receiver::start().await.unwrap();
    let otlp = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    let telemetry = Telemetry::build_with_writer(worker::SERVICE, &otlp, std::io::sink).unwrap();
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO notifications (id, game_id, kind, due_at, traceparent) \
         SELECT gen_random_uuid(), gen_random_uuid(), kind, now(), $1 \
         FROM unnest(ARRAY['announcement', 'reminder']) AS kind",
    )
    .bind(format!("00-{CAUSE}-00f067aa0ba902b7-01"))
    .execute(&pool)
    .await
    .unwrap();
    let broker = TestBroker::new();
    let (worker, _) = worker_on(database.url(), &broker, &telemetry.meter("worker"));

    // This test's runtime runs the pass on this thread, under this default.
    let pass = {
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        worker.scheduler().pass().await.unwrap()
    };
    assert_eq!(pass.published, 2);
    telemetry.shutdown().await;

    let send = |kind: &str| {
        let routing_key = format!("notification.{kind}");
        receiver
            .spans()
            .into_iter()
            .find(|span| {
                span.kind() == SpanKind::Producer
                    && span.str_attr("messaging.rabbitmq.destination.routing_key")
                        == Some(routing_key.as_str())
            })
            .unwrap_or_else(|| panic!("no PRODUCER span for the {kind}"))
    };
    let announcement = send("announcement");
    assert_eq!(announcement.trace_id(), CAUSE);
    assert_eq!(
        announcement.parent_span_id().as_deref(),
        Some("00f067aa0ba902b7")
    );
    let reminder = send("reminder");
    assert_ne!(reminder.trace_id(), CAUSE);
    assert_eq!(reminder.linked_trace_ids(), [CAUSE]);

    for kind in ["announcement", "reminder"] {
        let published =
            receiver.counter_total("gamenight.notifications.published", &[("kind", kind)]);
        assert_eq!(published, Some(1), "{kind}s counted");
    }
}

/// Baggage crosses the notifications table as it crosses the outbox: the
/// event's context (as its consumer span continues it) is stored with the
/// notification, baggage included, and the scheduler's message carries it
/// on to the bot.
#[tokio::test]
async fn the_baggage_of_an_event_reaches_the_bot_through_the_notification_row() {
    const CAUSE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = Receiver::start().await.unwrap();
    let otlp = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    let telemetry = Telemetry::build_with_writer(worker::SERVICE, &otlp, std::io::sink).unwrap();
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    let meter = telemetry.meter("worker");
    let broker = TestBroker::new();
    let (worker, names) = worker_on(database.url(), &broker, &meter);
    let applier = Applier::new(
        pool.clone(),
        DbClient::new("postgresql", Peer::new("localhost", 5432), &meter),
    );
    let headers = HashMap::from([
        (
            "traceparent".to_owned(),
            format!("00-{CAUSE}-00f067aa0ba902b7-01"),
        ),
        ("baggage".to_owned(), "tenant=acme".to_owned()),
    ]);
    let event = Envelope::new(
        uuid::Uuid::new_v4(),
        GameEvent::PlayerJoined {
            player: "grace".to_owned(),
        },
    );

    let pass = {
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        let span = tracing::info_span!("process");
        let _ = span.set_parent(telemetry::propagation::propagator().extract(&headers));
        applier.apply(&event).instrument(span).await.unwrap();
        worker.scheduler().pass().await.unwrap()
    };
    assert_eq!(pass.published, 1);
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT baggage FROM notifications WHERE game_id = $1")
            .bind(event.game_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored, [Some("tenant=acme".to_owned())]);

    // Confirmed before the pass returned, so the message is in the queue.
    let amqp =
        broker::lapin::Connection::connect(&test_support::rabbitmq_url(), Default::default())
            .await
            .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    let message = channel
        .basic_get(
            names["BOT_QUEUE"].as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the notification in the bot's queue");
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let header = |key: &str| match headers.inner().get(key) {
        Some(AMQPValue::LongString(value)) => Some(value.to_string()),
        _ => None,
    };
    assert_eq!(header("baggage").as_deref(), Some("tenant=acme"));
    assert!(
        header("traceparent")
            .unwrap()
            .starts_with(&format!("00-{CAUSE}-"))
    );
    telemetry.shutdown().await;
}

//! The traces the scheduler's notifications go out in, read back from a
//! real OTLP receiver.
//!
//! A test binary of its own: the pass runs under this test's `tracing`
//! dispatcher, set for this thread, and other tests hitting the same
//! callsites on other threads at the same moment can leave them cached as
//! uninteresting to it.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::{Protocol, Telemetry, TelemetryConfig};
use test_support::TestBroker;
use worker::{Config, Worker};

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
    let env = HashMap::from([
        ("DATABASE_URL", database.url().to_owned()),
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
    let worker = Worker::new(&config, &telemetry.meter("worker")).unwrap();

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

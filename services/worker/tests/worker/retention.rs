//! Retention: done rows past their age go, everything else stays.

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use schema::retention::{DELIVERIES, OUTBOX, PROCESSED_MESSAGES, Retention, SENT_NOTIFICATIONS};
use telemetry::db::DbClient;
use telemetry::spans::Peer;

#[tokio::test]
async fn a_sweep_deletes_only_done_rows_older_than_the_retention() {
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    // Two of each: one a day old, one a minute old.
    sqlx::raw_sql(
        "INSERT INTO processed_messages (message_id, processed_at) VALUES \
           (gen_random_uuid(), now() - interval '1 day'), (gen_random_uuid(), now() - interval '1 minute'); \
         INSERT INTO notifications (id, game_id, kind, due_at, status, sent_at) VALUES \
           (gen_random_uuid(), gen_random_uuid(), 'announcement', now(), 'sent', now() - interval '1 day'), \
           (gen_random_uuid(), gen_random_uuid(), 'announcement', now(), 'sent', now() - interval '1 minute'), \
           (gen_random_uuid(), gen_random_uuid(), 'announcement', now() - interval '1 day', 'dead', NULL), \
           (gen_random_uuid(), gen_random_uuid(), 'reminder', now() - interval '1 day', 'pending', NULL); \
         INSERT INTO outbox (message_id, routing_key, payload, created_at, published_at, set_aside_at) VALUES \
           (gen_random_uuid(), 'game.created', '{}', now() - interval '1 day', now() - interval '1 day', NULL), \
           (gen_random_uuid(), 'game.created', '{}', now() - interval '1 day', now() - interval '1 minute', NULL), \
           (gen_random_uuid(), 'game.created', '{}', now() - interval '1 day', NULL, NULL), \
           (gen_random_uuid(), 'game.created', '{}', now() - interval '1 day', NULL, now() - interval '1 day'); \
         INSERT INTO deliveries (notification_id, delivered_at) VALUES \
           (gen_random_uuid(), now() - interval '1 day'), (gen_random_uuid(), now() - interval '1 minute');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let db = DbClient::new("postgresql", Peer::new("localhost", 5432), &meter);
    let retention = Retention::new(
        pool.clone(),
        db,
        &[OUTBOX, PROCESSED_MESSAGES, SENT_NOTIFICATIONS, DELIVERIES],
        Duration::from_secs(3600),
    );

    assert_eq!(retention.sweep().await.unwrap(), 4);
    assert_eq!(retention.sweep().await.unwrap(), 0, "nothing left to sweep");
    let remaining: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM processed_messages), (SELECT count(*) FROM notifications), \
         (SELECT count(*) FROM outbox), (SELECT count(*) FROM deliveries)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // The recent id; the recent sent, the dead and the pending notification;
    // the recent published, the unpublished and the set-aside event; the
    // recent delivery record.
    assert_eq!(remaining, (1, 3, 3, 1));
}

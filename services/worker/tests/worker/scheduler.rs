//! The scheduler: claims, leases, and what counts as an attempt.

use std::collections::HashMap;

use broker::lapin::options::QueueDeclareOptions;
use opentelemetry::metrics::MeterProvider as _;
use test_support::{TestBroker, TestDatabase};
use worker::{Config, Worker};

pub(crate) fn config(database_url: &str, names: &HashMap<&'static str, String>) -> Config {
    let mut env = names.clone();
    env.insert("DATABASE_URL", database_url.to_owned());
    env.insert("RABBITMQ_URL", test_support::rabbitmq_url());
    service_runtime::cli::from_vars::<Config>(env.iter().map(|(k, v)| (*k, v.as_str()))).unwrap()
}

#[tokio::test]
async fn two_workers_never_send_one_notification_twice() {
    let database = test_support::fresh_database().await;
    let database_url = database.url();
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    let broker = TestBroker::new();
    let names = unique_names(&broker);
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let workers = [
        Worker::new(&config(database_url, &names), &meter).unwrap(),
        Worker::new(&config(database_url, &names), &meter).unwrap(),
    ];

    const DUE: i64 = 200;
    sqlx::query(
        "INSERT INTO notifications (id, game_id, kind, due_at) \
         SELECT gen_random_uuid(), gen_random_uuid(), 'announcement', now() - interval '1 minute' \
         FROM generate_series(1, $1)",
    )
    .bind(DUE)
    .execute(&pool)
    .await
    .unwrap();

    // Both drain the same table at once.
    let drain = |worker: &Worker| {
        let scheduler = worker.scheduler().clone();
        async move {
            let mut sent = 0;
            while scheduler.refresh_counts().await.unwrap() > 0 {
                sent += scheduler.pass().await.unwrap().published;
            }
            sent
        }
    };
    let (first, second) = tokio::join!(drain(&workers[0]), drain(&workers[1]));
    assert_eq!(first + second, DUE as usize);

    let (unsent,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM notifications WHERE status <> 'sent'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unsent, 0);
    // Publishes are confirmed before a row is marked, so the queue now holds
    // every message sent: exactly one per notification.
    let amqp =
        broker::lapin::Connection::connect(&test_support::rabbitmq_url(), Default::default())
            .await
            .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            names["BOT_QUEUE"].as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(i64::from(queue.message_count()), DUE);
}

#[tokio::test]
async fn a_notification_of_a_kind_only_a_newer_version_knows_is_marked_dead_not_sent() {
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    // During a rolling upgrade the new version's migration runs while
    // workers of the old version still poll: it widens the CHECK constraint
    // to a kind they do not know, and their claim query returns such rows.
    sqlx::raw_sql(
        "ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check; \
         ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check \
           CHECK (kind IN ('announcement', 'player_joined', 'reminder', 'cancelled', 'poll'))",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notifications (id, game_id, kind, due_at) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 'poll', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let broker = TestBroker::new();
    let names = unique_names(&broker);
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let worker = Worker::new(&config(database.url(), &names), &meter).unwrap();

    let pass = worker.scheduler().pass().await.unwrap();
    assert_eq!((pass.published, pass.set_aside), (0, 1));
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM notifications")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(error.contains("\"poll\""), "{error}");
}

/// The names one test's worker declares on RabbitMQ (all of them: a name
/// left to its default would be the production one), deleted with `broker`.
pub(crate) fn unique_names(broker: &TestBroker) -> HashMap<&'static str, String> {
    HashMap::from([
        ("EVENTS_EXCHANGE", broker.exchange("gamenight.test.events.")),
        (
            "NOTIFICATIONS_EXCHANGE",
            broker.exchange("gamenight.test.notifications."),
        ),
        ("WORKER_QUEUE", broker.queue("gamenight.test.worker.")),
        ("BOT_QUEUE", broker.queue("gamenight.test.bot.")),
    ])
}

/// A fresh, migrated database with one announcement due now; returns the
/// pool and the notification's id.
pub(crate) async fn database_with_a_due_notification() -> (TestDatabase, sqlx::PgPool, uuid::Uuid) {
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notifications (id, game_id, kind, due_at) \
         VALUES ($1, gen_random_uuid(), 'announcement', now())",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    (database, pool, id)
}

/// Status, attempts and whether the notification is claimed.
pub(crate) async fn state_of(pool: &sqlx::PgPool, id: uuid::Uuid) -> (String, i32, bool) {
    sqlx::query_as(
        "SELECT status, attempts, claimed_until IS NOT NULL FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// RabbitMQ away for longer than the notification's attempts would last:
/// the outage is not the notification's fault, so it stays pending with no
/// attempt spent, and goes out once the broker is back.
#[tokio::test]
async fn a_notification_outlives_a_broker_outage_longer_than_its_attempts() {
    let (database, pool, id) = database_with_a_due_notification().await;
    let proxy = test_support::TcpProxy::for_url(&test_support::rabbitmq_url()).await;
    let broker = TestBroker::new();
    let mut env = unique_names(&broker);
    env.insert("DATABASE_URL", database.url().to_owned());
    env.insert("RABBITMQ_URL", proxy.url(&test_support::rabbitmq_url()));
    env.insert("WORKER_MAX_ATTEMPTS", "2".to_owned());
    let config =
        service_runtime::cli::from_vars::<Config>(env.iter().map(|(k, v)| (*k, v.as_str())))
            .unwrap();
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let worker = Worker::new(&config, &meter).unwrap();

    proxy.cut();
    for _ in 0..5 {
        assert!(worker.scheduler().pass().await.is_err());
        assert_eq!(state_of(&pool, id).await, ("pending".to_owned(), 0, false));
    }
    proxy.restore();
    let pass = worker.scheduler().pass().await.unwrap();
    assert_eq!(pass.published, 1);
    assert_eq!(state_of(&pool, id).await, ("sent".to_owned(), 0, false));
}

/// A worker that died holding a claim does not hold it for long: once the
/// lease has ended, another worker publishes the notification.
#[tokio::test]
async fn a_claim_left_by_a_dead_worker_is_taken_over_when_its_lease_ends() {
    let (database, pool, id) = database_with_a_due_notification().await;
    let broker = TestBroker::new();
    let worker = Worker::new(
        &config(database.url(), &unique_names(&broker)),
        &opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test"),
    )
    .unwrap();
    // As a worker killed mid-pass leaves it.
    sqlx::query("UPDATE notifications SET claimed_until = now() + interval '1 hour' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(worker.scheduler().pass().await.unwrap().claimed, 0);

    sqlx::query(
        "UPDATE notifications SET claimed_until = now() - interval '1 second' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(worker.scheduler().pass().await.unwrap().published, 1);
    assert_eq!(state_of(&pool, id).await.0, "sent");
}

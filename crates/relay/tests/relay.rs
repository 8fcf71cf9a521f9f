//! The relay loop against real PostgreSQL and RabbitMQ: a table of its own
//! in a fresh database, an exchange and queue of its own.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use broker::lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use broker::lapin::types::{AMQPValue, FieldTable};
use broker::{Broker, Origin, Topology};
use opentelemetry::metrics::MeterProvider as _;
use relay::{Outgoing, Relay, RelayError, Settings, Table};
use sqlx::PgPool;
use telemetry::db::DbClient;
use telemetry::spans::Peer;
use test_support::{TestBroker, TestDatabase};

const CREATE: &str = "CREATE TABLE items (
    id bigint PRIMARY KEY,
    routing_key text NOT NULL,
    published_at timestamptz,
    set_aside_at timestamptz,
    claimed_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    last_error text
)";

/// A minimal table following the [`Table`] contract, as the outbox does.
static TABLE: Table = Table {
    name: "items",
    claim: "WITH claimed AS (UPDATE items SET claimed_until = now() + make_interval(secs => $2) \
         WHERE id IN (SELECT id FROM items WHERE published_at IS NULL AND set_aside_at IS NULL \
         AND (claimed_until IS NULL OR claimed_until <= now()) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, routing_key) SELECT * FROM claimed ORDER BY id",
    published: "UPDATE items SET published_at = now(), claimed_until = NULL WHERE id = ANY($1)",
    failed: "UPDATE items SET attempts = attempts + 1, last_error = $2, \
         set_aside_at = CASE WHEN attempts + 1 >= $3 THEN now() END, \
         claimed_until = now() + interval '1 hour' WHERE id = $1 RETURNING set_aside_at IS NOT NULL",
    release: "UPDATE items SET claimed_until = NULL WHERE id = ANY($1)",
    counts: "SELECT (SELECT count(*) FROM items WHERE published_at IS NULL AND set_aside_at IS NULL), \
         (SELECT count(*) FROM items WHERE set_aside_at IS NOT NULL)",
};

#[derive(Debug, sqlx::FromRow)]
struct Item {
    id: i64,
    routing_key: String,
}

impl relay::Row for Item {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn message(&self) -> Result<Outgoing, String> {
        Ok(Outgoing {
            routing_key: self.routing_key.clone(),
            message_id: self.id.to_string(),
            // Big enough that a batch takes a moment on the wire.
            payload: vec![b' '; PAYLOAD],
            origin: Origin::Current,
        })
    }
}

const PAYLOAD: usize = 16 * 1024;

/// One test's servers: a fresh database with the `items` table, an exchange
/// of its own, and a queue bound to `item.ok` on it.
struct Fixture {
    /// Dropped after the pool: the database, then the exchange.
    pool: PgPool,
    _database: TestDatabase,
    _broker: TestBroker,
    exchange: String,
    queue: String,
    /// A direct connection, for counting and reading the queue.
    direct: Broker,
}

impl Fixture {
    /// `queue_arguments` go into the queue's declaration.
    async fn new(queue_arguments: FieldTable) -> Self {
        let database = test_support::fresh_database().await;
        let pool = PgPool::connect(database.url()).await.unwrap();
        sqlx::query(CREATE).execute(&pool).await.unwrap();
        let names = TestBroker::new();
        let exchange = names.exchange("gamenight.test.relay.");
        let queue = test_support::unique_name("gamenight.test.relay.q.");
        let direct = broker(&test_support::rabbitmq_url(), &exchange);
        // Declares the exchange.
        let channel = direct.consumer_channel().await.unwrap();
        channel
            .queue_declare(
                queue.as_str().into(),
                // Gone with the test's connection.
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                queue_arguments,
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "item.ok".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            pool,
            _database: database,
            _broker: names,
            exchange,
            queue,
            direct,
        }
    }

    /// Rows `1..=count`, routed to the queue except those in `unbound`.
    async fn insert(&self, count: i64, unbound: &[i64]) {
        sqlx::query(
            "INSERT INTO items (id, routing_key) SELECT i, \
             CASE WHEN i = ANY($2) THEN 'item.unbound' ELSE 'item.ok' END \
             FROM generate_series(1, $1) AS i",
        )
        .bind(count)
        .bind(unbound)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// A relay of the items to the exchange through `broker`.
    fn relay(&self, broker: Broker, batch: i64) -> Relay<Item> {
        self.lingering_relay(broker, batch, Duration::ZERO)
    }

    /// [`Fixture::relay`], waiting `linger` between passes.
    fn lingering_relay(&self, broker: Broker, batch: i64, linger: Duration) -> Relay<Item> {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        Relay::new(
            &TABLE,
            self.pool.clone(),
            DbClient::new("postgresql", Peer::new("localhost", 5432), &meter),
            Arc::new(broker),
            self.exchange.clone(),
            Settings {
                batch,
                lease: Duration::from_secs(60),
                max_attempts: 5,
                interval: Duration::from_secs(1),
                linger,
            },
            meter.u64_counter("test.items").build(),
        )
    }

    /// Ids of the rows marked published.
    async fn published(&self) -> HashSet<i64> {
        sqlx::query_scalar("SELECT id FROM items WHERE published_at IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Takes every message off the queue and returns their ids, in order.
    async fn take_all(&self) -> Vec<i64> {
        let channel = self.direct.consumer_channel().await.unwrap();
        let mut ids = Vec::new();
        while let Some(message) = channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let id = message.delivery.properties.message_id().clone().unwrap();
            ids.push(id.as_str().parse().unwrap());
        }
        ids
    }
}

/// A broker for `url` that declares only `exchange` (the tests declare their
/// queues themselves, with arguments the topology does not know).
fn broker(url: &str, exchange: &str) -> Broker {
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    Broker::new(
        url.to_owned().into(),
        Topology {
            exchanges: vec![exchange.to_owned()],
            queues: Vec::new(),
        },
        &meter,
    )
    .unwrap()
}

/// Attempts, claim and error of each row not published, by id.
async fn unpublished(pool: &PgPool) -> Vec<(i64, i32, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT id, attempts, claimed_until IS NOT NULL, last_error FROM items \
         WHERE published_at IS NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn unroutable_rows_in_a_batch_spend_their_own_attempt_and_the_others_are_marked() {
    let fixture = Fixture::new(FieldTable::default()).await;
    fixture.insert(20, &[3, 17]).await;
    let relay = fixture.relay(broker(&test_support::rabbitmq_url(), &fixture.exchange), 20);

    let pass = relay.pass().await.unwrap();

    assert_eq!(
        (pass.claimed, pass.published, pass.retried, pass.set_aside),
        (20, 18, 2, 0)
    );
    let expected: Vec<i64> = (1..=20).filter(|id| ![3, 17].contains(id)).collect();
    assert_eq!(
        fixture.published().await,
        expected.iter().copied().collect::<HashSet<_>>()
    );
    let refused = unpublished(&fixture.pool).await;
    assert_eq!(
        refused
            .iter()
            .map(|row| (row.0, row.1, row.2))
            .collect::<Vec<_>>(),
        [(3, 1, true), (17, 1, true)],
        "id, attempts, waiting for the retry"
    );
    for (_, _, _, error) in &refused {
        assert!(error.as_deref().unwrap().contains("no queue is bound"));
    }
    assert_eq!(
        fixture.take_all().await,
        expected,
        "queued once each, in order"
    );
}

/// RabbitMQ refuses part of a batch for its own reasons (a full queue that
/// rejects publishes nacks them): the confirmed rows are marked, the
/// nacked ones are released with no attempt spent, and the pass reports the
/// broker's failure.
#[tokio::test]
async fn a_batch_partly_nacked_marks_the_confirmed_rows_and_releases_the_rest_untouched() {
    let mut full_after_five = FieldTable::default();
    full_after_five.insert("x-max-length".into(), AMQPValue::LongLongInt(5));
    full_after_five.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let fixture = Fixture::new(full_after_five).await;
    fixture.insert(12, &[]).await;
    let relay = fixture.relay(broker(&test_support::rabbitmq_url(), &fixture.exchange), 12);

    let err = relay.pass().await.unwrap_err();

    assert!(
        matches!(err, RelayError::Broker(broker::BrokerError::Nacked)),
        "{err}"
    );
    assert_eq!(fixture.published().await, (1..=5).collect());
    assert_eq!(
        unpublished(&fixture.pool).await,
        (6..=12).map(|id| (id, 0, false, None)).collect::<Vec<_>>(),
        "released as they were"
    );
    assert_eq!(fixture.take_all().await, (1..=5).collect::<Vec<_>>());
}

/// The connection to RabbitMQ is cut while a batch is in flight: every row
/// marked published is in the queue, every other row is released with no
/// attempt spent, and once RabbitMQ is back each row goes out, the released
/// ones at most once more.
#[tokio::test]
async fn a_connection_cut_mid_batch_marks_only_confirmed_rows_and_loses_none() {
    let fixture = Fixture::new(FieldTable::default()).await;
    const ROWS: i64 = 2000;
    fixture.insert(ROWS, &[]).await;
    let proxy = test_support::TcpProxy::for_url(&test_support::rabbitmq_url()).await;
    let relay = fixture.relay(
        broker(&proxy.url(&test_support::rabbitmq_url()), &fixture.exchange),
        ROWS,
    );

    let pass = tokio::spawn({
        let relay = relay.clone();
        async move { relay.pass().await }
    });
    // Cut once the first messages have reached the queue, with the rest
    // (32 MB in all) still on the way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fixture.direct.ready_messages(&fixture.queue).await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    let err = pass.await.unwrap().unwrap_err();
    assert!(matches!(err, RelayError::Broker(_)), "{err}");

    let marked = fixture.published().await;
    assert!(
        marked.len() < ROWS as usize,
        "the cut came too late to test"
    );
    let first_round: HashSet<i64> = fixture.take_all().await.into_iter().collect();
    assert!(
        marked.is_subset(&first_round),
        "a row was marked that RabbitMQ does not have"
    );
    for (id, attempts, claimed, _) in unpublished(&fixture.pool).await {
        assert_eq!(
            (attempts, claimed),
            (0, false),
            "row {id} not released as it was"
        );
    }

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while relay.refresh_counts().await.unwrap() > 0 {
        let _ = relay.pass().await;
        assert!(tokio::time::Instant::now() < deadline, "never drained");
    }
    let second_round = fixture.take_all().await;
    assert!(
        second_round.iter().all(|id| !marked.contains(id)),
        "a row marked before the cut went out again"
    );
    let all: HashSet<i64> = first_round.iter().chain(&second_round).copied().collect();
    assert_eq!(all, (1..=ROWS).collect(), "every row reached the queue");
}

/// A service told to stop while a backlog waits makes one last pass and
/// leaves the rest for the next start: draining all of it would hold the
/// process past its grace period (a POST load left 30 s of it).
#[tokio::test]
async fn on_shutdown_the_relay_publishes_one_last_batch_and_leaves_the_backlog() {
    let fixture = Fixture::new(FieldTable::default()).await;
    fixture.insert(50, &[]).await;
    let relay = fixture.relay(broker(&test_support::rabbitmq_url(), &fixture.exchange), 10);
    let shutdown = tokio_util::sync::CancellationToken::new();
    shutdown.cancel();

    relay.drain(&shutdown).await.unwrap();
    assert!(
        fixture.published().await.is_empty(),
        "a stopped drain publishes nothing"
    );

    relay.run(shutdown).await;
    assert_eq!(fixture.published().await, (1..=10).collect());
    assert_eq!(fixture.take_all().await, (1..=10).collect::<Vec<_>>());
}

/// A drain passes until a batch comes back short, so a backlog of several
/// batches goes out in one wake-up, in order.
#[tokio::test]
async fn a_drain_publishes_a_backlog_of_several_batches() {
    let fixture = Fixture::new(FieldTable::default()).await;
    fixture.insert(25, &[]).await;
    let relay = fixture.relay(broker(&test_support::rabbitmq_url(), &fixture.exchange), 10);

    relay
        .drain(&tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(fixture.published().await, (1..=25).collect());
    assert_eq!(fixture.take_all().await, (1..=25).collect::<Vec<_>>());
}

/// Woken again soon after a pass, the relay waits out its linger, and the
/// rows written meanwhile go out together: one claim, one mark.
#[tokio::test]
async fn rows_written_while_the_relay_lingers_go_out_in_one_pass() {
    let fixture = Fixture::new(FieldTable::default()).await;
    let linger = Duration::from_millis(500);
    let relay = fixture.lingering_relay(
        broker(&test_support::rabbitmq_url(), &fixture.exchange),
        10,
        linger,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    fixture.insert(1, &[]).await;

    let first = std::time::Instant::now();
    relay.drain(&shutdown).await.unwrap();
    assert!(first.elapsed() < linger, "the first row waited for nothing");
    for id in 2..=4 {
        sqlx::query("INSERT INTO items (id, routing_key) VALUES ($1, 'item.ok')")
            .bind(id)
            .execute(&fixture.pool)
            .await
            .unwrap();
    }
    relay.drain(&shutdown).await.unwrap();

    assert!(first.elapsed() >= linger, "the second pass lingered");
    let marks: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT published_at) FROM items WHERE id BETWEEN 2 AND 4",
    )
    .fetch_one(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(marks, 1, "rows 2 to 4 marked by one statement");
    assert_eq!(fixture.take_all().await, (1..=4).collect::<Vec<_>>());
}

/// Under load the relay is woken for every write: it counts the waiting rows
/// for its gauges at most once an interval (1 s here), not on every wake-up,
/// and the rows written between counts are published all the same.
#[tokio::test]
async fn the_gauges_are_counted_at_most_once_an_interval() {
    let fixture = Fixture::new(FieldTable::default()).await;
    let relay = fixture.relay(broker(&test_support::rabbitmq_url(), &fixture.exchange), 10);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pending = relay.pending();
    fixture.insert(5, &[]).await;

    relay.drain(&shutdown).await.unwrap();
    assert_eq!(
        pending.load(Ordering::Relaxed),
        5,
        "counted before the pass"
    );
    sqlx::query("INSERT INTO items (id, routing_key) VALUES (6, 'item.ok'), (7, 'item.ok')")
        .execute(&fixture.pool)
        .await
        .unwrap();
    relay.drain(&shutdown).await.unwrap();
    assert_eq!(fixture.published().await, (1..=7).collect());
    assert_eq!(
        pending.load(Ordering::Relaxed),
        5,
        "not counted again within the interval"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    relay.drain(&shutdown).await.unwrap();
    assert_eq!(
        pending.load(Ordering::Relaxed),
        0,
        "counted after the interval"
    );
}

//! The sweep against the real servers: what a killed run left over an hour
//! ago goes, what a run still going made stays.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use sqlx::{Connection as _, PgConnection};
use test_support::sweep::{self, Select};

/// A stamp as [`test_support::unique_name`] makes them, `age` ago.
fn stamp_from(age: Duration) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let fresh = test_support::unique_name("");
    let (_, random) = fresh.split_once('_').unwrap();
    format!("{}_{random}", (now - age).as_secs())
}

/// A database, a queue and an exchange named with `stamp`.
async fn make(stamp: &str) -> [String; 3] {
    let names = [
        format!("gamenight_test_{stamp}"),
        format!("gamenight.test.{stamp}.q"),
        format!("gamenight.test.{stamp}.x"),
    ];
    let mut admin = PgConnection::connect(&test_support::database_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {}", names[0])))
        .execute(&mut admin)
        .await
        .unwrap();
    let channel = amqp().await.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(names[1].as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    channel
        .exchange_declare(
            names[2].as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    names
}

async fn amqp() -> Connection {
    Connection::connect(
        &test_support::rabbitmq_url(),
        ConnectionProperties::default(),
    )
    .await
    .unwrap()
}

/// Whether the database, queue and exchange of `names` still exist.
async fn exist(names: &[String; 3]) -> [bool; 3] {
    [
        database_exists(&names[0]).await,
        queue_exists(&names[1]).await,
        exchange_exists(&names[2]).await,
    ]
}

async fn database_exists(name: &str) -> bool {
    let mut admin = PgConnection::connect(&test_support::database_url())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

// A passive declare of a missing name fails, and closes its channel: a
// connection each.
async fn queue_exists(name: &str) -> bool {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let channel = amqp().await.create_channel().await.unwrap();
    channel
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
        .is_ok()
}

async fn exchange_exists(name: &str) -> bool {
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let channel = amqp().await.create_channel().await.unwrap();
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn what_is_over_an_hour_old_goes_and_what_is_younger_stays() {
    let old = make(&stamp_from(Duration::from_secs(2 * 3600))).await;
    let young = make(&stamp_from(Duration::from_secs(60))).await;

    let swept = sweep::run(
        &test_support::database_url(),
        &test_support::rabbitmq_url(),
        Select::OlderThan(Duration::from_secs(3600)),
    )
    .await
    .unwrap();

    // Only rabbitmqctl lists queues and exchanges: without it the sweep
    // skips them, and this test would check nothing of them.
    assert!(
        swept.skipped.is_empty(),
        "queues and exchanges skipped (this test needs rabbitmqctl, and RabbitMQ on this machine): {swept:?}"
    );
    assert!(swept.removed["databases"].contains(&old[0]), "{swept:?}");
    assert!(swept.removed["queues"].contains(&old[1]), "{swept:?}");
    assert!(swept.removed["exchanges"].contains(&old[2]), "{swept:?}");
    assert_eq!(exist(&old).await, [false; 3]);
    assert_eq!(exist(&young).await, [true; 3]);

    // And by stamp, whatever the age.
    let stamp = sweep::stamp(&young[0]).unwrap().to_owned();
    sweep::run(
        &test_support::database_url(),
        &test_support::rabbitmq_url(),
        Select::Stamp(&stamp),
    )
    .await
    .unwrap();
    assert_eq!(exist(&young).await, [false; 3]);
}

#[tokio::test]
async fn a_test_broker_deletes_its_names_and_their_dead_letter_pair_when_dropped() {
    let broker = test_support::TestBroker::new();
    let queue = broker.queue("gamenight.test.guard.");
    let exchange = broker.exchange("gamenight.test.guard.");
    let channel = amqp().await.create_channel().await.unwrap();
    for name in [queue.clone(), format!("{queue}.dlq")] {
        channel
            .queue_declare(
                name.as_str().into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    for name in [exchange.clone(), format!("{queue}.dlx")] {
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Fanout,
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let database = test_support::fresh_database().await;
    let database_name = database.url().rsplit('/').next().unwrap().to_owned();
    let all = async || {
        [
            database_exists(&database_name).await,
            queue_exists(&queue).await,
            queue_exists(&format!("{queue}.dlq")).await,
            exchange_exists(&exchange).await,
            // A passive declare checks the name, not the kind.
            exchange_exists(&format!("{queue}.dlx")).await,
        ]
    };
    assert_eq!(all().await, [true; 5]);

    drop((broker, database));

    assert_eq!(all().await, [false; 5]);
}

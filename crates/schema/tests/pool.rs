//! The services' pool (`connect_lazy`) against a real server: a transaction
//! whose future is dropped while it begins (an HTTP client that disconnects
//! mid-request, a task stopped at shutdown) must not stay open on the pooled
//! connection. If it did, the next borrower's statements would run inside
//! it: an autocommit write left uncommitted, holding its row locks until
//! someone else happened to commit or roll back on that connection
//! (sqlx 0.9.0; transact-rs/sqlx#4393, fixed in 0.9.1).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::str::FromStr;
use std::task::Poll;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// Polls `future` `times` times, sleeping between polls so that the
/// server's answers arrive, then drops it unfinished. True if it finished.
async fn poll_then_drop<F: Future>(future: F, times: usize) -> bool {
    let mut future = std::pin::pin!(future);
    for _ in 0..times {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if polled.is_ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// The state PostgreSQL reports for the connection of `application` once
/// `pool` has it back: `idle`, or `idle in transaction` for one left open.
async fn state_when_returned(
    pool: &PgPool,
    observer: &mut PgConnection,
    application: &str,
) -> String {
    let returned = pool.acquire().await.unwrap();
    let state =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE application_name = $1")
            .bind(application)
            .fetch_one(observer)
            .await
            .unwrap();
    drop(returned);
    state
}

#[tokio::test]
async fn a_transaction_dropped_while_it_begins_is_not_left_open() {
    let application = test_support::unique_name("gamenight_test_pool");
    let options = PgConnectOptions::from_str(&test_support::database_url())
        .unwrap()
        .application_name(&application);
    // One connection, so every borrower gets the one the dropped future had.
    let (pool, _db) = schema::connect_lazy(&options, 1, &opentelemetry::global::meter("test"));
    let mut observer = PgConnection::connect(&test_support::database_url())
        .await
        .unwrap();
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    assert_eq!(
        state_when_returned(&pool, &mut observer, &application).await,
        "idle"
    );

    // Dropped after one poll, two, …: one of them is while BEGIN is on its
    // way, the others before it is sent or after it is answered.
    let mut finished = false;
    for times in 1..=10 {
        finished = poll_then_drop(pool.begin(), times).await;
        assert_eq!(
            state_when_returned(&pool, &mut observer, &application).await,
            "idle",
            "a begin dropped after {times} polls left its transaction open on the connection"
        );
        if finished {
            break;
        }
    }
    assert!(finished, "begin never finished in 10 polls");
}

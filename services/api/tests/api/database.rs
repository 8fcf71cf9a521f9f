//! PostgreSQL restarting or unreachable: a dropped connection is retried, an
//! outage is a 503 the client may retry, never a 500.

use std::time::Duration;

use serde_json::Value;
use test_support::TcpProxy;

use crate::helpers::{Servers, TestApp, game_body};

/// An admin connection to the test's own database.
async fn admin(servers: &Servers) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&servers.database_url)
        .await
        .unwrap()
}

/// Terminates the backends of the test's database that wait on a lock, as a
/// PostgreSQL restart terminates the transactions open at the time; returns
/// how many it terminated.
///
/// (Idle pooled connections killed this way are harmless: sqlx pings a
/// connection before handing it out. Only those are spared here, so that
/// the retry cannot race the death of an idle connection it was handed.)
async fn terminate_blocked(admin: &mut sqlx::PgConnection) -> usize {
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND wait_event_type = 'Lock'",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    terminated.len()
}

#[tokio::test]
async fn a_connection_dropped_mid_transaction_is_retried_once_and_the_write_succeeds() {
    let app = TestApp::spawn().await;
    app.create_game(4).await;
    let admin = admin(&app.servers).await;
    let mut conn = admin.acquire().await.unwrap();

    // Block inserts into games so the api's transaction stops inside, before
    // COMMIT. (Not the outbox: the relay would queue on that lock too.)
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    sqlx::query("LOCK TABLE games IN SHARE MODE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut request = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/games");
        async move { client.post(url).json(&game_body(4)).send().await.unwrap() }
    });
    wait_for_a_blocked_backend(&mut conn).await;
    // The api's connection dies mid-transaction, as in a restart.
    assert_eq!(terminate_blocked(&mut conn).await, 1);
    // Its retry blocks on the lock again; let it through.
    tokio::select! {
        () = wait_for_a_blocked_backend(&mut conn) => {}
        response = &mut request => {
            panic!("answered {} without retrying", response.unwrap().status())
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();

    let response = request.await.unwrap();
    assert_eq!(response.status(), 201);
    let (games,): (i64,) = sqlx::query_as("SELECT count(*) FROM games")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(games, 2, "the retried write happened once");
}

/// Polls until a backend of this database waits on a lock.
async fn wait_for_a_blocked_backend(conn: &mut sqlx::PgConnection) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Inside a transaction, pg_stat_activity is read once and kept:
        // drop that snapshot so each poll sees the present.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (blocked,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if blocked > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request blocked on the lock"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn with_postgresql_cut_writes_answer_503_with_retry_after_and_readyz_names_it() {
    let mut servers = Servers::fresh().await;
    let proxy = TcpProxy::for_url(&servers.database_url).await;
    servers.database_url = proxy.url(&servers.database_url);
    let app = TestApp::spawn_with(servers).await;
    app.create_game(4).await;

    proxy.cut();
    let response = app.post("/games", game_body(4)).await;
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "a 503 says when to retry"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    let port = proxy.addr().port().to_string();
    assert!(
        !body.contains(&port) && !body.contains("127.0.0.1"),
        "the body names no server: {body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 503);

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["postgresql"], "down");

    proxy.restore();
    let response = app.post("/games", game_body(4)).await;
    assert_eq!(response.status(), 201, "back once PostgreSQL is");
}

#[tokio::test]
async fn the_openapi_document_says_which_routes_can_answer_503() {
    let app = TestApp::spawn().await;
    let openapi: Value = app.get("/openapi.json").await.json().await.unwrap();
    for (path, method) in [
        ("/games", "post"),
        ("/games", "get"),
        ("/games/{id}", "get"),
        ("/games/{id}/participants", "post"),
        ("/games/{id}/participants/{player}", "delete"),
        ("/games/{id}/cancel", "post"),
    ] {
        let unavailable = &openapi["paths"][path][method]["responses"]["503"];
        assert!(
            unavailable["headers"]["retry-after"].is_object(),
            "{method} {path}: {unavailable}"
        );
    }
}

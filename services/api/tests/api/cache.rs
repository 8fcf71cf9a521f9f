//! Cache-aside through Redis: hits, misses, invalidation, and Redis down.

use api::Game;
use redis::AsyncCommands;
use test_support::TcpProxy;

use crate::helpers::{Servers, TestApp};

async fn redis(servers: &Servers) -> redis::aio::MultiplexedConnection {
    redis::Client::open(servers.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_read_fills_the_cache_and_the_next_read_is_served_from_it() {
    let app = TestApp::spawn().await;
    let game = app.create_game(4).await;
    let key = app.servers.cache_key(game.id);
    let mut redis = redis(&app.servers).await;
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "creating does not cache"
    );

    let first: Game = app
        .get(&format!("/games/{}", game.id))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        redis.exists::<_, bool>(&key).await.unwrap(),
        "a miss fills the cache"
    );
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "cached with the configured TTL, got {ttl}"
    );

    // Change the row behind the API's back: a hit still shows the old title.
    let pool = sqlx::PgPool::connect(&app.servers.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE games SET title = 'changed behind the cache' WHERE id = $1")
        .bind(game.id)
        .execute(&pool)
        .await
        .unwrap();
    let second: Game = app
        .get(&format!("/games/{}", game.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second, first, "the second read is a cache hit");
}

#[tokio::test]
async fn every_write_invalidates_the_cached_game() {
    let app = TestApp::spawn().await;
    let game = app.create_game(4).await;
    let path = format!("/games/{}", game.id);
    let key = app.servers.cache_key(game.id);
    let mut redis = redis(&app.servers).await;

    app.get(&path).await;
    app.join(game.id, "grace").await;
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "join invalidates"
    );
    let after_join: Game = app.get(&path).await.json().await.unwrap();
    assert_eq!(after_join.players, ["grace"]);

    app.client
        .delete(app.url(&format!("{path}/participants/grace")))
        .send()
        .await
        .unwrap();
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "leave invalidates"
    );
    let after_leave: Game = app.get(&path).await.json().await.unwrap();
    assert!(after_leave.players.is_empty());

    app.post(&format!("{path}/cancel"), serde_json::json!({}))
        .await;
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "cancel invalidates"
    );
    let after_cancel: Game = app.get(&path).await.json().await.unwrap();
    assert_eq!(after_cancel.status, api::domain::GameStatus::Cancelled);
}

#[tokio::test]
async fn with_redis_down_the_api_answers_from_postgresql() {
    let mut servers = Servers::fresh().await;
    let proxy = TcpProxy::for_url(&servers.redis_url).await;
    servers.redis_url = proxy.url(&servers.redis_url);
    let app = TestApp::spawn_with(servers).await;
    let game = app.create_game(4).await;
    let path = format!("/games/{}", game.id);
    assert_eq!(app.get(&path).await.status(), 200);

    proxy.cut();
    let read = app.get(&path).await;
    assert_eq!(read.status(), 200, "reads fall back to PostgreSQL");
    let read: Game = read.json().await.unwrap();
    assert_eq!(read.id, game.id);
    assert_eq!(
        app.join(game.id, "grace").await.status(),
        201,
        "writes do not need Redis"
    );
    let fresh: Game = app.get(&path).await.json().await.unwrap();
    assert_eq!(fresh.players, ["grace"]);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "the api serves without Redis");
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["redis"], "down");
    assert_eq!(ready["checks"]["postgresql"], "up");

    // Back up: reads go through the cache again. (The copy cached before the
    // outage missed the join's invalidation; CACHE_TTL_SECONDS bounds that.)
    proxy.restore();
    assert_eq!(app.get(&path).await.status(), 200);
}

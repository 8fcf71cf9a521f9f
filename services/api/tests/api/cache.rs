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

/// The game cached under `key`, if a game (not a tombstone) is there.
async fn cached(redis: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<Game> {
    let value: Option<String> = redis.get(key).await.unwrap();
    value.and_then(|json| serde_json::from_str(&json).ok())
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
    assert!(cached(&mut redis, &key).await.is_some());
    app.join(game.id, "grace").await;
    assert_eq!(cached(&mut redis, &key).await, None, "join invalidates");
    let after_join: Game = app.get(&path).await.json().await.unwrap();
    assert_eq!(after_join.players, ["grace"]);

    app.client
        .delete(app.url(&format!("{path}/participants/grace")))
        .send()
        .await
        .unwrap();
    assert_eq!(cached(&mut redis, &key).await, None, "leave invalidates");
    let after_leave: Game = app.get(&path).await.json().await.unwrap();
    assert!(after_leave.players.is_empty());

    app.post(&format!("{path}/cancel"), serde_json::json!({}))
        .await;
    assert_eq!(cached(&mut redis, &key).await, None, "cancel invalidates");
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

#[tokio::test]
async fn while_redis_is_unreachable_reads_skip_it_and_use_it_again_once_it_answers() {
    let mut servers = Servers::fresh().await;
    let proxy = TcpProxy::for_url(&servers.redis_url).await;
    servers.redis_url = proxy.url(&servers.redis_url);
    let app = TestApp::spawn_with(servers).await;
    let game = app.create_game(4).await;
    let path = format!("/games/{}", game.id);
    assert_eq!(app.get(&path).await.status(), 200);

    proxy.cut();
    let before = proxy.connections();
    for _ in 0..20 {
        assert_eq!(app.get(&path).await.status(), 200);
    }
    // The first failure opens the breaker; after it no request waits on a
    // reconnect, only the probe knocks (once a second).
    let attempts = proxy.connections() - before;
    assert!(
        attempts <= 3,
        "{attempts} connection attempts for 20 reads: requests wait on reconnects"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);

    // Empty the cache behind the api's back, then let Redis through: the
    // probe closes the breaker and reads fill the cache again.
    let key = format!("{}game:{}", app.servers.redis_prefix, game.id);
    let mut redis = redis(&Servers {
        redis_url: test_support::redis_url(),
        ..app.servers.clone()
    })
    .await;
    let _: () = redis.del(&key).await.unwrap();
    proxy.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while cached(&mut redis, &key).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache is not used again after Redis came back"
        );
        assert_eq!(app.get(&path).await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_read_that_raced_a_write_cannot_put_the_old_game_back() {
    let app = TestApp::spawn().await;
    let game = app.create_game(4).await;
    let path = format!("/games/{}", game.id);
    let meter = opentelemetry::global::meter("test");
    // A second replica's cache, sharing the key space: it plays the read.
    let reader = api::cache::Cache::new(
        &app.servers.redis_url.clone().into(),
        app.servers.redis_prefix.clone(),
        std::time::Duration::from_secs(60),
        &meter,
    )
    .unwrap();
    // The read missed and fetched the game from PostgreSQL...
    assert_eq!(reader.get(game.id).await, None);
    let old: Game = game.clone();
    // ...a write commits and invalidates...
    assert_eq!(app.join(game.id, "grace").await.status(), 201);
    // ...and only then does the read store what it fetched.
    reader.put(&old).await;

    let read: Game = app.get(&path).await.json().await.unwrap();
    assert_eq!(
        read.players,
        ["grace"],
        "the old game came back from the cache"
    );
}

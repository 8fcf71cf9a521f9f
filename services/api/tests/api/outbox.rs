//! Events leave through the outbox: after commit, exactly once across a
//! RabbitMQ outage, and never for a rolled-back transaction.

use std::time::Duration;

use events::{Envelope, GameEvent};
use opentelemetry::metrics::MeterProvider as _;
use telemetry::db::DbClient;
use telemetry::spans::Peer;
use test_support::TcpProxy;

use crate::helpers::{EventTap, Servers, TestApp};

#[tokio::test]
async fn each_change_publishes_its_event_as_a_persistent_message() {
    let app = TestApp::spawn().await;
    let mut tap = EventTap::bind(&app.servers).await;
    let game = app.create_game(4).await;
    app.join(game.id, "grace").await;
    app.client
        .delete(app.url(&format!("/games/{}/participants/grace", game.id)))
        .send()
        .await
        .unwrap();
    app.post(&format!("/games/{}/cancel", game.id), serde_json::json!({}))
        .await;

    let mut kinds = Vec::new();
    for _ in 0..4 {
        let message = tap.next().await;
        let envelope: Envelope = serde_json::from_value(message.body.clone()).unwrap();
        assert_eq!(envelope.game_id, game.id);
        assert_eq!(message.routing_key, envelope.event.routing_key());
        assert_eq!(message.message_id, Some(envelope.message_id.to_string()));
        assert!(message.persistent);
        kinds.push(message.routing_key);
    }
    assert_eq!(
        kinds,
        [
            "game.created",
            "game.player_joined",
            "game.player_left",
            "game.cancelled"
        ]
    );
}

/// Attempts and publication of the outbox row of `game_id`'s `game.created`.
async fn row_of(pool: &sqlx::PgPool, game_id: uuid::Uuid) -> (i32, bool, bool) {
    sqlx::query_as(
        "SELECT attempts, claimed_until IS NOT NULL, published_at IS NOT NULL FROM outbox \
         WHERE payload->>'game_id' = $1 AND routing_key = 'game.created'",
    )
    .bind(game_id.to_string())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Polls the outbox until the `game.created` row of `game_id` is published,
/// for up to 60 s.
async fn wait_until_published(pool: &sqlx::PgPool, game_id: uuid::Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !row_of(pool, game_id).await.2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was not published within 60 s"
        );
        // Polling a table has no event to wait on; the interval is short.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_event_written_while_rabbitmq_is_down_waits_unchanged_and_is_published_once_it_is_back()
{
    let mut servers = Servers::fresh().await;
    let proxy = TcpProxy::for_url(&servers.rabbitmq_url).await;
    let direct = servers.clone();
    servers.rabbitmq_url = proxy.url(&servers.rabbitmq_url);
    let mut tap = EventTap::bind(&direct).await;
    let app = TestApp::spawn_with(servers).await;
    let pool = sqlx::PgPool::connect(&app.servers.database_url)
        .await
        .unwrap();

    proxy.cut();
    let game = app.create_game(4).await;
    // More failed passes than the outbox's attempts: an outage is not the
    // event's fault, so none of them counts. (The app's own relay runs too:
    // a pass of ours that finds the row claimed by it fails nothing.)
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while failed <= api::outbox::MAX_ATTEMPTS {
        match app.relay.pass().await {
            Err(relay::RelayError::Broker(_)) => failed += 1,
            Ok(pass) => assert_eq!(pass.published, 0),
            Err(other) => panic!("{other}"),
        }
        let (attempts, _, published) = row_of(&pool, game.id).await;
        assert_eq!((attempts, published), (0, false), "attempts, published");
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few failed passes"
        );
    }

    proxy.restore();
    wait_until_published(&pool, game.id).await;
    let delivered = tap.drain(&direct.exchange).await;
    let created: Vec<_> = delivered
        .iter()
        .filter(|m| m.routing_key == "game.created" && m.body["game_id"] == game.id.to_string())
        .collect();
    assert_eq!(created.len(), 1, "published exactly once: {delivered:?}");
}

/// An event RabbitMQ refuses (no queue for its routing key) neither blocks
/// the events behind it nor is retried forever: on its last attempt it is
/// set aside and counted.
#[tokio::test]
async fn a_refused_event_is_set_aside_without_blocking_the_events_behind_it() {
    let app = TestApp::spawn().await;
    // Nothing is bound for "poison.*" on the test's exchange.
    let mut tap = EventTap::bind_to(&app.servers, &["game.#", "test.#"]).await;
    let pool = sqlx::PgPool::connect(&app.servers.database_url)
        .await
        .unwrap();
    let poison = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO outbox (message_id, routing_key, payload, attempts) \
         VALUES ($1, 'poison.unbound', '{}', $2)",
    )
    .bind(poison)
    .bind(api::outbox::MAX_ATTEMPTS as i32 - 1)
    .execute(&pool)
    .await
    .unwrap();

    let game = app.create_game(4).await;
    let next = tap.next().await;
    assert_eq!(next.routing_key, "game.created");
    assert_eq!(next.body["game_id"], game.id.to_string());

    // Published in one batch with the event, whose confirm may be marked
    // before the refusal is recorded: wait for the record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (attempts, set_aside, error) = loop {
        let row: (i32, bool, Option<String>) = sqlx::query_as(
            "SELECT attempts, set_aside_at IS NOT NULL, last_error FROM outbox WHERE message_id = $1",
        )
        .bind(poison)
        .fetch_one(&pool)
        .await
        .unwrap();
        if let (attempts, set_aside, Some(error)) = row {
            break (attempts, set_aside, error);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(attempts, api::outbox::MAX_ATTEMPTS as i32);
    assert!(set_aside);
    assert!(error.contains("no queue is bound"), "{error}");
    app.relay.refresh_counts().await.unwrap();
    let set_aside_gauge = app.relay.set_aside();
    assert_eq!(
        set_aside_gauge.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let app = TestApp::spawn().await;
    let mut tap = EventTap::bind(&app.servers).await;
    let pool = sqlx::PgPool::connect(&app.servers.database_url)
        .await
        .unwrap();
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let db = DbClient::new("postgresql", Peer::new("localhost", 5432), &meter);

    let rolled_back = Envelope::new(uuid::Uuid::new_v4(), GameEvent::Cancelled {});
    let mut tx = pool.begin().await.unwrap();
    api::outbox::enqueue(&db, &mut tx, &rolled_back, None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let committed = Envelope::new(uuid::Uuid::new_v4(), GameEvent::Cancelled {});
    let mut tx = pool.begin().await.unwrap();
    api::outbox::enqueue(&db, &mut tx, &committed, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Publish by hand (the app's own relay may be taking the row meanwhile)
    // until nothing is pending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.relay.refresh_counts().await.unwrap() > 0 {
        app.relay.pass().await.unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox never emptied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = tap.drain(&app.servers.exchange).await;
    let ids: Vec<String> = delivered
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(ids, [committed.message_id.to_string()]);
}

/// docs/DELIVERY.md's SQL for set-aside events, run as written: the event goes
/// out again on the next pass.
#[tokio::test]
async fn the_readme_sql_puts_a_set_aside_event_back_in_the_outbox() {
    let app = TestApp::spawn().await;
    let mut tap = EventTap::bind(&app.servers).await;
    let pool = sqlx::PgPool::connect(&app.servers.database_url)
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO outbox (message_id, routing_key, payload, attempts, set_aside_at, last_error) \
         VALUES ($1, 'game.cancelled', '{}', 10, now(), 'no queue is bound')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(app.relay.pass().await.unwrap().claimed, 0, "set aside");

    let guide = test_support::docs::repo_file("docs/DELIVERY.md");
    let blocks = test_support::docs::code_blocks(&guide, "sql");
    assert_eq!(blocks.len(), 1, "one SQL block in docs/DELIVERY.md");
    sqlx::raw_sql(sqlx::AssertSqlSafe(blocks[0].join("\n")))
        .execute(&pool)
        .await
        .unwrap();
    app.relay.notify();
    let message = tap.next().await;
    assert_eq!(message.message_id, Some(id.to_string()));
}

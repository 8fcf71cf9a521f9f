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

/// Polls the outbox until `check` holds for the row of `game_id`'s
/// `game.created` event, for up to 60 s.
async fn wait_for_row(
    pool: &sqlx::PgPool,
    game_id: uuid::Uuid,
    what: &str,
    check: impl Fn(i32, bool) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (attempts, published): (i32, bool) = sqlx::query_as(
            "SELECT attempts, published_at IS NOT NULL FROM outbox WHERE payload->>'game_id' = $1",
        )
        .bind(game_id.to_string())
        .fetch_one(pool)
        .await
        .unwrap();
        if check(attempts, published) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        // Polling a table has no event to wait on; the interval is short.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_event_written_while_rabbitmq_is_down_is_published_once_it_is_back() {
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
    wait_for_row(
        &pool,
        game.id,
        "a publish attempt failed",
        |attempts, published| attempts >= 1 && !published,
    )
    .await;

    proxy.restore();
    wait_for_row(&pool, game.id, "the event is published", |_, published| {
        published
    })
    .await;
    let delivered = tap.drain(&direct.exchange).await;
    let created: Vec<_> = delivered
        .iter()
        .filter(|m| m.routing_key == "game.created" && m.body["game_id"] == game.id.to_string())
        .collect();
    assert_eq!(created.len(), 1, "published exactly once: {delivered:?}");
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
    api::outbox::enqueue(&db, &mut tx, &rolled_back)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let committed = Envelope::new(uuid::Uuid::new_v4(), GameEvent::Cancelled {});
    let mut tx = pool.begin().await.unwrap();
    api::outbox::enqueue(&db, &mut tx, &committed)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Publish by hand (the app's own relay may be taking the row meanwhile)
    // until nothing is pending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.relay.refresh_backlog().await.unwrap() > 0 {
        app.relay.publish_pending().await.unwrap();
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

//! The pipeline's guarantees: once per event, nothing dropped, bounded
//! retries, and dead letters with a reason.

use std::time::Duration;

use test_support::Reply;

use crate::helpers::{Amqp, Running};

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let amqp = Amqp::connect().await;
    let game_id = uuid::Uuid::new_v4();
    let message_id = uuid::Uuid::new_v4().to_string();
    let event = serde_json::json!({
        "message_id": message_id,
        "occurred_at": chrono::Utc::now(),
        "game_id": game_id,
        "type": "game.player_joined",
        "payload": {"player": "grace"}
    })
    .to_string();
    for _ in 0..3 {
        amqp.publish(
            &names.events_exchange,
            "game.player_joined",
            &message_id,
            event.as_bytes(),
        )
        .await;
    }
    // A later, different event proves the three copies were all consumed.
    let marker = uuid::Uuid::new_v4().to_string();
    let cancelled = serde_json::json!({
        "message_id": marker,
        "occurred_at": chrono::Utc::now(),
        "game_id": game_id,
        "type": "game.cancelled",
        "payload": {}
    })
    .to_string();
    amqp.publish(
        &names.events_exchange,
        "game.cancelled",
        &marker,
        cancelled.as_bytes(),
    )
    .await;
    let pool = sqlx::PgPool::connect(&names.database_url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (applied,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM processed_messages WHERE message_id = $1")
                .bind(uuid::Uuid::parse_str(&marker).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
        if applied == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the marker event was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (joins,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM notifications WHERE game_id = $1 AND kind = 'player_joined'",
    )
    .bind(game_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(joins, 1, "three deliveries of one event, one notification");
    running.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_at_once_with_its_reason() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let amqp = Amqp::connect().await;
    amqp.publish(
        &names.events_exchange,
        "game.created",
        "poison-1",
        b"{not json",
    )
    .await;
    let (body, reason) = amqp
        .next_dead_letter(&format!("{}.dlq", names.worker_queue))
        .await;
    assert_eq!(body, b"{not json");
    assert!(reason.starts_with("malformed event"), "{reason}");
    running.stop().await;
}

#[tokio::test]
async fn a_bot_killed_and_started_again_delivers_what_waited_in_its_queue() {
    let mut running = Running::start(&[]).await;
    let amqp = Amqp::connect().await;
    running.stack.kill("bot").await.unwrap();
    running.create_game(chrono::Duration::hours(3), 60).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while amqp.ready_messages(&running.stack.names.bot_queue).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the announcement never reached the bot's queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running.discord.received().is_empty(), "no bot, no post");

    running.stack.restart("bot").await.unwrap();
    running
        .discord
        .wait_for_requests(1, Duration::from_secs(60))
        .await;
    running.stop().await;
}

#[tokio::test]
async fn a_rate_limited_webhook_is_retried_after_retry_after() {
    let running = Running::start(&[]).await;
    running.discord.reply_next([Reply::RateLimited(0.5)]);
    running.create_game(chrono::Duration::hours(3), 60).await;
    let posts = running
        .discord
        .wait_for_requests(2, Duration::from_secs(60))
        .await;
    assert_eq!(posts[0].reply, Reply::RateLimited(0.5));
    assert_eq!(posts[1].reply, Reply::Delivered);
    assert_eq!(posts[0].body, posts[1].body, "the same message, resent");
    assert!(
        posts[1].at.duration_since(posts[0].at) >= Duration::from_millis(500),
        "waited as Discord asked"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_for_good_is_dead_lettered_after_bounded_attempts() {
    let running = Running::start(&[("BOT_MAX_ATTEMPTS", "3")]).await;
    let names = running.stack.names.clone();
    running.discord.reply_always(Reply::ServerError);
    running.create_game(chrono::Duration::hours(3), 60).await;
    let amqp = Amqp::connect().await;
    let (body, reason) = amqp
        .next_dead_letter(&format!("{}.dlq", names.bot_queue))
        .await;
    let notification: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(notification["kind"], "announcement");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(
        running.discord.received().len(),
        3,
        "exactly the allowed attempts"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_webhook_refusing_the_message_dead_letters_it_without_retrying() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    running.discord.reply_always(Reply::BadRequest);
    running.create_game(chrono::Duration::hours(3), 60).await;
    let amqp = Amqp::connect().await;
    let (_, reason) = amqp
        .next_dead_letter(&format!("{}.dlq", names.bot_queue))
        .await;
    assert!(reason.contains("400"), "{reason}");
    assert_eq!(running.discord.received().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn cancelling_drops_the_pending_reminder_and_announces_the_cancellation() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let game = running.create_game(chrono::Duration::days(2), 60).await;
    let id = game["id"].as_str().unwrap();
    running
        .discord
        .wait_for_requests(1, Duration::from_secs(60))
        .await;
    let cancelled = running
        .client
        .post(format!("{}/games/{id}/cancel", running.stack.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let posts = running
        .discord
        .wait_for_requests(2, Duration::from_secs(60))
        .await;
    assert!(
        posts[1].body["content"]
            .as_str()
            .unwrap()
            .contains("was cancelled"),
        "{:?}",
        posts[1].body
    );

    let pool = sqlx::PgPool::connect(&names.database_url).await.unwrap();
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, status FROM notifications WHERE game_id = $1 ORDER BY created_at",
    )
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        [
            ("announcement".to_owned(), "sent".to_owned()),
            ("cancelled".to_owned(), "sent".to_owned())
        ],
        "the reminder is gone"
    );
    running.stop().await;
}

//! The pipeline's guarantees: once per event, nothing dropped, bounded
//! retries, and dead letters with a reason.

use std::time::Duration;

use test_support::Reply;

use crate::helpers::{Amqp, Running};

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    // One event at a time, in queue order: the marker below is applied only
    // after the three copies. With the default concurrency the marker (a
    // cancellation) could be applied first, and the join then skipped as
    // one of a cancelled game: a failure of the test, not of the worker.
    let running = Running::start(&[("WORKER_CONCURRENCY", "1")]).await;
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
    // A later, different event proves the three copies were all consumed
    // (in order, as the worker takes one at a time here).
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

/// Discord answering 500 is Discord's outage, not the message's fault: more
/// failures than `BOT_MAX_ATTEMPTS` allows are waited out, nothing is
/// dead-lettered, and the announcement is posted once Discord is back.
#[tokio::test]
async fn a_webhook_failing_for_a_while_is_waited_out_not_dead_lettered() {
    let running = Running::start(&[("BOT_MAX_ATTEMPTS", "3")]).await;
    let names = running.stack.names.clone();
    running.discord.reply_always(Reply::ServerError);
    running.create_game(chrono::Duration::hours(3), 60).await;
    // Three failures in a row, then a probe a second: five is more than
    // the attempts allowed.
    running
        .discord
        .wait_for_requests(5, Duration::from_secs(60))
        .await;
    running.discord.reply_always(Reply::Delivered);
    running
        .discord
        .wait_for_requests(6, Duration::from_secs(10))
        .await;
    let posted: Vec<_> = running
        .discord
        .received()
        .into_iter()
        .filter(|post| post.reply == Reply::Delivered)
        .collect();
    assert_eq!(posted.len(), 1, "posted once");
    let amqp = Amqp::connect().await;
    assert_eq!(
        amqp.ready_messages(&format!("{}.dlq", names.bot_queue))
            .await,
        0,
        "nothing dead-lettered"
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
    // The scheduler marks a notification sent once RabbitMQ confirmed it,
    // which can be a moment after the bot already posted it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let kinds = loop {
        let kinds: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, status FROM notifications WHERE game_id = $1 ORDER BY created_at",
        )
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .fetch_all(&pool)
        .await
        .unwrap();
        if kinds.iter().all(|(_, status)| status != "pending")
            || tokio::time::Instant::now() >= deadline
        {
            break kinds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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

/// A notification as the scheduler publishes it.
fn notification_json(id: uuid::Uuid, game_id: uuid::Uuid, kind: &str) -> Vec<u8> {
    serde_json::json!({
        "notification_id": id,
        "game_id": game_id,
        "kind": kind,
        "player": null,
        "due_at": chrono::Utc::now(),
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_redelivered_notification_is_posted_once() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let game = running.create_game(chrono::Duration::hours(3), 60).await;
    let id = game["id"].as_str().unwrap();
    let game_id = uuid::Uuid::parse_str(id).unwrap();
    let first = running
        .discord
        .wait_for_requests(1, Duration::from_secs(60))
        .await;

    // The announcement again, twice, as after a bot killed between posting
    // and acking, or a scheduler that published it twice.
    let pool = sqlx::PgPool::connect(&names.database_url).await.unwrap();
    let (announcement,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM notifications WHERE game_id = $1 AND kind = 'announcement'")
            .bind(game_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let amqp = Amqp::connect().await;
    let body = notification_json(announcement, game_id, "announcement");
    for _ in 0..2 {
        amqp.publish(
            &names.notifications_exchange,
            "notification.announcement",
            &announcement.to_string(),
            &body,
        )
        .await;
    }
    // A join afterwards: once it is posted, the copies before it were handled.
    let joined = running
        .client
        .post(format!("{}/games/{id}/participants", running.stack.api_url))
        .json(&serde_json::json!({"player": "grace"}))
        .send()
        .await
        .unwrap();
    assert!(joined.status().is_success(), "{}", joined.status());
    let posts = running
        .discord
        .wait_for_requests(2, Duration::from_secs(60))
        .await;
    assert!(
        posts[1].body["content"]
            .as_str()
            .unwrap()
            .contains("grace joined"),
        "the copies were posted again: {:?}",
        posts[1].body
    );

    let (message_id,): (Option<String>,) =
        sqlx::query_as("SELECT discord_message_id FROM deliveries WHERE notification_id = $1")
            .bind(announcement)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(message_id, first[0].message_id, "Discord's id is recorded");
    assert!(message_id.is_some());
    let (_, discord) = running.stop().await;
    assert_eq!(discord.received().len(), 2, "one post per notification");
}

#[tokio::test]
async fn a_reminder_of_a_cancelled_game_is_not_posted() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let game = running.create_game(chrono::Duration::hours(3), 60).await;
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
    running
        .discord
        .wait_for_requests(2, Duration::from_secs(60))
        .await;

    // A reminder due after the cancellation, as when the game's creation
    // reached the worker after its cancellation.
    let reminder = uuid::Uuid::new_v4();
    Amqp::connect()
        .await
        .publish(
            &names.notifications_exchange,
            "notification.reminder",
            &reminder.to_string(),
            &notification_json(reminder, uuid::Uuid::parse_str(id).unwrap(), "reminder"),
        )
        .await;
    // Another game's announcement afterwards: once it is posted, the
    // reminder before it was handled.
    running.create_game(chrono::Duration::hours(5), 60).await;
    let posts = running
        .discord
        .wait_for_requests(3, Duration::from_secs(60))
        .await;
    assert!(
        posts[2].body["content"]
            .as_str()
            .unwrap()
            .contains("New game night"),
        "the cancelled game's reminder was posted: {:?}",
        posts[2].body
    );
    let (_, discord) = running.stop().await;
    assert_eq!(discord.received().len(), 3);
}

#[tokio::test]
async fn without_a_webhook_or_dry_run_the_bot_refuses_to_start_naming_both() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["service", "bot"])
        .env_clear()
        .env("RABBITMQ_URL", test_support::rabbitmq_url())
        .env("DATABASE_URL", test_support::database_url())
        .env("API_BASE_URL", "http://127.0.0.1:8000")
        .env("BOT_LISTEN_ADDR", "127.0.0.1:0")
        .env("OTEL_SDK_DISABLED", "true")
        // A bot that starts after all must not outlive the test.
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("the bot exits at once")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DISCORD_WEBHOOK_URL"), "{stderr}");
    assert!(stderr.contains("BOT_DRY_RUN=true"), "{stderr}");
}

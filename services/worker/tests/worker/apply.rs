//! Events of one game applied out of order give the notifications they
//! give in order.

use broker::consumer::Failure;
use chrono::{Duration, Utc};
use events::{Envelope, GameEvent};
use opentelemetry::metrics::MeterProvider as _;
use telemetry::db::DbClient;
use telemetry::spans::Peer;
use worker::apply::{Applied, Applier};

/// An applier on a fresh database, dropped with the returned guard.
async fn applier() -> (Applier, sqlx::PgPool, test_support::TestDatabase) {
    let database = test_support::fresh_database().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    schema::MIGRATOR.run(&pool).await.unwrap();
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let db = DbClient::new("postgresql", Peer::new("localhost", 5432), &meter);
    (Applier::new(pool.clone(), db), pool, database)
}

fn created(game_id: uuid::Uuid) -> Envelope {
    Envelope::new(
        game_id,
        GameEvent::Created {
            title: "Catan".to_owned(),
            host: "ada".to_owned(),
            scheduled_at: Utc::now() + Duration::days(2),
            max_players: 4,
            reminder_minutes: 60,
        },
    )
}

/// Kinds of the pending notifications of `game_id`, sorted.
async fn pending(pool: &sqlx::PgPool, game_id: uuid::Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind FROM notifications WHERE game_id = $1 AND status = 'pending' ORDER BY kind",
    )
    .bind(game_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_cancellation_applied_before_its_games_creation_leaves_no_reminder() {
    let (applier, pool, _database) = applier().await;
    let game = uuid::Uuid::new_v4();

    let cancelled = applier
        .apply(&Envelope::new(game, GameEvent::Cancelled {}))
        .await
        .unwrap();
    let created = applier.apply(&created(game)).await.unwrap();
    let joined = applier
        .apply(&Envelope::new(
            game,
            GameEvent::PlayerJoined {
                player: "grace".to_owned(),
            },
        ))
        .await
        .unwrap();

    assert_eq!(
        (cancelled, created, joined),
        (
            Applied::Notifications(1),
            Applied::Notifications(0),
            Applied::Notifications(0)
        )
    );
    assert_eq!(pending(&pool, game).await, ["cancelled"]);
}

/// The same pair at the same moment, many times over: whichever commits
/// first, no reminder survives the cancellation.
#[tokio::test]
async fn a_creation_and_cancellation_applied_at_once_leave_no_reminder() {
    let (applier, pool, _database) = applier().await;
    for _ in 0..20 {
        let game = uuid::Uuid::new_v4();
        let (create, cancel) = (created(game), Envelope::new(game, GameEvent::Cancelled {}));
        let (created, cancelled) = tokio::join!(applier.apply(&create), applier.apply(&cancel));
        created.unwrap();
        cancelled.unwrap();
        let kinds = pending(&pool, game).await;
        assert!(!kinds.contains(&"reminder".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"cancelled".to_owned()), "{kinds:?}");
    }
}

/// What each event writes, and the count `apply` returns: a creation an
/// announcement due now and a reminder due `reminder_minutes` before the
/// game; a player joining one notice; the same event again nothing.
#[tokio::test]
async fn each_event_writes_its_notifications_due_when_they_should_be_sent() {
    let (applier, pool, _database) = applier().await;
    let game = uuid::Uuid::new_v4();
    let creation = created(game);
    let GameEvent::Created { scheduled_at, .. } = creation.event.clone() else {
        unreachable!()
    };

    assert_eq!(
        applier.apply(&creation).await.unwrap(),
        Applied::Notifications(2)
    );
    let joined = Envelope::new(
        game,
        GameEvent::PlayerJoined {
            player: "linus".to_owned(),
        },
    );
    assert_eq!(
        applier.apply(&joined).await.unwrap(),
        Applied::Notifications(1)
    );
    assert_eq!(applier.apply(&creation).await.unwrap(), Applied::Duplicate);

    let due: Vec<(String, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT kind, due_at FROM notifications WHERE game_id = $1 ORDER BY kind")
            .bind(game)
            .fetch_all(&pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = due.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["announcement", "player_joined", "reminder"]);
    let an_hour_before = scheduled_at - Duration::minutes(60);
    assert!(
        (due[2].1 - an_hour_before).num_milliseconds().abs() < 1,
        "reminder due {}, not an hour before {scheduled_at}",
        due[2].1
    );
    for (kind, at) in &due[..2] {
        assert!(Utc::now() - *at < Duration::seconds(10), "{kind} due {at}");
    }
}

/// A database that is away is waited out (never an attempt of the message);
/// a statement the database refuses is retried and, in the end,
/// dead-lettered. Neither reason repeats where the database is.
#[tokio::test]
async fn a_database_that_is_away_is_unavailable_and_a_refused_statement_transient() {
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let db = DbClient::new("postgresql", Peer::new("localhost", 5432), &meter);
    let body = serde_json::to_vec(&created(uuid::Uuid::new_v4())).unwrap();

    // Nothing listens on port 1: every connection is refused.
    let away = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy("postgres://postgres@127.0.0.1:1/gamenight")
        .unwrap();
    let failure = Applier::new(away, db.clone())
        .apply_message(&body)
        .await
        .unwrap_err();
    let Failure::Unavailable { reason, .. } = failure else {
        panic!("expected Unavailable, got {failure:?}");
    };
    assert!(!reason.contains("127.0.0.1"), "{reason}");

    // A database without the schema: the server refuses the statement.
    let database = test_support::fresh_database().await;
    let bare = sqlx::PgPool::connect(database.url()).await.unwrap();
    let failure = Applier::new(bare, db)
        .apply_message(&body)
        .await
        .unwrap_err();
    let Failure::Transient { reason, .. } = failure else {
        panic!("expected Transient, got {failure:?}");
    };
    // undefined_table, in the server's own words.
    assert!(reason.contains("42P01"), "{reason}");
    assert!(reason.contains("processed_messages"), "{reason}");
}

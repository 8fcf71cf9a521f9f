//! Turning game events into notifications, once per event.

use chrono::{Duration, Utc};
use events::{Envelope, GameEvent, NotificationKind};
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::DbClient;
use uuid::Uuid;

use broker::consumer::Failure;

const MARK_PROCESSED: &str =
    "INSERT INTO processed_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING";
const INSERT_NOTIFICATION: &str = "INSERT INTO notifications \
     (id, game_id, kind, player, due_at, traceparent, tracestate) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const DROP_REMINDERS: &str = "DELETE FROM notifications \
     WHERE game_id = $1 AND kind = 'reminder' AND status = 'pending'";

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Notifications were written (maybe none, for `game.player_left`).
    Notifications(usize),
    /// This event was applied before: a redelivery, ignored.
    Duplicate,
}

/// Applies game events to the notifications table.
#[derive(Debug, Clone)]
pub struct Applier {
    pool: PgPool,
    db: DbClient,
}

impl Applier {
    /// An applier writing through `pool`.
    pub fn new(pool: PgPool, db: DbClient) -> Self {
        Self { pool, db }
    }

    /// Parses and applies one message body.
    ///
    /// Malformed JSON is a [`Failure::Permanent`]: it will never parse. A
    /// database that cannot be reached is [`Failure::Unavailable`]; any other
    /// database error is [`Failure::Transient`].
    pub async fn apply_message(&self, body: &[u8]) -> Result<Applied, Failure> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|err| Failure::Permanent(format!("malformed event: {err}")))?;
        self.apply(&envelope).await.map_err(|err| match err {
            sqlx::Error::Database(_) => Failure::transient(err.to_string()),
            other => Failure::unavailable(other.to_string()),
        })
    }

    /// Applies `envelope` in one transaction with its dedupe record, so a
    /// redelivered event changes nothing.
    #[tracing::instrument(skip_all, fields(event = envelope.event.routing_key(), game.id = %envelope.game_id))]
    pub async fn apply(&self, envelope: &Envelope) -> Result<Applied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let first_time = self
            .db
            .run(
                "INSERT",
                Some("processed_messages"),
                MARK_PROCESSED,
                sqlx::query(MARK_PROCESSED)
                    .bind(envelope.message_id)
                    .execute(&mut *tx),
            )
            .await?
            .rows_affected()
            == 1;
        if !first_time {
            tracing::info!(message_id = %envelope.message_id, "duplicate event ignored");
            return Ok(Applied::Duplicate);
        }
        let now = Utc::now();
        let mut written = 0;
        match &envelope.event {
            GameEvent::Created {
                scheduled_at,
                reminder_minutes,
                ..
            } => {
                self.insert(
                    &mut tx,
                    envelope.game_id,
                    NotificationKind::Announcement,
                    None,
                    now,
                )
                .await?;
                let remind_at = *scheduled_at - Duration::minutes(i64::from(*reminder_minutes));
                self.insert(
                    &mut tx,
                    envelope.game_id,
                    NotificationKind::Reminder,
                    None,
                    remind_at.max(now),
                )
                .await?;
                written = 2;
            }
            GameEvent::PlayerJoined { player } => {
                self.insert(
                    &mut tx,
                    envelope.game_id,
                    NotificationKind::PlayerJoined,
                    Some(player),
                    now,
                )
                .await?;
                written = 1;
            }
            GameEvent::PlayerLeft { .. } => {}
            GameEvent::Cancelled {} => {
                self.db
                    .run(
                        "DELETE",
                        Some("notifications"),
                        DROP_REMINDERS,
                        sqlx::query(DROP_REMINDERS)
                            .bind(envelope.game_id)
                            .execute(&mut *tx),
                    )
                    .await?;
                self.insert(
                    &mut tx,
                    envelope.game_id,
                    NotificationKind::Cancelled,
                    None,
                    now,
                )
                .await?;
                written = 1;
            }
        }
        self.db.run("COMMIT", None, "COMMIT", tx.commit()).await?;
        tracing::info!(notifications = written, "event applied");
        Ok(Applied::Notifications(written))
    }

    async fn insert(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        game_id: Uuid,
        kind: NotificationKind,
        player: Option<&str>,
        due_at: chrono::DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        // The context of the event being processed: an immediate
        // notification continues its trace, a reminder links to it.
        let context = telemetry::propagation::current_context_pairs();
        self.db
            .run(
                "INSERT",
                Some("notifications"),
                INSERT_NOTIFICATION,
                sqlx::query(INSERT_NOTIFICATION)
                    .bind(Uuid::new_v4())
                    .bind(game_id)
                    .bind(kind.as_str())
                    .bind(player)
                    .bind(due_at)
                    .bind(context.get("traceparent"))
                    .bind(context.get("tracestate"))
                    .execute(&mut **tx),
            )
            .await?;
        Ok(())
    }
}

//! Turning game events into notifications, once per event, in whatever
//! order the events arrive.
//!
//! The worker handles several events at once, and several workers share the
//! queue, so the events of one game can be applied in any order, or at the
//! same moment. Two rules make the outcome the same: the events of one game
//! are applied one at a time (a transaction-scoped advisory lock on the
//! game), and once a game's cancellation is applied nothing but the
//! cancellation is scheduled for it. So a cancellation applied before (or
//! beside) its game's creation still leaves no reminder behind.

use chrono::{Duration, Utc};
use events::{Envelope, GameEvent, NotificationKind};
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::{DbClient, DbError};
use telemetry::propagation::StoredContext;
use uuid::Uuid;

use broker::consumer::Failure;

/// Records the event as applied and, the first time only, takes the lock
/// that applies the events of one game one at a time (the first key keeps
/// it apart from any other advisory lock in the database): one row the
/// first time, none for a redelivery. One round trip for both.
const MARK_PROCESSED_AND_LOCK: &str = "WITH processed AS \
     (INSERT INTO processed_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1) \
     SELECT pg_advisory_xact_lock(hashtext('gamenight.game'), hashtext($2::text)) FROM processed";
/// Inserts the event's notifications (the arrays, one element each) unless
/// their game was cancelled (the cancellation itself is inserted before its
/// row exists): one round trip however many.
const INSERT_NOTIFICATIONS: &str = "INSERT INTO notifications \
     (id, game_id, kind, player, due_at, traceparent, tracestate, baggage) \
     SELECT n.id, $2, n.kind, n.player, n.due_at, $6, $7, $8 \
     FROM unnest($1::uuid[], $3::text[], $4::text[], $5::timestamptz[]) AS n(id, kind, player, due_at) \
     WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE game_id = $2 AND kind = 'cancelled')";
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
    /// database that is away ([`DbError::is_transient`]: restarting,
    /// unreachable, no connection free) is [`Failure::Unavailable`], waited
    /// out without spending an attempt; any other database error is
    /// [`Failure::Transient`]. The reason, logged and written on a dead
    /// letter, is the error's safe description, never its `Display`.
    pub async fn apply_message(&self, body: &[u8]) -> Result<Applied, Failure> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|err| Failure::Permanent(format!("malformed event: {err}")))?;
        self.apply(&envelope).await.map_err(|err| {
            let reason = format!("database error {}: {}", err.error_type(), err.describe());
            if err.is_transient() {
                Failure::unavailable(reason)
            } else {
                Failure::transient(reason)
            }
        })
    }

    /// Applies `envelope` in one transaction with its dedupe record, so a
    /// redelivered event changes nothing.
    #[tracing::instrument(skip_all, fields(event = envelope.event.routing_key(), game.id = %envelope.game_id))]
    pub async fn apply(&self, envelope: &Envelope) -> Result<Applied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let query = sqlx::query(MARK_PROCESSED_AND_LOCK)
            .bind(envelope.message_id)
            .bind(envelope.game_id)
            .execute(&mut *tx);
        let first_time = self
            .db
            .run(MARK_PROCESSED_AND_LOCK, query)
            .await?
            .rows_affected()
            == 1;
        if !first_time {
            tracing::info!(message_id = %envelope.message_id, "duplicate event ignored");
            return Ok(Applied::Duplicate);
        }
        let now = Utc::now();
        // (kind, player, due) of each notification the event schedules.
        let notifications = match &envelope.event {
            GameEvent::Created {
                scheduled_at,
                reminder_minutes,
                ..
            } => {
                let remind_at = *scheduled_at - Duration::minutes(i64::from(*reminder_minutes));
                vec![
                    (NotificationKind::Announcement, None, now),
                    (NotificationKind::Reminder, None, remind_at.max(now)),
                ]
            }
            GameEvent::PlayerJoined { player } => {
                vec![(NotificationKind::PlayerJoined, Some(player.as_str()), now)]
            }
            GameEvent::PlayerLeft { .. } => vec![],
            GameEvent::Cancelled {} => {
                let query = sqlx::query(DROP_REMINDERS)
                    .bind(envelope.game_id)
                    .execute(&mut *tx);
                self.db.run(DROP_REMINDERS, query).await?;
                vec![(NotificationKind::Cancelled, None, now)]
            }
        };
        let written = self
            .insert(&mut tx, envelope.game_id, &notifications)
            .await?;
        self.db.run("COMMIT", tx.commit()).await?;
        tracing::info!(notifications = written, "event applied");
        Ok(Applied::Notifications(written))
    }

    /// Inserts `notifications` (kind, player, due) of game `game_id` unless
    /// the game was cancelled; returns how many were inserted.
    async fn insert(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        game_id: Uuid,
        notifications: &[(NotificationKind, Option<&str>, chrono::DateTime<Utc>)],
    ) -> Result<usize, sqlx::Error> {
        if notifications.is_empty() {
            return Ok(0);
        }
        // The context of the event being processed: an immediate
        // notification continues its trace, a reminder links to it.
        let context = StoredContext::current();
        let ids: Vec<Uuid> = notifications.iter().map(|_| Uuid::new_v4()).collect();
        let kinds: Vec<&str> = notifications.iter().map(|n| n.0.as_str()).collect();
        let players: Vec<Option<&str>> = notifications.iter().map(|n| n.1).collect();
        let due: Vec<chrono::DateTime<Utc>> = notifications.iter().map(|n| n.2).collect();
        let query = sqlx::query(INSERT_NOTIFICATIONS)
            .bind(ids)
            .bind(game_id)
            .bind(kinds)
            .bind(players)
            .bind(due)
            .bind(context.traceparent)
            .bind(context.tracestate)
            .bind(context.baggage)
            .execute(&mut **tx);
        let inserted = self.db.run(INSERT_NOTIFICATIONS, query).await?;
        Ok(usize::try_from(inserted.rows_affected()).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::db::Statement;

    /// The span names these statements get, read from their text: the lock
    /// names no table, and the NOT EXISTS subquery does not name the insert.
    #[test]
    fn every_statement_is_named_by_its_operation_and_table() {
        for (sql, operation, collection) in [
            (
                MARK_PROCESSED_AND_LOCK,
                "INSERT",
                Some("processed_messages"),
            ),
            (INSERT_NOTIFICATIONS, "INSERT", Some("notifications")),
            (DROP_REMINDERS, "DELETE", Some("notifications")),
        ] {
            assert_eq!(
                Statement::parse(sql),
                Statement {
                    operation,
                    collection
                },
                "{sql}"
            );
        }
    }
}

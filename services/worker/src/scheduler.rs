//! Publishes due notifications to the bot's queue.
//!
//! The scheduler is a [`relay::Relay`] over the notifications table: due rows
//! are claimed with a lease (`FOR UPDATE SKIP LOCKED`, so any number of
//! workers can run side by side and each notification is published by one of
//! them); a claimed batch is published at once and each row is marked `sent`
//! by its own confirm. A
//! broker that is away leaves the rows pending and spends none of their
//! attempts; only a notification RabbitMQ refuses (or one of a kind this
//! worker does not know) counts an attempt, and after `max_attempts` it is
//! marked `dead` for an operator to re-drive.

use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, Origin};
use chrono::{DateTime, Utc};
use events::{Notification, NotificationKind};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use sqlx::PgPool;
use telemetry::db::DbClient;
use telemetry::propagation::StoredContext;
use uuid::Uuid;

/// The notifications table as a [`relay::Table`]: due rows oldest first,
/// retried after 2, 4, 8 … seconds (at most 5 minutes) when refused.
static TABLE: relay::Table = relay::Table {
    name: "notifications",
    claim: "WITH claimed AS (UPDATE notifications SET claimed_until = now() + make_interval(secs => $2) \
         WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND due_at <= now() \
         AND (claimed_until IS NULL OR claimed_until <= now()) ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, game_id, kind, player, due_at, traceparent, tracestate, baggage) \
         SELECT * FROM claimed ORDER BY due_at",
    published: "UPDATE notifications SET status = 'sent', sent_at = now(), claimed_until = NULL, \
         last_error = NULL WHERE id = ANY($1)",
    failed: "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
         status = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END, \
         claimed_until = now() + least(interval '1 second' * power(2, attempts + 1), interval '5 minutes') \
         WHERE id = $1 RETURNING status = 'dead'",
    release: "UPDATE notifications SET claimed_until = NULL WHERE id = ANY($1)",
    counts: "SELECT (SELECT count(*) FROM notifications WHERE status = 'pending' AND due_at <= now()), \
         (SELECT count(*) FROM notifications WHERE status = 'dead')",
};

/// Notifications claimed per pass.
const BATCH: i64 = 50;
/// How long a claim holds, and how long the notifications a killed worker
/// had claimed wait for the next one (see the outbox's lease in the api).
const LEASE: Duration = Duration::from_secs(15);

/// A due notification as the scheduler claims it.
#[derive(Debug, sqlx::FromRow)]
pub struct Due {
    id: Uuid,
    game_id: Uuid,
    kind: String,
    player: Option<String>,
    due_at: DateTime<Utc>,
    #[sqlx(flatten)]
    context: StoredContext,
}

impl relay::Row for Due {
    type Id = Uuid;

    fn id(&self) -> Uuid {
        self.id
    }

    fn message(&self) -> Result<relay::Outgoing, String> {
        // The CHECK constraint admits only known kinds; a kind a newer
        // schema added is set aside, not sent as something it is not.
        let kind = NotificationKind::parse(&self.kind)
            .ok_or_else(|| format!("unknown notification kind {:?}", self.kind))?;
        let cause = self.context.context();
        // A reminder goes out long after the request that scheduled it: it
        // starts its own trace, linked to that request's.
        let origin = match kind {
            NotificationKind::Reminder => Origin::LinkedTo(cause),
            _ => Origin::ChildOf(cause),
        };
        let message = Notification {
            notification_id: self.id,
            game_id: self.game_id,
            kind,
            player: self.player.clone(),
            due_at: self.due_at,
        };
        Ok(relay::Outgoing {
            routing_key: kind.routing_key(),
            message_id: self.id.to_string(),
            payload: serde_json::to_vec(&message).map_err(|err| err.to_string())?,
            origin,
        })
    }

    fn attributes(&self) -> Vec<KeyValue> {
        // Only known kinds, so the attribute stays low-cardinality.
        let kind = NotificationKind::parse(&self.kind).map_or("unknown", NotificationKind::as_str);
        vec![KeyValue::new("kind", kind)]
    }
}

/// The scheduler: due notifications → the bot's queue.
pub type Scheduler = relay::Relay<Due>;

/// A scheduler publishing to `exchange`, looking every `interval` when not
/// woken, marking a notification dead after `max_attempts` refusals.
pub fn scheduler(
    pool: PgPool,
    db: DbClient,
    broker: Arc<Broker>,
    exchange: String,
    max_attempts: u32,
    interval: Duration,
    meter: &Meter,
) -> Scheduler {
    relay::Relay::new(
        &TABLE,
        pool,
        db,
        broker,
        exchange,
        relay::Settings {
            batch: BATCH,
            lease: LEASE,
            max_attempts,
            interval,
            linger: relay::LINGER,
        },
        meter
            .u64_counter("gamenight.notifications.published")
            .with_unit("{notification}")
            .with_description(
                "Notifications handed to the bot's queue, by kind and outcome: published, retry, set_aside (dead).",
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::db::Statement;

    /// The span names these statements get, read from their text: the claim
    /// is named by the UPDATE in its WITH.
    #[test]
    fn every_statement_is_named_by_its_operation_and_table() {
        for sql in [TABLE.claim, TABLE.published, TABLE.failed, TABLE.release] {
            assert_eq!(
                Statement::parse(sql),
                Statement {
                    operation: "UPDATE",
                    collection: Some("notifications")
                },
                "{sql}"
            );
        }
    }
}

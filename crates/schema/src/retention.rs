//! Retention: rows whose work is done (published events, applied event ids,
//! sent notifications, delivery records) are deleted once older than a configured age, in
//! small batches so a sweep never holds many locks or a long transaction.

use std::time::Duration;

use sqlx::PgPool;
use telemetry::db::{DbClient, DbError as _};
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement; a sweep repeats a statement until it deletes
/// fewer.
const BATCH: i64 = 1000;
/// How often a service sweeps: a day's rows are cheap to keep for minutes.
const INTERVAL: Duration = Duration::from_secs(600);

/// One table's delete: `$1` is the age in seconds past which a done row
/// goes, `$2` the most rows one statement deletes. Use an index on the
/// age column so a sweep with nothing to delete costs a lookup. The spans
/// name its table from it.
pub type Sweep = &'static str;

/// Published outbox events (the api's).
pub const OUTBOX: Sweep = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
     WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)";

/// Ids of applied events: a redelivery comes within minutes, not days.
pub const PROCESSED_MESSAGES: Sweep = "DELETE FROM processed_messages WHERE message_id IN \
     (SELECT message_id FROM processed_messages \
     WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)";

/// Sent notifications. Dead ones stay until an operator re-drives them.
pub const SENT_NOTIFICATIONS: Sweep = "DELETE FROM notifications WHERE id IN \
     (SELECT id FROM notifications \
     WHERE status = 'sent' AND sent_at < now() - make_interval(secs => $1) LIMIT $2)";

/// The bot's delivery records: a notification redelivered later than this
/// would be posted again, so keep them longer than any redelivery takes.
pub const DELIVERIES: Sweep = "DELETE FROM deliveries WHERE notification_id IN \
     (SELECT notification_id FROM deliveries \
     WHERE delivered_at < now() - make_interval(secs => $1) LIMIT $2)";

/// Deletes done rows of some tables once older than `keep`.
#[derive(Debug, Clone)]
pub struct Retention {
    pool: PgPool,
    db: DbClient,
    sweeps: &'static [Sweep],
    keep: Duration,
}

impl Retention {
    /// Sweeps `sweeps` through `pool`, keeping rows younger than `keep`.
    pub fn new(pool: PgPool, db: DbClient, sweeps: &'static [Sweep], keep: Duration) -> Self {
        Self {
            pool,
            db,
            sweeps,
            keep,
        }
    }

    /// One sweep of every table; returns the rows deleted.
    #[tracing::instrument(skip(self), fields(deleted = tracing::field::Empty))]
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        for &sweep in self.sweeps {
            loop {
                let rows = self
                    .db
                    .run(
                        sweep,
                        sqlx::query(sweep)
                            .bind(self.keep.as_secs_f64())
                            .bind(BATCH)
                            .execute(&self.pool),
                    )
                    .await?
                    .rows_affected();
                deleted += rows;
                if rows < BATCH as u64 {
                    break;
                }
            }
        }
        tracing::Span::current().record("deleted", deleted);
        if deleted > 0 {
            tracing::info!(deleted, keep = ?self.keep, "deleted rows past their retention");
        }
        Ok(deleted)
    }

    /// Sweeps every 10 minutes, the first time at once, until `shutdown`.
    /// A failed sweep (PostgreSQL away) is logged and tried at the next tick.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.sweep().await {
                tracing::warn!(
                    error.type = %err.error_type(),
                    error = %err.describe(),
                    "retention sweep failed; trying again in 10 minutes"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::db::Statement;

    /// Each sweep's span is named by its table, read from the DELETE (not
    /// from the subquery that picks the batch).
    #[test]
    fn every_sweep_is_named_by_its_table() {
        for (sweep, table) in [
            (OUTBOX, "outbox"),
            (PROCESSED_MESSAGES, "processed_messages"),
            (SENT_NOTIFICATIONS, "notifications"),
            (DELIVERIES, "deliveries"),
        ] {
            assert_eq!(
                Statement::parse(sweep),
                Statement {
                    operation: "DELETE",
                    collection: Some(table)
                },
                "{sweep}"
            );
        }
    }
}

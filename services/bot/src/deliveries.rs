//! The record of what reached Discord: one `deliveries` row per notification
//! posted, so a notification delivered again inside the system (the bot died
//! before acking, its channel closed mid-message, the scheduler published it
//! twice) is acknowledged without a second post.
//!
//! A delivery starts by inserting its row in a transaction left open while
//! the bot posts ([`Deliveries::claim`]): the uncommitted row is the claim.
//! Another bot handed the same notification meanwhile waits on it, then sees
//! the committed row (a duplicate) or, if the first bot failed or died and
//! its transaction rolled back, takes the claim itself. PostgreSQL releases
//! the claim of a bot that dies, so nothing stays locked.

use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::DbClient;
use uuid::Uuid;

const CLAIM: &str = "INSERT INTO deliveries (notification_id) VALUES ($1) \
     ON CONFLICT (notification_id) DO NOTHING";
// clock_timestamp(): when the post succeeded, not when the claim began.
const COMPLETE: &str = "UPDATE deliveries \
     SET discord_message_id = $2, delivered_at = clock_timestamp() WHERE notification_id = $1";
const RECORD: &str = "INSERT INTO deliveries (notification_id, discord_message_id) \
     VALUES ($1, $2) ON CONFLICT (notification_id) DO NOTHING";

/// The `deliveries` table, through `pool`.
#[derive(Debug, Clone)]
pub struct Deliveries {
    pub(crate) pool: PgPool,
    pub(crate) db: DbClient,
}

/// The right to post one notification, held until it is recorded
/// ([`Deliveries::complete`]) or dropped (the claim is rolled back).
#[derive(Debug)]
pub struct Claim {
    notification_id: Uuid,
    tx: Transaction<'static, Postgres>,
}

impl Deliveries {
    /// Claims `notification_id` for posting: `None` when it was delivered
    /// before. Waits while another bot holds the claim.
    pub async fn claim(&self, notification_id: Uuid) -> Result<Option<Claim>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inserted = self
            .db
            .run(
                CLAIM,
                sqlx::query(CLAIM).bind(notification_id).execute(&mut *tx),
            )
            .await?
            .rows_affected();
        Ok((inserted == 1).then_some(Claim {
            notification_id,
            tx,
        }))
    }

    /// Records the delivery `claim` was taken for, with the message id
    /// Discord gave it, and releases the claim.
    pub async fn complete(
        &self,
        claim: Claim,
        discord_message_id: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = claim.tx;
        self.db
            .run(
                COMPLETE,
                sqlx::query(COMPLETE)
                    .bind(claim.notification_id)
                    .bind(discord_message_id)
                    .execute(&mut *tx),
            )
            .await?;
        self.db.run("COMMIT", tx.commit()).await
    }

    /// Records a delivery whose claim was lost with its connection: the
    /// message was posted, only the row is missing.
    pub async fn record(
        &self,
        notification_id: Uuid,
        discord_message_id: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        self.db
            .run(
                RECORD,
                sqlx::query(RECORD)
                    .bind(notification_id)
                    .bind(discord_message_id)
                    .execute(&self.pool),
            )
            .await?;
        Ok(())
    }
}

impl Claim {
    /// Gives the claim up without recording a delivery: nothing was posted.
    pub async fn release(self) {
        // A failed rollback changes nothing: PostgreSQL discards the
        // transaction with its connection.
        let _ = self.tx.rollback().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::db::Statement;

    /// The span names these statements get, read from their text.
    #[test]
    fn every_statement_is_named_by_its_operation_and_table() {
        for (sql, operation) in [(CLAIM, "INSERT"), (COMPLETE, "UPDATE"), (RECORD, "INSERT")] {
            let collection = Some("deliveries");
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

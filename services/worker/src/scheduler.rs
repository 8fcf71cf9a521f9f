//! Publishes due notifications to the bot's queue.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers
//! can run side by side and each notification is published by one of them.
//! A notification is marked `sent` only once RabbitMQ confirmed it; after
//! `max_attempts` failed publishes it is marked `dead`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use broker::{Broker, BrokerError, Origin};
use chrono::{DateTime, Utc};
use events::{Notification, NotificationKind};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use sqlx::PgPool;
use telemetry::db::DbClient;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DUE: &str = "SELECT count(*) FROM notifications WHERE status = 'pending' AND due_at <= now()";
const CLAIM: &str = "SELECT id, game_id, kind, player, due_at, traceparent, tracestate FROM notifications \
     WHERE status = 'pending' AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED";
const MARK_SENT: &str = "UPDATE notifications SET status = 'sent', sent_at = now(), \
     attempts = attempts + 1, last_error = NULL WHERE id = $1";
const MARK_FAILED: &str = "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
     status = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END WHERE id = $1";

const MARK_DEAD: &str = "UPDATE notifications SET status = 'dead', last_error = $2 WHERE id = $1";

/// Notifications claimed per pass.
const BATCH: i64 = 50;

#[derive(Debug, sqlx::FromRow)]
struct Due {
    id: Uuid,
    game_id: Uuid,
    kind: String,
    player: Option<String>,
    due_at: DateTime<Utc>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// RabbitMQ failed; the notifications before this one were sent.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// The scheduler loop's state.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pool: PgPool,
    db: DbClient,
    broker: Arc<Broker>,
    exchange: String,
    max_attempts: u32,
    interval: Duration,
    wake: Arc<Notify>,
    due: Arc<AtomicI64>,
    sent: Counter<u64>,
}

impl Scheduler {
    /// A scheduler publishing to `exchange`.
    pub fn new(
        pool: PgPool,
        db: DbClient,
        broker: Arc<Broker>,
        exchange: String,
        max_attempts: u32,
        interval: Duration,
        meter: &Meter,
    ) -> Self {
        Self {
            pool,
            db,
            broker,
            exchange,
            max_attempts,
            interval,
            wake: Arc::new(Notify::new()),
            due: Arc::new(AtomicI64::new(0)),
            sent: meter
                .u64_counter("gamenight.notifications.published")
                .with_unit("{notification}")
                .with_description("Notifications handed to the bot's queue, by kind and outcome.")
                .build(),
        }
    }

    /// Wakes the scheduler: new notifications may be due now.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Due notifications as of the last look (the `gamenight.notifications.due` gauge).
    pub fn due(&self) -> Arc<AtomicI64> {
        self.due.clone()
    }

    /// Counts due notifications and updates the gauge. Untraced on purpose:
    /// it runs on every tick, and a span per tick would bury real traces.
    pub async fn refresh_due(&self) -> Result<i64, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(DUE).fetch_one(&self.pool).await?;
        self.due.store(count, Ordering::Relaxed);
        Ok(count)
    }

    /// Publishes up to one batch of due notifications; returns how many were
    /// sent.
    #[tracing::instrument(skip(self), fields(sent = tracing::field::Empty))]
    pub async fn publish_due(&self) -> Result<usize, ScheduleError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Due> = self
            .db
            .run(
                "SELECT",
                Some("notifications"),
                CLAIM,
                sqlx::query_as(CLAIM).bind(BATCH).fetch_all(&mut *tx),
            )
            .await?;
        let mut sent = 0;
        let mut failure = None;
        for row in rows {
            let Some(kind) = NotificationKind::parse(&row.kind) else {
                // The CHECK constraint admits only known kinds; a kind a newer
                // schema added is marked dead, not sent as something it is not.
                let reason = format!("unknown notification kind {:?}", row.kind);
                self.db
                    .run(
                        "UPDATE",
                        Some("notifications"),
                        MARK_DEAD,
                        sqlx::query(MARK_DEAD)
                            .bind(row.id)
                            .bind(reason)
                            .execute(&mut *tx),
                    )
                    .await?;
                continue;
            };
            let published = self.publish(&row, kind).await;
            match published {
                Ok(()) => {
                    self.db
                        .run(
                            "UPDATE",
                            Some("notifications"),
                            MARK_SENT,
                            sqlx::query(MARK_SENT).bind(row.id).execute(&mut *tx),
                        )
                        .await?;
                    self.sent.add(
                        1,
                        &[
                            KeyValue::new("kind", kind.as_str()),
                            KeyValue::new("outcome", "sent"),
                        ],
                    );
                    sent += 1;
                }
                Err(err) => {
                    self.db
                        .run(
                            "UPDATE",
                            Some("notifications"),
                            MARK_FAILED,
                            sqlx::query(MARK_FAILED)
                                .bind(row.id)
                                .bind(err.to_string())
                                .bind(self.max_attempts as i32)
                                .execute(&mut *tx),
                        )
                        .await?;
                    self.sent.add(
                        1,
                        &[
                            KeyValue::new("kind", kind.as_str()),
                            KeyValue::new("outcome", "failed"),
                        ],
                    );
                    failure = Some(err);
                    break;
                }
            }
        }
        self.db.run("COMMIT", None, "COMMIT", tx.commit()).await?;
        tracing::Span::current().record("sent", sent);
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(sent),
        }
    }

    async fn publish(&self, row: &Due, kind: NotificationKind) -> Result<(), BrokerError> {
        let cause = telemetry::propagation::context_from_columns(
            row.traceparent.as_deref(),
            row.tracestate.as_deref(),
        );
        // A reminder goes out long after the request that scheduled it: it
        // starts its own trace, linked to that request's.
        let origin = match kind {
            NotificationKind::Reminder => Origin::LinkedTo(cause),
            _ => Origin::ChildOf(cause),
        };
        let message = Notification {
            notification_id: row.id,
            game_id: row.game_id,
            kind,
            player: row.player.clone(),
            due_at: row.due_at,
        };
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        self.broker
            .publish(
                &self.exchange,
                &kind.routing_key(),
                &row.id.to_string(),
                &payload,
                origin,
            )
            .await
    }

    /// Publishes until `shutdown` is cancelled: when woken, every interval,
    /// and with backoff while PostgreSQL or RabbitMQ fail.
    pub async fn run(self, shutdown: CancellationToken) {
        service_runtime::periodic::run(
            "scheduler pass (notifications stay pending)",
            &self.wake,
            self.interval,
            &shutdown,
            || self.drain(),
        )
        .await;
    }

    async fn drain(&self) -> Result<(), ScheduleError> {
        while self.refresh_due().await? > 0 {
            if self.publish_due().await? == 0 {
                break;
            }
        }
        Ok(())
    }
}

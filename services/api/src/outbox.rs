//! The transactional outbox: events are written in the transaction of the
//! change they describe, and a relay publishes them afterwards.
//!
//! Guarantees: an event is published only after its transaction committed
//! (the relay reads committed rows), and it stays pending until RabbitMQ has
//! confirmed it, so an outage delays events but loses none. If the process
//! dies between the confirm and marking the row, the event is published again:
//! delivery is at least once, and consumers dedupe on `message_id`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use broker::{Broker, BrokerError};
use events::Envelope;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::DbClient;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const INSERT: &str = "INSERT INTO outbox (message_id, routing_key, payload, traceparent, tracestate) \
     VALUES ($1, $2, $3, $4, $5)";
const CLAIM: &str = "SELECT id, message_id, routing_key, payload, traceparent, tracestate FROM outbox \
     WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
const MARK_PUBLISHED: &str = "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1";
const MARK_FAILED: &str =
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1";
const BACKLOG: &str = "SELECT count(*) FROM outbox WHERE published_at IS NULL";

/// Rows claimed per pass; each is published and confirmed one after another,
/// which keeps the events of one game in order.
const BATCH: i64 = 100;

/// Writes `envelope` to the outbox inside `tx`, with the trace context of the
/// current span so the publish continues the request's trace.
pub async fn enqueue(
    db: &DbClient,
    tx: &mut Transaction<'static, Postgres>,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    let context = telemetry::propagation::current_context_pairs();
    let payload =
        serde_json::to_value(envelope).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    db.run(
        "INSERT",
        Some("outbox"),
        INSERT,
        sqlx::query(INSERT)
            .bind(envelope.message_id)
            .bind(envelope.event.routing_key())
            .bind(payload)
            .bind(context.get("traceparent"))
            .bind(context.get("tracestate"))
            .execute(&mut **tx),
    )
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct Pending {
    id: i64,
    message_id: Uuid,
    routing_key: String,
    payload: serde_json::Value,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Why a relay pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed; nothing was marked.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// RabbitMQ failed; the events before this one were published and marked.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Publishes outbox rows to the events exchange.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    db: DbClient,
    broker: Arc<Broker>,
    exchange: String,
    wake: Arc<Notify>,
    poll_interval: Duration,
    backlog: Arc<AtomicI64>,
}

impl Relay {
    /// A relay from the outbox in `pool` to `exchange` on `broker`.
    pub fn new(
        pool: PgPool,
        db: DbClient,
        broker: Arc<Broker>,
        exchange: String,
        poll_interval: Duration,
    ) -> Self {
        Self {
            pool,
            db,
            broker,
            exchange,
            wake: Arc::new(Notify::new()),
            poll_interval,
            backlog: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Wakes the relay: call after committing a transaction that enqueued.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Unpublished rows as of the last pass (the `gamenight.outbox.backlog`
    /// gauge reads this).
    pub fn backlog(&self) -> Arc<AtomicI64> {
        self.backlog.clone()
    }

    /// Publishes up to one batch of pending events and returns how many were
    /// published. Safe to run from several replicas at once: rows are claimed
    /// with `FOR UPDATE SKIP LOCKED`.
    #[tracing::instrument(skip(self), fields(published = tracing::field::Empty))]
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Pending> = self
            .db
            .run(
                "SELECT",
                Some("outbox"),
                CLAIM,
                sqlx::query_as(CLAIM).bind(BATCH).fetch_all(&mut *tx),
            )
            .await?;
        let mut published = 0;
        let mut failure = None;
        for row in rows {
            match self.publish(&row).await {
                Ok(()) => {
                    self.mark(&mut tx, MARK_PUBLISHED, row.id, None).await?;
                    published += 1;
                }
                Err(err) => {
                    self.mark(&mut tx, MARK_FAILED, row.id, Some(err.to_string()))
                        .await?;
                    failure = Some(err);
                    break;
                }
            }
        }
        self.db.run("COMMIT", None, "COMMIT", tx.commit()).await?;
        tracing::Span::current().record("published", published);
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(published),
        }
    }

    async fn publish(&self, row: &Pending) -> Result<(), BrokerError> {
        let parent = telemetry::propagation::context_from_columns(
            row.traceparent.as_deref(),
            row.tracestate.as_deref(),
        );
        let payload = serde_json::to_vec(&row.payload).unwrap_or_default();
        self.broker
            .publish(
                &self.exchange,
                &row.routing_key,
                &row.message_id.to_string(),
                &payload,
                broker::Origin::ChildOf(parent),
            )
            .await
    }

    async fn mark(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        query: &'static str,
        id: i64,
        error: Option<String>,
    ) -> Result<(), sqlx::Error> {
        self.db
            .run(
                "UPDATE",
                Some("outbox"),
                query,
                sqlx::query(query).bind(id).bind(error).execute(&mut **tx),
            )
            .await?;
        Ok(())
    }

    /// Counts unpublished rows and updates the backlog gauge.
    ///
    /// Deliberately untraced: it runs on every poll, and a span per poll
    /// would bury the traces that matter under thousands of empty ones.
    pub async fn refresh_backlog(&self) -> Result<i64, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(BACKLOG).fetch_one(&self.pool).await?;
        self.backlog.store(count, Ordering::Relaxed);
        Ok(count)
    }

    /// Publishes until `shutdown` is cancelled: whenever woken, every
    /// `poll_interval` otherwise, and with backoff while PostgreSQL or
    /// RabbitMQ fail. On shutdown it makes one last pass, so events of the
    /// final requests go out before the process exits.
    pub async fn run(self, shutdown: CancellationToken) {
        service_runtime::periodic::run(
            "outbox relay (events stay pending)",
            &self.wake,
            self.poll_interval,
            &shutdown,
            || self.drain(),
        )
        .await;
        if let Err(err) = self.drain().await {
            tracing::warn!(error = %err, "final outbox pass failed; pending events go out on next start");
        }
    }

    /// Publishes batches until none is left.
    async fn drain(&self) -> Result<(), RelayError> {
        while self.refresh_backlog().await? > 0 {
            if self.publish_pending().await? == 0 {
                // Everything pending is claimed by another replica.
                break;
            }
        }
        Ok(())
    }
}

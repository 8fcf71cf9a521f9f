//! The transactional outbox: events are written in the transaction of the
//! change they describe, and a relay publishes them afterwards.
//!
//! Guarantees: an event is published only after its transaction committed
//! (the relay reads committed rows), and it stays pending until RabbitMQ has
//! confirmed it, so an outage delays events but loses none and spends none
//! of their attempts. If the process dies between the confirms and marking
//! the rows, the events of that pass (one batch, at most 100) are published
//! again: delivery is at least once, and consumers dedupe on `message_id`.
//! An event RabbitMQ keeps refusing is set aside after [`MAX_ATTEMPTS`] and
//! blocks nothing behind it (see the `relay` crate for the loop itself).

use std::sync::Arc;
use std::time::Duration;

use broker::Broker;
use events::Envelope;
use opentelemetry::metrics::Meter;
use service_runtime::fault::Fault;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::DbClient;
use telemetry::propagation::StoredContext;
use uuid::Uuid;

const INSERT: &str = "INSERT INTO outbox \
     (message_id, routing_key, payload, traceparent, tracestate, baggage) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// The outbox as a [`relay::Table`]: rows in id order, retried after 2, 4,
/// 8 … seconds (at most 5 minutes) when RabbitMQ refuses them.
static TABLE: relay::Table = relay::Table {
    name: "outbox",
    claim: "WITH claimed AS (UPDATE outbox SET claimed_until = now() + make_interval(secs => $2) \
         WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL AND set_aside_at IS NULL \
         AND (claimed_until IS NULL OR claimed_until <= now()) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, message_id, routing_key, payload, traceparent, tracestate, baggage) \
         SELECT * FROM claimed ORDER BY id",
    published: "UPDATE outbox SET published_at = now(), claimed_until = NULL, last_error = NULL WHERE id = ANY($1)",
    failed: "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
         set_aside_at = CASE WHEN attempts + 1 >= $3 THEN now() END, \
         claimed_until = now() + least(interval '1 second' * power(2, attempts + 1), interval '5 minutes') \
         WHERE id = $1 RETURNING set_aside_at IS NOT NULL",
    release: "UPDATE outbox SET claimed_until = NULL WHERE id = ANY($1)",
    counts: "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND set_aside_at IS NULL), \
         (SELECT count(*) FROM outbox WHERE set_aside_at IS NOT NULL)",
};

/// Rows claimed per pass, published in id order on one channel and confirmed
/// together: RabbitMQ queues the events of one game in the order they were
/// written (unless one is refused or the broker fails midway; consumers do
/// not rely on it, see the worker).
const BATCH: i64 = 100;
/// How long a claim holds: a pass of 100 events takes well under a second
/// unless RabbitMQ stalls, and then the pass gives up after one confirm
/// timeout (10 s). It is also how long the rows of a relay killed between
/// claiming and publishing wait before the restarted relay (or another
/// replica) takes them: short, so a crash delays events by seconds. A pass
/// that outlives it may see its rows published twice, which consumers
/// dedupe.
const LEASE: Duration = Duration::from_secs(15);
/// Refusals (unroutable: no queue bound for the event) before an event is
/// set aside: with the growing delays, about 13 minutes of trying, time for
/// a worker that has never run to declare its queue.
pub const MAX_ATTEMPTS: u32 = 10;

/// Writes `envelope` to the outbox inside `tx`, with the trace context of the
/// current span so the publish continues the request's trace. When `poison`
/// (a fault switch) fires, the row gets a body no consumer can read instead.
pub async fn enqueue(
    db: &DbClient,
    tx: &mut Transaction<'static, Postgres>,
    envelope: &Envelope,
    poison: Option<&Fault>,
) -> Result<(), sqlx::Error> {
    let context = StoredContext::current();
    let payload = if let Some(poison) = poison.filter(|p| p.fires()) {
        poison.report("this event is published as a body no consumer can read");
        // The message id stays, so the poison is traced and deduplicated
        // like the event it replaces.
        serde_json::json!({ "message_id": envelope.message_id, "poison": "a fault switch wrote this instead of the event" })
    } else {
        serde_json::to_value(envelope).map_err(|err| sqlx::Error::Encode(Box::new(err)))?
    };
    db.run(
        INSERT,
        sqlx::query(INSERT)
            .bind(envelope.message_id)
            .bind(envelope.event.routing_key())
            .bind(payload)
            .bind(context.traceparent)
            .bind(context.tracestate)
            .bind(context.baggage)
            .execute(&mut **tx),
    )
    .await?;
    Ok(())
}

/// An outbox row as the relay claims it.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    id: i64,
    message_id: Uuid,
    routing_key: String,
    payload: serde_json::Value,
    #[sqlx(flatten)]
    context: StoredContext,
}

impl relay::Row for Pending {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn message(&self) -> Result<relay::Outgoing, String> {
        let parent = self.context.context();
        Ok(relay::Outgoing {
            routing_key: self.routing_key.clone(),
            message_id: self.message_id.to_string(),
            payload: self.payload.to_string().into_bytes(),
            origin: broker::Origin::ChildOf(parent),
        })
    }
}

/// Publishes outbox rows to the events exchange.
pub type Relay = relay::Relay<Pending>;

/// The relay from the outbox in `pool` to `exchange` on `broker`, looking
/// every `poll_interval` when not woken.
pub fn relay(
    pool: PgPool,
    db: DbClient,
    broker: Arc<Broker>,
    exchange: String,
    poll_interval: Duration,
    meter: &Meter,
) -> Relay {
    relay::Relay::new(
        &TABLE,
        pool,
        db,
        broker,
        exchange,
        relay::Settings {
            batch: BATCH,
            lease: LEASE,
            max_attempts: MAX_ATTEMPTS,
            interval: poll_interval,
            linger: relay::LINGER,
        },
        meter
            .u64_counter("gamenight.outbox.events")
            .with_unit("{event}")
            .with_description("Outbox events by outcome: published, retry, set_aside.")
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
        for (sql, operation) in [
            (INSERT, "INSERT"),
            (TABLE.claim, "UPDATE"),
            (TABLE.published, "UPDATE"),
            (TABLE.failed, "UPDATE"),
            (TABLE.release, "UPDATE"),
        ] {
            let collection = Some("outbox");
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

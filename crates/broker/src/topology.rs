//! What a service declares on RabbitMQ, on every (re)connect: declarations
//! are idempotent, and redeclaring after a broker restart means no publish
//! or consume ever fails for want of an exchange or queue.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Exchanges and queues a service needs.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Durable topic exchanges.
    pub exchanges: Vec<String>,
    /// Durable queues, each with its dead-letter exchange and queue.
    pub queues: Vec<QueueSpec>,
}

/// A durable queue, its bindings, and where its dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    /// `(exchange, routing key pattern)` pairs the queue is bound with.
    pub bindings: Vec<(String, String)>,
}

impl QueueSpec {
    /// A queue bound to `exchange` with one `pattern`.
    pub fn bound(name: &str, exchange: &str, pattern: &str) -> Self {
        Self {
            name: name.to_owned(),
            bindings: vec![(exchange.to_owned(), pattern.to_owned())],
        }
    }

    /// The fanout exchange dead letters of this queue go to: `<queue>.dlx`.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.name)
    }

    /// The queue that keeps them for inspection: `<queue>.dlq`.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.name)
    }
}

impl Topology {
    /// Declares everything on `channel`.
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for exchange in &self.exchanges {
            declare_exchange(channel, exchange, ExchangeKind::Topic).await?;
        }
        for queue in &self.queues {
            let dlx = queue.dead_letter_exchange();
            let dlq = queue.dead_letter_queue();
            declare_exchange(channel, &dlx, ExchangeKind::Fanout).await?;
            declare_queue(channel, &dlq, FieldTable::default()).await?;
            bind(channel, &dlq, &dlx, "").await?;
            // Anything the broker itself dead-letters (a reject without
            // requeue) lands in the same DLQ as what we dead-letter on purpose.
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(dlx.as_str().into()),
            );
            declare_queue(channel, &queue.name, arguments).await?;
            for (exchange, routing_key) in &queue.bindings {
                declare_exchange(channel, exchange, ExchangeKind::Topic).await?;
                bind(channel, &queue.name, exchange, routing_key).await?;
            }
        }
        Ok(())
    }
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), durable, arguments)
        .await?;
    Ok(())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

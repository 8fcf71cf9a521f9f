//! What a service declares on RabbitMQ, on every (re)connect: declarations
//! are idempotent, and redeclaring after a broker restart means no publish
//! or consume ever fails for want of an exchange or queue.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
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

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

impl Topology {
    /// Declares everything on `channel`.
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for exchange in &self.exchanges {
            channel
                .exchange_declare(
                    ShortString::from(exchange.as_str()),
                    ExchangeKind::Topic,
                    durable_exchange(),
                    FieldTable::default(),
                )
                .await?;
        }
        for queue in &self.queues {
            let dlx = queue.dead_letter_exchange();
            let dlq = queue.dead_letter_queue();
            channel
                .exchange_declare(
                    dlx.as_str().into(),
                    ExchangeKind::Fanout,
                    durable_exchange(),
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_declare(dlq.as_str().into(), durable_queue(), FieldTable::default())
                .await?;
            channel
                .queue_bind(
                    dlq.as_str().into(),
                    dlx.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            // Anything the broker itself dead-letters (a reject without
            // requeue) lands in the same DLQ as what we dead-letter on purpose.
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(dlx.as_str().into()),
            );
            channel
                .queue_declare(queue.name.as_str().into(), durable_queue(), arguments)
                .await?;
            for (exchange, routing_key) in &queue.bindings {
                channel
                    .exchange_declare(
                        exchange.as_str().into(),
                        ExchangeKind::Topic,
                        durable_exchange(),
                        FieldTable::default(),
                    )
                    .await?;
                channel
                    .queue_bind(
                        queue.name.as_str().into(),
                        exchange.as_str().into(),
                        routing_key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

//! Publishing against a real RabbitMQ: every message of a batch answered
//! for, one connection for every publish, a channel RabbitMQ closed
//! replaced, and readiness that follows the connection.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use broker::lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use broker::lapin::types::{AMQPValue, FieldTable};
use broker::lapin::{self, ExchangeKind};
use broker::{Broker, Origin, Outgoing, QueueSpec, Topology};
use opentelemetry::metrics::MeterProvider as _;
use test_support::{TcpProxy, TestBroker};

/// A broker at `url` declaring an exchange and a queue bound to `game.*`
/// on it, named in `names`; returns the exchange and the queue.
fn broker(url: &str, names: &TestBroker) -> (Broker, String, String) {
    let exchange = names.exchange("gamenight.test.publish.");
    let queue = names.queue("gamenight.test.publish.");
    let topology = Topology {
        exchanges: vec![exchange.clone()],
        queues: vec![QueueSpec::bound(&queue, &exchange, "game.*")],
    };
    let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
    let broker = Broker::new(url.to_owned().into(), topology, &meter).unwrap();
    (broker, exchange, queue)
}

fn message(routing_key: &str, id: &str) -> Outgoing {
    Outgoing {
        routing_key: routing_key.to_owned(),
        message_id: id.to_owned(),
        payload: b"{}".to_vec(),
        origin: Origin::Current,
    }
}

#[tokio::test]
async fn each_message_of_a_batch_gets_its_own_answer() {
    let names = TestBroker::new();
    let (broker, exchange, queue) = broker(&test_support::rabbitmq_url(), &names);
    let batch = vec![
        message("game.created", "1"),
        message("nobody.listens", "2"),
        message("game.cancelled", "3"),
    ];

    let results = broker.publish_batch(&exchange, batch).await;

    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let refused = results[1].as_ref().unwrap_err();
    assert!(refused.is_message_fault(), "{refused}");
    // Confirmed: in the queue already.
    assert_eq!(broker.ready_messages(&queue).await.unwrap(), 2);
}

/// Polls `broker.is_ready()` until it is `ready`, for up to 10 s.
async fn wait_until_ready_is(broker: &Broker, ready: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while broker.is_ready().await != ready {
        assert!(
            tokio::time::Instant::now() < deadline,
            "is_ready() stayed {}",
            !ready
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_connection_serves_every_publish_and_a_closed_channel_is_replaced() {
    let url = test_support::rabbitmq_url();
    let proxy = TcpProxy::for_url(&url).await;
    let names = TestBroker::new();
    let (broker, exchange, queue) = broker(&proxy.url(&url), &names);
    assert!(broker.is_ready().await);
    for id in ["1", "2"] {
        let message = message("game.created", id);
        let published = broker.publish_batch(&exchange, vec![message]).await;
        assert!(published[0].is_ok(), "{published:?}");
    }

    // An exchange that does not exist: RabbitMQ closes the channel (404),
    // not the connection.
    let missing = names.exchange("gamenight.test.missing.");
    let published = broker
        .publish_batch(&missing, vec![message("game.created", "3")])
        .await;
    assert!(published[0].is_err());
    let published = broker
        .publish_batch(&exchange, vec![message("game.created", "4")])
        .await;
    assert!(published[0].is_ok(), "{published:?}");
    assert_eq!(broker.ready_messages(&queue).await.unwrap(), 3);
    assert_eq!(proxy.connections(), 1, "one connection for all of it");

    proxy.cut();
    wait_until_ready_is(&broker, false).await;
    proxy.restore();
    wait_until_ready_is(&broker, true).await;
}

/// Exchanges and queues are declared durable, so they and the messages in
/// them outlive a RabbitMQ restart, and each queue dead-letters to its own
/// `<queue>.dlx` and `<queue>.dlq`. RabbitMQ refuses a declare that differs
/// from the existing one: declaring them all as they should be must pass.
#[tokio::test]
async fn the_topology_is_durable_and_each_queue_has_its_dead_letter_pair() {
    let names = TestBroker::new();
    let (broker, exchange, queue) = broker(&test_support::rabbitmq_url(), &names);
    assert!(broker.is_ready().await, "declares the topology");
    // The names operators look for (docs/DELIVERY.md).
    let (dlx, dlq) = (format!("{queue}.dlx"), format!("{queue}.dlq"));
    let mut dead_letter_to = FieldTable::default();
    dead_letter_to.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    let none = FieldTable::default;

    declare_exchange(&broker, &exchange, ExchangeKind::Topic, false)
        .await
        .expect("the exchange: a durable topic exchange");
    declare_exchange(&broker, &dlx, ExchangeKind::Fanout, true)
        .await
        .expect("the dead-letter exchange exists");
    declare_exchange(&broker, &dlx, ExchangeKind::Fanout, false)
        .await
        .expect("the dead-letter exchange: a durable fanout exchange");
    declare_queue(&broker, &queue, false, dead_letter_to)
        .await
        .expect("the queue: durable, dead-lettering to its exchange");
    declare_queue(&broker, &dlq, true, none())
        .await
        .expect("the dead-letter queue exists");
    declare_queue(&broker, &dlq, false, none())
        .await
        .expect("the dead-letter queue: durable");
}

/// Declares a durable exchange (or, `passive`, checks that it exists), on
/// a channel of its own: RabbitMQ closes a channel whose declare it refuses.
async fn declare_exchange(
    broker: &Broker,
    name: &str,
    kind: ExchangeKind,
    passive: bool,
) -> Result<(), lapin::Error> {
    let options = ExchangeDeclareOptions {
        durable: true,
        passive,
        ..Default::default()
    };
    let channel = broker.consumer_channel().await.unwrap();
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

/// Like [`declare_exchange`], for a queue with `arguments`.
async fn declare_queue(
    broker: &Broker,
    name: &str,
    passive: bool,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    let options = QueueDeclareOptions {
        durable: true,
        passive,
        ..Default::default()
    };
    let channel = broker.consumer_channel().await.unwrap();
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .map(drop)
}

//! The consumer loop against a real RabbitMQ.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use broker::consumer::{self, Failure, Settings};
use broker::{Broker, Origin, QueueSpec, Topology};
use opentelemetry::metrics::MeterProvider as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test")
}

fn broker_for(queue: &QueueSpec, exchange: &str) -> Arc<Broker> {
    Arc::new(
        Broker::new(
            test_support::rabbitmq_url().into(),
            Topology {
                exchanges: vec![exchange.to_owned()],
                queues: vec![queue.clone()],
            },
            &meter(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn a_message_whose_dependency_is_down_goes_back_on_the_queue_not_to_the_dlq() {
    let exchange = test_support::unique_name("gamenight.test.x.");
    let queue = QueueSpec {
        name: test_support::unique_name("gamenight.test.q."),
        bindings: vec![(exchange.clone(), "#".to_owned())],
    };
    let broker = broker_for(&queue, &exchange);
    broker.channel().await.unwrap(); // declares the topology
    broker
        .publish(
            &exchange,
            "notification.announcement",
            "m-1",
            b"{}",
            Origin::Current,
        )
        .await
        .unwrap();

    // Down for the first four attempts (two deliveries of two attempts),
    // then up.
    let calls = Arc::new(AtomicU32::new(0));
    let (seen, mut deliveries) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let settings = Settings {
        queue: queue.clone(),
        prefetch: 1,
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    };
    let handler_calls = calls.clone();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        settings,
        &meter(),
        shutdown.clone(),
        move |message| {
            let calls = handler_calls.clone();
            let seen = seen.clone();
            async move {
                let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = seen.send((call, message.redelivered));
                if call <= 4 {
                    Err(Failure::Unavailable("api unreachable".into()))
                } else {
                    Ok(())
                }
            }
        },
    ));
    let mut log = Vec::new();
    while log.len() < 5 {
        let next = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
            .await
            .unwrap()
            .unwrap();
        log.push(next);
    }
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        log,
        [(1, false), (2, false), (3, true), (4, true), (5, true)],
        "retried, requeued, redelivered, then processed"
    );

    // Nothing was dead-lettered.
    let channel = broker.channel().await.unwrap();
    let dlq = channel
        .queue_declare(
            queue.dead_letter_queue().as_str().into(),
            broker::lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(dlq.message_count(), 0);
}

//! The consumer loop against a real RabbitMQ.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use broker::consumer::{self, Failure, Settings};
use broker::lapin::types::{AMQPValue, FieldTable};
use broker::{Broker, Origin, QueueSpec, Topology};
use opentelemetry::metrics::MeterProvider as _;
use otlp_testkit::{Receiver, has_str_attributes, str_attribute};
use telemetry::{Protocol, Service, Telemetry, TelemetryConfig};
use test_support::TestBroker;
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
    let (broker, queue, _names) = queue_with_messages(1).await;

    // Down for the first four attempts (two deliveries of two attempts),
    // then up.
    let calls = Arc::new(AtomicU32::new(0));
    let (seen, mut deliveries) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let settings = Settings {
        queue: queue.clone(),
        prefetch: 1,
        concurrency: 1,
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        pause: None,
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
                    Err(Failure::unavailable("api unreachable"))
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
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

/// Messages ready on `queue` (which must exist).
async fn ready(broker: &Broker, queue: &str) -> u32 {
    broker.ready_messages(queue).await.unwrap()
}

/// A broker for `queue`'s topology whose connections go through `proxy`.
fn broker_through(proxy: &test_support::TcpProxy, queue: &QueueSpec) -> Arc<Broker> {
    Arc::new(
        Broker::new(
            proxy.url(&test_support::rabbitmq_url()).into(),
            Topology {
                exchanges: vec![queue.bindings[0].0.clone()],
                queues: vec![queue.clone()],
            },
            &meter(),
        )
        .unwrap(),
    )
}

/// Waits until `queue` holds `expected` ready messages (returned messages
/// are requeued asynchronously), or fails after 10 s.
async fn wait_for_ready(broker: &Broker, queue: &str, expected: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = ready(broker, queue).await;
        if count == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} holds {count} ready messages, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A queue bound to its own exchange, with `count` messages published to it.
/// The exchange and queues are deleted with the returned [`TestBroker`].
async fn queue_with_messages(count: usize) -> (Arc<Broker>, QueueSpec, TestBroker) {
    let names = TestBroker::new();
    let exchange = names.exchange("gamenight.test.x.");
    let queue = QueueSpec {
        name: names.queue("gamenight.test.q."),
        bindings: vec![(exchange.clone(), "#".to_owned())],
    };
    let broker = broker_for(&queue, &exchange);
    broker.channel().await.unwrap(); // declares the topology
    for i in 0..count {
        broker
            .publish(
                &exchange,
                "game.created",
                &format!("m-{i}"),
                b"{}",
                Origin::Current,
            )
            .await
            .unwrap();
    }
    (broker, queue, names)
}

fn settings(queue: &QueueSpec, prefetch: u16, initial_backoff: Duration) -> Settings {
    Settings {
        queue: queue.clone(),
        prefetch,
        concurrency: 1,
        max_attempts: 5,
        initial_backoff,
        max_backoff: initial_backoff,
        pause: None,
    }
}

/// SIGTERM while a message is being handled: that message is finished and
/// acknowledged, the ones prefetched behind it go back to the queue, and
/// nothing is lost or dead-lettered.
#[tokio::test]
async fn shutdown_finishes_the_message_in_hand_and_returns_the_prefetched_ones() {
    let (broker, queue, _names) = queue_with_messages(3).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (running_tx, mut running_after_shutdown) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicU32::new(0));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        settings(&queue, 3, Duration::from_millis(10)),
        &meter(),
        shutdown.clone(),
        {
            let (release, finished, shutdown) =
                (release.clone(), finished.clone(), shutdown.clone());
            move |message| {
                let (started, running, release, finished, shutdown) = (
                    started_tx.clone(),
                    running_tx.clone(),
                    release.clone(),
                    finished.clone(),
                    shutdown.clone(),
                );
                async move {
                    let _ = started.send(message.message_id);
                    shutdown.cancelled().await;
                    // Only a consumer still running this handler gets here.
                    let _ = running.send(());
                    release.notified().await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        },
    ));
    let first = tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("m-0"));

    shutdown.cancel();
    // The handler, blocked until now, is run on after shutdown. A consumer
    // that drops it instead returns, and the sender goes with it: `None`.
    let running = tokio::time::timeout(Duration::from_secs(30), running_after_shutdown.recv())
        .await
        .unwrap();
    assert!(running.is_some(), "returned with a message in hand");
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the consumer did not stop after finishing its message")
        .unwrap();

    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "only the message in hand was handled"
    );
    assert!(
        started.try_recv().is_err(),
        "a message was started after shutdown"
    );
    wait_for_ready(&broker, &queue.name, 2).await;
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

/// SIGTERM while a message waits for its retry: it goes back to the queue at
/// once rather than holding the process open for the backoff.
#[tokio::test]
async fn shutdown_during_a_retry_backoff_puts_the_message_back_at_once() {
    let (broker, queue, _names) = queue_with_messages(1).await;
    let (failed_tx, mut failed) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        // A backoff far longer than the test.
        settings(&queue, 1, Duration::from_secs(600)),
        &meter(),
        shutdown.clone(),
        move |_| {
            let failed = failed_tx.clone();
            async move {
                let _ = failed.send(());
                Err(Failure::transient("webhook answered 503"))
            }
        },
    ));
    tokio::time::timeout(Duration::from_secs(30), failed.recv())
        .await
        .unwrap()
        .unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the consumer waited out its backoff instead of stopping")
        .unwrap();
    wait_for_ready(&broker, &queue.name, 1).await;
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

/// RabbitMQ going away several times in a row: after each return the
/// consumer is back within the reconnect cap, not after a wait that grew
/// with every earlier outage.
#[tokio::test]
async fn the_consumer_is_back_within_two_seconds_after_each_of_several_outages() {
    let (direct, queue, _names) = queue_with_messages(0).await;
    let exchange = queue.bindings[0].0.clone();
    let proxy = test_support::TcpProxy::for_url(&test_support::rabbitmq_url()).await;
    let proxied = broker_through(&proxy, &queue);
    let (seen, mut handled) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        proxied,
        Settings {
            // The worker's retry settings: a backoff that kept doubling
            // across outages would reach the 30 s cap.
            max_backoff: Duration::from_secs(30),
            pause: None,
            ..settings(&queue, 1, Duration::from_millis(100))
        },
        &meter(),
        shutdown.clone(),
        move |message| {
            let _ = seen.send(message.message_id);
            async { Ok(()) }
        },
    ));
    for outage in 0..3 {
        let id = format!("after-outage-{outage}");
        proxy.cut();
        // How long RabbitMQ stays away: the consumer retries meanwhile,
        // at waits of at most a second. Doubling from a second, it would
        // try at 1, 3 and 7 s, and be back 3 s after RabbitMQ.
        tokio::time::sleep(Duration::from_secs(4)).await;
        proxy.restore();
        let back = tokio::time::Instant::now();
        direct
            .publish(&exchange, "game.created", &id, b"{}", Origin::Current)
            .await
            .unwrap();
        // A message acked just before the cut may come again (its ack was
        // lost with the connection): at least once, so skip those.
        let deadline = back + Duration::from_secs(2);
        loop {
            let got = tokio::time::timeout_at(deadline, handled.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("outage {outage}: no message within 2 s of RabbitMQ's return")
                })
                .unwrap();
            if got.as_deref() == Some(id.as_str()) {
                break;
            }
        }
    }
    shutdown.cancel();
    task.await.unwrap();
}

/// A publish RabbitMQ refuses (no queue for its routing key) is the
/// message's problem: the connection the consumers share stays open, and the
/// message they hold is acknowledged once, not redelivered.
#[tokio::test]
async fn an_unroutable_publish_does_not_drop_the_consumers_on_its_connection() {
    let (broker, queue, names) = queue_with_messages(1).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        settings(&queue, 1, Duration::from_millis(10)),
        &meter(),
        shutdown.clone(),
        {
            let release = release.clone();
            move |message| {
                let (started, release) = (started_tx.clone(), release.clone());
                async move {
                    let _ = started.send(message.redelivered);
                    release.notified().await;
                    Ok(())
                }
            }
        },
    ));
    let redelivered = tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!redelivered);

    // Same exchange, a routing key no queue is bound for: the queue's
    // binding is "#", so use an exchange nothing is bound to.
    let unbound = names.exchange("gamenight.test.unbound.");
    broker
        .channel()
        .await
        .unwrap()
        .exchange_declare(
            unbound.as_str().into(),
            broker::lapin::ExchangeKind::Topic,
            broker::lapin::options::ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let err = broker
        .publish(&unbound, "game.created", "lost", b"{}", Origin::Current)
        .await
        .unwrap_err();
    assert!(err.is_message_fault(), "{err}");

    release.notify_one();
    // The message in hand is acknowledged on the same channel: nothing comes
    // back, and the queue ends empty.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), started.recv())
            .await
            .is_err(),
        "the message was delivered again"
    );
    wait_for_ready(&broker, &queue.name, 0).await;
    shutdown.cancel();
    task.await.unwrap();
}

/// The connection dies while a message is in hand: settling it fails rather
/// than hanging, the consumer comes back, the message is delivered again
/// (nothing acknowledged it), and a shutdown afterwards is prompt.
#[tokio::test]
async fn a_connection_lost_with_a_message_in_hand_neither_hangs_nor_loses_it() {
    let (direct, queue, _names) = queue_with_messages(1).await;
    let proxy = test_support::TcpProxy::for_url(&test_support::rabbitmq_url()).await;
    let proxied = broker_through(&proxy, &queue);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        proxied,
        settings(&queue, 1, Duration::from_millis(10)),
        &meter(),
        shutdown.clone(),
        {
            let release = release.clone();
            move |message| {
                let (started, release) = (started_tx.clone(), release.clone());
                async move {
                    let _ = started.send(message.redelivered);
                    if !message.redelivered {
                        release.notified().await;
                    }
                    Ok(())
                }
            }
        },
    ));
    let first = tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!first);
    // The outage lasts a second; the handler finishes in the middle of it,
    // so its ack goes to a connection that is gone.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    release.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let again = tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .expect("the message in hand was not delivered again within 10 s")
        .unwrap();
    assert!(again, "delivered again, as redelivered");
    wait_for_ready(&direct, &queue.name, 0).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the consumer did not stop")
        .unwrap();
}

/// With a concurrency of N, N handlers run at once: each waits at a barrier
/// that opens only when all N have arrived, so a consumer handling fewer at
/// a time would never get past it.
#[tokio::test]
async fn a_consumer_with_concurrency_n_handles_n_messages_at_once() {
    const N: usize = 4;
    let (broker, queue, _names) = queue_with_messages(N).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            concurrency: N,
            ..settings(&queue, 2 * N as u16, Duration::from_millis(10))
        },
        &meter(),
        shutdown.clone(),
        move |message| {
            let (barrier, done) = (barrier.clone(), done_tx.clone());
            async move {
                barrier.wait().await;
                let _ = done.send(message.message_id);
                Ok(())
            }
        },
    ));
    let mut handled = Vec::new();
    while handled.len() < N {
        let id = tokio::time::timeout(Duration::from_secs(30), done.recv())
            .await
            .expect("the handlers never met at the barrier")
            .unwrap();
        handled.push(id.unwrap());
    }
    handled.sort();
    assert_eq!(
        handled,
        (0..N).map(|i| format!("m-{i}")).collect::<Vec<_>>()
    );
    wait_for_ready(&broker, &queue.name, 0).await;
    shutdown.cancel();
    task.await.unwrap();
}

/// SIGTERM with N messages in hand: each is settled exactly once, the ones
/// that finish acknowledged, the one waiting for a retry put back on the
/// queue, and the prefetched ones not yet started returned unhandled.
#[tokio::test]
async fn shutdown_settles_each_message_in_hand_once_and_returns_the_rest() {
    const N: usize = 3;
    // N in hand and 2 more prefetched behind them.
    let (broker, queue, _names) = queue_with_messages(N + 2).await;
    let started = Arc::new(tokio::sync::Barrier::new(N + 1));
    // A gate, not a Notify: opening it reaches handlers that wait later too.
    let release = CancellationToken::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (running_tx, mut running_after_shutdown) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            concurrency: N,
            // A retry far longer than the test: only shutdown ends it.
            ..settings(&queue, (N + 2) as u16, Duration::from_secs(600))
        },
        &meter(),
        shutdown.clone(),
        {
            let (started, release, calls, shutdown) = (
                started.clone(),
                release.clone(),
                calls.clone(),
                shutdown.clone(),
            );
            move |message| {
                let (started, running, release, calls, shutdown) = (
                    started.clone(),
                    running_tx.clone(),
                    release.clone(),
                    calls.clone(),
                    shutdown.clone(),
                );
                async move {
                    let id = message.message_id.unwrap();
                    calls.lock().unwrap().push(id.clone());
                    started.wait().await;
                    if id == "m-0" {
                        return Err(Failure::transient("webhook answered 503"));
                    }
                    shutdown.cancelled().await;
                    // Only a consumer still running this handler gets here.
                    let _ = running.send(());
                    release.cancelled().await;
                    Ok(())
                }
            }
        },
    ));
    // All N in hand; m-0 now waits for its retry.
    tokio::time::timeout(Duration::from_secs(30), started.wait())
        .await
        .expect("N messages were not in hand at once");

    shutdown.cancel();
    // Shutdown waits for the handlers in hand, whatever the order they
    // finish in: the two blocked until now are run on after it. A consumer
    // that drops them instead returns, and the senders go with it: `None`.
    for _ in 1..N {
        let running = tokio::time::timeout(Duration::from_secs(30), running_after_shutdown.recv())
            .await
            .unwrap();
        assert!(running.is_some(), "returned with messages in hand");
    }
    release.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the consumer did not stop after finishing its messages")
        .unwrap();

    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        ["m-0", "m-1", "m-2"],
        "each handled once, nothing started after shutdown"
    );
    // m-1 and m-2 acknowledged; m-0 (requeued) and m-3, m-4 (never
    // started) back on the queue, and nothing dead-lettered.
    wait_for_ready(&broker, &queue.name, 3).await;
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
    let channel = broker.consumer_channel().await.unwrap();
    let mut back = Vec::new();
    while let Some(message) = channel
        .basic_get(
            queue.name.as_str().into(),
            broker::lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let id = message.delivery.properties.message_id().clone().unwrap();
        back.push(id.to_string());
    }
    back.sort();
    assert_eq!(back, ["m-0", "m-3", "m-4"]);
}

/// A message the handler refuses for what it is goes to the dead-letter
/// queue carrying the handler's reason; one the handler asks to retry
/// after a server's `Retry-After` waits that long, not the backoff.
#[tokio::test]
async fn a_dead_letter_carries_its_reason_and_a_retry_waits_as_long_as_asked() {
    let (broker, queue, _names) = queue_with_messages(0).await;
    let exchange = queue.bindings[0].0.clone();
    for id in ["refused", "retried"] {
        broker
            .publish(&exchange, "game.created", id, b"{}", Origin::Current)
            .await
            .unwrap();
    }
    let (seen, mut attempts) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            max_backoff: Duration::from_secs(5),
            pause: None,
            ..settings(&queue, 2, Duration::from_millis(100))
        },
        &meter(),
        shutdown.clone(),
        move |message| {
            let id = message.message_id.unwrap_or_default();
            let _ = seen.send((id.clone(), tokio::time::Instant::now()));
            async move {
                Err(match id.as_str() {
                    "refused" => Failure::Permanent("no such game: 42".to_owned()),
                    // Until shutdown puts it back on the queue.
                    _ => Failure::Transient {
                        reason: "rate limited".to_owned(),
                        retry_after: Some(Duration::from_secs(1)),
                    },
                })
            }
        },
    ));
    let mut retried = Vec::new();
    while retried.len() < 2 {
        let (id, at) = tokio::time::timeout(Duration::from_secs(10), attempts.recv())
            .await
            .unwrap()
            .unwrap();
        if id == "retried" {
            retried.push(at);
        }
    }
    let waited = retried[1] - retried[0];
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    shutdown.cancel();
    task.await.unwrap();

    assert_eq!(
        next_dead_letter_reason(&broker, &queue).await,
        Some(AMQPValue::LongString("no such game: 42".into()))
    );
}

/// The reason header of the next message on `queue`'s dead-letter queue.
async fn next_dead_letter_reason(broker: &Broker, queue: &QueueSpec) -> Option<AMQPValue> {
    let channel = broker.consumer_channel().await.unwrap();
    let dead = channel
        .basic_get(
            queue.dead_letter_queue().as_str().into(),
            Default::default(),
        )
        .await
        .unwrap()
        .expect("a dead letter");
    let headers = dead.delivery.properties.headers().clone()?;
    headers.inner().get(consumer::REASON_HEADER).cloned()
}

/// What consuming and publishing report: each message counted by its
/// outcome, and a refused publish measured with its `error.type`.
#[tokio::test]
async fn outcomes_and_refused_publishes_are_measured() {
    let receiver = Receiver::start().await.unwrap();
    let config = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    let telemetry =
        Telemetry::build_with_writer(Service::new("broker-test", "0"), &config, std::io::sink)
            .unwrap();
    let meter = telemetry.meter("broker-test");
    let names = TestBroker::new();
    let exchange = names.exchange("gamenight.test.x.");
    let queue = QueueSpec::bound(&names.queue("gamenight.test.q."), &exchange, "game.*");
    let broker = Arc::new(
        Broker::new(
            test_support::rabbitmq_url().into(),
            Topology {
                exchanges: vec![exchange.clone()],
                queues: vec![queue.clone()],
            },
            &meter,
        )
        .unwrap(),
    );
    for id in ["fine", "refused"] {
        broker
            .publish(&exchange, "game.created", id, b"{}", Origin::Current)
            .await
            .unwrap();
    }
    let unroutable = broker
        .publish(&exchange, "nobody.listens", "lost", b"{}", Origin::Current)
        .await;
    assert!(unroutable.is_err());
    let (done, mut handled) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        settings(&queue, 2, Duration::from_millis(100)),
        &meter,
        shutdown.clone(),
        move |message| {
            let _ = done.send(());
            async move {
                match message.message_id.as_deref() {
                    Some("refused") => Err(Failure::Permanent("refused".to_owned())),
                    _ => Ok(()),
                }
            }
        },
    ));
    for _ in 0..2 {
        handled.recv().await.unwrap();
    }
    // Settled (acked, dead-lettered) once the queue is empty.
    wait_for_ready(&broker, &queue.name, 0).await;
    shutdown.cancel();
    task.await.unwrap();
    drop(broker);
    telemetry.shutdown().await;

    let processed = "gamenight.messages.processed";
    assert_eq!(
        receiver.counter_total(processed, &[("outcome", "processed")]),
        Some(1)
    );
    assert_eq!(
        receiver.counter_total(processed, &[("outcome", "dead_lettered")]),
        Some(1)
    );
    let refused: u64 = receiver
        .metrics()
        .iter()
        .filter(|metric| metric.name() == "messaging.client.operation.duration")
        .flat_map(|metric| metric.histogram_points().to_vec())
        .filter(|point| has_str_attributes(&point.attributes, &[("error.type", "unroutable")]))
        .map(|point| point.count)
        .max()
        .unwrap_or_default();
    assert_eq!(
        refused, 1,
        "the unroutable publish, measured with its error.type"
    );
    // Processing a message that was processed is no error; dead-lettering
    // one is, and says so.
    let error_types: Vec<Option<String>> = receiver
        .metrics()
        .iter()
        .filter(|metric| metric.name() == "messaging.process.duration")
        .flat_map(|metric| metric.histogram_points().to_vec())
        .map(|point| str_attribute(&point.attributes, "error.type").map(str::to_owned))
        .collect();
    assert!(error_types.contains(&None), "{error_types:?}");
    assert!(
        error_types.contains(&Some("dead_lettered".to_owned())),
        "{error_types:?}"
    );
    assert!(
        error_types
            .iter()
            .flatten()
            .all(|error| error == "dead_lettered"),
        "{error_types:?}"
    );
}

/// Re-driving moves at most `limit` dead letters back to the queue's
/// exchange, without the reason they died but with their other headers,
/// and says how many it moved.
#[tokio::test]
async fn redrive_moves_up_to_its_limit_and_drops_only_the_reason() {
    let (broker, queue, _names) = queue_with_messages(0).await;
    for id in ["d1", "d2", "d3"] {
        let mut headers = FieldTable::default();
        headers.insert(
            consumer::REASON_HEADER.into(),
            AMQPValue::LongString("no such game".into()),
        );
        headers.insert("x-kept".into(), AMQPValue::LongString("yes".into()));
        broker
            .publish_with_headers(
                &queue.dead_letter_exchange(),
                "game.created",
                id,
                b"{}",
                Origin::Current,
                headers,
            )
            .await
            .unwrap();
    }

    assert_eq!(consumer::redrive(&broker, &queue, 2).await.unwrap(), 2);
    assert_eq!(ready(&broker, &queue.name).await, 2);
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 1);
    let channel = broker.consumer_channel().await.unwrap();
    let moved = channel
        .basic_get(queue.name.as_str().into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    let headers = moved.delivery.properties.headers().clone().unwrap();
    assert!(headers.inner().get(consumer::REASON_HEADER).is_none());
    assert_eq!(
        headers.inner().get("x-kept"),
        Some(&AMQPValue::LongString("yes".into()))
    );
    assert_eq!(consumer::redrive(&broker, &queue, 10).await.unwrap(), 1);
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

/// A message that keeps failing for a passing reason is retried with a
/// wait that starts at the initial backoff and doubles, then
/// dead-lettered saying how many attempts it had.
#[tokio::test]
async fn transient_failures_back_off_doubling_then_go_to_the_dlq_with_the_count() {
    let (broker, queue, _names) = queue_with_messages(1).await;
    let (seen, mut attempts) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            max_attempts: 3,
            max_backoff: Duration::from_secs(5),
            pause: None,
            ..settings(&queue, 1, Duration::from_millis(500))
        },
        &meter(),
        shutdown.clone(),
        move |_| {
            let _ = seen.send(tokio::time::Instant::now());
            async { Err(Failure::transient("flaky")) }
        },
    ));
    let mut at = Vec::new();
    for _ in 0..3 {
        let attempt = tokio::time::timeout(Duration::from_secs(10), attempts.recv());
        at.push(attempt.await.unwrap().unwrap());
    }
    // 500 ms, then 1 s: each with room to spare before the next doubling.
    let waits = [at[1] - at[0], at[2] - at[1]];
    let ms = |wait: Duration| wait.as_millis();
    assert!(
        (500..1000).contains(&ms(waits[0])) && (1000..2000).contains(&ms(waits[1])),
        "{waits:?}"
    );
    wait_for_ready(&broker, &queue.dead_letter_queue(), 1).await;
    shutdown.cancel();
    task.await.unwrap();

    assert_eq!(
        next_dead_letter_reason(&broker, &queue).await,
        Some(AMQPValue::LongString(
            "gave up after 3 attempts: flaky".into()
        ))
    );
}

/// While paused, the consumer takes a message only when none is in hand, so
/// the one it holds can find out whether the pause is over; resumed, it
/// takes up to its concurrency again. Nothing is dead-lettered or lost.
#[tokio::test]
async fn a_paused_consumer_takes_one_message_at_a_time_until_resumed() {
    let (broker, queue, _names) = queue_with_messages(6).await;
    let (pause_tx, pause) = tokio::sync::watch::channel(true);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            concurrency: 3,
            pause: Some(pause),
            ..settings(&queue, 6, Duration::from_millis(10))
        },
        &meter(),
        shutdown.clone(),
        {
            let (release, finished) = (release.clone(), finished.clone());
            move |message| {
                let (started, release, finished) =
                    (started_tx.clone(), release.clone(), finished.clone());
                async move {
                    let _ = started.send(message.message_id);
                    release.acquire().await.unwrap().forget();
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        },
    ));
    let next = async |started: &mut mpsc::UnboundedReceiver<Option<String>>| {
        tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .ok()
            .flatten()
    };
    // Paused: one in hand, and no other taken while it is.
    assert!(next(&mut started).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        started.try_recv().is_err(),
        "a second message taken while paused"
    );
    // Its end lets exactly one more in.
    release.add_permits(1);
    assert!(next(&mut started).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        started.try_recv().is_err(),
        "a third message taken while paused"
    );
    // Resumed: up to the concurrency at once.
    pause_tx.send(false).unwrap();
    assert!(next(&mut started).await.is_some());
    assert!(next(&mut started).await.is_some());
    release.add_permits(5);
    for _ in 0..2 {
        assert!(next(&mut started).await.is_some());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while finished.load(Ordering::SeqCst) < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every message handled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

/// A pause that comes while the consumer waits for the next delivery holds
/// that delivery back: with one message in hand, the next is not taken.
#[tokio::test]
async fn a_pause_while_waiting_for_a_delivery_holds_the_next_one_back() {
    let (broker, queue, _names) = queue_with_messages(1).await;
    let (pause_tx, pause) = tokio::sync::watch::channel(false);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer::run(
        broker.clone(),
        Settings {
            concurrency: 3,
            pause: Some(pause),
            ..settings(&queue, 3, Duration::from_millis(10))
        },
        &meter(),
        shutdown.clone(),
        {
            let release = release.clone();
            move |message| {
                let (started, release) = (started_tx.clone(), release.clone());
                async move {
                    let _ = started.send(message.message_id);
                    release.acquire().await.unwrap().forget();
                    Ok(())
                }
            }
        },
    ));
    let first = tokio::time::timeout(Duration::from_secs(10), started.recv()).await;
    assert_eq!(first.unwrap().flatten().as_deref(), Some("m-0"));
    // The consumer now waits for a delivery with one message in hand.
    tokio::time::sleep(Duration::from_millis(100)).await;
    pause_tx.send(true).unwrap();
    let exchange = &queue.bindings[0].0;
    broker
        .publish(exchange, "game.created", "m-1", b"{}", Origin::Current)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        started.try_recv().is_err(),
        "a message taken after the pause began"
    );
    // Resumed: it is taken.
    pause_tx.send(false).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), started.recv()).await;
    assert_eq!(second.unwrap().flatten().as_deref(), Some("m-1"));
    release.add_permits(2);
    wait_for_ready(&broker, &queue.name, 0).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready(&broker, &queue.dead_letter_queue()).await, 0);
}

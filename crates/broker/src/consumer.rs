//! Consuming a queue: manual acks, bounded prefetch, up to `concurrency`
//! messages handled at once, one CONSUMER span per message continuing the
//! publisher's trace, bounded retries with backoff, and dead-lettering with a
//! reason. Nothing is dropped silently: a message is acked only once handled
//! or copied to the dead-letter queue, and a handler once started is always
//! run to its end (ack, requeue or dead letter), on shutdown and when the
//! channel fails alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder as _;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use telemetry::spans::{MESSAGING_SYSTEM_RABBITMQ, consumer_span, record_error, record_failure};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Broker, BrokerError, Origin, QueueSpec};

/// Header naming why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-gamenight-reason";

/// Why a handler could not process a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It will never succeed (malformed, refused for good): dead-letter now.
    Permanent(String),
    /// It may succeed later: retry with backoff (or after `retry_after`),
    /// dead-letter once the attempts are used up.
    Transient {
        /// What went wrong.
        reason: String,
        /// The wait a server asked for (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// A dependency is down or asked us to wait: retry with backoff (or
    /// after `retry_after`), then put the message back on the queue. Never
    /// dead-lettered: the message is fine.
    Unavailable {
        /// What is down.
        reason: String,
        /// The wait a server asked for (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
}

impl Failure {
    /// A transient failure with no server-given wait.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A dependency that is down, with no server-given wait.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A delivered message as handlers see it.
#[derive(Debug, Clone)]
pub struct Message {
    /// The routing key it was published with (the event type).
    pub routing_key: String,
    /// The AMQP `message_id` property, if set.
    pub message_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// True when RabbitMQ delivered it before (a consumer died holding it).
    pub redelivered: bool,
}

/// How a queue is consumed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The queue (declared in the broker's topology).
    pub queue: QueueSpec,
    /// Unacked messages RabbitMQ may push at once.
    pub prefetch: u16,
    /// Messages handled at once (0 counts as 1). Above 1, messages of the queue
    /// are handled, and acknowledged, in no particular order: only for
    /// handlers that do not rely on the order of the queue. Each message in
    /// hand counts against `prefetch`, so more than `prefetch` has no effect;
    /// a prefetch above it keeps the next messages ready.
    pub concurrency: usize,
    /// Attempts per message before it is dead-lettered (or requeued).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay, also the cap on a server's `Retry-After`.
    pub max_backoff: Duration,
    /// While this reads `true`, no new message is taken: the handlers keep
    /// what they hold, and the prefetched messages wait with RabbitMQ's
    /// unacked ones. One message is still taken when none is in hand, so
    /// that a handler can find out whether what paused it is over.
    pub pause: Option<watch::Receiver<bool>>,
}

/// What became of a message, for the `gamenight.messages.processed` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Processed,
    DeadLettered,
    Requeued,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

struct Instruments {
    duration: Histogram<f64>,
    processed: Counter<u64>,
}

/// Consumes `settings.queue` until `shutdown` is cancelled, calling `handler`
/// for each message, for up to `settings.concurrency` messages at once.
/// Reconnects (with backoff) whenever the connection or channel fails, once
/// the messages in hand are finished. On shutdown, the messages in hand are
/// finished (or, if waiting to be retried, put back on the queue) before
/// this returns; prefetched ones not started go back to the queue.
pub fn run<H, Fut>(
    broker: Arc<Broker>,
    settings: Settings,
    meter: &Meter,
    shutdown: CancellationToken,
    handler: H,
) -> impl Future<Output = ()> + use<H, Fut>
where
    H: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let instruments = Instruments {
        duration: meter
            .f64_histogram(metric::MESSAGING_PROCESS_DURATION)
            .with_unit("s")
            .with_description("Duration of processing operation.")
            .build(),
        processed: meter
            .u64_counter("gamenight.messages.processed")
            .with_unit("{message}")
            .with_description("Messages consumed, by routing key and outcome.")
            .build(),
    };
    async move {
        let mut delays = reconnect_backoff().build();
        let mut down_since: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let mut consuming = false;
            let result = consume_until_failure(
                &broker,
                &settings,
                &instruments,
                &shutdown,
                &handler,
                &mut consuming,
            )
            .await;
            if consuming {
                // Each outage starts again from the shortest wait: the
                // backoff protects a broker that is down, not one that was.
                delays = reconnect_backoff().build();
                if let Some(since) = down_since.take() {
                    tracing::info!(queue = %settings.queue.name, down_for = ?since.elapsed(), "consumer back");
                }
            }
            let Err(err) = result else { return };
            let retry_in = delays.next().unwrap_or(RECONNECT_MAX_DELAY);
            if down_since.is_none() {
                down_since = Some(Instant::now());
                tracing::warn!(error = %err, queue = %settings.queue.name, "consumer lost its channel; reconnecting");
            } else {
                tracing::debug!(error = %err, queue = %settings.queue.name, ?retry_in, "still reconnecting");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(retry_in) => {}
            }
        }
    }
}

/// Shortest wait before reconnecting after the channel failed.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest wait before jitter (which adds up to as much again): a broker
/// that comes back is consumed from again within a second.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Doubling waits between reconnects, capped and jittered so that many
/// consumers do not reconnect in lockstep.
fn reconnect_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::new()
        .with_min_delay(RECONNECT_MIN_DELAY)
        .with_max_delay(RECONNECT_MAX_DELAY)
        .with_jitter()
        .without_max_times()
}

/// Returns `Ok` on shutdown, `Err` when the channel failed. Sets `consuming`
/// once RabbitMQ has accepted the consumer.
async fn consume_until_failure<H, Fut>(
    broker: &Broker,
    settings: &Settings,
    instruments: &Instruments,
    shutdown: &CancellationToken,
    handler: &H,
    consuming: &mut bool,
) -> Result<(), BrokerError>
where
    H: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let setup = async {
        let channel = broker.consumer_channel().await?;
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = channel
            .basic_consume(
                settings.queue.name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, BrokerError>((channel, deliveries))
    };
    let (channel, mut deliveries) = crate::within_setup("consumer not started", setup).await?;
    *consuming = true;
    let concurrency = settings.concurrency.max(1);
    tracing::info!(queue = %settings.queue.name, prefetch = settings.prefetch, concurrency, "consuming");
    // Handlers run on this task, each to its end: a handler dropped halfway
    // could leave its work half done (a post sent, its record not written).
    let mut in_hand = FuturesUnordered::new();
    let mut pause = settings.pause.clone();
    let mut failure = loop {
        let paused = pause
            .as_mut()
            .is_some_and(|pause| *pause.borrow_and_update());
        let take = in_hand.len() < concurrency && (in_hand.is_empty() || !paused);
        tokio::select! {
            // Shutdown first, then finished handlers, then new deliveries:
            // with prefetched deliveries ready too, an unbiased select would
            // start one of them after shutdown half the time.
            biased;
            () = shutdown.cancelled() => break None,
            Some(handled) = in_hand.next() => {
                if let Err(err) = handled {
                    break Some(err);
                }
            }
            // Paused or resumed: look again before taking the next
            // delivery. An owner gone can pause no more.
            changed = changed(pause.as_mut()) => {
                if changed.is_err() {
                    pause = None;
                }
            }
            next = deliveries.next(), if take => match next {
                Some(Ok(delivery)) => {
                    in_hand.push(handle(broker, settings, instruments, shutdown, handler, delivery));
                }
                Some(Err(err)) => break Some(err.into()),
                None => {
                    break Some(BrokerError::Connect(
                        "the consumer was cancelled by the broker".into(),
                    ));
                }
            },
        }
    };
    // Finish what is in hand. After a channel failure their acks fail too
    // (within 5 s) and RabbitMQ redelivers them; on shutdown a message
    // waiting for its retry goes back to the queue at once.
    while let Some(handled) = in_hand.next().await {
        if let Err(err) = handled {
            failure.get_or_insert(err);
        }
    }
    if failure.is_none() {
        // Unacked prefetched messages go back to the queue when the channel
        // closes.
        let _ = crate::bounded("a close", channel.close(200, "shutting down".into())).await;
    }
    failure.map_or(Ok(()), Err)
}

/// Completes when `pause` changes or its sender is dropped; never without one.
async fn changed(pause: Option<&mut watch::Receiver<bool>>) -> Result<(), watch::error::RecvError> {
    match pause {
        Some(pause) => pause.changed().await,
        None => std::future::pending().await,
    }
}

async fn handle<H, Fut>(
    broker: &Broker,
    settings: &Settings,
    instruments: &Instruments,
    shutdown: &CancellationToken,
    handler: &H,
    delivery: Delivery,
) -> Result<(), BrokerError>
where
    H: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let start = Instant::now();
    let message = Message {
        routing_key: delivery.routing_key.to_string(),
        message_id: crate::message_id(&delivery),
        body: delivery.data.clone(),
        redelivered: delivery.redelivered,
    };
    let parent = crate::propagation::extract_amqp(delivery.properties.headers().as_ref());
    let span = consumer_span(
        delivery.exchange.as_str(),
        &message.routing_key,
        &settings.queue.name,
        message.message_id.as_deref().unwrap_or_default(),
        parent,
    );
    let outcome = async {
        let mut attempt = 1;
        loop {
            let failure = match handler(message.clone()).await {
                Ok(()) => {
                    ack(&delivery).await?;
                    return Ok(Outcome::Processed);
                }
                Err(failure) => failure,
            };
            let exhausted = attempt >= settings.max_attempts;
            // `retry_after`: the wait a server asked for before the next attempt.
            let (reason, retry_after) = match &failure {
                Failure::Permanent(reason) => {
                    return dead_letter(broker, settings, &delivery, &message, reason).await;
                }
                Failure::Transient { reason, .. } if exhausted => {
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    return dead_letter(broker, settings, &delivery, &message, &reason).await;
                }
                Failure::Transient {
                    reason,
                    retry_after,
                }
                | Failure::Unavailable {
                    reason,
                    retry_after,
                } => (reason.as_str(), *retry_after),
            };
            let backoff = settings.initial_backoff * 2u32.saturating_pow(attempt - 1);
            let requeue_now = exhausted && retry_after.is_none();
            if !requeue_now {
                // A server's Retry-After is honoured even before a requeue.
                let wait = retry_after.unwrap_or(backoff).min(settings.max_backoff);
                tracing::warn!(reason, attempt, retry_in = ?wait, "processing failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => {
                        // Shutting down mid-retry: hand the message back
                        // rather than hold the process open.
                        requeue(&delivery).await?;
                        return Ok(Outcome::Requeued);
                    }
                    () = tokio::time::sleep(wait) => {}
                }
            }
            if exhausted {
                // Only an Unavailable failure gets here: the dependency is
                // still down, and the message goes back, not to the DLQ.
                tracing::warn!(
                    reason,
                    attempt,
                    "dependency still down; message back on the queue"
                );
                requeue(&delivery).await?;
                return Ok(Outcome::Requeued);
            }
            attempt += 1;
        }
    }
    .instrument(span.clone())
    .await;

    let mut attributes = vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, MESSAGING_SYSTEM_RABBITMQ),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "process"),
        KeyValue::new(
            semconv::MESSAGING_DESTINATION_SUBSCRIPTION_NAME,
            settings.queue.name.clone(),
        ),
        KeyValue::new(
            semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
            message.routing_key.clone(),
        ),
    ];
    // An `Err` is the ack itself failing: the channel is gone and RabbitMQ
    // will redeliver the message; the caller reconnects.
    let label = outcome
        .as_ref()
        .map_or("unacknowledged", |outcome| outcome.as_str());
    match &outcome {
        Ok(Outcome::Processed) => {}
        Ok(_) => record_failure(&span, label, label),
        Err(err) => record_error(&span, label, err),
    }
    if !matches!(outcome, Ok(Outcome::Processed)) {
        attributes.push(KeyValue::new(semconv::ERROR_TYPE, label));
    }
    instruments
        .duration
        .record(start.elapsed().as_secs_f64(), &attributes);
    instruments.processed.add(
        1,
        &[
            KeyValue::new(
                semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                message.routing_key,
            ),
            KeyValue::new("outcome", label),
        ],
    );
    outcome.map(|_| ())
}

/// Acknowledges `delivery`. Fails (and the caller reconnects; RabbitMQ
/// redelivers) when the channel is gone or does not answer.
async fn ack(delivery: &Delivery) -> Result<(), BrokerError> {
    crate::bounded("an ack", delivery.acker.ack(BasicAckOptions::default())).await?;
    Ok(())
}

/// Puts `delivery` back on its queue for another attempt, by this or
/// another consumer.
async fn requeue(delivery: &Delivery) -> Result<(), BrokerError> {
    let nack = delivery.acker.nack(BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    });
    crate::bounded("a nack", nack).await?;
    Ok(())
}

/// Copies the message to the queue's dead-letter exchange with `reason`,
/// then acks it. If the copy cannot be published the message is put back on
/// the queue instead: it is never lost.
async fn dead_letter(
    broker: &Broker,
    settings: &Settings,
    delivery: &Delivery,
    message: &Message,
    reason: &str,
) -> Result<Outcome, BrokerError> {
    tracing::error!(reason, routing_key = %message.routing_key, "dead-lettering message");
    let mut headers = FieldTable::default();
    headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
    let published = broker
        .publish_with_headers(
            &settings.queue.dead_letter_exchange(),
            &message.routing_key,
            message.message_id.as_deref().unwrap_or_default(),
            &message.body,
            Origin::Current,
            headers,
        )
        .await;
    match published {
        Ok(()) => {
            ack(delivery).await?;
            Ok(Outcome::DeadLettered)
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot dead-letter; message back on the queue");
            requeue(delivery).await?;
            Ok(Outcome::Requeued)
        }
    }
}

/// Moves up to `limit` messages from `queue`'s dead-letter queue back to the
/// exchange it is bound to, with their routing key, id and body, and returns
/// how many moved. For operators, once the cause is fixed (`worker redrive
/// dead-letters`).
///
/// Each message is republished (confirmed) before it is acked off the
/// dead-letter queue, so a failure midway loses nothing; the PRODUCER span of
/// the move continues the message's own trace, and the reason it was
/// dead-lettered is logged there and dropped from its headers.
pub async fn redrive(broker: &Broker, queue: &QueueSpec, limit: u64) -> Result<u64, BrokerError> {
    let Some((exchange, _)) = queue.bindings.first() else {
        return Ok(0);
    };
    let channel = broker.consumer_channel().await?;
    let mut moved = 0;
    while moved < limit {
        let Some(message) = channel
            .basic_get(
                queue.dead_letter_queue().as_str().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let cause = crate::propagation::extract_amqp(Some(&headers));
        let mut headers = headers.inner().clone();
        let reason = headers
            .remove(REASON_HEADER)
            .and_then(|value| value.as_long_string().map(|reason| reason.to_string()))
            .unwrap_or_default();
        let headers = FieldTable::from(headers);
        let message_id = crate::message_id(&delivery).unwrap_or_default();
        let routing_key = delivery.routing_key.to_string();
        let span = tracing::info_span!("redrive", queue = %queue.name, %routing_key, %message_id);
        let _ = span.set_parent(cause);
        async {
            tracing::info!(reason, "re-driving a dead-lettered message");
            broker
                .publish_with_headers(
                    exchange,
                    &routing_key,
                    &message_id,
                    &delivery.data,
                    Origin::Current,
                    headers,
                )
                .await
        }
        .instrument(span)
        .await?;
        ack(&delivery).await?;
        moved += 1;
    }
    let _ = crate::bounded("a close", channel.close(200, "redrive done".into())).await;
    Ok(moved)
}

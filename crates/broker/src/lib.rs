//! RabbitMQ for gamenight services.
//!
//! A [`Broker`] owns one AMQP connection and one channel in publisher-confirm
//! mode, opened on first use and reopened once RabbitMQ reports them closed,
//! so a RabbitMQ restart costs the failed calls, not the process. A refused
//! message (unroutable, nacked) leaves the connection alone: consumers share
//! it and keep the message in hand. Every exchange and queue it was built
//! with is declared on each (re)connect.
//!
//! Errors say whose fault they are: [`BrokerError::is_message_fault`] is true
//! only when RabbitMQ refused the message for what it is; anything else is
//! the broker being away, which callers wait out without charging the message.
//!
//! [`Broker::publish`] and [`Broker::publish_batch`] are the one way messages
//! leave a service: persistent delivery, a PRODUCER span with the trace
//! context in the message headers, and success only once the broker has
//! confirmed the message. A batch is sent in order and its confirms are
//! awaited together, each message getting its own answer.
//! [`consumer::run`] is the one way they come in: manual acks, bounded
//! prefetch, a CONSUMER span continuing the publisher's trace, bounded
//! retries, and a dead-letter queue for what cannot be processed.
//! [`propagation`] is how the trace context rides in the message headers.

pub mod consumer;
pub mod propagation;
mod topology;

pub use topology::{QueueSpec, Topology};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use secrecy::{ExposeSecret, SecretString};
use telemetry::spans::{MESSAGING_SYSTEM_RABBITMQ, Peer, producer_span, record_error};
use tokio::sync::Mutex;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use lapin;

/// How long opening a connection or a channel, declaring the topology or
/// starting a consumer may take before the attempt counts as failed. A broker
/// that is still starting can accept the connection and then sit on a
/// declaration; without a bound the caller would wait with it.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish (or a whole batch) may wait for the broker's confirms.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to RabbitMQ. Messages never contain the URL, which
/// holds the password.
///
/// `Clone`: when a batch's channel fails, every message of it not yet
/// confirmed gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// `RABBITMQ_URL` is not an `amqp://` or `amqps://` URL with a host.
    #[error("RABBITMQ_URL is invalid: expected amqp://user:password@host:5672/vhost")]
    InvalidUrl,
    /// No connection could be opened (in time).
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(String),
    /// The connection or channel failed during a call.
    #[error("RabbitMQ call failed: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused the message (nack): it could not take
    /// responsibility for it.
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    /// No queue is bound for the message's routing key: RabbitMQ would have
    /// dropped it, so it counts as unsent.
    #[error("no queue is bound for routing key {0:?}")]
    Unroutable(String),
    /// No confirm arrived in time; the message may or may not be stored.
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// A call that RabbitMQ answers at once (ack, close, publish) got no
    /// answer: the connection died without a word, or the broker is stuck.
    #[error("RabbitMQ did not answer {0} within 5 s")]
    Timeout(&'static str),
}

impl BrokerError {
    /// True when RabbitMQ refused this message for what it is (no queue is
    /// bound for its routing key): sending it again as it is will fail again.
    /// Every other error is about the broker (down, restarting, slow to
    /// confirm, out of resources): the message is fine and should wait.
    pub fn is_message_fault(&self) -> bool {
        matches!(self, Self::Unroutable(_))
    }

    /// Low-cardinality name for `error.type`.
    fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::Connect(_) => "connect",
            Self::Amqp(_) => "amqp",
            Self::Nacked => "nack",
            Self::Unroutable(_) => "unroutable",
            Self::ConfirmTimeout(_) => "confirm_timeout",
            Self::Timeout(_) => "timeout",
        }
    }
}

/// Where a published message's PRODUCER span sits.
#[derive(Debug, Clone, Default)]
pub enum Origin {
    /// Child of the current span.
    #[default]
    Current,
    /// Child of a stored context: work done later on behalf of a request
    /// (an outbox row) stays in that request's trace.
    ChildOf(opentelemetry::Context),
    /// A new trace with a link to a stored context: work so far from its
    /// cause (a reminder days later) that one trace would mislead.
    LinkedTo(opentelemetry::Context),
}

/// One message to publish (see [`Broker::publish_batch`]).
#[derive(Debug)]
pub struct Outgoing {
    /// Routing key on the exchange.
    pub routing_key: String,
    /// The AMQP `message_id`, which consumers dedupe on. Unique within a
    /// batch: a message RabbitMQ returns as unroutable is recognised by it.
    pub message_id: String,
    /// The JSON body.
    pub payload: Vec<u8>,
    /// Where the PRODUCER span sits in the traces.
    pub origin: Origin,
}

/// One open connection and its confirm-mode channel.
#[derive(Debug)]
struct Connected {
    connection: Connection,
    channel: Channel,
}

/// A RabbitMQ connection shared by a service's tasks.
#[derive(Debug)]
pub struct Broker {
    url: SecretString,
    peer: Peer,
    topology: Topology,
    connected: Mutex<Option<Connected>>,
    /// Held while a batch is sent and confirmed, so the confirm channel
    /// carries one batch at a time: lapin hands a returned (unroutable)
    /// message to whichever confirm completes next, and only among the
    /// messages of one batch can it be traced back, by its id, to the
    /// message it is.
    publishing: Mutex<()>,
    /// Set once a connection has been opened: every later one is a reconnect.
    was_connected: AtomicBool,
    publish_duration: Histogram<f64>,
    reconnects: Counter<u64>,
}

impl Broker {
    /// A broker for `url` that declares `topology` on every connect.
    /// Connects lazily: RabbitMQ may be down when the service starts.
    pub fn new(url: SecretString, topology: Topology, meter: &Meter) -> Result<Self, BrokerError> {
        let peer = peer_of(url.expose_secret())?;
        let publish_duration = meter
            .f64_histogram(metric::MESSAGING_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description(
                "Duration of messaging operations initiated by a producer or consumer client.",
            )
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ])
            .build();
        let reconnects = meter
            .u64_counter("gamenight.rabbitmq.reconnects")
            .with_unit("{connection}")
            .with_description("Connections to RabbitMQ opened after an earlier one was lost.")
            .build();
        Ok(Self {
            url,
            peer,
            topology,
            connected: Mutex::new(None),
            publishing: Mutex::new(()),
            was_connected: AtomicBool::new(false),
            publish_duration,
            reconnects,
        })
    }

    /// The confirm-mode channel, connecting first if needed.
    ///
    /// Returns `Err` when RabbitMQ cannot be reached; the next call tries again.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut connected = self.connected.lock().await;
        match connected.as_mut() {
            Some(current) if current.connection.status().connected() => {
                if !current.channel.status().connected() {
                    // Only the channel was closed (a failed call, a confirm
                    // that never came): the connection, and the consumers
                    // on it, stay.
                    current.channel =
                        within_setup("no channel", confirm_channel(&current.connection)).await?;
                }
                Ok(current.channel.clone())
            }
            _ => {
                let fresh = within_setup("not connected", self.connect()).await?;
                Ok(connected.insert(fresh).channel.clone())
            }
        }
    }

    async fn connect(&self) -> Result<Connected, BrokerError> {
        let connection =
            Connection::connect(self.url.expose_secret(), ConnectionProperties::default())
                .await
                .map_err(|err| BrokerError::Connect(err.to_string()))?;
        let channel = confirm_channel(&connection).await?;
        self.topology.declare(&channel).await?;
        if self.was_connected.swap(true, Ordering::Relaxed) {
            self.reconnects.add(1, &[]);
            tracing::info!(server.address = %self.peer.address, server.port = self.peer.port, "reconnected to RabbitMQ");
        } else {
            tracing::info!(server.address = %self.peer.address, server.port = self.peer.port, "connected to RabbitMQ");
        }
        Ok(Connected {
            connection,
            channel,
        })
    }

    /// Closes the publishing channel (not the connection) so the next call
    /// opens a fresh one: after a confirm that never came, the old channel's
    /// state is unknown.
    async fn discard_channel(&self) {
        if let Some(current) = self.connected.lock().await.as_ref() {
            // Best effort: the channel may be closed already.
            let _ = bounded("a close", current.channel.close(200, "reopening".into())).await;
        }
    }

    /// A new channel on the shared connection (connecting first if needed),
    /// for a consumer: consumers get their own channel so their prefetch
    /// and acks do not mix with publishing.
    pub async fn consumer_channel(&self) -> Result<Channel, BrokerError> {
        self.channel().await?;
        let connected = self.connected.lock().await;
        match connected.as_ref() {
            Some(current) => Ok(current.connection.create_channel().await?),
            None => Err(BrokerError::Connect("connection lost".into())),
        }
    }

    /// Messages ready in `queue`, which must exist (a passive declare, on a
    /// channel of its own: RabbitMQ closes the channel if it does not).
    pub async fn ready_messages(&self, queue: &str) -> Result<u32, BrokerError> {
        let channel = self.consumer_channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        // Best effort: a failed passive declare has closed it already.
        let _ = bounded("a close", channel.close(200, "counted".into())).await;
        Ok(declared?.message_count())
    }

    /// True when a connection is open or can be opened now.
    pub async fn is_ready(&self) -> bool {
        self.channel().await.is_ok()
    }

    /// Publishes `payload` (JSON) to `exchange` with `routing_key` as a
    /// persistent message, and returns once the broker has confirmed it.
    ///
    /// The PRODUCER span's place in a trace comes from `origin`; its context
    /// travels in the message headers. On `Err` the message must be
    /// considered unsent; the connection is left open unless RabbitMQ closed
    /// it (consumers share it).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        payload: &[u8],
        origin: Origin,
    ) -> Result<(), BrokerError> {
        self.publish_with_headers(
            exchange,
            routing_key,
            message_id,
            payload,
            origin,
            FieldTable::default(),
        )
        .await
    }

    /// [`Broker::publish`] with extra AMQP headers (the trace context is
    /// added to them).
    pub async fn publish_with_headers(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        payload: &[u8],
        origin: Origin,
        headers: FieldTable,
    ) -> Result<(), BrokerError> {
        let message = Outgoing {
            routing_key: routing_key.to_owned(),
            message_id: message_id.to_owned(),
            payload: payload.to_vec(),
            origin,
        };
        self.publish_confirmed(exchange, [(message, headers)])
            .await
            .pop()
            .expect("publish_confirmed answers once per message")
    }

    /// Publishes `messages` to `exchange` in order as persistent messages,
    /// then waits for their confirms together (at most 10 s in all), and
    /// returns one result per message, in the same order.
    ///
    /// Each result is that message's own answer: `Ok` once the broker
    /// confirmed it, whatever became of the others. A message refused for
    /// what it is fails with an error that
    /// [is the message's fault](BrokerError::is_message_fault); the others
    /// fail with what happened to the broker. Once the channel fails, the
    /// messages not yet sent are not tried and share its error. Each message
    /// gets its own PRODUCER span, as with [`Broker::publish`].
    pub async fn publish_batch(
        &self,
        exchange: &str,
        messages: Vec<Outgoing>,
    ) -> Vec<Result<(), BrokerError>> {
        let messages = messages
            .into_iter()
            .map(|message| (message, FieldTable::default()));
        self.publish_confirmed(exchange, messages).await
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        messages: impl IntoIterator<Item = (Outgoing, FieldTable)>,
    ) -> Vec<Result<(), BrokerError>> {
        let _alone = self.publishing.lock().await;
        let start = Instant::now();
        // Send in order, without waiting for confirms.
        let mut channel = self.channel().await;
        let (mut sent, mut confirms) = (Vec::new(), Vec::new());
        for (message, headers) in messages {
            let span = publish_span(exchange, &message);
            let confirm = match &channel {
                Ok(open) => {
                    send(open, exchange, &message, headers)
                        .instrument(span.clone())
                        .await
                }
                Err(err) => Err(err.clone()),
            };
            if let Err(err) = &confirm {
                // The channel is gone: the rest are not tried.
                channel = Err(err.clone());
            }
            sent.push((message, span));
            confirms.push(confirm);
        }
        // Then wait for every confirm, all against one deadline.
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        let mut answers = join_all(confirms.into_iter().zip(&sent).map(|(confirm, (_, span))| {
            async move {
                let answer = match confirm {
                    Err(err) => Err(err),
                    Ok(confirm) => match tokio::time::timeout_at(deadline, confirm).await {
                        Err(_) => Err(BrokerError::ConfirmTimeout(CONFIRM_TIMEOUT)),
                        Ok(answer) => answer.map_err(BrokerError::from),
                    },
                };
                (answer, start.elapsed())
            }
            .instrument(span.clone())
        }))
        .await;
        // A returned message rides on whichever confirm lapin completed
        // next, not necessarily its own: collect them all and match by id.
        let returned: HashSet<String> = answers
            .iter_mut()
            .filter_map(|(answer, _)| match answer {
                Ok(Confirmation::Ack(returned) | Confirmation::Nack(returned)) => returned.take(),
                _ => None,
            })
            .filter_map(|message| message_id(&message.delivery))
            .collect();
        // Each publish's outcome goes on its span and the duration histogram.
        let attributes = [
            KeyValue::new(semconv::MESSAGING_SYSTEM, MESSAGING_SYSTEM_RABBITMQ),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "publish"),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "send"),
            KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, exchange.to_owned()),
        ];
        let mut discard_channel = false;
        let results = sent
            .into_iter()
            .zip(answers)
            .map(|((message, span), (answer, elapsed))| {
                let result = match answer {
                    Err(err) => Err(err),
                    Ok(_) if returned.contains(&message.message_id) => {
                        Err(BrokerError::Unroutable(message.routing_key))
                    }
                    Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => Ok(()),
                    Ok(Confirmation::Nack(_)) => Err(BrokerError::Nacked),
                };
                discard_channel |= matches!(result, Err(BrokerError::ConfirmTimeout(_)));
                let mut attributes = attributes.to_vec();
                if let Err(err) = &result {
                    record_error(&span, err.kind(), err);
                    attributes.push(KeyValue::new(semconv::ERROR_TYPE, err.kind()));
                }
                self.publish_duration
                    .record(elapsed.as_secs_f64(), &attributes);
                result
            })
            .collect();
        if discard_channel {
            self.discard_channel().await;
        }
        results
    }
}

/// The PRODUCER span of `message`, placed as its origin says.
fn publish_span(exchange: &str, message: &Outgoing) -> tracing::Span {
    let span = producer_span(exchange, &message.routing_key, &message.message_id);
    match &message.origin {
        Origin::Current => {}
        Origin::ChildOf(parent) => {
            let _ = span.set_parent(parent.clone());
        }
        Origin::LinkedTo(cause) => {
            let _ = span.set_parent(opentelemetry::Context::new());
            span.add_link(cause.span().span_context().clone());
        }
    }
    span
}

/// Sends `message` on `channel` (inside its span, whose context goes into
/// the headers) and returns the confirm to wait for.
async fn send(
    channel: &Channel,
    exchange: &str,
    message: &Outgoing,
    mut headers: FieldTable,
) -> Result<PublisherConfirm, BrokerError> {
    propagation::inject_amqp(&mut headers);
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2) // persistent: written to disk by the broker
        .with_message_id(message.message_id.as_str().into())
        .with_headers(headers);
    bounded(
        "a publish",
        channel.basic_publish(
            exchange.into(),
            message.routing_key.as_str().into(),
            // Mandatory: a message no queue would take comes back
            // instead of vanishing, and the caller keeps it for later.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &message.payload,
            properties,
        ),
    )
    .await
}

/// Runs a call RabbitMQ should answer at once, failing it after
/// [`SETUP_TIMEOUT`]: a connection that died without a word would otherwise
/// hold the caller (and a shutdown waiting for it) forever.
pub(crate) async fn bounded<T>(
    what: &'static str,
    call: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(SETUP_TIMEOUT, call)
        .await
        .map_err(|_| BrokerError::Timeout(what))?
        .map_err(BrokerError::from)
}

/// Runs a setup step (connecting, opening a channel, starting a consumer),
/// failing it as [`BrokerError::Connect`] ("`failed` within 5s") after
/// [`SETUP_TIMEOUT`].
pub(crate) async fn within_setup<T>(
    failed: &str,
    step: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(SETUP_TIMEOUT, step)
        .await
        .map_err(|_| BrokerError::Connect(format!("{failed} within {SETUP_TIMEOUT:?}")))?
}

/// The `message_id` property of a delivered (or returned) message, if set.
pub(crate) fn message_id(delivery: &lapin::message::Delivery) -> Option<String> {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string())
}

/// A new channel on `connection` in publisher-confirm mode.
async fn confirm_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Host and port of an AMQP URL, without its credentials.
fn peer_of(url: &str) -> Result<Peer, BrokerError> {
    let parsed = url::Url::parse(url).map_err(|_| BrokerError::InvalidUrl)?;
    let default_port = match parsed.scheme() {
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return Err(BrokerError::InvalidUrl),
    };
    let host = parsed.host_str().ok_or(BrokerError::InvalidUrl)?;
    Ok(Peer::new(host, parsed.port().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_host_and_port_without_credentials() {
        assert_eq!(
            peer_of("amqp://guest:secret@rabbit:5673/%2f").unwrap(),
            Peer::new("rabbit", 5673)
        );
        assert_eq!(peer_of("amqps://h").unwrap(), Peer::new("h", 5671));
    }

    /// Only a message RabbitMQ cannot route is the message's fault (the
    /// relays set it aside; everything else waits), and each error is its
    /// own `error.type` on the publish span and metric.
    #[test]
    fn only_an_unroutable_message_is_its_own_fault_and_each_error_has_its_type() {
        let errors = [
            (BrokerError::InvalidUrl, "invalid_url", false),
            (BrokerError::Connect("refused".into()), "connect", false),
            (BrokerError::Nacked, "nack", false),
            (
                BrokerError::Unroutable("game.created".into()),
                "unroutable",
                true,
            ),
            (
                BrokerError::ConfirmTimeout(Duration::from_secs(10)),
                "confirm_timeout",
                false,
            ),
            (BrokerError::Timeout("ack"), "timeout", false),
        ];
        for (err, kind, message_fault) in errors {
            assert_eq!(
                (err.kind(), err.is_message_fault()),
                (kind, message_fault),
                "{err}"
            );
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        for url in ["http://guest:secret@h", "not a url", "amqp://"] {
            let err = peer_of(url).unwrap_err();
            assert!(!err.to_string().contains("secret"));
            assert!(err.to_string().contains("RABBITMQ_URL"));
        }
    }
}

//! Spans that follow the OpenTelemetry semantic conventions, for the calls every
//! service makes: HTTP client requests, database queries, cache commands,
//! message publishes and message processing.
//!
//! Each helper returns a `tracing::Span`; the `tracing-opentelemetry` layer turns
//! it into an OpenTelemetry span. The special fields `otel.name`, `otel.kind` and
//! `otel.status_code` set the span's name, kind and status; every other field
//! becomes an attribute under its semantic-convention name.
//!
//! The reqwest helpers (`http_client_span`, `send_traced`,
//! `send_traced_to_third_party`) need the crate's `reqwest` feature.

use opentelemetry::Context;
use opentelemetry::trace::Status;
use opentelemetry_semantic_conventions::attribute as semconv;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `messaging.system` for every broker span.
pub const MESSAGING_SYSTEM_RABBITMQ: &str = "rabbitmq";

/// Where a client connects: `server.address` and `server.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Host name or IP address, never with credentials.
    pub address: String,
    /// TCP port.
    pub port: u16,
}

impl Peer {
    /// Builds a peer from a host and port.
    pub fn new(address: impl Into<String>, port: u16) -> Self {
        Self {
            address: address.into(),
            port,
        }
    }
}

/// A CLIENT span for one database call.
///
/// `query_text` must hold placeholders (`$1`), never values: the text is
/// exported as `db.query.text`. The span is named
/// `{db.operation.name} {db.collection.name}` as the conventions ask.
pub fn db_span(
    system: &'static str,
    operation: &str,
    collection: Option<&str>,
    query_text: &str,
    peer: &Peer,
) -> Span {
    let name = match collection {
        Some(collection) => format!("{operation} {collection}"),
        None => operation.to_owned(),
    };
    tracing::info_span!(
        target: "telemetry::db",
        "db",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        { semconv::DB_SYSTEM_NAME } = system,
        { semconv::DB_OPERATION_NAME } = operation,
        { semconv::DB_COLLECTION_NAME } = collection,
        { semconv::DB_QUERY_TEXT } = query_text,
        { semconv::SERVER_ADDRESS } = peer.address.as_str(),
        { semconv::SERVER_PORT } = i64::from(peer.port),
        { semconv::ERROR_TYPE } = Empty,
    )
}

/// A CLIENT span for one Redis command used as a cache. Record the outcome of
/// a read with [`record_cache_hit`].
pub fn cache_span(command: &'static str, peer: &Peer) -> Span {
    tracing::info_span!(
        target: "telemetry::cache",
        "cache",
        otel.name = command,
        otel.kind = "client",
        otel.status_code = Empty,
        { semconv::DB_SYSTEM_NAME } = "redis",
        { semconv::DB_OPERATION_NAME } = command,
        { semconv::SERVER_ADDRESS } = peer.address.as_str(),
        { semconv::SERVER_PORT } = i64::from(peer.port),
        { semconv::ERROR_TYPE } = Empty,
        cache.hit = Empty,
    )
}

/// Records whether a cache read found its key (`cache.hit`).
pub fn record_cache_hit(span: &Span, hit: bool) {
    span.record("cache.hit", hit);
}

/// A PRODUCER span for publishing one message to a RabbitMQ exchange, named
/// `send {exchange}`. Inject its context into the message headers, with
/// [`crate::propagation::propagator`] and an `Injector` over them, while it
/// is entered.
pub fn producer_span(exchange: &str, routing_key: &str, message_id: &str) -> Span {
    tracing::info_span!(
        target: "telemetry::messaging",
        "publish",
        otel.name = format!("send {exchange}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        { semconv::MESSAGING_SYSTEM } = MESSAGING_SYSTEM_RABBITMQ,
        { semconv::MESSAGING_OPERATION_TYPE } = "send",
        { semconv::MESSAGING_OPERATION_NAME } = "publish",
        { semconv::MESSAGING_DESTINATION_NAME } = exchange,
        { semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY } = routing_key,
        { semconv::MESSAGING_MESSAGE_ID } = message_id,
        { semconv::ERROR_TYPE } = Empty,
    )
}

/// A CONSUMER span for processing one delivered message, named
/// `process {exchange}`, and the **child** of the publisher's span whose
/// context `parent` holds (extracted from the message headers with
/// [`crate::propagation::propagator`]).
pub fn consumer_span(
    exchange: &str,
    routing_key: &str,
    queue: &str,
    message_id: &str,
    parent: Context,
) -> Span {
    let span = tracing::info_span!(
        target: "telemetry::messaging",
        "process",
        otel.name = format!("process {exchange}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        { semconv::MESSAGING_SYSTEM } = MESSAGING_SYSTEM_RABBITMQ,
        { semconv::MESSAGING_OPERATION_TYPE } = "process",
        { semconv::MESSAGING_OPERATION_NAME } = "process",
        { semconv::MESSAGING_DESTINATION_NAME } = exchange,
        { semconv::MESSAGING_DESTINATION_SUBSCRIPTION_NAME } = queue,
        { semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY } = routing_key,
        { semconv::MESSAGING_MESSAGE_ID } = message_id,
        { semconv::ERROR_TYPE } = Empty,
    );
    // Only fails when no OpenTelemetry layer is installed, in which case
    // there is no trace to continue.
    let _ = span.set_parent(parent);
    span
}

#[cfg(feature = "reqwest")]
/// A CLIENT span for one outgoing HTTP request, named `{method}`.
///
/// `url` is exported as `url.full` without its user info and query string;
/// when its path holds a secret (a webhook token, say) pass `url_template`
/// (`/api/webhooks/{id}/{token}`), which replaces the path in `url.full`.
pub fn http_client_span(
    method: &http::Method,
    url: &reqwest::Url,
    url_template: Option<&'static str>,
) -> Span {
    let mut full = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        full.push_str(&format!(":{port}"));
    }
    full.push_str(url_template.unwrap_or(url.path()));
    tracing::info_span!(
        target: "telemetry::http",
        "http client",
        otel.name = method.as_str(),
        otel.kind = "client",
        otel.status_code = Empty,
        { semconv::HTTP_REQUEST_METHOD } = method.as_str(),
        { semconv::URL_FULL } = full,
        { semconv::URL_TEMPLATE } = url_template,
        { semconv::SERVER_ADDRESS } = url.host_str(),
        { semconv::SERVER_PORT } = url.port_or_known_default().map(i64::from),
        { semconv::HTTP_RESPONSE_STATUS_CODE } = Empty,
        { semconv::ERROR_TYPE } = Empty,
    )
}

#[cfg(feature = "reqwest")]
/// Sends `request` with `client` inside an HTTP CLIENT span, with the span's
/// context injected as `traceparent`: for calls to our own services. A 4xx or
/// 5xx answer marks the span as an error, as the conventions ask of clients;
/// the response is returned either way.
///
/// A failed call's error, on the span and returned, never holds the URL:
/// reqwest's own message would show it whole, user info, path and query.
pub async fn send_traced(
    client: &reqwest::Client,
    request: reqwest::Request,
    url_template: Option<&'static str>,
) -> reqwest::Result<reqwest::Response> {
    send(
        client,
        request,
        url_template,
        crate::propagation::inject_http,
    )
    .await
}

#[cfg(feature = "reqwest")]
/// Like [`send_traced`], for a third party (a Discord webhook): the call is
/// traced here but sends no trace context, so nothing about our traces
/// leaves for a service that is not ours.
pub async fn send_traced_to_third_party(
    client: &reqwest::Client,
    request: reqwest::Request,
    url_template: Option<&'static str>,
) -> reqwest::Result<reqwest::Response> {
    send(client, request, url_template, |_| {}).await
}

#[cfg(feature = "reqwest")]
/// Sends `request` inside its CLIENT span, after `propagate` (in the span)
/// has written to its headers the trace context it gives whoever it goes to.
async fn send(
    client: &reqwest::Client,
    mut request: reqwest::Request,
    url_template: Option<&'static str>,
    propagate: fn(&mut http::HeaderMap),
) -> reqwest::Result<reqwest::Response> {
    let span = http_client_span(request.method(), request.url(), url_template);
    span.in_scope(|| propagate(request.headers_mut()));
    let result = tracing::Instrument::instrument(client.execute(request), span.clone())
        .await
        .map_err(reqwest::Error::without_url);
    match &result {
        Ok(response) => record_response(&span, response.status()),
        Err(err) => record_error(&span, error_type(err), err),
    }
    result
}

/// Records the answer's status on an HTTP CLIENT span: a 4xx or 5xx marks
/// it as an error, as the conventions ask of clients. For spans of
/// `http_client_span` (feature `reqwest`) whose answer did not come through
/// `send_traced` (a fault switch standing in for it).
pub fn record_response(span: &Span, status: http::StatusCode) {
    span.record(
        semconv::HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    );
    if status.is_client_error() || status.is_server_error() {
        record_failure(span, status.as_str(), "");
    }
}

#[cfg(feature = "reqwest")]
fn error_type(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "request"
    }
}

/// Marks `span` as failed: status ERROR with the error's message and
/// `error.type` set to `error_type` (a low-cardinality name such as
/// `timeout` or the error enum's variant).
///
/// The message is exported: errors passed here must not carry secrets. For
/// errors whose `Display` may name a server or hold a credential, describe
/// them with [`record_failure`] instead.
pub fn record_error(span: &Span, error_type: &str, err: &dyn std::error::Error) {
    record_failure(span, error_type, &err.to_string());
}

/// Marks `span` as failed: status ERROR with `description` and `error.type`
/// set to `error_type`. `description` is exported as given: a text chosen
/// to be safe (such as [`crate::db::DbError::describe`]), not an error's
/// `Display` taken on trust.
pub fn record_failure(span: &Span, error_type: &str, description: &str) {
    span.record(semconv::ERROR_TYPE, error_type);
    span.set_status(Status::error(description.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::propagator;
    use crate::test_support::{attr, capture};
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::SpanKind;

    #[test]
    fn db_spans_are_named_by_operation_and_table_and_carry_the_query_text() {
        let spans = capture(|| {
            db_span(
                "postgresql",
                "SELECT",
                Some("games"),
                "SELECT * FROM games WHERE id = $1",
                &Peer::new("db.internal", 5432),
            )
            .in_scope(|| {});
        });
        let span = &spans[0];
        assert_eq!(span.name, "SELECT games");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(attr(span, "db.system.name"), Some("postgresql".into()));
        assert_eq!(attr(span, "db.operation.name"), Some("SELECT".into()));
        assert_eq!(attr(span, "db.collection.name"), Some("games".into()));
        assert_eq!(
            attr(span, "db.query.text"),
            Some("SELECT * FROM games WHERE id = $1".into())
        );
        assert_eq!(attr(span, "server.address"), Some("db.internal".into()));
        assert_eq!(attr(span, "server.port"), Some(5432.into()));
    }

    #[test]
    fn cache_spans_record_hits() {
        let spans = capture(|| {
            let span = cache_span("GET", &Peer::new("cache", 6379));
            record_cache_hit(&span, true);
        });
        assert_eq!(spans[0].name, "GET");
        assert_eq!(attr(&spans[0], "db.system.name"), Some("redis".into()));
        assert_eq!(attr(&spans[0], "cache.hit"), Some(true.into()));
    }

    #[test]
    fn a_consumer_span_is_the_child_of_the_producer_span() {
        let spans = capture(|| {
            let producer = producer_span("game.events", "game.created", "m-1");
            // Message headers, as any carrier would hold them.
            let mut headers = std::collections::HashMap::new();
            propagator().inject_context(&producer.context(), &mut headers);
            drop(producer);
            let parent = propagator().extract(&headers);
            consumer_span("game.events", "game.created", "worker.games", "m-1", parent)
                .in_scope(|| {});
        });
        let producer = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Producer)
            .unwrap();
        let consumer = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Consumer)
            .unwrap();
        assert_eq!(producer.name, "send game.events");
        assert_eq!(consumer.name, "process game.events");
        assert_eq!(
            consumer.span_context.trace_id(),
            producer.span_context.trace_id()
        );
        assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
        for span in [producer, consumer] {
            assert_eq!(attr(span, "messaging.system"), Some("rabbitmq".into()));
            assert_eq!(
                attr(span, "messaging.destination.name"),
                Some("game.events".into())
            );
            assert_eq!(
                attr(span, "messaging.rabbitmq.destination.routing_key"),
                Some("game.created".into())
            );
            assert_eq!(attr(span, "messaging.message.id"), Some("m-1".into()));
        }
        assert_eq!(
            attr(producer, "messaging.operation.type"),
            Some("send".into())
        );
        assert_eq!(
            attr(consumer, "messaging.operation.type"),
            Some("process".into())
        );
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn http_client_spans_hide_credentials_query_and_templated_paths() {
        let spans = capture(|| {
            let url = reqwest::Url::parse(
                "https://user:secret@discord.test:8443/api/webhooks/1/tok3n?wait=true",
            )
            .unwrap();
            http_client_span(
                &http::Method::POST,
                &url,
                Some("/api/webhooks/{id}/{token}"),
            )
            .in_scope(|| {});
        });
        let span = &spans[0];
        assert_eq!(span.name, "POST");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(
            attr(span, "url.full"),
            Some("https://discord.test:8443/api/webhooks/{id}/{token}".into())
        );
        assert_eq!(attr(span, "server.address"), Some("discord.test".into()));
        assert_eq!(attr(span, "server.port"), Some(8443.into()));
        assert_eq!(attr(span, "http.request.method"), Some("POST".into()));
    }

    #[test]
    fn record_error_sets_status_and_error_type() {
        let spans = capture(|| {
            let span = db_span(
                "postgresql",
                "SELECT",
                None,
                "SELECT 1",
                &Peer::new("db", 5432),
            );
            record_error(&span, "timeout", &std::io::Error::other("pool timed out"));
        });
        assert_eq!(
            spans[0].status,
            opentelemetry::trace::Status::error("pool timed out")
        );
        assert_eq!(attr(&spans[0], "error.type"), Some("timeout".into()));
    }
}

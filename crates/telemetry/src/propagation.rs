//! W3C trace context (`traceparent`, `tracestate`) and baggage across process
//! boundaries: HTTP headers here, and any other carrier through
//! [`propagator`] and an [`Injector`] / [`Extractor`] over its headers
//! (gamenight's AMQP carrier lives with its RabbitMQ client, in the `broker`
//! crate).
//!
//! These helpers use one fixed propagator (W3C TraceContext + Baggage) rather
//! than the global one, so they behave the same before [`crate::Telemetry::install`]
//! runs and in tests that never install anything.

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The propagator every gamenight service speaks: W3C TraceContext and Baggage.
pub fn w3c_propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// One shared instance of [`w3c_propagator`] for the helpers below.
pub fn propagator() -> &'static TextMapCompositePropagator {
    static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(w3c_propagator);
    &PROPAGATOR
}

/// Writes the context of the current `tracing` span into `headers`.
pub fn inject_http(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    propagator().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Reads the caller's context from `headers`; an empty context when they
/// carry none (the request then starts a new trace).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    propagator().extract(&HeaderExtractor(headers))
}

/// The trace context stored with work carried out later, such as an outbox
/// row or a notification: the W3C `traceparent`, `tracestate` and `baggage`
/// of the span that caused it, one column each.
///
/// Written with [`StoredContext::current`] and read back with
/// [`StoredContext::context`], so every table stores and restores the same
/// three values the same way, and baggage crosses a database hop as it
/// crosses HTTP and AMQP. With the `sqlx` feature it is a
/// [`sqlx::FromRow`](https://docs.rs/sqlx/latest/sqlx/trait.FromRow.html):
/// `#[sqlx(flatten)]` it into a row type whose table has the three columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct StoredContext {
    /// The W3C `traceparent`: trace id, parent span id, flags.
    pub traceparent: Option<String>,
    /// The W3C `tracestate`: vendor entries, if any.
    pub tracestate: Option<String>,
    /// The W3C `baggage`: application entries, if any.
    pub baggage: Option<String>,
}

impl StoredContext {
    /// The context of the current `tracing` span, to store.
    pub fn current() -> Self {
        let cx = tracing::Span::current().context();
        let mut stored = Self::default();
        propagator().inject_context(&cx, &mut stored);
        stored
    }

    /// The stored context, to continue or link to; an empty context when
    /// nothing valid was stored (the work then starts a new trace).
    pub fn context(&self) -> Context {
        propagator().extract(self)
    }
}

impl Injector for StoredContext {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" => self.tracestate = Some(value),
            "baggage" => self.baggage = Some(value),
            // A propagator writing another header: the W3C ones never do.
            _ => {}
        }
    }
}

impl Extractor for StoredContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            "baggage" => self.baggage.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        ["traceparent", "tracestate", "baggage"]
            .into_iter()
            .filter(|key| self.get(key).is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
    };
    use tracing_subscriber::layer::SubscriberExt as _;

    fn remote_context() -> Context {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        Context::new().with_remote_span_context(span_context)
    }

    #[test]
    fn http_headers_round_trip_the_trace_context() {
        let cx = remote_context();
        let mut headers = http::HeaderMap::new();
        propagator().inject_context(&cx, &mut HeaderInjector(&mut headers));
        assert_eq!(
            headers["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let extracted = extract_http(&headers);
        assert_eq!(
            extracted.span().span_context().trace_id(),
            cx.span().span_context().trace_id()
        );
    }

    /// What an outbox row or a notification stores to continue the trace
    /// later: the current span's context and its baggage.
    #[test]
    fn the_current_context_and_its_baggage_survive_storage() {
        use opentelemetry::baggage::BaggageExt as _;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let (stored, span_context) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("POST /games");
            let caller =
                remote_context().with_baggage([opentelemetry::KeyValue::new("tenant", "acme")]);
            let _ = span.set_parent(caller);
            let _entered = span.enter();
            let span_context = span.context().span().span_context().clone();
            (StoredContext::current(), span_context)
        });
        assert!(span_context.is_valid());
        assert_eq!(
            stored.traceparent.as_deref(),
            Some(
                format!(
                    "00-{}-{}-01",
                    span_context.trace_id(),
                    span_context.span_id()
                )
                .as_str()
            )
        );
        assert_eq!(stored.tracestate.as_deref(), Some("vendor=value"));
        assert_eq!(stored.baggage.as_deref(), Some("tenant=acme"));

        let restored = stored.context();
        assert_eq!(
            restored.baggage().get("tenant").map(ToString::to_string),
            Some("acme".to_owned())
        );
        let restored = restored.span().span_context().clone();
        assert_eq!(
            (restored.trace_id(), restored.span_id()),
            (span_context.trace_id(), span_context.span_id())
        );
        assert!(restored.is_remote());
    }

    #[test]
    fn nothing_stored_restores_to_an_invalid_context() {
        let nothing = StoredContext::default();
        assert!(!nothing.context().span().span_context().is_valid());
        assert!(nothing.keys().is_empty());
        let garbled = StoredContext {
            traceparent: Some("00-nothex-00f067aa0ba902b7-01".to_owned()),
            ..StoredContext::default()
        };
        assert!(!garbled.context().span().span_context().is_valid());
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-nothex-00f067aa0ba902b7-01".parse().unwrap(),
        );
        assert!(!extract_http(&headers).span().span_context().is_valid());
    }
}

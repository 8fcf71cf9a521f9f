//! W3C trace context (`traceparent`, `tracestate`) and baggage across process
//! boundaries: HTTP headers here, and any other carrier through
//! [`propagator`] and an [`Injector`](opentelemetry::propagation::Injector) /
//! [`Extractor`](opentelemetry::propagation::Extractor) over its headers
//! (gamenight's AMQP carrier lives with its RabbitMQ client, in the `broker`
//! crate).
//!
//! These helpers use one fixed propagator (W3C TraceContext + Baggage) rather
//! than the global one, so they behave the same before [`crate::Telemetry::install`]
//! runs and in tests that never install anything.

use std::collections::HashMap;
use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
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

/// The context of the current `tracing` span as W3C header pairs
/// (`traceparent`, `tracestate`, `baggage`), for storing with work that is
/// carried out later, such as an outbox row.
pub fn current_context_pairs() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut pairs = HashMap::new();
    propagator().inject_context(&cx, &mut pairs);
    pairs
}

/// The context stored by [`current_context_pairs`].
pub fn context_from_pairs(pairs: &HashMap<String, String>) -> Context {
    propagator().extract(pairs)
}

/// The context stored as `traceparent` and `tracestate` columns.
pub fn context_from_columns(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    let pairs: HashMap<String, String> = [("traceparent", traceparent), ("tracestate", tracestate)]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
        .collect();
    context_from_pairs(&pairs)
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
    /// later: the current span's context, as pairs or as two columns.
    #[test]
    fn the_current_context_survives_storage_as_pairs_or_columns() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let (pairs, stored) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("POST /games");
            let _entered = span.enter();
            let stored = span.context().span().span_context().clone();
            (current_context_pairs(), stored)
        });
        assert!(stored.is_valid());
        assert_eq!(
            pairs.get("traceparent").map(String::as_str),
            Some(format!("00-{}-{}-01", stored.trace_id(), stored.span_id()).as_str())
        );

        for restored in [
            context_from_pairs(&pairs),
            context_from_columns(pairs.get("traceparent").map(String::as_str), None),
        ] {
            let restored = restored.span().span_context().clone();
            assert_eq!(
                (restored.trace_id(), restored.span_id()),
                (stored.trace_id(), stored.span_id())
            );
            assert!(restored.is_remote());
        }
        assert!(
            !context_from_columns(None, None)
                .span()
                .span_context()
                .is_valid()
        );
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

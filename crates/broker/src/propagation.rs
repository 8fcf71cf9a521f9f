//! W3C trace context (`traceparent`, `tracestate`) and baggage in AMQP
//! message headers, so a consumer's span continues its publisher's trace.
//!
//! It lives here, with the RabbitMQ client, rather than in `telemetry`: the
//! carrier is lapin's header table, and only what speaks AMQP should have to
//! compile lapin. It uses the same fixed propagator as the HTTP helpers
//! ([`telemetry::propagation::propagator`]).

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use telemetry::propagation::propagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the context of the current `tracing` span into AMQP message headers.
pub fn inject_amqp(headers: &mut FieldTable) {
    let cx = tracing::Span::current().context();
    propagator().inject_context(&cx, &mut AmqpInjector(headers));
}

/// Reads the publisher's context from AMQP message headers (`None` when the
/// message has no headers at all).
pub fn extract_amqp(headers: Option<&FieldTable>) -> Context {
    headers.map_or_else(Context::new, |headers| {
        propagator().extract(&AmqpExtractor(headers))
    })
}

/// [`Injector`] over AMQP headers: values are written as AMQP long strings,
/// which is how every RabbitMQ client library reads them back.
#[derive(Debug)]
pub struct AmqpInjector<'a>(pub &'a mut FieldTable);

impl Injector for AmqpInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagation keys are short ASCII names; anything that is not a
        // valid AMQP short string is not a key a propagator would use.
        if let Ok(key) = ShortString::try_new(key) {
            self.0.insert(key, AMQPValue::LongString(value.into()));
        }
    }
}

/// [`Extractor`] over AMQP headers. Accepts long and short strings and
/// ignores values of any other type.
#[derive(Debug)]
pub struct AmqpExtractor<'a>(pub &'a FieldTable);

impl Extractor for AmqpExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            AMQPValue::ShortString(value) => Some(value.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

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
    fn amqp_headers_round_trip_the_trace_context() {
        let cx = remote_context();
        let mut headers = FieldTable::default();
        propagator().inject_context(&cx, &mut AmqpInjector(&mut headers));

        assert_eq!(
            headers.inner().get("traceparent"),
            Some(&AMQPValue::LongString(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()
            ))
        );
        let extracted = extract_amqp(Some(&headers));
        let extracted = extracted.span().span_context().clone();
        assert_eq!(extracted.trace_id(), cx.span().span_context().trace_id());
        assert_eq!(extracted.span_id(), cx.span().span_context().span_id());
        assert!(extracted.is_sampled());
        assert!(extracted.is_remote());
        assert_eq!(extracted.trace_state().get("vendor"), Some("value"));
    }

    #[test]
    fn amqp_short_string_headers_are_read_too() {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::ShortString(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
        );
        let extracted = extract_amqp(Some(&headers));
        assert!(extracted.span().span_context().is_valid());
    }

    #[test]
    fn amqp_headers_without_context_extract_to_an_invalid_span_context() {
        let mut headers = FieldTable::default();
        headers.insert("traceparent".into(), AMQPValue::LongLongInt(7));
        assert!(
            !extract_amqp(Some(&headers))
                .span()
                .span_context()
                .is_valid()
        );
        assert!(!extract_amqp(None).span().span_context().is_valid());
    }

    #[test]
    fn amqp_header_names_are_the_extractors_keys() {
        let mut headers = FieldTable::default();
        propagator().inject_context(&remote_context(), &mut AmqpInjector(&mut headers));
        let extractor = AmqpExtractor(&headers);
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["traceparent", "tracestate"]);
    }
}

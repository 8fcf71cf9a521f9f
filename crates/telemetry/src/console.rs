//! The console log: `tracing` events as human-readable lines or JSON objects,
//! each with the `trace_id` and `span_id` of the span it happened in, so a
//! line in `docker logs` can be looked up in Tempo.
//!
//! Spans are not shown: a line names its span by id, and the span's
//! attributes are in the trace. Showing them would mean formatting every
//! span's fields into a string when the span is created, on every request,
//! although most spans never see an event (a cache hit prints nothing); that
//! was a fifth of the api's CPU with telemetry off (docs/PERFORMANCE.md).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::config::LogFormat;

/// Formats events like `tracing-subscriber` does, plus trace and span ids.
#[derive(Debug)]
enum ConsoleFormat {
    Json(Format<Json>),
    /// The human-readable format. Each line is rendered into a buffer
    /// first, and only the format (not a buffer) can be told to use colours:
    /// a copy of it is told, per event, whether the writer takes them.
    Pretty(Format<Full>),
}

/// The console layer: each event as a line in `format` on `writer`, SDK
/// diagnostics held back as [`ConsoleFilter`] says.
pub(crate) fn layer<W>(
    format: LogFormat,
    sdk_diagnostics_interval: Duration,
    writer: W,
) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer = match format {
        LogFormat::Json => layer
            .event_format(ConsoleFormat::Json(
                format::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            ))
            .fmt_fields(JsonFields::new())
            .boxed(),
        // Fields as `key=value`, the layer's default.
        LogFormat::Pretty => layer
            .event_format(ConsoleFormat::Pretty(format::format()))
            .boxed(),
    };
    layer
        .with_filter(ConsoleFilter::new(sdk_diagnostics_interval))
        .boxed()
}

/// The ids of the OpenTelemetry span that is current on this thread, if any.
///
/// `tracing-opentelemetry` makes a span's context current while the span is
/// entered, so this is the span the event is emitted in.
fn current_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}

impl<S, N> FormatEvent<S, N> for ConsoleFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = current_ids();
        match self {
            Self::Pretty(inner) => {
                let inner = inner.clone().with_ansi(writer.has_ansi_escapes());
                let mut line = String::new();
                inner.format_event(ctx, Writer::new(&mut line), event)?;
                let line = line.trim_end_matches('\n');
                match ids {
                    Some((trace_id, span_id)) => {
                        writeln!(writer, "{line} trace_id={trace_id} span_id={span_id}")
                    }
                    None => writeln!(writer, "{line}"),
                }
            }
            Self::Json(inner) => {
                let Some((trace_id, span_id)) = ids else {
                    return inner.format_event(ctx, writer, event);
                };
                let mut line = String::new();
                inner.format_event(ctx, Writer::new(&mut line), event)?;
                // The JSON formatter writes one object per event; add the ids
                // as two more top-level keys.
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&line).map_err(|_| fmt::Error)?;
                object.insert("trace_id".into(), trace_id.into());
                object.insert("span_id".into(), span_id.into());
                let json = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
                writeln!(writer, "{json}")
            }
        }
    }
}

/// What the console shows: events, never spans (see the module docs), and of
/// the OpenTelemetry SDK's own diagnostics at most one event per call site
/// every `interval`.
///
/// While the collector is down, every failed export produces a warning; at a
/// few batches per second that would drown the service's own log. The first
/// warning of each kind is shown at once, then one per interval.
#[derive(Debug)]
struct ConsoleFilter {
    interval: Duration,
    last_shown: Mutex<HashMap<tracing::callsite::Identifier, Instant>>,
}

impl ConsoleFilter {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_shown: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, metadata: &Metadata<'_>, now: Instant) -> bool {
        if !is_sdk_target(metadata.target()) || !metadata.is_event() {
            return true;
        }
        let Ok(mut last_shown) = self.last_shown.lock() else {
            return true;
        };
        match last_shown.get(&metadata.callsite()) {
            Some(shown) if now.duration_since(*shown) < self.interval => false,
            _ => {
                last_shown.insert(metadata.callsite(), now);
                true
            }
        }
    }
}

impl<S> Filter<S> for ConsoleFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        // Whether an event is shown needs its time, so that is decided per
        // event, below.
        metadata.is_event()
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        self.allow(event.metadata(), Instant::now())
    }

    fn callsite_enabled(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if metadata.is_span() {
            tracing::subscriber::Interest::never()
        } else {
            tracing::subscriber::Interest::sometimes()
        }
    }
}

/// Targets of the OpenTelemetry SDK and the transports it exports over.
///
/// Events and spans from these must never be exported as telemetry: every
/// export would produce more telemetry to export (a feedback loop).
pub(crate) fn is_sdk_target(target: &str) -> bool {
    const SDK_TARGETS: &[&str] = &[
        "opentelemetry",
        "hyper",
        "h2",
        "tonic",
        "tower",
        "reqwest",
        "pyroscope",
    ];
    SDK_TARGETS.iter().any(|prefix| {
        target.strip_prefix(prefix).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with("::") || rest.starts_with(['_', '-'])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the events that reach it.
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Emits one SDK warning from one place, as a failing export does.
    fn export_failed() {
        tracing::warn!(target: "opentelemetry_sdk", "export failed");
    }

    #[test]
    fn an_sdk_warning_shows_once_per_interval_and_the_services_own_always() {
        use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
        let shown = std::sync::Arc::default();
        let subscriber = tracing_subscriber::registry().with(
            Count(std::sync::Arc::clone(&shown))
                .with_filter(ConsoleFilter::new(Duration::from_millis(200))),
        );
        let count = || shown.load(std::sync::atomic::Ordering::Relaxed);
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5 {
                export_failed();
            }
            assert_eq!(
                count(),
                1,
                "the first at once, then none within the interval"
            );
            for _ in 0..3 {
                tracing::warn!(target: "api", "the service's own");
            }
            assert_eq!(count(), 4, "the service's own events are never held back");
            std::thread::sleep(Duration::from_millis(250));
            export_failed();
            export_failed();
            assert_eq!(count(), 5, "one more once the interval has passed");
        });
    }

    #[test]
    fn exporter_transport_targets_are_recognised() {
        for target in [
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "opentelemetry",
            "hyper_util::client::legacy",
            "h2::codec",
            "tonic::transport",
            "tower::buffer::worker",
            "reqwest::connect",
        ] {
            assert!(is_sdk_target(target), "{target}");
        }
        for target in [
            "api",
            "telemetry::http",
            "hyperion",
            "towers",
            "sqlx::query",
        ] {
            assert!(!is_sdk_target(target), "{target}");
        }
    }
}

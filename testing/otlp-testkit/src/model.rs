//! Flattened views of what the receiver recorded: each span, metric and log
//! record keeps the resource it came with, so tests can ask "which service
//! sent this" without walking the OTLP envelope.

use std::fmt;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord as ProtoLogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric as ProtoMetric, metric};
use opentelemetry_proto::tonic::trace::v1::{
    Span as ProtoSpan, span::SpanKind, status::StatusCode,
};

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The string value of attribute `key` among a data point's `attributes`.
pub fn str_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    find(attributes, key).and_then(AnyValueExt::as_str)
}

/// Whether `attributes` carry every `(key, string value)` of `wanted`.
pub fn has_str_attributes(attributes: &[KeyValue], wanted: &[(&str, &str)]) -> bool {
    wanted
        .iter()
        .all(|(key, value)| str_attribute(attributes, key) == Some(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads an OTLP attribute value as the type a test expects.
pub trait AnyValueExt {
    /// The value if it is a string.
    fn as_str(&self) -> Option<&str>;
    /// The value if it is an integer.
    fn as_int(&self) -> Option<i64>;
    /// The value if it is a boolean.
    fn as_bool(&self) -> Option<bool>;
}

impl AnyValueExt for AnyValue {
    fn as_str(&self) -> Option<&str> {
        match &self.value {
            Some(any_value::Value::StringValue(value)) => Some(value),
            _ => None,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self.value {
            Some(any_value::Value::IntValue(value)) => Some(value),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self.value {
            Some(any_value::Value::BoolValue(value)) => Some(value),
            _ => None,
        }
    }
}

/// One received span with the resource of the service that sent it.
#[derive(Debug, Clone)]
pub struct Span {
    /// Resource attributes of the sender.
    pub resource: Vec<KeyValue>,
    /// Name of the instrumentation scope (the tracer's name).
    pub scope: String,
    /// The span as it arrived.
    pub span: ProtoSpan,
}

impl Span {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The span's kind.
    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// Trace id, lowercase hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// Span id, lowercase hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Parent span id, lowercase hex; `None` for a root span.
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex(&self.span.parent_span_id))
    }

    /// The span attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        find(&self.span.attributes, key)
    }

    /// The span attribute `key` if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AnyValueExt::as_str)
    }

    /// The span attribute `key` if it is an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AnyValueExt::as_int)
    }

    /// The resource attribute `key` of the sender.
    pub fn resource_attr(&self, key: &str) -> Option<&AnyValue> {
        find(&self.resource, key)
    }

    /// `service.name` of the sender.
    pub fn service_name(&self) -> &str {
        self.resource_attr("service.name")
            .and_then(AnyValueExt::as_str)
            .unwrap_or("unknown_service")
    }

    /// The names of the span's events, in order.
    pub fn event_names(&self) -> Vec<&str> {
        self.span
            .events
            .iter()
            .map(|event| event.name.as_str())
            .collect()
    }

    /// The string attribute `key` of each event that has it.
    pub fn event_str_attrs(&self, key: &str) -> Vec<&str> {
        self.span
            .events
            .iter()
            .flat_map(|event| &event.attributes)
            .filter(|kv| kv.key == key)
            .filter_map(|kv| kv.value.as_ref()?.as_str())
            .collect()
    }

    /// True when the span's status is ERROR.
    pub fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|status| status.code == StatusCode::Error as i32)
    }

    /// Duration in microseconds.
    pub fn duration_micros(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
            / 1_000
    }

    /// Trace ids of the spans this span links to.
    pub fn linked_trace_ids(&self) -> Vec<String> {
        self.span
            .links
            .iter()
            .map(|link| hex(&link.trace_id))
            .collect()
    }
}

/// The spans of one trace, arranged as a tree for assertions and display.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Every span of the trace, in arrival order.
    pub spans: Vec<Span>,
}

impl Trace {
    pub(crate) fn new(spans: Vec<Span>) -> Self {
        Self { spans }
    }

    /// Spans whose parent is not in this trace (normally exactly one).
    pub fn roots(&self) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|span| match span.parent_span_id() {
                None => true,
                Some(parent) => !self.spans.iter().any(|other| other.span_id() == parent),
            })
            .collect()
    }

    /// Direct children of `parent`, by start time.
    pub fn children(&self, parent: &Span) -> Vec<&Span> {
        let parent_id = parent.span_id();
        let mut children: Vec<&Span> = self
            .spans
            .iter()
            .filter(|span| span.parent_span_id().as_deref() == Some(parent_id.as_str()))
            .collect();
        children.sort_by_key(|span| span.span.start_time_unix_nano);
        children
    }

    /// The direct child of `parent` named `name`.
    pub fn child(&self, parent: &Span, name: &str) -> Option<&Span> {
        self.children(parent)
            .into_iter()
            .find(|span| span.name() == name)
    }

    /// True when `span` is below `ancestor`, however deep.
    pub fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_id() == ancestor.span_id() {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }

    /// The first span named `name`.
    pub fn find(&self, name: &str) -> Option<&Span> {
        self.spans.iter().find(|span| span.name() == name)
    }

    /// The parent of `span` within this trace.
    pub fn parent(&self, span: &Span) -> Option<&Span> {
        let parent = span.parent_span_id()?;
        self.spans.iter().find(|other| other.span_id() == parent)
    }

    fn write_subtree(&self, f: &mut fmt::Formatter<'_>, span: &Span, depth: usize) -> fmt::Result {
        let kind = match span.kind() {
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
            SpanKind::Internal | SpanKind::Unspecified => "INTERNAL",
        };
        let error = if span.is_error() { " ERROR" } else { "" };
        writeln!(
            f,
            "{:indent$}{} [{kind}{error}] {} ({} µs)",
            "",
            span.service_name(),
            span.name(),
            span.duration_micros(),
            indent = depth * 2
        )?;
        for child in self.children(span) {
            self.write_subtree(f, child, depth + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for Trace {
    /// One line per span, children indented under their parent:
    /// `service [KIND] name (duration)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for root in self.roots() {
            self.write_subtree(f, root, 0)?;
        }
        Ok(())
    }
}

/// One received metric (one export of it) with the sender's resource.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Resource attributes of the sender.
    pub resource: Vec<KeyValue>,
    /// The metric as it arrived.
    pub metric: ProtoMetric,
}

impl Metric {
    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.metric.name
    }

    /// The metric's unit (`s`, `{request}`, ...).
    pub fn unit(&self) -> &str {
        &self.metric.unit
    }

    /// The histogram data points, empty when this is not a histogram.
    pub fn histogram_points(
        &self,
    ) -> &[opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint] {
        match &self.metric.data {
            Some(metric::Data::Histogram(histogram)) => &histogram.data_points,
            _ => &[],
        }
    }

    /// The aggregation temporality of a histogram or sum, if it has one.
    pub fn temporality(&self) -> Option<i32> {
        match &self.metric.data {
            Some(metric::Data::Histogram(histogram)) => Some(histogram.aggregation_temporality),
            Some(metric::Data::Sum(sum)) => Some(sum.aggregation_temporality),
            _ => None,
        }
    }

    /// The gauge data points, empty when this is not a gauge.
    pub fn gauge_points(&self) -> &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint] {
        match &self.metric.data {
            Some(metric::Data::Gauge(gauge)) => &gauge.data_points,
            _ => &[],
        }
    }

    /// The sum data points, empty when this is not a sum (counter).
    pub fn sum_points(&self) -> &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint] {
        match &self.metric.data {
            Some(metric::Data::Sum(sum)) => &sum.data_points,
            _ => &[],
        }
    }

    /// The series names Prometheus makes of this metric when it arrives over
    /// OTLP with unit and type suffixes (Prometheus' OTLP receiver, as in
    /// grafana/otel-lgtm, and Grafana Cloud): dots become underscores, the
    /// unit is appended in words (`s` → `_seconds`; annotations such as
    /// `{request}` are dropped), a counter gets `_total`, a histogram its
    /// `_bucket`, `_sum` and `_count`.
    pub fn prometheus_names(&self) -> Vec<String> {
        let mut name: String = self
            .name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let unit = match self.unit() {
            "s" => "seconds",
            "ms" => "milliseconds",
            "By" => "bytes",
            "1" | "" => "",
            annotation if annotation.starts_with('{') => "",
            other => other,
        };
        if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
            name = format!("{name}_{unit}");
        }
        match &self.metric.data {
            Some(metric::Data::Sum(sum)) if sum.is_monotonic => vec![format!("{name}_total")],
            Some(metric::Data::Histogram(_)) => ["bucket", "sum", "count"]
                .iter()
                .map(|suffix| format!("{name}_{suffix}"))
                .collect(),
            _ => vec![name],
        }
    }
}

/// One received log record with the sender's resource.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Resource attributes of the sender.
    pub resource: Vec<KeyValue>,
    /// Name of the instrumentation scope; for records bridged from
    /// `tracing`, the event's target.
    pub scope: String,
    /// The record as it arrived.
    pub record: ProtoLogRecord,
}

impl LogRecord {
    /// Trace id, lowercase hex; `None` when the record was emitted outside
    /// any span.
    pub fn trace_id(&self) -> Option<String> {
        (!self.record.trace_id.is_empty()).then(|| hex(&self.record.trace_id))
    }

    /// Span id, lowercase hex.
    pub fn span_id(&self) -> Option<String> {
        (!self.record.span_id.is_empty()).then(|| hex(&self.record.span_id))
    }

    /// The body if it is a string, else an empty string.
    pub fn body_text(&self) -> &str {
        self.record
            .body
            .as_ref()
            .and_then(AnyValueExt::as_str)
            .unwrap_or_default()
    }

    /// The record attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        find(&self.record.attributes, key)
    }

    /// `service.name` of the sender.
    pub fn service_name(&self) -> &str {
        find(&self.resource, "service.name")
            .and_then(AnyValueExt::as_str)
            .unwrap_or("unknown_service")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Histogram, Sum};

    fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
        Metric {
            resource: Vec::new(),
            metric: ProtoMetric {
                name: name.to_owned(),
                unit: unit.to_owned(),
                data: Some(data),
                ..ProtoMetric::default()
            },
        }
    }

    #[test]
    fn prometheus_names_carry_the_unit_and_the_type() {
        let counter = metric(
            "gamenight.games.created",
            "{game}",
            metric::Data::Sum(Sum {
                is_monotonic: true,
                ..Sum::default()
            }),
        );
        assert_eq!(
            counter.prometheus_names(),
            ["gamenight_games_created_total"]
        );
        let histogram = metric(
            "http.server.request.duration",
            "s",
            metric::Data::Histogram(Histogram::default()),
        );
        assert_eq!(
            histogram.prometheus_names(),
            [
                "http_server_request_duration_seconds_bucket",
                "http_server_request_duration_seconds_sum",
                "http_server_request_duration_seconds_count"
            ]
        );
        let gauge = metric(
            "gamenight.outbox.backlog",
            "{event}",
            metric::Data::Gauge(Gauge::default()),
        );
        assert_eq!(gauge.prometheus_names(), ["gamenight_outbox_backlog"]);
        let up_down = metric("queue.size", "By", metric::Data::Sum(Sum::default()));
        assert_eq!(up_down.prometheus_names(), ["queue_size_bytes"]);
    }
}

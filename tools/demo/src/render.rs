//! A trace and its log records as text for a terminal: one line per span,
//! children under their parent, with service, kind, duration and the few
//! attributes that say what the span did.

use std::fmt::Write;

use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::{AnyValueExt, LogRecord, Span, Trace};

/// Attributes worth a glance, in the order they are shown.
/// Attribute and the label it is shown with.
const KEY_ATTRIBUTES: &[(&str, &str)] = &[
    ("http.route", "route"),
    ("http.response.status_code", "status"),
    ("url.full", "url"),
    ("db.query.text", "query"),
    ("cache.hit", "cache_hit"),
    ("messaging.rabbitmq.destination.routing_key", "routing_key"),
    ("messaging.destination.subscription.name", "queue"),
    ("error.type", "error"),
];

fn kind(span: &Span) -> &'static str {
    match span.kind() {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal | SpanKind::Unspecified => "INTERNAL",
    }
}

fn attributes(span: &Span) -> String {
    KEY_ATTRIBUTES
        .iter()
        .filter_map(|&(key, label)| {
            let value = span.attr(key)?;
            let text = match (value.as_str(), value.as_int(), value.as_bool()) {
                (Some(text), _, _) => shorten(text, 60),
                (_, Some(number), _) => number.to_string(),
                (_, _, Some(flag)) => flag.to_string(),
                _ => return None,
            };
            Some(format!("{label}={text}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}

/// The trace as an indented tree:
///
/// ```text
/// api     SERVER POST /games                  6.8 ms  route=/games status_code=201
/// api     └─ INTERNAL create                  5.6 ms
/// api        ├─ CLIENT INSERT games           1.4 ms  text=INSERT INTO games (…
/// ```
pub fn trace_tree(trace: &Trace) -> String {
    let mut rows = Vec::new();
    for root in trace.roots() {
        collect_rows(&mut rows, trace, root, "", "");
    }
    let width = rows
        .iter()
        .map(|(_, label)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (span, label) in rows {
        let status = if span.is_error() { "  ✗ ERROR" } else { "" };
        let _ = writeln!(
            out,
            "{:<7} {label}{:pad$} {:>8.1} ms  {}{status}",
            span.service_name(),
            "",
            span.duration_micros() as f64 / 1000.0,
            attributes(span),
            pad = width - label.chars().count(),
        );
    }
    out
}

/// Each span with its tree-drawn label, parents before children.
fn collect_rows<'t>(
    rows: &mut Vec<(&'t Span, String)>,
    trace: &'t Trace,
    span: &'t Span,
    lead: &str,
    child_lead: &str,
) {
    rows.push((span, format!("{lead}{} {}", kind(span), span.name())));
    let children = trace.children(span);
    for (i, child) in children.iter().enumerate() {
        let (branch, next) = if i + 1 == children.len() {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        collect_rows(
            rows,
            trace,
            child,
            &format!("{child_lead}{branch}"),
            &format!("{child_lead}{next}"),
        );
    }
}

/// Log records in time order: `service LEVEL message`.
pub fn log_lines(logs: &[LogRecord]) -> String {
    let mut logs: Vec<&LogRecord> = logs.iter().collect();
    // Records bridged from `tracing` may carry only the observed time.
    logs.sort_by_key(|log| {
        log.record
            .time_unix_nano
            .max(log.record.observed_time_unix_nano)
    });
    let mut out = String::new();
    for log in logs {
        let _ = writeln!(
            out,
            "{:<7} {:<5} {}",
            log.service_name(),
            log.record.severity_text,
            shorten(log.body_text(), 120)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_to_one_line() {
        assert_eq!(shorten("SELECT *\n  FROM games", 60), "SELECT * FROM games");
        assert_eq!(shorten(&"x".repeat(10), 5), "xxxx…");
    }
}

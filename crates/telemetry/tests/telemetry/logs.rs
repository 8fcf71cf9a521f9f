//! `tracing` events become OTLP log records tied to their span, and the
//! console shows the same trace id.

use telemetry::{LogFormat, Protocol, Service, Telemetry};

use crate::helpers::{Console, any_protocol, config, over_both_protocols, start};

over_both_protocols!(a_log_inside_a_span_carries_the_span_ids);

async fn a_log_inside_a_span_carries_the_span_ids(protocol: Protocol) {
    let (receiver, telemetry) = start(protocol, "bot").await;
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("deliver").in_scope(|| {
            tracing::warn!(attempt = 2, "webhook answered 429, retrying");
        });
        tracing::info!("outside any span");
    });
    telemetry.shutdown().await;

    let span = receiver.wait_for_span("deliver").await.unwrap();
    let log = receiver
        .wait_for_log(&span.trace_id(), "webhook answered 429")
        .await
        .unwrap();
    assert_eq!(log.span_id(), Some(span.span_id()));
    assert_eq!(log.record.severity_text, "WARN");
    assert_eq!(log.service_name(), "bot");
    let outside = receiver
        .logs()
        .into_iter()
        .find(|log| log.body_text() == "outside any span")
        .expect("the log emitted outside a span arrives too");
    assert_eq!(outside.trace_id(), None);
}

/// Each line names its span by id; the span's own fields are in the trace,
/// and formatting them for the console on every span would cost every
/// request, printed or not.
#[tokio::test]
async fn the_console_log_shows_the_trace_id_and_not_the_span_fields_in_both_formats() {
    let receiver = otlp_testkit::Receiver::start().await.unwrap();
    for format in [LogFormat::Pretty, LogFormat::Json] {
        let console = Console::default();
        let mut config = config(&receiver, any_protocol());
        config.log_format = format;
        let telemetry =
            Telemetry::build_with_writer(Service::new("api", "0.0.0"), &config, console.clone())
                .unwrap();
        let trace_id = tracing::dispatcher::with_default(telemetry.dispatch(), || {
            let span = tracing::info_span!("request", http.route = "/games/{id}");
            let _entered = span.enter();
            tracing::info!(game = "Catan", "game created");
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.context().span().span_context().trace_id().to_string()
        });
        telemetry.shutdown().await;

        let text = console.text();
        let line = text
            .lines()
            .find(|line| line.contains("game created"))
            .unwrap();
        assert!(!line.contains("/games/{id}"), "{line}");
        match format {
            LogFormat::Pretty => assert!(line.contains(&format!("trace_id={trace_id}")), "{line}"),
            LogFormat::Json => {
                let json: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(json["trace_id"], trace_id.as_str(), "{line}");
                assert_eq!(json["game"], "Catan", "{line}");
                assert_eq!(json["level"], "INFO", "{line}");
            }
        }
    }
}

#[tokio::test]
async fn repeated_sdk_diagnostics_are_shown_once_per_interval() {
    let receiver = otlp_testkit::Receiver::start().await.unwrap();
    let console = Console::default();
    let telemetry = Telemetry::build_with_writer(
        Service::new("api", "0.0.0"),
        &config(&receiver, any_protocol()),
        console.clone(),
    )
    .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for _ in 0..50 {
            tracing::warn!(target: "opentelemetry_sdk", "export failed");
        }
        for _ in 0..3 {
            tracing::warn!("the service's own warning");
        }
    });
    telemetry.shutdown().await;

    let text = console.text();
    assert_eq!(text.matches("export failed").count(), 1, "{text}");
    assert_eq!(
        text.matches("the service's own warning").count(),
        3,
        "{text}"
    );
    // Nor does the SDK's own chatter become telemetry, while the service's
    // warnings, logged beside it, do.
    let logs = receiver
        .wait_for_condition("the service's three warnings", |_, _, logs| {
            let own = logs
                .iter()
                .filter(|log| log.body_text() == "the service's own warning")
                .count();
            (own == 3).then(|| logs.to_vec())
        })
        .await
        .unwrap();
    let bodies: Vec<&str> = logs.iter().map(|log| log.body_text()).collect();
    assert!(!bodies.contains(&"export failed"), "{bodies:?}");
}

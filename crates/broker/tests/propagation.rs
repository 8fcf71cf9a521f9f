//! Trace context carried in AMQP headers from one service to another,
//! exported by both and joined into one trace at the OTLP receiver.

#![allow(clippy::unwrap_used)]

use broker::lapin::types::FieldTable;
use broker::propagation::{extract_amqp, inject_amqp};
use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::spans::{consumer_span, producer_span};
use telemetry::{Protocol, Service, Telemetry, TelemetryConfig};

/// A service exporting to `receiver`, console log discarded.
fn service(receiver: &Receiver, name: &'static str) -> Telemetry {
    let config = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    Telemetry::build_with_writer(Service::new(name, "1.2.3"), &config, std::io::sink).unwrap()
}

#[tokio::test]
async fn context_in_amqp_headers_continues_the_trace_in_another_service() {
    let receiver = Receiver::start().await.unwrap();
    let api = service(&receiver, "api");
    let worker = service(&receiver, "worker");

    // The api publishes inside a request span...
    let headers = tracing::dispatcher::with_default(api.dispatch(), || {
        let _request = tracing::info_span!("POST /games").entered();
        let publish = producer_span("gamenight.events", "game.created", "msg-1");
        let _publish = publish.enter();
        let mut headers = FieldTable::default();
        inject_amqp(&mut headers);
        headers
    });
    // ...and the worker, a different service, consumes the message.
    tracing::dispatcher::with_default(worker.dispatch(), || {
        let parent = extract_amqp(Some(&headers));
        let _process = consumer_span(
            "gamenight.events",
            "game.created",
            "worker.events",
            "msg-1",
            parent,
        )
        .entered();
        tracing::info_span!("INSERT notifications").in_scope(|| {});
    });
    api.shutdown().await;
    worker.shutdown().await;

    let request = receiver.wait_for_span("POST /games").await.unwrap();
    let trace = receiver
        .wait_for_trace(&request.trace_id(), 4)
        .await
        .unwrap();
    let publish = trace.find("send gamenight.events").unwrap();
    let process = trace.find("process gamenight.events").unwrap();
    let insert = trace.find("INSERT notifications").unwrap();
    assert_eq!(publish.kind(), SpanKind::Producer);
    assert_eq!(process.kind(), SpanKind::Consumer);
    assert_eq!(trace.parent(publish).unwrap().name(), "POST /games");
    assert_eq!(trace.parent(process).unwrap().span_id(), publish.span_id());
    assert_eq!(trace.parent(insert).unwrap().span_id(), process.span_id());
    assert_eq!(publish.service_name(), "api");
    assert_eq!(process.service_name(), "worker");
    assert_eq!(trace.roots().len(), 1, "{trace}");
}

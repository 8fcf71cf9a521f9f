//! The receiver answers on the wire as a collector does.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_testkit::Receiver;
use prost::Message;

fn one_span(name: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: name.into(),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(
    receiver: &Receiver,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/traces", receiver.http_endpoint()))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn protobuf_exports_are_accepted_plain_and_gzipped() {
    let receiver = Receiver::start().await.unwrap();
    let plain = post(&receiver, "application/x-protobuf", None, one_span("plain")).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/x-protobuf");

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&one_span("zipped")).unwrap();
    let zipped = post(
        &receiver,
        "application/x-protobuf",
        Some("gzip"),
        gzip.finish().unwrap(),
    )
    .await;
    assert_eq!(zipped.status(), 200);

    receiver.wait_for_span("plain").await.unwrap();
    let span = receiver.wait_for_span("zipped").await.unwrap();
    assert_eq!(span.trace_id(), "01".repeat(16));
}

#[tokio::test]
async fn bad_exports_get_the_status_a_collector_gives() {
    let receiver = Receiver::start().await.unwrap();
    let json = post(&receiver, "application/json", None, b"{}".to_vec()).await;
    assert_eq!(json.status(), 415);
    let garbage = post(&receiver, "application/x-protobuf", None, vec![0xff; 7]).await;
    assert_eq!(garbage.status(), 400);
    let brotli = post(
        &receiver,
        "application/x-protobuf",
        Some("br"),
        one_span("x"),
    )
    .await;
    assert_eq!(brotli.status(), 400);
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn a_refusal_is_a_503_with_retry_after() {
    let receiver = Receiver::start().await.unwrap();
    receiver.fail_next(1);
    let refused = post(&receiver, "application/x-protobuf", None, one_span("late")).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let accepted = post(&receiver, "application/x-protobuf", None, one_span("late")).await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(receiver.spans().len(), 1);
    assert_eq!(receiver.request_counts(), (0, 2));
}

#[tokio::test]
async fn a_counting_receiver_counts_what_it_accepts_and_keeps_nothing() {
    let receiver = Receiver::start_counting().await.unwrap();
    let accepted = post(&receiver, "application/x-protobuf", None, one_span("a")).await;
    assert_eq!(accepted.status(), 200);
    receiver.fail_next(1);
    let refused = post(&receiver, "application/x-protobuf", None, one_span("b")).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(receiver.counts().spans, 1);
    assert!(receiver.spans().is_empty());
}

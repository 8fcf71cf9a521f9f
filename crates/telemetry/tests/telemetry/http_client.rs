//! Outgoing reqwest calls: a CLIENT span per request, and its context sent
//! along as `traceparent` so the server's span becomes its child.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::Protocol;
use telemetry::spans::{send_traced, send_traced_to_third_party};
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::helpers::{over_both_protocols, start};

over_both_protocols!(
    outgoing_requests_get_client_spans_and_carry_traceparent,
    a_failed_call_shows_no_part_of_its_url,
    a_third_party_gets_no_trace_context,
);

async fn outgoing_requests_get_client_spans_and_carry_traceparent(protocol: Protocol) {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = seen.clone();
    let server = Router::new()
        .route(
            "/games/{id}",
            get(move |headers: HeaderMap| async move {
                let traceparent = headers
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                recorder.lock().unwrap().push(traceparent);
                "a game"
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let (receiver, telemetry) = start(protocol, "bot").await;
    let client = reqwest::Client::new();
    let deliver =
        tracing::dispatcher::with_default(telemetry.dispatch(), || tracing::info_span!("deliver"));
    async {
        let ok = client.get(format!("{base}/games/7")).build().unwrap();
        assert_eq!(send_traced(&client, ok, None).await.unwrap().status(), 200);
        let missing = client.get(format!("{base}/missing")).build().unwrap();
        assert_eq!(
            send_traced(&client, missing, None).await.unwrap().status(),
            404
        );
    }
    .instrument(deliver)
    .with_subscriber(telemetry.dispatch().clone())
    .await;
    telemetry.shutdown().await;

    let deliver = receiver.wait_for_span("deliver").await.unwrap();
    let trace = receiver
        .wait_for_trace(&deliver.trace_id(), 3)
        .await
        .unwrap();
    let calls = trace.children(&deliver);
    assert_eq!(calls.len(), 2, "{trace}");
    let (ok, missing) = (calls[0], calls[1]);
    assert_eq!(ok.name(), "GET");
    assert_eq!(ok.kind(), SpanKind::Client);
    assert_eq!(ok.int_attr("http.response.status_code"), Some(200));
    assert_eq!(
        ok.str_attr("url.full"),
        Some(format!("{base}/games/7").as_str())
    );
    assert!(!ok.is_error());
    // A client treats 4xx as a failure of its call.
    assert!(missing.is_error());
    assert_eq!(missing.str_attr("error.type"), Some("404"));

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0],
        format!("00-{}-{}-01", ok.trace_id(), ok.span_id()),
        "the server saw the client span as its parent"
    );
}

async fn a_failed_call_shows_no_part_of_its_url(protocol: Protocol) {
    // A port nothing listens on: the connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://us3r:pa55@127.0.0.1:{port}/api/webhooks/1/t0ken?key=qu3ry");

    let (receiver, telemetry) = start(protocol, "bot").await;
    let client = reqwest::Client::new();
    let err = async {
        let request = client.post(&url).build().unwrap();
        send_traced(&client, request, Some("/api/webhooks/{id}/{token}"))
            .await
            .unwrap_err()
    }
    .with_subscriber(telemetry.dispatch().clone())
    .await;
    telemetry.shutdown().await;

    let span = receiver.wait_for_span("POST").await.unwrap();
    assert!(span.is_error());
    assert_eq!(span.str_attr("error.type"), Some("connect"));
    let exported = format!("{span:?}");
    let returned = format!("{err} {err:?}");
    for secret in ["us3r", "pa55", "t0ken", "qu3ry"] {
        assert!(!exported.contains(secret), "{secret} exported: {exported}");
        assert!(!returned.contains(secret), "{secret} returned: {returned}");
    }
}

async fn a_third_party_gets_no_trace_context(protocol: Protocol) {
    let seen = Arc::new(Mutex::new(Vec::<HeaderMap>::new()));
    let recorder = seen.clone();
    let server = Router::new().route(
        "/api/webhooks/{id}/{token}",
        axum::routing::post(move |headers: HeaderMap| async move {
            recorder.lock().unwrap().push(headers);
            StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/webhooks/1/t0ken",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let (receiver, telemetry) = start(protocol, "bot").await;
    let client = reqwest::Client::new();
    let deliver =
        tracing::dispatcher::with_default(telemetry.dispatch(), || tracing::info_span!("deliver"));
    async {
        let request = client.post(&url).build().unwrap();
        let template = Some("/api/webhooks/{id}/{token}");
        let response = send_traced_to_third_party(&client, request, template)
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    .instrument(deliver)
    .with_subscriber(telemetry.dispatch().clone())
    .await;
    telemetry.shutdown().await;

    // Traced here, as a child of the work that made the call...
    let deliver = receiver.wait_for_span("deliver").await.unwrap();
    let trace = receiver
        .wait_for_trace(&deliver.trace_id(), 2)
        .await
        .unwrap();
    let calls = trace.children(&deliver);
    assert_eq!(calls.len(), 1, "{trace}");
    assert_eq!(calls[0].kind(), SpanKind::Client);
    assert_eq!(calls[0].int_attr("http.response.status_code"), Some(204));
    // ...but nothing of the trace went to the third party.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    for header in ["traceparent", "tracestate", "baggage"] {
        assert!(
            !seen[0].contains_key(header),
            "{header} sent: {:?}",
            seen[0]
        );
    }
}

//! Outgoing reqwest calls: a CLIENT span per request, and its context sent
//! along as `traceparent` so the server's span becomes its child.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::Protocol;
use telemetry::spans::send_traced;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::helpers::{over_both_protocols, start};

over_both_protocols!(outgoing_requests_get_client_spans_and_carry_traceparent);

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

//! The HTTP server layer: SERVER spans named by route, and the
//! `http.server.request.duration` histogram with the semconv buckets.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use otlp_testkit::AnyValueExt;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::Protocol;
use telemetry::http_server::{DURATION_BUCKETS, HttpServerLayer};
use tower::ServiceExt;
use tracing::instrument::WithSubscriber;

use crate::helpers::{over_both_protocols, start};

over_both_protocols!(requests_get_server_spans_and_a_duration_histogram);

fn app(layer: HttpServerLayer) -> Router {
    Router::new()
        .route("/games/{id}", get(|| async { "a game" }))
        .route(
            "/games/{id}/participants/{player}",
            axum::routing::delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(layer)
        .route("/healthz", get(|| async { "ok" }))
}

async fn call(app: &Router, uri: &str, traceparent: Option<&str>) -> StatusCode {
    call_with(app, Request::get(uri), traceparent).await
}

async fn call_with(
    app: &Router,
    mut request: axum::http::request::Builder,
    traceparent: Option<&str>,
) -> StatusCode {
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

async fn requests_get_server_spans_and_a_duration_histogram(protocol: Protocol) {
    let (receiver, telemetry) = start(protocol, "api").await;
    let app = app(HttpServerLayer::new(&telemetry.meter("api")).exporting_params(&["id"]));
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    async {
        assert_eq!(call(&app, "/games/42", Some(caller)).await, StatusCode::OK);
        assert_eq!(call(&app, "/games/43", None).await, StatusCode::OK);
        assert_eq!(
            call(&app, "/boom", None).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(call(&app, "/nowhere", None).await, StatusCode::NOT_FOUND);
        let leave = Request::delete("/games/44/participants/grace-hopper");
        assert_eq!(call_with(&app, leave, None).await, StatusCode::NO_CONTENT);
        assert_eq!(call(&app, "/healthz", None).await, StatusCode::OK);
    }
    .with_subscriber(telemetry.dispatch().clone())
    .await;
    telemetry.shutdown().await;

    let metric = receiver
        .wait_for_metric("http.server.request.duration")
        .await
        .unwrap();
    let spans = receiver.spans();
    let named = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name() == name)
            .collect::<Vec<_>>()
    };

    // Named by route template, never by raw path; the caller's trace continues.
    let games = named("GET /games/{id}");
    assert_eq!(games.len(), 2);
    let continued = games
        .iter()
        .find(|s| s.str_attr("url.path") == Some("/games/42"))
        .unwrap();
    assert_eq!(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        continued.parent_span_id().as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(continued.kind(), SpanKind::Server);
    assert_eq!(continued.str_attr("http.request.method"), Some("GET"));
    assert_eq!(continued.str_attr("http.route"), Some("/games/{id}"));
    assert_eq!(continued.int_attr("http.response.status_code"), Some(200));
    assert!(!continued.is_error());

    // 5xx is an error; an unmatched route is named by method alone and, as
    // a 4xx, is not an error; the health probe is not traced at all.
    let boom = named("GET /boom");
    assert!(boom[0].is_error());
    assert_eq!(boom[0].str_attr("error.type"), Some("500"));
    let unmatched = named("GET");
    assert_eq!(
        unmatched[0].int_attr("http.response.status_code"),
        Some(404)
    );
    assert_eq!(unmatched[0].attr("http.route"), None);
    assert_eq!(unmatched[0].attr("url.path"), None, "a path no route knows");
    assert!(!unmatched[0].is_error());
    assert!(
        spans
            .iter()
            .all(|s| s.str_attr("url.path") != Some("/healthz"))
    );

    // Only the parameters named safe show their values in `url.path`.
    let leave = named("DELETE /games/{id}/participants/{player}");
    assert_eq!(
        leave[0].str_attr("url.path"),
        Some("/games/44/participants/{player}")
    );
    assert!(!format!("{spans:?}").contains("grace-hopper"), "{spans:?}");

    // The histogram: seconds, semconv buckets, cumulative (Mimir rejects delta).
    assert_eq!(metric.unit(), "s");
    assert_eq!(metric.temporality(), Some(2), "cumulative");
    let points = metric.histogram_points();
    let games_point = points
        .iter()
        .find(|p| {
            p.attributes.iter().any(|kv| {
                kv.key == "http.route"
                    && kv.value.as_ref().and_then(|v| v.as_str()) == Some("/games/{id}")
            })
        })
        .expect("a data point for /games/{id}");
    assert_eq!(games_point.count, 2);
    assert_eq!(games_point.explicit_bounds, DURATION_BUCKETS);
    // Each point carries its request's attributes, the error's too.
    let string = |point: &otlp_testkit::proto::metrics::v1::HistogramDataPoint, key: &str| {
        point
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.as_str().map(str::to_owned))
    };
    let boom_point = points
        .iter()
        .find(|p| string(p, "http.route").as_deref() == Some("/boom"))
        .expect("a data point for /boom");
    assert_eq!(string(boom_point, "error.type").as_deref(), Some("500"));
    assert_eq!(string(games_point, "error.type"), None);
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(
        total, 5,
        "every traced request counted once, the health probe not at all"
    );
    assert!(
        points
            .iter()
            .all(|p| { p.attributes.iter().all(|kv| kv.key != "url.path") })
    );
}

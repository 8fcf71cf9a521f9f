//! The release-style binary exports spans, metrics and logs where the
//! standard OTEL_* variables say, and nothing when the SDK is disabled.

use std::collections::{BTreeSet, HashSet};

use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::{Receiver, Span};

use crate::helpers::{Servers, game_body};
use crate::process::{Api, run_to_exit};

async fn serves_and_exports_over(protocol: &str) {
    let receiver = Receiver::start().await.unwrap();
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Basic%20dGVzdDp0ZXN0",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=ci,team=games",
            ),
        ],
    )
    .await;

    api.create_game().await;
    let status = api.terminate().await;
    assert!(status.success(), "api exits cleanly on SIGTERM: {status}");

    let span = receiver.wait_for_span("POST /games").await.unwrap();
    assert_eq!(span.kind(), SpanKind::Server);
    assert_eq!(span.service_name(), "api");
    let resource = |key| {
        span.resource_attr(key)
            .and_then(|v| otlp_testkit::AnyValueExt::as_str(v).map(str::to_owned))
    };
    assert_eq!(
        resource("deployment.environment.name").as_deref(),
        Some("ci")
    );
    assert_eq!(resource("team").as_deref(), Some("games"));
    assert_eq!(resource("service.namespace").as_deref(), Some("gamenight"));
    receiver
        .wait_for_log(&span.trace_id(), "game created")
        .await
        .unwrap();
    let metric = receiver
        .wait_for_metric("http.server.request.duration")
        .await
        .unwrap();
    assert_eq!(
        metric
            .histogram_points()
            .iter()
            .map(|p| p.count)
            .sum::<u64>(),
        1
    );

    // Every export carried the configured header and was gzip-compressed.
    let encoding = if protocol == "grpc" {
        "grpc-encoding"
    } else {
        "content-encoding"
    };
    let requests = receiver.request_headers();
    assert!(requests.len() >= 3, "one export per signal at least");
    for headers in requests {
        assert_eq!(headers["authorization"], "Basic dGVzdDp0ZXN0");
        assert_eq!(headers[encoding], "gzip");
    }
}

#[tokio::test]
async fn a_per_signal_endpoint_takes_that_signal_elsewhere() {
    let general = Receiver::start().await.unwrap();
    let traces = Receiver::start().await.unwrap();
    let general_endpoint = general.http_endpoint();
    let traces_endpoint = format!("{}/v1/traces", traces.http_endpoint());
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", general_endpoint.as_str()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                traces_endpoint.as_str(),
            ),
        ],
    )
    .await;
    api.create_game().await;
    assert!(api.terminate().await.success());

    let span = traces.wait_for_span("POST /games").await.unwrap();
    general
        .wait_for_log(&span.trace_id(), "game created")
        .await
        .unwrap();
    assert!(
        general.spans().is_empty(),
        "spans went to the traces endpoint only"
    );
    assert!(
        traces.logs().is_empty(),
        "logs went to the general endpoint"
    );
}

#[tokio::test]
async fn a_parent_based_ratio_sampler_follows_the_caller_and_metrics_export_on_interval() {
    let receiver = Receiver::start().await.unwrap();
    let endpoint = receiver.http_endpoint();
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // A new trace: ratio 0 drops it.
    client
        .post(format!("{}/games", api.base_url))
        .json(&game_body(4))
        .send()
        .await
        .unwrap();
    // A caller that sampled its trace: the service follows its decision.
    let sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    client
        .post(format!("{}/games", api.base_url))
        .json(&game_body(4))
        .header("traceparent", sampled)
        .send()
        .await
        .unwrap();

    let span = receiver.wait_for_span("POST /games").await.unwrap();
    assert_eq!(span.trace_id(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span.parent_span_id().as_deref(), Some("b7ad6b7169203331"));
    // Exported on the 100 ms interval, while the service is still running.
    let metric = receiver
        .wait_for_condition("both requests in the histogram", |_, metrics, _| {
            metrics
                .iter()
                .rev()
                .find(|m| m.name() == "http.server.request.duration")
                .filter(|m| m.histogram_points().iter().map(|p| p.count).sum::<u64>() == 2)
                .cloned()
        })
        .await;
    assert!(metric.is_ok(), "{metric:?}");
    assert!(api.terminate().await.success());
    assert_eq!(
        receiver
            .spans()
            .iter()
            .filter(|s| s.name() == "POST /games")
            .count(),
        1,
        "the unsampled request was not exported"
    );
}

#[tokio::test]
async fn the_binary_exports_spans_metrics_and_logs_over_http_protobuf() {
    serves_and_exports_over("http/protobuf").await;
}

#[tokio::test]
async fn the_binary_exports_spans_metrics_and_logs_over_grpc() {
    serves_and_exports_over("grpc").await;
}

/// With every target at trace level, the exporter's own stack (the SDK, and
/// tonic, h2 and hyper under it, or reqwest) records plenty about each
/// export; none of it may be exported, or every export would cause another.
///
/// Its log records are told apart by their instrumentation scope, which
/// OTLP log export takes from the `tracing` target (`h2::codec`,
/// `opentelemetry_sdk`, …). Its spans cannot be: every `tracing` span is
/// exported through one tracer, so all carry the service's scope, and
/// their target is not exported. They are told apart by where they sit: an
/// export runs outside any request, so its spans start traces of their own,
/// while every trace the api starts begins with a request (a server span), a
/// relay pass or a retention sweep.
async fn the_exporters_own_traffic_is_never_exported_over(protocol: &str) {
    let receiver = Receiver::start().await.unwrap();
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("RUST_LOG", "trace"),
            // Export often, so exports happen while the service runs.
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    for _ in 0..3 {
        api.create_game().await;
        receiver.wait_for_span("POST /games").await.unwrap();
    }
    assert!(api.terminate().await.success());

    let span = receiver.wait_for_span("POST /games").await.unwrap();
    receiver
        .wait_for_log(&span.trace_id(), "game created")
        .await
        .unwrap();
    let foreign_scopes: BTreeSet<String> = receiver
        .logs()
        .into_iter()
        .map(|log| log.scope)
        .filter(|scope| {
            ["opentelemetry", "hyper", "h2", "tonic", "tower", "reqwest"]
                .iter()
                .any(|sdk| scope.starts_with(sdk))
        })
        .collect();
    assert!(
        foreign_scopes.is_empty(),
        "exported the exporter's own log records, from {foreign_scopes:?}"
    );

    let spans = receiver.spans();
    let exported: HashSet<String> = spans.iter().map(|span| span.span_id()).collect();
    let starts_a_trace_of_ours =
        |span: &Span| span.kind() == SpanKind::Server || ["pass", "sweep"].contains(&span.name());
    // The topmost exported span of any trace either has no parent or a
    // parent that was not exported: each foreign trace shows up here.
    let foreign_tops: BTreeSet<&str> = spans
        .iter()
        .filter(|span| match span.parent_span_id() {
            None => !starts_a_trace_of_ours(span),
            Some(parent) => !exported.contains(&parent),
        })
        .map(Span::name)
        .collect();
    assert!(
        foreign_tops.is_empty(),
        "exported spans that start no trace of the api's: {foreign_tops:?}"
    );
}

#[tokio::test]
async fn the_exporters_own_traffic_is_never_exported_over_grpc() {
    the_exporters_own_traffic_is_never_exported_over("grpc").await;
}

#[tokio::test]
async fn the_exporters_own_traffic_is_never_exported_over_http() {
    the_exporters_own_traffic_is_never_exported_over("http/protobuf").await;
}

#[tokio::test]
async fn with_the_sdk_disabled_the_binary_sends_nothing() {
    let receiver = Receiver::start().await.unwrap();
    let endpoint = receiver.http_endpoint();
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    )
    .await;
    api.create_game().await;
    assert!(api.terminate().await.success());
    // The process has exited after flushing: anything it would send is sent.
    assert_eq!(receiver.request_counts(), (0, 0));
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_a_line_naming_the_variable() {
    let servers = Servers::fresh().await;
    let valid: Vec<(&str, String)> = servers.env();
    for (var, value) in [
        ("API_LISTEN_ADDR", "not-an-address"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("DATABASE_URL", "mysql://root:hunter2@db/gamenight"),
        ("RABBITMQ_URL", "http://guest:hunter2@mq"),
        ("REDIS_URL", ""),
        ("CACHE_TTL_SECONDS", "a minute"),
    ] {
        let mut env: Vec<(&str, &str)> = valid
            .iter()
            .filter(|(key, _)| *key != var)
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        env.push((var, value));
        // No collector here: skip the export retries on the way out.
        env.push(("OTEL_SDK_DISABLED", "true"));
        let (status, stderr) = run_to_exit(&env).await;
        // clap's code and message for bad usage, naming the variable (a
        // missing one on the line after `error:`, as clap lists them).
        assert_eq!(status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.starts_with("error: "), "{var}: {stderr}");
        let error: String = stderr.lines().take(2).collect();
        assert!(error.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
}

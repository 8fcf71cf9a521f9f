//! Spans arrive with their parents, attributes and resource.

use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::Protocol;
use telemetry::spans::{Peer, db_span};

use crate::helpers::{over_both_protocols, start};

over_both_protocols!(
    spans_arrive_with_parent_child_links_and_attributes,
    spans_carry_the_service_resource,
    a_refused_export_is_retried,
);

async fn spans_arrive_with_parent_child_links_and_attributes(protocol: Protocol) {
    let (receiver, telemetry) = start(protocol, "api").await;
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let _request = tracing::info_span!("handle request", game.title = "Catan").entered();
        db_span(
            "postgresql",
            "INSERT",
            Some("games"),
            "INSERT INTO games (id, title) VALUES ($1, $2)",
            &Peer::new("localhost", 5432),
        )
        .in_scope(|| {});
    });
    telemetry.shutdown().await;

    let parent = receiver.wait_for_span("handle request").await.unwrap();
    let child = receiver.wait_for_span("INSERT games").await.unwrap();
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_eq!(child.parent_span_id(), Some(parent.span_id()));
    assert_eq!(parent.parent_span_id(), None);
    assert_eq!(parent.str_attr("game.title"), Some("Catan"));
    assert_eq!(child.kind(), SpanKind::Client);
    assert_eq!(child.str_attr("db.system.name"), Some("postgresql"));
    assert_eq!(
        child.str_attr("db.query.text"),
        Some("INSERT INTO games (id, title) VALUES ($1, $2)")
    );
    assert_eq!(child.int_attr("server.port"), Some(5432));
}

async fn spans_carry_the_service_resource(protocol: Protocol) {
    let (receiver, telemetry) = start(protocol, "worker").await;
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("tick").in_scope(|| {});
    });
    telemetry.shutdown().await;

    let span = receiver.wait_for_span("tick").await.unwrap();
    let resource = |key| span.resource_attr(key).and_then(|v| v.value.clone());
    use otlp_testkit::proto::common::v1::any_value::Value;
    assert_eq!(
        resource("service.name"),
        Some(Value::StringValue("worker".into()))
    );
    assert_eq!(
        resource("service.version"),
        Some(Value::StringValue("1.2.3".into()))
    );
    assert_eq!(
        resource("service.namespace"),
        Some(Value::StringValue("gamenight".into()))
    );
    assert_eq!(
        resource("deployment.environment.name"),
        Some(Value::StringValue("development".into()))
    );
    assert!(resource("service.instance.id").is_some());
    assert!(resource("host.name").is_some());
}

async fn a_refused_export_is_retried(protocol: Protocol) {
    let (receiver, telemetry) = start(protocol, "api").await;
    // A collector under pressure answers 503 / UNAVAILABLE: the exporter must
    // back off and try again rather than drop the batch.
    receiver.fail_next(2);
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("retried").in_scope(|| {});
    });
    telemetry.shutdown().await;

    receiver.wait_for_span("retried").await.unwrap();
    let (grpc, http) = receiver.request_counts();
    assert!(
        grpc + http >= 3,
        "expected 2 refusals and a retry, saw {grpc} gRPC + {http} HTTP requests"
    );
}

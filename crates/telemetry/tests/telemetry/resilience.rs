//! Telemetry never breaks the service: disabled means silent, and a dead
//! collector neither blocks nor panics.

use std::collections::HashMap;
use std::time::Duration;

use otlp_testkit::Receiver;
use telemetry::{Protocol, Service, Telemetry, TelemetryConfig};

use crate::helpers::{config, over_both_protocols};

over_both_protocols!(
    a_disabled_sdk_sends_nothing,
    a_dead_collector_neither_blocks_nor_panics,
);

/// Emits one of each signal through `telemetry`.
fn emit_everything(telemetry: &Telemetry) {
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let _span = tracing::info_span!("work").entered();
        tracing::info!("working");
    });
    telemetry
        .meter("test")
        .u64_counter("games.created")
        .build()
        .add(1, &[]);
}

async fn a_disabled_sdk_sends_nothing(protocol: Protocol) {
    let receiver = Receiver::start().await.unwrap();
    let env = HashMap::from([
        ("OTEL_SDK_DISABLED", "true"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            match protocol {
                Protocol::Grpc => "grpc",
                Protocol::HttpProtobuf => "http/protobuf",
            },
        ),
    ]);
    let mut disabled = TelemetryConfig::from_vars(env).unwrap();
    // Even with the endpoint pointing at a live receiver, nothing goes out.
    disabled.endpoint = config(&receiver, protocol).endpoint;
    let telemetry =
        Telemetry::build_with_writer(Service::new("api", "0.0.0"), &disabled, std::io::sink)
            .unwrap();
    emit_everything(&telemetry);
    telemetry.shutdown().await;

    // Prove the receiver would have seen an export: a live pipeline to it
    // delivers, and only then check the disabled one sent nothing.
    let live = crate::helpers::telemetry_for(&receiver, protocol, "control");
    emit_everything(&live);
    live.shutdown().await;
    receiver.wait_for_span("work").await.unwrap();
    assert!(
        receiver
            .spans()
            .iter()
            .all(|span| span.service_name() == "control"),
        "the disabled SDK exported spans"
    );
    assert!(
        receiver
            .logs()
            .iter()
            .all(|log| log.service_name() == "control")
    );
    assert!(
        receiver
            .metrics()
            .iter()
            .all(|m| m.resource.iter().any(|kv| kv.key == "service.name"
                && kv
                    .value
                    .as_ref()
                    .and_then(|v| otlp_testkit::AnyValueExt::as_str(v))
                    == Some("control")))
    );
}

async fn a_dead_collector_neither_blocks_nor_panics(protocol: Protocol) {
    // A port nobody listens on: every export is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let config = TelemetryConfig::otlp(protocol, endpoint);
    let telemetry =
        Telemetry::build_with_writer(Service::new("api", "0.0.0"), &config, std::io::sink)
            .expect("init succeeds without a collector");

    // More spans than the batch queue holds: the overflow is dropped, never
    // waited for.
    for _ in 0..5_000 {
        emit_everything(&telemetry);
    }
    // Shutdown gives up on what the collector did not take by its deadline.
    let budget = telemetry::SHUTDOWN_DEADLINE + Duration::from_secs(1);
    tokio::time::timeout(budget, telemetry.shutdown())
        .await
        .expect("shutdown returns by its deadline with the collector down");
}

//! SIGTERM is answered in seconds even when the collector hangs.

use std::time::{Duration, Instant};

use crate::helpers::Servers;
use crate::process::Api;

/// The longest a service may take to exit after SIGTERM (an orchestrator's
/// grace period is often not much longer before it sends SIGKILL).
const EXIT_BUDGET: Duration = Duration::from_secs(5);

async fn exits_promptly_with_a_silent_collector_over(protocol: &str) {
    // The worst case for an exporter: it waits for a reply.
    let silent = otlp_testkit::StuckServer::start().await.unwrap();
    let endpoint = silent.url();
    let api = Api::start(
        &Servers::fresh().await,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ],
    )
    .await;
    // Something in every signal's buffer for the final flush to try to send.
    api.create_game().await;

    let started = Instant::now();
    let status = api.terminate().await;
    let elapsed = started.elapsed();
    eprintln!("{protocol}: exited {status} {elapsed:?} after SIGTERM");
    assert!(status.success(), "api exits cleanly on SIGTERM: {status}");
    assert!(
        elapsed <= EXIT_BUDGET,
        "api took {elapsed:?} to exit after SIGTERM"
    );
}

#[tokio::test]
async fn sigterm_exits_within_five_seconds_when_a_grpc_collector_never_answers() {
    exits_promptly_with_a_silent_collector_over("grpc").await;
}

#[tokio::test]
async fn sigterm_exits_within_five_seconds_when_an_http_collector_never_answers() {
    exits_promptly_with_a_silent_collector_over("http/protobuf").await;
}

//! SIGTERM is answered in seconds even when the collector hangs.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::helpers::Servers;
use crate::process::Api;

/// The longest a service may take to exit after SIGTERM (an orchestrator's
/// grace period is often not much longer before it sends SIGKILL).
const EXIT_BUDGET: Duration = Duration::from_secs(5);

/// A collector that accepts connections and never answers: the worst case
/// for an exporter, which waits for a reply rather than failing fast.
async fn silent_collector() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

async fn exits_promptly_with_a_silent_collector_over(protocol: &str) {
    let endpoint = silent_collector().await;
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

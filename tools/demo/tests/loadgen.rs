//! The load generator against a running stack: every outcome in its
//! summary has a trace that starts in loadgen and runs through the api.
//!
//! A test binary of its own: it installs the generator's telemetry as this
//! process's default subscriber.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "e2e/helpers.rs"]
mod helpers;

use std::time::Duration;

use helpers::Running;
use loadgen::stats::Outcome;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use telemetry::{Protocol, Telemetry, TelemetryConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn every_outcome_of_a_run_has_a_trace_through_the_api() {
    let running = Running::start(&[]).await;
    let config = TelemetryConfig::otlp(Protocol::HttpProtobuf, running.receiver.http_endpoint());
    let telemetry = Telemetry::build_with_writer(loadgen::SERVICE, &config, std::io::sink).unwrap();
    // A current-thread runtime: the generator's tasks run on this thread,
    // under this default.
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());

    let options = loadgen::Options {
        target: running.stack.api_url.parse().unwrap(),
        rate: 50.0,
        duration: Some(Duration::from_secs(6)),
        concurrency: 32,
        timeout: Duration::from_secs(5),
    };
    let run = loadgen::run(&options, CancellationToken::new())
        .await
        .unwrap();
    telemetry.shutdown().await;

    assert_eq!(run.stats.failures(), 0, "{}", run.stats.table());
    assert_eq!(run.not_sent, 0, "{}", run.stats.table());
    let outcomes = run.stats.outcomes();
    // A mix, not one request repeated: created, read, and the 404s and 422s
    // of the bad share (each over 99.9 % likely in 300 requests).
    for status in [200, 201, 404, 422] {
        assert!(
            outcomes.contains_key(&Outcome::Status(status)),
            "no {status} in {outcomes:?}\n{}",
            run.stats.table()
        );
    }
    for (operation, outcome, trace_id) in run.stats.examples() {
        let what = format!("{} → {outcome}: trace {trace_id}", operation.name());
        running
            .receiver
            .wait_for_condition(&what, |spans, _, _| {
                let trace: Vec<_> = spans.iter().filter(|s| s.trace_id() == trace_id).collect();
                let root = trace.iter().any(|s| {
                    s.service_name() == "loadgen"
                        && s.name() == operation.name()
                        && s.parent_span_id().is_none()
                });
                let served = trace
                    .iter()
                    .any(|s| s.service_name() == "api" && s.kind() == SpanKind::Server);
                (root && served).then_some(())
            })
            .await
            .unwrap();
    }
    running.stop().await;
}

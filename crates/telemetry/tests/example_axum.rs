//! `examples/axum.rs`, the program readers copy, run as it is: what it
//! exports must arrive, and SIGTERM must end it cleanly and promptly.
//!
//! `cargo test` builds the examples before running any test; the binary is
//! in `target/<profile>/examples/`, next to this test's `deps/` directory.
//! `cargo test --test example_axum` alone builds no example, and would run
//! whatever binary an earlier build left there: run the whole suite, or
//! `cargo build --example axum` first.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the example may take from SIGTERM to exit: telemetry's own
/// shutdown deadline (3 s), plus room for a loaded machine.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn example_binary() -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary.parent().unwrap().parent().unwrap();
    let example = profile_dir.join("examples").join("axum");
    assert!(
        example.exists(),
        "{} is missing: run the whole test suite (`cargo test -p telemetry --features axum`), \
         which builds the examples first, or `cargo build -p telemetry --features axum --example axum`",
        example.display()
    );
    example
}

/// Starts the example exporting to `receiver`, and returns it with the
/// address it listens on (it binds port 0, so tests can run side by side).
async fn start_example(receiver: &Receiver) -> (Child, String) {
    let mut child = Command::new(example_binary())
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        // Export while it runs, not only at shutdown.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let find_address = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("listening on http://") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the example exited without saying where it listens");
    };
    let address = tokio::time::timeout(Duration::from_secs(20), find_address)
        .await
        .expect("the example says where it listens");
    // Keep reading, so the example never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, address)
}

#[tokio::test]
async fn the_axum_example_exports_all_three_signals_and_exits_cleanly_on_sigterm() {
    let receiver = Receiver::start().await.unwrap();
    let (mut child, address) = start_example(&receiver).await;

    let response = reqwest::get(format!("http://{address}/hello"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let server = receiver.wait_for_span("GET /hello").await.unwrap();
    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(server.str_attr("http.route"), Some("/hello"));
    assert_eq!(server.service_name(), "hello");
    receiver
        .wait_for_metric("http.server.request.duration")
        .await
        .unwrap();
    let log = receiver
        .wait_for_log(&server.trace_id(), "saying hello")
        .await
        .unwrap();
    assert_eq!(log.span_id(), Some(server.span_id()));

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(EXIT_DEADLINE, child.wait())
        .await
        .expect("the example exits soon after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

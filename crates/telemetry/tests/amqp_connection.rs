//! lapin runs each AMQP connection's I/O on a thread of its own, inside a
//! span (`io_loop`) that lasts as long as the connection. Exported, it would
//! be a trace of its own for every connection, as long as the process runs:
//! noise in every trace search. It is not exported.
//!
//! A file of its own: the span is made on lapin's thread, which sees only
//! the process-wide subscriber, so this test installs one.

#![cfg(feature = "http-proto")]

use lapin::{Connection, ConnectionProperties};
use otlp_testkit::Receiver;
use telemetry::{Protocol, Service, Telemetry, TelemetryConfig};
use tracing::Instrument;

#[tokio::test]
async fn a_connections_io_loop_is_not_exported_as_a_span() {
    let receiver = Receiver::start().await.unwrap();
    let config = TelemetryConfig::otlp(Protocol::HttpProtobuf, receiver.http_endpoint());
    let telemetry =
        Telemetry::build_with_writer(Service::new("bot", "0.0.0"), &config, std::io::sink).unwrap();
    tracing::dispatcher::set_global_default(telemetry.dispatch().clone()).unwrap();

    let connection = async {
        let connection = Connection::connect(
            &test_support::rabbitmq_url(),
            ConnectionProperties::default(),
        )
        .await
        .unwrap();
        connection.close(200, "done".into()).await.unwrap();
        connection
    }
    .instrument(tracing::info_span!("connect to rabbitmq"))
    .await;
    // Waits for the I/O thread to end: its span is closed, and so would be
    // exported by the shutdown below, were it not filtered out.
    tokio::task::spawn_blocking(move || connection.run())
        .await
        .unwrap()
        .unwrap();
    telemetry.shutdown().await;

    let names: Vec<String> = receiver
        .spans()
        .iter()
        .map(|span| span.name().to_owned())
        .collect();
    assert!(
        names.iter().any(|name| name == "connect to rabbitmq"),
        "{names:?}"
    );
    assert!(!names.iter().any(|name| name == "io_loop"), "{names:?}");
}

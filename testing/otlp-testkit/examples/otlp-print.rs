//! A stand-alone OTLP receiver that prints one line per span, log record and
//! metric it receives: a way to see a service's telemetry without any backend.
//!
//! ```sh
//! cargo run -p otlp-testkit --example otlp-print            # gRPC 4317, HTTP 4318
//! cargo run -p otlp-testkit --example otlp-print -- 14317 14318
//! ```

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

use otlp_testkit::Receiver;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut ports = std::env::args().skip(1).map(|port| port.parse::<u16>());
    let grpc_port = ports.next().transpose()?.unwrap_or(4317);
    let http_port = ports.next().transpose()?.unwrap_or(4318);
    let receiver = Receiver::start_on(
        SocketAddr::from(([127, 0, 0, 1], grpc_port)),
        SocketAddr::from(([127, 0, 0, 1], http_port)),
    )
    .await?;
    println!(
        "OTLP/gRPC on {}, OTLP/HTTP on {}; Ctrl-C to stop",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    );

    let (mut spans, mut logs, mut metrics) = (0, 0, 0);
    loop {
        let more = receiver
            .wait_for_condition("new telemetry", |s, m, l| {
                (s.len() > spans || m.len() > metrics || l.len() > logs).then_some(())
            })
            .await;
        if more.is_err() {
            continue; // nothing new for a while; keep waiting
        }
        for span in &receiver.spans()[spans..] {
            println!(
                "span   {:<8} {:?} {:<24} trace_id={} parent={}",
                span.service_name(),
                span.kind(),
                span.name(),
                span.trace_id(),
                span.parent_span_id().unwrap_or_else(|| "-".into())
            );
        }
        for log in &receiver.logs()[logs..] {
            println!(
                "log    {:<8} {:<5} {:<40} trace_id={}",
                log.service_name(),
                log.record.severity_text,
                log.body_text(),
                log.trace_id().unwrap_or_else(|| "-".into())
            );
        }
        for metric in &receiver.metrics()[metrics..] {
            println!("metric {} ({})", metric.name(), metric.unit());
        }
        spans = receiver.spans().len();
        logs = receiver.logs().len();
        metrics = receiver.metrics().len();
    }
}

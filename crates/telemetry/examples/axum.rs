//! An axum service exporting traces, metrics and logs over OTLP.
//!
//! `cargo run -p telemetry --features axum --example axum`, then
//! `curl localhost:3000/hello`. It exports where `OTEL_EXPORTER_OTLP_ENDPOINT`
//! says (`http://localhost:4318` unset) and listens on `LISTEN_ADDR`.

use axum::{Router, routing::get};
use telemetry::http_server::HttpServerLayer;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = telemetry::init(telemetry::Service::new("hello", env!("CARGO_PKG_VERSION")))?;

    let meter = opentelemetry::global::meter("hello");
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(HttpServerLayer::new(&meter));

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);

    // Stop taking requests on Ctrl-C or SIGTERM (docker stop, Kubernetes),
    // finish the ones in flight, then flush telemetry last.
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    guard.shutdown().await;
    Ok(())
}

/// Inside the request's SERVER span: the log record carries its trace id.
async fn hello() -> &'static str {
    tracing::info!("saying hello");
    "hello\n"
}

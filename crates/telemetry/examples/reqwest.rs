//! An outgoing HTTP call traced with reqwest: a CLIENT span, with its trace
//! context sent along as `traceparent` so the server's span joins the trace.
//!
//! Start the axum example, then
//! `cargo run -p telemetry --features reqwest --example reqwest [URL]`
//! (`http://127.0.0.1:3000/hello` by default): the spans of both programs
//! make one trace.

use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = telemetry::init(telemetry::Service::new("caller", env!("CARGO_PKG_VERSION")))?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3000/hello".into());

    let client = reqwest::Client::new();
    let call = async {
        let request = client.get(&url).build()?;
        // `send_traced_to_third_party` instead for a service that is not
        // yours: traced here, but no trace context leaves.
        let response = telemetry::spans::send_traced(&client, request, None).await?;
        tracing::info!(status = %response.status(), "called");
        Ok::<_, reqwest::Error>(())
    };
    // The CLIENT span is a child of the current span: here a root span for
    // the work the call is part of.
    let result = call.instrument(tracing::info_span!("call hello")).await;
    if let Err(err) = &result {
        tracing::error!(error = %err, "call failed");
    }
    guard.shutdown().await;
    Ok(result?)
}

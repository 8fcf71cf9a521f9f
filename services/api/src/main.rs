//! `api`: telemetry first, then serve until SIGINT/SIGTERM, then flush.

use std::process::ExitCode;

use anyhow::Context;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::main(api::SERVICE, |shutdown| async move {
        let config = api::Config::from_env().context("invalid configuration")?;
        let listener = service_runtime::bind(config.listen_addr).await?;
        api::run(listener, shutdown).await.context("server failed")
    })
    .await
}

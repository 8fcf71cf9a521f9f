//! `bot`: telemetry first, then serve until SIGINT/SIGTERM, then flush.

use std::process::ExitCode;

use anyhow::Context;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::main(bot::SERVICE, |shutdown| async move {
        let config = bot::Config::from_env().context("invalid configuration")?;
        let listener = service_runtime::bind(config.listen_addr).await?;
        bot::run(listener, shutdown).await.context("server failed")
    })
    .await
}

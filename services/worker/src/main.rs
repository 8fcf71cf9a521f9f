//! `worker`: telemetry first, then serve until SIGINT/SIGTERM, then flush.

use std::process::ExitCode;

use anyhow::Context;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::main(worker::SERVICE, |shutdown| async move {
        let config = worker::Config::from_env().context("invalid configuration")?;
        let listener = service_runtime::bind(config.listen_addr).await?;
        worker::run(listener, shutdown)
            .await
            .context("server failed")
    })
    .await
}

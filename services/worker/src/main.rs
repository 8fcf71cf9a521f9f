//! `worker`: run the service (default), or check a running one's health.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::cli(
        worker::SERVICE,
        "Consumes game events and hands due notifications to the bot.",
        "WORKER_LISTEN_ADDR",
        8001,
        worker::run_from_env,
    )
    .await
}

//! `worker`: telemetry first, then consume and schedule until SIGINT/SIGTERM,
//! then flush.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::main(worker::SERVICE, worker::run_from_env).await
}

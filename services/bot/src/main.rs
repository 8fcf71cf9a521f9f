//! `bot`: telemetry first, then deliver notifications until SIGINT/SIGTERM,
//! then flush.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::main(bot::SERVICE, bot::run_from_env).await
}

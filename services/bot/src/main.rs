//! `bot`: run the service (default), or check a running one's health.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_runtime::cli(
        bot::SERVICE,
        "Delivers notifications to a Discord webhook.",
        "BOT_LISTEN_ADDR",
        8002,
        bot::run_from_env,
    )
    .await
}

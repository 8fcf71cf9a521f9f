//! `bot`: run the service (default), or check a running one's health.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Delivers notifications to a Discord webhook. Configured through environment variables: see RUNTIME_CONFIG.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default command).
    Run,
    /// Exit 0 if the running service answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Run) {
        Command::Run => service_runtime::main(bot::SERVICE, bot::run_from_env).await,
        Command::Healthcheck => {
            service_runtime::healthcheck_from_env("BOT_LISTEN_ADDR", 8002).await
        }
    }
}

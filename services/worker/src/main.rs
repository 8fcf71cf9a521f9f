//! `worker`: run the service (default), or check a running one's health.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Consumes game events and hands due notifications to the bot. Configured through environment variables: see RUNTIME_CONFIG.md.
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
        Command::Run => service_runtime::main(worker::SERVICE, worker::run_from_env).await,
        Command::Healthcheck => {
            service_runtime::healthcheck_from_env("WORKER_LISTEN_ADDR", 8001).await
        }
    }
}

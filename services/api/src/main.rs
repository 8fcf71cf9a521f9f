//! `api`: serve the HTTP API (default), or apply migrations and exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The gamenight HTTP API. Configured through environment variables: see
/// RUNTIME_CONFIG.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, applying pending migrations first unless
    /// API_MIGRATE_ON_START=false (the default command).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Exit 0 if the running API answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck,
}

/// mimalloc rather than the system allocator: spans and log records are built
/// on the request threads and freed on the exporters' threads, a pattern
/// glibc's malloc handles slowly (measured in docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => service_runtime::main(api::SERVICE, api::run_from_env).await,
        Command::Migrate => service_runtime::main(api::SERVICE, |_| api::migrate_from_env()).await,
        Command::Healthcheck => {
            service_runtime::healthcheck_from_env("API_LISTEN_ADDR", 8000).await
        }
    }
}

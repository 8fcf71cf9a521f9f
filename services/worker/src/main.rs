//! `worker`: run the service (default), check a running one's health, or
//! re-drive what died once its cause is fixed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Consumes game events and hands due notifications to the bot. Configured
/// through environment variables: see RUNTIME_CONFIG.md.
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
    /// Exit 0 if the running worker answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck,
    /// Move dead notifications or dead-lettered messages back into the
    /// pipeline, then exit.
    Redrive {
        /// What to move back.
        #[arg(value_enum)]
        what: worker::Redrive,
        /// At most this many messages (dead letters are moved one by one).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
}

/// mimalloc rather than the system allocator: spans and log records are built
/// on the request threads and freed on the exporters' threads, a pattern
/// glibc's malloc handles slowly (measured in docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Run) {
        Command::Run => service_runtime::main(worker::SERVICE, worker::run_from_env).await,
        Command::Healthcheck => {
            service_runtime::healthcheck_from_env("WORKER_LISTEN_ADDR", 8001).await
        }
        Command::Redrive { what, limit } => {
            service_runtime::main(worker::SERVICE, |_| worker::redrive_from_env(what, limit)).await
        }
    }
}

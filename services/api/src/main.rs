//! `api`: serve the HTTP API (default), apply migrations and exit, or ask
//! the backends whether the stack's telemetry arrives.

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
    /// Ask Tempo, Prometheus and Loki (local, or Grafana Cloud with the
    /// GRAFANA_CLOUD_* variables) whether traces, metrics and logs of api,
    /// worker and bot arrived, and say why what is missing is missing. Exits
    /// 0 when everything arrived, 1 when not, 2 on bad configuration.
    CheckTelemetry {
        /// How far back to look.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440))]
        minutes: u32,
    },
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
        Command::CheckTelemetry { minutes } => check_telemetry(minutes).await,
    }
}

/// Prints the report on stdout; a configuration error on stderr.
#[allow(clippy::print_stdout)]
async fn check_telemetry(minutes: u32) -> ExitCode {
    let config = match telemetry_check::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("check-telemetry: {err}");
            return ExitCode::from(2);
        }
    };
    let report = telemetry_check::check(&config, minutes).await;
    print!("{report}");
    if report.all_arrived() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

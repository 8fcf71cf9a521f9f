//! `api`: serve the HTTP API (default), or apply migrations and exit.

use std::process::ExitCode;

use anyhow::Context;
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service_runtime::main(api::SERVICE, |shutdown| async move {
        let config = api::Config::from_env().context("invalid configuration")?;
        let meter = opentelemetry::global::meter(api::SERVICE.name);
        let app = api::App::new(&config, &meter)?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Migrate => {
                app.migrate().await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Serve => {
                if config.migrate_on_start {
                    app.migrate().await?;
                }
                let listener = service_runtime::bind(config.listen_addr).await?;
                Ok(app.serve(listener, &meter, shutdown).await?)
            }
        }
    })
    .await
}

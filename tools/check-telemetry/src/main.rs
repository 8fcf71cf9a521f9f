//! `check-telemetry`: did the services' traces, metrics and logs arrive in
//! Tempo, Prometheus and Loki, and if not, why. A binary of its own, so the
//! services link no backend-query client.

use std::process::ExitCode;

use clap::Parser;

/// Ask Tempo, Prometheus and Loki (local, or Grafana Cloud with the
/// GRAFANA_CLOUD_* variables) whether traces, metrics and logs of api,
/// worker and bot arrived, and say why what is missing is missing. Exits 0
/// when everything arrived, 1 when not, 2 on bad configuration.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// How far back to look, in minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440))]
    minutes: u32,
}

/// Prints the report on stdout; a configuration error on stderr.
#[tokio::main(flavor = "current_thread")]
#[allow(clippy::print_stdout)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match check_telemetry::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("check-telemetry: {err}");
            return ExitCode::from(2);
        }
    };
    let report = check_telemetry::check(&config, cli.minutes).await;
    print!("{report}");
    if report.all_arrived() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

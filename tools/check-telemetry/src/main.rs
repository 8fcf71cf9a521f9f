//! `check-telemetry`: did the services' traces, metrics, logs and profiles
//! arrive in Tempo, Prometheus, Loki and Pyroscope, and if not, why. A
//! binary of its own, so the services link no backend-query client.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use telemetry::config::{ignore_empty_variables, name_values_by_variable};

/// Ask Tempo, Prometheus, Loki and Pyroscope (local, or Grafana Cloud with
/// the GRAFANA_CLOUD_* variables) whether traces, metrics, logs and CPU
/// profiles of api, worker and bot arrived, and say why what is missing is
/// missing. Exits 0 when everything arrived, 1 when not, 2 on bad
/// configuration.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Where the backends are, and who to ask them as.
    #[command(flatten)]
    config: check_telemetry::Config,
    /// How far back to look, in minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440))]
    minutes: u32,
}

/// Prints the report on stdout; a configuration error on stderr.
#[tokio::main(flavor = "current_thread")]
#[allow(clippy::print_stdout)]
async fn main() -> ExitCode {
    // Errors name the variable; a variable set to nothing (Compose's
    // `${VAR:-}`) counts as unset.
    let mut cmd = ignore_empty_variables(name_values_by_variable(Cli::command()));
    let cli = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|err| err.format(&mut cmd).exit());
    let report = check_telemetry::check(&cli.config, cli.minutes).await;
    print!("{report}");
    if report.all_arrived() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

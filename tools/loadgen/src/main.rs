//! `loadgen`: a realistic mix of requests to the api at a target rate.
//!
//! ```text
//! cargo run -p loadgen -- --rate 20 --duration 60s
//! ```

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use telemetry::config::{ignore_empty_variables, name_values_by_variable};

/// Sends a realistic mix of requests to the gamenight api (games created,
/// joined until full, left, cancelled, read; a share of bad requests) at a
/// target rate, shows progress, and prints every outcome with its latency
/// percentiles and a trace to open in Tempo. Its own telemetry follows the
/// OTEL_* variables, as the services' does.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The api's base URL.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://localhost:8000")]
    target: reqwest::Url,
    /// Requests started per second.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 10.0)]
    rate: f64,
    /// How long to run (90s, 5m, 2h); until Ctrl-C when not given, empty
    /// or 0 (compose passes an empty LOADGEN_DURATION by default).
    #[arg(long, env = "LOADGEN_DURATION", value_parser = run_length)]
    duration: Option<Duration>,
    /// Most requests in flight at once; beyond, requests are counted as not
    /// sent (the api is slower than the rate asks).
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Longest wait for one answer (90s, 500ms).
    #[arg(long, env = "LOADGEN_TIMEOUT", default_value = "10s", value_parser = loadgen::parse_duration)]
    timeout: Duration,
    /// Its own telemetry, as the services'.
    #[command(flatten)]
    telemetry: telemetry::TelemetryConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Errors name the variable; a variable set to nothing (Compose's
    // `${VAR:-}`) counts as unset.
    let mut cmd = ignore_empty_variables(name_values_by_variable(Cli::command()));
    let cli = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|err| err.format(&mut cmd).exit());
    let options = loadgen::Options {
        target: cli.target,
        rate: cli.rate,
        duration: cli.duration.filter(|d| !d.is_zero()),
        concurrency: cli.concurrency,
        timeout: cli.timeout,
    };
    service_runtime::main(loadgen::SERVICE, &cli.telemetry, |stop| async move {
        let run = loadgen::run(&options, stop).await?;
        print!("{}", summary(&options, &run));
        let failures = run.stats.failures();
        anyhow::ensure!(
            failures == 0,
            "{failures} requests failed: a server error or no answer (see above)"
        );
        Ok(())
    })
    .await
}

/// `--duration`: a duration, or nothing (empty: run until stopped).
fn run_length(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        Ok(Duration::ZERO)
    } else {
        loadgen::parse_duration(text)
    }
}

fn summary(options: &loadgen::Options, run: &loadgen::Run) -> String {
    let seconds = run.elapsed.as_secs_f64();
    let mut out = format!(
        "\nloadgen: {} requests in {seconds:.1} s ({:.1}/s, {:.1}/s asked) against {}\n\n",
        run.stats.done(),
        run.stats.done() as f64 / seconds.max(0.001),
        options.rate,
        options.target,
    );
    out.push_str(&run.stats.table());
    let outcomes: Vec<String> = run
        .stats
        .outcomes()
        .into_iter()
        .map(|(outcome, count)| format!("{outcome}: {count}"))
        .collect();
    out.push_str(&format!("\noutcomes: {}\n", outcomes.join(", ")));
    if run.not_sent > 0 {
        out.push_str(&format!(
            "not sent: {} (already {} in flight: the api answered slower than {:.1}/s needs)\n",
            run.not_sent, options.concurrency, options.rate
        ));
    }
    out.push_str(
        "Open a trace in Grafana: Explore → Tempo → TraceQL { trace:id = \"<example trace>\" }\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_duration_as_compose_passes_it_means_until_stopped() {
        assert_eq!(run_length(""), Ok(Duration::ZERO));
        assert_eq!(run_length("  "), Ok(Duration::ZERO));
        assert_eq!(run_length("5m"), Ok(Duration::from_secs(300)));
        assert!(run_length("soon").is_err());
        let cli =
            Cli::try_parse_from(["loadgen", "--duration", ""]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.duration, Some(Duration::ZERO));
    }
}

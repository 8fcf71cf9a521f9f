//! `bench`: the project's benchmark (`scripts/bench.sh`,
//! docs/PERFORMANCE.md). Not a test: it takes minutes and its figures depend on
//! the machine, so it stays out of `cargo test`; its own unit tests (the
//! parsers and tables) do run there.
//!
//! `bench service <api [migrate]|worker|bot>` runs one service: the runs
//! start the services that way, so this one executable is all they need.
//!
//! # Layout
//! - [`overhead`]: mode `overhead`, telemetry off / on / collector down /
//!   collector stuck, side by side under `wrk`; and mode `peers`, the same
//!   read under the usual other set-ups.
//! - [`peers`]: those set-ups, served by `bench service peer <name>`.
//! - [`pipeline`]: mode `pipeline`, a stepped rate through all three
//!   services.
//! - [`discord`]: mode `discord`, a backlog drained against a rate-limited
//!   webhook, by one bot and by several.
//! - [`statements`]: what PostgreSQL ran, from `pg_stat_statements`.
//! - [`wrk`]: running `wrk` and reading its output.
//! - [`table`]: tables as text and Markdown, medians.
//! - [`system`]: tools, servers, CPU pinning, memory, machine and commit.

#![allow(clippy::print_stdout)]

mod discord;
mod overhead;
mod peers;
mod pipeline;
mod statements;
mod system;
mod table;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use demo::Names;

/// The gamenight benchmark: what telemetry costs the api, and the highest
/// rate the whole pipeline holds. Uses the local PostgreSQL, Redis and
/// RabbitMQ (DATABASE_URL, REDIS_URL, RABBITMQ_URL), on names of its own it
/// removes at the end.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    /// What to measure.
    #[arg(value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// A smoke run of a minute or two: one round, short runs, two rates.
    #[arg(long)]
    quick: bool,
    /// overhead, peers: rounds of the configurations [default: 3; quick: 1]
    #[arg(long)]
    rounds: Option<u32>,
    /// overhead, peers: seconds measured per run [default: 15; quick: 3]
    #[arg(long, value_parser = demo::parse_seconds)]
    duration: Option<Duration>,
    /// overhead, peers: seconds of warm-up per run [default: 3; quick: 1]
    #[arg(long, value_parser = demo::parse_seconds)]
    warmup: Option<Duration>,
    /// overhead, peers: wrk connections
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// overhead: requests each `down` and `stuck` run sees at least [default: 100000; quick: 5000]
    #[arg(long)]
    min_requests: Option<u64>,
    /// overhead, peers: configurations to run, `off` among them [default:
    /// overhead: off, metrics, on, down, stuck, profiling; peers: off,
    /// traces, on, tower-http, axum-otel]
    #[arg(long, value_enum, value_delimiter = ',')]
    configs: Option<Vec<overhead::Config>>,
    /// overhead, peers: more variables for the api in every run, as
    /// KEY=VALUE[,KEY=VALUE]: e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048
    #[arg(long, value_delimiter = ',', value_parser = variable)]
    api_env: Vec<(String, String)>,
    /// overhead, peers: CPU the api is pinned to
    #[arg(long, default_value = "0")]
    api_cpu: String,
    /// overhead, peers: CPU of wrk and of this process (with its OTLP receiver)
    #[arg(long, default_value = "1")]
    load_cpu: String,
    /// pipeline: games per second, one step each [default: 100,200,300,400,500,600; quick: 50,100]
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u32>>,
    /// pipeline: seconds of load per step [default: 20; quick: 5]
    #[arg(long, value_parser = demo::parse_seconds)]
    step: Option<Duration>,
    /// pipeline: seconds a created game may take to be announced after the
    /// load, before it counts as lost [default: 15; quick: 5]
    #[arg(long, value_parser = demo::parse_seconds)]
    drain: Option<Duration>,
    /// discord: announcements in the backlog [default: 500; quick: 50]
    #[arg(long)]
    backlog: Option<usize>,
    /// discord: bots sharing the webhook, one run each [default: 1,2; quick: 1]
    #[arg(long, value_delimiter = ',')]
    bots: Option<Vec<usize>>,
    /// discord: posts the stand-in webhook takes per window
    #[arg(long, default_value_t = 5)]
    discord_limit: u16,
    /// discord: the stand-in webhook's window
    #[arg(long, default_value = "2s", value_parser = demo::parse_seconds)]
    discord_window: Duration,
    /// pipeline: run the services with telemetry off
    /// (`OTEL_SDK_DISABLED=true`), to see what it costs end to end
    #[arg(long)]
    telemetry_off: bool,
    /// Also write the tables, with the machine, date, commit and command,
    /// as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// The command line the Markdown says produced the tables [default:
    /// this one], for a script that runs bench for a person.
    #[arg(long, env = "BENCH_COMMAND")]
    command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Overhead,
    /// Not part of `all`.
    Peers,
    Pipeline,
    Discord,
    All,
}

impl Cli {
    fn overhead(&self) -> overhead::Settings {
        let quick = self.quick;
        let peers = self.mode == Mode::Peers;
        overhead::Settings {
            rounds: self.rounds.unwrap_or(if quick { 1 } else { 3 }),
            warmup: self.warmup.unwrap_or(secs(if quick { 1 } else { 3 })),
            duration: self.duration.unwrap_or(secs(if quick { 3 } else { 15 })),
            connections: self.connections,
            min_requests: self
                .min_requests
                .unwrap_or(if quick { 5_000 } else { 100_000 }),
            api_env: self.api_env.clone(),
            api_cpu: self.api_cpu.clone(),
            load_cpu: self.load_cpu.clone(),
            configs: self.configs.clone().unwrap_or_else(|| {
                if peers {
                    overhead::PEERS.to_vec()
                } else {
                    overhead::CONFIGS.to_vec()
                }
            }),
            kinds: if peers {
                vec![overhead::Kind::Read]
            } else {
                overhead::KINDS.to_vec()
            },
            title: if peers {
                "Against peers"
            } else {
                "Telemetry overhead"
            },
        }
    }

    fn pipeline(&self) -> pipeline::Settings {
        let quick = self.quick;
        pipeline::Settings {
            rates: self.rates.clone().unwrap_or_else(|| {
                if quick {
                    vec![50, 100]
                } else {
                    vec![100, 200, 300, 400, 500, 600]
                }
            }),
            step: self.step.unwrap_or(secs(if quick { 5 } else { 20 })),
            drain: self.drain.unwrap_or(secs(if quick { 5 } else { 15 })),
            telemetry: !self.telemetry_off,
        }
    }
}

impl Cli {
    fn discord(&self) -> discord::Settings {
        discord::Settings {
            backlog: self.backlog.unwrap_or(if self.quick { 50 } else { 500 }),
            bots: self
                .bots
                .clone()
                .unwrap_or_else(|| if self.quick { vec![1] } else { vec![1, 2] }),
            limit: self.discord_limit,
            window: self.discord_window,
        }
    }
}

/// `KEY=VALUE`, a variable for the api.
fn variable(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {pair:?}")),
    }
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// One line of progress, at once.
fn progress(line: String) {
    println!("{line}");
}

/// Awaits `work`, printing how much of `duration` is left every 5 s.
async fn countdown<T>(what: &str, duration: Duration, work: impl Future<Output = T>) -> T {
    let end = Instant::now() + duration;
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let left = end.saturating_duration_since(Instant::now()).as_secs();
                if left > 0 {
                    progress(format!("  {what}: {left} s left"));
                }
            }
        }
    }
}

/// The names a run has made on the shared servers, removed as each part
/// finishes, or all at once on failure or Ctrl-C.
#[derive(Debug, Clone, Default)]
struct Cleanup(Arc<Mutex<Vec<Names>>>);

impl Cleanup {
    /// A fresh database and names of its own.
    async fn names(&self) -> Names {
        let names = Names::unique("bench").await;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(names.clone());
        names
    }

    /// Drops the database, deletes the queues and exchanges of `names`.
    async fn remove(&self, names: &Names) -> anyhow::Result<()> {
        names
            .remove()
            .await
            .with_context(|| format!("cannot clean up {}", names.database_url))?;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|kept| kept.database_url != names.database_url);
        Ok(())
    }

    async fn remove_all(&self) {
        let all = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for names in all {
            if let Err(err) = names.remove().await {
                eprintln!("bench: cannot clean up {}: {err:#}", names.database_url);
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = peers::service_if_asked().await {
        return code;
    }
    if let Some(code) = demo::service_if_asked().await {
        return code;
    }
    let cli = Cli::parse();
    let interrupted = match service_runtime::shutdown::on_signal() {
        Ok(token) => token,
        Err(err) => {
            eprintln!("bench: cannot listen for Ctrl-C: {err}");
            return ExitCode::from(2);
        }
    };
    let cleanup = Cleanup::default();
    // On Ctrl-C the run is dropped (its services are killed with it), then
    // what it made on the servers is removed.
    let outcome = tokio::select! {
        outcome = run(&cli, &cleanup) => outcome,
        () = interrupted.cancelled() => {
            eprintln!("bench: interrupted, cleaning up");
            cleanup.remove_all().await;
            return ExitCode::from(130);
        }
    };
    cleanup.remove_all().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli, cleanup: &Cleanup) -> anyhow::Result<()> {
    let overhead = matches!(cli.mode, Mode::Overhead | Mode::Peers | Mode::All);
    let pipeline = matches!(cli.mode, Mode::Pipeline | Mode::All);
    let discord = matches!(cli.mode, Mode::Discord | Mode::All);
    if overhead && !cli.overhead().configs.contains(&overhead::Config::Off) {
        anyhow::bail!("--configs must include off: every figure is compared with it");
    }
    if overhead {
        system::require_tool("wrk", "install it (apt-get install -y wrk)").await?;
        system::require_tool("taskset", "install util-linux").await?;
    }
    system::require_server(
        "PostgreSQL",
        "DATABASE_URL",
        &test_support::database_url(),
        5432,
    )
    .await?;
    system::require_server("Redis", "REDIS_URL", &test_support::redis_url(), 6379).await?;
    system::require_server(
        "RabbitMQ",
        "RABBITMQ_URL",
        &test_support::rabbitmq_url(),
        5672,
    )
    .await?;
    let binary = std::env::current_exe().context("cannot find the bench executable")?;
    let command = cli.command.clone().unwrap_or_else(|| {
        std::iter::once("bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let header = [
        ("machine", system::machine()),
        (
            "date",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        ),
        ("commit", system::commit().await),
        ("command", format!("`{command}`")),
    ];
    println!("gamenight benchmark");
    for (key, value) in &header {
        println!("  {key:<8} {value}");
    }
    println!();

    let mut tables = Vec::new();
    if overhead {
        let settings = cli.overhead();
        let affinity = system::affinity().await?;
        system::pin_self(&settings.load_cpu).await?;
        let result = overhead::run(&settings, &binary, cleanup).await;
        // The pipeline's services get every CPU again.
        system::pin_self(&affinity).await?;
        tables.extend(result?);
    }
    if pipeline {
        tables.extend(pipeline::run(&cli.pipeline(), &binary, cleanup).await?);
    }
    if discord {
        tables.push(discord::run(&cli.discord(), &binary, cleanup).await?);
    }

    println!();
    for table in &tables {
        println!("{}", table.text());
    }
    if let Some(path) = &cli.markdown {
        let mut markdown = String::from("## Benchmark run\n\n");
        for (key, value) in &header {
            markdown += &format!("- {key}: {value}\n");
        }
        for table in &tables {
            markdown += &format!("\n{}", table.markdown());
        }
        std::fs::write(path, markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("tables written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_variable_is_key_equals_value() {
        let cli = Cli::try_parse_from([
            "bench",
            "overhead",
            "--api-env",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048,OTEL_BSP_SCHEDULE_DELAY=",
        ])
        .unwrap();
        assert_eq!(
            cli.api_env,
            [
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE".into(), "2048".into()),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), String::new()),
            ]
        );
        for bad in ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "=2048"] {
            assert!(
                Cli::try_parse_from(["bench", "--api-env", bad]).is_err(),
                "{bad}"
            );
        }
    }
}

//! `chaos`: the fault-injection run. It starts private PostgreSQL, Redis
//! and RabbitMQ servers, the three services (as `demo` does) with an OTLP
//! receiver and a stand-in Discord webhook, drives a steady `POST /games`
//! load, injects faults, and prints what was lost, doubled or slow.
//!
//! `chaos service <api [migrate]|worker|bot>` runs one service: the stack
//! starts itself that way, so this one executable is all a run needs.
//!
//! # Layout
//! - [`servers`]: the private servers, and the faults made on them.
//! - [`faults`]: which faults, in which order, and how each is made.
//! - [`report`]: the figures, and the acceptance criteria.
//!
//! The load itself and what became of each game are `demo::load`'s.

#![allow(clippy::print_stdout)]

mod faults;
mod report;
mod servers;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Parser;
use demo::load::{self, posts};
use demo::{Names, Options, Stack};
use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use test_support::FakeDiscord;
use tokio_util::sync::CancellationToken;

use crate::report::{Consumed, Criteria, Report};

/// Game `n` is titled `chaos game n`.
const TITLE_PREFIX: &str = "chaos game ";

/// What is being done to the system right now, for the progress line.
#[derive(Debug, Default)]
struct Doing(Mutex<String>);

impl Doing {
    fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }
}

/// How long to wait, after a fault, for the pipeline to catch up before
/// the next one.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Steady load between the end of one fault's recovery and the next fault.
const SETTLE: Duration = Duration::from_secs(1);

/// A fault-injection run: steady load through api, worker and bot while
/// the broker, the database, the cache and the consumers fail in turn.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Cli {
    /// How long the load runs, at least (`40s`); it goes on until the last
    /// fault is over.
    #[arg(long, default_value = "40s", value_parser = demo::parse_seconds)]
    duration: Duration,
    /// Games created per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// RabbitMQ outages in the run (each other fault happens once).
    #[arg(long, default_value_t = 3)]
    rabbitmq_outages: usize,
    /// How long to wait after the load for the last announcements; a game
    /// not announced by then is lost.
    #[arg(long, default_value = "30s", value_parser = demo::parse_seconds)]
    drain: Duration,
    /// The CI run: 15 s of load, one fault of each kind, 15 s to drain.
    #[arg(long)]
    short: bool,
    /// Print the figures but exit 0 even when they break the criteria.
    #[arg(long)]
    report_only: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = demo::service_if_asked().await {
        return code;
    }
    let mut cli = Cli::parse();
    let interrupted = match service_runtime::shutdown::on_signal() {
        Ok(token) => token,
        Err(err) => {
            eprintln!("chaos: cannot listen for Ctrl-C: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.short {
        cli.duration = Duration::from_secs(15);
        cli.rabbitmq_outages = 1;
        cli.drain = Duration::from_secs(15);
    }
    // On Ctrl-C the run is dropped: services killed, servers stopped and
    // their directory removed.
    let outcome = tokio::select! {
        outcome = run(&cli) => outcome,
        () = interrupted.cancelled() => {
            eprintln!("chaos: interrupted, cleaning up");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(report) => {
            let failures = report.failures();
            if failures.is_empty() {
                println!("\nPASSED: every acceptance criterion met");
                return ExitCode::SUCCESS;
            }
            println!("\nFAILED: {} acceptance criteria broken", failures.len());
            for failure in &failures {
                println!("  - {failure}");
            }
            if cli.report_only {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("chaos: the run failed: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let faults = faults::schedule(cli.rabbitmq_outages);
    println!(
        "gamenight fault-injection run: {} games/s for {} s, faults: {}\n",
        cli.rate,
        cli.duration.as_secs(),
        faults
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Declared first, dropped last: the servers outlive the services.
    let servers = servers::Servers::start().await?;
    println!(
        "  private servers  {} · {} · {}",
        servers.database_url(),
        servers.redis_url(),
        servers.rabbitmq_url()
    );
    let receiver = Receiver::start()
        .await
        .context("cannot start the OTLP receiver")?;
    let discord = Arc::new(FakeDiscord::start().await);
    let names = Names {
        database_url: servers.database_url(),
        redis_url: servers.redis_url(),
        rabbitmq_url: servers.rabbitmq_url(),
        redis_prefix: "gamenight:".to_owned(),
        events_exchange: "gamenight.events".to_owned(),
        notifications_exchange: "gamenight.notifications".to_owned(),
        worker_queue: "gamenight.worker".to_owned(),
        bot_queue: "gamenight.bot".to_owned(),
    };
    let options = Options {
        otlp_endpoint: receiver.http_endpoint(),
        webhook_url: Some(discord.webhook_url()),
        extra_env: Vec::new(),
    };
    let binary = std::env::current_exe().context("cannot find the chaos executable")?;
    let mut stack = Stack::start(&binary, names, &options).await?;
    println!("  api              {}\n", stack.api_url);

    let live = Arc::new(load::Live::default());
    let doing = Arc::new(Doing::default());
    let stop_load = CancellationToken::new();
    let load_start = Instant::now();
    let load = tokio::spawn(load::drive(
        stack.api_url.clone(),
        cli.rate,
        TITLE_PREFIX.to_owned(),
        live.clone(),
        stop_load.clone(),
    ));
    let stop_progress = CancellationToken::new();
    let progress = tokio::spawn(progress(
        load_start,
        live.clone(),
        doing.clone(),
        announced_count(discord.clone()),
        stop_progress.clone(),
    ));

    // Faults spread evenly over the load, one after another: each in its
    // slot, but not before the pipeline has caught up with the one before
    // (a game sent after it was over has been announced), so that each
    // recovery is measured on its own.
    let slot = cli.duration / (faults.len() as u32 + 1);
    let mut injected = Vec::new();
    let mut not_before = load_start;
    for (i, &fault) in faults.iter().enumerate() {
        let slot_start = load_start + slot * (i as u32 + 1);
        tokio::time::sleep_until(slot_start.max(not_before).into()).await;
        let status = |text: String| doing.set(text);
        let done = faults::inject(fault, &servers, &mut stack, status)
            .await
            .with_context(|| format!("cannot inject {fault}"))?;
        doing.set(format!(
            "{fault}: over, waiting for the pipeline to catch up"
        ));
        let sent_when_back = live.counts().0;
        let caught_up = Instant::now() + CATCH_UP;
        while Instant::now() < caught_up
            && !posts(&discord)
                .iter()
                .filter_map(|post| load::game_number(TITLE_PREFIX, post.title.as_deref()?))
                .any(|number| number > sent_when_back)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        doing.set(String::new());
        not_before = Instant::now() + SETTLE;
        injected.push(done);
    }
    tokio::time::sleep_until((load_start + cli.duration).max(not_before).into()).await;
    stop_load.cancel();
    let requests = load
        .await
        .context("the load task failed")?
        .context("cannot build the HTTP client")?;
    let load_time = load_start.elapsed();

    // Every created game announced, or the drain deadline.
    doing.set("draining".to_owned());
    load::drain(&discord, &requests, cli.drain).await;
    stop_progress.cancel();
    let _ = progress.await;

    for (name, status) in stack.stop().await? {
        if !status.success() {
            println!("  {name} exited with {status}");
        }
    }
    let consumed: Vec<Consumed> = receiver
        .spans()
        .iter()
        .filter(|span| span.kind() == SpanKind::Consumer)
        .map(|span| Consumed {
            service: span.service_name().to_owned(),
            at: SystemTime::UNIX_EPOCH + Duration::from_nanos(span.span.start_time_unix_nano),
        })
        .collect();
    let report = Report::new(
        load_start,
        load_time,
        &requests,
        &posts(&discord),
        &injected,
        &consumed,
        Criteria::default(),
    );
    print!("\n{report}");
    Ok(report)
}

/// A function counting the distinct games announced so far.
fn announced_count(discord: Arc<FakeDiscord>) -> impl Fn() -> usize + Send + 'static {
    move || {
        posts(&discord)
            .into_iter()
            .filter_map(|p| p.title)
            .collect::<HashSet<_>>()
            .len()
    }
}

/// One line a second: sent, created, announced, 5xx, and the fault under
/// way.
async fn progress(
    start: Instant,
    live: Arc<load::Live>,
    doing: Arc<Doing>,
    announced: impl Fn() -> usize,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let (sent, created, server_errors) = live.counts();
        println!(
            "{:>4} s  sent {sent:>5}  created {created:>5}  announced {:>5}  5xx {server_errors:>3}  {}",
            start.elapsed().as_secs(),
            announced(),
            doing.get()
        );
    }
}

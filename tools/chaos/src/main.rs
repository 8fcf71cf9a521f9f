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
use otlp_testkit::proto::metrics::v1::number_data_point::Value;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::{Receiver, has_str_attributes, str_attribute};
use test_support::{FakeDiscord, RouteLimit};
use tokio_util::sync::CancellationToken;

use crate::faults::{DiscordFaults, Fault};
use crate::report::{Consumed, Counted, Criteria, Injected, Report};

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
/// the next one, beyond as long as the fault lasted (a backlog built up
/// over that long drains, at up to four times the load's pace, in less).
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
    /// How long the Discord outage lasts: a quarter each of 500s,
    /// 502/503s, requests never answered and connections refused.
    #[arg(long, default_value = "60s", value_parser = demo::parse_seconds)]
    discord_outage: Duration,
    /// How long the Discord 429 storm lasts (route and global 429s with a
    /// Retry-After of 1 to 2 s).
    #[arg(long, default_value = "30s", value_parser = demo::parse_seconds)]
    discord_storm: Duration,
    /// The CI run: 15 s of load, one fault of each kind (a 20 s Discord
    /// outage, a 10 s 429 storm), 15 s to drain.
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
        cli.discord_outage = Duration::from_secs(20);
        cli.discord_storm = Duration::from_secs(10);
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
    let discord_faults = DiscordFaults {
        outage: cli.discord_outage,
        storm: cli.discord_storm,
    };
    let faults = faults::schedule(cli.rabbitmq_outages, discord_faults);
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
    let route_limit = route_limit(cli.rate);
    discord.set_rate_limit(Some(route_limit));
    println!(
        "  discord          {} posts per {} s on the webhook's route ({} games/s)",
        route_limit.limit,
        route_limit.window.as_secs(),
        cli.rate
    );
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
    let announced = announced_count(discord.clone());
    let mut injected = Vec::new();
    let mut not_before = load_start;
    for (i, &fault) in faults.iter().enumerate() {
        let slot_start = load_start + slot * (i as u32 + 1);
        tokio::time::sleep_until(slot_start.max(not_before).into()).await;
        let status = |text: String| doing.set(text);
        let mut done = faults::inject(fault, &servers, &mut stack, &discord, status)
            .await
            .with_context(|| format!("cannot inject {fault}"))?;
        doing.set(format!(
            "{fault}: over, waiting for the pipeline to catch up"
        ));
        let sent_when_back = live.counts().0;
        let caught_up = Instant::now() + CATCH_UP + done.back.duration_since(done.started);
        // After Discord's faults the bot posts a backlog in no particular
        // order, so a new game's post says little: it has caught up once
        // no more games wait than a second of load brings.
        let rate = usize::try_from(cli.rate).unwrap_or(usize::MAX);
        let backlog_posted =
            || !fault.is_discord() || announced().saturating_add(rate) >= live.counts().1;
        while Instant::now() < caught_up
            && !(backlog_posted()
                && posts(&discord)
                    .iter()
                    .filter_map(|post| load::game_number(TITLE_PREFIX, post.title.as_deref()?))
                    .any(|number| number > sent_when_back))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        doing.set(String::new());
        done.caught_up = Instant::now();
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
    let run_time = load_start.elapsed();
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
    let counted = Counted {
        discord: discord.stats(),
        rate_limited_unprovoked: rate_limited_outside_storms(&discord, &injected),
        run: run_time,
        expired: counter_over_restarts(
            &receiver,
            "gamenight.notifications.delivered",
            &[("outcome", "expired")],
        ),
        dead_letters: servers
            .dead_letters()
            .await
            .context("cannot count the dead letters")?,
    };
    let report = Report::new(
        load_start,
        load_time,
        &requests,
        &posts(&discord),
        &injected,
        &consumed,
        counted,
        Criteria::default(),
    );
    print!("\n{report}");
    Ok(report)
}

/// The webhook route's limit for a load of `rate` games a second, each of
/// which makes one announcement: four times that many posts per 1 s
/// window. The bot keeps up with room to spare, and drains the backlog a
/// 5 s RabbitMQ outage leaves in about two seconds (at three times the
/// load's pace), so the games created during the outage still reach the
/// webhook within the run's 10 s; but only by pacing itself from the
/// `X-RateLimit-*` headers: posting as fast as it can gets 429s.
fn route_limit(rate: u32) -> RouteLimit {
    RouteLimit {
        limit: u16::try_from(rate.saturating_mul(4)).unwrap_or(u16::MAX),
        window: Duration::from_secs(1),
    }
}

/// The 429s `discord` answered outside the 429 storms among `injected`.
fn rate_limited_outside_storms(discord: &FakeDiscord, injected: &[Injected]) -> u64 {
    let storms: Vec<_> = injected
        .iter()
        .filter(|fault| matches!(fault.fault, Fault::DiscordStorm(_)))
        .map(|fault| fault.started..=fault.back)
        .collect();
    let outside = discord
        .received()
        .iter()
        .filter(|received| received.status == 429)
        .filter(|received| !storms.iter().any(|storm| storm.contains(&received.at)))
        .count();
    u64::try_from(outside).unwrap_or(u64::MAX)
}

/// What counter `name` counted in points carrying `attributes`, over
/// every process that exported it: a restarted service counts from 0, so
/// the last total of each process (`service.instance.id`) and attribute
/// set, summed. A process killed counts what it exported last.
fn counter_over_restarts(receiver: &Receiver, name: &str, attributes: &[(&str, &str)]) -> u64 {
    let mut last = std::collections::HashMap::new();
    for metric in receiver.metrics().iter().filter(|m| m.name() == name) {
        let instance = str_attribute(&metric.resource, "service.instance.id").unwrap_or_default();
        for point in metric.sum_points() {
            if let Some(Value::AsInt(total)) = point.value
                && has_str_attributes(&point.attributes, attributes)
            {
                let series = (instance.to_owned(), format!("{:?}", point.attributes));
                last.insert(series, u64::try_from(total).unwrap_or_default());
            }
        }
    }
    last.values().sum()
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

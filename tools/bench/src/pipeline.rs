//! Mode `pipeline`: games created at a fixed rate through api → worker →
//! bot → webhook, the rate stepped up, each step on a fresh stack (its own
//! database, queues and key prefix). Per step: how long from the create to
//! the webhook post announcing the game, what was lost or doubled, the 5xx
//! answers, and the spans the services dropped; then the highest rate that
//! still holds the target. And what each game cost: CPU per process (the
//! services, PostgreSQL, RabbitMQ, Redis and the bench itself) and, when
//! the server counts them, PostgreSQL's statements per game.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use demo::load::{self, Delivery, Live};
use demo::{Options, Stack};
use otlp_testkit::Receiver;
use test_support::FakeDiscord;
use tokio_util::sync::CancellationToken;

use crate::statements::{self, Statement};
use crate::table::{Table, latency};
use crate::{Cleanup, progress, system};

/// A step holds when its create→webhook p99 is at most this, and nothing is
/// lost.
const TARGET_P99: Duration = Duration::from_millis(100);

/// How the steps are run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Games per second, one step each.
    pub(crate) rates: Vec<u32>,
    /// Load per step.
    pub(crate) step: Duration,
    /// How long after the load a created game may still be announced; a
    /// game not announced by then is lost.
    pub(crate) drain: Duration,
    /// Whether the services export telemetry (`OTEL_SDK_DISABLED` otherwise).
    pub(crate) telemetry: bool,
}

impl Settings {
    /// A rough length of the whole mode, for the progress lines.
    pub(crate) fn estimate(&self) -> Duration {
        (self.step + Duration::from_secs(10)) * self.rates.len() as u32
    }
}

/// The parts of the stack whose CPU is measured: the services by their
/// process, the servers by their processes' name (the whole server: the
/// benchmark expects nothing else to use it meanwhile), and the bench's own
/// process (load, OTLP receiver and webhook).
const PARTS: [(&str, Part); 7] = [
    ("api", Part::Service),
    ("worker", Part::Service),
    ("bot", Part::Service),
    ("PostgreSQL", Part::Server("postgres")),
    ("RabbitMQ", Part::Server("beam.smp")),
    ("Redis", Part::Server("redis-server")),
    ("bench", Part::Bench),
];

#[derive(Debug, Clone, Copy)]
enum Part {
    Service,
    Server(&'static str),
    Bench,
}

/// CPU time each of [`PARTS`] has used so far.
fn cpu_by_part(services: &[(&'static str, u32)]) -> anyhow::Result<Vec<Duration>> {
    PARTS
        .iter()
        .map(|&(name, part)| match part {
            Part::Service => services
                .iter()
                .filter(|(service, _)| *service == name)
                .map(|&(_, pid)| system::cpu_time(pid))
                .sum(),
            Part::Server(comm) => system::processes_cpu_time(comm),
            Part::Bench => system::cpu_time(std::process::id()),
        })
        .collect()
}

/// What one step measured.
#[derive(Debug)]
struct Step {
    rate: u32,
    delivery: Delivery,
    spans_received: usize,
    spans_dropped: u64,
    /// From the start of the load to the last announcement (or the end of
    /// the drain).
    window: Duration,
    /// CPU of each of [`PARTS`] in the window.
    cpu: Vec<Duration>,
    /// What PostgreSQL ran for the step's database in the window, if it
    /// counts statements.
    statements: Option<Vec<Statement>>,
    /// Rows read by sequential scans of the step's tables in the window.
    rows_scanned: i64,
}

impl Step {
    fn holds(&self) -> bool {
        self.delivery.lost == 0
            && self
                .delivery
                .latency
                .is_some_and(|latency| latency.p99 <= TARGET_P99)
    }
}

/// Runs every step and returns the table.
pub(crate) async fn run(
    settings: &Settings,
    binary: &Path,
    cleanup: &Cleanup,
) -> anyhow::Result<Vec<Table>> {
    let mut steps = Vec::new();
    let started = Instant::now();
    for (i, &rate) in settings.rates.iter().enumerate() {
        progress(format!(
            "[pipeline {}/{}, about {} min left] {rate} games/s for {} s",
            i + 1,
            settings.rates.len(),
            settings
                .estimate()
                .saturating_sub(started.elapsed())
                .as_secs()
                / 60,
            settings.step.as_secs()
        ));
        let names = cleanup.names().await;
        let step = run_step(settings, binary, names.clone(), rate).await;
        cleanup.remove(&names).await?;
        let step = step.with_context(|| format!("the {rate} games/s step"))?;
        progress(format!(
            "  p99 {}, lost {}, duplicates {}, 5xx {}",
            step.delivery
                .latency
                .map_or_else(|| "–".to_owned(), |l| latency(l.p99)),
            step.delivery.lost,
            step.delivery.duplicates,
            step.delivery.status_5xx
        ));
        steps.push(step);
    }
    let mut tables = vec![summarize(settings, &steps), cost(&steps)];
    tables.extend(statement_table(&steps));
    Ok(tables)
}

async fn run_step(
    settings: &Settings,
    binary: &Path,
    names: demo::Names,
    rate: u32,
) -> anyhow::Result<Step> {
    let receiver = Receiver::start_counting()
        .await
        .context("cannot start the OTLP receiver")?;
    let discord = FakeDiscord::start().await;
    // The services' own defaults, not the demo's quick polls: a pipeline
    // as deployed (see RUNTIME_CONFIG.md).
    let mut env = vec![
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5000"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "1000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ("OUTBOX_POLL_INTERVAL_MS", "1000"),
        ("SCHEDULER_INTERVAL_MS", "1000"),
    ];
    if !settings.telemetry {
        env.push(("OTEL_SDK_DISABLED", "true"));
    }
    let options = Options {
        otlp_endpoint: receiver.http_endpoint(),
        webhook_url: Some(discord.webhook_url()),
        extra_env: env
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    };
    let database_url = names.database_url.clone();
    let stack = Stack::start(binary, names, &options).await?;
    let printed = stack.printed();
    let mut counter = statements::Counter::connect(&database_url).await?;
    if let Some(counter) = &mut counter {
        counter.reset().await?;
    }
    let scanned_before = statements::rows_scanned(&database_url).await?;
    let cpu_before = cpu_by_part(&stack.pids())?;
    let window_start = Instant::now();

    let prefix = format!("bench {rate}/s game ");
    let live = Arc::new(Live::default());
    let stop = CancellationToken::new();
    let load = tokio::spawn(load::drive(
        stack.api_url.clone(),
        rate,
        prefix.clone(),
        live.clone(),
        stop.clone(),
    ));
    let announced = || {
        load::posts(&discord)
            .into_iter()
            .filter_map(|post| post.title)
            .collect::<HashSet<_>>()
    };
    let load_end = Instant::now() + settings.step;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    while Instant::now() < load_end {
        tokio::select! {
            _ = tick.tick() => {
                let (sent, created, server_errors) = live.counts();
                progress(format!(
                    "  {} s left · sent {sent} · created {created} · announced {} · 5xx {server_errors}",
                    load_end.saturating_duration_since(Instant::now()).as_secs(),
                    announced().len()
                ));
            }
            () = tokio::time::sleep_until(load_end.into()) => {}
        }
    }
    stop.cancel();
    let requests = load
        .await
        .context("the load task failed")?
        .context("cannot build the HTTP client")?;
    progress(format!(
        "  draining: up to {} s for the last announcements",
        settings.drain.as_secs()
    ));
    load::drain(&discord, &requests, settings.drain).await;
    let window = window_start.elapsed();
    let cpu = cpu_by_part(&stack.pids())?
        .into_iter()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .collect();
    let statements = match &mut counter {
        Some(counter) => Some(counter.read().await?),
        None => None,
    };
    drop(counter);
    let rows_scanned = statements::rows_scanned(&database_url).await? - scanned_before;
    for (name, status) in stack.stop().await? {
        if !status.success() {
            progress(format!("  {name} exited with {status}"));
        }
    }
    let posts: Vec<load::Post> = load::posts(&discord)
        .into_iter()
        .filter(|post| post.title.as_ref().is_some_and(|t| t.starts_with(&prefix)))
        .collect();
    Ok(Step {
        rate,
        delivery: Delivery::new(&requests, &posts),
        spans_received: receiver.counts().spans,
        spans_dropped: system::dropped_spans(&printed.lines()),
        window,
        cpu,
        statements,
        rows_scanned,
    })
}

fn summarize(settings: &Settings, steps: &[Step]) -> Table {
    let mut table = Table::new(
        format!(
            "Pipeline: POST /games → worker → bot → webhook ({} s per rate, {} s drain, telemetry {})",
            settings.step.as_secs(),
            settings.drain.as_secs(),
            if settings.telemetry { "on" } else { "off" }
        ),
        vec![
            "games/s",
            "sent",
            "created",
            "create→webhook p50",
            "p99",
            "max",
            "lost",
            "duplicates",
            "5xx",
            "no answer",
            "spans received",
            "spans dropped",
            "holds",
        ],
    );
    for step in steps {
        let d = &step.delivery;
        let figure = |pick: fn(&load::Latency) -> Duration| {
            d.latency
                .as_ref()
                .map_or_else(|| "–".to_owned(), |l| latency(pick(l)))
        };
        table.rows.push(vec![
            step.rate.to_string(),
            d.sent.to_string(),
            d.created.to_string(),
            figure(|l| l.p50),
            figure(|l| l.p99),
            figure(|l| l.max),
            d.lost.to_string(),
            d.duplicates.to_string(),
            d.status_5xx.to_string(),
            d.no_answer.to_string(),
            step.spans_received.to_string(),
            step.spans_dropped.to_string(),
            if step.holds() { "yes" } else { "no" }.to_owned(),
        ]);
    }
    let best = steps
        .iter()
        .filter(|step| step.holds())
        .map(|step| step.rate)
        .max();
    table.notes.push(format!(
        "Highest rate holding create→webhook p99 ≤ {} ms with 0 lost: {}.",
        TARGET_P99.as_millis(),
        best.map_or_else(
            || "none of those tried".to_owned(),
            |rate| format!("{rate} games/s")
        )
    ));
    table.notes.push(format!(
        "Each rate on a fresh stack, with the services' default intervals; lost: created, \
         never posted by the end of the drain; {}.",
        if settings.telemetry {
            "every trace sampled, exported over OTLP/HTTP to an in-process receiver"
        } else {
            "telemetry off (`OTEL_SDK_DISABLED=true`)"
        }
    ));
    table
}

/// CPU and PostgreSQL work per game created, each step.
fn cost(steps: &[Step]) -> Table {
    let mut headers = vec!["games/s"];
    headers.extend(PARTS.iter().map(|&(name, _)| name));
    headers.extend([
        "all",
        "PostgreSQL busy",
        "statements",
        "transactions",
        "in statements",
        "rows seq-scanned",
    ]);
    let mut table = Table::new(
        "Pipeline: CPU and PostgreSQL work per game created".to_owned(),
        headers,
    );
    for step in steps {
        let games = step.delivery.created.max(1) as f64;
        let per_game = |time: Duration| latency(time.div_f64(games));
        let mut row = vec![step.rate.to_string()];
        row.extend(step.cpu.iter().map(|&cpu| per_game(cpu)));
        row.push(per_game(step.cpu.iter().sum()));
        let postgres = step.cpu[PARTS
            .iter()
            .position(|(name, _)| *name == "PostgreSQL")
            .unwrap_or_default()];
        row.push(format!(
            "{:.0} %",
            100.0 * postgres.as_secs_f64() / step.window.as_secs_f64()
        ));
        match &step.statements {
            Some(statements) => row.extend([
                format!("{:.1}", statements::calls(statements) as f64 / games),
                format!(
                    "{:.1}",
                    statements::transaction_calls(statements) as f64 / 2.0 / games
                ),
                per_game(statements.iter().map(|statement| statement.time).sum()),
            ]),
            None => row.extend(["–", "–", "–"].map(str::to_owned)),
        }
        row.push(format!("{:.1}", step.rows_scanned as f64 / games));
        table.rows.push(row);
    }
    table.notes.push(
        "CPU time (user + system) from the start of the load to the last announcement, \
         divided by the games created; PostgreSQL, RabbitMQ and Redis: every process of \
         the server, with the children that exited; bench: load, OTLP receiver and webhook. \
         PostgreSQL busy: its CPU as a share of one core. Rows seq-scanned: rows of the \
         step's tables read by sequential scans (pg_stat_user_tables), which a plan \
         cached while a queue table was empty would show."
            .to_owned(),
    );
    table
        .notes
        .push(if steps.iter().any(|step| step.statements.is_some()) {
            "statements: calls to PostgreSQL (each a round trip), BEGIN and COMMIT included; \
         transactions: BEGIN … COMMIT/ROLLBACK pairs; in statements: PostgreSQL's time \
         planning (if pg_stat_statements.track_planning is on) and executing them \
         (pg_stat_statements, the step's database only)."
                .to_owned()
        } else {
            format!("No statement figures: {}.", statements::HOW_TO_LOAD)
        });
    table
}

/// The statements that took most of PostgreSQL's time, each step.
fn statement_table(steps: &[Step]) -> Option<Table> {
    /// Statements shown a step.
    const TOP: usize = 10;
    let mut table = Table::new(
        "Pipeline: PostgreSQL statements per game, the costliest first".to_owned(),
        vec!["games/s", "calls", "time", "a call", "statement"],
    );
    for step in steps {
        let Some(statements) = &step.statements else {
            continue;
        };
        let games = step.delivery.created.max(1) as f64;
        for statement in statements.iter().take(TOP) {
            let mut text: String = statement.query.chars().take(100).collect();
            if text.len() < statement.query.len() {
                text.push('…');
            }
            table.rows.push(vec![
                step.rate.to_string(),
                format!("{:.2}", statement.calls as f64 / games),
                latency(statement.time.div_f64(games)),
                latency(statement.time / u32::try_from(statement.calls.max(1)).unwrap_or(u32::MAX)),
                text,
            ]);
        }
    }
    table.notes.push(format!(
        "The {TOP} statements PostgreSQL spent most time in for the step's database, \
         per game created (pg_stat_statements; planning counted if track_planning is on)."
    ));
    (!table.rows.is_empty()).then_some(table)
}

//! Mode `pipeline`: games created at a fixed rate through api → worker →
//! bot → webhook, the rate stepped up, each step on a fresh stack (its own
//! database, queues and key prefix). Per step: how long from the create to
//! the webhook post announcing the game, what was lost or doubled, the 5xx
//! answers, and the spans the services dropped; then the highest rate that
//! still holds the target.

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

/// What one step measured.
#[derive(Debug)]
struct Step {
    rate: u32,
    delivery: Delivery,
    spans_received: usize,
    spans_dropped: u64,
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
) -> anyhow::Result<Table> {
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
    Ok(summarize(settings, &steps))
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
    let stack = Stack::start(binary, names, &options).await?;
    let printed = stack.printed();

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

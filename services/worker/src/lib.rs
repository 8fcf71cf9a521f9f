//! The `worker` service: turns game events into notifications and hands due
//! notifications to the bot.
//!
//! # Layout
//! - [`config`]: the command line: settings, each also set by its
//!   environment variable, and subcommands.
//! - [`apply`]: one event → its notifications, once (redeliveries are
//!   recognised by `message_id`).
//! - [`scheduler`]: due notifications → the bot's queue, safely from many
//!   workers at once.
//! - [`Worker`]: the consumer, the scheduler and the health server together.

pub mod apply;
pub mod config;
pub mod scheduler;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::routing::get;
use broker::consumer::{self, Failure, Settings};
use broker::{Broker, QueueSpec, Topology};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableGauge};
use secrecy::ExposeSecret;
use service_runtime::CancellationToken;
use sqlx::PgPool;

pub use config::Config;

/// `service.name`, `service.version` and `service.namespace` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_namespace(service_runtime::SERVICE_NAMESPACE);

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `RABBITMQ_URL` could not be used.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// The health server failed.
    #[error("health server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// The worker, wired but not yet running.
#[derive(Debug)]
pub struct Worker {
    pool: PgPool,
    broker: Arc<Broker>,
    applier: apply::Applier,
    scheduler: scheduler::Scheduler,
    retention: schema::retention::Retention,
    settings: Settings,
    /// The bot's queue, declared here too so notifications are never
    /// unroutable, and re-driven from here.
    bot_queue: QueueSpec,
    /// Ready messages per dead-letter queue, as of the last count.
    dead_letter_depths: Arc<Vec<(String, AtomicI64)>>,
    _dead_letters: ObservableGauge<i64>,
    _due: ObservableGauge<i64>,
    _dead: ObservableGauge<i64>,
}

impl Worker {
    /// Wires the worker from `config`. Connects lazily.
    pub fn new(config: &Config, meter: &Meter) -> Result<Self, StartError> {
        let (pool, db) = schema::connect_lazy(
            config.database.database_url.expose_secret(),
            config.database.database_pool_size,
            meter,
        );
        let queue = QueueSpec::bound(
            &config.queue,
            &config.events_exchange,
            events::GAME_EVENT_PATTERN,
        );
        let bot_queue = QueueSpec::bound(
            &config.bot_queue,
            &config.notifications_exchange,
            events::NOTIFICATION_PATTERN,
        );
        let broker = Arc::new(Broker::new(
            config.rabbitmq.rabbitmq_url.to_secret_string(),
            Topology {
                exchanges: vec![
                    config.events_exchange.clone(),
                    config.notifications_exchange.clone(),
                ],
                queues: vec![queue.clone(), bot_queue.clone()],
            },
            meter,
        )?);
        let scheduler = scheduler::scheduler(
            pool.clone(),
            db.clone(),
            broker.clone(),
            config.notifications_exchange.clone(),
            config.consumer.max_attempts,
            config.scheduler_interval,
            meter,
        );
        let (due, dead) = (scheduler.pending(), scheduler.set_aside());
        let retention = schema::retention::Retention::new(
            pool.clone(),
            db.clone(),
            &[
                schema::retention::PROCESSED_MESSAGES,
                schema::retention::SENT_NOTIFICATIONS,
            ],
            config.retention.retention,
        );
        // -1 until first counted: RabbitMQ may be down at start.
        let dead_letter_depths: Arc<Vec<(String, AtomicI64)>> = Arc::new(
            [&queue, &bot_queue]
                .into_iter()
                .map(|queue| (queue.dead_letter_queue(), AtomicI64::new(-1)))
                .collect(),
        );
        Ok(Self {
            retention,
            applier: apply::Applier::new(pool.clone(), db),
            pool,
            broker,
            scheduler,
            bot_queue,
            settings: Settings {
                queue,
                prefetch: config.consumer.prefetch,
                concurrency: config.consumer.concurrency.into(),
                max_attempts: config.consumer.max_attempts,
                initial_backoff: config.consumer.retry_backoff,
                max_backoff: Duration::from_secs(30),
                pause: None,
            },
            _due: meter
                .i64_observable_gauge("gamenight.notifications.due")
                .with_unit("{notification}")
                .with_description("Notifications due and not yet handed to the bot.")
                .with_callback(move |gauge| gauge.observe(due.load(Ordering::Relaxed), &[]))
                .build(),
            _dead_letters: {
                let depths = dead_letter_depths.clone();
                meter
                    .i64_observable_gauge("gamenight.dead_letters.depth")
                    .with_unit("{message}")
                    .with_description(
                        "Messages waiting in a dead-letter queue for an operator (worker redrive).",
                    )
                    .with_callback(move |gauge| {
                        for (queue, depth) in depths.iter() {
                            let depth = depth.load(Ordering::Relaxed);
                            if depth >= 0 {
                                gauge.observe(
                                    depth,
                                    &[KeyValue::new("messaging.destination.name", queue.clone())],
                                );
                            }
                        }
                    })
                    .build()
            },
            dead_letter_depths,
            _dead: meter
                .i64_observable_gauge("gamenight.notifications.dead")
                .with_unit("{notification}")
                .with_description(
                    "Notifications given up on, waiting for an operator to re-drive them.",
                )
                .with_callback(move |gauge| gauge.observe(dead.load(Ordering::Relaxed), &[]))
                .build(),
        })
    }

    /// The scheduler, for tests that drive it by hand.
    pub fn scheduler(&self) -> &scheduler::Scheduler {
        &self.scheduler
    }

    /// Consumes events, schedules notifications and serves `/healthz` and
    /// `/readyz` on `listener` until `shutdown` is cancelled; the event in
    /// hand is finished first.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        meter: &Meter,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let scheduler = tokio::spawn(self.scheduler.clone().run(shutdown.clone()));
        let retention = tokio::spawn(self.retention.clone().run(shutdown.clone()));
        let dead_letters = tokio::spawn(count_dead_letters(
            self.broker.clone(),
            self.dead_letter_depths.clone(),
            shutdown.clone(),
        ));
        let applier = self.applier.clone();
        let wake = self.scheduler.clone();
        let consumer = consumer::run(
            self.broker.clone(),
            self.settings.clone(),
            meter,
            shutdown.clone(),
            move |message| {
                let applier = applier.clone();
                let wake = wake.clone();
                async move {
                    match applier.apply_message(&message.body).await? {
                        apply::Applied::Notifications(n) if n > 0 => wake.notify(),
                        _ => {}
                    }
                    Ok::<(), Failure>(())
                }
            },
        );
        let (pool, broker) = (self.pool.clone(), self.broker.clone());
        let health = service_runtime::health_routes().route(
            "/readyz",
            get(move || async move {
                use service_runtime::check;
                let (postgresql, rabbitmq) =
                    tokio::join!(check(schema::is_ready(&pool)), check(broker.is_ready()));
                service_runtime::readiness(
                    &[("postgresql", postgresql), ("rabbitmq", rabbitmq)],
                    &[],
                )
            }),
        );
        let (served, (), scheduled, swept, counted) = tokio::join!(
            service_runtime::serve(listener, health, shutdown.clone()),
            consumer,
            scheduler,
            retention,
            dead_letters,
        );
        if let Err(err) = counted {
            tracing::error!(error = %err, "dead-letter count task failed");
        }
        if let Err(err) = scheduled {
            tracing::error!(error = %err, "scheduler task failed");
        }
        if let Err(err) = swept {
            tracing::error!(error = %err, "retention task failed");
        }
        Ok(served?)
    }
}

/// `worker [healthcheck | redrive]`, as `args` (the binary's name first)
/// and the environment say: the body of the binary's `main`, and of `demo
/// service worker`. Exits 2, naming the variable, on bad configuration.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    use config::Command;
    use service_runtime::cli::Task;
    service_runtime::cli::main(SERVICE, config::ABOUT, args, run, |command| match command {
        Command::Healthcheck(listen) => Task::Healthcheck(listen.addr),
        Command::Redrive {
            what,
            limit,
            config,
        } => Task::Work(Box::pin(redrive(*config, what, limit))),
    })
    .await
}

/// Runs the worker as `config` says until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let meter = opentelemetry::global::meter(SERVICE.name);
    let worker = Worker::new(&config, &meter)?;
    let listener = service_runtime::bind(config.listen.addr).await?;
    Ok(worker.run(listener, &meter, shutdown).await?)
}

/// How often the dead-letter queues are counted for their gauge.
const DEAD_LETTER_COUNT_INTERVAL: Duration = Duration::from_secs(15);

/// Counts the messages in each dead-letter queue every 15 s until
/// `shutdown`, for the `gamenight.dead_letters.depth` gauge. While RabbitMQ
/// is away the last counts stand.
async fn count_dead_letters(
    broker: Arc<Broker>,
    depths: Arc<Vec<(String, AtomicI64)>>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(DEAD_LETTER_COUNT_INTERVAL);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for (queue, depth) in depths.iter() {
            if let Ok(count) = broker.ready_messages(queue).await {
                depth.store(i64::from(count), Ordering::Relaxed);
            }
        }
    }
}

/// What `worker redrive` moves back into the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Redrive {
    /// Notifications marked dead: back to pending with their attempts reset,
    /// for the scheduler to publish again.
    Notifications,
    /// Messages in the worker queue's dead-letter queue (`<WORKER_QUEUE>.dlq`).
    WorkerDeadLetters,
    /// Messages in the bot queue's dead-letter queue (`<BOT_QUEUE>.dlq`).
    BotDeadLetters,
}

const REDRIVE_NOTIFICATIONS: &str = "UPDATE notifications SET status = 'pending', attempts = 0, \
     last_error = NULL, claimed_until = NULL WHERE status = 'dead'";

impl Worker {
    /// Moves up to `limit` dead notifications or dead-lettered messages back
    /// into the pipeline and returns how many moved. Run it once the cause
    /// is fixed: what died for a reason that still holds dies again.
    pub async fn redrive(&self, what: Redrive, limit: u64) -> anyhow::Result<u64> {
        let moved = match what {
            Redrive::Notifications => {
                // One statement: the rows are few, and the limit is for
                // message queues, which are drained one message at a time.
                let moved = sqlx::query(REDRIVE_NOTIFICATIONS)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                self.scheduler.refresh_counts().await?;
                moved
            }
            Redrive::WorkerDeadLetters => {
                consumer::redrive(&self.broker, &self.settings.queue, limit).await?
            }
            Redrive::BotDeadLetters => {
                consumer::redrive(&self.broker, &self.bot_queue, limit).await?
            }
        };
        tracing::info!(?what, moved, "re-drove");
        Ok(moved)
    }
}

/// `worker redrive`, with the worker's settings `config`, checked first as
/// `run` would check them.
pub async fn redrive(config: Config, what: Redrive, limit: u64) -> anyhow::Result<()> {
    use service_runtime::config::ServiceConfig;
    config.check()?;
    let meter = opentelemetry::global::meter(SERVICE.name);
    Worker::new(&config, &meter)?.redrive(what, limit).await?;
    Ok(())
}

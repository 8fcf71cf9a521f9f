//! The `worker` service: turns game events into notifications and hands due
//! notifications to the bot.
//!
//! # Layout
//! - [`config`]: settings read from the environment.
//! - [`apply`]: one event → its notifications, once (redeliveries are
//!   recognised by `message_id`).
//! - [`scheduler`]: due notifications → the bot's queue, safely from many
//!   workers at once.
//! - [`Worker`]: the consumer, the scheduler and the health server together.

pub mod apply;
pub mod config;
pub mod scheduler;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::routing::get;
use broker::consumer::{self, Failure, Settings};
use broker::{Broker, QueueSpec, Topology};
use opentelemetry::metrics::{Meter, ObservableGauge};
use service_runtime::CancellationToken;
use sqlx::PgPool;

pub use config::Config;

/// `service.name` and `service.version` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `DATABASE_URL` could not be parsed.
    #[error(transparent)]
    InvalidDatabaseUrl(#[from] schema::InvalidDatabaseUrl),
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
    settings: Settings,
    _due: ObservableGauge<i64>,
}

impl Worker {
    /// Wires the worker from `config`. Connects lazily.
    pub fn new(config: &Config, meter: &Meter) -> Result<Self, StartError> {
        let (pool, db) = schema::connect_lazy(&config.database_url, meter)?;
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
            config.rabbitmq_url.clone(),
            Topology {
                exchanges: vec![
                    config.events_exchange.clone(),
                    config.notifications_exchange.clone(),
                ],
                queues: vec![queue.clone(), bot_queue],
            },
            meter,
        )?);
        let scheduler = scheduler::Scheduler::new(
            pool.clone(),
            db.clone(),
            broker.clone(),
            config.notifications_exchange.clone(),
            config.max_attempts,
            config.scheduler_interval,
            meter,
        );
        let due = scheduler.due();
        Ok(Self {
            applier: apply::Applier::new(pool.clone(), db),
            pool,
            broker,
            scheduler,
            settings: Settings {
                queue,
                prefetch: config.prefetch,
                max_attempts: config.max_attempts,
                initial_backoff: config.retry_backoff,
                max_backoff: Duration::from_secs(30),
            },
            _due: meter
                .i64_observable_gauge("gamenight.notifications.due")
                .with_unit("{notification}")
                .with_description("Notifications due and not yet handed to the bot.")
                .with_callback(move |gauge| gauge.observe(due.load(Ordering::Relaxed), &[]))
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
        let (served, (), scheduled) = tokio::join!(
            service_runtime::serve(listener, health, shutdown.clone()),
            consumer,
            scheduler,
        );
        if let Err(err) = scheduled {
            tracing::error!(error = %err, "scheduler task failed");
        }
        Ok(served?)
    }
}

/// Runs the worker as configured by the environment until `shutdown`.
pub async fn run_from_env(shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = Config::from_env().context("invalid configuration")?;
    let meter = opentelemetry::global::meter(SERVICE.name);
    let worker = Worker::new(&config, &meter)?;
    let listener = service_runtime::bind(config.listen_addr).await?;
    Ok(worker.run(listener, &meter, shutdown).await?)
}

//! Settings of the `worker` service, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use service_runtime::env::{Env, EnvError};

/// Settings of the `worker` service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Health server (`WORKER_LISTEN_ADDR`, default `0.0.0.0:8001`).
    pub listen_addr: SocketAddr,
    /// PostgreSQL (`DATABASE_URL`, required). Holds a password.
    pub database_url: SecretString,
    /// Most connections kept open to PostgreSQL (`DATABASE_POOL_SIZE`,
    /// default 10): above `concurrency`, so the scheduler and `/readyz` find
    /// one while every event in hand holds its own.
    pub database_pool_size: u32,
    /// RabbitMQ (`RABBITMQ_URL`, required). Holds a password.
    pub rabbitmq_url: SecretString,
    /// Exchange the api publishes game events to (`EVENTS_EXCHANGE`).
    pub events_exchange: String,
    /// The worker's durable queue of game events (`WORKER_QUEUE`, default
    /// `gamenight.worker.events`); shared by every worker replica.
    pub queue: String,
    /// Exchange notifications go to (`NOTIFICATIONS_EXCHANGE`).
    pub notifications_exchange: String,
    /// The bot's queue (`BOT_QUEUE`), declared here too so nothing is
    /// published before it exists.
    pub bot_queue: String,
    /// Unacked events RabbitMQ may push at once (`WORKER_PREFETCH`, default 16).
    pub prefetch: u16,
    /// Events applied at once (`WORKER_CONCURRENCY`, default 8; at most the
    /// prefetch, below the pool size).
    ///
    /// The order of the queue is not needed: each event is applied once
    /// (its id is recorded in the transaction that applies it), and the
    /// events of one game give the same notifications in any order. The one
    /// pair whose order mattered, a game created and cancelled, is
    /// serialised per game in PostgreSQL and a reminder is not scheduled for
    /// a game already cancelled (see [`crate::apply`]). Several worker
    /// replicas never had the queue's order either. What can differ is the
    /// order of immediate notifications of one game (a join applied before
    /// the announcement); the bot posts each once whatever the order.
    pub concurrency: u16,
    /// Attempts per event, and per notification publish, before giving up
    /// (`WORKER_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry delay, doubling per attempt (`WORKER_RETRY_BACKOFF_MS`,
    /// default 500).
    pub retry_backoff: Duration,
    /// How often the scheduler looks for due notifications
    /// (`SCHEDULER_INTERVAL_MS`, default 1000); new ones wake it at once.
    pub scheduler_interval: Duration,
    /// How long applied event ids and sent notifications are kept
    /// (`RETENTION_HOURS`, default 168: a week). Dead notifications stay
    /// until re-driven.
    pub retention: Duration,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &[
        "WORKER_LISTEN_ADDR",
        "DATABASE_URL",
        "RABBITMQ_URL",
        "EVENTS_EXCHANGE",
        "WORKER_QUEUE",
        "NOTIFICATIONS_EXCHANGE",
        "BOT_QUEUE",
        "WORKER_PREFETCH",
        "WORKER_CONCURRENCY",
        "DATABASE_POOL_SIZE",
        "WORKER_MAX_ATTEMPTS",
        "WORKER_RETRY_BACKOFF_MS",
        "SCHEDULER_INTERVAL_MS",
        "RETENTION_HOURS",
    ];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
        let text = |var, default: &str| env.optional(var).unwrap_or_else(|| default.to_owned());
        let database_pool_size = env.database_pool_size()?;
        let prefetch = env.positive("WORKER_PREFETCH", 16, "a number from 1 to 65535")?;
        Ok(Self {
            listen_addr: env.listen_addr("WORKER_LISTEN_ADDR", 8001)?,
            database_url: env.database_url()?,
            database_pool_size,
            rabbitmq_url: env.rabbitmq_url()?,
            events_exchange: text("EVENTS_EXCHANGE", events::DEFAULT_EXCHANGE),
            queue: text("WORKER_QUEUE", "gamenight.worker.events"),
            notifications_exchange: text(
                "NOTIFICATIONS_EXCHANGE",
                events::DEFAULT_NOTIFICATIONS_EXCHANGE,
            ),
            bot_queue: text("BOT_QUEUE", events::DEFAULT_BOT_QUEUE),
            prefetch,
            concurrency: env.concurrency(
                "WORKER_CONCURRENCY",
                8,
                prefetch,
                database_pool_size,
                "a number from 1 to WORKER_PREFETCH, below DATABASE_POOL_SIZE",
            )?,
            max_attempts: env.parse_or("WORKER_MAX_ATTEMPTS", 5, "a whole number of attempts")?,
            retry_backoff: Duration::from_millis(env.parse_or(
                "WORKER_RETRY_BACKOFF_MS",
                500,
                "a whole number of milliseconds",
            )?),
            scheduler_interval: Duration::from_millis(env.parse_or(
                "SCHEDULER_INTERVAL_MS",
                1000,
                "a whole number of milliseconds",
            )?),
            retention: env.retention()?,
        })
    }
}

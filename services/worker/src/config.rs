//! The `worker` command line: its settings, each an option also set by its
//! environment variable (`worker --help` lists them), and its subcommands.

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::config::{
    ConfigError, ConsumerConfig, ConsumerVars, DatabaseConfig, RabbitMqConfig, RetentionConfig,
    ServiceConfig, millis,
};

/// What `worker --help` says the worker is.
pub const ABOUT: &str = "Consumes game events and hands due notifications to the bot.";

/// Settings of the `worker` service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Where `/healthz` and `/readyz` are served.
    #[command(flatten)]
    pub listen: Listen,
    /// PostgreSQL. The pool must exceed the concurrency, so that the
    /// scheduler and `/readyz` find a connection while every event in hand
    /// holds its own.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// RabbitMQ.
    #[command(flatten)]
    pub rabbitmq: RabbitMqConfig,
    /// Exchange the api publishes game events to.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = events::DEFAULT_EXCHANGE)]
    pub events_exchange: String,
    /// The worker's durable queue of game events, shared by every worker
    /// replica; dead letters go to `<queue>.dlq`.
    #[arg(
        long = "worker-queue",
        env = "WORKER_QUEUE",
        default_value = "gamenight.worker.events"
    )]
    pub queue: String,
    /// Exchange notifications go to.
    #[arg(long, env = "NOTIFICATIONS_EXCHANGE", default_value = events::DEFAULT_NOTIFICATIONS_EXCHANGE)]
    pub notifications_exchange: String,
    /// The bot's queue, declared here too so that nothing is published
    /// before it exists.
    #[arg(long, env = "BOT_QUEUE", default_value = events::DEFAULT_BOT_QUEUE)]
    pub bot_queue: String,
    /// How events are consumed (`WORKER_PREFETCH`, `WORKER_CONCURRENCY`,
    /// `WORKER_MAX_ATTEMPTS`, `WORKER_RETRY_BACKOFF_MS`); the attempts also
    /// bound notification publishes.
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
    #[command(flatten)]
    pub consumer: ConsumerConfig<Worker>,
    /// Milliseconds between looks for due notifications; new ones wake the
    /// scheduler at once.
    #[arg(long = "scheduler-interval-ms", env = "SCHEDULER_INTERVAL_MS", default_value = "1000", value_parser = millis())]
    pub scheduler_interval: Duration,
    /// How long applied event ids and sent notifications are kept; dead
    /// notifications stay until re-driven.
    #[command(flatten)]
    pub retention: RetentionConfig,
}

/// The whole command line, as `--help` shows it and the docs test reads it.
pub fn command() -> clap::Command {
    service_runtime::cli::command::<Config, Command>(crate::SERVICE, ABOUT)
}

impl ServiceConfig for Config {
    fn check(&self) -> Result<(), ConfigError> {
        self.consumer.check(self.database.database_pool_size)
    }
}

/// The worker's consumer variables.
#[derive(Debug, Clone)]
pub struct Worker;

impl ConsumerVars for Worker {
    const PREFETCH: &'static str = "WORKER_PREFETCH";
    const CONCURRENCY: &'static str = "WORKER_CONCURRENCY";
    const MAX_ATTEMPTS: &'static str = "WORKER_MAX_ATTEMPTS";
    const RETRY_BACKOFF_MS: &'static str = "WORKER_RETRY_BACKOFF_MS";
}

/// Where the health server listens: all `worker healthcheck` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Listen {
    /// Address of the worker's `/healthz` and `/readyz`.
    #[arg(
        long = "worker-listen-addr",
        env = "WORKER_LISTEN_ADDR",
        default_value = "0.0.0.0:8001"
    )]
    pub addr: SocketAddr,
}

/// What `worker` can do besides running (its default).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Exit 0 if the running worker answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck(Listen),
    /// Move dead notifications or dead-lettered messages back into the
    /// pipeline, then exit.
    Redrive {
        /// What to move back.
        #[arg(value_enum)]
        what: crate::Redrive,
        /// At most this many messages (dead letters are moved one by one).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// The worker's settings: it re-drives through the queues and the
        /// database the service uses.
        #[command(flatten)]
        config: Box<Config>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_runtime::cli::from_vars;

    const REQUIRED: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://u:pw@db/gamenight"),
        ("RABBITMQ_URL", "amqp://guest:guest@mq:5672/%2f"),
    ];

    fn config(extra: &[(&str, &str)]) -> Result<Config, clap::Error> {
        from_vars(REQUIRED.iter().chain(extra).copied())
    }

    #[test]
    fn defaults_fill_everything_but_the_two_servers() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen.addr, SocketAddr::from(([0, 0, 0, 0], 8001)));
        assert_eq!(config.queue, "gamenight.worker.events");
        assert_eq!(config.bot_queue, "gamenight.bot.notifications");
        assert_eq!(config.consumer.prefetch, 16);
        assert_eq!(config.consumer.concurrency, 8);
        assert_eq!(config.consumer.max_attempts, 5);
        assert_eq!(config.consumer.retry_backoff, Duration::from_millis(500));
        assert_eq!(config.scheduler_interval, Duration::from_secs(1));
        assert_eq!(config.retention.retention, Duration::from_secs(168 * 3600));
    }

    #[test]
    fn the_consumer_reads_the_worker_variables() {
        let config = config(&[
            ("WORKER_PREFETCH", "32"),
            ("WORKER_CONCURRENCY", "9"),
            ("WORKER_MAX_ATTEMPTS", "7"),
            ("WORKER_RETRY_BACKOFF_MS", "50"),
            ("BOT_PREFETCH", "1"),
        ])
        .unwrap();
        assert_eq!(config.consumer.prefetch, 32);
        assert_eq!(config.consumer.concurrency, 9);
        assert_eq!(config.consumer.max_attempts, 7);
        assert_eq!(config.consumer.retry_backoff, Duration::from_millis(50));
    }

    #[test]
    fn a_concurrency_the_pool_cannot_serve_is_refused_by_name() {
        let err = config(&[("WORKER_CONCURRENCY", "10")]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(
                "WORKER_CONCURRENCY is invalid: expected a number from 1 to WORKER_PREFETCH, below DATABASE_POOL_SIZE"
            ),
            "{message}"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for (var, bad) in [
            ("WORKER_LISTEN_ADDR", "localhost"),
            ("WORKER_PREFETCH", "0"),
            ("WORKER_MAX_ATTEMPTS", "many"),
            ("SCHEDULER_INTERVAL_MS", "1s"),
        ] {
            let err = config(&[(var, bad)]).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}

//! The `api` command line: its settings, each an option also set by its
//! environment variable (`api --help` lists them), and its subcommands.

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::config::{
    DatabaseConfig, RabbitMqConfig, RetentionConfig, SecretUrl, ServiceConfig, millis, seconds,
};
use service_runtime::fault::{Delay, Fault};

/// What `api --help` says the api is.
pub const ABOUT: &str = "The gamenight HTTP API.";

/// Settings of the `api` service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Where the HTTP server listens.
    #[command(flatten)]
    pub listen: Listen,
    /// PostgreSQL; requests wait at most 5 s for a connection, then fail
    /// with 503.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// RabbitMQ, where domain events go.
    #[command(flatten)]
    pub rabbitmq: RabbitMqConfig,
    /// Redis for the game cache. May hold a password: never logged.
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        value_parser = SecretUrl::parser(&["redis", "rediss"], "a URL such as redis://host:6379"),
    )]
    pub redis_url: SecretUrl,
    /// Seconds a cached game stays fresh; 0 turns the cache off. Writes
    /// invalidate at once: the TTL bounds staleness should an invalidation
    /// be lost while Redis is unreachable.
    #[arg(long = "cache-ttl-seconds", env = "CACHE_TTL_SECONDS", default_value = "60", value_parser = seconds())]
    pub cache_ttl: Duration,
    /// Prefix of every Redis key, so that several deployments or test runs
    /// can share one Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "gamenight:")]
    pub redis_key_prefix: String,
    /// Topic exchange the events go to.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = events::DEFAULT_EXCHANGE)]
    pub events_exchange: String,
    /// Milliseconds between looks for events written by other replicas;
    /// this replica's are published at once.
    #[arg(long = "outbox-poll-interval-ms", env = "OUTBOX_POLL_INTERVAL_MS", default_value = "1000", value_parser = millis())]
    pub outbox_poll_interval: Duration,
    /// Apply pending migrations before serving (`api migrate` applies them
    /// and exits).
    #[arg(long = "api-migrate-on-start", env = "API_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// How long published events stay in the outbox.
    #[command(flatten)]
    pub retention: RetentionConfig,
    /// Fault switches, off unless set.
    #[command(flatten)]
    pub faults: Faults,
}

/// The whole command line, as `--help` shows it and the docs test reads it.
pub fn command() -> clap::Command {
    service_runtime::cli::command::<Config, Command>(crate::SERVICE, ABOUT)
}

impl ServiceConfig for Config {}

/// Where the HTTP server listens: all `api healthcheck` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Listen {
    /// Address the HTTP API binds.
    #[arg(
        long = "api-listen-addr",
        env = "API_LISTEN_ADDR",
        default_value = "0.0.0.0:8000"
    )]
    pub addr: SocketAddr,
}

/// The api's fault switches (RUNTIME_CONFIG.md, "Fault switches").
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Fault switches")]
pub struct Faults {
    /// Milliseconds added to every read of one game from PostgreSQL
    /// (`GET /games/{id}` when the cache misses), inside its database span.
    #[arg(long, env = DB_DELAY, value_parser = Delay::millis(DB_DELAY))]
    pub db_delay: Option<Delay>,
    /// Percentage of events that go to the outbox as a body no consumer can
    /// read; the worker dead-letters them.
    #[arg(long, env = POISON, value_parser = Fault::percent(POISON))]
    pub poison: Option<Fault>,
    /// Percentage of `GET /games` requests that burn CPU in
    /// `api::faults::burn_cpu` after their query, inside their SERVER span,
    /// blocking their worker thread meanwhile: something for a CPU profile
    /// to find.
    #[arg(long, env = CPU_BURN, value_parser = Fault::percent(CPU_BURN))]
    pub cpu_burn: Option<Fault>,
    /// CPU milliseconds each burning request spends, from 1 to 5000
    /// (measured by the thread's CPU clock, not slept).
    #[arg(long = "cpu-burn-ms", env = CPU_BURN_MS, default_value = "200", value_parser = crate::faults::burn_millis())]
    pub cpu_burn_time: Duration,
}

const DB_DELAY: &str = "FAULT_DB_DELAY_MS";
const POISON: &str = "FAULT_POISON_PERCENT";
const CPU_BURN: &str = "FAULT_CPU_BURN_PERCENT";
const CPU_BURN_MS: &str = "FAULT_CPU_BURN_MS";

/// `api migrate`: where, and whether to apply or only wait.
#[derive(Debug, Clone, clap::Args)]
pub struct Migrate {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Apply nothing: wait until every migration this binary knows has been
    /// applied (by another `api migrate`), then exit 0. Only reads, so the
    /// services' role may run it (an init container on Kubernetes).
    #[arg(long)]
    pub wait: bool,
}

impl ServiceConfig for Migrate {}

/// What `api` can do besides serving (its default).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Apply pending migrations and exit.
    Migrate(Box<Migrate>),
    /// Exit 0 if the running API answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck(Listen),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use service_runtime::cli::from_vars;

    const REQUIRED: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://u:pw@db/gamenight"),
        ("REDIS_URL", "redis://cache:6379"),
        ("RABBITMQ_URL", "amqp://guest:guest@mq:5672/%2f"),
    ];

    fn config(extra: &[(&str, &str)]) -> Result<Config, clap::Error> {
        from_vars(REQUIRED.iter().chain(extra).copied())
    }

    #[test]
    fn defaults_fill_everything_but_the_three_servers() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen.addr, SocketAddr::from(([0, 0, 0, 0], 8000)));
        assert_eq!(
            config.database.database_url.expose_secret().get_host(),
            "db"
        );
        assert_eq!(config.database.database_pool_size, 10);
        assert_eq!(config.cache_ttl, Duration::from_secs(60));
        assert_eq!(config.redis_key_prefix, "gamenight:");
        assert_eq!(config.events_exchange, "gamenight.events");
        assert_eq!(config.outbox_poll_interval, Duration::from_secs(1));
        assert!(config.migrate_on_start);
        assert!(config.faults.db_delay.is_none() && config.faults.poison.is_none());
        assert!(config.faults.cpu_burn.is_none());
        assert_eq!(config.faults.cpu_burn_time, Duration::from_millis(200));
    }

    #[test]
    fn the_cpu_burn_takes_a_share_and_a_bounded_time() {
        let config = config(&[
            ("FAULT_CPU_BURN_PERCENT", "25"),
            ("FAULT_CPU_BURN_MS", "5000"),
        ])
        .unwrap();
        let share = config.faults.cpu_burn.unwrap();
        let fired: Vec<bool> = (0..4).map(|_| share.fires()).collect();
        assert_eq!(fired, [false, false, false, true]);
        assert_eq!(config.faults.cpu_burn_time, Duration::from_secs(5));
        for bad in ["0", "5001", "-1", "0.5", "fast"] {
            let err = self::config(&[("FAULT_CPU_BURN_MS", bad)]).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains("FAULT_CPU_BURN_MS"), "{bad}: {shown}");
            if bad.parse::<i64>().is_ok_and(|n| n >= 0) {
                assert!(shown.contains("1..=5000"), "{bad}: {shown}");
            }
        }
    }

    #[test]
    fn each_server_url_is_required() {
        for missing in ["DATABASE_URL", "REDIS_URL", "RABBITMQ_URL"] {
            let vars = REQUIRED.iter().filter(|(var, _)| *var != missing).copied();
            let err = from_vars::<Config>(vars).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn a_redis_url_of_the_wrong_kind_is_refused_without_echoing_it() {
        let err = config(&[("REDIS_URL", "http://:hunter2@cache")]).unwrap_err();
        let shown = format!("{err}{err:?}");
        assert!(shown.contains("REDIS_URL is invalid"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for (var, bad) in [
            ("API_LISTEN_ADDR", "8000"),
            ("CACHE_TTL_SECONDS", "a minute"),
            ("OUTBOX_POLL_INTERVAL_MS", "-1"),
            ("API_MIGRATE_ON_START", "yes"),
            ("FAULT_POISON_PERCENT", "101"),
            ("FAULT_DB_DELAY_MS", "slow"),
            ("FAULT_CPU_BURN_PERCENT", "101"),
            ("FAULT_CPU_BURN_MS", "9999"),
        ] {
            let err = config(&[(var, bad)]).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}

//! Settings of the `api` service, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use service_runtime::env::{Env, EnvError};
use service_runtime::fault::{Delay, Fault};

/// Settings of the `api` service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (`API_LISTEN_ADDR`, default `0.0.0.0:8000`).
    pub listen_addr: SocketAddr,
    /// PostgreSQL (`DATABASE_URL`, required). Holds a password.
    pub database_url: SecretString,
    /// Most connections kept open to PostgreSQL (`DATABASE_POOL_SIZE`,
    /// default 10): requests wait for one at most 5 s, then fail with 503.
    pub database_pool_size: u32,
    /// Redis for the game cache (`REDIS_URL`, required). May hold a password.
    pub redis_url: SecretString,
    /// RabbitMQ for domain events (`RABBITMQ_URL`, required). Holds a password.
    pub rabbitmq_url: SecretString,
    /// How long a cached game stays fresh (`CACHE_TTL_SECONDS`, default 60;
    /// 0 turns the cache off). Writes invalidate at once; the TTL bounds
    /// staleness should an invalidation be lost while Redis is unreachable.
    pub cache_ttl: Duration,
    /// Prefix of every Redis key (`REDIS_KEY_PREFIX`, default `gamenight:`),
    /// so several deployments or test runs can share one Redis.
    pub redis_key_prefix: String,
    /// Topic exchange the events go to (`EVENTS_EXCHANGE`, default
    /// `gamenight.events`).
    pub events_exchange: String,
    /// How often the outbox relay looks for events written by other replicas
    /// (`OUTBOX_POLL_INTERVAL_MS`, default 1000); events written by this one
    /// are published at once.
    pub outbox_poll_interval: Duration,
    /// Whether `api` applies pending migrations before serving
    /// (`API_MIGRATE_ON_START`, default `true`).
    pub migrate_on_start: bool,
    /// How long published events stay in the outbox (`RETENTION_HOURS`,
    /// default 168: a week).
    pub retention: Duration,
    /// Fault switches, off unless set.
    pub faults: Faults,
}

/// The api's fault switches (RUNTIME_CONFIG.md, "Fault switches").
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `FAULT_DB_DELAY_MS`: added to every read of one game from
    /// PostgreSQL (`GET /games/{id}` when the cache misses), inside its
    /// database span.
    pub db_delay: Option<Delay>,
    /// `FAULT_POISON_PERCENT`: that share of events goes to the outbox as a
    /// body no consumer can read; the worker dead-letters it.
    pub poison: Option<Fault>,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &[
        "API_LISTEN_ADDR",
        "DATABASE_URL",
        "DATABASE_POOL_SIZE",
        "REDIS_URL",
        "RABBITMQ_URL",
        "CACHE_TTL_SECONDS",
        "REDIS_KEY_PREFIX",
        "EVENTS_EXCHANGE",
        "OUTBOX_POLL_INTERVAL_MS",
        "API_MIGRATE_ON_START",
        "RETENTION_HOURS",
        "FAULT_DB_DELAY_MS",
        "FAULT_POISON_PERCENT",
    ];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
        Ok(Self {
            listen_addr: env.listen_addr("API_LISTEN_ADDR", 8000)?,
            database_url: env.database_url()?,
            database_pool_size: env.database_pool_size()?,
            redis_url: env.redis_url()?,
            rabbitmq_url: env.rabbitmq_url()?,
            cache_ttl: Duration::from_secs(env.parse_or(
                "CACHE_TTL_SECONDS",
                60,
                "a whole number of seconds",
            )?),
            redis_key_prefix: env
                .optional("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "gamenight:".to_owned()),
            events_exchange: env
                .optional("EVENTS_EXCHANGE")
                .unwrap_or_else(|| events::DEFAULT_EXCHANGE.to_owned()),
            outbox_poll_interval: Duration::from_millis(env.parse_or(
                "OUTBOX_POLL_INTERVAL_MS",
                1000,
                "a whole number of milliseconds",
            )?),
            migrate_on_start: env.parse_or("API_MIGRATE_ON_START", true, "true or false")?,
            retention: env.retention()?,
            faults: Faults {
                db_delay: Delay::millis(env, "FAULT_DB_DELAY_MS")?,
                poison: Fault::percent(env, "FAULT_POISON_PERCENT")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use service_runtime::env::Lookup;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<Lookup> {
        Env::from_pairs(pairs)
    }

    const REQUIRED: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://u:pw@db/gamenight"),
        ("REDIS_URL", "redis://cache:6379"),
        ("RABBITMQ_URL", "amqp://guest:guest@mq:5672/%2f"),
    ];

    #[test]
    fn defaults_fill_everything_but_the_three_servers() {
        let config = Config::from(&env(REQUIRED)).unwrap();
        assert_eq!(config.listen_addr, SocketAddr::from(([0, 0, 0, 0], 8000)));
        assert_eq!(
            config.database_url.expose_secret(),
            "postgres://u:pw@db/gamenight"
        );
        assert_eq!(config.database_pool_size, 10);
        assert_eq!(config.cache_ttl, Duration::from_secs(60));
        assert_eq!(config.redis_key_prefix, "gamenight:");
        assert_eq!(config.events_exchange, "gamenight.events");
        assert_eq!(config.outbox_poll_interval, Duration::from_secs(1));
        assert!(config.migrate_on_start);
    }

    #[test]
    fn each_server_url_is_required() {
        for missing in ["DATABASE_URL", "REDIS_URL", "RABBITMQ_URL"] {
            let lookup = move |key: &str| {
                REQUIRED
                    .iter()
                    .find(|(k, _)| *k == key && *k != missing)
                    .map(|(_, v)| (*v).to_owned())
            };
            let err = Config::from(&Env::from_lookup(lookup)).unwrap_err();
            assert_eq!(err.to_string(), format!("{missing} is not set"));
        }
    }

    #[test]
    fn a_url_of_the_wrong_kind_is_refused_without_echoing_it() {
        let lookup = |key: &str| match key {
            "DATABASE_URL" => Some("mysql://root:hunter2@db/x".to_owned()),
            _ => REQUIRED
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned()),
        };
        let err = Config::from(&Env::from_lookup(lookup)).unwrap_err();
        assert!(
            err.to_string().starts_with("DATABASE_URL is invalid"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
        assert!(!format!("{err:?}").contains("hunter2"));
    }
}

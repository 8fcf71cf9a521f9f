//! Settings of the `bot` service, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use service_runtime::env::{Env, EnvError};
use service_runtime::fault::Fault;

/// Settings of the `bot` service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Health server (`BOT_LISTEN_ADDR`, default `0.0.0.0:8002`).
    pub listen_addr: SocketAddr,
    /// RabbitMQ (`RABBITMQ_URL`, required). Holds a password.
    pub rabbitmq_url: SecretString,
    /// PostgreSQL (`DATABASE_URL`, required), where each delivery is
    /// recorded so a redelivered notification is not posted twice. Holds a
    /// password.
    pub database_url: SecretString,
    /// Most connections kept open to PostgreSQL (`DATABASE_POOL_SIZE`,
    /// default 10): above `concurrency`, since each notification in hand
    /// holds one for its delivery claim.
    pub database_pool_size: u32,
    /// Base URL of the api, where games are fetched (`API_BASE_URL`,
    /// required), e.g. `http://api:8000`.
    pub api_base_url: reqwest::Url,
    /// Where messages go: `DISCORD_WEBHOOK_URL`, or nowhere with
    /// `BOT_DRY_RUN=true`. Exactly one of the two must be set.
    pub destination: Destination,
    /// Exchange notifications arrive on (`NOTIFICATIONS_EXCHANGE`).
    pub notifications_exchange: String,
    /// The bot's durable queue (`BOT_QUEUE`).
    pub queue: String,
    /// Unacked notifications RabbitMQ may push at once (`BOT_PREFETCH`,
    /// default 16).
    pub prefetch: u16,
    /// Notifications delivered at once (`BOT_CONCURRENCY`, default 8; at
    /// most the prefetch, below the pool size).
    ///
    /// The order of the queue is not needed: each notification is posted
    /// once whatever the order (its delivery claim in PostgreSQL), and one
    /// about a game cancelled meanwhile is skipped by the game's status,
    /// not by its place in the queue. What can differ is the order in which
    /// two notifications of one game due at nearly the same moment reach
    /// Discord, as it already could with several bots or a redelivery.
    pub concurrency: u16,
    /// Attempts per notification before it is dead-lettered (or, when the
    /// api is down, put back on the queue) (`BOT_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry delay, doubling per attempt (`BOT_RETRY_BACKOFF_MS`,
    /// default 500); also the cap base for Discord's `Retry-After`.
    pub retry_backoff: Duration,
    /// How long delivery records are kept (`RETENTION_HOURS`, default 168:
    /// a week); a redelivery after that would post again.
    pub retention: Duration,
    /// Fault switches, off unless set.
    pub faults: Faults,
}

/// The bot's fault switches (RUNTIME_CONFIG.md, "Fault switches"): each
/// fires on a share of the calls it guards, 0–100 percent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `FAULT_WEBHOOK_FAILURE_PERCENT`: the webhook answers 503 Service
    /// Unavailable (in dry run too); nothing is posted, the bot retries.
    pub webhook_failure: Option<Fault>,
    /// `FAULT_WEBHOOK_RATE_LIMIT_PERCENT`: the webhook answers 429 Too Many
    /// Requests with `Retry-After: 1`; the bot waits and retries.
    pub webhook_rate_limit: Option<Fault>,
    /// `FAULT_API_TIMEOUT_PERCENT`: the call to the api for the game times
    /// out (after the client's 10 s); the bot retries.
    pub api_timeout: Option<Fault>,
}

/// Where the bot sends messages.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A Discord webhook (`DISCORD_WEBHOOK_URL`). Its path holds the
    /// webhook's token: a secret, never logged or exported.
    Discord(SecretString),
    /// Dry run (`BOT_DRY_RUN=true`): each message is logged, not sent.
    DryRun,
}

/// The settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// One variable is missing or invalid.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Neither destination is configured. Not a silent dry run: a deploy
    /// that forgot the webhook would drop every message.
    #[error(
        "DISCORD_WEBHOOK_URL is not set: set it to post to Discord, or set BOT_DRY_RUN=true to log messages without sending them"
    )]
    NoDestination,
    /// Both are: the operator meant one of them, and we cannot tell which.
    #[error("DISCORD_WEBHOOK_URL is set and BOT_DRY_RUN=true: set one of the two")]
    BothDestinations,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &[
        "BOT_LISTEN_ADDR",
        "RABBITMQ_URL",
        "DATABASE_URL",
        "API_BASE_URL",
        "DISCORD_WEBHOOK_URL",
        "BOT_DRY_RUN",
        "NOTIFICATIONS_EXCHANGE",
        "BOT_QUEUE",
        "BOT_PREFETCH",
        "BOT_CONCURRENCY",
        "DATABASE_POOL_SIZE",
        "BOT_MAX_ATTEMPTS",
        "BOT_RETRY_BACKOFF_MS",
        "RETENTION_HOURS",
        "FAULT_WEBHOOK_FAILURE_PERCENT",
        "FAULT_WEBHOOK_RATE_LIMIT_PERCENT",
        "FAULT_API_TIMEOUT_PERCENT",
    ];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let text = |var, default: &str| env.optional(var).unwrap_or_else(|| default.to_owned());
        let api_base_url = env
            .required("API_BASE_URL")?
            .parse::<reqwest::Url>()
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or(EnvError::Invalid {
                var: "API_BASE_URL",
                expected: "an http(s) URL such as http://api:8000",
            })?;
        let dry_run = env.parse_or("BOT_DRY_RUN", false, "true or false")?;
        let database_pool_size = env.database_pool_size()?;
        let prefetch = env.positive("BOT_PREFETCH", 16, "a number from 1 to 65535")?;
        let destination = match (env.optional("DISCORD_WEBHOOK_URL"), dry_run) {
            (None, false) => return Err(ConfigError::NoDestination),
            (Some(_), true) => return Err(ConfigError::BothDestinations),
            (None, true) => Destination::DryRun,
            (Some(_), false) => {
                let url = env.url(
                    "DISCORD_WEBHOOK_URL",
                    &["http", "https"],
                    "a webhook URL such as https://discord.com/api/webhooks/<id>/<token>",
                )?;
                if reqwest::Url::parse(url.expose_secret()).is_err() {
                    return Err(EnvError::Invalid {
                        var: "DISCORD_WEBHOOK_URL",
                        expected: "a webhook URL such as https://discord.com/api/webhooks/<id>/<token>",
                    }
                    .into());
                }
                Destination::Discord(url)
            }
        };
        Ok(Self {
            listen_addr: env.listen_addr("BOT_LISTEN_ADDR", 8002)?,
            rabbitmq_url: env.rabbitmq_url()?,
            database_url: env.database_url()?,
            database_pool_size,
            api_base_url,
            destination,
            notifications_exchange: text(
                "NOTIFICATIONS_EXCHANGE",
                events::DEFAULT_NOTIFICATIONS_EXCHANGE,
            ),
            queue: text("BOT_QUEUE", events::DEFAULT_BOT_QUEUE),
            prefetch,
            concurrency: env.concurrency(
                "BOT_CONCURRENCY",
                8,
                prefetch,
                database_pool_size,
                "a number from 1 to BOT_PREFETCH, below DATABASE_POOL_SIZE",
            )?,
            faults: Faults {
                webhook_failure: Fault::percent(env, "FAULT_WEBHOOK_FAILURE_PERCENT")?,
                webhook_rate_limit: Fault::percent(env, "FAULT_WEBHOOK_RATE_LIMIT_PERCENT")?,
                api_timeout: Fault::percent(env, "FAULT_API_TIMEOUT_PERCENT")?,
            },
            max_attempts: env.parse_or("BOT_MAX_ATTEMPTS", 5, "a whole number of attempts")?,
            retry_backoff: Duration::from_millis(env.parse_or(
                "BOT_RETRY_BACKOFF_MS",
                500,
                "a whole number of milliseconds",
            )?),
            retention: env.retention()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 3] = [
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/gamenight",
        ),
        ("API_BASE_URL", "http://127.0.0.1:8000"),
    ];

    fn config(extra: &'static [(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        Config::from(&Env::from_lookup(|var: &str| {
            REQUIRED
                .iter()
                .chain(extra)
                .find(|(name, _)| *name == var)
                .map(|(_, value)| (*value).to_owned())
        }))
    }

    #[test]
    fn without_a_webhook_or_dry_run_the_bot_refuses_to_start_naming_both() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err, ConfigError::NoDestination);
        let message = err.to_string();
        assert!(message.contains("DISCORD_WEBHOOK_URL"), "{message}");
        assert!(message.contains("BOT_DRY_RUN=true"), "{message}");
        // Explicitly off is still neither.
        assert_eq!(
            config(&[("BOT_DRY_RUN", "false")]).unwrap_err(),
            ConfigError::NoDestination
        );
    }

    #[test]
    fn dry_run_is_turned_on_by_name() {
        let config = config(&[("BOT_DRY_RUN", "true")]).unwrap();
        assert!(matches!(config.destination, Destination::DryRun));
    }

    #[test]
    fn a_webhook_and_dry_run_together_are_refused() {
        let err = config(&[
            ("BOT_DRY_RUN", "true"),
            (
                "DISCORD_WEBHOOK_URL",
                "https://discord.test/api/webhooks/1/t",
            ),
        ])
        .unwrap_err();
        assert_eq!(err, ConfigError::BothDestinations);
    }

    #[test]
    fn a_webhook_is_a_discord_destination() {
        let config = config(&[(
            "DISCORD_WEBHOOK_URL",
            "https://discord.test/api/webhooks/1/t",
        )])
        .unwrap();
        assert!(matches!(config.destination, Destination::Discord(_)));
    }

    #[test]
    fn the_database_is_required() {
        let err = Config::from(&Env::from_pairs(&[
            ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("API_BASE_URL", "http://127.0.0.1:8000"),
            ("BOT_DRY_RUN", "true"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Env(EnvError::Missing {
                var: "DATABASE_URL"
            })
        );
    }
}

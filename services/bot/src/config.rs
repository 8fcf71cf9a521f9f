//! Settings of the `bot` service, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use service_runtime::env::{Env, EnvError};

/// Settings of the `bot` service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Health server (`BOT_LISTEN_ADDR`, default `0.0.0.0:8002`).
    pub listen_addr: SocketAddr,
    /// RabbitMQ (`RABBITMQ_URL`, required). Holds a password.
    pub rabbitmq_url: SecretString,
    /// Base URL of the api, where games are fetched (`API_BASE_URL`,
    /// required), e.g. `http://api:8000`.
    pub api_base_url: reqwest::Url,
    /// Discord webhook (`DISCORD_WEBHOOK_URL`). Its path holds the webhook's
    /// token: a secret, never logged or exported. Unset: dry-run mode, where
    /// messages are logged instead of sent.
    pub discord_webhook_url: Option<SecretString>,
    /// Exchange notifications arrive on (`NOTIFICATIONS_EXCHANGE`).
    pub notifications_exchange: String,
    /// The bot's durable queue (`BOT_QUEUE`).
    pub queue: String,
    /// Unacked notifications RabbitMQ may push at once (`BOT_PREFETCH`,
    /// default 8).
    pub prefetch: u16,
    /// Attempts per notification before it is dead-lettered (or, when the
    /// api is down, put back on the queue) (`BOT_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry delay, doubling per attempt (`BOT_RETRY_BACKOFF_MS`,
    /// default 500); also the cap base for Discord's `Retry-After`.
    pub retry_backoff: Duration,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &[
        "BOT_LISTEN_ADDR",
        "RABBITMQ_URL",
        "API_BASE_URL",
        "DISCORD_WEBHOOK_URL",
        "NOTIFICATIONS_EXCHANGE",
        "BOT_QUEUE",
        "BOT_PREFETCH",
        "BOT_MAX_ATTEMPTS",
        "BOT_RETRY_BACKOFF_MS",
    ];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
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
        let discord_webhook_url = match env.optional("DISCORD_WEBHOOK_URL") {
            None => None,
            Some(_) => {
                let url = env.url(
                    "DISCORD_WEBHOOK_URL",
                    &["http", "https"],
                    "a webhook URL such as https://discord.com/api/webhooks/<id>/<token>",
                )?;
                if reqwest::Url::parse(url.expose_secret()).is_err() {
                    return Err(EnvError::Invalid {
                        var: "DISCORD_WEBHOOK_URL",
                        expected: "a webhook URL such as https://discord.com/api/webhooks/<id>/<token>",
                    });
                }
                Some(url)
            }
        };
        Ok(Self {
            listen_addr: env.listen_addr("BOT_LISTEN_ADDR", 8002)?,
            rabbitmq_url: env.rabbitmq_url()?,
            api_base_url,
            discord_webhook_url,
            notifications_exchange: text(
                "NOTIFICATIONS_EXCHANGE",
                events::DEFAULT_NOTIFICATIONS_EXCHANGE,
            ),
            queue: text("BOT_QUEUE", events::DEFAULT_BOT_QUEUE),
            prefetch: env.parse_or("BOT_PREFETCH", 8, "a number from 1 to 65535")?,
            max_attempts: env.parse_or("BOT_MAX_ATTEMPTS", 5, "a whole number of attempts")?,
            retry_backoff: Duration::from_millis(env.parse_or(
                "BOT_RETRY_BACKOFF_MS",
                500,
                "a whole number of milliseconds",
            )?),
        })
    }
}

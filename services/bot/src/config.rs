//! The `bot` command line: its settings, each an option also set by its
//! environment variable (`bot --help` lists them), and its subcommands.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{ArgMatches, Args, FromArgMatches};
use service_runtime::config::{
    ConfigError, ConsumerConfig, ConsumerVars, DatabaseConfig, RabbitMqConfig, RetentionConfig,
    SecretUrl, ServiceConfig,
};
use service_runtime::fault::Fault;

/// What `bot --help` says the bot is.
pub const ABOUT: &str = "Delivers notifications to a Discord webhook.";

/// Settings of the `bot` service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Where `/healthz` and `/readyz` are served.
    #[command(flatten)]
    pub listen: Listen,
    /// PostgreSQL, where each delivery is recorded so that a redelivered
    /// notification is not posted twice. The pool must exceed the
    /// concurrency: each notification in hand holds a connection for its
    /// delivery claim.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// RabbitMQ.
    #[command(flatten)]
    pub rabbitmq: RabbitMqConfig,
    /// Base URL of the api, where games are fetched.
    #[arg(long, env = "API_BASE_URL", value_parser = http_url)]
    pub api_base_url: reqwest::Url,
    /// Where messages go: `DISCORD_WEBHOOK_URL`, or nowhere with
    /// `BOT_DRY_RUN=true`.
    #[command(flatten)]
    pub destination: Destination,
    /// Exchange notifications arrive on.
    #[arg(long, env = "NOTIFICATIONS_EXCHANGE", default_value = events::DEFAULT_NOTIFICATIONS_EXCHANGE)]
    pub notifications_exchange: String,
    /// The bot's durable queue; dead letters go to `<queue>.dlq`.
    #[arg(long = "bot-queue", env = "BOT_QUEUE", default_value = events::DEFAULT_BOT_QUEUE)]
    pub queue: String,
    /// How notifications are consumed (`BOT_PREFETCH`, `BOT_CONCURRENCY`,
    /// `BOT_MAX_ATTEMPTS`, `BOT_RETRY_BACKOFF_MS`). When the api is down a
    /// notification is put back on the queue instead of counting an
    /// attempt; the backoff is also the cap base for Discord's
    /// `Retry-After` and the first wait to record a delivery.
    ///
    /// The order of the queue is not needed: each notification is posted
    /// once whatever the order (its delivery claim in PostgreSQL), and one
    /// about a game cancelled meanwhile is skipped by the game's status,
    /// not by its place in the queue. What can differ is the order in which
    /// two notifications of one game due at nearly the same moment reach
    /// Discord, as it already could with several bots or a redelivery.
    #[command(flatten)]
    pub consumer: ConsumerConfig<Bot>,
    /// Minutes after its due time a notification may still be posted
    /// (1 to 10080, a week). Older, it is recorded `expired` and not
    /// posted: news of a game nobody can act on any more. An announcement
    /// or a reminder also expires when its game starts.
    #[arg(
        long = "notification-max-age-minutes",
        env = "NOTIFICATION_MAX_AGE_MINUTES",
        default_value = "60",
        value_parser = minutes(7 * 24 * 60),
    )]
    pub notification_max_age: Duration,
    /// How long delivery records are kept; a redelivery after that would
    /// post again.
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

impl ServiceConfig for Config {
    fn check(&self) -> Result<(), ConfigError> {
        self.consumer.check(self.database.database_pool_size)
    }
}

/// The bot's consumer variables.
#[derive(Debug, Clone)]
pub struct Bot;

impl ConsumerVars for Bot {
    const PREFETCH: &'static str = "BOT_PREFETCH";
    const CONCURRENCY: &'static str = "BOT_CONCURRENCY";
    const MAX_ATTEMPTS: &'static str = "BOT_MAX_ATTEMPTS";
    const RETRY_BACKOFF_MS: &'static str = "BOT_RETRY_BACKOFF_MS";
}

/// Where the health server listens: all `bot healthcheck` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Listen {
    /// Address of the bot's `/healthz` and `/readyz`.
    #[arg(
        long = "bot-listen-addr",
        env = "BOT_LISTEN_ADDR",
        default_value = "0.0.0.0:8002"
    )]
    pub addr: SocketAddr,
}

/// The bot's fault switches (RUNTIME_CONFIG.md, "Fault switches"): each
/// fires on a share of the calls it guards, 0–100 percent.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Fault switches")]
pub struct Faults {
    /// Percentage of webhook calls that "answer" 503 Service Unavailable
    /// (in dry run too); nothing is posted, the bot retries.
    #[arg(long, env = WEBHOOK_FAILURE, value_parser = Fault::percent(WEBHOOK_FAILURE))]
    pub webhook_failure: Option<Fault>,
    /// Percentage of webhook calls that "answer" 429 Too Many Requests with
    /// `Retry-After: 1`; the bot waits and retries.
    #[arg(long, env = WEBHOOK_RATE_LIMIT, value_parser = Fault::percent(WEBHOOK_RATE_LIMIT))]
    pub webhook_rate_limit: Option<Fault>,
    /// Percentage of calls to the api for the game that time out (after the
    /// client's 10 s); the bot retries.
    #[arg(long, env = API_TIMEOUT, value_parser = Fault::percent(API_TIMEOUT))]
    pub api_timeout: Option<Fault>,
}

const WEBHOOK_FAILURE: &str = "FAULT_WEBHOOK_FAILURE_PERCENT";
const WEBHOOK_RATE_LIMIT: &str = "FAULT_WEBHOOK_RATE_LIMIT_PERCENT";
const API_TIMEOUT: &str = "FAULT_API_TIMEOUT_PERCENT";

/// Where the bot sends messages: exactly one of `DISCORD_WEBHOOK_URL` and
/// `BOT_DRY_RUN=true`, never a silent dry run (a deploy that forgot the
/// webhook would drop every message).
#[derive(Debug, Clone)]
pub enum Destination {
    /// A Discord webhook (`DISCORD_WEBHOOK_URL`). Its path holds the
    /// webhook's token: a secret, never logged or exported.
    Discord(SecretUrl),
    /// Dry run (`BOT_DRY_RUN=true`): each message is logged, not sent.
    DryRun,
}

/// The two variables, as declared; [`Destination`] is what they mean.
#[derive(Debug, Clone, clap::Args)]
struct DestinationVars {
    /// Discord webhook the messages go to (the bot adds `?wait=true`). Its
    /// path holds the webhook's token: never logged or exported. Required
    /// unless BOT_DRY_RUN=true.
    #[arg(
        long,
        env = "DISCORD_WEBHOOK_URL",
        hide_env_values = true,
        value_parser = SecretUrl::parser(
            &["http", "https"],
            "a webhook URL such as https://discord.com/api/webhooks/<id>/<token>",
        ),
    )]
    discord_webhook_url: Option<SecretUrl>,
    /// `true`: log each message instead of posting it. Exactly one of
    /// DISCORD_WEBHOOK_URL and BOT_DRY_RUN=true must be set.
    #[arg(long, env = "BOT_DRY_RUN", default_value_t = false, action = clap::ArgAction::Set)]
    bot_dry_run: bool,
}

impl Args for Destination {
    fn group_id() -> Option<clap::Id> {
        DestinationVars::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        DestinationVars::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        DestinationVars::augment_args_for_update(cmd)
    }
}

impl FromArgMatches for Destination {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let vars = DestinationVars::from_arg_matches(matches)?;
        match (vars.discord_webhook_url, vars.bot_dry_run) {
            (Some(url), false) => Ok(Self::Discord(url)),
            (None, true) => Ok(Self::DryRun),
            (None, false) => Err(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "DISCORD_WEBHOOK_URL is not set: set it to post to Discord, or set BOT_DRY_RUN=true to log messages without sending them",
            )),
            (Some(_), true) => Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                "DISCORD_WEBHOOK_URL is set and BOT_DRY_RUN=true: set one of the two",
            )),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// A whole number of minutes, from 1 to `max`.
fn minutes(max: u64) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(1..=max)
        .map(|minutes| Duration::from_secs(minutes * 60))
}

/// An http(s) URL with a host. Not a secret: clap's message may show it.
fn http_url(value: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(value.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| "expected an http(s) URL such as http://api:8000".to_owned())
}

/// What `bot` can do besides running (its default).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Exit 0 if the running bot answers on /healthz (for container
    /// HEALTHCHECKs).
    Healthcheck(Listen),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use service_runtime::cli::from_vars;

    const REQUIRED: [(&str, &str); 3] = [
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/gamenight",
        ),
        ("API_BASE_URL", "http://127.0.0.1:8000"),
    ];

    fn config(extra: &[(&str, &str)]) -> Result<Config, clap::Error> {
        from_vars(REQUIRED.iter().chain(extra).copied())
    }

    #[test]
    fn without_a_webhook_or_dry_run_the_bot_refuses_to_start_naming_both() {
        for extra in [&[][..], &[("BOT_DRY_RUN", "false")]] {
            let err = config(extra).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
            let message = err.to_string();
            assert!(message.contains("DISCORD_WEBHOOK_URL"), "{message}");
            assert!(message.contains("BOT_DRY_RUN=true"), "{message}");
        }
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
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_webhook_is_a_discord_destination() {
        let config = config(&[(
            "DISCORD_WEBHOOK_URL",
            "https://discord.test/api/webhooks/1/t",
        )])
        .unwrap();
        let Destination::Discord(url) = config.destination else {
            panic!("not Discord: {:?}", config.destination);
        };
        assert_eq!(url.expose_secret().path(), "/api/webhooks/1/t");
    }

    #[test]
    fn a_malformed_webhook_is_refused_by_name_without_echoing_its_token() {
        for bad in [
            "discord.test/api/webhooks/1/tok3n-marker",
            "ftp://h/tok3n-marker",
        ] {
            let err = config(&[("DISCORD_WEBHOOK_URL", bad)]).unwrap_err();
            let shown = format!("{err}{err:?}");
            assert!(shown.contains("DISCORD_WEBHOOK_URL is invalid"), "{shown}");
            assert!(!shown.contains("tok3n-marker"), "{shown}");
        }
    }

    #[test]
    fn the_database_and_the_api_are_required() {
        for missing in ["DATABASE_URL", "API_BASE_URL"] {
            let vars = REQUIRED
                .iter()
                .filter(|(var, _)| *var != missing)
                .chain(&[("BOT_DRY_RUN", "true")])
                .copied();
            let err = from_vars::<Config>(vars).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn the_consumer_reads_the_bot_variables_and_its_rules() {
        let dry_run = ("BOT_DRY_RUN", "true");
        let consumer = config(&[dry_run, ("BOT_PREFETCH", "4"), ("BOT_CONCURRENCY", "2")])
            .unwrap()
            .consumer;
        assert_eq!(consumer.prefetch, 4);
        assert_eq!(consumer.concurrency, 2);
        // The default concurrency, 8, is more than RabbitMQ would hand out.
        let err = config(&[dry_run, ("BOT_PREFETCH", "4"), ("WORKER_CONCURRENCY", "2")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BOT_CONCURRENCY is invalid: expected a number from 1 to BOT_PREFETCH"),
            "{err}"
        );
    }
}

//! The settings every service shares, declared once as clap argument
//! groups that each service flattens into its own `Config`.
//!
//! Every setting is an option (`--database-url`) that its environment
//! variable (`DATABASE_URL`) sets too; `<service> --help` lists them all with
//! their defaults. Values are parsed here, once: a service holds a
//! `SocketAddr`, `PgConnectOptions`, a `Url` or a `Duration`, never a string
//! to parse later with another error.
//!
//! Secrets (a URL with a password, a webhook's token) are parsed by
//! [`DatabaseUrl::parser`] and [`SecretUrl::parser`], whose errors name the
//! variable and never repeat the value: clap's own "invalid value '…'"
//! message would, so no secret goes through a plain `value_parser` function.

use std::ffi::OsStr;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use secrecy::{ExposeSecret, SecretString};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use url::Url;

/// A rule across settings is broken. The message names the variables and
/// repeats no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A service's settings: a clap group, and the rules across its fields that
/// clap cannot state.
pub trait ServiceConfig: clap::Args + clap::FromArgMatches {
    /// `Err` naming the variables when a rule across them is broken; by
    /// default, there is none.
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// `DATABASE_URL`, parsed: PostgreSQL's connection options. A secret (it
/// holds a password): its `Debug` shows only where it points.
#[derive(Clone)]
pub struct DatabaseUrl(PgConnectOptions);

impl DatabaseUrl {
    /// The value parser of a PostgreSQL URL (`postgres://` or
    /// `postgresql://`); its error names the variable, never the value.
    pub fn parser() -> SecretParser<Self> {
        SecretParser {
            schemes: &["postgres", "postgresql"],
            expected: "a URL such as postgres://user:password@host:5432/database",
            from_url: |url| PgConnectOptions::from_url(&url).ok().map(Self),
        }
    }
}

impl ExposeSecret<PgConnectOptions> for DatabaseUrl {
    fn expose_secret(&self) -> &PgConnectOptions {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PgConnectOptions' own Debug prints the password.
        write!(
            f,
            "DatabaseUrl(postgres://{}:{}/{})",
            self.0.get_host(),
            self.0.get_port(),
            self.0.get_database().unwrap_or_default()
        )
    }
}

/// A URL that holds a secret (a password, a webhook's token), parsed. Its
/// `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// The value parser of a URL with a host whose scheme is one of
    /// `schemes`; its error names the variable and says `expected`, never
    /// the value.
    pub fn parser(schemes: &'static [&'static str], expected: &'static str) -> SecretParser<Self> {
        SecretParser {
            schemes,
            expected,
            from_url: |url| Some(Self(url)),
        }
    }

    /// The URL as a [`SecretString`], for clients that take text.
    pub fn to_secret_string(&self) -> SecretString {
        SecretString::from(self.0.as_str())
    }
}

impl ExposeSecret<Url> for SecretUrl {
    fn expose_secret(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(<redacted>)")
    }
}

/// The value parser of a URL that holds a secret: a URL with a host, whose
/// scheme is one of `schemes`, made a `T` by `from_url`. Its error names
/// the variable and says what is expected, and never holds the value
/// (clap's `invalid value '…'` message would).
#[derive(Debug, Clone)]
pub struct SecretParser<T> {
    schemes: &'static [&'static str],
    expected: &'static str,
    from_url: fn(Url) -> Option<T>,
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for SecretParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let url = value
            .to_str()
            .and_then(|value| Url::parse(value.trim()).ok());
        url.filter(|url| self.schemes.contains(&url.scheme()) && url.has_host())
            .and_then(self.from_url)
            .ok_or_else(|| {
                // The variable: see telemetry::config::name_values_by_variable.
                let var = arg.and_then(|arg| arg.get_value_names()?.first());
                let var = var.map_or("a setting", |var| var.as_str());
                let message = format!("{var} is invalid: expected {}\n", self.expected);
                clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd)
            })
    }
}

/// PostgreSQL.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL, one database for every service's tables. Holds a
    /// password: never logged.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = DatabaseUrl::parser())]
    pub database_url: DatabaseUrl,
    /// Most connections kept open to PostgreSQL, opened as needed; a query
    /// waits at most 5 s for one.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub database_pool_size: u32,
}

/// RabbitMQ.
#[derive(Debug, Clone, clap::Args)]
pub struct RabbitMqConfig {
    /// RabbitMQ. Holds a password: never logged.
    #[arg(
        long,
        env = "RABBITMQ_URL",
        hide_env_values = true,
        value_parser = SecretUrl::parser(&["amqp", "amqps"], "a URL such as amqp://user:password@host:5672/%2f"),
    )]
    pub rabbitmq_url: SecretUrl,
}

/// How long done rows are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionConfig {
    /// Hours done rows (published events, applied event ids, sent
    /// notifications, delivery records) are kept before a sweep deletes
    /// them; at least 1, at most 876000 (a century).
    #[arg(long = "retention-hours", env = "RETENTION_HOURS", default_value = "168", value_parser = hours())]
    pub retention: Duration,
}

/// The variables of one service's consumer settings: the worker's are
/// `WORKER_PREFETCH`…, the bot's `BOT_PREFETCH`…
pub trait ConsumerVars: Clone + fmt::Debug + Send + Sync + 'static {
    /// Unacked messages RabbitMQ may push at once.
    const PREFETCH: &'static str;
    /// Messages handled at once.
    const CONCURRENCY: &'static str;
    /// Attempts per message.
    const MAX_ATTEMPTS: &'static str;
    /// First retry delay, in milliseconds.
    const RETRY_BACKOFF_MS: &'static str;
}

/// How a service consumes its queue, declared once for the worker and the
/// bot, whose variables differ by prefix (`V`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerConfig<V: ConsumerVars> {
    /// Unacked messages RabbitMQ may push at once; at least 1.
    #[arg(long, env = V::PREFETCH, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Messages handled at once: from 1 to the prefetch, below
    /// DATABASE_POOL_SIZE (each message in hand may hold a connection, and
    /// the service's other work needs one too).
    #[arg(long, env = V::CONCURRENCY, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Attempts per message before it is dead-lettered; a dependency that
    /// is down never counts.
    #[arg(long, env = V::MAX_ATTEMPTS, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubling per attempt.
    #[arg(long = "retry-backoff-ms", env = V::RETRY_BACKOFF_MS, default_value = "500", value_parser = millis())]
    pub retry_backoff: Duration,
    #[arg(skip)]
    _vars: PhantomData<V>,
}

impl<V: ConsumerVars> ConsumerConfig<V> {
    /// The concurrency is at most the prefetch (RabbitMQ hands out no more)
    /// and below `pool_size`: each message in hand may hold a database
    /// connection, and the service's other work needs one too.
    pub fn check(&self, pool_size: u32) -> Result<(), ConfigError> {
        if self.concurrency > self.prefetch || u32::from(self.concurrency) >= pool_size {
            return Err(ConfigError(format!(
                "{} is invalid: expected a number from 1 to {}, below DATABASE_POOL_SIZE",
                V::CONCURRENCY,
                V::PREFETCH,
            )));
        }
        Ok(())
    }
}

/// A whole number of milliseconds.
pub fn millis() -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64).map(Duration::from_millis)
}

/// A whole number of seconds.
pub fn seconds() -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64).map(Duration::from_secs)
}

/// A whole number of hours, from 1 to [`MAX_HOURS`].
pub fn hours() -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(1..=MAX_HOURS)
        .map(Duration::from_hours)
}

/// A century: more than anyone keeps rows for, and an interval PostgreSQL
/// can subtract from `now()`.
pub const MAX_HOURS: u64 = 876_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::from_vars;

    #[derive(Debug, Clone)]
    struct TestVars;

    impl ConsumerVars for TestVars {
        const PREFETCH: &'static str = "X_PREFETCH";
        const CONCURRENCY: &'static str = "X_CONCURRENCY";
        const MAX_ATTEMPTS: &'static str = "X_MAX_ATTEMPTS";
        const RETRY_BACKOFF_MS: &'static str = "X_RETRY_BACKOFF_MS";
    }

    #[derive(Debug, Clone, clap::Args)]
    struct Test {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        rabbitmq: RabbitMqConfig,
        #[command(flatten)]
        retention: RetentionConfig,
        #[command(flatten)]
        consumer: ConsumerConfig<TestVars>,
    }

    impl ServiceConfig for Test {
        fn check(&self) -> Result<(), ConfigError> {
            self.consumer.check(self.database.database_pool_size)
        }
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://u:pw@db:5433/gamenight"),
        ("RABBITMQ_URL", "amqp://guest:guest@mq:5672/%2f"),
    ];

    fn parse(extra: &[(&str, &str)]) -> Result<Test, clap::Error> {
        from_vars(REQUIRED.iter().chain(extra).copied())
    }

    /// What an error says, as a person and a log would see it.
    fn shown(err: &clap::Error) -> String {
        format!("{err}\n{err:?}")
    }

    #[test]
    fn defaults_fill_everything_but_the_servers() {
        let config = parse(&[]).unwrap();
        let options = config.database.database_url.expose_secret();
        assert_eq!((options.get_host(), options.get_port()), ("db", 5433));
        assert_eq!(config.database.database_pool_size, 10);
        assert_eq!(
            config.rabbitmq.rabbitmq_url.expose_secret().host_str(),
            Some("mq")
        );
        assert_eq!(config.retention.retention, Duration::from_secs(168 * 3600));
        assert_eq!(config.consumer.prefetch, 16);
        assert_eq!(config.consumer.concurrency, 8);
        assert_eq!(config.consumer.max_attempts, 5);
        assert_eq!(config.consumer.retry_backoff, Duration::from_millis(500));
    }

    #[test]
    fn a_missing_server_is_named() {
        for missing in ["DATABASE_URL", "RABBITMQ_URL"] {
            let vars = REQUIRED.iter().filter(|(var, _)| *var != missing).copied();
            let err = from_vars::<Test>(vars).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn a_malformed_secret_is_named_and_never_echoed() {
        const MARKER: &str = "hunter2-marker";
        for (var, value) in [
            ("DATABASE_URL", format!("mysql://root:{MARKER}@db/x")),
            ("DATABASE_URL", format!("postgres://root:{MARKER}@")),
            ("DATABASE_URL", format!("{MARKER} is no url")),
            ("RABBITMQ_URL", format!("http://guest:{MARKER}@mq")),
            ("RABBITMQ_URL", format!("amqp://guest:{MARKER}@")),
        ] {
            let vars = REQUIRED
                .iter()
                .map(|&(k, v)| (k, if k == var { value.as_str() } else { v }));
            let err = from_vars::<Test>(vars).unwrap_err();
            let shown = shown(&err);
            assert!(
                shown.contains(&format!("{var} is invalid")),
                "{var}: {shown}"
            );
            assert!(!shown.contains(MARKER), "{var} echoed: {shown}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn a_secrets_debug_shows_where_it_points_and_no_password() {
        let config = parse(&[]).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw"), "{debug}");
        assert!(!debug.contains("guest"), "{debug}");
        assert!(debug.contains("postgres://db:5433/gamenight"), "{debug}");
    }

    #[test]
    fn retention_is_never_zero_or_garbage() {
        assert_eq!(
            parse(&[("RETENTION_HOURS", "2")])
                .unwrap()
                .retention
                .retention,
            Duration::from_secs(7200)
        );
        for bad in ["0", "-1", "a week", "876001", "18446744073709551615"] {
            let err = parse(&[("RETENTION_HOURS", bad)]).unwrap_err();
            assert!(err.to_string().contains("RETENTION_HOURS"), "{err}");
        }
    }

    #[test]
    fn the_pool_size_is_never_zero_or_garbage() {
        for bad in ["0", "-1", "ten", "2.5"] {
            let err = parse(&[("DATABASE_POOL_SIZE", bad)]).unwrap_err();
            assert!(err.to_string().contains("DATABASE_POOL_SIZE"), "{err}");
        }
    }

    #[test]
    fn concurrency_is_at_most_the_prefetch_and_below_the_pool_size() {
        let concurrency = |concurrency, prefetch, pool_size| {
            parse(&[
                ("X_CONCURRENCY", concurrency),
                ("X_PREFETCH", prefetch),
                ("DATABASE_POOL_SIZE", pool_size),
            ])
            .map(|config| config.consumer.concurrency)
        };
        assert_eq!(concurrency("16", "16", "17").unwrap(), 16);
        for (value, prefetch, pool_size) in [("17", "16", "100"), ("10", "16", "10")] {
            let err = concurrency(value, prefetch, pool_size).unwrap_err();
            assert_eq!(
                err.to_string().lines().next().unwrap_or_default(),
                "error: X_CONCURRENCY is invalid: expected a number from 1 to X_PREFETCH, below DATABASE_POOL_SIZE",
                "{value} with prefetch {prefetch} and pool {pool_size}"
            );
        }
        for bad in ["0", "many"] {
            let err = concurrency(bad, "16", "10").unwrap_err();
            assert!(err.to_string().contains("X_CONCURRENCY"), "{err}");
        }
    }
}

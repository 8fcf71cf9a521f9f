//! Typed environment variables. Every error names the variable; none repeats
//! its value, which may be a credential (`DATABASE_URL` holds a password).

use std::net::SocketAddr;
use std::str::FromStr;

use secrecy::SecretString;

/// A variable is missing or cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is unset or empty.
    #[error("{var} is not set")]
    Missing {
        /// The variable's name.
        var: &'static str,
    },
    /// A variable is set to something of the wrong shape.
    #[error("{var} is invalid: expected {expected}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// What a valid value looks like.
        expected: &'static str,
    },
}

/// Reads variables through a lookup function, so tests need not touch the
/// process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env<F> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: |key| std::env::var(key).ok(),
        }
    }
}

/// A boxed variable lookup, for [`Env::from_pairs`].
pub type Lookup = Box<dyn Fn(&str) -> Option<String>>;

impl Env<Lookup> {
    /// Exactly these variables: for tests and examples.
    pub fn from_pairs(pairs: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            lookup: Box::new(move |key| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            }),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Variables as `lookup` returns them.
    pub fn from_lookup(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `var`, treating an empty value as unset.
    pub fn optional(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|value| !value.trim().is_empty())
    }

    /// The value of `var`, which must be set.
    pub fn required(&self, var: &'static str) -> Result<String, EnvError> {
        self.optional(var).ok_or(EnvError::Missing { var })
    }

    /// `var` parsed as `T`, or `default` parsed when unset.
    ///
    /// `expected` describes a valid value for the error message.
    pub fn parse_or<T: FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, EnvError> {
        match self.optional(var) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| EnvError::Invalid { var, expected }),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A required URL whose scheme is one of `schemes` (`postgres`), kept
    /// secret because URLs carry passwords; `example` shows a valid one in
    /// the error message.
    pub fn url(
        &self,
        var: &'static str,
        schemes: &[&str],
        example: &'static str,
    ) -> Result<SecretString, EnvError> {
        let value = self.required(var)?;
        let valid = value
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if !valid {
            return Err(EnvError::Invalid {
                var,
                expected: example,
            });
        }
        Ok(SecretString::from(value))
    }

    /// `var` parsed as a whole number of at least 1, or `default` when unset.
    pub fn positive<T: FromStr + PartialEq + From<u8>>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, EnvError> {
        let value = self.parse_or(var, default, expected)?;
        if value == T::from(0) {
            return Err(EnvError::Invalid { var, expected });
        }
        Ok(value)
    }

    /// How long done rows (published events, applied event ids, sent
    /// notifications) are kept before a sweep deletes them:
    /// `RETENTION_HOURS`, default a week, at least an hour.
    pub fn retention(&self) -> Result<std::time::Duration, EnvError> {
        let hours = self.positive(
            "RETENTION_HOURS",
            168u64,
            "a whole number of hours, at least 1",
        )?;
        Ok(std::time::Duration::from_secs(hours * 3600))
    }

    /// `DATABASE_POOL_SIZE`: the most connections the service keeps open to
    /// PostgreSQL, default 10, at least 1.
    pub fn database_pool_size(&self) -> Result<u32, EnvError> {
        self.positive(
            "DATABASE_POOL_SIZE",
            10,
            "a whole number of connections, at least 1",
        )
    }

    /// How many messages a consumer handles at once: `var`, `default` when
    /// unset. At least 1, at most `prefetch` (RabbitMQ hands out no more),
    /// and below `pool_size`: each message in hand may hold a database
    /// connection, and the service's other work needs one too. `expected`
    /// says so, naming the service's variables.
    pub fn concurrency(
        &self,
        var: &'static str,
        default: u16,
        prefetch: u16,
        pool_size: u32,
        expected: &'static str,
    ) -> Result<u16, EnvError> {
        let concurrency = self.positive(var, default, expected)?;
        if concurrency > prefetch || u32::from(concurrency) >= pool_size {
            return Err(EnvError::Invalid { var, expected });
        }
        Ok(concurrency)
    }

    /// `DATABASE_URL`: PostgreSQL.
    pub fn database_url(&self) -> Result<SecretString, EnvError> {
        self.url(
            "DATABASE_URL",
            &["postgres", "postgresql"],
            "a URL such as postgres://user:password@host:5432/database",
        )
    }

    /// `REDIS_URL`: Redis.
    pub fn redis_url(&self) -> Result<SecretString, EnvError> {
        self.url(
            "REDIS_URL",
            &["redis", "rediss"],
            "a URL such as redis://host:6379",
        )
    }

    /// `RABBITMQ_URL`: RabbitMQ.
    pub fn rabbitmq_url(&self) -> Result<SecretString, EnvError> {
        self.url(
            "RABBITMQ_URL",
            &["amqp", "amqps"],
            "a URL such as amqp://user:password@host:5672/%2f",
        )
    }

    /// A listen address from `var`, or all interfaces on `default_port`.
    pub fn listen_addr(
        &self,
        var: &'static str,
        default_port: u16,
    ) -> Result<SocketAddr, EnvError> {
        self.parse_or(
            var,
            SocketAddr::from(([0, 0, 0, 0], default_port)),
            "a socket address such as 0.0.0.0:8000",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<Lookup> {
        Env::from_pairs(pairs)
    }

    #[test]
    fn retention_is_a_week_by_default_and_never_zero() {
        let week = std::time::Duration::from_secs(168 * 3600);
        assert_eq!(env(&[]).retention(), Ok(week));
        assert_eq!(
            env(&[("RETENTION_HOURS", "2")]).retention(),
            Ok(std::time::Duration::from_secs(7200))
        );
        for bad in ["0", "-1", "a week"] {
            let env = Env::from_lookup(|var| (var == "RETENTION_HOURS").then(|| bad.to_owned()));
            assert_eq!(
                env.retention().unwrap_err().to_string(),
                "RETENTION_HOURS is invalid: expected a whole number of hours, at least 1"
            );
        }
    }

    #[test]
    fn the_pool_size_is_ten_by_default_and_never_zero_or_garbage() {
        assert_eq!(env(&[]).database_pool_size(), Ok(10));
        assert_eq!(
            env(&[("DATABASE_POOL_SIZE", "32")]).database_pool_size(),
            Ok(32)
        );
        for bad in ["0", "-1", "ten", "2.5"] {
            let env = Env::from_lookup(|var| (var == "DATABASE_POOL_SIZE").then(|| bad.to_owned()));
            assert_eq!(
                env.database_pool_size().unwrap_err().to_string(),
                "DATABASE_POOL_SIZE is invalid: expected a whole number of connections, at least 1"
            );
        }
    }

    #[test]
    fn concurrency_is_at_most_the_prefetch_and_below_the_pool_size() {
        const EXPECTED: &str = "1 to X_PREFETCH, below DATABASE_POOL_SIZE";
        let concurrency = |value: &'static str, prefetch, pool_size| {
            Env::from_lookup(move |var| (var == "X_CONCURRENCY").then(|| value.to_owned()))
                .concurrency("X_CONCURRENCY", 8, prefetch, pool_size, EXPECTED)
        };
        assert_eq!(concurrency("", 16, 10), Ok(8), "the default");
        assert_eq!(concurrency("16", 16, 17), Ok(16));
        let invalid = Err(EnvError::Invalid {
            var: "X_CONCURRENCY",
            expected: EXPECTED,
        });
        for (value, prefetch, pool_size) in [
            ("0", 16, 10),
            ("many", 16, 10),
            ("17", 16, 100),
            ("10", 16, 10),
        ] {
            assert_eq!(
                concurrency(value, prefetch, pool_size),
                invalid,
                "{value} with prefetch {prefetch} and pool {pool_size}"
            );
        }
    }

    #[test]
    fn unset_and_empty_variables_take_the_default() {
        let default: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        for env in [env(&[]), env(&[("ADDR", "  ")])] {
            assert_eq!(env.parse_or("ADDR", default, "host:port"), Ok(default));
        }
    }

    #[test]
    fn listen_addresses_default_to_all_interfaces() {
        assert_eq!(
            env(&[]).listen_addr("ADDR", 8001),
            Ok(SocketAddr::from(([0, 0, 0, 0], 8001)))
        );
        assert_eq!(
            env(&[("ADDR", "127.0.0.1:9")]).listen_addr("ADDR", 8001),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
    }

    #[test]
    fn a_set_variable_is_parsed() {
        let env = env(&[("ADDR", "127.0.0.1:9000")]);
        let addr: SocketAddr = env
            .parse_or("ADDR", "0.0.0.0:1".parse().unwrap(), "host:port")
            .unwrap();
        assert_eq!(addr, "127.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn errors_name_the_variable_but_never_echo_the_value() {
        let env = env(&[
            ("DATABASE_URL", "postgres://u:hunter2@db"),
            ("ADDR", "hunter2"),
        ]);
        let err = env
            .parse_or::<SocketAddr>("ADDR", "0.0.0.0:1".parse().unwrap(), "host:port")
            .unwrap_err();
        assert_eq!(err.to_string(), "ADDR is invalid: expected host:port");
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(
            env.required("REDIS_URL").unwrap_err().to_string(),
            "REDIS_URL is not set"
        );
    }
}

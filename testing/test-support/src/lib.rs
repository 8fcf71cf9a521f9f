//! Helpers for integration tests against real servers.
//!
//! Every test isolates itself: its own database ([`fresh_database`]), its own
//! exchanges and queues ([`TestBroker`]) and Redis key prefix
//! ([`unique_name`]), and removes them when it ends, pass or fail. Names
//! carry the time they were made, so [`sweep`] can remove what a killed run
//! left behind. Outages are made with a [`TcpProxy`] in front of the real
//! server, never by stopping a server other tests share. [`FakeDiscord`]
//! stands in for the one thing that cannot run here: Discord.

mod discord;
pub mod docs;
mod proxy;
pub mod sweep;

use std::future::Future;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use discord::{FakeDiscord, Received, Reply, RouteLimit, Stats};
pub use proxy::TcpProxy;
use sqlx::Connection;

/// PostgreSQL server for tests: `DATABASE_URL` or the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis server for tests: `REDIS_URL` or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// RabbitMQ server for tests: `RABBITMQ_URL` or the local default.
pub fn rabbitmq_url() -> String {
    std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `prefix` followed by a stamp no other test (or earlier run) uses: the
/// Unix time in seconds, `_`, and 8 random hex digits, such as
/// `gamenight_test_1764638212_9f3a1c2b`. [`sweep`] reads the time back to
/// tell a killed run's leftovers from a running one's.
pub fn unique_name(prefix: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{now}_{}", &random[..8])
}

/// Runs `future` to completion on a runtime of its own, on a thread of its
/// own, and returns its output: callable from `Drop`, inside an async test
/// (whose runtime may be single-threaded and cannot block on itself) or
/// outside any runtime.
pub fn run_to_completion<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for cleanup")
                    .block_on(future)
            })
            .join()
            .expect("the cleanup thread does not panic")
    })
}

/// A database of one test's own, dropped (with any connection still open
/// to it) when this value is: keep it alive as long as the test uses it.
#[derive(Debug)]
#[must_use = "the database is dropped with this value"]
pub struct TestDatabase {
    url: String,
}

impl TestDatabase {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its URL, the database no longer dropped with this value: for a
    /// caller that removes it another way ([`drop_database`]).
    pub fn keep(mut self) -> String {
        std::mem::take(&mut self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.url.is_empty() {
            return; // kept
        }
        if let Err(err) = run_to_completion(drop_database(&self.url)) {
            // Not a panic: it may be unwinding already. The sweep removes
            // it. The name only: the URL may hold a password.
            eprintln!(
                "cannot drop test database {}: {err}",
                database_name(&self.url)
            );
        }
    }
}

/// Creates an empty database on the [`database_url`] server, named
/// `gamenight_test_` and a [`unique_name`] stamp.
///
/// # Panics
/// When the server cannot be reached: the test cannot run without it.
pub async fn fresh_database() -> TestDatabase {
    fresh_database_named("gamenight_test_").await
}

/// Like [`fresh_database`], with names starting with `prefix`.
///
/// # Panics
/// When the server cannot be reached.
pub async fn fresh_database_named(prefix: &str) -> TestDatabase {
    let server = database_url();
    let name = unique_name(prefix);
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at DATABASE_URL for tests: {err}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
    TestDatabase {
        url: with_database(&server, &name),
    }
}

/// Drops the database `url` names, even with connections still open
/// (`WITH (FORCE)`).
///
/// Returns `Err` when the server cannot be reached or refuses.
pub async fn drop_database(url: &str) -> Result<(), sqlx::Error> {
    let name = database_name(url);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(sqlx::Error::Configuration(
            format!("not a database name this helper created: {name:?}").into(),
        ));
    }
    let mut admin = sqlx::PgConnection::connect(&with_database(url, "postgres")).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

/// The exchanges and queues one test's services declare on the
/// [`rabbitmq_url`] server, deleted when this value is dropped.
///
/// Services declare their topology durable, as production needs; this is
/// what keeps a test's copy from outliving the test.
#[derive(Debug, Default)]
#[must_use = "the exchanges and queues are deleted with this value"]
pub struct TestBroker {
    exchanges: Mutex<Vec<String>>,
    queues: Mutex<Vec<String>>,
}

impl TestBroker {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A [`unique_name`] for an exchange, deleted with `self`.
    pub fn exchange(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        lock(&self.exchanges).push(name.clone());
        name
    }

    /// A [`unique_name`] for a queue, deleted with `self`, as are the
    /// dead-letter queue and exchange the broker crate declares beside it
    /// (`<queue>.dlq`, `<queue>.dlx`).
    pub fn queue(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        lock(&self.queues).extend([name.clone(), format!("{name}.dlq")]);
        lock(&self.exchanges).push(format!("{name}.dlx"));
        name
    }

    /// Deletes everything named so far (names that were never declared
    /// are no error).
    ///
    /// Returns `Err` when RabbitMQ cannot be reached or refuses.
    pub async fn delete(&self) -> Result<(), lapin::Error> {
        let queues = std::mem::take(&mut *lock(&self.queues));
        let exchanges = std::mem::take(&mut *lock(&self.exchanges));
        sweep::delete_on_rabbitmq(&rabbitmq_url(), &queues, &exchanges).await
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Err(err) = run_to_completion(self.delete()) {
            eprintln!("cannot delete a test's exchanges and queues: {err}");
        }
    }
}

fn lock<T>(names: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    names
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The database `url` names (its path, without the query).
fn database_name(url: &str) -> &str {
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    base.rsplit_once('/').map_or("", |(_, name)| name)
}

/// `url` with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut result = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_or_added() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "t1"),
            "postgres://h/t1?sslmode=disable"
        );
    }

    #[test]
    fn unique_names_differ_and_carry_their_time() {
        assert_ne!(unique_name("q."), unique_name("q."));
        let name = unique_name("q.");
        assert!(name.starts_with("q."));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let made = sweep::made_at(&name).expect("a stamp");
        assert!(now - made < 5, "{name}");
    }
}

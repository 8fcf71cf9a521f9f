//! Helpers for integration tests against real servers.
//!
//! Every test isolates itself: its own database ([`fresh_database`]), its own
//! exchange, queue and Redis key prefix ([`unique_name`]). Outages are made
//! with a [`TcpProxy`] in front of the real server, never by stopping a
//! server other tests share. [`FakeDiscord`] stands in for the one thing
//! that cannot run here: Discord.

mod discord;
pub mod docs;
mod proxy;

pub use discord::{FakeDiscord, Received, Reply};
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

/// `prefix` followed by a random suffix: a name no other test (or earlier
/// run) uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Creates an empty database on the [`database_url`] server and returns its
/// URL. Names start with `gamenight_test_`; they are left behind for
/// inspection; every name is new, so reruns never collide.
///
/// # Panics
/// When the server cannot be reached: the test cannot run without it.
pub async fn fresh_database() -> String {
    fresh_database_named("gamenight_test_").await
}

/// Like [`fresh_database`], with names starting with `prefix`.
///
/// # Panics
/// When the server cannot be reached.
pub async fn fresh_database_named(prefix: &str) -> String {
    let server = database_url();
    let name = unique_name(prefix);
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at DATABASE_URL for tests: {err}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
    with_database(&server, &name)
}

/// Drops the database `url` names, even with connections still open
/// (`WITH (FORCE)`): for runs that clean up after themselves, unlike tests.
///
/// Returns `Err` when the server cannot be reached or refuses.
pub async fn drop_database(url: &str) -> Result<(), sqlx::Error> {
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    let name = base.rsplit_once('/').map_or("", |(_, name)| name);
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
    fn unique_names_differ() {
        assert_ne!(unique_name("q."), unique_name("q."));
        assert!(unique_name("q.").starts_with("q."));
    }
}

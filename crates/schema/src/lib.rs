//! The PostgreSQL side every service shares: the schema, as migrations built
//! into the binary, and how a service connects.
//!
//! One migration set for the whole database: sqlx keeps a single history
//! table per database, so services sharing the database share the set.

pub mod retention;

use std::time::Duration;

use opentelemetry::metrics::Meter;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use telemetry::db::DbClient;
use telemetry::spans::Peer;

/// The migrations under `crates/schema/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool of at most `size` connections as `options` say (`DATABASE_URL`,
/// parsed by the service's configuration) that connects on first use
/// (PostgreSQL may still be starting), and the traced client its queries go
/// through.
///
/// A query waits at most 5 s for a connection, then fails, instead of
/// queueing forever while PostgreSQL is down.
pub fn connect_lazy(options: &PgConnectOptions, size: u32, meter: &Meter) -> (PgPool, DbClient) {
    let db = DbClient::new(
        "postgresql",
        Peer::new(options.get_host(), options.get_port()),
        meter,
    );
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone());
    (pool, db)
}

/// True when PostgreSQL answers `SELECT 1` through `pool`.
pub async fn is_ready(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// Versions of the migrations built into this binary that `pool`'s database
/// has not applied successfully: all of them before the first `api migrate`
/// (no history table yet). It only reads, so the services' role may ask
/// (`api migrate --wait`, the init container on Kubernetes).
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // undefined_table: nothing applied yet.
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P01") => Vec::new(),
            Err(err) => return Err(err),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}

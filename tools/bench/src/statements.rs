//! What PostgreSQL ran for one run's database, from `pg_stat_statements`:
//! statements and round trips per game, and where the database's time went.
//!
//! The extension counts only when the server loads it
//! (`shared_preload_libraries = 'pg_stat_statements'`, then a restart); a
//! server without it gives no statement figures, and the run says how to get
//! them. The per-process CPU figures do not need it.

use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, PgConnection};

/// How to make the server count statements, for the tables' notes.
pub(crate) const HOW_TO_LOAD: &str = "statement counts need `shared_preload_libraries = \
     'pg_stat_statements'` in postgresql.conf and a restart of PostgreSQL";

/// The statements of one database, counted from the last [`Counter::reset`].
#[derive(Debug)]
pub(crate) struct Counter {
    connection: PgConnection,
}

/// One normalized statement and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    /// The text, whitespace folded, parameters as `$n`.
    pub(crate) query: String,
    pub(crate) calls: u64,
    /// Time planning (when `pg_stat_statements.track_planning` is on) and
    /// executing it, all calls.
    pub(crate) time: Duration,
}

impl Counter {
    /// A counter for the database at `url`, or `None` when the server does
    /// not load `pg_stat_statements`.
    ///
    /// Returns `Err` when the database cannot be reached, or the extension
    /// cannot be created in it (it takes a superuser).
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Option<Self>> {
        let mut connection = PgConnection::connect(url)
            .await
            .context("cannot connect to the run's database")?;
        let loaded: String =
            sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
                .fetch_one(&mut connection)
                .await
                .context("cannot read shared_preload_libraries")?;
        if !loaded
            .split(',')
            .any(|library| library.trim() == "pg_stat_statements")
        {
            return Ok(None);
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut connection)
            .await
            .context("cannot create the pg_stat_statements extension (it takes a superuser)")?;
        Ok(Some(Self { connection }))
    }

    /// Forgets what this database ran so far.
    pub(crate) async fn reset(&mut self) -> anyhow::Result<()> {
        sqlx::query(
            "SELECT pg_stat_statements_reset(0, \
             (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
        )
        .execute(&mut self.connection)
        .await
        .context("cannot reset pg_stat_statements")?;
        Ok(())
    }

    /// What this database ran since the last reset, the costliest first;
    /// this counter's own statements left out.
    pub(crate) async fn read(&mut self) -> anyhow::Result<Vec<Statement>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT query, calls, total_plan_time + total_exec_time FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND query NOT LIKE '%pg_stat_statements%' \
             ORDER BY 3 DESC",
        )
        .fetch_all(&mut self.connection)
        .await
        .context("cannot read pg_stat_statements")?;
        Ok(rows
            .into_iter()
            .map(|(query, calls, millis)| Statement {
                query: query.split_whitespace().collect::<Vec<_>>().join(" "),
                calls: u64::try_from(calls).unwrap_or(0),
                time: Duration::from_secs_f64(millis.max(0.0) / 1e3),
            })
            .collect())
    }
}

/// Rows this database's tables have returned to sequential scans so far
/// (`pg_stat_user_tables`, which PostgreSQL updates about once a second):
/// on a queue table, a plan that scans it whole instead of using its index.
pub(crate) async fn rows_scanned(url: &str) -> anyhow::Result<i64> {
    let mut connection = PgConnection::connect(url)
        .await
        .context("cannot connect to the run's database")?;
    sqlx::query_scalar("SELECT COALESCE(sum(seq_tup_read), 0)::bigint FROM pg_stat_user_tables")
        .fetch_one(&mut connection)
        .await
        .context("cannot read pg_stat_user_tables")
}

/// Calls of every statement together: the round trips to PostgreSQL, as
/// each call is one (sqlx sends no pipelines).
pub(crate) fn calls(statements: &[Statement]) -> u64 {
    statements.iter().map(|statement| statement.calls).sum()
}

/// Calls of `BEGIN` and `COMMIT`/`ROLLBACK`: two per transaction.
pub(crate) fn transaction_calls(statements: &[Statement]) -> u64 {
    statements
        .iter()
        .filter(|statement| {
            let verb = statement.query.split_whitespace().next().unwrap_or("");
            ["BEGIN", "COMMIT", "ROLLBACK"]
                .iter()
                .any(|control| verb.eq_ignore_ascii_case(control))
        })
        .map(|statement| statement.calls)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(query: &str, calls: u64) -> Statement {
        Statement {
            query: query.to_owned(),
            calls,
            time: Duration::ZERO,
        }
    }

    #[test]
    fn round_trips_are_every_call_and_transactions_are_counted_by_their_ends() {
        let statements = [
            statement("BEGIN", 10),
            statement("INSERT INTO games VALUES ($1)", 10),
            statement("commit", 9),
            statement("ROLLBACK", 1),
            statement("SELECT 1", 5),
        ];
        assert_eq!(calls(&statements), 35);
        assert_eq!(transaction_calls(&statements), 20);
    }

    #[tokio::test]
    async fn a_database_counts_its_own_statements_or_says_the_server_cannot() {
        let database = test_support::fresh_database().await;
        // Without the library loaded: no counter, and no error either.
        let Some(mut counter) = Counter::connect(database.url()).await.unwrap() else {
            return;
        };
        counter.reset().await.unwrap();
        let mut other = PgConnection::connect(database.url()).await.unwrap();
        for _ in 0..3 {
            sqlx::query("SELECT $1::int")
                .bind(1)
                .execute(&mut other)
                .await
                .unwrap();
        }
        let statements = counter.read().await.unwrap();
        assert_eq!(
            statements
                .iter()
                .find(|s| s.query == "SELECT $1::int")
                .map(|s| s.calls),
            Some(3),
            "{statements:?}"
        );
    }
}

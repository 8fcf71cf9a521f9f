//! One query through [`DbClient`] with telemetry set up: the CLIENT span
//! `SELECT pg_database` and a `db.client.operation.duration` point go out
//! over OTLP, and the log line shows the trace id on stdout.
//!
//! ```sh
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p telemetry --features sqlx --example sqlx
//! ```
//!
//! A failure is reported as the span and the log line report it: by
//! [`DbError::error_type`] and [`DbError::describe`], never by the error's
//! `Display`, which may name the server.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use telemetry::db::{DbClient, DbError};
use telemetry::spans::Peer;

/// The statement, given once: the span is named `SELECT pg_database` from it.
const COUNT_DATABASES: &str = "SELECT count(*) FROM pg_database";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init(telemetry::Service::new(
        "sqlx-example",
        env!("CARGO_PKG_VERSION"),
    ))?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    // The URL may hold a password: the error does not repeat it.
    let options: PgConnectOptions = url
        .parse()
        .map_err(|_| "DATABASE_URL is not a postgres:// URL")?;
    let db = DbClient::new(
        "postgresql",
        Peer::new(options.get_host(), options.get_port()),
        &opentelemetry::global::meter("sqlx-example"),
    );
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);

    let counted = db
        .run(
            COUNT_DATABASES,
            sqlx::query_scalar::<_, i64>(COUNT_DATABASES).fetch_one(&pool),
        )
        .await;
    let outcome = match counted {
        Ok(databases) => {
            tracing::info!(databases, "counted the databases");
            Ok(())
        }
        Err(err) => {
            tracing::error!(
                error.type = %err.error_type(),
                error = %err.describe(),
                "the query failed"
            );
            Err(err.describe().into_owned().into())
        }
    };
    pool.close().await;
    // Flush last, so the span and the duration point are exported.
    telemetry.shutdown().await;
    outcome
}

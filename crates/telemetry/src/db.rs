//! Database calls as CLIENT spans plus the `db.client.operation.duration`
//! histogram, for any driver: wrap the driver's future in [`DbClient::run`].
//!
//! The statement is given once: its operation and table (span name,
//! `db.operation.name`, `db.collection.name`) are read from it
//! ([`Statement`]). A failure is named by the driver's [`DbError`]: a
//! low-cardinality `error.type` and a description that is safe to export,
//! never the error's `Display`, which for some drivers names the server.
//! With the `sqlx` feature, `sqlx::Error` is a [`DbError`] that classifies by
//! SQLSTATE.

use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use tracing::Instrument;

use crate::spans::{Peer, db_span, record_failure};

#[cfg(feature = "sqlx")]
mod sqlx;
mod statement;

pub use statement::Statement;

/// Bucket boundaries (seconds) the database conventions advise for
/// `db.client.operation.duration`.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// A database driver's error, classified once for spans, logs and the
/// decision to retry: every service asks the error, none inspects it.
pub trait DbError: std::error::Error {
    /// A low-cardinality name for `error.type` and log fields: a SQLSTATE
    /// when the server answered one, else the kind of failure.
    fn error_type(&self) -> Cow<'static, str>;

    /// What went wrong, safe to export in a span status, a log line or a
    /// message header: never a host, URL or credential.
    fn describe(&self) -> Cow<'_, str>;

    /// The connection died, or could not be opened, before the work on it
    /// was committed: the server rolled the transaction back, so running it
    /// again on another connection applies it exactly once.
    ///
    /// Only true of failures *before* COMMIT: when COMMIT itself fails the
    /// change may have been applied, and it must not be retried.
    fn is_dropped_connection(&self) -> bool;

    /// The database is away (restarting, unreachable, or no pooled
    /// connection came free in time) rather than the work at fault: wait
    /// and try again, and do not count it against the work.
    fn is_transient(&self) -> bool;
}

/// One database server as seen by its client: who it is for spans, and the
/// histogram every call is recorded in.
#[derive(Debug, Clone)]
pub struct DbClient {
    system: &'static str,
    peer: Peer,
    duration: Histogram<f64>,
}

impl DbClient {
    /// `system` is the `db.system.name` (`postgresql`); `peer` the server.
    pub fn new(system: &'static str, peer: Peer, meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram(metric::DB_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        Self {
            system,
            peer,
            duration,
        }
    }

    /// Runs `call`, the driver's execution of `statement`, inside a CLIENT
    /// span named `{operation} {collection}` (read from `statement`, see
    /// [`Statement`]) and records its duration.
    ///
    /// `statement` must hold placeholders, never values. A failed call marks
    /// the span as an error with the error's [`DbError::error_type`] and
    /// [`DbError::describe`].
    pub async fn run<T, E, F>(&self, statement: &'static str, call: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: DbError,
    {
        let Statement {
            operation,
            collection,
        } = Statement::parse(statement);
        let span = db_span(self.system, operation, collection, statement, &self.peer);
        let start = Instant::now();
        let result = call.instrument(span.clone()).await;
        let mut attributes = vec![
            KeyValue::new(semconv::DB_SYSTEM_NAME, self.system),
            KeyValue::new(semconv::DB_OPERATION_NAME, operation),
        ];
        if let Some(collection) = collection {
            attributes.push(KeyValue::new(semconv::DB_COLLECTION_NAME, collection));
        }
        if let Err(err) = &result {
            let error_type = err.error_type();
            record_failure(&span, &error_type, &err.describe());
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
        }
        self.duration
            .record(start.elapsed().as_secs_f64(), &attributes);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{attr, capture};
    use opentelemetry::metrics::MeterProvider as _;

    /// A driver error whose `Display` holds what must never be exported.
    #[derive(Debug, thiserror::Error)]
    #[error("connection to db.internal.example:5432 reset")]
    struct Reset;

    impl DbError for Reset {
        fn error_type(&self) -> Cow<'static, str> {
            Cow::Borrowed("io")
        }
        fn describe(&self) -> Cow<'_, str> {
            Cow::Borrowed("connection reset")
        }
        fn is_dropped_connection(&self) -> bool {
            true
        }
        fn is_transient(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_failed_call_is_an_error_span_with_its_type_and_safe_description() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("test");
        let client = DbClient::new("postgresql", Peer::new("db", 5432), &meter);
        let spans = capture(|| {
            let result: Result<(), Reset> = futures_executor_block_on(
                client.run("SELECT id FROM games WHERE id = $1", async { Err(Reset) }),
            );
            assert!(result.is_err());
        });
        assert_eq!(spans[0].name, "SELECT games");
        assert_eq!(attr(&spans[0], "db.operation.name"), Some("SELECT".into()));
        assert_eq!(attr(&spans[0], "db.collection.name"), Some("games".into()));
        assert_eq!(attr(&spans[0], "error.type"), Some("io".into()));
        assert_eq!(
            spans[0].status,
            opentelemetry::trace::Status::error("connection reset")
        );
    }

    #[test]
    fn a_statement_without_a_table_names_the_span_by_its_operation() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("test");
        let client = DbClient::new("postgresql", Peer::new("db", 5432), &meter);
        let spans = capture(|| {
            let result: Result<(), Reset> =
                futures_executor_block_on(client.run("COMMIT", async { Ok(()) }));
            assert!(result.is_ok());
        });
        assert_eq!(spans[0].name, "COMMIT");
        assert_eq!(attr(&spans[0], "db.collection.name"), None);
        assert_eq!(spans[0].status, opentelemetry::trace::Status::Unset);
    }

    fn futures_executor_block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}

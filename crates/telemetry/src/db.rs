//! Database calls as CLIENT spans plus the `db.client.operation.duration`
//! histogram, for any driver: wrap the driver's future in [`DbClient::run`].

use std::future::Future;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use tracing::Instrument;

use crate::spans::{Peer, db_span, record_error};

/// Bucket boundaries (seconds) the database conventions advise for
/// `db.client.operation.duration`.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

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

    /// Runs one database call inside a CLIENT span named
    /// `{operation} {collection}` and records its duration.
    ///
    /// `query_text` must hold placeholders, never values. A failed call
    /// marks the span as an error; `error.type` is the error's type name.
    pub async fn run<T, E, F>(
        &self,
        operation: &'static str,
        collection: Option<&'static str>,
        query_text: &'static str,
        call: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: std::error::Error,
    {
        let span = db_span(self.system, operation, collection, query_text, &self.peer);
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
            let error_type = short_type_name::<E>();
            record_error(&span, error_type, err);
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
        }
        self.duration
            .record(start.elapsed().as_secs_f64(), &attributes);
        result
    }
}

/// `sqlx::Error` → `Error`: low-cardinality and free of generics noise.
fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let without_generics = full.split('<').next().unwrap_or(full);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{attr, capture};
    use opentelemetry::metrics::MeterProvider as _;

    #[test]
    fn type_names_are_shortened() {
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(
            short_type_name::<std::num::ParseIntError>(),
            "ParseIntError"
        );
    }

    #[test]
    fn a_failed_call_is_an_error_span_with_its_type() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("test");
        let client = DbClient::new("postgresql", Peer::new("db", 5432), &meter);
        let spans = capture(|| {
            let result: Result<(), std::io::Error> =
                futures_executor_block_on(client.run("SELECT", Some("games"), "SELECT 1", async {
                    Err(std::io::Error::other("connection reset"))
                }));
            assert!(result.is_err());
        });
        assert_eq!(spans[0].name, "SELECT games");
        assert_eq!(attr(&spans[0], "error.type"), Some("Error".into()));
        assert_eq!(
            spans[0].status,
            opentelemetry::trace::Status::error("connection reset")
        );
    }

    fn futures_executor_block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}

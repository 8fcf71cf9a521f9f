//! An in-process OTLP receiver for tests: it serves OTLP/gRPC and
//! OTLP/HTTP (protobuf) on ephemeral ports, records every span, metric and log
//! record it is sent, and lets a test wait for what it expects.
//!
//! ```no_run
//! # async fn test() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = otlp_testkit::Receiver::start().await?;
//! // point the code under test at receiver.http_endpoint() or receiver.grpc_endpoint()
//! let span = receiver.wait_for_span("GET /games/{id}").await?;
//! println!("{}", receiver.trace(&span.trace_id()));
//! # Ok(()) }
//! ```
//!
//! On the wire it answers like a collector: protobuf bodies only (415
//! otherwise), 400 for a body that does not decode, gzip request bodies
//! accepted on both transports, and [`Receiver::fail_next`] makes it refuse
//! exports with 503 / `UNAVAILABLE` to exercise retries.
//!
//! # Layout
//! - `lib.rs`: the [`Receiver`] and its queries.
//! - `server`: the two transports.
//! - `model`: flattened views of the recorded data ([`Span`], [`Trace`], ...).
//! - [`pyroscope`]: a stand-in for Pyroscope's push API, which decodes the
//!   pprof profiles an agent pushes, for tests of profiling.
//! - [`StuckServer`]: a peer that accepts connections and never answers.

mod model;
pub mod pyroscope;
mod server;
mod stuck;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use model::{AnyValueExt, LogRecord, Metric, Span, Trace, has_str_attributes, str_attribute};
pub use opentelemetry_proto::tonic as proto;
pub use stuck::StuckServer;

/// How long the `wait_for_*` helpers wait before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a wait gave up on.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}")]
pub struct Timeout {
    what: String,
    timeout: Duration,
}

/// How many items of each signal arrived, kept or not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Spans.
    pub spans: usize,
    /// Metrics (one per metric per export).
    pub metrics: usize,
    /// Log records.
    pub logs: usize,
}

/// Everything received so far.
#[derive(Debug, Default)]
struct Recorded {
    /// False for a counting receiver: exports are decoded and counted, and
    /// nothing else is kept.
    keep: bool,
    counts: Counts,
    spans: Vec<Span>,
    metrics: Vec<Metric>,
    logs: Vec<LogRecord>,
    /// Export requests per transport, answered or refused.
    grpc_requests: usize,
    http_requests: usize,
    /// Headers (gRPC metadata) of every export request, in arrival order.
    request_headers: Vec<http::HeaderMap>,
    /// Export requests still to refuse (see [`Receiver::fail_next`]).
    fail_next: usize,
}

/// State shared by the receiver handle and its servers.
#[derive(Debug)]
struct Shared {
    recorded: Mutex<Recorded>,
    /// Bumped after every export request, so waiters re-check their condition
    /// instead of sleeping.
    changes: watch::Sender<u64>,
}

impl Shared {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        // A panicking test thread cannot leave the data half-written: every
        // update is a push. Keep going with what is there.
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }
}

/// A running OTLP receiver. Dropping it stops both servers.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    grpc_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
    _servers: server::Servers,
}

impl Receiver {
    /// Starts the gRPC and HTTP servers on ephemeral ports of 127.0.0.1.
    ///
    /// Returns `Err` when a port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into()).await
    }

    /// Like [`Receiver::start`], but keeps only [`Receiver::counts`]: a
    /// healthy collector for load runs, whose memory does not grow with the
    /// spans it is sent. The queries that return items find none.
    ///
    /// Returns `Err` when a port cannot be bound.
    pub async fn start_counting() -> std::io::Result<Self> {
        Self::start_with(
            false,
            ([127, 0, 0, 1], 0).into(),
            ([127, 0, 0, 1], 0).into(),
        )
        .await
    }

    /// Starts the gRPC server on `grpc_addr` and the HTTP server on
    /// `http_addr` (port 0 picks a free port).
    ///
    /// Returns `Err` when an address cannot be bound.
    pub async fn start_on(
        grpc_addr: std::net::SocketAddr,
        http_addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        Self::start_with(true, grpc_addr, http_addr).await
    }

    async fn start_with(
        keep: bool,
        grpc_addr: std::net::SocketAddr,
        http_addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            recorded: Mutex::new(Recorded {
                keep,
                ..Recorded::default()
            }),
            changes,
        });
        let (servers, grpc_addr, http_addr) =
            server::Servers::start(shared.clone(), grpc_addr, http_addr).await?;
        Ok(Self {
            shared,
            grpc_addr,
            http_addr,
            _servers: servers,
        })
    }

    /// `http://127.0.0.1:<port>` of the OTLP/gRPC server.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<port>` of the OTLP/HTTP server (signal paths
    /// `/v1/traces`, `/v1/metrics`, `/v1/logs` below it).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// How many spans, metrics and log records arrived so far (refused
    /// exports not counted).
    pub fn counts(&self) -> Counts {
        self.shared.recorded().counts
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.shared.recorded().spans.clone()
    }

    /// Every metric received so far, one entry per metric per export.
    pub fn metrics(&self) -> Vec<Metric> {
        self.shared.recorded().metrics.clone()
    }

    /// What counter `name` had counted for the points carrying every
    /// `(key, string value)` of `attributes`, as of its last export: the
    /// total, since the SDK exports sums cumulatively.
    pub fn counter_total(&self, name: &str, attributes: &[(&str, &str)]) -> Option<i64> {
        self.metrics()
            .iter()
            .filter(|metric| metric.name() == name)
            .flat_map(Metric::sum_points)
            .filter(|point| has_str_attributes(&point.attributes, attributes))
            .filter_map(|point| match point.value {
                Some(proto::metrics::v1::number_data_point::Value::AsInt(total)) => Some(total),
                _ => None,
            })
            .next_back()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.shared.recorded().logs.clone()
    }

    /// Log records carrying trace id `trace_id` (lowercase hex).
    pub fn logs_with_trace_id(&self, trace_id: &str) -> Vec<LogRecord> {
        self.logs()
            .into_iter()
            .filter(|log| log.trace_id().as_deref() == Some(trace_id))
            .collect()
    }

    /// Export requests received so far over gRPC and over HTTP, including
    /// refused ones: zero on both proves nothing was sent.
    pub fn request_counts(&self) -> (usize, usize) {
        let recorded = self.shared.recorded();
        (recorded.grpc_requests, recorded.http_requests)
    }

    /// Headers of every export request so far (gRPC metadata as headers), to
    /// check authentication and compression.
    pub fn request_headers(&self) -> Vec<http::HeaderMap> {
        self.shared.recorded().request_headers.clone()
    }

    /// Refuses the next `count` export requests, on either transport, as a
    /// collector under pressure does: HTTP 503, gRPC `UNAVAILABLE`.
    pub fn fail_next(&self, count: usize) {
        self.shared.recorded().fail_next = count;
    }

    /// All spans of trace `trace_id`, as a tree.
    pub fn trace(&self, trace_id: &str) -> Trace {
        Trace::new(
            self.spans()
                .into_iter()
                .filter(|span| span.trace_id() == trace_id)
                .collect(),
        )
    }

    /// Waits until a span named `name` has arrived and returns the first one.
    pub async fn wait_for_span(&self, name: &str) -> Result<Span, Timeout> {
        self.wait_for_span_where(&format!("a span named {name:?}"), |span| {
            span.name() == name
        })
        .await
    }

    /// Waits until a span for which `matches` holds has arrived and returns
    /// the first one; `what` describes it in the timeout.
    pub async fn wait_for_span_where(
        &self,
        what: &str,
        matches: impl Fn(&Span) -> bool,
    ) -> Result<Span, Timeout> {
        self.wait_for(what, |recorded| {
            recorded.spans.iter().find(|span| matches(span)).cloned()
        })
        .await
    }

    /// Waits until trace `trace_id` holds at least `count` spans.
    pub async fn wait_for_trace(&self, trace_id: &str, count: usize) -> Result<Trace, Timeout> {
        self.wait_for(&format!("{count} spans in trace {trace_id}"), |recorded| {
            let spans: Vec<Span> = recorded
                .spans
                .iter()
                .filter(|span| span.trace_id() == trace_id)
                .cloned()
                .collect();
            (spans.len() >= count).then(|| Trace::new(spans))
        })
        .await
    }

    /// Waits until a metric named `name` has arrived and returns the latest
    /// export of it.
    pub async fn wait_for_metric(&self, name: &str) -> Result<Metric, Timeout> {
        self.wait_for(&format!("a metric named {name:?}"), |recorded| {
            recorded
                .metrics
                .iter()
                .rev()
                .find(|metric| metric.name() == name)
                .cloned()
        })
        .await
    }

    /// Waits until a log record with trace id `trace_id` whose body contains
    /// `text` has arrived.
    pub async fn wait_for_log(&self, trace_id: &str, text: &str) -> Result<LogRecord, Timeout> {
        self.wait_for(
            &format!("a log record in trace {trace_id} containing {text:?}"),
            |recorded| {
                recorded
                    .logs
                    .iter()
                    .find(|log| {
                        log.trace_id().as_deref() == Some(trace_id)
                            && log.body_text().contains(text)
                    })
                    .cloned()
            },
        )
        .await
    }

    /// Waits, up to [`DEFAULT_TIMEOUT`], until `found` returns `Some`,
    /// checking again after every export request.
    pub async fn wait_for_condition<T>(
        &self,
        what: &str,
        found: impl FnMut(&[Span], &[Metric], &[LogRecord]) -> Option<T>,
    ) -> Result<T, Timeout> {
        let mut found = found;
        self.wait_for(what, |recorded| {
            found(&recorded.spans, &recorded.metrics, &recorded.logs)
        })
        .await
    }

    async fn wait_for<T>(
        &self,
        what: &str,
        mut found: impl FnMut(&Recorded) -> Option<T>,
    ) -> Result<T, Timeout> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            // Mark the current version seen before looking, so an export that
            // lands after the check still wakes us.
            changes.borrow_and_update();
            if let Some(value) = found(&self.shared.recorded()) {
                return Ok(value);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self`, so it cannot be gone; treat it
                // like a timeout rather than spin.
                Ok(Err(_)) | Err(_) => {
                    return Err(Timeout {
                        what: what.to_owned(),
                        timeout: DEFAULT_TIMEOUT,
                    });
                }
            }
        }
    }
}

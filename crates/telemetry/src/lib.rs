//! OpenTelemetry for a Rust service, set up by one call: traces, metrics and
//! logs exported over OTLP, configured by the standard `OTEL_*` variables,
//! and a guard that flushes them at exit.
//!
//! # Quick start
//!
//! ```
//! #[tokio::main]
//! async fn main() -> Result<(), telemetry::InitError> {
//! #   // Export off, so the doctest needs no collector and ends at once.
//! #   // SAFETY: nothing reads the environment meanwhile: the runtime's
//! #   // worker threads are idle, and this is the doctest's only task.
//! #   unsafe { std::env::set_var("OTEL_SDK_DISABLED", "true") };
//!     let guard = telemetry::init(telemetry::Service::new(
//!         env!("CARGO_PKG_NAME"),
//!         env!("CARGO_PKG_VERSION"),
//!     ))?;
//!     tracing::info!("serving"); // a log record, and a console line
//!     // ... serve until asked to stop ...
//!     guard.shutdown().await; // flush spans, metrics and logs (3 s at most)
//!     Ok(())
//! }
//! ```
//!
//! [`init`] reads the standard `OTEL_*` variables, exports traces, metrics and
//! logs over OTLP (gRPC or HTTP/protobuf) and installs a `tracing` subscriber
//! that turns spans into OpenTelemetry spans, events into OpenTelemetry log
//! records, and prints every event to stdout with its trace id. Unset, the
//! variables mean "export everything over HTTP/protobuf to
//! `http://localhost:4318`". An unreachable collector never fails the
//! service: exports are retried in the background and failures logged at a
//! low rate.
//!
//! # Features
//!
//! The core above depends on no web framework, HTTP client or message broker.
//! Transports and integrations are cargo features:
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `grpc` | yes | OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`), on tonic |
//! | `http-proto` | yes | OTLP over HTTP/protobuf (`http/protobuf`, the default protocol), on reqwest's blocking client with rustls |
//! | `axum` | no | `http_server::HttpServerLayer`: SERVER spans and `http.server.request.duration` for axum routers |
//! | `reqwest` | no | `spans::http_client_span`, `spans::send_traced`, `spans::send_traced_to_third_party`: CLIENT spans for reqwest calls |
//! | `sqlx` | no | `db::DbError` for `sqlx::Error` (one classification of database failures), `propagation::StoredContext` as a row type |
//! | `profiling` | no | CPU profiles pushed to Pyroscope (`PYROSCOPE_SERVER_ADDRESS`), with span profiles (the `profiling` module) |
//!
//! A protocol whose transport is not compiled in makes [`init`] fail with
//! [`InitError::TransportNotBuilt`], which names the variable and the
//! feature; so does `PYROSCOPE_SERVER_ADDRESS` without the `profiling`
//! feature ([`InitError::ProfilingNotBuilt`]). The examples (`examples/axum.rs`, `examples/reqwest.rs`,
//! `examples/sqlx.rs`) are each a complete program for one integration.
//!
//! # Layout
//!
//! - [`init`], [`Service`], [`TelemetryGuard`]: set-up and shutdown;
//!   [`Telemetry`] for tests that need several in one process.
//! - [`config`]: what the crate reads from the environment itself.
//! - [`propagation`]: W3C trace context and baggage in HTTP headers, the
//!   shared propagator for other carriers, and [`propagation::StoredContext`]
//!   for context kept in a database until later.
//! - [`spans`]: semantic-convention spans for database, cache, messaging and
//!   (feature `reqwest`) HTTP client calls; [`db`] times database calls.
//! - `http_server` (feature `axum`): a tower layer for HTTP SERVER spans and
//!   the `http.server.request.duration` histogram.
//! - `profiling` (feature `profiling`): continuous CPU profiles for
//!   Pyroscope, each sample of a root span labelled with its span id.

#![deny(missing_docs)]

pub mod config;
mod console;
pub mod db;
mod export;
#[cfg(feature = "axum")]
pub mod http_server;
#[cfg(feature = "profiling")]
pub mod profiling;
pub mod propagation;
mod resource;
pub mod spans;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::noop::NoopMeterProvider;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, filter};

pub use config::{
    BasicAuth, ConfigError, DEFAULT_SAMPLE_RATE, LogFormat, ProfilingConfig, Protocol,
    TelemetryConfig,
};

/// How often the console shows the same OpenTelemetry SDK diagnostic (failed
/// export, dropped spans) at most.
const SDK_DIAGNOSTICS_INTERVAL: Duration = Duration::from_secs(60);

/// The longest [`TelemetryGuard::shutdown`] waits for the last export of all
/// three signals together. Exit must fit in an orchestrator's grace period
/// (`docker stop`: 10 s) after the service has drained its own work, and a
/// healthy collector next to the service takes the last batches in far less.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(3);

/// The service being instrumented: `service.name`, `service.version` and,
/// optionally, `service.namespace`.
///
/// ```
/// const SERVICE: telemetry::Service =
///     telemetry::Service::new("api", "1.2.3").with_namespace("gamenight");
/// assert_eq!(SERVICE.namespace, Some("gamenight"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Service {
    /// `service.name` unless `OTEL_SERVICE_NAME` overrides it.
    pub name: &'static str,
    /// `service.version`, normally `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// `service.namespace`, the group of services this one belongs to, or
    /// `None` for none. Prometheus and Grafana Cloud name a service's job
    /// `<namespace>/<name>` (just `<name>` without one), so dashboards that
    /// select jobs depend on it.
    pub namespace: Option<&'static str>,
}

impl Service {
    /// Names the service; pass `env!("CARGO_PKG_NAME")` and
    /// `env!("CARGO_PKG_VERSION")`. It has no namespace.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            namespace: None,
        }
    }

    /// Puts the service in `namespace` (`service.namespace`).
    /// `OTEL_RESOURCE_ATTRIBUTES` can still override it.
    #[must_use]
    pub const fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = Some(namespace);
        self
    }
}

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// An environment variable holds a value we cannot use.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `RUST_LOG` is not a valid filter.
    #[error("invalid RUST_LOG: {0}")]
    LogFilter(#[from] filter::ParseError),
    /// An OTLP exporter could not be built (for example a malformed endpoint).
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// What the exporter reported.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A signal is to be exported over a protocol whose transport this
    /// build leaves out (see the crate's `grpc` and `http-proto` features).
    #[error(
        "{signal} are to be exported over OTLP {protocol_name} \
         (OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_{signal_upper}_PROTOCOL or the default), \
         but the telemetry crate was built without its `{feature}` feature: \
         enable it, choose another protocol, or set OTEL_{signal_upper}_EXPORTER=none",
        protocol_name = export::protocol_and_feature(*protocol).0,
        feature = export::protocol_and_feature(*protocol).1,
        signal_upper = signal.to_ascii_uppercase(),
    )]
    TransportNotBuilt {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// The protocol the configuration asks for.
        protocol: Protocol,
    },
    /// `PYROSCOPE_SERVER_ADDRESS` asks for profiles, but the crate was built
    /// without its `profiling` feature.
    #[error(
        "PYROSCOPE_SERVER_ADDRESS is set, but the telemetry crate was built without its \
         `profiling` feature: enable it or unset the variable"
    )]
    ProfilingNotBuilt,
    /// The CPU profiler could not be started (a malformed
    /// `PYROSCOPE_SERVER_ADDRESS`, or another profiler in this process).
    #[error("{0}")]
    Profiler(String),
    /// A global `tracing` subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing::dispatcher::SetGlobalDefaultError),
}

/// Reads [`TelemetryConfig::from_env`], builds everything and installs it as
/// the process-wide default. Call it once, at the top of `main`, inside the
/// Tokio runtime (the gRPC exporter needs one).
///
/// Never fails because the collector is unreachable: exports are retried in
/// the background and failures are logged at a low rate.
pub fn init(service: Service) -> Result<TelemetryGuard, InitError> {
    Telemetry::build(service, &TelemetryConfig::from_env()?)?.install()
}

/// The three providers and the `tracing` subscriber that feeds them, built but
/// not yet installed. Tests use one directly through [`Telemetry::dispatch`],
/// so several can live in one process.
#[derive(Debug)]
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    /// `None` when metrics are not exported: an SDK meter provider without a
    /// reader would refuse every observable instrument, loudly.
    meter_provider: Option<SdkMeterProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    #[cfg(feature = "profiling")]
    profiler: Option<profiling::Profiler>,
    dispatch: Dispatch,
}

impl Telemetry {
    /// Builds providers, exporters and a subscriber writing to stdout.
    pub fn build(service: Service, config: &TelemetryConfig) -> Result<Self, InitError> {
        Self::build_with_writer(service, config, std::io::stdout)
    }

    /// Like [`Telemetry::build`], with the console log written to `writer`
    /// (tests pass a buffer or `std::io::sink`).
    pub fn build_with_writer<W>(
        service: Service,
        config: &TelemetryConfig,
        writer: W,
    ) -> Result<Self, InitError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let env_filter = EnvFilter::try_new(&config.log_filter)?;
        let resource = resource::build(service, config);
        #[cfg(feature = "profiling")]
        let profiler = config
            .profiling
            .as_ref()
            .map(|profiling| profiling::Profiler::start(&resource, profiling))
            .transpose()
            .map_err(InitError::Profiler)?;
        #[cfg(not(feature = "profiling"))]
        if config.profiling.is_some() {
            return Err(InitError::ProfilingNotBuilt);
        }

        // Without an exporter the tracer provider still creates spans, so
        // trace context keeps flowing through the service and log lines keep
        // their trace ids; nothing leaves the process.
        let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource.clone());
        if let Some(protocol) = config.signals.traces {
            tracer_provider = export::traces(tracer_provider, protocol, config)?;
        }
        let tracer_provider = tracer_provider.build();

        let meter_provider = config
            .signals
            .metrics
            .map(|protocol| {
                let builder = SdkMeterProvider::builder().with_resource(resource.clone());
                export::metrics(builder, protocol, config).map(|builder| builder.build())
            })
            .transpose()?;
        let logger_provider = config
            .signals
            .logs
            .map(|protocol| {
                let builder = SdkLoggerProvider::builder().with_resource(resource);
                export::logs(builder, protocol, config).map(|builder| builder.build())
            })
            .transpose()?;

        // Spans and events of the exporters' own stack never become
        // telemetry: exporting them would produce more of them.
        let not_sdk = || filter::filter_fn(|metadata| !console::is_sdk_target(metadata.target()));
        let tracer = tracer_provider.tracer(service.name);
        let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
            env_filter.boxed(),
            console::layer(config.log_format, SDK_DIAGNOSTICS_INTERVAL, writer),
            // Only the attributes our spans set themselves. The layer's
            // defaults add eight more to every span, each exported: code
            // location (our span helpers are all created in one file, so it
            // would name that file, not the caller), the thread (a request
            // moves between a runtime's threads), the target, and busy/idle
            // time (two clock reads each time a future is polled).
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(filter::filter_fn(exported))
                .boxed(),
        ];
        // After the OpenTelemetry layer: it reads the context that layer
        // makes current when a span is entered.
        #[cfg(feature = "profiling")]
        if let Some(profiler) = &profiler {
            layers.push(profiler.layer().boxed());
        }
        if let Some(logger_provider) = &logger_provider {
            layers.push(
                OpenTelemetryTracingBridge::new(logger_provider)
                    .with_filter(not_sdk())
                    .boxed(),
            );
        }
        let dispatch = Dispatch::new(Registry::default().with(layers));

        Ok(Self {
            tracer_provider,
            meter_provider,
            logger_provider,
            #[cfg(feature = "profiling")]
            profiler,
            dispatch,
        })
    }

    /// The `tracing` dispatcher feeding these providers, for
    /// `tracing::dispatcher::with_default` in tests.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// A meter of these providers (a no-op one when metrics are off);
    /// services use `opentelemetry::global::meter` once [`Telemetry::install`]
    /// has run.
    pub fn meter(&self, name: &'static str) -> Meter {
        match &self.meter_provider {
            Some(provider) => provider.meter(name),
            None => NoopMeterProvider::new().meter(name),
        }
    }

    /// The tracer provider.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// Makes these providers the process-wide defaults: the `tracing`
    /// subscriber, OpenTelemetry's global tracer and meter providers, and the
    /// W3C TraceContext + Baggage propagator for libraries that use the global.
    pub fn install(self) -> Result<TelemetryGuard, InitError> {
        tracing::dispatcher::set_global_default(self.dispatch.clone())?;
        opentelemetry::global::set_tracer_provider(self.tracer_provider.clone());
        if let Some(meter_provider) = &self.meter_provider {
            opentelemetry::global::set_meter_provider(meter_provider.clone());
        }
        opentelemetry::global::set_text_map_propagator(propagation::w3c_propagator());
        #[cfg(feature = "profiling")]
        if self.profiler.is_some() {
            profiling::forward_agent_log();
        }
        Ok(TelemetryGuard {
            telemetry: Some(self),
        })
    }

    /// Exports everything still buffered and stops the exporters, giving up
    /// after [`SHUTDOWN_DEADLINE`].
    ///
    /// Call it once the service has stopped its work, so nothing new is
    /// recorded meanwhile. The three providers (and the profiler, which
    /// pushes its last profile) are shut down side by side,
    /// each on a thread of its own: one at a time, a collector that accepts
    /// connections and never answers would cost each its full timeout (the
    /// meter provider's is a fixed 5 s the SDK does not let us shorten). A
    /// provider still busy at the deadline is left behind with what it holds,
    /// and the process exits without it.
    pub fn shutdown_blocking(self) {
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        let (done, finished) = mpsc::channel();
        let mut pending = Vec::new();
        let tracer_provider = self.tracer_provider;
        pending.extend(shut_down_on_thread("traces", &done, move || {
            tracer_provider.shutdown_with_timeout(SHUTDOWN_DEADLINE)
        }));
        if let Some(logger_provider) = self.logger_provider {
            pending.extend(shut_down_on_thread("logs", &done, move || {
                logger_provider.shutdown_with_timeout(SHUTDOWN_DEADLINE)
            }));
        }
        if let Some(meter_provider) = self.meter_provider {
            pending.extend(shut_down_on_thread("metrics", &done, move || {
                meter_provider.shutdown_with_timeout(SHUTDOWN_DEADLINE)
            }));
        }
        #[cfg(feature = "profiling")]
        if let Some(profiler) = self.profiler {
            pending.extend(shut_down_on_thread("profiles", &done, move || {
                profiler.shutdown()
            }));
        }

        // Errors here mean data could not be delivered; there is nowhere left
        // to report them but stderr, and the console log is already gone.
        while !pending.is_empty() {
            let Ok((signal, result)) =
                finished.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                eprintln!(
                    "telemetry: flushing {} gave up after {SHUTDOWN_DEADLINE:?}",
                    pending.join(", ")
                );
                return;
            };
            pending.retain(|pending| *pending != signal);
            if let Err(err) = result {
                eprintln!("telemetry: flushing {signal} failed: {err}");
            }
        }
    }

    /// [`Telemetry::shutdown_blocking`] on a blocking thread, so the Tokio
    /// runtime keeps running the gRPC exporter's connection meanwhile.
    /// Returns within [`SHUTDOWN_DEADLINE`].
    pub async fn shutdown(self) {
        if let Err(err) = tokio::task::spawn_blocking(move || self.shutdown_blocking()).await {
            eprintln!("telemetry: shutdown task failed: {err}");
        }
    }
}

/// Keeps telemetry installed; [`TelemetryGuard::shutdown`] flushes it.
///
/// Dropping the guard without calling `shutdown` still flushes, but blocks the
/// current thread to do so; in async code call `shutdown().await` last thing
/// before returning from `main`.
#[must_use = "dropping the guard shuts telemetry down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    telemetry: Option<Telemetry>,
}

impl TelemetryGuard {
    /// Flushes and stops all exporters, within [`SHUTDOWN_DEADLINE`] (see
    /// [`Telemetry::shutdown_blocking`]).
    pub async fn shutdown(mut self) {
        if let Some(telemetry) = self.telemetry.take() {
            telemetry.shutdown().await;
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(telemetry) = self.telemetry.take() {
            telemetry.shutdown_blocking();
        }
    }
}

/// Runs one provider's `shutdown` on a thread of its own, which reports on
/// `done` when it finishes; returns `signal` if the thread was started.
fn shut_down_on_thread(
    signal: &'static str,
    done: &mpsc::Sender<(&'static str, OTelSdkResult)>,
    shutdown: impl FnOnce() -> OTelSdkResult + Send + 'static,
) -> Option<&'static str> {
    let done = done.clone();
    std::thread::Builder::new()
        .name(format!("telemetry-shutdown-{signal}"))
        .spawn(move || {
            // The receiver is gone once the deadline has passed.
            let _ = done.send((signal, shutdown()));
        })
        .inspect_err(|err| eprintln!("telemetry: cannot flush {signal}: {err}"))
        .ok()
        .map(|_| signal)
}

#[cfg(test)]
mod test_support;

/// Whether the OpenTelemetry layer turns a span into an OpenTelemetry span:
/// not those of the exporters' own stack, nor connection spans.
fn exported(metadata: &tracing::Metadata<'_>) -> bool {
    !console::is_sdk_target(metadata.target()) && !is_connection_span(metadata)
}

/// A span a client library keeps open for as long as a connection lives:
/// lapin runs each AMQP connection's I/O inside one (`io_loop`, a root span
/// on a thread of its own). Exported, each would be a trace of its own as
/// long as the process; its events still reach the logs.
fn is_connection_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target().starts_with("lapin")
}

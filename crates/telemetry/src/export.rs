//! The OTLP exporters, over whichever transports this build has: `grpc`
//! (tonic) and `http-proto` (reqwest's blocking client) are cargo features,
//! so a service that only speaks one need not compile the other's stack.
//!
//! Each function adds one signal's exporter to its provider builder. A
//! protocol whose transport is not compiled in is an [`InitError`] naming the
//! variables that chose it and the feature that would provide it, rather than
//! a silent fallback to the other transport (which would talk to the wrong
//! port). Without any transport every exporting signal is such an error;
//! telemetry then still works with export off (`OTEL_SDK_DISABLED=true`).

// Without any transport only the error arm of `with_exporter!` is left: the
// builder and configuration passed to it go unused.
#![cfg_attr(
    not(any(feature = "grpc", feature = "http-proto")),
    allow(unused_variables)
)]

#[cfg(feature = "http-proto")]
use opentelemetry_otlp::WithHttpConfig;
#[cfg(feature = "grpc")]
use opentelemetry_otlp::WithTonicConfig;
#[cfg(any(feature = "grpc", feature = "http-proto"))]
use opentelemetry_otlp::{
    LogExporter, MetricExporter, RetryPolicy, SpanExporter, WithExportConfig,
};
use opentelemetry_sdk::logs::LoggerProviderBuilder;
use opentelemetry_sdk::metrics::MeterProviderBuilder;
use opentelemetry_sdk::trace::TracerProviderBuilder;

use crate::{InitError, Protocol, TelemetryConfig};

/// The name of `protocol` in `OTEL_EXPORTER_OTLP_PROTOCOL`, and the cargo
/// feature of this crate that compiles its transport in.
pub(crate) fn protocol_and_feature(protocol: Protocol) -> (&'static str, &'static str) {
    match protocol {
        Protocol::Grpc => ("grpc", "grpc"),
        Protocol::HttpProtobuf => ("http/protobuf", "http-proto"),
    }
}

/// The error for a `signal` configured to use a transport that is not built.
fn not_built(signal: &'static str, protocol: Protocol) -> InitError {
    InitError::TransportNotBuilt { signal, protocol }
}

/// The retry policy for every exporter: up to 3 retries with exponential
/// backoff (100 ms doubling to 1.6 s, plus jitter) on 429, 502, 503, 504
/// and network errors, honouring `Retry-After`; never on other 4xx, which
/// would fail again. A collector next to the service absorbs longer
/// outages with its own queue; retrying for longer here would only grow
/// the in-memory backlog.
#[cfg(any(feature = "grpc", feature = "http-proto"))]
fn retry_policy() -> RetryPolicy {
    use std::time::Duration;
    RetryPolicy::recommended()
        .with_max_retries(3)
        .with_initial_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(1600))
}

/// `$provider.$add(exporter)`, the exporter built from `$builder` over the
/// chosen transport.
///
/// The exporter builders read the endpoint, headers, timeout and
/// compression variables themselves; an explicit `config.endpoint`
/// (tests) takes precedence. (A macro because each signal's builder is
/// its own type.)
macro_rules! with_exporter {
    ($provider:ident.$add:ident($builder:expr), $signal:literal, $protocol:expr, $config:expr) => {
        match $protocol {
            #[cfg(feature = "grpc")]
            Protocol::Grpc => {
                let builder = $builder.with_tonic().with_retry_policy(retry_policy());
                match &$config.endpoint {
                    Some(endpoint) => builder.with_endpoint(endpoint.clone()),
                    None => builder,
                }
                .build()
                .map(|exporter| $provider.$add(exporter))
                .map_err(|source| InitError::Exporter {
                    signal: $signal,
                    source,
                })
            }
            #[cfg(feature = "http-proto")]
            Protocol::HttpProtobuf => {
                let builder = $builder
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_retry_policy(retry_policy());
                match &$config.endpoint {
                    // The HTTP exporter appends `/v1/<signal>` only to the
                    // endpoint it reads from OTEL_EXPORTER_OTLP_ENDPOINT;
                    // an endpoint given in code is used as is.
                    Some(endpoint) => builder.with_endpoint(format!(
                        "{}/v1/{}",
                        endpoint.trim_end_matches('/'),
                        $signal
                    )),
                    None => builder,
                }
                .build()
                .map(|exporter| $provider.$add(exporter))
                .map_err(|source| InitError::Exporter {
                    signal: $signal,
                    source,
                })
            }
            // Reachable when a transport is left out.
            #[allow(unreachable_patterns)]
            other => Err(not_built($signal, other)),
        }
    };
}

/// Adds the span exporter, batched.
pub(crate) fn traces(
    provider: TracerProviderBuilder,
    protocol: Protocol,
    config: &TelemetryConfig,
) -> Result<TracerProviderBuilder, InitError> {
    with_exporter!(
        provider.with_batch_exporter(SpanExporter::builder()),
        "traces",
        protocol,
        config
    )
}

/// Adds the metric exporter, behind a periodic reader (which reads
/// `OTEL_METRIC_EXPORT_INTERVAL` itself).
pub(crate) fn metrics(
    provider: MeterProviderBuilder,
    protocol: Protocol,
    config: &TelemetryConfig,
) -> Result<MeterProviderBuilder, InitError> {
    // Cumulative, always: Mimir (Grafana Cloud's metrics store) rejects
    // delta temporality, whatever
    // OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE says.
    with_exporter!(
        provider.with_periodic_exporter(
            MetricExporter::builder()
                .with_temporality(opentelemetry_sdk::metrics::Temporality::Cumulative)
        ),
        "metrics",
        protocol,
        config
    )
}

/// Adds the log record exporter, batched.
pub(crate) fn logs(
    provider: LoggerProviderBuilder,
    protocol: Protocol,
    config: &TelemetryConfig,
) -> Result<LoggerProviderBuilder, InitError> {
    with_exporter!(
        provider.with_batch_exporter(LogExporter::builder()),
        "logs",
        protocol,
        config
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Service, Telemetry};

    #[test]
    fn a_missing_transport_is_an_error_naming_its_variables_and_feature() {
        let message = not_built("traces", Protocol::Grpc).to_string();
        for expected in [
            "OTLP grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "`grpc` feature",
            "OTEL_TRACES_EXPORTER=none",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }
        let message = not_built("logs", Protocol::HttpProtobuf).to_string();
        assert!(message.contains("`http-proto` feature"), "{message}");
    }

    /// Builds telemetry exporting every signal over `protocol`.
    #[allow(dead_code)] // Used only when a transport is left out.
    fn build_over(protocol: Protocol) -> Result<Telemetry, InitError> {
        let config = TelemetryConfig::otlp(protocol, "http://127.0.0.1:1");
        Telemetry::build_with_writer(Service::new("api", "0.0.0"), &config, std::io::sink)
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn without_the_grpc_feature_grpc_export_is_refused() {
        let err = build_over(Protocol::Grpc).unwrap_err();
        assert!(
            matches!(
                err,
                InitError::TransportNotBuilt {
                    signal: "traces",
                    protocol: Protocol::Grpc
                }
            ),
            "{err}"
        );
    }

    #[cfg(not(feature = "http-proto"))]
    #[test]
    fn without_the_http_proto_feature_http_export_is_refused() {
        let err = build_over(Protocol::HttpProtobuf).unwrap_err();
        assert!(
            matches!(
                err,
                InitError::TransportNotBuilt {
                    signal: "traces",
                    protocol: Protocol::HttpProtobuf
                }
            ),
            "{err}"
        );
    }
}

//! Telemetry settings read from the environment.
//!
//! The OpenTelemetry SDK and the OTLP exporter already read most `OTEL_*`
//! variables themselves (endpoints, headers, timeouts, compression, sampler,
//! batch sizes, export interval, resource attributes). This module reads only
//! what they leave to the application: whether anything is exported at all,
//! which transport each signal uses, and how the console log looks.

use std::fmt;

/// Name of every variable this module reads, so docs and tests can check them.
pub const ENV_VARS: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "DEPLOYMENT_ENVIRONMENT",
    "LOG_FORMAT",
    "RUST_LOG",
];

/// `deployment.environment.name` when `DEPLOYMENT_ENVIRONMENT` is unset.
pub const DEFAULT_ENVIRONMENT: &str = "development";

/// Log filter used when `RUST_LOG` is unset.
///
/// The HTTP/gRPC stacks the exporters are built on are quiet by default: at
/// `debug` they log every connection, which is noise in a service's own log.
/// lapin logs a message the broker returned as unroutable at `warn`, payload
/// and all (player names included); the broker crate reports it as an error
/// of its own, so only lapin's errors are kept.
pub const DEFAULT_LOG_FILTER: &str = "info,h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,reqwest=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=warn,lapin::returned_messages=error";

/// A signal's OTLP transport (`OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc`: OTLP over gRPC, usually port 4317.
    Grpc,
    /// `http/protobuf`: OTLP over HTTP with protobuf bodies, usually port
    /// 4318. The specification's default, and the only protocol the Grafana
    /// Cloud OTLP gateway accepts.
    HttpProtobuf,
}

impl Protocol {
    fn parse(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        match value.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(ConfigError::invalid(
                var,
                other,
                "expected `grpc` or `http/protobuf` (`http/json` is not built in)",
            )),
        }
    }
}

/// How the console log is written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
}

/// Per-signal export setting: `None` when that signal is not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Transport for spans, or `None` to export no spans.
    pub traces: Option<Protocol>,
    /// Transport for metrics, or `None` to export no metrics.
    pub metrics: Option<Protocol>,
    /// Transport for log records, or `None` to export no log records.
    pub logs: Option<Protocol>,
}

/// Everything the telemetry crate decides on its own, as opposed to what the
/// SDK reads from the environment itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Which signals are exported, and over which transport.
    pub signals: Signals,
    /// OTLP base endpoint (`http://host:4318` or `http://host:4317`). `None`
    /// leaves it to the exporter, which reads `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// and the per-signal endpoint variables.
    pub endpoint: Option<String>,
    /// Overrides the service name given to [`crate::Telemetry::build`]
    /// (`OTEL_SERVICE_NAME`).
    pub service_name: Option<String>,
    /// `deployment.environment.name` (`DEPLOYMENT_ENVIRONMENT`).
    pub environment: String,
    /// Console log format (`LOG_FORMAT`: `json` or `pretty`).
    pub log_format: LogFormat,
    /// `tracing` filter directives (`RUST_LOG`).
    pub log_filter: String,
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment.
    ///
    /// Returns `Err` naming the variable when one is set to a value that
    /// cannot be understood; unset variables take their documented default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Empty values count as unset, as the specification asks.
        let get = |key: &str| lookup(key).filter(|value| !value.trim().is_empty());

        let disabled = match get("OTEL_SDK_DISABLED") {
            None => false,
            Some(value) => parse_bool("OTEL_SDK_DISABLED", &value)?,
        };
        let default_protocol = match get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            None => Protocol::HttpProtobuf,
            Some(value) => Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", &value)?,
        };
        let signal = |exporter_var: &'static str, protocol_var: &'static str| {
            if disabled {
                return Ok(None);
            }
            match get(exporter_var).as_deref().map(str::trim) {
                None | Some("otlp") => {}
                Some("none") => return Ok(None),
                Some(other) => {
                    return Err(ConfigError::invalid(
                        exporter_var,
                        other,
                        "expected `otlp` or `none`",
                    ));
                }
            }
            match get(protocol_var) {
                None => Ok(Some(default_protocol)),
                Some(value) => Protocol::parse(protocol_var, &value).map(Some),
            }
        };
        let signals = Signals {
            traces: signal("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?,
            metrics: signal(
                "OTEL_METRICS_EXPORTER",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            )?,
            logs: signal("OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")?,
        };

        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    other,
                    "expected `json` or `pretty`",
                ));
            }
        };

        Ok(Self {
            signals,
            endpoint: None,
            service_name: get("OTEL_SERVICE_NAME").map(|name| name.trim().to_owned()),
            environment: get("DEPLOYMENT_ENVIRONMENT")
                .map(|env| env.trim().to_owned())
                .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned()),
            log_format,
            log_filter: get("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
        })
    }

    /// A configuration that exports every signal to `endpoint` over
    /// `protocol`, for tests and examples that run their own receiver.
    pub fn otlp(protocol: Protocol, endpoint: impl Into<String>) -> Self {
        Self {
            signals: Signals {
                traces: Some(protocol),
                metrics: Some(protocol),
                logs: Some(protocol),
            },
            endpoint: Some(endpoint.into()),
            service_name: None,
            environment: DEFAULT_ENVIRONMENT.to_owned(),
            log_format: LogFormat::Pretty,
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }

    /// True when no signal is exported: the SDK then opens no connection.
    pub fn exports_nothing(&self) -> bool {
        self.signals.traces.is_none()
            && self.signals.metrics.is_none()
            && self.signals.logs.is_none()
    }
}

/// A variable is set to something we cannot use.
///
/// The message names the variable and the offending value; telemetry
/// variables hold no secrets (headers are read by the exporter, not here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    expected: &'static str,
}

impl ConfigError {
    fn invalid(var: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            var,
            value: value.to_owned(),
            expected,
        }
    }

    /// The variable that holds the bad value.
    pub fn var(&self) -> &'static str {
        self.var
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.var, self.value, self.expected
        )
    }
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::invalid(
            var,
            value,
            "expected `true` or `false`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_lookup(|key| vars.get(key).cloned())
    }

    #[test]
    fn it_exports_nothing_only_when_every_signal_is_off() {
        let mut config = TelemetryConfig::otlp(Protocol::Grpc, "http://collector:4317");
        assert!(!config.exports_nothing());
        config.signals.metrics = None;
        assert!(!config.exports_nothing());
        config.signals.logs = None;
        assert!(!config.exports_nothing(), "traces are still on");
        config.signals.traces = None;
        assert!(config.exports_nothing());
    }

    #[test]
    fn an_empty_environment_exports_everything_over_http_protobuf() {
        let config = config(&[]).unwrap();
        let all = Some(Protocol::HttpProtobuf);
        assert_eq!(
            config.signals,
            Signals {
                traces: all,
                metrics: all,
                logs: all
            }
        );
        assert_eq!(config.environment, "development");
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.log_filter, DEFAULT_LOG_FILTER);
        assert_eq!(config.service_name, None);
    }

    #[test]
    fn sdk_disabled_turns_every_signal_off() {
        let config = config(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap();
        assert!(config.exports_nothing());
    }

    #[test]
    fn sdk_disabled_false_keeps_export_on() {
        let config = config(&[("OTEL_SDK_DISABLED", "false")]).unwrap();
        assert!(!config.exports_nothing());
    }

    #[test]
    fn a_none_exporter_turns_only_that_signal_off() {
        let config = config(&[("OTEL_METRICS_EXPORTER", "none")]).unwrap();
        assert_eq!(config.signals.metrics, None);
        assert_eq!(config.signals.traces, Some(Protocol::HttpProtobuf));
        assert_eq!(config.signals.logs, Some(Protocol::HttpProtobuf));
    }

    #[test]
    fn the_signal_protocol_overrides_the_general_one() {
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(config.signals.traces, Some(Protocol::Grpc));
        assert_eq!(config.signals.metrics, Some(Protocol::Grpc));
        assert_eq!(config.signals.logs, Some(Protocol::HttpProtobuf));
    }

    #[test]
    fn an_unknown_protocol_is_an_error_naming_the_variable() {
        let err = config(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]).unwrap_err();
        assert_eq!(err.var(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
        assert!(err.to_string().contains("http/json"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_LOGS_EXPORTER", "console"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var(), var);
            assert!(err.to_string().starts_with(&format!("invalid {var}=")));
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", ""), ("LOG_FORMAT", " ")]).unwrap();
        assert_eq!(config.signals.traces, Some(Protocol::HttpProtobuf));
        assert_eq!(config.log_format, LogFormat::Pretty);
    }

    #[test]
    fn service_name_environment_and_filter_come_from_their_variables() {
        let config = config(&[
            ("OTEL_SERVICE_NAME", "api-canary"),
            ("DEPLOYMENT_ENVIRONMENT", "staging"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "debug"),
        ])
        .unwrap();
        assert_eq!(config.service_name.as_deref(), Some("api-canary"));
        assert_eq!(config.environment, "staging");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_filter, "debug");
    }
}

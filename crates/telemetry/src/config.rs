//! Telemetry settings: a clap argument group, each option also set by its
//! standard environment variable.
//!
//! The OpenTelemetry SDK and the OTLP exporter already read most `OTEL_*`
//! variables themselves (endpoints, headers, timeouts, compression, sampler,
//! batch sizes, export interval, resource attributes). This group declares
//! only what they leave to the application: whether anything is exported at
//! all, which transport each signal uses, and how the console log looks.
//! A service flattens [`TelemetryConfig`] into its own command line;
//! [`TelemetryConfig::from_env`] reads it alone, for [`crate::init`].

use std::collections::HashMap;
use std::fmt;

use clap::{ArgMatches, Args, Command, FromArgMatches};

/// `deployment.environment.name` when `DEPLOYMENT_ENVIRONMENT` is unset.
pub const DEFAULT_ENVIRONMENT: &str = "development";

/// CPU samples a second while profiling, unless `PYROSCOPE_SAMPLE_RATE`
/// says otherwise: half of Pyroscope's usual 100, which keeps profiling
/// within 3 % of a request's CPU (docs/PERFORMANCE.md), and prime, so that
/// sampling does not keep step with work that recurs every 10 or 100 ms.
pub const DEFAULT_SAMPLE_RATE: u32 = 49;

/// Log filter used when `RUST_LOG` is unset.
///
/// The HTTP/gRPC stacks the exporters are built on are quiet by default: at
/// `debug` they log every connection, which is noise in a service's own log.
/// lapin logs a message the broker returned as unroutable at `warn`, payload
/// and all (player names included); the broker crate reports it as an error
/// of its own, so only lapin's errors are kept. Discord's rate limiter opens
/// an `info` span for every answer it reads, outside any trace; the bot
/// reports what matters of it (waits, 429s) itself.
pub const DEFAULT_LOG_FILTER: &str = "info,h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,reqwest=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=warn,lapin::returned_messages=error,twilight_http_ratelimiting=warn";

/// A signal's OTLP transport (`OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`).
/// `http/json` is not built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// `grpc`: OTLP over gRPC, usually port 4317.
    Grpc,
    /// `http/protobuf`: OTLP over HTTP with protobuf bodies, usually port
    /// 4318. The specification's default, and the only protocol the Grafana
    /// Cloud OTLP gateway accepts.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// How the console log is written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// Where CPU profiles go, or `None` to profile nothing
    /// (`PYROSCOPE_SERVER_ADDRESS` unset). Needs the `profiling` feature.
    pub profiling: Option<ProfilingConfig>,
}

/// Continuous CPU profiling, pushed to Pyroscope (`PYROSCOPE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilingConfig {
    /// Pyroscope, or an Alloy's `pyroscope.receive_http`
    /// (`PYROSCOPE_SERVER_ADDRESS`): profiles are pushed to
    /// `<address>/push.v1.PusherService/Push` every 10 s.
    pub server_address: String,
    /// Credentials for the server (`PYROSCOPE_BASIC_AUTH_USER`,
    /// `PYROSCOPE_BASIC_AUTH_PASSWORD`), for Grafana Cloud Profiles.
    pub basic_auth: Option<BasicAuth>,
    /// CPU samples a second (`PYROSCOPE_SAMPLE_RATE`).
    pub sample_rate: u32,
}

/// A user and password for HTTP basic authentication. `Debug` hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user (Grafana Cloud: the stack's Profiles instance ID).
    pub user: String,
    /// The password (Grafana Cloud: an access token).
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Whether a signal is exported (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Exporter {
    /// Over OTLP.
    Otlp,
    /// Not at all.
    None,
}

/// The variables, as declared; [`TelemetryConfig`] is what they mean.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Telemetry")]
struct Vars {
    /// `true` exports nothing and opens no connection; the console log stays.
    #[arg(long, env, default_value = "false", action = clap::ArgAction::Set, value_parser = parse_bool)]
    otel_sdk_disabled: bool,
    /// `none` exports no spans.
    #[arg(long, env, value_enum, default_value_t = Exporter::Otlp)]
    otel_traces_exporter: Exporter,
    /// `none` exports no metrics.
    #[arg(long, env, value_enum, default_value_t = Exporter::Otlp)]
    otel_metrics_exporter: Exporter,
    /// `none` exports no log records.
    #[arg(long, env, value_enum, default_value_t = Exporter::Otlp)]
    otel_logs_exporter: Exporter,
    /// OTLP transport: `grpc` (port 4317) or `http/protobuf` (port 4318).
    #[arg(long, env, value_enum, default_value_t = Protocol::HttpProtobuf)]
    otel_exporter_otlp_protocol: Protocol,
    /// OTLP transport of spans, when not the general one.
    #[arg(long, env, value_enum)]
    otel_exporter_otlp_traces_protocol: Option<Protocol>,
    /// OTLP transport of metrics, when not the general one.
    #[arg(long, env, value_enum)]
    otel_exporter_otlp_metrics_protocol: Option<Protocol>,
    /// OTLP transport of log records, when not the general one.
    #[arg(long, env, value_enum)]
    otel_exporter_otlp_logs_protocol: Option<Protocol>,
    /// `service.name`, when not the binary's name; wins over
    /// OTEL_RESOURCE_ATTRIBUTES.
    #[arg(long, env)]
    otel_service_name: Option<String>,
    /// `deployment.environment.name`.
    #[arg(long, env, default_value = DEFAULT_ENVIRONMENT)]
    deployment_environment: String,
    /// Console log: `pretty` (human-readable) or `json` (one object per line).
    #[arg(long, env, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// `tracing` filter for the console and exported logs [default: info,
    /// with HTTP/gRPC internals at warn].
    #[arg(long, env, default_value = DEFAULT_LOG_FILTER, hide_default_value = true)]
    rust_log: String,
    /// Pyroscope, or an Alloy's `pyroscope.receive_http`, to push CPU
    /// profiles to; unset profiles nothing (needs the `profiling` feature).
    #[arg(long, env)]
    pyroscope_server_address: Option<String>,
    /// Basic-auth user for the Pyroscope server (Grafana Cloud Profiles:
    /// the instance ID).
    #[arg(long, env, requires = "pyroscope_basic_auth_password")]
    pyroscope_basic_auth_user: Option<String>,
    /// Basic-auth password for the Pyroscope server (Grafana Cloud: an
    /// access token).
    #[arg(
        long,
        env,
        requires = "pyroscope_basic_auth_user",
        hide_env_values = true
    )]
    pyroscope_basic_auth_password: Option<String>,
    /// CPU samples a second while profiling.
    #[arg(long, env, default_value_t = DEFAULT_SAMPLE_RATE, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pyroscope_sample_rate: u32,
}

impl From<Vars> for TelemetryConfig {
    fn from(vars: Vars) -> Self {
        let signal = |exporter, protocol: Option<Protocol>| {
            (!vars.otel_sdk_disabled && exporter == Exporter::Otlp)
                .then(|| protocol.unwrap_or(vars.otel_exporter_otlp_protocol))
        };
        Self {
            signals: Signals {
                traces: signal(
                    vars.otel_traces_exporter,
                    vars.otel_exporter_otlp_traces_protocol,
                ),
                metrics: signal(
                    vars.otel_metrics_exporter,
                    vars.otel_exporter_otlp_metrics_protocol,
                ),
                logs: signal(
                    vars.otel_logs_exporter,
                    vars.otel_exporter_otlp_logs_protocol,
                ),
            },
            endpoint: None,
            service_name: vars.otel_service_name.map(|name| name.trim().to_owned()),
            environment: vars.deployment_environment.trim().to_owned(),
            log_format: vars.log_format,
            log_filter: vars.rust_log,
            profiling: vars
                .pyroscope_server_address
                .map(|server_address| ProfilingConfig {
                    server_address: server_address.trim().to_owned(),
                    basic_auth: vars
                        .pyroscope_basic_auth_user
                        .zip(vars.pyroscope_basic_auth_password)
                        .map(|(user, password)| BasicAuth { user, password }),
                    sample_rate: vars.pyroscope_sample_rate,
                }),
        }
    }
}

/// The group of options a service flattens into its command line
/// (`#[command(flatten)] telemetry: TelemetryConfig`).
impl Args for TelemetryConfig {
    fn group_id() -> Option<clap::Id> {
        Vars::group_id()
    }

    fn augment_args(cmd: Command) -> Command {
        under_own_heading(cmd, Vars::augment_args)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        under_own_heading(cmd, Vars::augment_args_for_update)
    }
}

/// Adds the group under its "Telemetry" heading, then gives the options
/// added after it their heading back.
fn under_own_heading(cmd: Command, augment: fn(Command) -> Command) -> Command {
    let heading = cmd.get_next_help_heading().map(str::to_owned);
    let cmd = augment(cmd);
    match heading {
        Some(heading) => cmd.next_help_heading(heading),
        None => cmd.next_help_heading(None::<&str>),
    }
}

impl FromArgMatches for TelemetryConfig {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Vars::from_arg_matches(matches).map(Self::from)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment alone (an
    /// empty command line): for programs without a command line of their
    /// own. Services flatten the group into theirs instead.
    ///
    /// Returns `Err` naming the variable when one is set to a value that
    /// cannot be understood; unset or empty variables take their default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cmd = Self::augment_args(Command::new("telemetry").no_binary_name(true));
        let mut cmd = ignore_empty_variables(name_values_by_variable(cmd));
        let matches = cmd
            .try_get_matches_from_mut(std::iter::empty::<String>())
            .map_err(ConfigError)?;
        Self::from_arg_matches(&matches).map_err(|err| ConfigError(err.format(&mut cmd)))
    }

    /// The configuration as if the environment held exactly `vars`: for
    /// tests, which must not change the process environment.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        parse_vars(Command::new("telemetry"), vars).map_err(ConfigError)
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
            profiling: None,
        }
    }

    /// True when no signal is exported: the SDK then opens no connection.
    pub fn exports_nothing(&self) -> bool {
        self.signals.traces.is_none()
            && self.signals.metrics.is_none()
            && self.signals.logs.is_none()
    }
}

/// A variable is set to something we cannot use. The message names the
/// variable and repeats the value: the one secret read here,
/// `PYROSCOPE_BASIC_AUTH_PASSWORD`, takes any value, so it is never
/// repeated (OTLP headers are read by the exporter, not here).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError(clap::Error);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // clap's message without its `error: ` prefix and usage lines.
        let rendered = self.0.to_string();
        let message = rendered.split("\n\n").next().unwrap_or_default();
        f.write_str(message.trim_start_matches("error: ").trim_end())
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected `true` or `false`".to_owned()),
    }
}

/// Shows each option's value under the name of its environment variable
/// (`--log-format <LOG_FORMAT>`), so that clap's errors, which name the
/// option by its value, name the variable.
pub fn name_values_by_variable(cmd: Command) -> Command {
    cmd.mut_args(
        |arg| match arg.get_env().map(|var| var.to_string_lossy().into_owned()) {
            Some(var) => arg.value_name(var),
            None => arg,
        },
    )
    .mut_subcommands(name_values_by_variable)
}

/// Treats a variable set to an empty value as unset, as the OpenTelemetry
/// specification asks and as Compose's `${VAR:-}` produces: clap would
/// parse the empty value.
pub fn ignore_empty_variables(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.to_string_lossy().trim().is_empty());
        if empty { arg.env(None::<&str>) } else { arg }
    })
    .mut_subcommands(ignore_empty_variables)
}

/// Parses `T`'s options, added to `cmd`, as if the environment held exactly
/// `vars` (empty ones unset) and the command line were empty: for tests,
/// which must not change the process environment.
pub fn parse_vars<'a, T: Args + FromArgMatches>(
    cmd: Command,
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<T, clap::Error> {
    let vars: HashMap<&str, &str> = vars
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect();
    let cmd = name_values_by_variable(T::augment_args(cmd));
    let args: Vec<String> = cmd
        .get_arguments()
        .filter_map(|arg| {
            let value = vars.get(arg.get_env()?.to_str()?)?;
            Some(format!("--{}={value}", arg.get_long()?))
        })
        .collect();
    // The values come from `vars`, never from the process environment.
    let mut cmd = cmd
        .no_binary_name(true)
        .mut_args(|arg| arg.env(None::<&str>));
    let matches = cmd.try_get_matches_from_mut(args)?;
    T::from_arg_matches(&matches).map_err(|err| err.format(&mut cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        TelemetryConfig::from_vars(vars.iter().copied())
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
        let message = err.to_string();
        assert!(
            message.contains("<OTEL_EXPORTER_OTLP_TRACES_PROTOCOL>"),
            "{message}"
        );
        assert!(message.contains("'http/json'"), "{message}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_LOGS_EXPORTER", "console"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid value '{value}' for '--")),
                "{err}"
            );
            assert!(err.contains(&format!("<{var}>")), "{err}");
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

    #[test]
    fn profiling_is_off_unless_a_server_is_given() {
        assert_eq!(config(&[]).unwrap().profiling, None);
        let config = config(&[("PYROSCOPE_SERVER_ADDRESS", " http://alloy:4040 ")]).unwrap();
        assert_eq!(
            config.profiling,
            Some(ProfilingConfig {
                server_address: "http://alloy:4040".to_owned(),
                basic_auth: None,
                sample_rate: DEFAULT_SAMPLE_RATE,
            })
        );
    }

    #[test]
    fn profiling_credentials_come_in_pairs_and_the_password_never_shows() {
        let config = config(&[
            ("PYROSCOPE_SERVER_ADDRESS", "https://profiles.example.net"),
            ("PYROSCOPE_BASIC_AUTH_USER", "123456"),
            ("PYROSCOPE_BASIC_AUTH_PASSWORD", "glc_secret"),
            ("PYROSCOPE_SAMPLE_RATE", "97"),
        ])
        .unwrap();
        let profiling = config.profiling.as_ref().unwrap();
        assert_eq!(profiling.sample_rate, 97);
        let auth = profiling.basic_auth.as_ref().unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("123456", "glc_secret")
        );
        assert!(!format!("{config:?}").contains("glc_secret"));

        let err = super::tests::config(&[
            ("PYROSCOPE_SERVER_ADDRESS", "https://profiles.example.net"),
            ("PYROSCOPE_BASIC_AUTH_PASSWORD", "glc_secret"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PYROSCOPE_BASIC_AUTH_USER"), "{err}");
        assert!(!err.contains("glc_secret"), "{err}");
    }

    #[test]
    fn a_sample_rate_out_of_range_is_an_error() {
        for rate in ["0", "1001", "fast"] {
            let err = config(&[("PYROSCOPE_SAMPLE_RATE", rate)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("<PYROSCOPE_SAMPLE_RATE>"), "{err}");
        }
    }

    #[test]
    fn every_option_is_set_by_its_variable() {
        let cmd = name_values_by_variable(TelemetryConfig::augment_args(Command::new("t")));
        let vars: Vec<String> = cmd
            .get_arguments()
            .filter_map(|arg| Some(arg.get_env()?.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            vars,
            [
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
                "PYROSCOPE_SERVER_ADDRESS",
                "PYROSCOPE_BASIC_AUTH_USER",
                "PYROSCOPE_BASIC_AUTH_PASSWORD",
                "PYROSCOPE_SAMPLE_RATE",
            ]
        );
        cmd.debug_assert();
    }
}

//! "Is my telemetry arriving?", answered by the backends themselves.
//!
//! [`check`] asks Tempo's search, Prometheus' (or Mimir's) series API,
//! Loki's query API and Pyroscope's series query — the local stack's or
//! Grafana Cloud's, with the credentials Alloy uses — whether traces,
//! metrics, logs and CPU profiles of api, worker and bot, and the metrics
//! Alloy scrapes from PostgreSQL, Redis, RabbitMQ and itself, arrived in
//! the last minutes. The [`Report`] says, per signal and source, what is
//! there and what is missing, with the likely cause.
//!
//! `check-telemetry` runs it (natively, or as the `check-telemetry`
//! compose service).

mod backends;
pub mod config;
mod report;

use std::time::Duration;

pub use backends::{Failure, FoundTrace};
pub use config::Config;
pub use report::{Answer, Finding, Report};

use backends::{Api, Window};

/// The services whose telemetry is looked for, by `service.name`.
pub const SERVICES: [&str; 3] = ["api", "worker", "bot"];

/// A source of scraped metrics: Alloy scrapes it and forwards what its
/// keep-list keeps by remote write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scraped {
    /// What the report calls it.
    pub source: &'static str,
    /// The label of its `prometheus.relabel` block.
    pub keep_list: &'static str,
    /// The file of grafana-alloy/ that holds that block.
    pub keep_list_file: &'static str,
    /// The prefixes of its metric names.
    pub prefixes: &'static [&'static str],
    /// The series the dashboards, alerting rules and guides query: each
    /// must arrive, or a panel is empty. (A test holds this list to exactly
    /// what they query.)
    pub series: &'static [&'static str],
}

/// What Alloy scrapes, and which of its series are looked for.
pub const SCRAPED: [Scraped; 4] = [
    Scraped {
        source: "postgres",
        keep_list: "postgres",
        keep_list_file: "config.alloy",
        prefixes: &["pg_"],
        series: &[
            "pg_up",
            "pg_database_size_bytes",
            "pg_stat_activity_count",
            "pg_stat_database_blks_hit",
            "pg_stat_database_blks_read",
            "pg_stat_database_deadlocks",
            "pg_stat_database_xact_commit",
            "pg_stat_database_xact_rollback",
        ],
    },
    Scraped {
        source: "redis",
        keep_list: "redis",
        keep_list_file: "config.alloy",
        prefixes: &["redis_"],
        series: &[
            "redis_up",
            "redis_commands_processed_total",
            "redis_connected_clients",
            "redis_db_keys",
            "redis_evicted_keys_total",
            "redis_keyspace_hits_total",
            "redis_keyspace_misses_total",
            "redis_memory_used_bytes",
        ],
    },
    Scraped {
        source: "rabbitmq",
        keep_list: "rabbitmq",
        keep_list_file: "config.alloy",
        prefixes: &["rabbitmq_"],
        series: &[
            "rabbitmq_alarms_free_disk_space_watermark",
            "rabbitmq_alarms_memory_used_watermark",
            "rabbitmq_build_info",
            "rabbitmq_channels",
            "rabbitmq_connections",
            "rabbitmq_consumers",
            "rabbitmq_global_messages_acknowledged_total",
            "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
            "rabbitmq_global_messages_dead_lettered_rejected_total",
            "rabbitmq_global_messages_delivered_total",
            "rabbitmq_global_messages_received_total",
            "rabbitmq_queue_messages_ready",
            "rabbitmq_queue_messages_unacked",
        ],
    },
    Scraped {
        source: "alloy",
        keep_list: "alloy",
        keep_list_file: "export.alloy",
        prefixes: &["otelcol_", "prometheus_remote_storage_", "alloy_"],
        series: &[
            "otelcol_exporter_queue_capacity",
            "otelcol_exporter_queue_size",
            "otelcol_exporter_send_failed_log_records_total",
            "otelcol_exporter_send_failed_metric_points_total",
            "otelcol_exporter_send_failed_spans_total",
            "otelcol_exporter_sent_log_records_total",
            "otelcol_exporter_sent_metric_points_total",
            "otelcol_exporter_sent_spans_total",
            "otelcol_receiver_accepted_log_records_total",
            "otelcol_receiver_accepted_metric_points_total",
            "otelcol_receiver_accepted_spans_total",
            "otelcol_receiver_refused_spans_total",
            "prometheus_remote_storage_samples_failed_total",
            "prometheus_remote_storage_samples_total",
        ],
    },
];

/// The profile type the services' profiler sends (crates/telemetry,
/// feature `profiling`), and the one Grafana's traces-to-profiles and the
/// dashboards' flame-graph links ask Pyroscope for.
pub const CPU_PROFILE_TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// The TraceQL search for traces with a span of `service`.
pub fn traceql(service: &str) -> String {
    format!("{{ resource.service.name = \"{service}\" }}")
}

/// The LogQL query counting each service's log lines over `minutes`.
pub fn logql(minutes: u32) -> String {
    format!(
        "sum by (service_name) (count_over_time({{service_name=~\"{}\"}}[{minutes}m]))",
        SERVICES.join("|")
    )
}

/// The series that say a service's OTLP metrics arrive: `target_info`,
/// which Prometheus and Grafana Cloud make of every OTLP resource, its job
/// being `<service.namespace>/<service.name>`.
pub fn services_selector() -> String {
    format!(
        "target_info{{job=~\"{}/({})\"}}",
        service_runtime::SERVICE_NAMESPACE,
        SERVICES.join("|")
    )
}

/// The Pyroscope label selector of the services' profiles, of every type:
/// their `service_name` within the `service_namespace` they all carry.
pub fn profiles_selector() -> String {
    format!(
        "{{service_namespace=\"{}\", service_name=~\"{}\"}}",
        service_runtime::SERVICE_NAMESPACE,
        SERVICES.join("|")
    )
}

/// The series of every [`SCRAPED`] source that are looked for.
pub fn scraped_selector() -> String {
    let names: Vec<&str> = SCRAPED
        .iter()
        .flat_map(|s| s.series.iter().copied())
        .collect();
    format!("{{__name__=~\"{}\"}}", names.join("|"))
}

/// Asks the four backends about the last `minutes`, all at once.
pub async fn check(config: &Config, minutes: u32) -> Report {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(backends::TIMEOUT)
        .build()
        .unwrap_or_default();
    let api =
        |backend: &config::Backend| Api::new(client.clone(), backend.clone(), config.token.clone());
    let (tempo, prometheus, loki, pyroscope) = (
        api(&config.tempo),
        api(&config.prometheus),
        api(&config.loki),
        api(&config.pyroscope),
    );
    let window = Window::last(minutes);

    let traces = futures_util::future::join_all(
        SERVICES.map(|service| backends::trace_of(&tempo, service, window)),
    );
    let (services_selector, scraped_selector) = (services_selector(), scraped_selector());
    let services = backends::series(&prometheus, &services_selector, window);
    let scraped = backends::series(&prometheus, &scraped_selector, window);
    let logs = backends::log_lines(&loki, window);
    let profiles = backends::profile_types(&pyroscope, window);
    let (traces, services, scraped, logs, profiles) =
        tokio::join!(traces, services, scraped, logs, profiles);

    let traces = SERVICES
        .into_iter()
        .zip(traces)
        .filter_map(|(service, found)| match found {
            Ok(None) => None,
            Ok(Some(t)) => Some(Ok((
                service,
                format!(
                    "e.g. trace {} ({}: {})",
                    t.trace_id, t.root_service_name, t.root_trace_name
                ),
            ))),
            Err(failure) => Some(Err(failure)),
        })
        .collect();
    let metrics = services.and_then(|services| {
        let jobs: Vec<&str> = services
            .iter()
            .filter_map(|l| l.get("job").map(String::as_str))
            .collect();
        let found = SERVICES
            .into_iter()
            .filter(|service| jobs.contains(&job(service).as_str()))
            .map(|service| (service, "OTLP metrics (target_info)".to_owned()))
            .collect();
        Ok((found, backends::names(&scraped?)))
    });
    let logs = logs.map(|lines| {
        SERVICES
            .into_iter()
            .filter_map(|service| {
                let count = lines.get(service).copied().filter(|n| *n > 0)?;
                Some((service, format!("{count} log lines")))
            })
            .collect()
    });
    let profiles = profiles.map(|mut types| {
        SERVICES
            .into_iter()
            .filter_map(|service| Some((service, types.remove(service)?)))
            .collect()
    });
    Report::new(config, minutes, traces, metrics, logs, profiles)
}

/// The job Prometheus gives a service's OTLP metrics.
fn job(service: &str) -> String {
    format!("{}/{service}", service_runtime::SERVICE_NAMESPACE)
}

//! What Alloy itself checks when it loads a configuration, for the
//! components grafana-alloy/ uses — so a misspelt argument or a value Alloy
//! rejects fails a test here rather than `docker compose up`.
//!
//! The names come from the components' `Arguments` structs in
//! grafana/alloy (`alloy:"name,attr"` / `alloy:"name,block"` tags) at
//! [`ALLOY_VERSION`], the version compose pins (a test keeps the two equal,
//! so moving the pin means reading the sources again); the rules from their
//! `Validate()` methods. A component or nested block missing here is
//! reported, so the table grows with the configuration instead of silently
//! passing it. Arguments Alloy still accepts but has deprecated are
//! reported too: a table of names alone would let them through.

use super::{Block, Value};

/// The grafana/alloy release this table was read from.
pub const ALLOY_VERSION: &str = "v1.18.1";

/// The type of the collector component inside each Alloy `otelcol.*`
/// exporter, in the collector Alloy bundles at [`ALLOY_VERSION`] (v0.153):
/// Alloy's self-metrics label the exporter `<type>/<component id>`, e.g.
/// `exporter="otlp_http/otelcol.exporter.otlphttp.default"` (the collector
/// renamed `otlphttp` to `otlp_http` in v0.144).
pub const EXPORTER_TYPES: &[(&str, &str)] = &[("otelcol.exporter.otlphttp", "otlp_http")];

/// Deprecated arguments: `(path, name, what to use instead)`.
const DEPRECATED: &[(&str, &str, &str)] = &[
    ("otelcol.auth.basic", "username", "client_auth { username }"),
    ("otelcol.auth.basic", "password", "client_auth { password }"),
];

/// `(path, attributes, blocks)`: a component, or a block nested in one as
/// `component/block`.
type Schema = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const OUTPUT: &[&str] = &["metrics", "logs", "traces"];
/// The blocks of `otelcol.processor.tail_sampling`'s shared policy config
/// (`SharedPolicyConfig` in its types.go): what a policy, or a policy nested
/// in `and`, `not`, `drop` or `composite`, can be; then the nesting kinds
/// allowed where it is used (a top-level policy: `composite`, `and`, `not`,
/// `drop`; a composite's sub-policy: `and`).
macro_rules! policy_kinds {
    ($($nesting:literal),*) => {
        &[
            "latency",
            "numeric_attribute",
            "probabilistic",
            "status_code",
            "string_attribute",
            "rate_limiting",
            "bytes_limiting",
            "span_count",
            "boolean_attribute",
            "ottl_condition",
            "trace_state",
            $($nesting),*
        ]
    };
}
const POLICY_KINDS: &[&str] = policy_kinds![];
/// Policy types the processor knows (`getSharedPolicyEvaluator`,
/// `getPolicyEvaluator`; Alloy's tail_sampling_test.go uses each): the
/// kinds, the types that need no block, and the combinations.
const POLICY_TYPES: &[&str] = policy_kinds![
    "always_sample",
    "trace_flags",
    "composite",
    "and",
    "not",
    "drop"
];
/// otelcol.connector.spanmetrics' `Dimension`: a span or resource attribute.
const DIMENSION: &[&str] = &["name", "default"];
/// The port pyroscope.receive_http listens on without `http { listen_port }`
/// (common/net's `DefaultHTTPPort`).
pub const RECEIVE_HTTP_DEFAULT_PORT: u64 = 8080;
const DEBUG_METRICS: &[&str] = &["disable_high_cardinality_metrics", "level"];
/// The blocks that also take the attributes of Prometheus' HTTP client (or
/// of Alloy's common/config HTTPClientConfig, which has the same).
const WITH_PROMETHEUS_HTTP_CLIENT: &[&str] = &[
    "prometheus.scrape",
    "prometheus.remote_write/endpoint",
    "pyroscope.write/endpoint",
];
/// Attributes of Prometheus' HTTP client.
const PROMETHEUS_HTTP_CLIENT: &[&str] = &[
    "bearer_token",
    "bearer_token_file",
    "follow_redirects",
    "enable_http2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
];

const SCHEMAS: &[Schema] = &[
    ("logging", &["level", "format", "write_to"], &[]),
    (
        "otelcol.receiver.otlp",
        &[],
        &["grpc", "http", "output", "debug_metrics"],
    ),
    (
        "otelcol.receiver.otlp/grpc",
        &[
            "endpoint",
            "transport",
            "max_recv_msg_size",
            "max_concurrent_streams",
            "read_buffer_size",
            "write_buffer_size",
            "auth",
            "include_metadata",
        ],
        &["tls", "keepalive"],
    ),
    (
        "otelcol.receiver.otlp/http",
        &[
            "endpoint",
            "auth",
            "max_request_body_size",
            "include_metadata",
            "compression_algorithms",
            "keep_alives_enabled",
            "traces_url_path",
            "metrics_url_path",
            "logs_url_path",
            "idle_timeout",
            "read_header_timeout",
            "write_timeout",
        ],
        &["tls", "cors"],
    ),
    (
        "otelcol.processor.memory_limiter",
        &[
            "check_interval",
            "limit",
            "spike_limit",
            "limit_percentage",
            "spike_limit_percentage",
            "min_gc_interval_when_soft_limited",
            "min_gc_interval_when_hard_limited",
            "max_gc_interval_when_soft_limited",
            "max_gc_interval_when_hard_limited",
        ],
        &["output", "debug_metrics"],
    ),
    (
        "otelcol.processor.resourcedetection",
        &["detectors", "override", "timeout"],
        &[
            "output",
            "debug_metrics",
            "ec2",
            "ecs",
            "eks",
            "elasticbeanstalk",
            "lambda",
            "akamai",
            "azure",
            "aks",
            "consul",
            "docker",
            "digitalocean",
            "gcp",
            "heroku",
            "hetzner",
            "system",
            "openshift",
            "kubernetes_node",
            "kubeadm",
            "dynatrace",
            "nova",
            "oraclecloud",
            "scaleway",
            "upcloud",
            "vultr",
        ],
    ),
    (
        "otelcol.processor.resourcedetection/system",
        &["hostname_sources"],
        &["resource_attributes"],
    ),
    (
        "otelcol.processor.tail_sampling",
        &[
            "decision_wait",
            "decision_wait_after_root_received",
            "num_traces",
            "block_on_overflow",
            "expected_new_traces_per_sec",
            "sample_on_first_match",
            "drop_pending_traces_on_shutdown",
            "maximum_trace_size_bytes",
            "decision_cache",
        ],
        &["policy", "output", "debug_metrics"],
    ),
    (
        "otelcol.processor.tail_sampling/policy",
        &["name", "type"],
        policy_kinds!["composite", "and", "not", "drop"],
    ),
    // The policy kinds, the same wherever a policy is nested (see
    // `canonical`).
    (
        "otelcol.processor.tail_sampling/policy/latency",
        &["threshold_ms", "upper_threshold_ms"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/numeric_attribute",
        &["key", "min_value", "max_value", "invert_match"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/probabilistic",
        &["hash_salt", "sampling_percentage"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/status_code",
        &["status_codes"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/string_attribute",
        &[
            "key",
            "values",
            "enabled_regex_matching",
            "cache_max_size",
            "invert_match",
        ],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/rate_limiting",
        &["spans_per_second", "burst_capacity"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/bytes_limiting",
        &["bytes_per_second", "burst_capacity"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/span_count",
        &["min_spans", "max_spans"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/boolean_attribute",
        &["key", "value", "invert_match"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/ottl_condition",
        &["error_mode", "span", "spanevent"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/trace_state",
        &["key", "values"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite",
        &["max_total_spans_per_second", "policy_order"],
        &["composite_sub_policy", "rate_allocation"],
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/composite_sub_policy",
        &["name", "type"],
        policy_kinds!["and"],
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/rate_allocation",
        &["policy", "percent"],
        &[],
    ),
    (
        "otelcol.processor.tail_sampling/policy/and",
        &[],
        &["and_sub_policy"],
    ),
    (
        "otelcol.processor.tail_sampling/policy/not",
        &[],
        &["not_sub_policy"],
    ),
    (
        "otelcol.processor.tail_sampling/policy/drop",
        &[],
        &["drop_sub_policy"],
    ),
    (
        "otelcol.processor.tail_sampling/policy/and/and_sub_policy",
        &["name", "type"],
        POLICY_KINDS,
    ),
    (
        "otelcol.processor.tail_sampling/policy/not/not_sub_policy",
        &["name", "type"],
        POLICY_KINDS,
    ),
    (
        "otelcol.processor.tail_sampling/policy/drop/drop_sub_policy",
        &["name", "type"],
        POLICY_KINDS,
    ),
    (
        "otelcol.processor.attributes",
        &[],
        &["action", "include", "exclude", "output", "debug_metrics"],
    ),
    (
        "otelcol.processor.attributes/action",
        &[
            "key",
            "value",
            "pattern",
            "from_attribute",
            "from_context",
            "converted_type",
            "action",
        ],
        &[],
    ),
    (
        "otelcol.processor.batch",
        &[
            "timeout",
            "send_batch_size",
            "send_batch_max_size",
            "metadata_keys",
            "metadata_cardinality_limit",
        ],
        &["output", "debug_metrics"],
    ),
    (
        "otelcol.processor.k8sattributes",
        &[
            "auth_type",
            "passthrough",
            "wait_for_metadata",
            "wait_for_metadata_timeout",
            "watch_sync_period",
        ],
        &[
            "extract",
            "filter",
            "pod_association",
            "exclude",
            "output",
            "debug_metrics",
        ],
    ),
    (
        "otelcol.processor.k8sattributes/extract",
        &[
            "metadata",
            "otel_annotations",
            "deployment_name_from_replicaset",
        ],
        &["annotation", "label"],
    ),
    (
        "otelcol.processor.k8sattributes/extract/annotation",
        &["tag_name", "key", "key_regex", "from"],
        &[],
    ),
    (
        "otelcol.processor.k8sattributes/extract/label",
        &["tag_name", "key", "key_regex", "from"],
        &[],
    ),
    (
        "otelcol.processor.k8sattributes/filter",
        &["node", "namespace"],
        &["field", "label"],
    ),
    (
        "otelcol.processor.k8sattributes/filter/field",
        &["key", "value", "op"],
        &[],
    ),
    (
        "otelcol.processor.k8sattributes/filter/label",
        &["key", "value", "op"],
        &[],
    ),
    (
        "otelcol.processor.k8sattributes/pod_association",
        &[],
        &["source"],
    ),
    (
        "otelcol.processor.k8sattributes/pod_association/source",
        &["from", "name"],
        &[],
    ),
    ("otelcol.processor.k8sattributes/exclude", &[], &["pod"]),
    (
        "otelcol.processor.k8sattributes/exclude/pod",
        &["name"],
        &[],
    ),
    (
        "otelcol.auth.basic",
        &["username", "password"],
        &["client_auth", "htpasswd", "debug_metrics"],
    ),
    (
        "otelcol.auth.basic/client_auth",
        &["username", "username_file", "password", "password_file"],
        &[],
    ),
    (
        "otelcol.connector.servicegraph",
        &[
            "latency_histogram_buckets",
            "dimensions",
            "cache_loop",
            "store_expiration_loop",
            "virtual_node_peer_attributes",
            "virtual_node_extra_label",
            "metrics_flush_interval",
            "database_name_attributes",
            "exponential_histogram_max_size",
        ],
        &["store", "output", "debug_metrics"],
    ),
    (
        "otelcol.connector.servicegraph/store",
        &["max_items", "ttl"],
        &[],
    ),
    (
        "otelcol.connector.spanmetrics",
        &[
            "exclude_dimensions",
            "dimensions_cache_size",
            "resource_metrics_cache_size",
            "resource_metrics_key_attributes",
            "aggregation_cardinality_limit",
            "aggregation_temporality",
            "metrics_flush_interval",
            "metrics_expiration",
            "series_expiration",
            "metric_timestamp_cache_size",
            "namespace",
            "include_instrumentation_scope",
            "include_collector_instance_id",
        ],
        &[
            "dimension",
            "calls_dimension",
            "histogram",
            "exemplars",
            "events",
            "output",
            "debug_metrics",
        ],
    ),
    (
        "otelcol.connector.spanmetrics/calls_dimension",
        DIMENSION,
        &[],
    ),
    ("otelcol.connector.spanmetrics/dimension", DIMENSION, &[]),
    (
        "otelcol.connector.spanmetrics/events",
        &["enabled"],
        &["dimension"],
    ),
    (
        "otelcol.connector.spanmetrics/events/dimension",
        DIMENSION,
        &[],
    ),
    (
        "otelcol.connector.spanmetrics/exemplars",
        &["enabled", "max_per_data_point"],
        &[],
    ),
    (
        "otelcol.connector.spanmetrics/histogram",
        &["disable", "unit"],
        &["dimension", "exponential", "explicit"],
    ),
    (
        "otelcol.connector.spanmetrics/histogram/dimension",
        DIMENSION,
        &[],
    ),
    (
        "otelcol.connector.spanmetrics/histogram/explicit",
        &["buckets"],
        &[],
    ),
    (
        "otelcol.connector.spanmetrics/histogram/exponential",
        &["max_size"],
        &[],
    ),
    (
        "otelcol.exporter.loadbalancing",
        &["routing_key", "timeout"],
        &[
            "protocol",
            "resolver",
            "retry_on_failure",
            "sending_queue",
            "debug_metrics",
        ],
    ),
    ("otelcol.exporter.loadbalancing/protocol", &[], &["otlp"]),
    (
        "otelcol.exporter.loadbalancing/protocol/otlp",
        &["timeout"],
        &["queue", "retry", "client"],
    ),
    (
        "otelcol.exporter.loadbalancing/protocol/otlp/client",
        &[
            "compression",
            "read_buffer_size",
            "write_buffer_size",
            "wait_for_ready",
            "headers",
            "balancer_name",
            "authority",
            "auth",
        ],
        &["tls", "keepalive"],
    ),
    (
        "otelcol.exporter.loadbalancing/protocol/otlp/client/tls",
        &[
            "insecure",
            "insecure_skip_verify",
            "server_name",
            "ca_pem",
            "ca_file",
            "cert_pem",
            "cert_file",
            "key_pem",
            "key_file",
            "min_version",
            "max_version",
            "reload_interval",
            "cipher_suites",
            "include_system_ca_certs_pool",
            "curve_preferences",
        ],
        &["tpm"],
    ),
    (
        "otelcol.exporter.loadbalancing/resolver",
        &[],
        &["static", "dns", "kubernetes", "aws_cloud_map"],
    ),
    (
        "otelcol.exporter.loadbalancing/resolver/static",
        &["hostnames"],
        &[],
    ),
    (
        "otelcol.exporter.loadbalancing/resolver/dns",
        &["hostname", "port", "interval", "timeout"],
        &[],
    ),
    (
        "otelcol.exporter.loadbalancing/resolver/kubernetes",
        &["service", "ports", "timeout", "return_hostnames"],
        &[],
    ),
    (
        "otelcol.exporter.otlphttp",
        &[
            "traces_endpoint",
            "metrics_endpoint",
            "logs_endpoint",
            "encoding",
        ],
        &[
            "client",
            "sending_queue",
            "retry_on_failure",
            "debug_metrics",
        ],
    ),
    (
        "otelcol.exporter.otlphttp/client",
        &[
            "endpoint",
            "proxy_url",
            "compression",
            "read_buffer_size",
            "write_buffer_size",
            "timeout",
            "headers",
            "max_idle_conns",
            "max_idle_conns_per_host",
            "max_conns_per_host",
            "idle_conn_timeout",
            "disable_keep_alives",
            "http2_read_idle_timeout",
            "http2_ping_timeout",
            "force_attempt_http2",
            "auth",
        ],
        &["compression_params", "tls", "cookies"],
    ),
    (
        "otelcol.exporter.otlphttp/sending_queue",
        &[
            "enabled",
            "num_consumers",
            "queue_size",
            "block_on_overflow",
            "sizer",
            "wait_for_result",
            "storage",
        ],
        &["batch"],
    ),
    (
        "otelcol.exporter.otlphttp/retry_on_failure",
        &[
            "enabled",
            "initial_interval",
            "randomization_factor",
            "multiplier",
            "max_interval",
            "max_elapsed_time",
        ],
        &[],
    ),
    (
        "prometheus.exporter.postgres",
        &[
            "data_source_names",
            "disable_settings_metrics",
            "disable_default_metrics",
            "custom_queries_config_path",
            "enabled_collectors",
        ],
        &["autodiscovery", "stat_statements"],
    ),
    (
        "prometheus.exporter.redis",
        &[
            "include_exporter_metrics",
            "redis_addr",
            "redis_user",
            "redis_password",
            "redis_password_file",
            "redis_password_map_file",
            "namespace",
            "config_command",
            "check_keys",
            "check_key_groups",
            "check_key_groups_batch_size",
            "max_distinct_key_groups",
            "check_single_keys",
            "check_streams",
            "check_single_streams",
            "export_key_values",
            "count_keys",
            "script_path",
            "script_paths",
            "connection_timeout",
            "tls_client_key_file",
            "tls_client_cert_file",
            "tls_ca_cert_file",
            "set_client_name",
            "is_tile38",
            "is_cluster",
            "export_client_list",
            "export_client_port",
            "redis_metrics_only",
            "ping_on_connect",
            "incl_system_metrics",
            "skip_tls_verification",
        ],
        &[],
    ),
    ("prometheus.exporter.self", &[], &[]),
    (
        "prometheus.scrape",
        &[
            "targets",
            "forward_to",
            "job_name",
            "honor_labels",
            "honor_timestamps",
            "track_timestamps_staleness",
            "params",
            "scrape_classic_histograms",
            "scrape_native_histograms",
            "scrape_failure_log_file",
            "scrape_interval",
            "scrape_timeout",
            "scrape_protocols",
            "metrics_path",
            "scheme",
            "body_size_limit",
            "sample_limit",
            "target_limit",
            "label_limit",
            "label_name_length_limit",
            "label_value_length_limit",
            "extra_metrics",
            "enable_protobuf_negotiation",
            "metric_name_validation_scheme",
            "metric_name_escaping_scheme",
            "scrape_fallback_protocol",
            "convert_classic_histograms_to_nhcb",
            "enable_compression",
            "native_histogram_bucket_limit",
            "native_histogram_min_bucket_factor",
            "honor_metadata",
        ],
        &[
            "basic_auth",
            "authorization",
            "oauth2",
            "tls_config",
            "clustering",
        ],
    ),
    ("prometheus.scrape/clustering", &["enabled"], &[]),
    (
        "prometheus.relabel",
        &["forward_to", "max_cache_size"],
        &["rule"],
    ),
    (
        "prometheus.relabel/rule",
        &[
            "source_labels",
            "separator",
            "regex",
            "modulus",
            "target_label",
            "replacement",
            "action",
        ],
        &[],
    ),
    (
        "prometheus.remote_write",
        &["external_labels"],
        &["endpoint", "wal"],
    ),
    (
        "prometheus.remote_write/endpoint",
        &[
            "url",
            "name",
            "remote_timeout",
            "headers",
            "send_exemplars",
            "send_native_histograms",
            "protobuf_message",
        ],
        &[
            "basic_auth",
            "authorization",
            "oauth2",
            "tls_config",
            "queue_config",
            "metadata_config",
            "write_relabel_config",
            "sigv4",
            "azuread",
        ],
    ),
    (
        "prometheus.remote_write/endpoint/basic_auth",
        &["username", "password", "password_file"],
        &[],
    ),
    // pyroscope.receive_http's Arguments squash Alloy's common/net
    // ServerConfig (its `http`, `grpc` blocks and graceful_shutdown_timeout).
    (
        "pyroscope.receive_http",
        &[
            "forward_to",
            "debug_info_upload_timeout",
            "graceful_shutdown_timeout",
        ],
        &["http", "grpc"],
    ),
    (
        "pyroscope.receive_http/http",
        &[
            "listen_address",
            "listen_port",
            "conn_limit",
            "server_read_timeout",
            "server_write_timeout",
            "server_idle_timeout",
        ],
        &["tls", "http2"],
    ),
    (
        "pyroscope.receive_http/grpc",
        &[
            "listen_address",
            "listen_port",
            "conn_limit",
            "max_connection_age",
            "max_connection_age_grace",
            "max_connection_idle",
            "server_max_recv_msg_size",
            "server_max_send_msg_size",
            "server_max_concurrent_streams",
        ],
        &["tls"],
    ),
    (
        "pyroscope.write",
        &["external_labels"],
        &["endpoint", "tracing"],
    ),
    // EndpointOptions, squashing Alloy's common/config HTTPClientConfig
    // (with its ProxyConfig and Headers squashed in turn).
    (
        "pyroscope.write/endpoint",
        &[
            "name",
            "url",
            "remote_timeout",
            "debug_info_upload_timeout",
            "headers",
            "min_backoff_period",
            "max_backoff_period",
            "max_backoff_retries",
            "http_headers",
        ],
        &["basic_auth", "authorization", "oauth2", "tls_config"],
    ),
    (
        "pyroscope.write/endpoint/basic_auth",
        &["username", "password", "password_file"],
        &[],
    ),
    (
        "pyroscope.write/tracing",
        &["jaeger_propagator", "trace_context_propagator"],
        &[],
    ),
];

/// Arguments Alloy refuses to start without: `(path, attribute or block)`.
const REQUIRED: &[(&str, &str)] = &[
    ("otelcol.receiver.otlp", "output"),
    ("otelcol.processor.memory_limiter", "check_interval"),
    ("otelcol.processor.memory_limiter", "output"),
    ("otelcol.processor.resourcedetection", "output"),
    ("otelcol.processor.attributes", "output"),
    ("otelcol.processor.attributes/action", "action"),
    ("otelcol.processor.batch", "output"),
    ("otelcol.processor.tail_sampling", "policy"),
    ("otelcol.processor.tail_sampling", "output"),
    ("otelcol.processor.tail_sampling/policy", "name"),
    ("otelcol.processor.tail_sampling/policy", "type"),
    (
        "otelcol.processor.tail_sampling/policy/latency",
        "threshold_ms",
    ),
    (
        "otelcol.processor.tail_sampling/policy/numeric_attribute",
        "key",
    ),
    (
        "otelcol.processor.tail_sampling/policy/numeric_attribute",
        "min_value",
    ),
    (
        "otelcol.processor.tail_sampling/policy/numeric_attribute",
        "max_value",
    ),
    (
        "otelcol.processor.tail_sampling/policy/probabilistic",
        "sampling_percentage",
    ),
    (
        "otelcol.processor.tail_sampling/policy/status_code",
        "status_codes",
    ),
    (
        "otelcol.processor.tail_sampling/policy/string_attribute",
        "key",
    ),
    (
        "otelcol.processor.tail_sampling/policy/string_attribute",
        "values",
    ),
    (
        "otelcol.processor.tail_sampling/policy/rate_limiting",
        "spans_per_second",
    ),
    (
        "otelcol.processor.tail_sampling/policy/bytes_limiting",
        "bytes_per_second",
    ),
    (
        "otelcol.processor.tail_sampling/policy/span_count",
        "min_spans",
    ),
    (
        "otelcol.processor.tail_sampling/policy/boolean_attribute",
        "key",
    ),
    (
        "otelcol.processor.tail_sampling/policy/boolean_attribute",
        "value",
    ),
    (
        "otelcol.processor.tail_sampling/policy/ottl_condition",
        "error_mode",
    ),
    ("otelcol.processor.tail_sampling/policy/trace_state", "key"),
    (
        "otelcol.processor.tail_sampling/policy/trace_state",
        "values",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite",
        "max_total_spans_per_second",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite",
        "policy_order",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/composite_sub_policy",
        "name",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/composite_sub_policy",
        "type",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/rate_allocation",
        "policy",
    ),
    (
        "otelcol.processor.tail_sampling/policy/composite/rate_allocation",
        "percent",
    ),
    (
        "otelcol.processor.tail_sampling/policy/and",
        "and_sub_policy",
    ),
    (
        "otelcol.processor.tail_sampling/policy/not",
        "not_sub_policy",
    ),
    (
        "otelcol.processor.tail_sampling/policy/drop",
        "drop_sub_policy",
    ),
    (
        "otelcol.processor.tail_sampling/policy/and/and_sub_policy",
        "name",
    ),
    (
        "otelcol.processor.tail_sampling/policy/and/and_sub_policy",
        "type",
    ),
    (
        "otelcol.processor.tail_sampling/policy/not/not_sub_policy",
        "name",
    ),
    (
        "otelcol.processor.tail_sampling/policy/not/not_sub_policy",
        "type",
    ),
    (
        "otelcol.processor.tail_sampling/policy/drop/drop_sub_policy",
        "name",
    ),
    (
        "otelcol.processor.tail_sampling/policy/drop/drop_sub_policy",
        "type",
    ),
    ("otelcol.connector.servicegraph", "output"),
    ("otelcol.connector.spanmetrics", "histogram"),
    ("otelcol.connector.spanmetrics", "output"),
    ("otelcol.connector.spanmetrics/calls_dimension", "name"),
    ("otelcol.connector.spanmetrics/dimension", "name"),
    ("otelcol.connector.spanmetrics/events/dimension", "name"),
    ("otelcol.connector.spanmetrics/histogram/dimension", "name"),
    ("otelcol.processor.k8sattributes", "output"),
    ("otelcol.processor.k8sattributes/pod_association", "source"),
    (
        "otelcol.processor.k8sattributes/pod_association/source",
        "from",
    ),
    ("otelcol.processor.k8sattributes/exclude/pod", "name"),
    ("otelcol.processor.k8sattributes/filter/field", "key"),
    ("otelcol.processor.k8sattributes/filter/field", "value"),
    ("otelcol.processor.k8sattributes/filter/label", "key"),
    ("otelcol.processor.k8sattributes/filter/label", "value"),
    ("otelcol.exporter.loadbalancing", "protocol"),
    ("otelcol.exporter.loadbalancing", "resolver"),
    ("otelcol.exporter.loadbalancing/protocol", "otlp"),
    ("otelcol.exporter.loadbalancing/protocol/otlp", "client"),
    (
        "otelcol.exporter.loadbalancing/resolver/static",
        "hostnames",
    ),
    ("otelcol.exporter.loadbalancing/resolver/dns", "hostname"),
    (
        "otelcol.exporter.loadbalancing/resolver/kubernetes",
        "service",
    ),
    ("otelcol.exporter.otlphttp", "client"),
    ("otelcol.exporter.otlphttp/client", "endpoint"),
    ("prometheus.exporter.postgres", "data_source_names"),
    ("prometheus.exporter.redis", "redis_addr"),
    ("prometheus.scrape", "targets"),
    ("prometheus.scrape", "forward_to"),
    ("prometheus.scrape/clustering", "enabled"),
    ("prometheus.relabel", "forward_to"),
    ("prometheus.relabel/rule", "action"),
    ("prometheus.remote_write/endpoint", "url"),
    ("pyroscope.receive_http", "forward_to"),
    ("pyroscope.write/endpoint", "url"),
];

/// The table entry `path` is checked against. Tail-sampling policies nest
/// (`policy > and > and_sub_policy > latency`), and a nested one takes the
/// same arguments as a top-level one: a path deeper than the table is looked
/// up by its last two segments (`and/and_sub_policy`), then its last
/// (`latency`), under `otelcol.processor.tail_sampling/policy`. Which blocks
/// may nest where is still checked, step by step, by `check_block`.
fn canonical(path: &str) -> String {
    const POLICY: &str = "otelcol.processor.tail_sampling/policy";
    let known = |path: &str| SCHEMAS.iter().any(|(name, _, _)| *name == path);
    if known(path) || !path.starts_with(POLICY) {
        return path.to_owned();
    }
    let segments: Vec<&str> = path.rsplit('/').take(2).collect();
    if let [last, before] = segments.as_slice() {
        let two = format!("{POLICY}/{before}/{last}");
        if known(&two) {
            return two;
        }
        let one = format!("{POLICY}/{last}");
        if known(&one) {
            return one;
        }
    }
    path.to_owned()
}

fn schema(path: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    let (attributes, blocks) = match path.rsplit_once('/') {
        Some((_, "output")) => (OUTPUT, &[][..]),
        Some((_, "debug_metrics")) => (DEBUG_METRICS, &[][..]),
        _ => SCHEMAS
            .iter()
            .find(|(name, _, _)| *name == canonical(path))
            .map(|(_, attributes, blocks)| (*attributes, *blocks))?,
    };
    Some((attributes, blocks))
}

/// Names Alloy would not accept: unknown components, attributes or blocks,
/// and missing required ones. Empty when all is well.
pub fn check_names(blocks: &[Block]) -> Vec<String> {
    let mut problems = Vec::new();
    for block in blocks {
        check_block(block, &block.name, &mut problems);
    }
    problems
}

fn check_block(block: &Block, path: &str, problems: &mut Vec<String>) {
    let Some((attributes, nested)) = schema(path) else {
        problems.push(format!(
            "line {}: {path} is not in stack-tests' table of Alloy components; add it from the component's Arguments in grafana/alloy",
            block.line
        ));
        return;
    };
    let where_ = || match path.split_once('/') {
        Some((component, rest)) => format!("{component} (in {rest})"),
        None => path.to_owned(),
    };
    let http_client = WITH_PROMETHEUS_HTTP_CLIENT.contains(&path);
    for attribute in &block.attributes {
        let name = attribute.name.as_str();
        let known =
            attributes.contains(&name) || http_client && PROMETHEUS_HTTP_CLIENT.contains(&name);
        if let Some((_, _, instead)) = DEPRECATED
            .iter()
            .find(|(at, deprecated, _)| *at == path && *deprecated == name)
        {
            problems.push(format!(
                "line {}: {name} of {} is deprecated: use {instead}",
                attribute.line,
                where_()
            ));
        } else if !known {
            problems.push(format!(
                "line {}: {} is not an argument of {}{}",
                attribute.line,
                attribute.name,
                where_(),
                suggestion(&attribute.name, attributes)
            ));
        }
    }
    for child in &block.blocks {
        if nested.contains(&child.name.as_str()) {
            check_block(child, &format!("{path}/{}", child.name), problems);
        } else {
            problems.push(format!(
                "line {}: {} is not a block of {}{}",
                child.line,
                child.name,
                where_(),
                suggestion(&child.name, nested)
            ));
        }
    }
    let canonical = canonical(path);
    for (_, required) in REQUIRED.iter().filter(|(at, _)| *at == canonical) {
        if block.attribute(required).is_none() && block.block(required).is_none() {
            problems.push(format!(
                "line {}: {} needs {required}",
                block.line,
                where_()
            ));
        }
    }
}

/// `; did you mean x?` for a name one edit away from a known one.
fn suggestion(name: &str, known: &[&str]) -> String {
    let close = known.iter().find(|candidate| {
        let (a, b) = (name.as_bytes(), candidate.as_bytes());
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
        let suffix = short[prefix..]
            .iter()
            .rev()
            .zip(long.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        long.len() - short.len() <= 1 && prefix + suffix + 1 >= long.len()
    });
    close.map_or_else(String::new, |candidate| {
        format!("; did you mean {candidate}?")
    })
}

/// Values Alloy's `Validate()` would refuse with this environment (what
/// `sys.env` returns). Empty when all is well.
pub fn check_values(blocks: &[Block], env: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut problems = Vec::new();
    let string = |block: &Block, name: &str| {
        block
            .attribute(name)
            .and_then(|value| value.evaluate(env))
            .unwrap_or_default()
    };
    let number = |block: &Block, name: &str, default: u64| match block.attribute(name) {
        Some(Value::Number(number)) => number.parse().unwrap_or(default),
        _ => default,
    };
    for block in blocks {
        let id = block.id();
        let line = block.line;
        match block.name.as_str() {
            "otelcol.auth.basic" => match block.block("client_auth") {
                // Alloy does not refuse an empty client_auth, but then sends
                // no credentials at all: every export to Grafana Cloud is a
                // 401.
                Some(client_auth) => {
                    for name in ["username", "password"] {
                        if string(client_auth, name).is_empty()
                            && string(client_auth, &format!("{name}_file")).is_empty()
                        {
                            problems.push(format!(
                                "line {}: {id}: client_auth {name} is empty: no credentials are sent",
                                client_auth.line
                            ));
                        }
                    }
                }
                // Alloy ≥ 1.13 refuses the deprecated form without credentials.
                None if block.block("htpasswd").is_none() => {
                    let (username, password) =
                        (string(block, "username"), string(block, "password"));
                    if username.is_empty() && password.is_empty() {
                        problems.push(format!(
                            "line {line}: {id}: username and password are both empty: \"no credential source provided\""
                        ));
                    } else if !username.is_empty() && password.is_empty() {
                        problems.push(format!(
                            "line {line}: {id}: a username without a password: \"no password provided\""
                        ));
                    }
                }
                None => {}
            },
            // Defaults since Alloy 1.11: 2000 and 3000.
            "otelcol.processor.batch" => {
                let size = number(block, "send_batch_size", 2000);
                let max = number(block, "send_batch_max_size", 3000);
                if max > 0 && max < size {
                    problems.push(format!(
                        "line {line}: {id}: send_batch_max_size ({max}) is below send_batch_size ({size})"
                    ));
                }
            }
            "otelcol.processor.tail_sampling" => {
                check_tail_sampling(block, env, &mut problems);
            }
            // HistogramConfig.Validate(): exactly one kind of buckets, in
            // a unit it knows.
            "otelcol.connector.spanmetrics" => {
                if let Some(histogram) = block.block("histogram") {
                    let kinds = ["explicit", "exponential"]
                        .iter()
                        .filter(|kind| histogram.block(kind).is_some())
                        .count();
                    if kinds != 1 {
                        problems.push(format!(
                            "line {}: {id}: \"either exponential or explicit histogram configuration must be specified\", and only one",
                            histogram.line
                        ));
                    }
                    let unit = string(histogram, "unit");
                    if !["", "ms", "s"].contains(&unit.as_str()) {
                        problems.push(format!(
                            "line {}: {id}: unknown unit {unit:?}, allowed units are \"ms\" and \"s\"",
                            histogram.line
                        ));
                    }
                }
            }
            "otelcol.exporter.otlphttp" => {
                let endpoints = ["traces_endpoint", "metrics_endpoint", "logs_endpoint"];
                let client = block.block("client").map(|c| string(c, "endpoint"));
                if client.unwrap_or_default().is_empty()
                    && endpoints.iter().all(|e| string(block, e).is_empty())
                {
                    problems.push(format!(
                        "line {line}: {id}: \"at least one endpoint must be specified\""
                    ));
                }
            }
            "prometheus.remote_write" => {
                for endpoint in block.blocks.iter().filter(|b| b.name == "endpoint") {
                    if string(endpoint, "url").is_empty() {
                        problems.push(format!(
                            "line {}: {id}: endpoint url is empty",
                            endpoint.line
                        ));
                    }
                }
            }
            // pyroscope.receive_http: without listen_port the server takes
            // Alloy's default, 8080, and without listen_address it binds
            // every interface; neither is refused, but 8080 is nobody's
            // PYROSCOPE_SERVER_ADDRESS here.
            "pyroscope.receive_http" => {
                let port = block
                    .block("http")
                    .map(|http| number(http, "listen_port", RECEIVE_HTTP_DEFAULT_PORT))
                    .unwrap_or(RECEIVE_HTTP_DEFAULT_PORT);
                if port == RECEIVE_HTTP_DEFAULT_PORT {
                    problems.push(format!(
                        "line {line}: {id}: listens on Alloy's default port {port}: set http {{ listen_port }}"
                    ));
                }
            }
            // EndpointOptions.Validate() runs HTTPClientConfig.Validate():
            // at most one way to authenticate, and a basic_auth password
            // given once. An empty url passes Validate() but every push
            // fails.
            "pyroscope.write" => {
                for endpoint in block.blocks.iter().filter(|b| b.name == "endpoint") {
                    let at = endpoint.line;
                    if string(endpoint, "url").is_empty() {
                        problems.push(format!("line {at}: {id}: endpoint url is empty"));
                    }
                    let ways = ["basic_auth", "authorization", "oauth2"]
                        .iter()
                        .filter(|name| endpoint.block(name).is_some())
                        .count()
                        + ["bearer_token", "bearer_token_file"]
                            .iter()
                            .filter(|name| !string(endpoint, name).is_empty())
                            .count();
                    if ways > 1 {
                        problems.push(format!(
                            "line {at}: {id}: \"at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured\""
                        ));
                    }
                    if let Some(basic) = endpoint.block("basic_auth")
                        && !string(basic, "password").is_empty()
                        && !string(basic, "password_file").is_empty()
                    {
                        problems.push(format!(
                            "line {}: {id}: \"at most one of basic_auth password & password_file must be configured\"",
                            basic.line
                        ));
                    }
                }
            }
            "prometheus.exporter.redis" if string(block, "redis_addr").is_empty() => {
                problems.push(format!("line {line}: {id}: redis_addr is empty"));
            }
            "prometheus.exporter.postgres" => {
                let empty = match block.attribute("data_source_names") {
                    Some(Value::List(names)) => names
                        .iter()
                        .any(|name| name.evaluate(env).unwrap_or_default().is_empty()),
                    _ => true,
                };
                if empty {
                    problems.push(format!(
                        "line {line}: {id}: data_source_names holds an empty name"
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

/// A Go duration (`"30s"`, `"1m30s"`, `"500ms"`) in milliseconds; `None`
/// when Go's `time.ParseDuration` would refuse it.
fn duration_ms(text: &str) -> Option<f64> {
    if text == "0" {
        return Some(0.0);
    }
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&end| end > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// What `otelcol.processor.tail_sampling` refuses: its `Validate()`
/// (decision_wait and num_traces above zero) and what the processor checks
/// when it builds its policies (`loadSamplingPolicy`, the evaluators'
/// constructors): a name, unique; a known type; status codes it knows; a
/// sampling percentage that is a number once read from the environment.
fn check_tail_sampling(block: &Block, env: &dyn Fn(&str) -> String, problems: &mut Vec<String>) {
    let id = block.id();
    if let Some(wait) = block.attribute("decision_wait") {
        let ms = wait.evaluate(env).as_deref().and_then(duration_ms);
        if !ms.is_some_and(|ms| ms >= 1.0) {
            problems.push(format!(
                "line {}: {id}: \"decision_wait must be greater than zero\"",
                block.line
            ));
        }
    }
    if let Some(traces) = block.attribute("num_traces")
        && !traces.number(env).is_some_and(|n| n >= 1.0)
    {
        problems.push(format!(
            "line {}: {id}: \"num_traces must be greater than zero\"",
            block.line
        ));
    }
    let mut names = Vec::new();
    for policy in block.blocks.iter().filter(|b| b.name == "policy") {
        let line = policy.line;
        let name = policy
            .attribute("name")
            .and_then(|v| v.evaluate(env))
            .unwrap_or_default();
        if name.is_empty() {
            problems.push(format!(
                "line {line}: {id}: \"policy name cannot be empty\""
            ));
        } else if names.contains(&name) {
            problems.push(format!(
                "line {line}: {id}: \"duplicate policy name {name:?}\""
            ));
        }
        names.push(name.clone());
        let kind = policy
            .attribute("type")
            .and_then(|v| v.evaluate(env))
            .unwrap_or_default();
        if !POLICY_TYPES.contains(&kind.as_str()) {
            problems.push(format!(
                "line {line}: {id}: policy {name:?}: \"unknown sampling policy type {kind}\""
            ));
        } else if POLICY_KINDS.contains(&kind.as_str()) && policy.block(&kind).is_none() {
            // Alloy passes the zero value of the missing block: a policy
            // that never matches (or, for probabilistic, samples 0 %).
            problems.push(format!(
                "line {line}: {id}: policy {name:?} of type {kind} has no {kind} block"
            ));
        }
        if let Some(codes) = policy.block("status_code") {
            let known = ["OK", "ERROR", "UNSET"];
            let listed = match codes.attribute("status_codes") {
                Some(Value::List(codes)) => codes.iter().map(|c| c.evaluate(env)).collect(),
                _ => Vec::new(),
            };
            if listed.is_empty() {
                problems.push(format!(
                    "line {}: {id}: \"expected at least one status code to filter on\"",
                    codes.line
                ));
            }
            for code in listed {
                if !code.as_deref().is_some_and(|code| known.contains(&code)) {
                    problems.push(format!(
                        "line {}: {id}: unknown status code {code:?}, supported: OK, ERROR, UNSET",
                        codes.line
                    ));
                }
            }
        }
        if let Some(share) = policy.block("probabilistic") {
            let percent = share
                .attribute("sampling_percentage")
                .and_then(|v| v.number(env));
            if !percent.is_some_and(|p| p >= 0.0) {
                problems.push(format!(
                    "line {}: {id}: sampling_percentage is not a number of 0 or more",
                    share.line
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloy::parse;

    fn names(source: &str) -> Vec<String> {
        check_names(&parse(source).unwrap())
    }

    #[test]
    fn a_misspelt_argument_is_reported_with_the_right_name() {
        let problems = names(
            "prometheus.scrape \"x\" {\n  targets = []\n  forward_to = []\n  scrape_intervall = \"30s\"\n}\n",
        );
        assert_eq!(
            problems,
            [
                "line 4: scrape_intervall is not an argument of prometheus.scrape; did you mean scrape_interval?"
            ]
        );
    }

    #[test]
    fn the_profile_components_are_checked_against_their_arguments() {
        let problems = names(
            r#"
pyroscope.receive_http "r" {
  http {
    listen_adress = "0.0.0.0"
    listen_port   = 4040
  }
}
pyroscope.write "w" {
  endpoint {
    basic_auth {
      username = "u"
      pasword  = "p"
    }
  }
  tracing {
    jaeger_propagator = false
  }
}
"#,
        );
        assert_eq!(
            problems,
            [
                "line 4: listen_adress is not an argument of pyroscope.receive_http (in http); did you mean listen_address?",
                "line 2: pyroscope.receive_http needs forward_to",
                "line 12: pasword is not an argument of pyroscope.write (in endpoint/basic_auth); did you mean password?",
                "line 9: pyroscope.write (in endpoint) needs url",
            ],
        );
    }

    #[test]
    fn profile_values_alloy_refuses_or_nobody_sends_to_are_reported() {
        let blocks = parse(
            r#"
            pyroscope.receive_http "r" {
              forward_to = []
            }
            pyroscope.write "w" {
              endpoint {
                url          = sys.env("URL")
                bearer_token = "t"
                basic_auth {
                  password      = "p"
                  password_file = "/p"
                }
              }
            }
            "#,
        )
        .unwrap();
        let empty = |_: &str| String::new();
        let problems = check_values(&blocks, &empty);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("default port 8080"), "{problems:?}");
        assert!(
            problems[1].contains("endpoint url is empty"),
            "{problems:?}"
        );
        assert!(
            problems[2].contains("at most one of basic_auth, authorization"),
            "{problems:?}"
        );
        assert!(
            problems[3].contains("password & password_file"),
            "{problems:?}"
        );
    }

    #[test]
    fn nested_blocks_are_checked_against_their_own_arguments() {
        let problems = names(
            "otelcol.exporter.otlphttp \"x\" {\n  client {\n    endpoint = \"http://a\"\n    queue_size = 5\n  }\n  retry_on_falure {\n  }\n}\n",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .contains("queue_size is not an argument of otelcol.exporter.otlphttp (in client)")
        );
        assert!(problems[1].contains("retry_on_falure is not a block of otelcol.exporter.otlphttp; did you mean retry_on_failure?"));
    }

    #[test]
    fn missing_required_arguments_and_unknown_components_are_reported() {
        let problems =
            names("otelcol.processor.batch \"x\" {\n}\notelcol.processor.unknown \"y\" {\n}\n");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("otelcol.processor.batch needs output"));
        assert!(problems[1].contains("not in stack-tests' table"));
    }

    #[test]
    fn deprecated_arguments_are_reported_with_what_replaces_them() {
        let problems =
            names("otelcol.auth.basic \"x\" {\n  username = \"u\"\n  password = \"p\"\n}\n");
        assert_eq!(
            problems,
            [
                "line 2: username of otelcol.auth.basic is deprecated: use client_auth { username }",
                "line 3: password of otelcol.auth.basic is deprecated: use client_auth { password }",
            ]
        );
        let current = names(
            "otelcol.auth.basic \"x\" {\n  client_auth {\n    username = \"u\"\n    password = \"p\"\n  }\n}\n",
        );
        assert!(current.is_empty(), "{current:?}");
    }

    #[test]
    fn an_empty_client_auth_is_reported_as_sending_no_credentials() {
        let blocks = parse(
            "otelcol.auth.basic \"a\" {\n  client_auth {\n    username = sys.env(\"USER\")\n    password = sys.env(\"TOKEN\")\n  }\n}\n",
        )
        .unwrap();
        let only_user = |name: &str| {
            if name == "USER" {
                "123".into()
            } else {
                String::new()
            }
        };
        assert_eq!(
            check_values(&blocks, &only_user),
            [
                "line 2: otelcol.auth.basic.a: client_auth password is empty: no credentials are sent"
            ]
        );
        let both = |_: &str| "x".to_owned();
        assert!(check_values(&blocks, &both).is_empty());
    }

    #[test]
    fn a_span_metrics_histogram_needs_one_kind_of_buckets_in_a_unit_alloy_knows() {
        let config = |histogram: &str| {
            parse(&format!(
                "otelcol.connector.spanmetrics \"x\" {{\n  histogram {{\n{histogram}\n  }}\n  output {{ }}\n}}\n"
            ))
            .unwrap()
        };
        let empty = |_: &str| String::new();
        let problems = check_values(&config("    unit = \"us\""), &empty);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("either exponential or explicit"));
        assert!(problems[1].contains("unknown unit \"us\""));
        let both = config("    explicit { }\n    exponential { }");
        assert_eq!(check_values(&both, &empty).len(), 1);
        let fine = config("    unit = \"s\"\n    explicit { }");
        assert!(check_values(&fine, &empty).is_empty());
        assert!(check_names(&fine).is_empty(), "{:?}", check_names(&fine));
    }

    #[test]
    fn the_http_client_arguments_of_prometheus_components_are_accepted() {
        let problems = names(
            "prometheus.remote_write \"x\" {\n  endpoint {\n    url = \"http://a\"\n    bearer_token = \"t\"\n  }\n}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn values_alloy_refuses_are_reported_with_the_environment_they_come_from() {
        let blocks = parse(
            r#"
            otelcol.auth.basic "a" {
              username = sys.env("USER")
              password = sys.env("TOKEN")
            }
            otelcol.processor.batch "b" {
              send_batch_size = 8192
              output { }
            }
            otelcol.exporter.otlphttp "c" {
              client {
                endpoint = sys.env("ENDPOINT")
              }
            }
            "#,
        )
        .unwrap();
        let empty = |_: &str| String::new();
        let problems = check_values(&blocks, &empty);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("no credential source provided"));
        assert!(problems[1].contains("send_batch_max_size (3000) is below send_batch_size (8192)"));
        assert!(problems[2].contains("at least one endpoint"));

        let user_only = |name: &str| {
            if name == "USER" {
                "123".into()
            } else {
                "x".repeat(usize::from(name == "ENDPOINT"))
            }
        };
        let problems = check_values(&blocks, &user_only);
        assert!(problems[0].contains("no password provided"), "{problems:?}");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    const SAMPLING: &str = r#"
        otelcol.processor.tail_sampling "t" {
          decision_wait = "30s"
          policy {
            name = "errors"
            type = "status_code"
            status_code {
              status_codes = ["ERROR"]
            }
          }
          policy {
            name = "both"
            type = "and"
            and {
              and_sub_policy {
                name = "slow"
                type = "latency"
                latency {
                  threshold_ms = 1000
                }
              }
            }
          }
          policy {
            name = "share"
            type = "probabilistic"
            probabilistic {
              sampling_percentage = encoding.from_json(coalesce(sys.env("P"), "10"))
            }
          }
          output { }
        }
        "#;

    #[test]
    fn tail_sampling_policies_are_checked_where_they_nest() {
        assert!(names(SAMPLING).is_empty(), "{:?}", names(SAMPLING));
        let misplaced = names(
            "otelcol.processor.tail_sampling \"t\" {\n  policy {\n    name = \"a\"\n    type = \"and\"\n    and {\n      latency {\n        threshold_ms = 1\n      }\n      and_sub_policy {\n        name = \"b\"\n        type = \"latency\"\n        latency {\n          treshold_ms = 1\n        }\n      }\n    }\n  }\n  output { }\n}\n",
        );
        assert_eq!(misplaced.len(), 3, "{misplaced:?}");
        assert!(
            misplaced[0].contains(
                "latency is not a block of otelcol.processor.tail_sampling (in policy/and)"
            )
        );
        assert!(misplaced[1].contains("treshold_ms is not an argument of otelcol.processor.tail_sampling (in policy/and/and_sub_policy/latency); did you mean threshold_ms?"));
        assert!(misplaced[2].contains("needs threshold_ms"));
        let no_policy = names("otelcol.processor.tail_sampling \"t\" {\n  output { }\n}\n");
        assert_eq!(no_policy.len(), 1, "{no_policy:?}");
        assert!(no_policy[0].contains("needs policy"));
    }

    #[test]
    fn tail_sampling_values_the_processor_refuses_are_reported() {
        let blocks = parse(SAMPLING).unwrap();
        let unset = |_: &str| String::new();
        assert!(check_values(&blocks, &unset).is_empty());
        let not_a_number = |_: &str| "ten".to_owned();
        let problems = check_values(&blocks, &not_a_number);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("sampling_percentage is not a number"));

        let broken = SAMPLING
            .replace("\"30s\"", "\"0s\"")
            .replace("[\"ERROR\"]", "[\"Error\"]")
            .replace("\"share\"", "\"errors\"")
            .replace("\"and\"\n", "\"or\"\n");
        let problems = check_values(&parse(&broken).unwrap(), &unset);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("decision_wait must be greater than zero"));
        assert!(problems[1].contains("unknown status code Some(\"Error\")"));
        assert!(problems[2].contains("unknown sampling policy type or"));
        assert!(problems[3].contains("duplicate policy name \"errors\""));
    }

    #[test]
    fn go_durations_are_read_as_go_reads_them() {
        assert_eq!(duration_ms("30s"), Some(30_000.0));
        assert_eq!(duration_ms("1m30s"), Some(90_000.0));
        assert_eq!(duration_ms("500ms"), Some(500.0));
        assert_eq!(duration_ms("0"), Some(0.0));
        assert_eq!(duration_ms("30"), None);
        assert_eq!(duration_ms("s"), None);
    }
}

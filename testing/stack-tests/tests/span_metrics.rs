//! The span metrics and service graph the dashboards, alerts and guides
//! read are the ones Alloy's connectors in span-metrics.alloy produce, under the
//! names Prometheus (locally) and Mimir (Grafana Cloud) give them when they
//! arrive over OTLP. The names are derived here from the connectors'
//! arguments, so changing the namespace or the histogram's unit in
//! span-metrics.alloy without moving the dashboards fails.
//!
//! Sources, at the versions Alloy v1.18.1 bundles:
//! - Alloy's otelcol.connector.spanmetrics: `namespace` defaults to
//!   "traces.span.metrics", `histogram > unit` to "ms".
//! - collector-contrib v0.153 spanmetricsconnector: the metrics
//!   `<namespace>.calls` (a monotonic sum) and `<namespace>.duration` (a
//!   histogram in the histogram's unit), with the attributes service.name,
//!   span.name, span.kind, status.code and one per `dimension`; the span's
//!   resource attributes stay on the metric's resource (Prometheus makes
//!   `job` of service.namespace/service.name).
//! - servicegraphconnector: fixed names, traces_service_graph_request_total,
//!   _failed_total, _server_seconds and _client_seconds histograms, with the
//!   labels client, server, connection_type, failed.
//! - Prometheus' OTLP translation (escaping with suffixes, as the
//!   dashboards' other names show): every character outside [a-zA-Z0-9_]
//!   becomes `_`, the unit is appended (s → seconds, ms → milliseconds) and
//!   a monotonic sum gets `_total`; a histogram is read as `_bucket`, `_sum`
//!   and `_count`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use promql_parser::parser::{Expr, LabelModifier};
use regex::Regex;
use stack_tests::alloy::{self, Block, Value};
use test_support::docs::{GUIDES, dashboards, every_promql_query, repo_file as read};

/// `name` as Prometheus' OTLP translation writes it.
fn prometheus_name(name: &str, unit: &str, monotonic_sum: bool) -> String {
    let mut name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let unit = match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "" => "",
        other => panic!("unit {other} is not translated here"),
    };
    if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
        name = format!("{name}_{unit}");
    }
    if monotonic_sum && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

fn label(attribute: &str) -> String {
    prometheus_name(attribute, "", false)
}

fn string_attribute(block: &Block, name: &str) -> Option<String> {
    match block.attribute(name) {
        Some(Value::String(value)) => Some(value.clone()),
        None => None,
        Some(other) => panic!("{}: {name} is {other:?}, not a plain string", block.id()),
    }
}

/// What the connectors of span-metrics.alloy produce: `(metric names,
/// label names)`, histograms with each of their series.
fn produced() -> (BTreeSet<String>, BTreeSet<String>) {
    let blocks = alloy::parse(&read("grafana-alloy/span-metrics.alloy")).unwrap();
    let spanmetrics = blocks
        .iter()
        .find(|b| b.name == "otelcol.connector.spanmetrics")
        .expect(
            "span-metrics.alloy has an otelcol.connector.spanmetrics: the dashboards read its metrics",
        );
    let namespace = string_attribute(spanmetrics, "namespace")
        .unwrap_or_else(|| "traces.span.metrics".to_owned());
    let unit = spanmetrics
        .block("histogram")
        .and_then(|histogram| string_attribute(histogram, "unit"))
        .unwrap_or_else(|| "ms".to_owned());
    let prefix = if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}.")
    };
    // A histogram's series, and its family's name, which prose uses
    // (`traces_span_metrics_duration_seconds_{bucket,sum,count}`).
    let histogram = |name: String| {
        ["_bucket", "_sum", "_count", ""]
            .into_iter()
            .map(move |suffix| format!("{name}{suffix}"))
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    names.insert(prometheus_name(&format!("{prefix}calls"), "", true));
    names.extend(histogram(prometheus_name(
        &format!("{prefix}duration"),
        &unit,
        false,
    )));
    let mut labels: BTreeSet<String> = ["service.name", "span.name", "span.kind", "status.code"]
        .into_iter()
        .map(label)
        .collect();
    for dimension in spanmetrics.blocks.iter().filter(|b| b.name == "dimension") {
        labels.insert(label(&string_attribute(dimension, "name").unwrap()));
    }

    if blocks
        .iter()
        .any(|b| b.name == "otelcol.connector.servicegraph")
    {
        names.insert("traces_service_graph_request_total".into());
        names.insert("traces_service_graph_request_failed_total".into());
        for side in ["server", "client"] {
            names.extend(histogram(format!(
                "traces_service_graph_request_{side}_seconds"
            )));
        }
        labels.extend(["client", "server", "connection_type", "failed"].map(String::from));
    }
    // What an attributes processor the connectors send to adds (the
    // writer's collector.instance.id).
    for connector in blocks
        .iter()
        .filter(|b| b.name.starts_with("otelcol.connector."))
    {
        for reference in connector.references() {
            let Some(id) = reference
                .strip_prefix("otelcol.processor.attributes.")
                .and_then(|rest| rest.strip_suffix(".input"))
            else {
                continue;
            };
            let processor = blocks
                .iter()
                .find(|b| {
                    b.name == "otelcol.processor.attributes" && b.label.as_deref() == Some(id)
                })
                .unwrap_or_else(|| panic!("span-metrics.alloy does not define {reference}"));
            for action in processor.blocks.iter().filter(|b| b.name == "action") {
                if matches!(
                    string_attribute(action, "action").as_deref(),
                    Some("insert" | "upsert")
                ) {
                    labels.insert(label(&string_attribute(action, "key").unwrap()));
                }
            }
        }
    }
    // From the resource (job, instance) and the histogram (le).
    labels.extend(["job", "instance", "le"].map(String::from));
    (names, labels)
}

/// The span-metric and service-graph names a text mentions: Alloy's and
/// Tempo's generator's (`traces_spanmetrics_*`) alike, so a name left from
/// Tempo is found too.
fn mentioned(text: &str) -> BTreeSet<String> {
    let pattern = Regex::new(r"\btraces_(?:span_?metrics|service_graph)[a-z_]*").unwrap();
    pattern
        .find_iter(text)
        .map(|found| found.as_str().to_owned())
        .collect()
}

/// Label names a PromQL expression uses on the selectors of `names`, and
/// in `by`/`without` of aggregations over them.
fn labels_used(expr: &Expr, names: &BTreeSet<String>, found: &mut BTreeSet<String>) -> bool {
    match expr {
        Expr::VectorSelector(selector)
        | Expr::MatrixSelector(promql_parser::parser::MatrixSelector { vs: selector, .. }) => {
            let ours = selector
                .name
                .as_ref()
                .is_some_and(|name| names.contains(name));
            if ours {
                found.extend(selector.matchers.matchers.iter().map(|m| m.name.clone()));
            }
            ours
        }
        Expr::Aggregate(aggregate) => {
            let ours = labels_used(&aggregate.expr, names, found);
            if ours
                && let Some(LabelModifier::Include(labels) | LabelModifier::Exclude(labels)) =
                    &aggregate.modifier
            {
                found.extend(labels.labels.iter().cloned());
            }
            ours
        }
        Expr::Unary(unary) => labels_used(&unary.expr, names, found),
        Expr::Binary(binary) => {
            let left = labels_used(&binary.lhs, names, found);
            labels_used(&binary.rhs, names, found) || left
        }
        Expr::Paren(paren) => labels_used(&paren.expr, names, found),
        Expr::Subquery(subquery) => labels_used(&subquery.expr, names, found),
        // Every argument is walked (no short circuit): each may hold labels.
        Expr::Call(call) => {
            let mut ours = false;
            for arg in &call.args.args {
                ours |= labels_used(arg, names, found);
            }
            ours
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
    }
}

#[test]
fn the_connectors_names_are_derived_as_the_contract_says() {
    let (names, labels) = produced();
    for name in [
        "traces_span_metrics_calls_total",
        "traces_span_metrics_duration_seconds_bucket",
        "traces_service_graph_request_total",
    ] {
        assert!(names.contains(name), "{name} not in {names:?}");
    }
    for label in ["service_name", "span_name", "span_kind", "status_code"] {
        assert!(labels.contains(label), "{label} not in {labels:?}");
    }
}

#[test]
fn every_span_metric_the_dashboards_alerts_and_guides_name_is_one_alloy_produces() {
    let (names, _) = produced();
    let mut files: Vec<String> = dashboards();
    files.extend(test_support::docs::alert_rule_files());
    files.extend(GUIDES.iter().map(|guide| (*guide).to_owned()));
    let mut seen = 0;
    for file in files {
        for name in mentioned(&read(&file)) {
            assert!(
                names.contains(&name),
                "{file} names {name}, which span-metrics.alloy's connectors do not produce; they produce {names:?}"
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no dashboard reads the span metrics any more");
}

#[test]
fn every_label_queried_on_a_span_metric_is_one_alloy_produces() {
    let (names, labels) = produced();
    let mut checked = 0;
    for (file, query) in every_promql_query() {
        let expr = promql_parser::parser::parse(&query).unwrap();
        let mut found = BTreeSet::new();
        if labels_used(&expr, &names, &mut found) {
            checked += 1;
        }
        for label in found.difference(&labels) {
            if label == "__name__" {
                continue;
            }
            panic!(
                "{file}: {query} asks for the label {label}, which the connectors do not set; they set {labels:?}"
            );
        }
    }
    assert!(checked > 0, "no query reads the span metrics");
}

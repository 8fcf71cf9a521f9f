//! The alerting rules compose loads into the local Prometheus: mounted where
//! its configuration looks for them, in PromQL that parses, the ones an
//! operator needs all there. (`promtool check rules` also runs on them in
//! scripts/test.sh; the series they name are held to the keep-lists in
//! guides.rs, to the exporters in exporters.rs, and to what the services
//! export in crates/demo/tests/e2e/metrics.rs.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::mounted_in_lgtm;
use test_support::docs::{ALERT_RULES, alert_rules, repo_file as read, repo_path};

mod common;

#[test]
fn compose_loads_every_rule_file_into_the_local_prometheus() {
    // run-prometheus.sh starts Prometheus with --config.file=./prometheus.yaml
    // in /otel-lgtm.
    assert_eq!(
        mounted_in_lgtm("grafana/prometheus.yaml"),
        "/otel-lgtm/prometheus.yaml"
    );
    let rules_dir = mounted_in_lgtm("grafana/alerts");
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("grafana/prometheus.yaml")).unwrap();
    let globs: Vec<&str> = config["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|glob| glob.as_str().unwrap())
        .collect();
    assert_eq!(globs, [format!("{rules_dir}/*.yml")]);
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_path("grafana/alerts"))
        .unwrap()
        .map(|entry| {
            format!(
                "grafana/alerts/{}",
                entry.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    assert_eq!(
        on_disk,
        ALERT_RULES.iter().map(|f| (*f).to_owned()).collect()
    );
    assert!(ALERT_RULES.iter().all(|file| file.ends_with(".yml")));
}

#[test]
fn every_alert_parses_and_the_ones_an_operator_needs_are_there() {
    let mut alerts = BTreeSet::new();
    for file in ALERT_RULES {
        for (alert, expr) in alert_rules(&read(file)) {
            assert!(alerts.insert(alert.clone()), "{file}: {alert} twice");
            if let Err(err) = promql_parser::parser::parse(&expr) {
                panic!("{file}: {alert}: {err}");
            }
        }
    }
    // What an operator must not miss (issue 11).
    for wanted in [
        "GamenightApiErrors",
        "GamenightApiSlow",
        "GamenightOutboxBacklogGrowing",
        "GamenightNotificationsDead",
        "GamenightDeadLetters",
        "GamenightServiceSilent",
        "AlloyExportFailing",
    ] {
        assert!(alerts.contains(wanted), "no {wanted} rule");
    }
}

//! The alerting rules compose loads into the local Prometheus: mounted where
//! its configuration looks for them, the ones an operator needs all there.
//! (`promtool check rules` also runs on them in scripts/test.sh, and
//! `promtool test rules` on their unit tests in grafana/alert-tests; their
//! PromQL and the series it names are checked with every other query in
//! queries.rs, exporters.rs and tools/demo/tests/e2e/metrics.rs.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::mounted_in_lgtm;
use test_support::docs::{alert_rule_files, alert_rules, files_in, repo_file as read};

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
    // Prometheus reads only what the glob matches: a rule file named
    // otherwise would be left out without a word.
    assert_eq!(files_in("grafana/alerts", ""), alert_rule_files());
}

#[test]
fn the_alerts_an_operator_needs_are_there_once_each() {
    let mut alerts = BTreeSet::new();
    for file in alert_rule_files() {
        for (alert, _) in alert_rules(&read(&file)) {
            assert!(alerts.insert(alert.clone()), "{file}: {alert} twice");
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
        "GamenightDiscordInvalidRequests",
        "GamenightDiscordUnavailable",
        "GamenightNotificationsExpired",
    ] {
        assert!(alerts.contains(wanted), "no {wanted} rule");
    }
}

/// The rules whose thresholds are arithmetic on counters, where a slip
/// (a window, a comparison, a counter's first sample) leaves an alert that
/// never fires: `promtool test rules` must run them through their cases.
const UNIT_TESTED: [&str; 3] = [
    "GamenightDiscordInvalidRequests",
    "GamenightDiscordUnavailable",
    "GamenightNotificationsExpired",
];

/// The unit tests in grafana/alert-tests (run by `promtool test rules` in
/// scripts/test.sh) load the very rule files Prometheus loads, name only
/// alerts those define, and test the ones in [`UNIT_TESTED`].
#[test]
fn the_rule_unit_tests_test_the_rules_prometheus_loads() {
    let defined: BTreeSet<String> = alert_rule_files()
        .iter()
        .flat_map(|file| alert_rules(&read(file)))
        .map(|(alert, _)| alert)
        .collect();
    let test_files = files_in("grafana/alert-tests", ".yml");
    assert!(!test_files.is_empty(), "no rule unit tests");
    let mut tested = BTreeSet::new();
    for file in &test_files {
        let tests: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(file)).unwrap();
        let loaded: Vec<String> = tests["rule_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|path| {
                let path = path.as_str().unwrap();
                format!("grafana/{}", path.strip_prefix("../").unwrap())
            })
            .collect();
        assert_eq!(loaded, alert_rule_files(), "{file} tests other rules");
        for case in tests["tests"].as_sequence().unwrap() {
            for check in case["alert_rule_test"].as_sequence().unwrap() {
                let alert = check["alertname"].as_str().unwrap();
                assert!(defined.contains(alert), "{file} tests {alert}, no rule");
                tested.insert(alert.to_owned());
            }
        }
    }
    for alert in UNIT_TESTED {
        assert!(tested.contains(alert), "no unit test of {alert}");
    }
}

//! Every PromQL expression a reader pastes or Grafana and Prometheus run
//! (the guides' blocks, the dashboards' targets, the alerting rules): it
//! parses, and the scraped series it names survive config.alloy's
//! keep-lists. Whether the exporters send those series at all is
//! exporters.rs's question; the services' own metrics are checked end to end
//! in crates/demo/tests/e2e/metrics.rs.

#![allow(clippy::unwrap_used)]

use regex::Regex;
use stack_tests::alloy;
use test_support::docs::{every_promql_query, promql_metric_names, repo_file as read};

#[test]
fn every_promql_query_parses() {
    let queries = every_promql_query();
    for (file, query) in &queries {
        if let Err(err) = promql_parser::parser::parse(query) {
            panic!("{file}: {query:?}: {err}");
        }
    }
    let from = |prefix: &str| {
        queries
            .iter()
            .filter(|(f, _)| f.starts_with(prefix))
            .count()
    };
    assert!(
        from("grafana/dashboards/") >= 15,
        "too few dashboard queries"
    );
    assert!(from("grafana/alerts/") >= 8, "too few alerting rules");
}

/// A scraped series a query asks for must survive the keep-lists, or the
/// reader sees no data.
#[test]
fn every_scraped_metric_a_guide_dashboard_or_alert_queries_is_on_a_keep_list() {
    let keep_lists: Vec<Regex> = alloy::parse(&read("grafana-alloy/config.alloy"))
        .unwrap()
        .into_iter()
        .filter(|block| block.name == "prometheus.relabel")
        .flat_map(|block| block.strings("regex"))
        .map(|regex| Regex::new(&format!("^(?:{regex})$")).unwrap())
        .collect();
    assert!(keep_lists.len() >= 4, "config.alloy's keep-lists are gone");
    const SCRAPED: [&str; 6] = [
        "pg_",
        "redis_",
        "rabbitmq_",
        "otelcol_",
        "prometheus_remote_storage_",
        "alloy_",
    ];
    let mut checked = 0;
    for (file, query) in every_promql_query() {
        for name in promql_metric_names(&query).unwrap() {
            if SCRAPED.iter().any(|prefix| name.starts_with(prefix)) {
                assert!(
                    keep_lists.iter().any(|keep| keep.is_match(&name)),
                    "{file} queries {name}, which config.alloy's keep-lists drop: readers would see no data"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} scraped series found in the queries"
    );
}

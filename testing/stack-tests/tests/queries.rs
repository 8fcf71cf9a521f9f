//! Every PromQL expression a reader pastes or Grafana and Prometheus run
//! (the guides' blocks, the dashboards' targets, the alerting rules): it
//! parses, and the scraped series it names survive Alloy's keep-lists. Whether the exporters send those series at all is
//! exporters.rs's question; the services' own metrics are checked end to end
//! in tools/demo/tests/e2e/metrics.rs.

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
    let keep_lists: Vec<Regex> = alloy::blocks(&alloy::load_compose(alloy::COMPOSE).unwrap())
        .into_iter()
        .filter(|block| block.name == "prometheus.relabel")
        .flat_map(|block| block.strings("regex"))
        .map(|regex| Regex::new(&format!("^(?:{regex})$")).unwrap())
        .collect();
    assert!(keep_lists.len() >= 4, "Alloy's keep-lists are gone");
    let mut checked = 0;
    for (file, query) in every_promql_query() {
        for name in promql_metric_names(&query).unwrap() {
            if scraped_source(&name).is_some() {
                assert!(
                    keep_lists.iter().any(|keep| keep.is_match(&name)),
                    "{file} queries {name}, which Alloy's keep-lists drop: readers would see no data"
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

/// The scraped source a metric name comes from, by its prefix.
fn scraped_source(name: &str) -> Option<&'static check_telemetry::Scraped> {
    check_telemetry::SCRAPED.iter().find(|scraped| {
        scraped
            .prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix))
    })
}

/// `check-telemetry` looks for exactly the scraped series that something
/// queries: one it did not look for could be missing unnoticed, one nobody
/// queries would be reported missing for nothing.
#[test]
fn the_check_telemetry_looks_for_every_scraped_series_something_queries() {
    use std::collections::BTreeSet;
    let mut queried: BTreeSet<(&str, String)> = BTreeSet::new();
    for (_, query) in every_promql_query() {
        for name in promql_metric_names(&query).unwrap() {
            if let Some(scraped) = scraped_source(&name) {
                queried.insert((scraped.source, name));
            }
        }
    }
    let looked_for: BTreeSet<(&str, String)> = check_telemetry::SCRAPED
        .iter()
        .flat_map(|scraped| {
            scraped
                .series
                .iter()
                .map(|name| (scraped.source, (*name).to_owned()))
        })
        .collect();
    assert_eq!(
        looked_for.difference(&queried).collect::<Vec<_>>(),
        Vec::<&(&str, String)>::new(),
        "the check looks for series nothing queries"
    );
    assert_eq!(
        queried.difference(&looked_for).collect::<Vec<_>>(),
        Vec::<&(&str, String)>::new(),
        "queried series the check does not look for (add them to check_telemetry::SCRAPED)"
    );
}

/// Each source's keep-list, as the check names it, is a `prometheus.relabel`
/// of the file it names, among those compose mounts, and its scrape a
/// `prometheus.scrape` of the source's name.
#[test]
fn the_keep_lists_and_scrapes_the_check_telemetry_names_exist() {
    let files = alloy::load_compose(alloy::COMPOSE).unwrap();
    let has = |blocks: &[alloy::Block], name: &str, label: &str| {
        blocks
            .iter()
            .any(|block| block.name == name && block.label.as_deref() == Some(label))
    };
    for scraped in check_telemetry::SCRAPED {
        let file = files
            .iter()
            .find(|file| file.path == format!("grafana-alloy/{}", scraped.keep_list_file))
            .unwrap_or_else(|| panic!("compose mounts no {}", scraped.keep_list_file));
        assert!(
            has(&file.blocks, "prometheus.relabel", scraped.keep_list),
            "{scraped:?}"
        );
        assert!(
            has(&alloy::blocks(&files), "prometheus.scrape", scraped.source),
            "{scraped:?}"
        );
    }
}

/// The README shows the questions `check-telemetry` asks, for readers to
/// paste into Explore: they are the ones it asks (and the TraceQL and LogQL
/// are parsed with the other guides' by scripts/check-queries.cjs).
#[test]
fn the_readme_shows_the_queries_the_check_telemetry_asks() {
    let readme = read("README.md");
    let blocks = |language| test_support::docs::code_blocks(&readme, language);
    assert!(
        blocks("traceql").contains(&vec![check_telemetry::traceql("api")]),
        "README lacks {}",
        check_telemetry::traceql("api")
    );
    assert!(
        blocks("promql").contains(&vec![check_telemetry::services_selector()]),
        "README lacks {}",
        check_telemetry::services_selector()
    );
    assert!(
        blocks("logql").contains(&vec![check_telemetry::logql(10)]),
        "README lacks {}",
        check_telemetry::logql(10)
    );
}

//! What several of these test files read the same way.

#![allow(dead_code)] // each test file uses part of it

use regex::Regex;
use stack_tests::alloy;
use test_support::docs::repo_file as read;

/// The scraped series a query names (PostgreSQL, Redis, RabbitMQ and
/// Alloy's own) that none of config.alloy's keep-lists keeps: a query about
/// them would find no data.
pub(crate) fn dropped_by_keep_lists(query: &str) -> Vec<String> {
    let keep_lists: Vec<Regex> = alloy::parse(&read("grafana-alloy/config.alloy"))
        .unwrap()
        .into_iter()
        .filter(|block| block.name == "prometheus.relabel")
        .flat_map(|block| block.strings("regex"))
        .map(|regex| Regex::new(&format!("^(?:{regex})$")).unwrap())
        .collect();
    assert!(keep_lists.len() >= 4, "config.alloy's keep-lists are gone");
    let scraped =
        Regex::new(r"\b(?:pg|redis|rabbitmq|otelcol|prometheus_remote_storage|alloy)_[a-z_]+")
            .unwrap();
    scraped
        .find_iter(query)
        .map(|m| m.as_str().to_owned())
        .filter(|name| !keep_lists.iter().any(|keep| keep.is_match(name)))
        .collect()
}

/// The `volumes` of lgtm in docker-compose.base.yml: `(host path without
/// ./, container path)`.
pub(crate) fn lgtm_mounts() -> Vec<(String, String)> {
    let base: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.base.yml")).unwrap();
    base["services"]["lgtm"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|mount| {
            let parts: Vec<&str> = mount.as_str().unwrap().split(':').collect();
            (
                parts[0].trim_start_matches("./").to_owned(),
                parts[1].to_owned(),
            )
        })
        .collect()
}

/// Where compose mounts `host` (a path in the repository) into lgtm.
pub(crate) fn mounted_in_lgtm(host: &str) -> String {
    lgtm_mounts()
        .into_iter()
        .find(|(from, _)| from == host)
        .map(|(_, to)| to)
        .unwrap_or_else(|| panic!("compose does not mount {host} into lgtm"))
}

//! The dashboards compose provisions into the local Grafana: loaded from
//! where compose mounts them, querying only through data sources that exist
//! both locally and in Grafana Cloud, in PromQL that parses.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::mounted_in_lgtm;
use test_support::docs::{DASHBOARDS, dashboard_promql, repo_file as read, repo_path};

mod common;

/// The data-source UIDs grafana/otel-lgtm provisions (its
/// grafana-datasources.yaml at the version compose pins).
const LGTM_DATASOURCE_UIDS: [&str; 4] = ["prometheus", "tempo", "loki", "pyroscope"];

fn dashboard(file: &str) -> serde_json::Value {
    serde_json::from_str(&read(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// Every `"datasource": {"type": …, "uid": …}` in `value`.
fn datasources(value: &serde_json::Value, found: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(ds)) = map.get("datasource") {
                let field = |name: &str| ds.get(name).and_then(|v| v.as_str()).unwrap_or_default();
                found.push((field("type").to_owned(), field("uid").to_owned()));
            }
            map.values().for_each(|value| datasources(value, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|value| datasources(value, found)),
        _ => {}
    }
}

#[test]
fn compose_provisions_every_dashboard_and_opens_on_the_overview() {
    let base: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.base.yml")).unwrap();
    let lgtm = &base["services"]["lgtm"];
    let provider: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("grafana/provisioning/dashboards.yaml")).unwrap();
    assert!(
        mounted_in_lgtm("grafana/provisioning/dashboards.yaml")
            .starts_with("/otel-lgtm/grafana/conf/provisioning/dashboards/"),
        "the provider file must sit in lgtm's dashboards provisioning directory"
    );
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(
        mounted_in_lgtm("grafana/dashboards"),
        path,
        "the provider loads another directory than compose mounts"
    );
    let mut uids = BTreeSet::new();
    for file in DASHBOARDS {
        let uid = dashboard(file)["uid"].as_str().unwrap().to_owned();
        assert!(uids.insert(uid.clone()), "{file}: uid {uid} is taken");
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_path("grafana/dashboards"))
        .unwrap()
        .map(|entry| {
            format!(
                "grafana/dashboards/{}",
                entry.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    assert_eq!(
        on_disk,
        DASHBOARDS.iter().map(|f| (*f).to_owned()).collect()
    );
    let home = lgtm["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let file = home.strip_prefix(&format!("{path}/")).unwrap();
    assert!(
        DASHBOARDS.contains(&format!("grafana/dashboards/{file}").as_str()),
        "the home dashboard {home} is not one compose mounts"
    );
}

/// A panel names its data source through a dashboard variable of the right
/// type, so the same JSON works locally (uid `prometheus`) and imported
/// into Grafana Cloud (uid `grafanacloud-<stack>-prom`), or by one of the
/// UIDs lgtm provisions.
#[test]
fn every_query_goes_through_a_datasource_variable_or_a_provisioned_uid() {
    for file in DASHBOARDS {
        let dashboard = dashboard(file);
        let variables: Vec<(String, String)> = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == "datasource")
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["query"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut found = Vec::new();
        datasources(&dashboard["panels"], &mut found);
        assert!(!found.is_empty(), "{file}: no panel names a data source");
        for (kind, uid) in found {
            let ok = match uid.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
                Some(name) => variables.iter().any(|(v, q)| v == name && *q == kind),
                None => LGTM_DATASOURCE_UIDS.contains(&uid.as_str()),
            };
            assert!(
                ok,
                "{file}: data source {kind} {uid:?} is neither a {kind} variable nor provisioned"
            );
        }
        // Links to Explore name Tempo the same way.
        for link in read(file).split("\"url\": \"").skip(1) {
            let url = link.split('"').next().unwrap();
            if url.starts_with("/explore") {
                assert!(
                    url.contains("%24%7Btempo%7D"),
                    "{file}: {url} does not use ${{tempo}}"
                );
            }
        }
    }
}

#[test]
fn every_promql_expression_in_the_dashboards_parses() {
    let mut checked = 0;
    for file in DASHBOARDS {
        for expr in dashboard_promql(&dashboard(file)) {
            if let Err(err) = promql_parser::parser::parse(&expr) {
                panic!("{file}: {expr:?}: {err}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} expressions found");
}

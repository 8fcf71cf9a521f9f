//! The dashboards compose provisions into the local Grafana: loaded from
//! where compose mounts them, querying only through data sources that exist
//! both locally and in Grafana Cloud. (Their PromQL is checked with every
//! other query in queries.rs.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::mounted_in_lgtm;
use test_support::docs::{dashboards, json_objects, repo_file as read};

mod common;

/// The data-source UIDs grafana/otel-lgtm provisions (its
/// grafana-datasources.yaml at the version compose pins).
const LGTM_DATASOURCE_UIDS: [&str; 4] = ["prometheus", "tempo", "loki", "pyroscope"];

fn dashboard(file: &str) -> serde_json::Value {
    serde_json::from_str(&read(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
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
    let files = dashboards();
    assert!(
        files.len() >= 2,
        "the overview and infrastructure dashboards: {files:?}"
    );
    let mut uids = BTreeSet::new();
    for file in &files {
        let uid = dashboard(file)["uid"].as_str().unwrap().to_owned();
        assert!(uids.insert(uid.clone()), "{file}: uid {uid} is taken");
    }
    let home = lgtm["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let file = home.strip_prefix(&format!("{path}/")).unwrap();
    assert!(
        files.contains(&format!("grafana/dashboards/{file}")),
        "the home dashboard {home} is not one compose mounts"
    );
}

/// A panel names its data source through a dashboard variable of the right
/// type, so the same JSON works locally (uid `prometheus`) and imported
/// into Grafana Cloud (uid `grafanacloud-<stack>-prom`), or by one of the
/// UIDs lgtm provisions.
#[test]
fn every_query_goes_through_a_datasource_variable_or_a_provisioned_uid() {
    for file in dashboards() {
        let dashboard = dashboard(&file);
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
        let objects = json_objects(&dashboard["panels"]);
        let found: Vec<(&str, &str)> = objects
            .iter()
            .filter_map(|object| object.get("datasource")?.as_object())
            .map(|ds| {
                let field = |name: &str| ds.get(name).and_then(|v| v.as_str()).unwrap_or_default();
                (field("type"), field("uid"))
            })
            .collect();
        assert!(!found.is_empty(), "{file}: no panel names a data source");
        for (kind, uid) in found {
            let ok = match uid.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
                Some(name) => variables.iter().any(|(v, q)| v == name && q == kind),
                None => LGTM_DATASOURCE_UIDS.contains(&uid),
            };
            assert!(
                ok,
                "{file}: data source {kind} {uid:?} is neither a {kind} variable nor provisioned"
            );
        }
        // Links to Explore name Tempo the same way.
        let explore = objects
            .iter()
            .filter_map(|object| object.get("url")?.as_str())
            .filter(|url| url.starts_with("/explore"));
        for url in explore {
            assert!(
                url.contains("%24%7Btempo%7D"),
                "{file}: {url} does not use ${{tempo}}"
            );
        }
    }
}

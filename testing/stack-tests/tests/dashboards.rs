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

/// Where grafana/otel-lgtm's Grafana reads its data sources: the file its
/// Dockerfile copies (`COPY grafana-datasources.yaml
/// /otel-lgtm/grafana/conf/provisioning/datasources/` at v0.31.0).
const LGTM_DATASOURCES_FILE: &str =
    "/otel-lgtm/grafana/conf/provisioning/datasources/grafana-datasources.yaml";

/// The profile type the services push (crates/telemetry's CPU profiles,
/// issue 23's contract).
const CPU_PROFILE_TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn provisioned_datasources() -> Vec<serde_yaml_ng::Value> {
    let file: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("grafana/datasources.yaml")).unwrap();
    file["datasources"].as_sequence().unwrap().clone()
}

/// Compose mounts grafana/datasources.yaml over the image's own file, so
/// it is the whole of what the local Grafana provisions: it must keep every
/// data source the image defines (the UIDs dashboards rely on), and its
/// Tempo links spans to a Pyroscope data source it defines, by UID, for the
/// profile type the services push, matching a span's service.name to the
/// profile's service_name label.
#[test]
fn the_tempo_data_source_links_spans_to_the_pyroscope_data_source_lgtm_provisions() {
    assert_eq!(
        mounted_in_lgtm("grafana/datasources.yaml"),
        LGTM_DATASOURCES_FILE,
        "mounted anywhere else, the image's file still provisions Tempo without tracesToProfiles"
    );
    let datasources = provisioned_datasources();
    let uids: BTreeSet<&str> = datasources
        .iter()
        .map(|ds| ds["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        uids,
        BTreeSet::from(LGTM_DATASOURCE_UIDS),
        "grafana/datasources.yaml replaces the image's file: it must define the image's data sources"
    );
    let tempo = datasources
        .iter()
        .find(|ds| ds["type"] == "tempo")
        .expect("no Tempo data source");
    let link = &tempo["jsonData"]["tracesToProfiles"];
    let uid = link["datasourceUid"]
        .as_str()
        .expect("the Tempo data source has no tracesToProfiles.datasourceUid");
    let target = datasources
        .iter()
        .find(|ds| ds["uid"] == uid)
        .unwrap_or_else(|| panic!("tracesToProfiles names {uid:?}, which nothing provisions"));
    assert_eq!(
        target["type"], "grafana-pyroscope-datasource",
        "tracesToProfiles names {uid:?}, which is not a Pyroscope data source"
    );
    assert_eq!(
        link["profileTypeId"], CPU_PROFILE_TYPE,
        "tracesToProfiles opens another profile type than the services push"
    );
    assert_eq!(
        link["customQuery"], false,
        "the link's query is built from the tags"
    );
    let tags: Vec<(&str, &str)> = link["tags"]
        .as_sequence()
        .expect("tracesToProfiles has no tags")
        .iter()
        .map(|tag| (tag["key"].as_str().unwrap(), tag["value"].as_str().unwrap()))
        .collect();
    assert_eq!(tags, [("service.name", "service_name")]);
}

/// The overview shows the CPU flame graph of each service that pushes
/// profiles (compose's PYROSCOPE_SERVER_ADDRESS), through a Pyroscope
/// data-source variable, for the profile type the Tempo link opens.
#[test]
fn the_overview_shows_each_profiled_services_flame_graph() {
    let base: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.base.yml")).unwrap();
    let profiled: Vec<&str> = base["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, service)| {
            service["environment"]
                .get("PYROSCOPE_SERVER_ADDRESS")
                .is_some()
        })
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    assert!(
        !profiled.is_empty(),
        "compose gives no service PYROSCOPE_SERVER_ADDRESS"
    );
    let overview = dashboard("grafana/dashboards/gamenight-overview.json");
    let objects = json_objects(&overview["panels"]);
    let flame_graphs: Vec<&serde_json::Map<String, serde_json::Value>> = objects
        .iter()
        .filter(|panel| panel.get("type").and_then(|t| t.as_str()) == Some("flamegraph"))
        .copied()
        .collect();
    for service in profiled {
        let selector = format!("{{service_name=\"{service}\"}}");
        let found = flame_graphs.iter().any(|panel| {
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|target| {
                    target["datasource"]["type"] == "grafana-pyroscope-datasource"
                        && target["queryType"] == "profile"
                        && target["profileTypeId"] == CPU_PROFILE_TYPE
                        && target["labelSelector"] == selector.as_str()
                })
        });
        assert!(
            found,
            "the overview has no flame graph of {CPU_PROFILE_TYPE} for {selector}"
        );
    }
}

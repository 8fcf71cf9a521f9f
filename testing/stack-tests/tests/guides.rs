//! What the guides ask readers to paste: PromQL blocks that parse (the
//! series they name are checked in queries.rs), exporter labels Alloy
//! reports, and `docker compose` commands about what compose defines.

#![allow(clippy::unwrap_used)]

use regex::Regex;
use stack_tests::alloy;
use test_support::docs::{GUIDES, code_blocks, promql_block_expressions, repo_file as read};

/// The ```promql blocks of a markdown file.
fn promql_blocks(markdown: &str) -> Vec<String> {
    code_blocks(markdown, "promql")
        .into_iter()
        .map(|lines| lines.join("\n"))
        .collect()
}

#[test]
fn every_promql_query_in_the_guides_parses() {
    let mut checked = 0;
    for guide in GUIDES {
        for block in promql_blocks(&read(guide)) {
            let parsed = promql_block_expressions(&block);
            assert!(parsed.is_ok(), "{guide}: {}", parsed.unwrap_err());
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} PromQL blocks found");
}

/// Alloy's self-metrics label each exporter `<collector type>/<component
/// id>`; a guide that names another value (the type before the collector
/// renamed it, a component that does not exist) shows the reader nothing.
#[test]
fn every_exporter_label_in_the_guides_names_an_exporter_compose_runs() {
    let exporters: Vec<String> = alloy::blocks(&alloy::load_compose(alloy::COMPOSE).unwrap())
        .iter()
        .filter_map(|block| {
            let (_, kind) = alloy::schema::EXPORTER_TYPES
                .iter()
                .find(|(component, _)| *component == block.name)?;
            Some(format!("{kind}/{}", block.id()))
        })
        .collect();
    assert!(
        !exporters.is_empty(),
        "the Alloy files compose mounts define no otelcol exporter"
    );
    let label = Regex::new(r#"exporter="([^"]*)""#).unwrap();
    let value = Regex::new(r"`((?:otlp|otlphttp|otlp_http)[a-z_]*/otelcol\.[a-z_.]+)`").unwrap();
    let mut checked = 0;
    for guide in GUIDES {
        let text = read(guide);
        for found in label.captures_iter(&text).chain(value.captures_iter(&text)) {
            assert!(
                exporters.contains(&found[1].to_owned()),
                "{guide}: {:?} is not an exporter label Alloy {} reports; compose's Alloy has: {exporters:?}",
                &found[1],
                alloy::schema::ALLOY_VERSION
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} exporter labels found in the guides"
    );
}

/// `docker compose` lines in the docs name services and profiles that
/// docker-compose.yml defines: a typo there is the first thing a reader
/// would hit ("no such service").
#[test]
fn every_docker_compose_command_in_the_docs_names_what_compose_defines() {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|key| key.as_str().unwrap()).collect();
    let profiles: Vec<&str> = services
        .values()
        .filter_map(|service| service.get("profiles"))
        .flat_map(|profiles| profiles.as_sequence().unwrap())
        .map(|profile| profile.as_str().unwrap())
        .collect();
    let command = Regex::new(r"docker compose ((?:--profile \S+ )*)([a-z]+)([^`|#)\n]*)").unwrap();
    let mut checked = 0;
    for doc in GUIDES
        .iter()
        .chain(&["grafana-alloy/SETUP_GRAFANA_CLOUD.md"])
    {
        for found in command.captures_iter(&read(doc)) {
            for profile in found[1].split_whitespace().filter(|w| *w != "--profile") {
                assert!(
                    profiles.contains(&profile),
                    "{doc}: no profile {profile:?} in docker-compose.yml"
                );
            }
            let args: Vec<&str> = found[3]
                .split_whitespace()
                .filter(|a| !a.starts_with('-'))
                .collect();
            let services_named: &[&str] = match &found[2] {
                "up" | "ps" | "logs" | "restart" | "stop" | "start" | "build" | "pull" => &args,
                // exec SERVICE COMMAND..., run SERVICE [ARGS...]
                "exec" | "run" => &args[..1],
                "down" | "config" | "version" => &[],
                other => {
                    panic!("{doc}: docker compose {other}: a command these checks do not know")
                }
            };
            for service in services_named {
                assert!(
                    names.contains(service),
                    "{doc}: {}: no service {service:?} in docker-compose.yml",
                    &found[0]
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} docker compose commands found"
    );
}

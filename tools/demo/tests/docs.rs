//! The docs list exactly the variables the binaries declare, as their
//! command lines (`<binary> --help`) declare them.
//!
//! The boundary, RUNTIME_CONFIG.md's own structure:
//! - the tables of "Service settings" and "Fault switches" are exactly the
//!   variables api, worker and bot declare beyond the telemetry group, each
//!   row saying which of them read it;
//! - the first table of "Telemetry (all services)" is exactly the telemetry
//!   group; the variables under its "Read by the OpenTelemetry SDK" heading
//!   are the SDK's, which no binary of ours declares;
//! - the check-telemetry table holds only what check-telemetry declares,
//!   and everything it declares is documented (two of its variables are
//!   Alloy's, in the Alloy table);
//! - the Compose and Alloy sections are checked against the compose files
//!   and the Alloy files compose mounts by testing/stack-tests.
//!
//! .env.example has a line for every variable a binary declares, and every
//! variable it sets is documented in RUNTIME_CONFIG.md.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use service_runtime::cli::variables;
use test_support::docs::repo_file;

const SERVICES: [&str; 3] = ["api", "worker", "bot"];

/// Each variable api, worker and bot declare beyond the telemetry group,
/// with the services that declare it.
fn service_variables() -> BTreeMap<String, BTreeSet<&'static str>> {
    let telemetry = telemetry_variables();
    let commands = [
        api::config::command(),
        worker::config::command(),
        bot::config::command(),
    ];
    let mut declared: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (service, command) in SERVICES.into_iter().zip(commands) {
        for var in variables(&command) {
            if !telemetry.contains(&var) {
                declared.entry(var).or_default().insert(service);
            }
        }
    }
    declared
}

fn telemetry_variables() -> BTreeSet<String> {
    variables(&telemetry::TelemetryConfig::augment_args(
        clap::Command::new("t"),
    ))
    .into_iter()
    .collect()
}

fn check_telemetry_variables() -> BTreeSet<String> {
    variables(&check_telemetry::Config::augment_args(clap::Command::new(
        "t",
    )))
    .into_iter()
    .collect()
}

/// The text under `## {heading}`, up to the next heading of any level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("RUNTIME_CONFIG.md has no section {heading:?}"));
    let body = &doc[start + heading.len() + 5..];
    let end = body.find("\n#").unwrap_or(body.len());
    &body[..end]
}

/// The variables of each table row in `text`: those in backticks in its
/// first cell, and its second cell.
fn rows(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let vars = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|word| {
                    !word.is_empty()
                        && word
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(str::to_owned)
                .collect();
            (vars, cells[2].to_owned())
        })
        .collect()
}

fn env_example_sets(env_example: &str, var: &str) -> bool {
    env_example.lines().any(|line| {
        line.trim_start_matches("# ")
            .starts_with(&format!("{var}="))
    })
}

#[test]
fn the_service_tables_are_exactly_what_the_services_declare() {
    let doc = repo_file("RUNTIME_CONFIG.md");
    let declared = service_variables();
    let mut documented: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for heading in ["Service settings", "Fault switches"] {
        for (vars, read_by) in rows(section(&doc, heading)) {
            let readers: BTreeSet<&str> = read_by
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter_map(|word| SERVICES.into_iter().find(|service| *service == word))
                .collect();
            for var in vars {
                documented.insert(var, readers.clone());
            }
        }
    }
    for (var, services) in &declared {
        assert_eq!(
            documented.get(var),
            Some(services),
            "{var} is declared by {services:?}: RUNTIME_CONFIG.md must say so in \
             \"Service settings\" or \"Fault switches\""
        );
    }
    for var in documented.keys() {
        assert!(
            declared.contains_key(var),
            "RUNTIME_CONFIG.md documents {var} for a service, but no service declares it"
        );
    }
}

#[test]
fn the_telemetry_table_is_exactly_the_telemetry_group() {
    let doc = repo_file("RUNTIME_CONFIG.md");
    let documented: BTreeSet<String> = rows(section(&doc, "Telemetry (all services)"))
        .into_iter()
        .flat_map(|(vars, _)| vars)
        .collect();
    assert_eq!(documented, telemetry_variables());
}

#[test]
fn what_check_telemetry_declares_is_documented_and_nothing_more() {
    let doc = repo_file("RUNTIME_CONFIG.md");
    let declared = check_telemetry_variables();
    for (vars, _) in rows(section(&doc, "check-telemetry")) {
        for var in vars {
            assert!(
                declared.contains(&var),
                "RUNTIME_CONFIG.md documents {var} for check-telemetry, which does not declare it"
            );
        }
    }
    for var in &declared {
        assert!(
            doc.contains(&format!("| `{var}` |")),
            "check-telemetry declares {var}, which RUNTIME_CONFIG.md does not document"
        );
    }
}

#[test]
fn env_example_sets_every_declared_variable_and_only_documented_ones() {
    let doc = repo_file("RUNTIME_CONFIG.md");
    let env_example = repo_file(".env.example");
    let declared = service_variables()
        .into_keys()
        .chain(telemetry_variables())
        .chain(check_telemetry_variables());
    for var in declared {
        assert!(
            env_example_sets(&env_example, &var),
            "{var} is missing from .env.example"
        );
    }
    for line in env_example.lines() {
        let line = line.trim_start_matches("# ");
        let Some((var, _)) = line.split_once('=') else {
            continue;
        };
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue;
        }
        assert!(
            doc.contains(&format!("`{var}`")),
            ".env.example sets {var}, which RUNTIME_CONFIG.md does not document"
        );
    }
}

/// `--help` shows `[env: X=value]` for a variable that is set: never for a
/// secret.
#[test]
fn help_never_shows_the_value_of_a_secret() {
    const SECRETS: [&str; 4] = [
        "DATABASE_URL",
        "RABBITMQ_URL",
        "REDIS_URL",
        "DISCORD_WEBHOOK_URL",
    ];
    let mut commands = vec![
        api::config::command(),
        worker::config::command(),
        bot::config::command(),
    ];
    let mut seen = BTreeSet::new();
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            let Some(var) = arg.get_env().and_then(|var| var.to_str()) else {
                continue;
            };
            if SECRETS.contains(&var) {
                assert!(
                    arg.is_hide_env_values_set(),
                    "{} --help would show the value of {var}",
                    command.get_name()
                );
                seen.insert(var.to_owned());
            }
        }
        commands.extend(command.get_subcommands().cloned());
    }
    assert_eq!(seen.len(), SECRETS.len(), "{seen:?}");
}

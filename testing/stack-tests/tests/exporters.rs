//! The scraped series that Alloy's keep-lists keep, and that the
//! dashboards, alerts and guides ask for, read off the real exporters: the
//! postgres and redis exporters Alloy embeds (Debian's packages of them, run
//! against the local servers) and RabbitMQ's own endpoint. A keep-list or a
//! query that names a series no exporter sends shows the reader nothing.
//!
//! Needs the exporters, which scripts/test.sh fetches into target/tools
//! (`GAMENIGHT_EXPORTERS` names the directory) and RabbitMQ's
//! rabbitmq_prometheus plugin (port 15692, `RABBITMQ_PROMETHEUS_URL`), so
//! it is ignored by a plain `cargo test`; scripts/test.sh runs it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stack_tests::alloy;
use test_support::docs::{every_promql_query, promql_metric_names};

/// An exporter process, killed when dropped.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET http://{address}{path}`, retried for up to 20 s while
/// the server starts.
fn get(address: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = TcpStream::connect(address).and_then(|mut stream| {
            write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.") && response.contains(" 200 ") => {
                return response.split_once("\r\n\r\n").unwrap().1.to_owned();
            }
            other if Instant::now() > deadline => panic!("{address}{path}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The metric names of a Prometheus text exposition.
fn names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

fn start(binary: &str, args: &[String], env: &[(&str, String)]) -> Exporter {
    let directory = PathBuf::from(
        std::env::var("GAMENIGHT_EXPORTERS")
            .expect("GAMENIGHT_EXPORTERS: the directory of the exporters scripts/test.sh fetches"),
    );
    let child = Command::new(directory.join(binary))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("{binary}: {err}"));
    Exporter(child)
}

/// The alternatives of a keep-list regex, split at its top-level `|`.
fn alternatives(regex: &str) -> Vec<String> {
    let (mut depth, mut current, mut found) = (0, String::new(), Vec::new());
    for c in regex.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth == 0 => {
                found.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    found.push(current);
    found
}

#[test]
#[ignore = "needs the exporters scripts/test.sh fetches; it runs this file"]
fn every_scraped_series_the_keep_lists_and_queries_name_is_exported() {
    let postgres_port = free_port();
    let database = test_support::database_url();
    let separator = if database.contains('?') { '&' } else { '?' };
    let _postgres = start(
        "prometheus-postgres-exporter",
        &[format!("--web.listen-address=127.0.0.1:{postgres_port}")],
        &[(
            "DATA_SOURCE_NAME",
            format!("{database}{separator}sslmode=disable"),
        )],
    );
    let redis_port = free_port();
    let _redis = start(
        "prometheus-redis-exporter",
        &[
            "-redis.addr".to_owned(),
            test_support::redis_url(),
            "-web.listen-address".to_owned(),
            format!("127.0.0.1:{redis_port}"),
        ],
        &[],
    );
    let rabbitmq = std::env::var("RABBITMQ_PROMETHEUS_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:15692/metrics".to_owned());
    let (rabbitmq_address, rabbitmq_path) = rabbitmq
        .trim_start_matches("http://")
        .split_once('/')
        .unwrap();
    let exported = [
        (
            "postgres",
            names(&get(&format!("127.0.0.1:{postgres_port}"), "/metrics")),
        ),
        (
            "redis",
            names(&get(&format!("127.0.0.1:{redis_port}"), "/metrics")),
        ),
        (
            "rabbitmq",
            names(&get(rabbitmq_address, &format!("/{rabbitmq_path}"))),
        ),
    ];
    for (source, names) in &exported {
        assert!(names.len() > 10, "{source}: only {names:?}");
    }

    // Every alternative of a keep-list keeps at least one real series.
    let blocks = alloy::blocks(&alloy::load_compose(alloy::COMPOSE).unwrap());
    for (source, names) in &exported {
        let relabel = blocks
            .iter()
            .find(|block| {
                block.name == "prometheus.relabel" && block.label.as_deref() == Some(*source)
            })
            .unwrap_or_else(|| panic!("no prometheus.relabel \"{source}\""));
        for regex in relabel.strings("regex") {
            for alternative in alternatives(&regex) {
                // `up` is made by the scrape itself, not the exporter.
                if alternative == "up" {
                    continue;
                }
                let keep = regex::Regex::new(&format!("^(?:{alternative})$")).unwrap();
                assert!(
                    names.iter().any(|name| keep.is_match(name)),
                    "Alloy keeps {alternative:?} for {source}, which matches nothing it exports"
                );
            }
        }
    }

    // Every scraped series a dashboard, alert or guide asks for.
    let all: BTreeSet<&String> = exported.iter().flat_map(|(_, names)| names).collect();
    let mut checked = 0;
    for (file, query) in every_promql_query() {
        for name in promql_metric_names(&query).unwrap() {
            if ["pg_", "redis_", "rabbitmq_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                assert!(
                    all.contains(&name),
                    "{file} asks for {name}, which no exporter sends"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} scraped series found in the queries"
    );
}

//! The dashboards and guides ask Prometheus for the services' metrics by
//! the names Prometheus gives them; a name nobody sends is an empty panel.

use std::collections::BTreeSet;
use std::time::Duration;

use test_support::docs::{DASHBOARDS, GUIDES, code_blocks, dashboard_promql, repo_file as read};

use crate::helpers::Running;

/// The names of the services' own metrics in a PromQL expression: the
/// semantic-convention families they export and everything `gamenight_`.
fn service_metrics(expr: &str) -> Vec<String> {
    const FAMILIES: [&str; 4] = ["gamenight_", "http_server_", "db_client_", "messaging_"];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| FAMILIES.iter().any(|family| word.starts_with(family)))
        // A label of those families, not a series.
        .filter(|word| !word.starts_with("messaging_rabbitmq_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_service_metric_the_dashboards_and_guides_query_is_exported() {
    let running = Running::start(&[]).await;
    running.create_game(chrono::Duration::hours(3), 60).await;
    running
        .discord
        .wait_for_requests(1, Duration::from_secs(60))
        .await;
    // Observable gauges (backlogs, depths) go out with each export (every
    // second here), and everything with the last one at shutdown.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (receiver, _) = running.stop().await;
    let exported: BTreeSet<String> = receiver
        .metrics()
        .iter()
        .flat_map(otlp_testkit::Metric::prometheus_names)
        .collect();

    let mut queries: Vec<(String, String)> = Vec::new();
    for file in DASHBOARDS {
        let dashboard = serde_json::from_str(&read(file)).unwrap();
        queries.extend(
            dashboard_promql(&dashboard)
                .into_iter()
                .map(|q| (file.to_owned(), q)),
        );
    }
    for guide in GUIDES {
        for block in code_blocks(&read(guide), "promql") {
            queries.push((guide.to_owned(), block.join("\n")));
        }
    }
    let mut checked = 0;
    for (file, query) in &queries {
        for name in service_metrics(query) {
            assert!(
                exported.contains(&name),
                "{file} asks for {name}, which no service exports; exported: {exported:#?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} service metrics found in the queries"
    );
}

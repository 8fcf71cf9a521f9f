//! The dashboards, alerts and guides ask Prometheus for the services'
//! metrics by the names Prometheus gives them; a name nobody sends is an
//! empty panel, or an alert that never fires.

use std::collections::BTreeSet;
use std::time::Duration;

use test_support::Reply;
use test_support::docs::{every_promql_query, promql_metric_names};

use crate::helpers::Running;

/// The services' own metrics among the names an expression selects: the
/// semantic-convention families they export and everything `gamenight_`
/// (the others are scraped, or made by Prometheus, like `target_info`).
fn service_metrics(query: &str) -> Vec<String> {
    const FAMILIES: [&str; 4] = ["gamenight_", "http_server_", "db_client_", "messaging_"];
    promql_metric_names(query)
        .unwrap_or_else(|err| panic!("{query:?}: {err}"))
        .into_iter()
        .filter(|name| FAMILIES.iter().any(|family| name.starts_with(family)))
        .collect()
}

#[tokio::test]
async fn every_service_metric_the_dashboards_alerts_and_guides_query_is_exported() {
    let running = Running::start(&[]).await;
    // A 429 first: the Discord instruments a smooth run leaves silent (429s,
    // invalid requests, the wait it imposes) then have samples to export.
    running.discord.reply_next([Reply::RateLimited(0.5)]);
    running.create_game(chrono::Duration::hours(3), 60).await;
    running
        .discord
        .wait_for_requests(2, Duration::from_secs(60))
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

    let mut checked = 0;
    for (file, query) in every_promql_query() {
        for name in service_metrics(&query) {
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

//! The repository's documents, for tests that hold them to the code.

use std::path::PathBuf;

/// The documents a reader follows: the README, the Grafana Cloud setup and
/// the six testing phases.
pub const GUIDES: [&str; 8] = [
    "README.md",
    "grafana-alloy/SETUP_GRAFANA_CLOUD.md",
    "grafana-alloy/TESTING_PHASE1.md",
    "grafana-alloy/TESTING_PHASE2.md",
    "grafana-alloy/TESTING_PHASE3.md",
    "grafana-alloy/TESTING_PHASE4.md",
    "grafana-alloy/TESTING_PHASE5.md",
    "grafana-alloy/TESTING_PHASE6.md",
];

/// The Grafana dashboards compose provisions (and users import into
/// Grafana Cloud).
pub const DASHBOARDS: [&str; 1] = ["grafana/dashboards/gamenight-overview.json"];

/// The PromQL of every panel target in `dashboard` (a dashboard's JSON),
/// with Grafana's interval variables replaced by a duration so that a
/// PromQL parser reads it as Grafana would send it. Other variables are left
/// as they are: a parser then refuses them, as Prometheus would.
pub fn dashboard_promql(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    found.push(
                        expr.replace("$__rate_interval", "1m")
                            .replace("$__interval", "1m")
                            .replace("$__range", "1h"),
                    );
                }
                map.values().for_each(|value| walk(value, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|value| walk(value, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(dashboard, &mut found);
    found
}

/// A path relative to the repository root.
pub fn repo_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

/// The text of a file at the repository root.
///
/// # Panics
/// When it cannot be read: the test cannot check what is not there.
pub fn repo_file(name: &str) -> String {
    let path = repo_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The fenced code blocks of `markdown` tagged `language` (```sh), each as
/// its lines, trimmed.
pub fn code_blocks(markdown: &str, language: &str) -> Vec<Vec<String>> {
    let opening = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines().map(str::trim) {
        match &mut current {
            None if line == opening => current = Some(Vec::new()),
            None => {}
            Some(_) if line == "```" => blocks.extend(current.take()),
            Some(lines) => lines.push(line.to_owned()),
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_promql_is_found_in_nested_panels_with_intervals_replaced() {
        let dashboard = serde_json::json!({
            "panels": [
                {"targets": [{"expr": "rate(x_total[$__rate_interval])"}]},
                {"type": "row", "panels": [{"targets": [{"expr": "y"}]}]}
            ]
        });
        assert_eq!(dashboard_promql(&dashboard), ["rate(x_total[1m])", "y"]);
    }

    #[test]
    fn only_blocks_of_the_language_are_returned_trimmed() {
        let markdown = "text\n```sh\n  curl x\n```\n```promql\nup\n```\n```sh\n```\n";
        assert_eq!(
            code_blocks(markdown, "sh"),
            [vec!["curl x".to_owned()], Vec::new()]
        );
        assert_eq!(code_blocks(markdown, "promql"), [vec!["up".to_owned()]]);
    }

    #[test]
    fn every_guide_exists() {
        for guide in GUIDES {
            assert!(repo_path(guide).exists(), "{guide}");
        }
    }
}

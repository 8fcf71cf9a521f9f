//! The repository's documents, for tests that hold them to the code.

use std::path::PathBuf;

/// The documents a reader follows: the README and the reference under
/// docs/, the Grafana Cloud setup, the eight testing phases and the
/// dashboards' and alerts' guide.
pub const GUIDES: [&str; 15] = [
    "README.md",
    "docs/API.md",
    "docs/DELIVERY.md",
    "docs/TESTING.md",
    "docs/PERFORMANCE.md",
    "grafana/README.md",
    "grafana-alloy/SETUP_GRAFANA_CLOUD.md",
    "grafana-alloy/TESTING_PHASE1.md",
    "grafana-alloy/TESTING_PHASE2.md",
    "grafana-alloy/TESTING_PHASE3.md",
    "grafana-alloy/TESTING_PHASE4.md",
    "grafana-alloy/TESTING_PHASE5.md",
    "grafana-alloy/TESTING_PHASE6.md",
    "grafana-alloy/TESTING_PHASE7.md",
    "grafana-alloy/TESTING_PHASE8.md",
];

/// The files of `directory` (relative to the repository root) whose names
/// end in `extension`, as `directory/name`, sorted: what Grafana's
/// dashboard provider and Prometheus' `rule_files` glob load.
///
/// # Panics
/// When the directory cannot be read.
pub fn files_in(directory: &str, extension: &str) -> Vec<String> {
    let path = repo_path(directory);
    let mut files: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(extension))
        .map(|name| format!("{directory}/{name}"))
        .collect();
    files.sort();
    files
}

/// The Grafana dashboards compose provisions (and users import into
/// Grafana Cloud): every JSON file of grafana/dashboards.
pub fn dashboards() -> Vec<String> {
    files_in("grafana/dashboards", ".json")
}

/// Every JSON object in `value`, itself included, depth first.
pub fn json_objects(value: &serde_json::Value) -> Vec<&serde_json::Map<String, serde_json::Value>> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            serde_json::Value::Object(map) => {
                found.push(map);
                pending.extend(map.values().rev());
            }
            serde_json::Value::Array(items) => pending.extend(items.iter().rev()),
            _ => {}
        }
    }
    found
}

/// The PromQL of every panel target in `dashboard` (a dashboard's JSON),
/// with Grafana's interval variables replaced by a duration so that a
/// PromQL parser reads it as Grafana would send it. Other variables are left
/// as they are: a parser then refuses them, as Prometheus would.
pub fn dashboard_promql(dashboard: &serde_json::Value) -> Vec<String> {
    json_objects(dashboard)
        .into_iter()
        .filter_map(|object| object.get("expr")?.as_str())
        .map(|expr| {
            expr.replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
        })
        .collect()
}

/// The Prometheus alerting-rule files compose loads into the local
/// Prometheus (and users load into Grafana Cloud): every `.yml` file of
/// grafana/alerts, as the `rule_files` glob reads them.
pub fn alert_rule_files() -> Vec<String> {
    files_in("grafana/alerts", ".yml")
}

/// `(alert, expr)` of every rule in a Prometheus rule file's text.
///
/// # Panics
/// When the text is not a rule file: the test cannot check what it cannot
/// read.
pub fn alert_rules(yaml: &str) -> Vec<(String, String)> {
    let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("a YAML rule file");
    let groups = file["groups"]
        .as_sequence()
        .expect("a rule file has groups");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("a group has rules"))
        .map(|rule| {
            let field = |name: &str| rule[name].as_str().unwrap_or_default().trim().to_owned();
            (field("alert"), field("expr"))
        })
        .collect()
}

/// The metric names a PromQL expression selects (`rate(x_total[5m])` → `x_total`),
/// or the parser's error.
pub fn promql_metric_names(query: &str) -> Result<Vec<String>, String> {
    use promql_parser::parser::Expr;
    fn walk(expr: &Expr, names: &mut Vec<String>) {
        match expr {
            Expr::Aggregate(aggregate) => {
                walk(&aggregate.expr, names);
                if let Some(param) = &aggregate.param {
                    walk(param, names);
                }
            }
            Expr::Unary(unary) => walk(&unary.expr, names),
            Expr::Binary(binary) => {
                walk(&binary.lhs, names);
                walk(&binary.rhs, names);
            }
            Expr::Paren(paren) => walk(&paren.expr, names),
            Expr::Subquery(subquery) => walk(&subquery.expr, names),
            Expr::VectorSelector(selector) => names.extend(selector.name.clone()),
            Expr::MatrixSelector(matrix) => names.extend(matrix.vs.name.clone()),
            Expr::Call(call) => call.args.args.iter().for_each(|arg| walk(arg, names)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    let expr = promql_parser::parser::parse(query)?;
    let mut names = Vec::new();
    walk(&expr, &mut names);
    Ok(names)
}

/// The PromQL of a guide's ```promql block: one expression, or one per line.
///
/// # Errors
/// The line that does not parse, with the parser's error.
pub fn promql_block_expressions(block: &str) -> Result<Vec<String>, String> {
    if promql_parser::parser::parse(block).is_ok() {
        return Ok(vec![block.to_owned()]);
    }
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            promql_parser::parser::parse(line)
                .map(|_| line.to_owned())
                .map_err(|err| format!("{line:?}: {err}"))
        })
        .collect()
}

/// Every PromQL expression a reader or Grafana runs: the dashboards'
/// targets, the alerting rules' expressions and the guides' ```promql
/// blocks, each with the file it comes from.
///
/// # Panics
/// When a file cannot be read, or a guide's block does not parse.
pub fn every_promql_query() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for file in dashboards() {
        let dashboard =
            serde_json::from_str(&repo_file(&file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        queries.extend(
            dashboard_promql(&dashboard)
                .into_iter()
                .map(|q| (file.clone(), q)),
        );
    }
    for file in alert_rule_files() {
        let rules = alert_rules(&repo_file(&file));
        queries.extend(rules.into_iter().map(|(_, q)| (file.clone(), q)));
    }
    for guide in GUIDES {
        for block in code_blocks(&repo_file(guide), "promql") {
            let expressions = promql_block_expressions(&block.join("\n"))
                .unwrap_or_else(|err| panic!("{guide}: {err}"));
            queries.extend(expressions.into_iter().map(|q| (guide.to_owned(), q)));
        }
    }
    queries
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
    fn metric_names_are_the_selectors_not_the_labels() {
        let names = promql_metric_names(
            "sum by (job) (rate(a_total{job=\"x\"}[5m])) / histogram_quantile(0.9, b_bucket) > 0 \
             and deriv(sum(c)[10m:1m]) > 0 or absent_over_time(d[2m])",
        )
        .unwrap();
        assert_eq!(names, ["a_total", "b_bucket", "c", "d"]);
        assert!(promql_metric_names("sum(").is_err());
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

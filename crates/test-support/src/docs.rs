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

//! Every command in README.md, docs/ and the guides that calls the API, run as
//! written against a real api: a reader who copies them gets what the docs
//! promise, and a change to the API that breaks them fails here.

use test_support::docs::{GUIDES, code_blocks, repo_file};

use crate::helpers::TestApp;

/// The published address the docs use.
const API: &str = "localhost:8000";

/// The ```sh blocks of a Markdown file, each as its logical lines
/// (backslash continuations joined).
fn shell_blocks(markdown: &str) -> Vec<Vec<String>> {
    code_blocks(markdown, "sh")
        .into_iter()
        .map(|lines| {
            let mut logical = Vec::new();
            let mut pending = String::new();
            for line in lines {
                match line.strip_suffix('\\') {
                    Some(start) => {
                        pending.push_str(start.trim_end());
                        pending.push(' ');
                    }
                    None => {
                        pending.push_str(&line);
                        logical.push(std::mem::take(&mut pending));
                    }
                }
            }
            logical
        })
        .collect()
}

/// The lines of a block a reader runs against the API, and the variables
/// they use (`id=$(curl ...)`, `at=$(date ...)`); `docker compose` lines and
/// calls to other ports are left out.
fn api_commands(block: &[String]) -> Vec<String> {
    block
        .iter()
        .filter(|line| {
            let assignment = line.split_once("=$(").is_some_and(|(name, _)| {
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            line.contains(API) || assignment
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_api_command_in_the_docs_works_as_written() {
    let app = TestApp::spawn().await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    // For the commands that take the id of a game created before.
    let game = app.create_game(4).await;
    let mut run = 0;
    for doc in GUIDES {
        for block in shell_blocks(&repo_file(doc)) {
            let commands = api_commands(&block);
            if !commands.iter().any(|command| command.contains(API)) {
                continue;
            }
            // Any 4xx or 5xx fails curl, and so the script.
            let script = format!(
                "set -euo pipefail\n\
                 curl() {{ command curl --fail-with-body --show-error \"$@\"; }}\n\
                 id={}\n{}\n",
                game.id,
                commands
                    .join("\n")
                    .replace(API, &address)
                    .replace("<id>", "$id")
            );
            let output = tokio::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{doc}: a command fails as written:\n{script}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            run += commands.iter().filter(|c| c.contains(API)).count();
        }
    }
    // README (quick start), docs/API.md (the API tour), SETUP, phases 1, 3, 5
    // and 6.
    assert!(run >= 15, "only {run} API commands found in the docs");
}

#[test]
fn continuation_lines_are_joined_and_other_commands_left_out() {
    let block = &shell_blocks(
        "text\n```sh\ndocker compose up -d\nid=$(curl -s -X POST localhost:8000/games \\\n  -d '{}' \\\n  | sed x)\ncurl -s localhost:12345/metrics\n```\n",
    )[0];
    assert_eq!(block.len(), 3);
    assert_eq!(
        api_commands(block),
        ["id=$(curl -s -X POST localhost:8000/games -d '{}' | sed x)"]
    );
}

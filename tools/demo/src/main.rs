//! `cargo run -p demo`: start the three services against the local servers,
//! create a game, and print the trace it produced and its log lines.
//!
//! `demo service <api [migrate]|worker|bot>` runs one service (the stack
//! starts itself that way).

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use demo::{Names, Options, Stack, render};
use otlp_testkit::{Receiver, Trace};
use test_support::FakeDiscord;

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = demo::service_if_asked().await {
        return code;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    println!("gamenight demo: api, worker and bot, one trace across all three\n");
    let receiver = Receiver::start()
        .await
        .context("cannot start the OTLP receiver")?;
    let discord = FakeDiscord::start().await;
    println!("  OTLP receiver   {}", receiver.http_endpoint());
    println!(
        "  Discord webhook {} (a local stand-in)",
        discord.webhook_url()
    );

    let binary = std::env::current_exe().context("cannot find the demo executable")?;
    let names = Names::unique("demo").await;
    // Removed on the way out, whether the demo succeeds or fails.
    let _removed = names.removed_on_drop();
    let options = Options {
        otlp_endpoint: receiver.http_endpoint(),
        webhook_url: Some(discord.webhook_url()),
        extra_env: Vec::new(),
    };
    let stack = Stack::start(&binary, names, &options).await?;
    println!("  api             {}\n", stack.api_url);

    let scheduled_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let body = serde_json::json!({
        "title": "Catan night",
        "host": "ada",
        "scheduled_at": scheduled_at.to_rfc3339(),
        "max_players": 4,
        "reminder_minutes": 60,
    });
    println!("→ POST {}/games {body}", stack.api_url);
    let response = reqwest::Client::new()
        .post(format!("{}/games", stack.api_url))
        .json(&body)
        .send()
        .await
        .context("cannot reach the api")?;
    println!("← {}\n", response.status());
    let game: serde_json::Value = response.json().await?;

    println!("waiting for the bot's announcement…");
    let posted = discord.wait_for_requests(1, Duration::from_secs(60)).await;
    println!("← Discord got: {}\n", posted[0].body["content"]);

    let request = receiver.wait_for_span("POST /games").await?;
    let trace_id = request.trace_id();
    // The webhook call is the last span of the trace.
    receiver
        .wait_for_condition("the webhook call in the trace", |spans, _, _| {
            spans
                .iter()
                .any(|s| s.trace_id() == trace_id && s.str_attr("url.template").is_some())
                .then_some(())
        })
        .await?;
    for (name, status) in stack.stop().await? {
        if !status.success() {
            println!("  {name} exited with {status}");
        }
    }

    let trace = Trace {
        spans: receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id() == trace_id)
            .collect(),
    };
    let services: std::collections::BTreeSet<&str> =
        trace.spans.iter().map(|s| s.service_name()).collect();
    println!(
        "trace {trace_id}: {} spans across {} for game {}\n",
        trace.spans.len(),
        services.into_iter().collect::<Vec<_>>().join(", "),
        game["id"].as_str().unwrap_or("?")
    );
    print!("{}", render::trace_tree(&trace));
    println!("\nlog lines with trace_id {trace_id}:\n");
    print!(
        "{}",
        render::log_lines(&receiver.logs_with_trace_id(&trace_id))
    );
    println!(
        "\nIn Grafana the same trace is one search away: Tempo, TraceQL {{ trace:id = \"{trace_id}\" }}."
    );
    Ok(())
}

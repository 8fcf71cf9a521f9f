//! `sweep`: removes what killed test runs left on the servers the tests
//! share (databases, exchanges, queues), as `scripts/test.sh` does before
//! every run. See `test_support::sweep`.

// A command-line tool: its report is its output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use test_support::sweep::{self, Select};

#[derive(Parser)]
#[command(about = "Removes test databases, exchanges and queues left behind by killed runs")]
struct Args {
    /// Remove what tests made longer ago than this many minutes: runs
    /// still going made theirs more recently.
    #[arg(long, default_value_t = 60, conflicts_with = "stamp")]
    older_than_minutes: u64,
    /// Remove everything carrying this stamp (`<unix seconds>_<8 hex>`),
    /// whatever its age.
    #[arg(long)]
    stamp: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let select = match &args.stamp {
        Some(stamp) => Select::Stamp(stamp),
        None => Select::OlderThan(Duration::from_secs(args.older_than_minutes * 60)),
    };
    let swept = sweep::run(
        &test_support::database_url(),
        &test_support::rabbitmq_url(),
        select,
    )
    .await
    .context("cannot sweep the test servers")?;
    for kind in ["databases", "queues", "exchanges"] {
        let names = swept.removed.get(kind).map_or(&[][..], Vec::as_slice);
        println!("removed {} {kind}{}", names.len(), list(names));
    }
    for why in &swept.skipped {
        println!("skipped {why}");
    }
    Ok(())
}

/// `names` after a colon, the first few of them.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 3;
    match names.len() {
        0 => String::new(),
        n if n <= SHOWN => format!(": {}", names.join(", ")),
        n => format!(": {}, … ({} more)", names[..SHOWN].join(", "), n - SHOWN),
    }
}

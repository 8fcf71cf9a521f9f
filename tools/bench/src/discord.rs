//! Mode `discord`: how close the bot posts to the rate Discord allows, and
//! how many of its posts meet a 429. A stand-in webhook limits one webhook
//! to `limit` posts per `window` (with Discord's headers); a backlog of
//! games is created at once, and the bots drain their announcements paced
//! only by those headers. Run once per bot count: several bots share one
//! webhook, each seeing only its own answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use demo::load::{self, Live};
use demo::{Options, Stack};
use otlp_testkit::Receiver;
use test_support::{FakeDiscord, RouteLimit};
use tokio_util::sync::CancellationToken;

use crate::table::Table;
use crate::{Cleanup, progress};

/// How the runs go.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Games created at once; each is one announcement to post.
    pub(crate) backlog: usize,
    /// Bots sharing the webhook, one run each.
    pub(crate) bots: Vec<usize>,
    /// The webhook's limit: posts per window.
    pub(crate) limit: u16,
    /// The webhook's window.
    pub(crate) window: Duration,
}

impl Settings {
    /// Posts per second the webhook allows.
    fn permitted_rate(&self) -> f64 {
        f64::from(self.limit) / self.window.as_secs_f64()
    }

    /// A rough length of one run: the backlog at the permitted rate.
    fn drain_time(&self) -> Duration {
        Duration::from_secs_f64(self.backlog as f64 / self.permitted_rate())
    }
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    bots: usize,
    /// Announcements taken by the webhook.
    posted: usize,
    /// Posts answered 429.
    rate_limited: u64,
    /// From the first post taken to the last.
    span: Duration,
    /// Posts the webhook would have taken in `span`, at most.
    permitted: usize,
}

impl Run {
    fn share_of_permitted(&self) -> f64 {
        self.posted as f64 / self.permitted.max(1) as f64
    }

    fn share_429(&self) -> f64 {
        self.rate_limited as f64 / (self.posted as u64 + self.rate_limited).max(1) as f64
    }
}

/// Runs once per bot count and returns the table.
pub(crate) async fn run(
    settings: &Settings,
    binary: &std::path::Path,
    cleanup: &Cleanup,
) -> anyhow::Result<Table> {
    let mut runs = Vec::new();
    for &bots in &settings.bots {
        progress(format!(
            "[discord] {bots} bot(s), {} announcements at {} per {} s: about {} s",
            settings.backlog,
            settings.limit,
            settings.window.as_secs_f64(),
            settings.drain_time().as_secs()
        ));
        let names = cleanup.names().await;
        let run = run_once(settings, binary, names.clone(), bots).await;
        cleanup.remove(&names).await?;
        let run = run.with_context(|| format!("the run with {bots} bot(s)"))?;
        progress(format!(
            "  {:.1} % of the permitted rate, {:.2} % answered 429",
            100.0 * run.share_of_permitted(),
            100.0 * run.share_429()
        ));
        runs.push(run);
    }
    Ok(summarize(settings, &runs))
}

async fn run_once(
    settings: &Settings,
    binary: &std::path::Path,
    names: demo::Names,
    bots: usize,
) -> anyhow::Result<Run> {
    let receiver = Receiver::start_counting()
        .await
        .context("cannot start the OTLP receiver")?;
    let discord = FakeDiscord::start().await;
    discord.set_rate_limit(Some(RouteLimit {
        limit: settings.limit,
        window: settings.window,
    }));
    let options = Options {
        otlp_endpoint: receiver.http_endpoint(),
        webhook_url: Some(discord.webhook_url()),
        extra_env: Vec::new(),
    };
    let mut stack = Stack::start(binary, names, &options).await?;
    for _ in 1..bots {
        let env = [
            ("BOT_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("API_BASE_URL", stack.api_url.clone()),
            ("DISCORD_WEBHOOK_URL", discord.webhook_url()),
        ];
        stack.start_another("bot", &env, "consuming").await?;
    }

    // The backlog: created as fast as the api takes them.
    let live = Arc::new(Live::default());
    let stop = CancellationToken::new();
    let load = tokio::spawn(load::drive(
        stack.api_url.clone(),
        200,
        "bench discord game ".to_owned(),
        live.clone(),
        stop.clone(),
    ));
    while live.counts().0 < settings.backlog {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    let requests = load.await.context("the load task failed")??;
    let created = requests
        .iter()
        .filter(|request| request.outcome == load::Outcome::Created)
        .count();
    if created < settings.backlog {
        bail!("only {created} of {} games created", settings.backlog);
    }

    let taken = || {
        discord
            .received()
            .into_iter()
            .filter(|post| (200..300).contains(&post.status))
            .map(|post| post.at)
            .collect::<Vec<Instant>>()
    };
    let deadline = Instant::now() + settings.drain_time() * 2 + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let posted = taken().len();
        if posted >= created {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {posted} of {created} announcements posted in time");
        }
        progress(format!(
            "  posted {posted}/{created} · 429s {}",
            discord.stats().rate_limited_route + discord.stats().rate_limited_global
        ));
    }
    stack.stop().await?;
    let at = taken();
    let (first, last) = (
        *at.iter().min().context("nothing posted")?,
        *at.iter().max().context("nothing posted")?,
    );
    let span = last - first;
    // Fixed windows from the first post: every window begun within the
    // span could take `limit` posts.
    let windows = (span.as_secs_f64() / settings.window.as_secs_f64()).floor() as usize + 1;
    let stats = discord.stats();
    Ok(Run {
        bots,
        posted: at.len(),
        rate_limited: stats.rate_limited_route + stats.rate_limited_global,
        span,
        permitted: windows * usize::from(settings.limit),
    })
}

fn summarize(settings: &Settings, runs: &[Run]) -> Table {
    let mut table = Table::new(
        format!(
            "Discord pacing: a backlog of {} announcements, one webhook limited to {} posts per {} s",
            settings.backlog,
            settings.limit,
            settings.window.as_secs_f64()
        ),
        vec![
            "bots",
            "posted",
            "first→last post",
            "posts/s",
            "of the permitted rate",
            "answered 429",
        ],
    );
    for run in runs {
        table.rows.push(vec![
            run.bots.to_string(),
            run.posted.to_string(),
            format!("{:.1} s", run.span.as_secs_f64()),
            format!(
                "{:.2}",
                run.posted as f64 / run.span.as_secs_f64().max(1e-3)
            ),
            format!("{:.1} %", 100.0 * run.share_of_permitted()),
            format!("{} ({:.2} %)", run.rate_limited, 100.0 * run.share_429()),
        ]);
    }
    table.notes.push(format!(
        "Permitted: {} posts per started window of {} s between the first post and the last \
         (the stand-in's windows are fixed, as Discord's buckets); answered 429: of all posts \
         tried. The bots read the limit from the answers' X-RateLimit-* headers only.",
        settings.limit,
        settings.window.as_secs_f64()
    ));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_of_the_permitted_posts_and_of_all_tried() {
        let run = Run {
            bots: 1,
            posted: 450,
            rate_limited: 5,
            span: Duration::from_secs(199),
            permitted: 500,
        };
        assert!((run.share_of_permitted() - 0.9).abs() < 1e-9);
        assert!((run.share_429() - 5.0 / 455.0).abs() < 1e-9);
    }
}

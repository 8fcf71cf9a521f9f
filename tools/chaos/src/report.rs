//! What a run measured, and whether it meets the acceptance criteria.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use demo::load::{Delivery, Latency, Outcome, Post, Request};
use test_support::Stats;

use crate::faults::Fault;

/// The 401, 403 and 429 answers in 10 minutes for which Cloudflare bans a
/// client from Discord's API.
pub(crate) const DISCORD_BAN_THRESHOLD: u64 = 10_000;

/// The span of time Discord counts invalid requests over.
const BAN_WINDOW: Duration = Duration::from_secs(10 * 60);

/// One fault as it happened.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub(crate) fault: Fault,
    /// When it began.
    pub(crate) started: Instant,
    /// When it had fully taken hold (the broker stopped, the process dead).
    pub(crate) down: Instant,
    /// When the dependency was back (the server answering, the service
    /// consuming again).
    pub(crate) back: Instant,
    /// `back` on the wall clock, to compare with span timestamps.
    pub(crate) back_wall: SystemTime,
    /// When the pipeline had caught up after it (a game created after
    /// `back` was posted), or gave up waiting: until then, games created
    /// since `started` queue behind the ones the fault held back.
    pub(crate) caught_up: Instant,
}

/// How long before a bot SIGKILL took hold a post may have reached the
/// webhook without the bot's record of it committing: the window
/// docs/DELIVERY.md ("What remains") leaves open. Milliseconds on an idle
/// machine; the margin covers a loaded one.
const RECORD_WINDOW: Duration = Duration::from_secs(1);

/// A message a service started processing (a CONSUMER span's start).
#[derive(Debug, Clone)]
pub(crate) struct Consumed {
    pub(crate) service: String,
    pub(crate) at: SystemTime,
}

/// What was counted beyond the requests and the posts: by the stand-in
/// Discord, the bot's metrics and the broker.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counted {
    /// What the webhook answered over the run.
    pub(crate) discord: Stats,
    /// Of its 429s, those answered outside a 429 storm: the route limit
    /// the bot should pace itself under, never reach.
    pub(crate) rate_limited_unprovoked: u64,
    /// How long the webhook was in use: from the start of the load to the
    /// end of the drain.
    pub(crate) run: Duration,
    /// Notifications the bot gave up on as too old
    /// (`gamenight.notifications.delivered`, `outcome=expired`).
    pub(crate) expired: u64,
    /// Messages in the dead-letter queues at the end.
    pub(crate) dead_letters: u64,
}

impl Counted {
    /// The webhook's invalid answers (401, 403, 429) as a rate per
    /// [`BAN_WINDOW`], the span Discord bans over: the count itself for a
    /// run that lasted no time.
    pub(crate) fn invalid_per_ban_window(&self) -> f64 {
        let invalid = self.discord.invalid as f64;
        if self.run.is_zero() {
            return invalid;
        }
        invalid * BAN_WINDOW.as_secs_f64() / self.run.as_secs_f64()
    }
}

/// Limits a run must keep to pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Criteria {
    /// Longest create→webhook of a game no Discord fault held back.
    pub(crate) max_latency: Duration,
    /// Longest from a dependency back to the pipeline moving.
    pub(crate) max_recovery: Duration,
    /// Longest from Discord back to its first post.
    pub(crate) max_first_post: Duration,
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            max_latency: Duration::from_secs(10),
            max_recovery: Duration::from_secs(2),
            max_first_post: Duration::from_secs(2),
        }
    }
}

/// How soon Discord had a post again after one of its faults.
#[derive(Debug, Clone)]
pub(crate) struct DiscordReturn {
    pub(crate) fault: Fault,
    /// When the fault began, from the start of the load.
    pub(crate) at: Duration,
    /// From Discord back (answering again, its last `Retry-After` over)
    /// to the first post it took. `None`: never.
    pub(crate) first_post: Option<Duration>,
}

/// Create→webhook of the games a Discord fault held back: not yet posted
/// when it began, created before the pipeline had caught up after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldBack {
    /// Games created then.
    pub(crate) games: usize,
    /// Their create→webhook; `None` when none was announced.
    pub(crate) latency: Option<Latency>,
}

/// How long after one fault the pipeline was moving again.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    pub(crate) fault: Fault,
    /// When it began, from the start of the load.
    pub(crate) at: Duration,
    /// From its start until the dependency was back.
    pub(crate) down: Duration,
    /// From back to the first webhook post of a game created once the
    /// fault had taken hold: the whole pipeline moving again. `None`: never.
    pub(crate) webhook: Option<Duration>,
    /// From back to the first message the worker processed.
    pub(crate) worker: Option<Duration>,
    /// From back to the first message the bot processed.
    pub(crate) bot: Option<Duration>,
}

/// The figures of a run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) load: Duration,
    pub(crate) delivery: Delivery,
    /// Of the duplicate posts, those of a game first posted just before
    /// the bot was SIGKILLed ([`RECORD_WINDOW`]) and posted again after:
    /// the documented window, reported but not a failure.
    pub(crate) killed_before_record: usize,
    pub(crate) recoveries: Vec<Recovery>,
    /// Create→webhook of the games no Discord fault held back: what
    /// [`Criteria::max_latency`] applies to.
    pub(crate) latency: Option<Latency>,
    /// When (after the load began) the slowest of those games was created:
    /// where to look when it is too slow.
    pub(crate) slowest_created_at: Option<Duration>,
    /// The games a Discord fault held back; `None` without Discord faults.
    pub(crate) held_back: Option<HeldBack>,
    /// After each Discord fault, how soon Discord had a post again.
    pub(crate) discord_returns: Vec<DiscordReturn>,
    pub(crate) counted: Counted,
    criteria: Criteria,
}

impl Report {
    /// The figures of a run: the requests sent from `load_start` on, the
    /// webhook's posts, the faults, the messages consumed and what else
    /// was counted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        load_start: Instant,
        load: Duration,
        requests: &[Request],
        posts: &[Post],
        injected: &[Injected],
        consumed: &[Consumed],
        counted: Counted,
        criteria: Criteria,
    ) -> Self {
        let created_titles: HashMap<&str, &Request> = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .map(|r| (r.title.as_str(), r))
            .collect();

        let recoveries = injected
            .iter()
            .map(|fault| {
                let after_back = |at: Instant| at.checked_duration_since(fault.back);
                // The first post after `back` for a game created once the
                // fault had taken hold: one that had to go through the
                // pipeline after the fault, not one already past the
                // worker before it.
                let webhook = posts
                    .iter()
                    .filter(|post| {
                        post.title
                            .as_deref()
                            .and_then(|title| created_titles.get(title))
                            .is_some_and(|r| r.sent_at >= fault.down)
                    })
                    .filter_map(|post| after_back(post.at))
                    .min();
                let first_consumed = |service: &str| {
                    consumed
                        .iter()
                        .filter(|c| c.service == service)
                        .filter_map(|c| c.at.duration_since(fault.back_wall).ok())
                        .min()
                };
                Recovery {
                    fault: fault.fault,
                    at: fault.started.saturating_duration_since(load_start),
                    down: fault.back.saturating_duration_since(fault.started),
                    webhook,
                    worker: first_consumed("worker"),
                    bot: first_consumed("bot"),
                }
            })
            .collect();

        let discord_faults: Vec<&Injected> = injected
            .iter()
            .filter(|fault| fault.fault.is_discord())
            .collect();
        let mut first_posts: HashMap<&str, Instant> = HashMap::new();
        for post in posts {
            if let Some(title) = post.title.as_deref() {
                let first = first_posts.entry(title).or_insert(post.at);
                *first = (*first).min(post.at);
            }
        }
        // Held back: created before the pipeline had caught up after a
        // Discord fault, and not yet posted when it began, having been
        // created at most `max_latency` before it (on its way then).
        let (held, free): (Vec<Request>, Vec<Request>) =
            requests.iter().cloned().partition(|request| {
                let posted = first_posts.get(request.title.as_str());
                discord_faults.iter().any(|fault| {
                    request.sent_at + criteria.max_latency >= fault.started
                        && request.sent_at <= fault.caught_up
                        && posted.is_none_or(|&at| at >= fault.started)
                })
            });
        let slowest_created_at = free
            .iter()
            .filter_map(|r| Some((*first_posts.get(r.title.as_str())? - r.sent_at, r.sent_at)))
            .max()
            .map(|(_, sent_at)| sent_at.saturating_duration_since(load_start));
        let held_back = (!discord_faults.is_empty()).then(|| HeldBack {
            games: held
                .iter()
                .filter(|r| r.outcome == Outcome::Created)
                .count(),
            latency: Delivery::new(&held, posts).latency,
        });
        let discord_returns = discord_faults
            .iter()
            .map(|fault| DiscordReturn {
                fault: fault.fault,
                at: fault.started.saturating_duration_since(load_start),
                first_post: posts
                    .iter()
                    .filter_map(|post| post.at.checked_duration_since(fault.back))
                    .min(),
            })
            .collect();

        Self {
            load,
            delivery: Delivery::new(requests, posts),
            killed_before_record: killed_before_record(posts, injected),
            recoveries,
            latency: Delivery::new(&free, posts).latency,
            slowest_created_at,
            held_back,
            discord_returns,
            counted,
            criteria,
        }
    }

    /// The acceptance criteria this run broke, in words; empty when it
    /// passed.
    pub(crate) fn failures(&self) -> Vec<String> {
        let Criteria {
            max_latency,
            max_recovery,
            max_first_post,
        } = self.criteria;
        let mut failures = Vec::new();
        let delivery = &self.delivery;
        if delivery.created == 0 {
            failures.push("no game was created".to_owned());
        }
        for (count, what) in [
            (delivery.lost, "lost notifications"),
            (
                delivery.duplicates - self.killed_before_record,
                "duplicate webhook posts",
            ),
            (delivery.status_500, "HTTP 500 answers"),
            (
                usize::try_from(self.counted.dead_letters).unwrap_or(usize::MAX),
                "dead-lettered messages",
            ),
        ] {
            if count > 0 {
                failures.push(format!("{count} {what} (must be 0)"));
            }
        }
        let invalid = self.counted.invalid_per_ban_window();
        if invalid >= DISCORD_BAN_THRESHOLD as f64 {
            failures.push(format!(
                "{invalid:.0} invalid Discord requests per 10 minutes \
                 (must stay under {DISCORD_BAN_THRESHOLD}, Discord's ban threshold)"
            ));
        }
        if let Some(latency) = self.latency
            && latency.max > max_latency
        {
            failures.push(format!(
                "create→webhook max {} (must be ≤ {})",
                seconds(latency.max),
                seconds(max_latency)
            ));
        }
        for recovery in &self.recoveries {
            for (what, took) in [
                ("first webhook", recovery.webhook),
                ("worker", recovery.worker),
                ("bot", recovery.bot),
            ] {
                if took.is_none_or(|took| took > max_recovery) {
                    failures.push(format!(
                        "{} at {}: {what} back after {} (must be ≤ {})",
                        recovery.fault,
                        seconds(recovery.at),
                        took.map_or_else(|| "never".to_owned(), seconds),
                        seconds(max_recovery)
                    ));
                }
            }
        }
        for back in &self.discord_returns {
            if back.first_post.is_none_or(|took| took > max_first_post) {
                failures.push(format!(
                    "{} at {}: first post {} after Discord returned (must be ≤ {})",
                    back.fault,
                    seconds(back.at),
                    back.first_post.map_or_else(|| "never".to_owned(), seconds),
                    seconds(max_first_post)
                ));
            }
        }
        failures
    }
}

/// The posts that repeat a game's post which reached the webhook at most
/// [`RECORD_WINDOW`] before a bot SIGKILL took hold, and come after it.
fn killed_before_record(posts: &[Post], injected: &[Injected]) -> usize {
    let kills: Vec<&Injected> = injected
        .iter()
        .filter(|fault| fault.fault == Fault::BotCrash)
        .collect();
    let mut by_title: HashMap<&str, Vec<Instant>> = HashMap::new();
    for post in posts {
        if let Some(title) = &post.title {
            by_title.entry(title).or_default().push(post.at);
        }
    }
    by_title
        .values_mut()
        .map(|at| {
            at.sort();
            at.windows(2)
                .filter(|pair| {
                    kills.iter().any(|kill| {
                        pair[0] + RECORD_WINDOW >= kill.started
                            && pair[0] <= kill.down
                            && pair[1] > kill.down
                    })
                })
                .count()
        })
        .sum()
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Criteria {
            max_latency,
            max_recovery,
            max_first_post,
        } = self.criteria;
        let d = &self.delivery;
        let mark = |bad: bool| if bad { "  ✗" } else { "" };
        writeln!(f, "load                         {}", seconds(self.load))?;
        writeln!(f, "games sent                   {}", d.sent)?;
        writeln!(f, "games created (201)          {}", d.created)?;
        writeln!(f, "announced                    {}", d.announced)?;
        writeln!(
            f,
            "lost                         {}{}",
            d.lost,
            mark(d.lost > 0)
        )?;
        let killed = match self.killed_before_record {
            0 => String::new(),
            n => format!(" ({n} posted just before the bot was killed: docs/DELIVERY.md)"),
        };
        writeln!(
            f,
            "duplicate webhook posts      {}{killed}{}",
            d.duplicates,
            mark(d.duplicates > self.killed_before_record)
        )?;
        writeln!(f, "posts for no created game    {}", d.unexpected)?;
        writeln!(
            f,
            "HTTP 5xx                     {} (500: {}){}",
            d.status_5xx,
            d.status_500,
            mark(d.status_500 > 0)
        )?;
        writeln!(f, "HTTP other non-2xx           {}", d.other_non_2xx)?;
        writeln!(f, "no answer (refused/timeout)  {}", d.no_answer)?;
        let percentiles = |l: Latency| {
            format!(
                "p50 {}  p90 {}  p99 {}  max {}",
                seconds(l.p50),
                seconds(l.p90),
                seconds(l.p99),
                seconds(l.max)
            )
        };
        match self.latency {
            Some(l) => writeln!(
                f,
                "create→webhook               {}{}{}",
                percentiles(l),
                self.slowest_created_at
                    .map(|at| format!(" (created at {})", seconds(at)))
                    .unwrap_or_default(),
                mark(l.max > max_latency)
            )?,
            None => writeln!(f, "create→webhook               no game announced")?,
        }
        if let Some(held) = self.held_back {
            writeln!(
                f,
                "  held back by Discord*      {} games{}",
                held.games,
                held.latency
                    .map_or_else(String::new, |l| format!("  {}", percentiles(l)))
            )?;
        }
        let c = &self.counted;
        writeln!(
            f,
            "Discord 429s                 {} (route {}, global {}; {} outside the storm)",
            c.discord.rate_limited_route + c.discord.rate_limited_global,
            c.discord.rate_limited_route,
            c.discord.rate_limited_global,
            c.rate_limited_unprovoked
        )?;
        let invalid = c.invalid_per_ban_window();
        writeln!(
            f,
            "Discord invalid requests     {} ({invalid:.0} per 10 min; \
             banned at {DISCORD_BAN_THRESHOLD}){}",
            c.discord.invalid,
            mark(invalid >= DISCORD_BAN_THRESHOLD as f64)
        )?;
        writeln!(f, "notifications expired        {}", c.expired)?;
        writeln!(
            f,
            "dead-lettered                {}{}",
            c.dead_letters,
            mark(c.dead_letters > 0)
        )?;
        for back in &self.discord_returns {
            let took = back.first_post.map_or_else(|| "never".to_owned(), seconds);
            writeln!(
                f,
                "Discord back → first post    {took} ({} at {}){}",
                back.fault,
                seconds(back.at),
                mark(back.first_post.is_none_or(|took| took > max_first_post))
            )?;
        }
        if self.held_back.is_some() {
            writeln!(
                f,
                "* not yet posted when a Discord fault began, created before the pipeline \
                 caught up after it: no limit on their create→webhook"
            )?;
        }
        if self.recoveries.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "\nrecovery: from the dependency back to the first …\n\
             fault                  at        down      webhook*   worker msg  bot msg"
        )?;
        let took = |took: Option<Duration>| match took {
            Some(took) => format!("{:>8}{}", seconds(took), mark(took > max_recovery)),
            None => "   never  ✗".to_owned(),
        };
        for r in &self.recoveries {
            writeln!(
                f,
                "{:<22} {:>8}  {:>8}  {:<10} {:<11} {}",
                r.fault.to_string(),
                seconds(r.at),
                seconds(r.down),
                took(r.webhook),
                took(r.worker),
                took(r.bot)
            )?;
        }
        writeln!(
            f,
            "* of a game created while it was down (includes the pipeline's own latency)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `(title, ms after start, outcome)` as requests.
    fn requests(start: Instant, sent: &[(&str, u64, Outcome)]) -> Vec<Request> {
        sent.iter()
            .map(|&(title, ms, outcome)| Request {
                title: title.to_owned(),
                sent_at: start + Duration::from_millis(ms),
                outcome,
            })
            .collect()
    }

    /// `(title, ms after start)` as webhook posts.
    fn posts(start: Instant, posted: &[(&str, u64)]) -> Vec<Post> {
        posted
            .iter()
            .map(|&(title, ms)| Post {
                title: Some(title.to_owned()),
                at: start + Duration::from_millis(ms),
            })
            .collect()
    }

    fn report(requests: &[Request], posts: &[Post], injected: &[Injected]) -> Report {
        report_counting(requests, posts, injected, Counted::default())
    }

    fn report_counting(
        requests: &[Request],
        posts: &[Post],
        injected: &[Injected],
        counted: Counted,
    ) -> Report {
        let start = requests[0].sent_at;
        Report::new(
            start,
            Duration::from_secs(1),
            requests,
            posts,
            injected,
            &[],
            counted,
            Criteria::default(),
        )
    }

    /// The failures but those of consumers never seen back: these
    /// reports are given no CONSUMER spans.
    fn but_consumers(report: &Report) -> Vec<String> {
        report
            .failures()
            .into_iter()
            .filter(|failure| !failure.contains("back after never"))
            .collect()
    }

    /// `fault` from `started` to `back` ms after `t`, caught up at `caught_up`.
    fn fault(t: Instant, fault: Fault, started: u64, back: u64, caught_up: u64) -> Injected {
        Injected {
            fault,
            started: t + Duration::from_millis(started),
            down: t + Duration::from_millis(started),
            back: t + Duration::from_millis(back),
            back_wall: SystemTime::now(),
            caught_up: t + Duration::from_millis(caught_up),
        }
    }

    #[test]
    fn a_lost_game_a_duplicate_post_and_a_500_each_break_a_criterion() {
        let t = Instant::now();
        let requests = requests(
            t,
            &[
                ("a", 0, Outcome::Created),
                ("b", 10, Outcome::Created),
                ("c", 20, Outcome::Status(500)),
                ("d", 30, Outcome::Status(422)),
            ],
        );
        let posts = posts(t, &[("a", 100), ("a", 900)]);
        let failures = report(&requests, &posts, &[]).failures();
        assert_eq!(
            failures,
            [
                "1 lost notifications (must be 0)",
                "1 duplicate webhook posts (must be 0)",
                "1 HTTP 500 answers (must be 0)",
            ]
        );
    }

    #[test]
    fn a_duplicate_is_excused_only_when_the_bot_was_killed_just_after_the_first_post() {
        let t = Instant::now();
        let requests = requests(
            t,
            &[
                ("in window", 0, Outcome::Created),
                ("long before", 10, Outcome::Created),
                ("never killed", 20, Outcome::Created),
            ],
        );
        let kill = |fault| Injected {
            fault,
            started: t + 5_000 * MS,
            down: t + 5_050 * MS,
            back: t + 5_300 * MS,
            back_wall: SystemTime::now(),
            caught_up: t + 5_400 * MS,
        };
        let posts = posts(
            t,
            &[
                ("in window", 4_700),
                ("in window", 5_400),
                ("long before", 3_000),
                ("long before", 5_400),
                ("never killed", 100),
                ("never killed", 200),
            ],
        );
        let bot_killed = report(&requests, &posts, &[kill(Fault::BotCrash)]);
        assert_eq!(
            (
                bot_killed.delivery.duplicates,
                bot_killed.killed_before_record
            ),
            (3, 1)
        );
        let failures = bot_killed.failures();
        assert_eq!(
            failures
                .iter()
                .filter(|failure| failure.contains("duplicate"))
                .collect::<Vec<_>>(),
            ["2 duplicate webhook posts (must be 0)"]
        );
        assert!(bot_killed.to_string().contains(
            "duplicate webhook posts      3 (1 posted just before the bot was killed: docs/DELIVERY.md)  ✗"
        ));
        // A worker killed then excuses nothing: the bot's record is not at stake.
        let worker_killed = report(&requests, &posts, &[kill(Fault::WorkerCrash)]);
        assert_eq!(worker_killed.killed_before_record, 0);
    }

    #[test]
    fn recovery_waits_for_a_game_created_while_the_dependency_was_down() {
        let t = Instant::now();
        let requests = requests(
            t,
            &[
                ("before", 0, Outcome::Created),
                ("while stopping", 1_100, Outcome::Created),
                ("during", 1_500, Outcome::Created),
            ],
        );
        // Games created before the fault took hold and delivered after it
        // was back say nothing about the pipeline after the fault.
        let posts = posts(
            t,
            &[
                ("before", 3_100),
                ("while stopping", 3_200),
                ("during", 4_000),
            ],
        );
        let injected = [Injected {
            fault: Fault::WorkerCrash,
            started: t + 1_000 * MS,
            down: t + 1_200 * MS,
            back: t + 3_000 * MS,
            back_wall: SystemTime::now(),
            caught_up: t + 4_000 * MS,
        }];
        let report = report(&requests, &posts, &injected);
        let recovery = &report.recoveries[0];
        assert_eq!(recovery.at, 1_000 * MS);
        assert_eq!(recovery.down, 2_000 * MS);
        assert_eq!(recovery.webhook, Some(1_000 * MS));
        // No consumer spans: "never", a failure.
        assert_eq!(recovery.worker, None);
        assert!(
            report
                .failures()
                .iter()
                .any(|f| f.contains("worker back after never"))
        );
    }

    #[test]
    fn discord_must_get_a_post_within_two_seconds_of_its_return() {
        const OUTAGE: Fault = Fault::DiscordOutage(Duration::from_secs(20));
        const STORM: Fault = Fault::DiscordStorm(Duration::from_secs(10));
        let t = Instant::now();
        let requests = requests(t, &[("a", 0, Outcome::Created)]);
        let injected = [
            fault(t, OUTAGE, 1_000, 21_000, 22_000),
            fault(t, STORM, 30_000, 40_000, 41_000),
        ];
        let first_posts = |outage_ms: u64, storm_ms: u64| {
            posts(
                t,
                &[
                    ("a", 100),
                    ("x", 21_000 + outage_ms),
                    ("y", 40_000 + storm_ms),
                ],
            )
        };
        let failures = |posts: &[Post]| -> Vec<String> {
            report(&requests, posts, &injected)
                .failures()
                .into_iter()
                .filter(|failure| failure.contains("Discord returned"))
                .collect()
        };
        assert_eq!(failures(&first_posts(2_000, 500)), Vec::<String>::new());
        assert_eq!(
            failures(&first_posts(2_001, 500)),
            ["discord outage 20 s at 1.00 s: \
                 first post 2.00 s after Discord returned (must be ≤ 2.00 s)"]
        );
        // A post before the return does not count; none after it: never.
        let storm_never = posts(t, &[("a", 100), ("x", 21_500), ("y", 39_000)]);
        assert_eq!(
            failures(&storm_never),
            ["discord 429 storm 10 s at 30.00 s: \
                 first post never after Discord returned (must be ≤ 2.00 s)"]
        );
        let report = report(&requests, &first_posts(300, 2_500), &injected);
        assert_eq!(
            report
                .discord_returns
                .iter()
                .map(|back| back.first_post)
                .collect::<Vec<_>>(),
            [Some(300 * MS), Some(2_500 * MS)]
        );
        assert!(report.to_string().contains(
            "Discord back → first post    2.50 s (discord 429 storm 10 s at 30.00 s)  ✗"
        ));
    }

    #[test]
    fn games_a_discord_fault_held_back_are_no_latency_failure_but_others_are() {
        let t = Instant::now();
        let outage = fault(
            t,
            Fault::DiscordOutage(Duration::from_secs(20)),
            1_000,
            21_000,
            40_000,
        );
        let sent = requests(
            t,
            &[
                ("before", 0, Outcome::Created),
                ("on its way", 800, Outcome::Created),
                ("during", 5_000, Outcome::Created),
                ("catching up", 30_000, Outcome::Created),
                ("after", 41_000, Outcome::Created),
            ],
        );
        let posted = posts(
            t,
            &[
                ("before", 200),
                ("on its way", 21_050),
                ("during", 21_100),
                ("catching up", 39_000),
                ("after", 41_300),
            ],
        );
        let report = report(&sent, &posted, std::slice::from_ref(&outage));
        assert_eq!(report.latency.map(|l| l.max), Some(300 * MS));
        let held = report.held_back.expect("a Discord fault holds games back");
        assert_eq!(held.games, 3);
        assert_eq!(held.latency.map(|l| l.max), Some(20_250 * MS));
        assert_eq!(but_consumers(&report), Vec::<String>::new());

        // A game created once the pipeline had caught up is held to the
        // limit, Discord fault or not; so is one that was already late
        // when the fault began.
        let slow = posts(t, &[("during", 21_100), ("after", 52_000)]);
        let late = requests(
            t,
            &[
                ("during", 5_000, Outcome::Created),
                ("after", 41_000, Outcome::Created),
            ],
        );
        assert_eq!(
            but_consumers(&report_counting(
                &late,
                &slow,
                &[outage],
                Counted::default()
            )),
            ["create→webhook max 11.00 s (must be ≤ 10.00 s)"]
        );
        let storm = Fault::DiscordStorm(Duration::from_secs(10));
        let long_before = requests(t, &[("long before", 1_000, Outcome::Created)]);
        let posted_in_storm = posts(t, &[("long before", 14_000)]);
        let stuck = [fault(t, storm, 12_000, 22_000, 23_000)];
        let report = report_counting(&long_before, &posted_in_storm, &stuck, Counted::default());
        assert_eq!(report.held_back.map(|held| held.games), Some(0));
        assert!(
            report_counting(&sent, &posted, &[], Counted::default())
                .held_back
                .is_none()
        );
    }

    #[test]
    fn a_dead_letter_or_invalid_requests_at_a_banning_rate_break_a_criterion() {
        let t = Instant::now();
        let requests = requests(t, &[("a", 0, Outcome::Created)]);
        let posts = posts(t, &[("a", 100)]);
        let counted = |invalid: u64, run_secs: u64, dead_letters: u64| Counted {
            discord: Stats {
                invalid,
                rate_limited_route: invalid,
                ..Stats::default()
            },
            rate_limited_unprovoked: 3,
            run: Duration::from_secs(run_secs),
            expired: 0,
            dead_letters,
        };
        // 999 in a minute is 9,990 in ten: under the threshold.
        let fine = report_counting(&requests, &posts, &[], counted(999, 60, 0));
        assert_eq!(fine.counted.invalid_per_ban_window(), 9_990.0);
        assert!(fine.failures().is_empty(), "{:?}", fine.failures());
        assert!(
            fine.to_string()
                .contains("Discord invalid requests     999 (9990 per 10 min; banned at 10000)\n")
        );

        let broken = report_counting(&requests, &posts, &[], counted(1_000, 60, 2));
        assert_eq!(
            broken.failures(),
            [
                "2 dead-lettered messages (must be 0)",
                "10000 invalid Discord requests per 10 minutes \
                 (must stay under 10000, Discord's ban threshold)",
            ]
        );
        let text = broken.to_string();
        assert!(text.contains("dead-lettered                2  ✗"), "{text}");
        assert!(text.contains(
            "Discord 429s                 1000 (route 1000, global 0; 3 outside the storm)"
        ));
    }
}

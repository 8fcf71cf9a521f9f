//! What a run measured, and whether it meets the acceptance criteria.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use demo::load::{Delivery, Outcome, Post, Request};

use crate::faults::Fault;

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

/// Limits a run must keep to pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Criteria {
    pub(crate) max_latency: Duration,
    pub(crate) max_recovery: Duration,
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            max_latency: Duration::from_secs(10),
            max_recovery: Duration::from_secs(2),
        }
    }
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
    criteria: Criteria,
}

impl Report {
    /// The figures of a run: the requests sent from `load_start` on, the
    /// webhook's posts, the faults and the messages consumed.
    pub(crate) fn new(
        load_start: Instant,
        load: Duration,
        requests: &[Request],
        posts: &[Post],
        injected: &[Injected],
        consumed: &[Consumed],
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

        Self {
            load,
            delivery: Delivery::new(requests, posts),
            killed_before_record: killed_before_record(posts, injected),
            recoveries,
            criteria,
        }
    }

    /// The acceptance criteria this run broke, in words; empty when it
    /// passed.
    pub(crate) fn failures(&self) -> Vec<String> {
        let Criteria {
            max_latency,
            max_recovery,
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
        ] {
            if count > 0 {
                failures.push(format!("{count} {what} (must be 0)"));
            }
        }
        if let Some(latency) = delivery.latency
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
        match d.latency {
            Some(l) => writeln!(
                f,
                "create→webhook               p50 {}  p90 {}  p99 {}  max {}{}",
                seconds(l.p50),
                seconds(l.p90),
                seconds(l.p99),
                seconds(l.max),
                mark(l.max > max_latency)
            )?,
            None => writeln!(f, "create→webhook               no game announced")?,
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
        let start = requests[0].sent_at;
        Report::new(
            start,
            Duration::from_secs(1),
            requests,
            posts,
            injected,
            &[],
            Criteria::default(),
        )
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
}

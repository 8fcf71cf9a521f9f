//! What a run measured, and whether it meets the acceptance criteria.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::faults::Fault;

/// One `POST /games` of the load.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The game's title, unique in the run: what finds its webhook posts.
    pub(crate) title: String,
    /// When it was sent.
    pub(crate) sent_at: Instant,
    pub(crate) outcome: Outcome,
}

/// How the api answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 201: the game exists and must be announced.
    Created,
    /// Any other status.
    Status(u16),
    /// No answer: refused, reset or timed out.
    NoAnswer,
}

/// One post the webhook received.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    /// The title of the game it announces, if it names one.
    pub(crate) title: Option<String>,
    pub(crate) at: Instant,
}

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

/// Percentiles of create→webhook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
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
    pub(crate) sent: usize,
    pub(crate) created: usize,
    pub(crate) announced: usize,
    /// Created, never announced.
    pub(crate) lost: usize,
    /// Posts beyond the first for the same game.
    pub(crate) duplicates: usize,
    /// Posts for a game the load never got a 201 for.
    pub(crate) unexpected: usize,
    pub(crate) status_500: usize,
    pub(crate) status_5xx: usize,
    pub(crate) other_non_2xx: usize,
    pub(crate) no_answer: usize,
    pub(crate) latency: Option<Latency>,
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
        let mut posts_by_title: HashMap<&str, Vec<Instant>> = HashMap::new();
        for post in posts {
            if let Some(title) = &post.title {
                posts_by_title.entry(title).or_default().push(post.at);
            }
        }
        let created: Vec<&Request> = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .collect();
        let first_post = |title: &str| {
            posts_by_title
                .get(title)
                .and_then(|at| at.iter().min().copied())
        };
        let mut latencies: Vec<Duration> = created
            .iter()
            .filter_map(|r| Some(first_post(&r.title)?.saturating_duration_since(r.sent_at)))
            .collect();
        latencies.sort();
        let status = |keep: fn(u16) -> bool| {
            requests
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Status(code) if keep(code)))
                .count()
        };
        let created_titles: HashMap<&str, &Request> =
            created.iter().map(|r| (r.title.as_str(), *r)).collect();

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

        let announced = created
            .iter()
            .filter(|r| posts_by_title.contains_key(r.title.as_str()))
            .count();
        Self {
            load,
            sent: requests.len(),
            created: created.len(),
            announced,
            lost: created.len() - announced,
            duplicates: posts_by_title.values().map(|at| at.len() - 1).sum(),
            unexpected: posts_by_title
                .iter()
                .filter(|(title, _)| !created_titles.contains_key(*title))
                .map(|(_, at)| at.len())
                .sum(),
            status_500: status(|code| code == 500),
            status_5xx: status(|code| (500..600).contains(&code)),
            other_non_2xx: status(|code| {
                !(200..300).contains(&code) && !(500..600).contains(&code)
            }),
            no_answer: requests
                .iter()
                .filter(|r| r.outcome == Outcome::NoAnswer)
                .count(),
            latency: percentiles(&latencies),
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
        if self.created == 0 {
            failures.push("no game was created".to_owned());
        }
        for (count, what) in [
            (self.lost, "lost notifications"),
            (self.duplicates, "duplicate webhook posts"),
            (self.status_500, "HTTP 500 answers"),
        ] {
            if count > 0 {
                failures.push(format!("{count} {what} (must be 0)"));
            }
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
        failures
    }
}

/// Nearest-rank percentiles of `sorted`.
fn percentiles(sorted: &[Duration]) -> Option<Latency> {
    let max = *sorted.last()?;
    let rank = |p: f64| {
        let index = ((p * sorted.len() as f64).ceil() as usize).saturating_sub(1);
        sorted[index]
    };
    Some(Latency {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max,
    })
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
        let mark = |bad: bool| if bad { "  ✗" } else { "" };
        writeln!(f, "load                         {}", seconds(self.load))?;
        writeln!(f, "games sent                   {}", self.sent)?;
        writeln!(f, "games created (201)          {}", self.created)?;
        writeln!(f, "announced                    {}", self.announced)?;
        writeln!(
            f,
            "lost                         {}{}",
            self.lost,
            mark(self.lost > 0)
        )?;
        writeln!(
            f,
            "duplicate webhook posts      {}{}",
            self.duplicates,
            mark(self.duplicates > 0)
        )?;
        writeln!(f, "posts for no created game    {}", self.unexpected)?;
        writeln!(
            f,
            "HTTP 5xx                     {} (500: {}){}",
            self.status_5xx,
            self.status_500,
            mark(self.status_500 > 0)
        )?;
        writeln!(f, "HTTP other non-2xx           {}", self.other_non_2xx)?;
        writeln!(f, "no answer (refused/timeout)  {}", self.no_answer)?;
        match self.latency {
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

    fn request(start: Instant, title: &str, sent_ms: u64, outcome: Outcome) -> Request {
        Request {
            title: title.to_owned(),
            sent_at: start + Duration::from_millis(sent_ms),
            outcome,
        }
    }

    fn post(start: Instant, title: &str, at_ms: u64) -> Post {
        Post {
            title: Some(title.to_owned()),
            at: start + Duration::from_millis(at_ms),
        }
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
    fn a_created_game_without_a_post_is_lost_and_a_second_post_is_a_duplicate() {
        let t = Instant::now();
        let requests = [
            request(t, "a", 0, Outcome::Created),
            request(t, "b", 10, Outcome::Created),
            request(t, "c", 20, Outcome::Status(500)),
            request(t, "d", 30, Outcome::Status(503)),
            request(t, "e", 40, Outcome::Status(422)),
            request(t, "f", 50, Outcome::NoAnswer),
        ];
        let posts = [post(t, "a", 100), post(t, "a", 900), post(t, "f", 300)];
        let report = report(&requests, &posts, &[]);
        assert_eq!(
            (report.sent, report.created, report.announced, report.lost),
            (6, 2, 1, 1)
        );
        assert_eq!((report.duplicates, report.unexpected), (1, 1));
        assert_eq!(
            (
                report.status_500,
                report.status_5xx,
                report.other_non_2xx,
                report.no_answer
            ),
            (1, 2, 1, 1)
        );
        // The first post counts for the latency, not the duplicate.
        assert_eq!(report.latency.map(|l| l.max), Some(100 * MS));
        assert_eq!(report.failures().len(), 3);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(|i| i * MS).collect();
        assert_eq!(
            percentiles(&sorted),
            Some(Latency {
                p50: 50 * MS,
                p90: 90 * MS,
                p99: 99 * MS,
                max: 100 * MS
            })
        );
        assert_eq!(percentiles(&[7 * MS]).map(|l| l.p50), Some(7 * MS));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn recovery_waits_for_a_game_created_while_the_dependency_was_down() {
        let t = Instant::now();
        let requests = [
            request(t, "before", 0, Outcome::Created),
            request(t, "while stopping", 1_100, Outcome::Created),
            request(t, "during", 1_500, Outcome::Created),
        ];
        // Games created before the fault took hold and delivered after it
        // was back say nothing about the pipeline after the fault.
        let posts = [
            post(t, "before", 3_100),
            post(t, "while stopping", 3_200),
            post(t, "during", 4_000),
        ];
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

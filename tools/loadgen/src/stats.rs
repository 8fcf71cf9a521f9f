//! What came back: counts and latencies per operation and outcome, each
//! with a trace to look at.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::mix::Operation;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The API answered with this status.
    Status(u16),
    /// No answer: `timeout`, `connect` or `request`.
    NoAnswer(&'static str),
}

impl Outcome {
    /// A server error or no answer: something the API should not do.
    pub fn is_failure(self) -> bool {
        match self {
            Self::Status(status) => status >= 500,
            Self::NoAnswer(_) => true,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "{status} {reason}")
            }
            Self::NoAnswer(kind) => write!(f, "no answer ({kind})"),
        }
    }
}

#[derive(Debug)]
struct Entry {
    latency: Histogram<u64>,
    /// The trace of the first request that ended this way.
    example_trace: String,
}

/// Latencies in microseconds, from 1 µs to a minute, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Every request's outcome and latency.
#[derive(Debug)]
pub struct Stats {
    entries: BTreeMap<(Operation, Outcome), Entry>,
    all: Histogram<u64>,
    failures: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            all: histogram(),
            failures: 0,
        }
    }
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000)
}

impl Stats {
    /// Counts one request.
    pub fn record(
        &mut self,
        operation: Operation,
        outcome: Outcome,
        latency: Duration,
        trace_id: &str,
    ) {
        let entry = self
            .entries
            .entry((operation, outcome))
            .or_insert_with(|| Entry {
                latency: histogram(),
                example_trace: trace_id.to_owned(),
            });
        entry.latency.saturating_record(micros(latency));
        self.all.saturating_record(micros(latency));
        self.failures += u64::from(outcome.is_failure());
    }

    /// Requests that got an answer or failed.
    pub fn done(&self) -> u64 {
        self.all.len()
    }

    /// Server errors and requests with no answer.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The `quantile` latency of every request so far.
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.all.value_at_quantile(quantile))
    }

    /// Count of each outcome, over every operation.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        let mut outcomes = BTreeMap::new();
        for ((_, outcome), entry) in &self.entries {
            *outcomes.entry(*outcome).or_default() += entry.latency.len();
        }
        outcomes
    }

    /// Each operation and outcome seen, with the trace of one such request.
    pub fn examples(&self) -> Vec<(Operation, Outcome, &str)> {
        self.entries
            .iter()
            .map(|((operation, outcome), entry)| {
                (*operation, *outcome, entry.example_trace.as_str())
            })
            .collect()
    }

    /// The summary table: per operation and outcome, the count,
    /// percentiles and a trace of one such request.
    pub fn table(&self) -> String {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut out = format!(
            "{:<20} {:<24} {:>7} {:>8} {:>8} {:>8} {:>8}  example trace\n",
            "operation", "outcome", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let mut row = |operation: &str, outcome: String, h: &Histogram<u64>, trace: &str| {
            let line = format!(
                "{operation:<20} {outcome:<24} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {trace}",
                h.len(),
                ms(h, 0.5),
                ms(h, 0.9),
                ms(h, 0.99),
                h.max() as f64 / 1000.0,
            );
            out.push_str(line.trim_end());
            out.push('\n');
        };
        for ((operation, outcome), entry) in &self.entries {
            row(
                operation.name(),
                outcome.to_string(),
                &entry.latency,
                &entry.example_trace,
            );
        }
        row("all", String::new(), &self.all, "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_per_operation_with_a_trace_each() {
        let mut stats = Stats::default();
        let ms = Duration::from_millis;
        stats.record(Operation::JoinGame, Outcome::Status(201), ms(10), "aa");
        stats.record(Operation::JoinGame, Outcome::Status(201), ms(30), "bb");
        stats.record(Operation::JoinGame, Outcome::Status(409), ms(5), "cc");
        stats.record(
            Operation::ReadGame,
            Outcome::NoAnswer("timeout"),
            ms(2000),
            "dd",
        );
        assert_eq!(stats.done(), 4);
        assert_eq!(stats.failures(), 1);
        let table = stats.table();
        let line = |prefix: &str| {
            table
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix}: {table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            line("join game            201"),
            "join game 201 Created 2 10.0 30.0 30.0 30.0 aa"
        );
        assert_eq!(
            line("join game            409"),
            "join game 409 Conflict 1 5.0 5.0 5.0 5.0 cc"
        );
        assert!(line("read game").starts_with("read game no answer (timeout) 1"));
        assert!(line("all").starts_with("all 4 "));
        assert_eq!(stats.outcomes()[&Outcome::Status(201)], 2);
    }
}

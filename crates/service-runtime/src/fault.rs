//! Fault switches: failures made on purpose, so that a person can see in
//! Tempo, Loki and the dashboards what an error, a retry or a slow
//! dependency looks like.
//!
//! Every switch is a setting (an environment variable), off unless set:
//! nothing outside the process (no endpoint, no header) can turn one on.
//! A service declares each as an `Option<Fault>` or `Option<Delay>` option
//! parsed by [`Fault::percent`] or [`Delay::millis`]. When a switch
//! fires it says so where the effect shows: a WARN event `fault injected`
//! with `fault.switch` naming the variable, which is both an event on the
//! current span and a log record carrying its trace id, and the span itself
//! gets the attribute `fault.switch` too (tail sampling keeps such traces,
//! and it reads span attributes, not events). Where the switches act and
//! what each looks like: RUNTIME_CONFIG.md, "Fault switches".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::builder::TypedValueParser;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A switch that fires on a share of the calls it guards: evenly spread
/// and counted, not drawn at random, so 25 fires on every fourth call and
/// a test knows what to expect.
#[derive(Debug, Clone)]
pub struct Fault {
    var: &'static str,
    percent: u64,
    calls: Arc<AtomicU64>,
}

impl Fault {
    /// The value parser of the switch `var`: a percentage from 0 (never
    /// fires) to 100.
    pub fn percent(var: &'static str) -> impl TypedValueParser<Value = Self> {
        clap::value_parser!(u64)
            .range(0..=100)
            .map(move |percent| Self {
                var,
                percent,
                calls: Arc::new(AtomicU64::new(0)),
            })
    }

    /// Whether the switch fires on this call. The caller then acts as the
    /// failure would, and [`report`](Self::report)s it where the effect
    /// shows.
    pub fn fires(&self) -> bool {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        (call + 1) * self.percent / 100 > call * self.percent / 100
    }

    /// Records that the switch fired, saying `what` it did.
    pub fn report(&self, what: &str) {
        report(self.var, what);
    }
}

/// A delay added to every call a switch guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    var: &'static str,
    /// How long each call waits more.
    pub duration: Duration,
}

impl Delay {
    /// The value parser of the switch `var`: a whole number of
    /// milliseconds, 0 adding none.
    pub fn millis(var: &'static str) -> impl TypedValueParser<Value = Self> {
        clap::value_parser!(u64).map(move |millis| Self {
            var,
            duration: Duration::from_millis(millis),
        })
    }

    /// Reports the delay, then waits it out: inside the span the caller
    /// runs it in, so the trace shows where the time went.
    pub async fn wait(&self) {
        if self.duration.is_zero() {
            return;
        }
        report(
            self.var,
            &format!("this call waits {} ms more", self.duration.as_millis()),
        );
        tokio::time::sleep(self.duration).await;
    }
}

/// A WARN event `fault injected: {what}` with `fault.switch = var`: an event
/// on the current span, exported as a log record with its trace id; and
/// `fault.switch = var` on the span, where Alloy's tail sampling
/// (grafana-alloy/sampling.alloy) sees it.
fn report(var: &'static str, what: &str) {
    tracing::Span::current().set_attribute("fault.switch", var);
    tracing::warn!(fault.switch = var, "fault injected: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Switches {
        #[arg(long, env = "FAULT_X_PERCENT", value_parser = Fault::percent("FAULT_X_PERCENT"))]
        x: Option<Fault>,
        #[arg(long, env = "FAULT_Y_MS", value_parser = Delay::millis("FAULT_Y_MS"))]
        y: Option<Delay>,
    }

    impl crate::config::ServiceConfig for Switches {}

    fn switches(vars: &[(&str, &str)]) -> Result<Switches, clap::Error> {
        crate::cli::from_vars(vars.iter().copied())
    }

    fn fault(percent: &str) -> Fault {
        switches(&[("FAULT_X_PERCENT", percent)])
            .unwrap_or_else(|e| panic!("{e}"))
            .x
            .unwrap_or_else(|| unreachable!())
    }

    fn fired(fault: &Fault, calls: usize) -> usize {
        (0..calls).filter(|_| fault.fires()).count()
    }

    #[test]
    fn a_share_fires_evenly_spread() {
        let quarter = fault("25");
        let pattern: Vec<bool> = (0..8).map(|_| quarter.fires()).collect();
        assert_eq!(
            pattern,
            [false, false, false, true, false, false, false, true]
        );
        assert_eq!(fired(&fault("100"), 10), 10);
        assert_eq!(fired(&fault("1"), 1000), 10);
        assert_eq!(fired(&fault("0"), 1000), 0);
    }

    #[test]
    fn off_unless_set_and_bounded() {
        let unset = switches(&[]).unwrap();
        assert!(unset.x.is_none() && unset.y.is_none());
        let err = switches(&[("FAULT_X_PERCENT", "101")]).unwrap_err();
        assert!(err.to_string().contains("FAULT_X_PERCENT"), "{err}");
        assert_eq!(
            switches(&[("FAULT_Y_MS", "250")])
                .unwrap()
                .y
                .map(|d| d.duration),
            Some(Duration::from_millis(250))
        );
    }
}

//! Fault switches: failures made on purpose, so that a person can see in
//! Tempo, Loki and the dashboards what an error, a retry or a slow
//! dependency looks like.
//!
//! Every switch is an environment variable, off unless set: nothing outside
//! the process (no endpoint, no header) can turn one on. When a switch
//! fires it says so where the effect shows: a WARN event `fault injected`
//! with `fault.switch` naming the variable, which is both an event on the
//! current span and a log record carrying its trace id. Where the switches
//! act and what each looks like: RUNTIME_CONFIG.md, "Fault switches".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::env::{Env, EnvError};

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
    /// `var` as a percentage, 0 (the default: off) to 100.
    pub fn percent<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        var: &'static str,
    ) -> Result<Option<Self>, EnvError> {
        let percent: u64 = env.parse_or(var, 0, "a percentage from 0 to 100")?;
        if percent > 100 {
            return Err(EnvError::Invalid {
                var,
                expected: "a percentage from 0 to 100",
            });
        }
        Ok((percent > 0).then(|| Self {
            var,
            percent,
            calls: Arc::new(AtomicU64::new(0)),
        }))
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
    /// `var` in milliseconds; 0 (the default) is none.
    pub fn millis<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        var: &'static str,
    ) -> Result<Option<Self>, EnvError> {
        let millis: u64 = env.parse_or(var, 0, "a whole number of milliseconds")?;
        Ok((millis > 0).then(|| Self {
            var,
            duration: Duration::from_millis(millis),
        }))
    }

    /// Reports the delay, then waits it out: inside the span the caller
    /// runs it in, so the trace shows where the time went.
    pub async fn wait(&self) {
        report(
            self.var,
            &format!("this call waits {} ms more", self.duration.as_millis()),
        );
        tokio::time::sleep(self.duration).await;
    }
}

/// A WARN event `fault injected: {what}` with `fault.switch = var`: an event
/// on the current span, exported as a log record with its trace id.
fn report(var: &'static str, what: &str) {
    tracing::warn!(fault.switch = var, "fault injected: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(percent: &'static str) -> Option<Fault> {
        let env =
            Env::from_lookup(|var: &str| (var == "FAULT_X_PERCENT").then(|| percent.to_owned()));
        Fault::percent(&env, "FAULT_X_PERCENT").unwrap_or_else(|e| panic!("{e}"))
    }

    fn fired(fault: &Fault, calls: usize) -> usize {
        (0..calls).filter(|_| fault.fires()).count()
    }

    #[test]
    fn a_share_fires_evenly_spread() {
        let quarter = fault("25").unwrap_or_else(|| unreachable!());
        let pattern: Vec<bool> = (0..8).map(|_| quarter.fires()).collect();
        assert_eq!(
            pattern,
            [false, false, false, true, false, false, false, true]
        );
        assert_eq!(
            fired(&fault("100").unwrap_or_else(|| unreachable!()), 10),
            10
        );
        assert_eq!(
            fired(&fault("1").unwrap_or_else(|| unreachable!()), 1000),
            10
        );
    }

    #[test]
    fn off_unless_set_and_bounded() {
        assert!(fault("0").is_none());
        assert!(
            Fault::percent(&Env::from_pairs(&[]), "FAULT_X_PERCENT")
                .unwrap_or(None)
                .is_none()
        );
        let err = Fault::percent(
            &Env::from_pairs(&[("FAULT_X_PERCENT", "101")]),
            "FAULT_X_PERCENT",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "FAULT_X_PERCENT is invalid: expected a percentage from 0 to 100"
        );
        assert_eq!(
            Delay::millis(&Env::from_pairs(&[("FAULT_Y_MS", "250")]), "FAULT_Y_MS")
                .map(|d| d.map(|d| d.duration)),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(Delay::millis(&Env::from_pairs(&[]), "FAULT_Y_MS"), Ok(None));
    }
}

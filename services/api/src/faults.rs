//! The CPU-burn fault switch (`FAULT_CPU_BURN_PERCENT`,
//! `FAULT_CPU_BURN_MS`): something for a profile to find.
//!
//! On the share of `GET /games` requests the switch picks, the handler
//! spends `FAULT_CPU_BURN_MS` of CPU in [`burn_cpu`] after its query, on its
//! own task, inside the request's SERVER span. The trace shows a slow
//! request whose time is in no child span (the query is as quick as ever);
//! the request's CPU profile (Pyroscope, linked from the span) shows where
//! it went: `api::faults::burn_cpu`, the widest frame under the handler.
//!
//! The burn blocks the tokio worker thread it runs on for that long, as any
//! CPU-bound handler would: requests waiting on that worker wait too, and
//! with more burning requests at once than the api has worker threads
//! (one per core) every request waits. That is the effect to see, and why
//! the switch is off unless set. Like every switch it sets `fault.switch`
//! on the span, so tail sampling keeps the trace
//! (service_runtime::fault).

use std::time::{Duration, Instant};

use clap::builder::TypedValueParser;
use service_runtime::fault::Fault;

use crate::config::Faults;

/// The longest burn `FAULT_CPU_BURN_MS` accepts: five times the api's 1 s
/// latency alert, well inside its 30 s request timeout (which cannot
/// interrupt a burn: the timer is not polled while the thread burns).
pub const MAX_BURN_MS: u64 = 5_000;

/// The value parser of `FAULT_CPU_BURN_MS`: whole milliseconds from 1 to
/// [`MAX_BURN_MS`].
pub fn burn_millis() -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(1..=MAX_BURN_MS)
        .map(Duration::from_millis)
}

/// The switch as configured: which requests burn, and how much CPU each.
#[derive(Debug, Clone)]
pub(crate) struct CpuBurn {
    share: Fault,
    cpu: Duration,
}

impl CpuBurn {
    /// The switch of `faults`; `None` when `FAULT_CPU_BURN_PERCENT` is unset.
    pub(crate) fn new(faults: &Faults) -> Option<Self> {
        faults.cpu_burn.clone().map(|share| Self {
            share,
            cpu: faults.cpu_burn_time,
        })
    }

    /// On the requests the switch picks: reports it on the current span
    /// (the request's), then burns the CPU on this thread.
    pub(crate) fn on_request(&self) {
        if !self.share.fires() {
            return;
        }
        self.share.report(&format!(
            "this request burns {} ms of CPU, blocking its worker thread",
            self.cpu.as_millis()
        ));
        let burnt = burn_cpu(self.cpu);
        if burnt < self.cpu {
            tracing::warn!(
                burnt_ms = burnt.as_millis(),
                "CPU burn cut short at the request timeout: the thread got too little CPU for {} ms",
                self.cpu.as_millis()
            );
        }
    }
}

/// Iterations between looks at the clock: about half a millisecond of an
/// optimised build, so reading the clock costs ~2 % of the burn.
const ROUND: u64 = 400_000;

/// Spends at least `cpu` of this thread's CPU time computing nothing of
/// use, and returns the CPU time it spent: the function a CPU profile of a
/// burning request shows. Never inlined, so it keeps its own frame
/// (`api::faults::burn_cpu`) in optimised builds; its arithmetic goes
/// through [`std::hint::black_box`], so the optimiser cannot drop it.
///
/// Measured by the thread's own CPU clock (Linux:
/// `/proc/thread-self/schedstat`), so a thread the OS preempts burns on
/// until it has had its `cpu`. Where that clock cannot be read it spins for
/// `cpu` by the wall clock instead. Either way it gives up after the api's
/// request timeout (30 s) of wall time, so neither a starved thread nor a
/// clock that stands still holds a worker for ever; the result then falls
/// short of `cpu`.
#[inline(never)]
pub fn burn_cpu(cpu: Duration) -> Duration {
    let started = Instant::now();
    let clock = ThreadCpuClock::start();
    let mut state = std::hint::black_box(0x9e37_79b9_7f4a_7c15_u64);
    loop {
        for i in 0..ROUND {
            state =
                std::hint::black_box(state.wrapping_mul(0xbf58_476d_1ce4_e5b9).rotate_left(31) ^ i);
        }
        let burnt = clock.elapsed(started);
        if burnt >= cpu || started.elapsed() >= crate::REQUEST_TIMEOUT {
            std::hint::black_box(state);
            return burnt;
        }
    }
}

/// This thread's CPU time since [`start`](Self::start), or the wall time
/// where it cannot be read.
#[derive(Debug)]
enum ThreadCpuClock {
    /// CPU time of this thread at the start.
    Cpu(Duration),
    /// No CPU clock: wall time it is.
    Wall,
}

impl ThreadCpuClock {
    fn start() -> Self {
        // Up to date, or the burn would count from a figure that trails.
        std::thread::yield_now();
        thread_cpu_time().map_or(Self::Wall, Self::Cpu)
    }

    /// A figure that trails can only make the burn longer.
    fn elapsed(&self, started: Instant) -> Duration {
        match (self, thread_cpu_time()) {
            (Self::Cpu(start), Some(now)) => now.saturating_sub(*start),
            _ => started.elapsed(),
        }
    }
}

/// The CPU time this thread has run (Linux: the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds); `None` elsewhere.
///
/// The kernel brings the figure up to date at each scheduler tick and when
/// the thread yields, so it can trail by up to a tick. Yielding before every
/// read would keep it exact, but on a busy host each yield hands the core to
/// another thread and the burn would take far longer than its CPU.
fn thread_cpu_time() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU time of this whole process, in clock ticks, from
    /// `/proc/self/stat` (utime + stime): a clock apart from the one
    /// `burn_cpu` reads, and a coarse one: whole ticks, each reading up to
    /// a tick behind.
    fn process_cpu_ticks() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Fields after the command name, which is in parentheses: state is
        // field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// USER_HZ, the unit of /proc's clock ticks: 100 on Linux.
    const TICK: Duration = Duration::from_millis(10);

    #[test]
    #[cfg(target_os = "linux")]
    fn a_burn_spends_at_least_the_cpu_asked_for_not_wall_time() {
        let cpu = Duration::from_millis(150);
        assert!(thread_cpu_time().is_some(), "no thread CPU clock on Linux");
        let before = process_cpu_ticks();
        let started = Instant::now();
        let burnt = burn_cpu(cpu);
        let wall = started.elapsed();
        let ticks = process_cpu_ticks() - before;
        assert!(burnt >= cpu, "burn_cpu says it burnt {burnt:?}");
        // To the tick (the readings are whole ticks, each up to one
        // behind). Other tests' threads can only add to it.
        assert!(
            TICK * (u32::try_from(ticks).unwrap() + 1) >= cpu,
            "the process spent {ticks} ticks of CPU"
        );
        // Sleeping would keep wall time and spend no CPU; CPU time of one
        // thread never exceeds its wall time.
        assert!(wall >= burnt, "{wall:?} of wall time for {burnt:?} of CPU");
    }
}

//! Load from `wrk`, pinned to the load generator's CPU, and what it
//! printed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// What one `wrk --latency` run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measured {
    pub(crate) requests: u64,
    pub(crate) requests_per_second: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Answers outside 2xx and 3xx.
    pub(crate) non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub(crate) socket_errors: u64,
}

/// Load for `wrk`: where, how, and on which CPU.
#[derive(Debug, Clone)]
pub(crate) struct Wrk<'a> {
    pub(crate) url: &'a str,
    /// A Lua script (`-s`): how `POST /games` is sent.
    pub(crate) script: Option<&'a Path>,
    pub(crate) connections: u32,
    /// `taskset -c` CPU list.
    pub(crate) cpus: &'a str,
}

impl Wrk<'_> {
    /// Runs one thread of load for `duration` and returns what it measured.
    ///
    /// Returns `Err` when wrk cannot run, fails, or prints something this
    /// parser does not know.
    pub(crate) async fn run(&self, duration: Duration) -> anyhow::Result<Measured> {
        let mut command = Command::new("taskset");
        command
            .args(["-c", self.cpus, "wrk", "-t1", "--latency"])
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", duration.as_secs().max(1)));
        if let Some(script) = self.script {
            command.arg("-s").arg(script);
        }
        let output = command
            .arg(self.url)
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse(&stdout).with_context(|| format!("cannot read wrk's output:\n{stdout}"))
    }
}

/// The figures in wrk's `--latency` output.
fn parse(output: &str) -> anyhow::Result<Measured> {
    let mut requests = None;
    let mut requests_per_second = None;
    let (mut p50, mut p99) = (None, None);
    let (mut non_2xx, mut socket_errors) = (0, 0);
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => p50 = Some(duration(value)?),
            ["99%", value] => p99 = Some(duration(value)?),
            [count, "requests", "in", ..] => requests = Some(count.parse()?),
            ["Requests/sec:", rate] => requests_per_second = Some(rate.parse()?),
            ["Non-2xx", "or", "3xx", "responses:", count] => non_2xx = count.parse()?,
            ["Socket", "errors:", counts @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                socket_errors = counts
                    .iter()
                    .filter_map(|word| word.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    Ok(Measured {
        requests: requests.context("no request count")?,
        requests_per_second: requests_per_second.context("no Requests/sec")?,
        p50: p50.context("no 50% latency")?,
        p99: p99.context("no 99% latency")?,
        non_2xx,
        socket_errors,
    })
}

/// wrk's `635.00us`, `1.93ms`, `1.02s`, `2.00m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => bail!("unknown unit in {text:?}"),
    };
    // Whole nanoseconds: `1.93ms` is 1 930 000 ns, not a float's neighbour.
    Ok(Duration::from_nanos((seconds * 1e9).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 10s test @ http://127.0.0.1:18080/games
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  312.00us   9.87ms   80.00%
    Req/Sec    14.61k   512.00    15.20k    70.00%
  Latency Distribution
     50%  635.00us
     75%    1.20ms
     90%    1.50ms
     99%    1.93ms
  145432 requests in 10.00s, 40.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  14543.20
Transfer/sec:      4.01MB
";

    #[test]
    fn the_figures_are_read_from_wrks_latency_output() {
        let measured = parse(OUTPUT).unwrap_or_else(|err| panic!("{err:#}"));
        assert_eq!(
            measured,
            Measured {
                requests: 145_432,
                requests_per_second: 14_543.2,
                p50: Duration::from_micros(635),
                p99: Duration::from_micros(1930),
                non_2xx: 7,
                socket_errors: 5,
            }
        );
    }

    #[test]
    fn output_without_latencies_is_an_error() {
        assert!(parse("Requests/sec: 10\n  10 requests in 1.00s, 1KB read").is_err());
    }
}

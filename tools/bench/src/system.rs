//! What the runs need from the machine: tools and servers checked up front,
//! CPU pinning, a process's memory, and the facts a result is published
//! with (machine, commit).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio::process::Command;

/// Fails, saying how to get it, when a program the run needs is missing.
pub(crate) async fn require_tool(name: &str, install: &str) -> anyhow::Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .await
        .is_ok_and(|output| output.status.success());
    if !found {
        bail!("{name} not found: {install} (scripts/bench.sh installs it)");
    }
    Ok(())
}

/// Fails, naming the variable, when a server the run needs does not accept
/// connections.
pub(crate) async fn require_server(
    what: &str,
    variable: &str,
    url: &str,
    default_port: u16,
) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("{variable} is not a URL"))?;
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(default_port);
    let connect = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect((&*host, port)));
    match connect.await {
        Ok(Ok(_)) => Ok(()),
        _ => bail!(
            "{what} is not reachable at {host}:{port} ({variable}, or the local default): \
             start it, or point {variable} at one"
        ),
    }
}

/// The CPUs this process may run on (`taskset -c` syntax).
pub(crate) async fn affinity() -> anyhow::Result<String> {
    let output = Command::new("taskset")
        .args(["-c", "-p", &std::process::id().to_string()])
        .output()
        .await
        .context("cannot run taskset")?;
    // pid 123's current affinity list: 0,1
    String::from_utf8_lossy(&output.stdout)
        .rsplit_once(':')
        .map(|(_, list)| list.trim().to_owned())
        .filter(|list| output.status.success() && !list.is_empty())
        .context("taskset could not say which CPUs the bench runs on")
}

/// Pins every thread of this process, and whatever it starts from now on,
/// to `cpus` (`taskset -c` syntax).
pub(crate) async fn pin_self(cpus: &str) -> anyhow::Result<()> {
    // `taskset -a` walks the threads one by one and fails when one ends
    // meanwhile (Tokio's blocking threads come and go): try again.
    for _ in 0..5 {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .context("cannot run taskset")?;
        if status.success() {
            return Ok(());
        }
    }
    bail!("taskset could not pin the bench to CPUs {cpus}")
}

/// Resident memory of process `pid` (`VmRSS` in `/proc/<pid>/status`), in
/// MiB.
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    vm_rss_kib(&status)
        .map(|kib| kib as f64 / 1024.0)
        .context("no VmRSS in /proc/<pid>/status")
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time process `pid` has used so far, all its threads, user and
/// kernel (`utime + stime` in `/proc/<pid>/stat`).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    cpu_ticks(&stat)
        .map(ticks_to_time)
        .context("no utime/stime in /proc/<pid>/stat")
}

/// CPU time the threads of the CPU profiler in process `pid` have used so
/// far: the pyroscope agent's (unnamed, so they carry the process's name;
/// the main thread, which has it too, is left out) and the span-profile
/// watchdog's (`telemetry-span-profiles`, cut to 15 bytes by the kernel).
/// `(agent, watchdog)`.
pub(crate) fn profiler_cpu_time(pid: u32) -> anyhow::Result<(Duration, Duration)> {
    let comm = |dir: &str| std::fs::read_to_string(format!("{dir}/comm"));
    let process =
        comm(&format!("/proc/{pid}")).with_context(|| format!("cannot read /proc/{pid}/comm"))?;
    let (mut agent, mut watchdog) = (0, 0);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("cannot list /proc/{pid}/task"))?;
    for task in tasks.flatten() {
        if task.file_name().to_str() == Some(&pid.to_string()) {
            continue;
        }
        let dir = task.path().display().to_string();
        // A thread that exits meanwhile has no CPU left to count.
        let (Ok(name), Ok(stat)) = (comm(&dir), std::fs::read_to_string(format!("{dir}/stat")))
        else {
            continue;
        };
        let ticks = cpu_ticks(&stat).unwrap_or(0);
        if name == process {
            agent += ticks;
        } else if name.trim_end() == "telemetry-span-" {
            watchdog += ticks;
        }
    }
    Ok((ticks_to_time(agent), ticks_to_time(watchdog)))
}

/// CPU time every process named `comm` has used so far, with the children
/// they have reaped: a server's processes that exit during a window (a
/// PostgreSQL backend, an autovacuum worker) still count, in their
/// parent's `cutime + cstime`. The difference of two readings is the
/// server's CPU in between, whatever came and went.
pub(crate) fn processes_cpu_time(comm: &str) -> anyhow::Result<Duration> {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc")
        .context("cannot list /proc")?
        .flatten()
    {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        // A process that exits meanwhile has been counted by its parent.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_comm(&stat) == Some(comm) {
            ticks += cpu_ticks_with_children(&stat).unwrap_or(0);
        }
    }
    Ok(ticks_to_time(ticks))
}

/// Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`, fixed at 100 by
/// the kernel's ABI on the architectures Linux runs services on).
const USER_HZ: f64 = 100.0;

fn ticks_to_time(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / USER_HZ)
}

fn cpu_ticks(stat: &str) -> Option<u64> {
    Some(stat_times(stat)?[..2].iter().sum())
}

fn cpu_ticks_with_children(stat: &str) -> Option<u64> {
    Some(stat_times(stat)?.iter().sum())
}

/// utime, stime, cutime and cstime: fields 14 to 17. Field 2, the command,
/// is in parentheses and may hold spaces: count from the last `)`; what
/// follows starts at field 3.
fn stat_times(stat: &str) -> Option<[u64; 4]> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let mut times = [0; 4];
    for time in &mut times {
        *time = fields.next()?.parse().ok()?;
    }
    Some(times)
}

fn stat_comm(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// `Intel(R) Xeon(R) … , 2 cores` from `/proc/cpuinfo`.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (model, cores) = cpu_model_and_cores(&cpuinfo);
    format!("{}, {cores} cores", model.unwrap_or("unknown CPU"))
}

fn cpu_model_and_cores(cpuinfo: &str) -> (Option<&str>, usize) {
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim());
    let cores = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    (model, cores)
}

/// The checked-out commit, `-dirty` when the work tree has changes.
pub(crate) async fn commit() -> String {
    let git = |args: &'static [&'static str]| async move {
        Command::new("git")
            .args(args)
            .output()
            .await
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).await else {
        return "unknown".to_owned();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]).await {
        Some(changes) if !changes.is_empty() => format!("{head}-dirty"),
        _ => head,
    }
}

/// Spans the services' batch span processors dropped because their queue
/// was full, from the lines they printed (`service: {json}`).
///
/// `opentelemetry_sdk` 0.33 counts them and reports the total only when
/// the processor shuts down: a warning `BatchSpanProcessor.SpansDropped`
/// with the field `dropped_span_count`, which the telemetry crate prints on
/// the console (target `opentelemetry_sdk`, level warn). A peer's JSON
/// lines may hold the field under `fields`, as `tracing-subscriber` nests
/// them. No such line: none dropped.
pub(crate) fn dropped_spans(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter(|line| line.contains("BatchSpanProcessor.SpansDropped"))
        .filter_map(|line| {
            let json = &line[line.find('{')?..];
            let json = serde_json::from_str::<serde_json::Value>(json).ok()?;
            let fields = json.get("fields").unwrap_or(&json);
            fields["dropped_span_count"].as_u64()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\tapi\nVmPeak:\t  90000 kB\nVmRSS:\t   12288 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kib(status), Some(12_288));
        assert!(rss_mib(std::process::id()).is_ok_and(|mib| mib > 0.0));
    }

    #[test]
    fn the_span_profile_watchdogs_cpu_is_counted_by_its_thread_name() {
        let pid = std::process::id();
        let (_, before) = profiler_cpu_time(pid).unwrap();
        std::thread::Builder::new()
            .name("telemetry-span-profiles".to_owned())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 1_u64;
                while start.elapsed() < Duration::from_millis(200) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                // Still alive while it is counted.
                let (_, during) = profiler_cpu_time(std::process::id()).unwrap();
                during
            })
            .unwrap()
            .join()
            .map(|during| assert!(during >= before + Duration::from_millis(100), "{during:?}"))
            .unwrap();
    }

    #[test]
    fn cpu_time_is_user_plus_system_ticks_from_proc_stat() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    250 40 0 0 20 0 9 0 100 1000 10 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(290));
        assert_eq!(cpu_ticks_with_children(stat), Some(290));
        assert_eq!(stat_comm(stat), Some("tokio (rt) 1"));
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn a_servers_cpu_counts_its_children_that_exited() {
        let stat = "77 (postgres) S 1 77 77 0 -1 4194560 1 0 0 0 \
                    250 40 600 60 20 0 9 0 100 1000 10 18446744073709551615";
        assert_eq!(cpu_ticks_with_children(stat), Some(950));
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let alone = cpu_time(std::process::id()).unwrap();
        let ours = processes_cpu_time(comm.trim_end()).unwrap();
        assert!(ours >= alone, "{ours:?} < {alone:?}");
    }

    #[test]
    fn the_cpu_model_and_core_count_come_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 3.00GHz\n\n\
                       processor\t: 1\nmodel name\t: Example CPU @ 3.00GHz\n";
        assert_eq!(
            cpu_model_and_cores(cpuinfo),
            (Some("Example CPU @ 3.00GHz"), 2)
        );
    }

    #[test]
    fn dropped_spans_are_summed_over_the_services_shutdown_warnings() {
        let lines = [
            r#"api: {"level":"INFO","message":"listening"}"#,
            r#"api: {"level":"WARN","name":"BatchSpanProcessor.SpansDropped","dropped_span_count":1200,"max_queue_size":2048,"target":"opentelemetry_sdk"}"#,
            r#"worker: {"level":"WARN","name":"BatchSpanProcessor.SpansDropped","dropped_span_count":3,"target":"opentelemetry_sdk"}"#,
            r#"peer: {"level":"WARN","fields":{"name":"BatchSpanProcessor.SpansDropped","dropped_span_count":40},"target":"opentelemetry_sdk"}"#,
        ]
        .map(str::to_owned);
        assert_eq!(dropped_spans(&lines), 1243);
        assert_eq!(dropped_spans(&lines[..1]), 0);
    }
}

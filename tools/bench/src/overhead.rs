//! Mode `overhead`: what telemetry costs the api. Four configurations side
//! by side, for a read (`GET /games/{id}`, a Redis cache hit: the cheapest
//! request, so the one telemetry weighs most on) and a write
//! (`POST /games`):
//!
//! - `off`: `OTEL_SDK_DISABLED=true`;
//! - `metrics`: metrics recorded and exported as with `on`, spans created
//!   but not exported (`OTEL_TRACES_EXPORTER=none`, `OTEL_LOGS_EXPORTER=none`):
//!   the baseline that isolates what exporting spans costs;
//! - `on`: every trace sampled, OTLP/HTTP to a healthy collector (the
//!   in-process receiver, counting what arrives);
//! - `down`: the collector's port is closed;
//! - `stuck`: the collector accepts connections and never answers;
//! - `profiling`: `on`, plus continuous CPU profiling with span profiles
//!   (`PYROSCOPE_SERVER_ADDRESS`, at the default rate) pushed to a
//!   Pyroscope stand-in.
//!
//! Mode `peers` runs the read only, with `off`, `on`, `traces` (`on`
//! exporting spans and nothing else, as the peers do) and the peers of
//! [`crate::peers`] to the same collector.
//!
//! Each run is a fresh api (its own database and Redis key prefix) pinned
//! to one CPU, a warm-up, a measured `wrk` window on another CPU and, for
//! `down` and `stuck`, more load until the run has seen enough requests to
//! show whether memory stays bounded; then SIGTERM, timed. Rounds rotate
//! the order of the configurations so that drift on the machine does not
//! favour one of them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use broker::lapin;
use demo::{Launch, Printed};
use otlp_testkit::pyroscope::PyroscopeReceiver;
use otlp_testkit::{Receiver, StuckServer};

use crate::peers::Peer;
use crate::table::{Table, latency, median, ratio, spread};
use crate::wrk::{Measured, Wrk};
use crate::{Cleanup, progress, system};

/// Memory growth over a `down` or `stuck` run beyond which telemetry is not
/// bounded (issue 10).
const MAX_RSS_GROWTH_MIB: f64 = 50.0;

/// What profiling may add to the api's CPU per request over `on` (issue 23).
const MAX_PROFILING_CPU_INCREASE: f64 = 0.03;

/// How a run is set up.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) rounds: u32,
    pub(crate) warmup: Duration,
    /// The measured window of each run.
    pub(crate) duration: Duration,
    pub(crate) connections: u32,
    /// Requests each `down` and `stuck` run must see at least.
    pub(crate) min_requests: u64,
    /// More variables for the api, after the configuration's.
    pub(crate) api_env: Vec<(String, String)>,
    /// CPU of the api.
    pub(crate) api_cpu: String,
    /// CPU of wrk and this process (with its receiver).
    pub(crate) load_cpu: String,
    /// The configurations run, `off` among them.
    pub(crate) configs: Vec<Config>,
    /// The requests measured.
    pub(crate) kinds: Vec<Kind>,
    /// The tables' title: what is compared.
    pub(crate) title: &'static str,
}

impl Settings {
    /// A rough length of the whole mode, for the progress lines.
    pub(crate) fn estimate(&self) -> Duration {
        let per_run = self.warmup + self.duration + Duration::from_secs(5);
        per_run * self.rounds * (self.configs.len() * self.kinds.len()) as u32
    }
}

/// The request under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Create,
}

/// Both requests, read first.
pub(crate) const KINDS: [Kind; 2] = [Kind::Read, Kind::Create];

impl Kind {
    fn title(self) -> &'static str {
        match self {
            Self::Read => "GET /games/{id}, Redis cache hit",
            Self::Create => "POST /games",
        }
    }
}

/// Where telemetry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Config {
    Off,
    Metrics,
    On,
    Down,
    Stuck,
    Profiling,
    /// `on` exporting spans only: no metrics, no logs.
    Traces,
    /// A peer set-up instead of the telemetry crate ([`crate::peers`]).
    TowerHttp,
    AxumOtel,
}

/// The configurations of mode `overhead`, in the order the tables list them.
pub(crate) const CONFIGS: [Config; 6] = [
    Config::Off,
    Config::Metrics,
    Config::On,
    Config::Down,
    Config::Stuck,
    Config::Profiling,
];

/// The configurations of mode `peers`.
pub(crate) const PEERS: [Config; 5] = [
    Config::Off,
    Config::Traces,
    Config::On,
    Config::TowerHttp,
    Config::AxumOtel,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Metrics => "metrics",
            Self::On => "on",
            Self::Down => "down",
            Self::Stuck => "stuck",
            Self::Profiling => "profiling",
            Self::Traces => "traces",
            Self::TowerHttp => Peer::TowerHttp.name(),
            Self::AxumOtel => Peer::AxumOtel.name(),
        }
    }

    /// The peer served instead of the api, if any.
    fn peer(self) -> Option<Peer> {
        match self {
            Self::TowerHttp => Some(Peer::TowerHttp),
            Self::AxumOtel => Some(Peer::AxumOtel),
            _ => None,
        }
    }

    /// Whether the collector is unusable, and the run must show that the
    /// api's memory stays bounded regardless.
    fn collector_broken(self) -> bool {
        matches!(self, Self::Down | Self::Stuck)
    }
}

/// The collector of one run, kept alive for it.
#[derive(Debug)]
enum Collector {
    None,
    /// A healthy collector, sent metrics only.
    MetricsOnly(Receiver),
    Healthy(Receiver),
    /// A healthy collector, sent spans only.
    TracesOnly(Receiver),
    /// A healthy collector and a Pyroscope.
    Profiled(Receiver, PyroscopeReceiver),
    /// A port nothing listens on.
    Closed(u16),
    Stuck(StuckServer),
}

impl Collector {
    async fn start(config: Config) -> anyhow::Result<Self> {
        Ok(match config {
            Config::Off => Self::None,
            Config::Metrics => Self::MetricsOnly(
                Receiver::start_counting()
                    .await
                    .context("cannot start the OTLP receiver")?,
            ),
            Config::On | Config::TowerHttp | Config::AxumOtel => Self::Healthy(
                Receiver::start_counting()
                    .await
                    .context("cannot start the OTLP receiver")?,
            ),
            Config::Traces => Self::TracesOnly(
                Receiver::start_counting()
                    .await
                    .context("cannot start the OTLP receiver")?,
            ),
            Config::Down => {
                // Bound then released: closed, as a stopped collector's is.
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                Self::Closed(listener.local_addr()?.port())
            }
            Config::Stuck => Self::Stuck(StuckServer::start().await?),
            Config::Profiling => Self::Profiled(
                Receiver::start_counting()
                    .await
                    .context("cannot start the OTLP receiver")?,
                PyroscopeReceiver::start()
                    .await
                    .context("cannot start the Pyroscope stand-in")?,
            ),
        })
    }

    /// The telemetry variables of the api.
    fn env(&self) -> Vec<(String, String)> {
        let endpoint = match self {
            Self::None => return vec![("OTEL_SDK_DISABLED".into(), "true".into())],
            Self::Healthy(receiver)
            | Self::MetricsOnly(receiver)
            | Self::TracesOnly(receiver)
            | Self::Profiled(receiver, _) => receiver.http_endpoint(),
            Self::Closed(port) => format!("http://127.0.0.1:{port}"),
            Self::Stuck(stuck) => stuck.url(),
        };
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
            ("OTEL_TRACES_SAMPLER".into(), "always_on".into()),
        ];
        if let Self::Profiled(_, pyroscope) = self {
            env.push(("PYROSCOPE_SERVER_ADDRESS".into(), pyroscope.url()));
        }
        if let Self::MetricsOnly(_) = self {
            env.push(("OTEL_TRACES_EXPORTER".into(), "none".into()));
            env.push(("OTEL_LOGS_EXPORTER".into(), "none".into()));
        }
        if let Self::TracesOnly(_) = self {
            env.push(("OTEL_METRICS_EXPORTER".into(), "none".into()));
            env.push(("OTEL_LOGS_EXPORTER".into(), "none".into()));
        }
        env
    }

    fn spans_received(&self) -> Option<usize> {
        match self {
            Self::Healthy(receiver) | Self::TracesOnly(receiver) | Self::Profiled(receiver, _) => {
                Some(receiver.counts().spans)
            }
            _ => None,
        }
    }

    /// Profiles pushed, and the CPU time their samples add up to.
    fn profiles_received(&self) -> Option<(usize, Duration)> {
        match self {
            Self::Profiled(_, pyroscope) => {
                let sampled: i64 = pyroscope.samples().iter().map(|s| s.value).sum();
                Some((
                    pyroscope.pushes(),
                    Duration::from_nanos(u64::try_from(sampled).unwrap_or(0)),
                ))
            }
            _ => None,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    config: Config,
    /// The measured window.
    measured: Measured,
    /// Over the whole run after the warm-up, with any extra load.
    requests: u64,
    errors: u64,
    rss_before: f64,
    rss_after: f64,
    /// The api's CPU time (all threads) per request of the measured window.
    cpu_per_request: f64,
    /// Of which the profiler's own threads, per request: the agent's and
    /// the span-profile watchdog's (zero without profiling).
    profiler_cpu_per_request: (f64, f64),
    /// Every request the api answered, warm-up included: what its spans
    /// come from.
    all_requests: u64,
    spans_received: Option<usize>,
    spans_dropped: u64,
    /// Profiles pushed by the end of the run, and the CPU time sampled.
    profiles_received: Option<(usize, Duration)>,
    shutdown: Duration,
    /// Exited on SIGTERM in time (else killed, and `shutdown` is how long
    /// it was given).
    exited: bool,
}

/// The `wrk` script of `POST /games`: the same game each time (titles need
/// not be unique).
const CREATE_SCRIPT: &str = r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Bench night","host":"bench","scheduled_at":"2035-01-04T19:00:00Z","max_players":4,"reminder_minutes":60}'
"#;

/// A file removed when dropped.
#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs every round of both kinds and returns a table per kind.
pub(crate) async fn run(
    settings: &Settings,
    binary: &Path,
    cleanup: &Cleanup,
) -> anyhow::Result<Vec<Table>> {
    let script = TempFile(
        std::env::temp_dir().join(format!("gamenight-bench-create-{}.lua", std::process::id())),
    );
    std::fs::write(&script.0, CREATE_SCRIPT).context("cannot write the wrk script")?;
    let configs = &settings.configs;
    let total = settings.rounds as usize * configs.len() * settings.kinds.len();
    let started = Instant::now();
    let mut tables = Vec::new();
    let mut done = 0;
    for &kind in &settings.kinds {
        let mut runs = Vec::new();
        for round in 0..settings.rounds as usize {
            for i in 0..configs.len() {
                let config = configs[(i + round) % configs.len()];
                done += 1;
                let left = settings
                    .estimate()
                    .saturating_sub(started.elapsed())
                    .as_secs()
                    / 60;
                progress(format!(
                    "[{done}/{total}, about {left} min left] {} · {} · round {}/{}",
                    kind.title(),
                    config.name(),
                    round + 1,
                    settings.rounds
                ));
                let run = run_one(settings, binary, cleanup, kind, config, &script.0)
                    .await
                    .with_context(|| {
                        format!("{} with telemetry {}", kind.title(), config.name())
                    })?;
                progress(format!(
                    "  {:.0} req/s, p99 {}, {} requests, RSS {:.1} → {:.1} MiB, shutdown {}",
                    run.measured.requests_per_second,
                    latency(run.measured.p99),
                    run.requests,
                    run.rss_before,
                    run.rss_after,
                    latency(run.shutdown)
                ));
                runs.push(run);
            }
        }
        tables.push(summarize(kind, settings, &runs));
    }
    Ok(tables)
}

async fn run_one(
    settings: &Settings,
    binary: &Path,
    cleanup: &Cleanup,
    kind: Kind,
    config: Config,
    script: &Path,
) -> anyhow::Result<Run> {
    let names = cleanup.names().await;
    let result = measure(settings, binary, &names, kind, config, script).await;
    cleanup.remove(&names).await?;
    result
}

async fn measure(
    settings: &Settings,
    binary: &Path,
    names: &demo::Names,
    kind: Kind,
    config: Config,
    script: &Path,
) -> anyhow::Result<Run> {
    if kind == Kind::Create {
        bind_capped_queue(names).await?;
    }
    let collector = Collector::start(config).await?;
    let env = [
        ("DATABASE_URL", names.database_url.clone()),
        ("REDIS_URL", names.redis_url.clone()),
        ("RABBITMQ_URL", names.rabbitmq_url.clone()),
        ("REDIS_KEY_PREFIX", names.redis_prefix.clone()),
        ("EVENTS_EXCHANGE", names.events_exchange.clone()),
        ("API_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        // The api's own name; the peers read it from here.
        ("OTEL_SERVICE_NAME", "api".to_owned()),
    ]
    .map(|(key, value)| (key.to_owned(), value))
    .into_iter()
    .chain(collector.env())
    .chain(settings.api_env.iter().cloned());
    let printed = Printed::default();
    let launch = match config.peer() {
        Some(peer) => {
            Launch::new(binary, "peer", "listening", env).with_args([peer.name().to_owned()])
        }
        None => Launch::new(binary, "api", "listening", env),
    };
    let (api, listening) = launch.pinned_to(&settings.api_cpu).start(&printed).await?;
    let pid = api.pid().context("the api exited")?;
    let base = format!(
        "http://{}",
        listening["addr"]
            .as_str()
            .context("the api logged no address")?
    );
    let (url, script) = match kind {
        Kind::Read => (format!("{base}/games/{}", create_game(&base).await?), None),
        Kind::Create => (format!("{base}/games"), Some(script)),
    };
    let wrk = Wrk {
        url: &url,
        script,
        connections: settings.connections,
        cpus: &settings.load_cpu,
    };

    // Pools filled, cache warm, the exporter's connection open.
    let warmup = wrk.run(settings.warmup).await?;
    let rss_before = system::rss_mib(pid)?;
    let cpu_before = system::cpu_time(pid)?;
    let profiler_before = system::profiler_cpu_time(pid)?;
    let measured =
        crate::countdown("measuring", settings.duration, wrk.run(settings.duration)).await?;
    let cpu = system::cpu_time(pid)?.saturating_sub(cpu_before);
    let profiler = system::profiler_cpu_time(pid)?;
    let per_request = |time: Duration| time.as_secs_f64() / measured.requests.max(1) as f64;
    let profiler_cpu_per_request = (
        per_request(profiler.0.saturating_sub(profiler_before.0)),
        per_request(profiler.1.saturating_sub(profiler_before.1)),
    );
    let (mut requests, mut errors) = (measured.requests, measured.non_2xx + measured.socket_errors);
    while config.collector_broken() && requests < settings.min_requests {
        let rate = measured.requests_per_second.max(1.0);
        let more = Duration::from_secs_f64((settings.min_requests - requests) as f64 / rate * 1.05)
            .max(Duration::from_secs(1));
        let extra = crate::countdown(
            &format!("{} more requests", settings.min_requests - requests),
            more,
            wrk.run(more),
        )
        .await?;
        requests += extra.requests;
        errors += extra.non_2xx + extra.socket_errors;
    }
    let rss_after = system::rss_mib(pid)?;

    let stopping = Instant::now();
    // Not exiting in time is a finding, not a failed run: it is killed.
    let exited = match api.terminate().await {
        Ok(status) if status.success() => true,
        Ok(status) => anyhow::bail!(
            "the api exited with {status}; its last lines:\n{}",
            printed.last_lines("api", 20).join("\n")
        ),
        Err(err) => {
            progress(format!(
                "  ✗ {err:#}: killed; its last lines:\n{}",
                printed.last_lines("api", 20).join("\n")
            ));
            false
        }
    };
    let shutdown = stopping.elapsed();
    let profiles_received = match &collector {
        // The last profile is pushed as the api exits.
        Collector::Profiled(_, pyroscope) => {
            let _ = pyroscope.wait_for_pushes(1, Duration::from_secs(2)).await;
            collector.profiles_received()
        }
        _ => None,
    };
    Ok(Run {
        config,
        measured,
        requests,
        errors,
        rss_before,
        rss_after,
        cpu_per_request: per_request(cpu),
        profiler_cpu_per_request,
        // The game the reads fetch was one more.
        all_requests: warmup.requests + requests + 1,
        spans_received: collector.spans_received(),
        spans_dropped: system::dropped_spans(&printed.lines()),
        profiles_received,
        shutdown,
        exited,
    })
}

/// Binds a queue to the events exchange, as the worker's would be, so the
/// api's outbox relay publishes as it does in production (an unroutable
/// event is retried, which is other work). The queue keeps only its last
/// 1000 messages: nothing consumes it, and the shared broker must not fill
/// up. [`demo::Names::remove`] deletes it.
async fn bind_capped_queue(names: &demo::Names) -> anyhow::Result<()> {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};

    let connection =
        lapin::Connection::connect(&names.rabbitmq_url, lapin::ConnectionProperties::default())
            .await
            .context("cannot connect to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            names.events_exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(1000));
    channel
        .queue_declare(
            names.worker_queue.as_str().into(),
            QueueDeclareOptions::default(),
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            names.worker_queue.as_str().into(),
            names.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    connection.close(200, "declared".into()).await?;
    Ok(())
}

/// Creates the game the reads fetch and returns its id.
async fn create_game(base: &str) -> anyhow::Result<String> {
    let game: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/games"))
        .json(&serde_json::json!({
            "title": "Bench night",
            "host": "bench",
            "scheduled_at": "2035-01-04T19:00:00Z",
            "max_players": 4,
            "reminder_minutes": 60,
        }))
        .send()
        .await
        .context("cannot reach the api")?
        .error_for_status()
        .context("the api refused the game")?
        .json()
        .await?;
    game["id"]
        .as_str()
        .map(str::to_owned)
        .context("the api answered no game id")
}

/// The median of `value` over `runs` (NaN for none).
fn med(runs: &[&Run], value: fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(|r| value(r)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

/// `runs`' api CPU/req and p99 beside `baseline`'s, each with its ratio.
fn against(runs: &[&Run], baseline: &[&Run]) -> String {
    format!(
        "api CPU/req {} vs {} ({}), p99 {} vs {} ({})",
        micros(med(runs, cpu)),
        micros(med(baseline, cpu)),
        ratio(med(runs, cpu), med(baseline, cpu)),
        seconds(med(runs, p99)),
        seconds(med(baseline, p99)),
        ratio(med(runs, p99), med(baseline, p99)),
    )
}

/// Spans the api created: those the collector received, plus those the api
/// reports dropped.
fn spans_created(run: &Run) -> f64 {
    (run.spans_received.unwrap_or(0) as u64 + run.spans_dropped) as f64
}

/// Spans created per request the api answered.
fn spans_per_request(run: &Run) -> f64 {
    spans_created(run) / run.all_requests as f64
}

fn cpu(run: &Run) -> f64 {
    run.cpu_per_request
}

fn p99(run: &Run) -> f64 {
    run.measured.p99.as_secs_f64()
}

fn seconds(s: f64) -> String {
    latency(Duration::from_secs_f64(s.max(0.0)))
}

/// CPU a request: tens of microseconds, where a tenth tells.
fn micros(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}

/// One row per configuration: medians over the rounds, each with its ratio
/// to `off`.
fn summarize(kind: Kind, settings: &Settings, runs: &[Run]) -> Table {
    let mut table = Table::new(
        format!(
            "{}: {} (wrk, {} connections, {} s measured per run)",
            settings.title,
            kind.title(),
            settings.connections,
            settings.duration.as_secs()
        ),
        vec![
            "telemetry",
            "req/s",
            "×off",
            "p50",
            "×off",
            "p99",
            "×off",
            "api CPU/req",
            "×off",
            "requests (least)",
            "non-2xx+errors",
            "RSS MiB before→after",
            "×off",
            "spans received",
            "created",
            "dropped",
            "spans/req",
            "shutdown",
            "×off",
            "rounds differ (req/s, p99)",
        ],
    );
    let of = |config: Config| -> Vec<&Run> { runs.iter().filter(|r| r.config == config).collect() };
    let rps = |r: &Run| r.measured.requests_per_second;
    let p50 = |r: &Run| r.measured.p50.as_secs_f64();
    let rss_after = |r: &Run| r.rss_after;
    let shutdown = |r: &Run| r.shutdown.as_secs_f64();
    let off = of(Config::Off);
    let mut problems = Vec::new();
    for &config in &settings.configs {
        let these = of(config);
        let received: Vec<f64> = these
            .iter()
            .filter_map(|r| r.spans_received.map(|n| n as f64))
            .collect();
        let dropped = med(&these, |r| r.spans_dropped as f64);
        // A healthy collector took every span: what arrived, plus what the
        // api reports dropped, is every span it created.
        let healthy = these.iter().all(|r| r.spans_received.is_some());
        let created = healthy.then(|| med(&these, spans_created));
        let per_request = healthy.then(|| med(&these, spans_per_request));
        let least = these.iter().map(|r| r.requests).min().unwrap_or(0);
        let errors: u64 = these.iter().map(|r| r.errors).sum();
        let growth = these
            .iter()
            .map(|r| r.rss_after - r.rss_before)
            .fold(f64::MIN, f64::max);
        let disagree = |value: fn(&Run) -> f64| {
            spread(&these.iter().map(|r| value(r)).collect::<Vec<_>>())
                .map_or_else(|| "–".to_owned(), |s| format!("{:.0}%", s * 100.0))
        };
        let killed = these.iter().filter(|r| !r.exited).count();
        if killed > 0 {
            problems.push(format!(
                "✗ {}: the api did not exit within 30 s of SIGTERM in {killed} run(s), and was \
                 killed (its dropped spans unknown)",
                config.name()
            ));
        }
        if errors > 0 {
            problems.push(format!(
                "✗ {}: {errors} non-2xx answers or socket errors",
                config.name()
            ));
        }
        if config.collector_broken() {
            if least < settings.min_requests {
                problems.push(format!(
                    "✗ {}: a run saw {least} requests (at least {} asked for)",
                    config.name(),
                    settings.min_requests
                ));
            }
            if growth > MAX_RSS_GROWTH_MIB {
                problems.push(format!(
                    "✗ {}: RSS grew {growth:.1} MiB in a run (at most {MAX_RSS_GROWTH_MIB} MiB)",
                    config.name()
                ));
            }
        }
        table.rows.push(vec![
            config.name().to_owned(),
            format!("{:.0}", med(&these, rps)),
            ratio(med(&these, rps), med(&off, rps)),
            seconds(med(&these, p50)),
            ratio(med(&these, p50), med(&off, p50)),
            seconds(med(&these, p99)),
            ratio(med(&these, p99), med(&off, p99)),
            micros(med(&these, cpu)),
            ratio(med(&these, cpu), med(&off, cpu)),
            least.to_string(),
            errors.to_string(),
            format!(
                "{:.1}→{:.1}",
                med(&these, |r| r.rss_before),
                med(&these, rss_after)
            ),
            ratio(med(&these, rss_after), med(&off, rss_after)),
            median(&received).map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
            created.map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
            format!("{dropped:.0}"),
            per_request.map_or_else(|| "–".to_owned(), |n| format!("{n:.2}")),
            seconds(med(&these, shutdown)),
            ratio(med(&these, shutdown), med(&off, shutdown)),
            format!("{}, {}", disagree(rps), disagree(p99)),
        ]);
    }
    table.notes.push(format!(
        "Medians of {} rounds, configurations in rotated order; ×off: ratio to off. \
         RSS before: after the {} s warm-up. down and stuck: load continued until \
         each run saw {} requests (req/s and latency from the measured window). \
         Spans created = received + dropped, with a healthy collector only (with none, \
         spans in failed exports are lost uncounted); spans/req: created ÷ requests \
         answered, warm-up included. Rounds differ: (max − min) / median.",
        settings.rounds,
        settings.warmup.as_secs(),
        settings.min_requests
    ));
    let on = of(Config::On);
    if !on.is_empty() {
        let spans_per_request = med(&on, spans_per_request);
        table.notes.push(format!(
            "CPU per exported span, creating and exporting it: (api CPU/req on − off) ÷ spans a \
             request = ({} − {}) ÷ {spans_per_request:.2} = {:.2} µs.",
            micros(med(&on, cpu)),
            micros(med(&off, cpu)),
            (med(&on, cpu) - med(&off, cpu)) / spans_per_request * 1e6
        ));
    }
    let metrics = of(Config::Metrics);
    if !on.is_empty() && !metrics.is_empty() {
        table.notes.push(format!(
            "Against the same-metrics baseline (metrics: spans created, not exported; metrics \
             as on): on {}.",
            against(&on, &metrics)
        ));
    }
    let traces = of(Config::Traces);
    for peer in [Config::TowerHttp, Config::AxumOtel] {
        let peer_runs = of(peer);
        if traces.is_empty() || peer_runs.is_empty() {
            continue;
        }
        table.notes.push(format!(
            "traces against {}: {}, spans/req {:.2} vs {:.2}.",
            peer.name(),
            against(&traces, &peer_runs),
            med(&traces, spans_per_request),
            med(&peer_runs, spans_per_request),
        ));
    }
    let profiling = of(Config::Profiling);
    if !on.is_empty() && !profiling.is_empty() {
        profiling_notes(&mut table, &mut problems, &on, &profiling);
    }
    table.notes.extend(problems);
    table
}

/// The profiling runs against the `on` runs: CPU, p99, what was pushed, and
/// the profiler's own threads.
fn profiling_notes(table: &mut Table, problems: &mut Vec<String>, on: &[&Run], profiling: &[&Run]) {
    let micros = |s: f64| format!("{:.1} µs", s * 1e6);
    let increase = med(profiling, cpu) / med(on, cpu) - 1.0;
    let pushed = profiling
        .iter()
        .filter_map(|r| r.profiles_received)
        .map(|(pushes, _)| pushes)
        .min()
        .unwrap_or(0);
    let sampled = med(profiling, |r| {
        r.profiles_received
            .map_or(0.0, |(_, sampled)| sampled.as_secs_f64())
    });
    table.notes.push(format!(
        "Profiling ({} Hz, span profiles) over on: api CPU/req {} vs {} ({:+.1}%, at most \
         {:+.0}% allowed); p99 {} vs {}; at least {pushed} profile(s) pushed a run, {:.1} s of \
         CPU sampled (median).",
        telemetry::DEFAULT_SAMPLE_RATE,
        micros(med(profiling, cpu)),
        micros(med(on, cpu)),
        increase * 100.0,
        MAX_PROFILING_CPU_INCREASE * 100.0,
        seconds(med(profiling, p99)),
        seconds(med(on, p99)),
        sampled,
    ));
    table.notes.push(format!(
        "Of the profiling runs' CPU/req, the profiler's own threads: the agent {} (symbolizing \
         and pushing every 10 s), the span-profile watchdog {}; the rest of the increase is the \
         sampling signal handler and the span-profile layer on the api's threads (medians).",
        micros(med(profiling, |r| r.profiler_cpu_per_request.0)),
        micros(med(profiling, |r| r.profiler_cpu_per_request.1)),
    ));
    if pushed == 0 {
        problems.push("✗ profiling: a run pushed no profile".to_owned());
    }
    if increase > MAX_PROFILING_CPU_INCREASE {
        problems.push(format!(
            "✗ profiling: api CPU/req {:+.1}% over on (at most {:+.0}%)",
            increase * 100.0,
            MAX_PROFILING_CPU_INCREASE * 100.0
        ));
    }
}

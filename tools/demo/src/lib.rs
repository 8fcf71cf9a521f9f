//! The whole pipeline on one machine, without Docker: `api`, `worker` and
//! `bot` as child processes exporting to an embedded OTLP receiver.
//!
//! The `demo` binary is multi-call: `demo service <name>` runs one service
//! exactly as its own binary does, so the stack needs nothing but this one
//! executable. [`Stack`] starts the three, [`render`] prints a trace.
//!
//! # Layout
//! - [`Names`]: the database, key prefix, exchanges and queues one stack uses.
//! - [`Launch`], [`Service`]: one service process, started and stopped.
//! - [`Stack`]: the three services running, and how to stop them.
//! - [`load`]: games created at a fixed rate, and what became of them.
//! - [`render`]: a trace and its logs as text for a terminal.

/// Every binary that runs the services in-process (`demo`, `chaos`,
/// `bench`) links this crate, and so runs them with the allocator their own
/// binaries ship with (services/api/src/main.rs says why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod load;
pub mod render;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a service may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The servers one stack talks to, and what it owns on them.
#[derive(Debug, Clone)]
pub struct Names {
    /// A database of its own.
    pub database_url: String,
    /// The Redis server.
    pub redis_url: String,
    /// The RabbitMQ server.
    pub rabbitmq_url: String,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Exchange of game events.
    pub events_exchange: String,
    /// Exchange of notifications.
    pub notifications_exchange: String,
    /// The worker's queue.
    pub worker_queue: String,
    /// The bot's queue.
    pub bot_queue: String,
}

impl Names {
    /// A fresh database on the local servers and names no one else uses,
    /// with `prefix` in each.
    pub async fn unique(prefix: &str) -> Self {
        // The stamp of the database's name in every name, so that the test
        // command's sweep knows them all for one run's.
        let database = test_support::fresh_database_named(&format!("gamenight_{prefix}_")).await;
        let suffix = test_support::sweep::stamp(database.url())
            .expect("fresh databases are stamped")
            .to_owned();
        Self {
            database_url: database.keep(),
            redis_url: test_support::redis_url(),
            rabbitmq_url: test_support::rabbitmq_url(),
            redis_prefix: format!("gamenight-{prefix}:{suffix}:"),
            events_exchange: format!("gamenight.{prefix}.{suffix}.events"),
            notifications_exchange: format!("gamenight.{prefix}.{suffix}.notifications"),
            worker_queue: format!("gamenight.{prefix}.{suffix}.worker"),
            bot_queue: format!("gamenight.{prefix}.{suffix}.bot"),
        }
    }

    /// Drops the database and deletes the queues (with their dead-letter
    /// queues and exchanges) and exchanges these names stand for.
    ///
    /// Returns `Err` when a server cannot be reached or refuses.
    pub async fn remove(&self) -> anyhow::Result<()> {
        test_support::drop_database(&self.database_url)
            .await
            .context("cannot drop the database")?;
        let mut queues = Vec::new();
        let mut exchanges = vec![
            self.events_exchange.clone(),
            self.notifications_exchange.clone(),
        ];
        for queue in [&self.worker_queue, &self.bot_queue] {
            let spec = broker::QueueSpec::bound(queue, "", "");
            queues.extend([queue.clone(), spec.dead_letter_queue()]);
            exchanges.push(spec.dead_letter_exchange());
        }
        test_support::sweep::delete_on_rabbitmq(&self.rabbitmq_url, &queues, &exchanges)
            .await
            .context("cannot delete the exchanges and queues")
    }

    /// A guard that [removes](Names::remove) these names when dropped: for
    /// tests, which leave nothing behind whether they pass or fail.
    #[must_use = "the names are removed when the guard is dropped"]
    pub fn removed_on_drop(&self) -> RemovedOnDrop {
        RemovedOnDrop(self.clone())
    }
}

/// See [`Names::removed_on_drop`].
#[derive(Debug)]
pub struct RemovedOnDrop(Names);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        if let Err(err) = test_support::run_to_completion(self.0.remove()) {
            eprintln!("cannot remove the stack's names: {err:#}");
        }
    }
}

/// How to start one service from a multi-call binary (`<binary> service
/// <name>`, as `demo` and `chaos` are): kept, so it can be started again
/// after a crash.
#[derive(Debug, Clone)]
pub struct Launch {
    binary: PathBuf,
    name: &'static str,
    /// The service's own arguments, after `service <name>`.
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The log message that says it is ready.
    ready: String,
    /// `taskset -c` CPU list to pin it to.
    cpus: Option<String>,
}

impl Launch {
    /// `<binary> service <name>` with `env` and nothing else in its
    /// environment, ready once it logs `ready` as the `message` of a JSON
    /// log line (`LOG_FORMAT=json`).
    pub fn new(
        binary: &Path,
        name: &'static str,
        ready: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Self {
            binary: binary.to_owned(),
            name,
            args: Vec::new(),
            env: env.into_iter().collect(),
            ready: ready.to_owned(),
            cpus: None,
        }
    }

    /// Passes `args` to the service (`<binary> service <name> <args>`), as
    /// a container's `args` are passed to its image's entrypoint.
    pub fn with_args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args = args.into_iter().collect();
        self
    }

    /// Runs it on the CPUs in `cpus` only (`taskset -c <cpus>`, which
    /// replaces itself with the service: the pid is the service's).
    pub fn pinned_to(mut self, cpus: &str) -> Self {
        self.cpus = Some(cpus.to_owned());
        self
    }

    /// `name` from `binary` with `common`, then `env`, then `extra` (each
    /// overriding the one before).
    fn layered(
        binary: &Path,
        name: &'static str,
        ready: &str,
        common: &[(&'static str, String)],
        env: &[(&'static str, String)],
        extra: &[(String, String)],
    ) -> Self {
        let env = common
            .iter()
            .chain(env)
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .chain(extra.iter().cloned());
        Self::new(binary, name, ready, env)
    }

    /// Starts the service, its output recorded in `printed`, and waits until
    /// it logs that it is ready; returns it with that log line.
    ///
    /// Returns `Err`, with the last lines it printed, when it cannot be
    /// started, exits first, or is not ready within a minute.
    pub async fn start(&self, printed: &Printed) -> anyhow::Result<(Service, serde_json::Value)> {
        let name = self.name;
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpus]).arg(&self.binary);
                taskset
            }
            None => Command::new(&self.binary),
        };
        let mut child = command
            .args(["service", name])
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let printed_err = printed.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                // Still shown, as when stderr was the terminal's.
                eprintln!("{name}: {line}");
                printed_err.push(name, &line);
            }
        });
        let (ready_sender, ready) = oneshot::channel();
        let printed_out = printed.clone();
        let ready_message = self.ready.clone();
        tokio::spawn(async move {
            let mut ready_sender = Some(ready_sender);
            let mut reader = BufReader::new(stdout).lines();
            // Drained to the end, so the child never blocks on a full pipe.
            while let Ok(Some(line)) = reader.next_line().await {
                if ready_sender.is_some()
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                    && json["message"] == ready_message.as_str()
                    && let Some(sender) = ready_sender.take()
                {
                    let _ = sender.send(json);
                }
                printed_out.push(name, &line);
            }
        });
        let service = Service {
            launch: self.clone(),
            child,
        };
        let failed = |what: String| {
            let last = printed.last_lines(name, 20);
            anyhow::anyhow!("{what}; its last lines:\n{}", last.join("\n"))
        };
        match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(Ok(line)) => Ok((service, line)),
            Ok(Err(_)) => Err(failed(format!(
                "{name} exited before logging {:?}",
                self.ready
            ))),
            Err(_) => Err(failed(format!(
                "{name} did not log {:?} within {START_TIMEOUT:?}",
                self.ready
            ))),
        }
    }
}

/// A running service process.
#[derive(Debug)]
pub struct Service {
    launch: Launch,
    child: Child,
}

impl Service {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit.
    ///
    /// Returns `Err` when it has not exited 30 s later (it is killed then).
    pub async fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let name = self.launch.name;
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("cannot run kill")?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .with_context(|| format!("{name} did not exit within 30 s of SIGTERM"))?
            .with_context(|| format!("waiting for {name}"))
    }
}

/// Settings of a stack beyond its [`Names`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where OTLP/HTTP goes (`http://127.0.0.1:4318`).
    pub otlp_endpoint: String,
    /// The bot's webhook; `None` runs it dry (`BOT_DRY_RUN=true`).
    pub webhook_url: Option<String>,
    /// Extra variables for every service (`BOT_MAX_ATTEMPTS=3`, ...).
    pub extra_env: Vec<(String, String)>,
}

/// Every line the services of a stack printed, stdout and stderr alike, for
/// tests that check what a service shows.
#[derive(Debug, Clone, Default)]
pub struct Printed(Arc<Mutex<Vec<String>>>);

impl Printed {
    /// The lines so far, each prefixed with the service that printed it.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    /// The last `count` lines `service` printed, without the prefix.
    pub fn last_lines(&self, service: &str, count: usize) -> Vec<String> {
        let prefix = format!("{service}: ");
        let Ok(lines) = self.0.lock() else {
            return Vec::new();
        };
        let mut last: Vec<String> = lines
            .iter()
            .rev()
            .filter_map(|line| line.strip_prefix(&prefix))
            .take(count)
            .map(str::to_owned)
            .collect();
        last.reverse();
        last
    }

    fn push(&self, service: &str, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{service}: {line}"));
        }
    }
}

/// `api`, `worker` and `bot`, running.
#[derive(Debug)]
pub struct Stack {
    /// Base URL of the api.
    pub api_url: String,
    /// What the stack uses on the servers.
    pub names: Names,
    services: Vec<Service>,
    printed: Printed,
    binary: PathBuf,
    /// What every service of the stack is started with.
    common_env: Vec<(&'static str, String)>,
    extra_env: Vec<(String, String)>,
}

impl Stack {
    /// Starts the three services from `binary` (a `demo` executable):
    /// the worker first (it declares the queues the others publish to), then
    /// the api, then the bot, each once it is ready.
    pub async fn start(binary: &Path, names: Names, options: &Options) -> anyhow::Result<Self> {
        let common = [
            ("RABBITMQ_URL", names.rabbitmq_url.clone()),
            ("DATABASE_URL", names.database_url.clone()),
            ("EVENTS_EXCHANGE", names.events_exchange.clone()),
            (
                "NOTIFICATIONS_EXCHANGE",
                names.notifications_exchange.clone(),
            ),
            ("BOT_QUEUE", names.bot_queue.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", options.otlp_endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
        ];
        let printed = Printed::default();
        let launch = |name: &'static str, ready: &str, env: Vec<(&'static str, String)>| {
            Launch::layered(binary, name, ready, &common, &env, &options.extra_env)
        };

        // The api applies the migrations the worker's tables come from.
        let mut migrate = Command::new(binary);
        migrate
            .args(["service", "api", "migrate"])
            .env_clear()
            .envs(common.iter().cloned())
            .env("REDIS_URL", names.redis_url.clone());
        let status = migrate
            .stdout(Stdio::null())
            .status()
            .await
            .context("cannot run migrations")?;
        if !status.success() {
            bail!("migrations failed: {status}");
        }

        let (worker, _) = launch(
            "worker",
            "consuming",
            vec![
                ("WORKER_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
                ("WORKER_QUEUE", names.worker_queue.clone()),
                ("SCHEDULER_INTERVAL_MS", "200".to_owned()),
                ("WORKER_RETRY_BACKOFF_MS", "100".to_owned()),
            ],
        )
        .start(&printed)
        .await?;
        let (api, listening) = launch(
            "api",
            "listening",
            vec![
                ("API_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
                ("REDIS_URL", names.redis_url.clone()),
                ("REDIS_KEY_PREFIX", names.redis_prefix.clone()),
                ("OUTBOX_POLL_INTERVAL_MS", "200".to_owned()),
            ],
        )
        .start(&printed)
        .await?;
        let api_url = format!(
            "http://{}",
            listening["addr"]
                .as_str()
                .context("api logged no address")?
        );
        let mut bot_env = vec![
            ("BOT_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("API_BASE_URL", api_url.clone()),
            ("BOT_RETRY_BACKOFF_MS", "100".to_owned()),
        ];
        match &options.webhook_url {
            Some(url) => bot_env.push(("DISCORD_WEBHOOK_URL", url.clone())),
            None => bot_env.push(("BOT_DRY_RUN", "true".to_owned())),
        }
        let (bot, _) = launch("bot", "consuming", bot_env).start(&printed).await?;
        Ok(Self {
            api_url,
            names,
            services: vec![worker, api, bot],
            printed,
            binary: binary.to_owned(),
            common_env: common.to_vec(),
            extra_env: options.extra_env.clone(),
        })
    }

    /// Starts one more `name` (`api`, `worker` or `bot`) with the stack's
    /// settings and `env` on top, and waits for its `ready_message` log
    /// line. It is stopped with the others.
    pub async fn start_another(
        &mut self,
        name: &'static str,
        env: &[(&'static str, String)],
        ready_message: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let (service, ready) = Launch::layered(
            &self.binary,
            name,
            ready_message,
            &self.common_env,
            env,
            &self.extra_env,
        )
        .start(&self.printed)
        .await?;
        self.services.push(service);
        Ok(ready)
    }

    /// Stops the first running `name` with SIGTERM and returns its exit
    /// status, to take one service away from the others.
    pub async fn terminate(&mut self, name: &str) -> anyhow::Result<ExitStatus> {
        let index = self
            .services
            .iter()
            .position(|service| service.launch.name == name)
            .with_context(|| format!("no {name} is running"))?;
        self.services.remove(index).terminate().await
    }

    /// Kills the `worker` or the `bot` with SIGKILL, as a crash would: no
    /// draining, no telemetry flush.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let service = self.restartable(name)?;
        service
            .child
            .kill()
            .await
            .with_context(|| format!("cannot kill {name}"))
    }

    /// Starts the `worker` or the `bot` again as it was first started, and
    /// waits until it consumes. (Not the api: it would listen on a new
    /// port the bot does not know.)
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let printed = self.printed.clone();
        let service = self.restartable(name)?;
        let (fresh, _) = service.launch.start(&printed).await?;
        // The one replaced is dead already, or is killed as it is dropped.
        *service = fresh;
        Ok(())
    }

    fn restartable(&mut self, name: &str) -> anyhow::Result<&mut Service> {
        if name == "api" {
            bail!("the api is not restarted: its new port would not reach the bot");
        }
        self.services
            .iter_mut()
            .find(|service| service.launch.name == name)
            .with_context(|| format!("no service named {name}"))
    }

    /// The running services' names and process ids.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.services
            .iter()
            .filter_map(|service| Some((service.launch.name, service.pid()?)))
            .collect()
    }

    /// What the services printed so far (and go on printing).
    pub fn printed(&self) -> Printed {
        self.printed.clone()
    }

    /// Stops every service with SIGTERM (each drains and flushes its
    /// telemetry) and returns their exit statuses by name.
    pub async fn stop(self) -> anyhow::Result<Vec<(&'static str, ExitStatus)>> {
        let mut statuses = Vec::new();
        // The bot first, so nothing consumes half-way; the worker last.
        for service in self.services.into_iter().rev() {
            let name = service.launch.name;
            statuses.push((name, service.terminate().await?));
        }
        Ok(statuses)
    }
}

/// A command-line duration of the runs built on the stack: seconds, written
/// `40s` or `40`.
///
/// Returns `Err`, saying what is expected, for anything else.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a number of seconds such as 40s"))
}

/// For a multi-call binary's `main`: when this process was started as
/// `<binary> service <name> [migrate]` (as [`Launch`] starts services),
/// runs that service to its end and returns its exit code; otherwise `None`.
pub async fn service_if_asked() -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [command, name, rest @ ..] if command == "service" => Some(service_main(name, rest).await),
        _ => None,
    }
}

/// Runs one service in this process, as its own binary would: the body of
/// `demo service <name> [args]`, `args` being the service's own.
pub async fn service_main(name: &str, args: &[String]) -> std::process::ExitCode {
    let argv = std::iter::once(name.to_owned()).chain(args.iter().cloned());
    match name {
        "api" => api::main(argv).await,
        "worker" => worker::main(argv).await,
        "bot" => bot::main(argv).await,
        _ => {
            eprintln!("usage: demo service <api|worker|bot> [its arguments]");
            std::process::ExitCode::from(2)
        }
    }
}

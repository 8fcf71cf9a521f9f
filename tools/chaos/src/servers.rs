//! Private PostgreSQL, Redis and RabbitMQ servers for one run.
//!
//! The servers on the usual ports are shared with other people's tests, so a
//! fault is never made there: each run starts its own three on free ports,
//! with all their files in one temporary directory, and [`Servers`] stops
//! them and removes the directory when dropped (normal end, error or
//! Ctrl-C alike).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long any one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The three servers, running.
#[derive(Debug)]
pub(crate) struct Servers {
    dir: PathBuf,
    postgres: Postgres,
    redis: Redis,
    rabbitmq: RabbitMq,
}

impl Servers {
    /// Starts the three in a new directory under the system's temp dir.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("gamenight-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // From here on a failure still removes the directory and whatever
        // was started in it.
        let mut servers = Self {
            postgres: Postgres {
                dir: dir.join("postgres"),
                port: free_port()?,
                started: false,
            },
            redis: Redis {
                dir: dir.join("redis"),
                port: free_port()?,
            },
            rabbitmq: RabbitMq {
                dir: dir.join("rabbitmq"),
                node: format!("chaos-{}@localhost", std::process::id()),
                port: free_port()?,
                dist_port: free_port()?,
                started: false,
            },
            dir,
        };
        // RabbitMQ takes seconds to boot: the other two start meanwhile.
        servers.rabbitmq.launch().await?;
        servers.postgres.start().await?;
        servers.redis.start().await?;
        servers.rabbitmq.wait_until_started().await?;
        Ok(servers)
    }

    /// `postgres://…` of the database the stack uses.
    pub(crate) fn database_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.postgres.port
        )
    }

    /// `redis://…` of the Redis server.
    pub(crate) fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis.port)
    }

    /// `amqp://…` of the RabbitMQ node.
    pub(crate) fn rabbitmq_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.rabbitmq.port)
    }

    /// Restarts PostgreSQL (`pg_ctl restart -m fast`: open connections are
    /// terminated) and returns once it accepts connections again.
    pub(crate) async fn restart_postgres(&self) -> anyhow::Result<()> {
        let mut restart = self.postgres.pg_ctl(&["restart", "-m", "fast"])?;
        // Without its log file the new server would write to our pipe and
        // keep it open: pg_ctl's output would never end.
        restart.arg("-l").arg(self.postgres.log());
        run(restart).await.map(drop)
    }

    /// Shuts Redis down without saving.
    pub(crate) async fn stop_redis(&self) -> anyhow::Result<()> {
        run(self.redis.cli(&["shutdown", "nosave"])).await.map(drop)
    }

    /// Starts Redis again and returns once it answers.
    pub(crate) async fn start_redis(&self) -> anyhow::Result<()> {
        self.redis.start().await
    }

    /// Stops the RabbitMQ application (`rabbitmqctl stop_app`): every
    /// connection is closed and refused until [`Servers::start_rabbitmq_app`].
    pub(crate) async fn stop_rabbitmq_app(&self) -> anyhow::Result<()> {
        run(self.rabbitmq.ctl(&["stop_app"])).await.map(drop)
    }

    /// Starts the RabbitMQ application again; returns once `start_app` has
    /// returned, with the moment its AMQP port first accepted a connection
    /// (clients can be back before the command says so).
    pub(crate) async fn start_rabbitmq_app(&self) -> anyhow::Result<Instant> {
        let port = self.rabbitmq.port;
        let listening = tokio::spawn(wait_for_port(port));
        let ctl = run(self.rabbitmq.ctl(&["start_app"])).await;
        let listening = listening.await.context("the port watch failed")?;
        ctl?;
        listening
    }

    /// The messages waiting in the node's dead-letter queues (`*.dlq`).
    pub(crate) async fn dead_letters(&self) -> anyhow::Result<u64> {
        let listed = run(self.rabbitmq.ctl(&[
            "list_queues",
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
        ]))
        .await?;
        dead_letters_listed(&String::from_utf8_lossy(&listed.stdout))
    }
}

/// The messages in the dead-letter queues of `list_queues name messages`
/// output: one queue a line, its name and count separated by a tab.
fn dead_letters_listed(listed: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for line in listed.lines().filter(|line| !line.trim().is_empty()) {
        let (name, messages) = line
            .rsplit_once('\t')
            .with_context(|| format!("unexpected list_queues line {line:?}"))?;
        if name.ends_with(".dlq") {
            total += messages
                .trim()
                .parse::<u64>()
                .with_context(|| format!("unexpected message count in {line:?}"))?;
        }
    }
    Ok(total)
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.rabbitmq.stop();
        self.postgres.stop();
        self.redis.stop();
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("chaos: cannot remove {}: {err}", self.dir.display());
        }
    }
}

#[derive(Debug)]
struct Postgres {
    dir: PathBuf,
    port: u16,
    started: bool,
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // initdb refuses to run as root; the server's files then belong to
        // the `postgres` account.
        if running_as_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(&self.dir);
            run(chown).await?;
        }
        let data = self.data();
        let mut initdb = self.command("initdb")?;
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        run(initdb).await.context("initdb failed")?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl")?;
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.log())
            .args(["-o", &options, "-w", "start"]);
        run(start).await.context("PostgreSQL did not start")?;
        self.started = true;
        Ok(())
    }

    /// `pg_ctl <args> -w` on this server: it returns once done.
    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut command = self.command("pg_ctl")?;
        command.arg("-D").arg(self.data()).args(args).arg("-w");
        Ok(command)
    }

    fn stop(&self) {
        if self.started
            && let Err(err) = self
                .pg_ctl(&["stop", "-m", "immediate"])
                .and_then(run_blocking)
        {
            eprintln!("chaos: cannot stop the private PostgreSQL: {err:#}");
        }
    }

    /// A PostgreSQL program, run as `postgres` when we are root.
    fn command(&self, program: &str) -> anyhow::Result<Command> {
        let path = postgres_bin_dir()?.join(program);
        Ok(if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        })
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout), or
/// the directory of `initdb` on the `PATH`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let debian = Path::new("/usr/lib/postgresql");
    if let Ok(entries) = std::fs::read_dir(debian) {
        let newest = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max();
        if let Some(version) = newest {
            return Ok(debian.join(version.to_string()).join("bin"));
        }
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()))
        .context("cannot find PostgreSQL's initdb (in /usr/lib/postgresql/*/bin or on PATH)")
}

#[derive(Debug)]
struct Redis {
    dir: PathBuf,
    port: u16,
}

impl Redis {
    async fn start(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let port = self.port.to_string();
        let mut server = Command::new("redis-server");
        server
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        run(server).await.context("redis-server did not start")?;
        wait_for_port(self.port).await.map(drop)
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]).args(args);
        command
    }

    fn stop(&self) {
        // Down already when a run ends inside a Redis outage.
        let _ = run_blocking(self.cli(&["shutdown", "nosave"]));
    }
}

#[derive(Debug)]
struct RabbitMq {
    dir: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
    started: bool,
}

impl RabbitMq {
    /// Starts a detached node with its own configuration, data, logs,
    /// plugins (none) and Erlang cookie, all under `dir`.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let home = self.dir.join("home");
        std::fs::create_dir_all(&home)?;
        // Without a config file of our own the node would read
        // /etc/rabbitmq/rabbitmq.conf and try the shared node's port.
        std::fs::write(
            self.dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{}\n", self.port),
        )?;
        std::fs::write(self.dir.join("rabbitmq-env.conf"), "")?;
        std::fs::write(self.dir.join("enabled_plugins"), "[].\n")?;
        self.started = true;
        let mut server = self.command("rabbitmq-server");
        server.arg("-detached");
        run(server).await.context("rabbitmq-server did not start")?;
        Ok(())
    }

    /// Waits until the node accepts AMQP connections: its listener is the
    /// last thing it starts. (`rabbitmqctl await_startup` fails at once
    /// while the node has not yet registered with epmd.)
    async fn wait_until_started(&self) -> anyhow::Result<()> {
        wait_for_port(self.port)
            .await
            .context("the private RabbitMQ node did not start")
            .map(drop)
    }

    fn ctl(&self, args: &[&str]) -> Command {
        let mut command = self.command("rabbitmqctl");
        command.args(["-n", &self.node]).args(args);
        command
    }

    fn stop(&self) {
        if self.started
            && let Err(err) = run_blocking(self.ctl(&["stop"]))
        {
            eprintln!(
                "chaos: cannot stop the private RabbitMQ node {}: {err:#}",
                self.node
            );
        }
    }

    /// A RabbitMQ script with this node's environment. The scripts in
    /// /usr/lib/rabbitmq/bin are used when present: Debian's wrappers in
    /// /usr/sbin switch to the `rabbitmq` account and its HOME.
    fn command(&self, program: &str) -> Command {
        let debian = Path::new("/usr/lib/rabbitmq/bin").join(program);
        let mut command = Command::new(if debian.is_file() {
            debian
        } else {
            program.into()
        });
        let file = |name: &str| self.dir.join(name);
        command
            .env("HOME", file("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", file("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", file("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", file("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", file("mnesia"))
            .env("RABBITMQ_LOG_BASE", file("log"))
            .env("RABBITMQ_PID_FILE", file("rabbitmq.pid"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        command
    }
}

/// Runs `command` to completion; its output is kept, and shown on failure.
/// One that hangs is killed after [`COMMAND_TIMEOUT`] and is an error.
async fn run(command: Command) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .with_context(|| {
            format!(
                "{:?} did not finish within {COMMAND_TIMEOUT:?}",
                command.as_std().get_program()
            )
        })?;
    checked(command.as_std(), output)
}

/// [`run`] for where no runtime can wait: the clean-up in `drop`.
fn run_blocking(mut command: Command) -> anyhow::Result<Output> {
    let output = command.output();
    checked(&command, output)
}

fn checked(command: &Command, output: std::io::Result<Output>) -> anyhow::Result<Output> {
    let output = output.with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} {:?} failed ({}): {}{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
        );
    }
    Ok(output)
}

/// A port of 127.0.0.1 free right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls until `port` accepts a TCP connection; returns when it first did.
async fn wait_for_port(port: u16) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether this process runs as root (the owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dead_letter_queues_count() {
        let listed = "gamenight.bot\t12\ngamenight.bot.dlq\t2\ngamenight.worker.dlq\t1\n\n";
        assert_eq!(dead_letters_listed(listed).ok(), Some(3));
        assert!(dead_letters_listed("gamenight.bot.dlq\tmany").is_err());
    }
}

//! The faults, their order in a run, and how each is made.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use demo::Stack;

use crate::report::Injected;
use crate::servers::Servers;

/// How long RabbitMQ and Redis stay down.
const OUTAGE: Duration = Duration::from_secs(5);

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `rabbitmqctl stop_app`, 5 s, `start_app`.
    RabbitMqOutage,
    /// SIGKILL of the worker, then a new one.
    WorkerCrash,
    /// SIGKILL of the bot, then a new one.
    BotCrash,
    /// `pg_ctl restart -m fast`.
    PostgresRestart,
    /// Redis shut down, 5 s, started again.
    RedisOutage,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RabbitMqOutage => "rabbitmq stop_app 5 s",
            Self::WorkerCrash => "worker SIGKILL",
            Self::BotCrash => "bot SIGKILL",
            Self::PostgresRestart => "postgresql restart",
            Self::RedisOutage => "redis down 5 s",
        })
    }
}

/// Every fault once, with `rabbitmq_outages` broker outages spread among
/// the others: R W R B R P D for three.
pub(crate) fn schedule(rabbitmq_outages: usize) -> Vec<Fault> {
    let others = [
        Fault::WorkerCrash,
        Fault::BotCrash,
        Fault::PostgresRestart,
        Fault::RedisOutage,
    ];
    let mut faults = Vec::new();
    for i in 0..rabbitmq_outages.max(others.len()) {
        if i < rabbitmq_outages {
            faults.push(Fault::RabbitMqOutage);
        }
        if let Some(other) = others.get(i) {
            faults.push(*other);
        }
    }
    faults
}

/// Makes `fault` happen and returns once its dependency is back; `status`
/// is told what is going on, for the progress line.
pub(crate) async fn inject(
    fault: Fault,
    servers: &Servers,
    stack: &mut Stack,
    status: impl Fn(String),
) -> anyhow::Result<Injected> {
    let started = Instant::now();
    status(format!("{fault}: injecting"));
    // When the fault has fully taken hold (a restart is one command).
    let mut down = started;
    let back = match fault {
        Fault::RabbitMqOutage => {
            servers.stop_rabbitmq_app().await?;
            down = Instant::now();
            status(format!("{fault}: down"));
            tokio::time::sleep(OUTAGE).await;
            status(format!("{fault}: starting"));
            servers.start_rabbitmq_app().await?
        }
        Fault::WorkerCrash | Fault::BotCrash => {
            let name = if fault == Fault::WorkerCrash {
                "worker"
            } else {
                "bot"
            };
            stack.kill(name).await?;
            down = Instant::now();
            status(format!("{fault}: restarting"));
            stack.restart(name).await?;
            Instant::now()
        }
        Fault::PostgresRestart => {
            servers.restart_postgres().await?;
            Instant::now()
        }
        Fault::RedisOutage => {
            servers.stop_redis().await?;
            down = Instant::now();
            status(format!("{fault}: down"));
            tokio::time::sleep(OUTAGE).await;
            servers.start_redis().await?;
            Instant::now()
        }
    };
    // Both clocks read together: spans carry wall-clock times.
    let back_wall = SystemTime::now() - back.elapsed();
    status(String::new());
    Ok(Injected {
        fault,
        started,
        down,
        back,
        back_wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fault::*;

    #[test]
    fn broker_outages_are_spread_among_the_other_faults() {
        assert_eq!(
            schedule(3),
            [
                RabbitMqOutage,
                WorkerCrash,
                RabbitMqOutage,
                BotCrash,
                RabbitMqOutage,
                PostgresRestart,
                RedisOutage
            ]
        );
        assert_eq!(
            schedule(1),
            [
                RabbitMqOutage,
                WorkerCrash,
                BotCrash,
                PostgresRestart,
                RedisOutage
            ]
        );
    }
}

//! The faults, their order in a run, and how each is made.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use demo::Stack;
use test_support::{FakeDiscord, Reply};

use crate::report::Injected;
use crate::servers::Servers;

/// How long RabbitMQ and Redis stay down.
const OUTAGE: Duration = Duration::from_secs(5);

/// What the webhook answers, in turn, [`STORM_PHASE`] each, during a 429
/// storm: route limits with a `Retry-After` of 1 to 2 s, and a global one.
const STORM: [Reply; 4] = [
    Reply::RateLimited(1.0),
    Reply::RateLimited(2.0),
    Reply::GlobalRateLimited(1.5),
    Reply::RateLimited(1.5),
];

/// How long each answer of [`STORM`] lasts: longer than its longest
/// `Retry-After`, so that a client which honours them still meets each.
const STORM_PHASE: Duration = Duration::from_millis(2_500);

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
    /// Discord away this long: a quarter each answering 500, alternately
    /// 502 and 503, never answering, and refusing connections.
    DiscordOutage(Duration),
    /// Discord answering every post 429 (route and global, `Retry-After`
    /// 1 to 2 s) this long.
    DiscordStorm(Duration),
}

impl Fault {
    /// Whether Discord is what fails: the bot waits it out with the
    /// notifications it holds, so games created meanwhile wait too.
    pub(crate) fn is_discord(self) -> bool {
        matches!(self, Self::DiscordOutage(_) | Self::DiscordStorm(_))
    }
}

/// How long the Discord faults last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiscordFaults {
    /// The outage ([`Fault::DiscordOutage`]).
    pub(crate) outage: Duration,
    /// The 429 storm ([`Fault::DiscordStorm`]).
    pub(crate) storm: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RabbitMqOutage => f.write_str("rabbitmq stop_app 5 s"),
            Self::WorkerCrash => f.write_str("worker SIGKILL"),
            Self::BotCrash => f.write_str("bot SIGKILL"),
            Self::PostgresRestart => f.write_str("postgresql restart"),
            Self::RedisOutage => f.write_str("redis down 5 s"),
            Self::DiscordOutage(length) => write!(f, "discord outage {} s", length.as_secs()),
            Self::DiscordStorm(length) => write!(f, "discord 429 storm {} s", length.as_secs()),
        }
    }
}

/// Every fault once, with `rabbitmq_outages` broker outages spread among
/// the others: R W R B R P D O S for three, the Discord faults last.
pub(crate) fn schedule(rabbitmq_outages: usize, discord: DiscordFaults) -> Vec<Fault> {
    let others = [
        Fault::WorkerCrash,
        Fault::BotCrash,
        Fault::PostgresRestart,
        Fault::RedisOutage,
        Fault::DiscordOutage(discord.outage),
        Fault::DiscordStorm(discord.storm),
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
    discord: &FakeDiscord,
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
        Fault::DiscordOutage(length) => {
            discord_outage(discord, length, |phase| status(format!("{fault}: {phase}"))).await;
            Instant::now()
        }
        Fault::DiscordStorm(length) => {
            status(format!("{fault}: answering 429"));
            let end = Instant::now() + length;
            for reply in STORM.iter().cycle() {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                discord.reply_always(*reply);
                tokio::time::sleep(STORM_PHASE.min(end - now)).await;
            }
            discord.reset_replies();
            status(format!("{fault}: over, the last Retry-After running out"));
            let back = rate_limits_over(discord, started, Instant::now());
            tokio::time::sleep_until(back.into()).await;
            back
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
        caught_up: back,
    })
}

const SECOND: Duration = Duration::from_secs(1);

/// Discord away for `length`, a quarter each: 500; 502 and 503 in turn,
/// a second each; no answer at all; connections refused. Then every post
/// is taken again. `phase` is told which part is under way.
async fn discord_outage(discord: &FakeDiscord, length: Duration, phase: impl Fn(&str)) {
    let quarter = length / 4;
    phase("500");
    discord.reply_always(Reply::ServerError);
    tokio::time::sleep(quarter).await;
    phase("502/503");
    let end = Instant::now() + quarter;
    for reply in [Reply::BadGateway, Reply::ServiceUnavailable]
        .iter()
        .cycle()
    {
        let now = Instant::now();
        if now >= end {
            break;
        }
        discord.reply_always(*reply);
        tokio::time::sleep(SECOND.min(end - now)).await;
    }
    phase("no answer");
    discord.reply_always(Reply::Timeout);
    tokio::time::sleep(quarter).await;
    phase("connections refused");
    discord.refuse_connections(true).await;
    discord.reset_replies();
    tokio::time::sleep(quarter).await;
    discord.refuse_connections(false).await;
}

/// When Discord's 429s answered from `from` to `until` stop holding a
/// client back: `until`, or later if the last `Retry-After` runs on.
fn rate_limits_over(discord: &FakeDiscord, from: Instant, until: Instant) -> Instant {
    discord
        .received()
        .iter()
        .filter(|received| (from..until).contains(&received.at))
        .filter_map(|received| match received.reply {
            Reply::RateLimited(seconds) | Reply::GlobalRateLimited(seconds) => {
                Some(received.at + Duration::try_from_secs_f64(seconds).ok()?)
            }
            _ => None,
        })
        .fold(until, Instant::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fault::*;

    const DISCORD: DiscordFaults = DiscordFaults {
        outage: Duration::from_secs(60),
        storm: Duration::from_secs(30),
    };

    #[test]
    fn broker_outages_are_spread_among_the_other_faults() {
        assert_eq!(
            schedule(3, DISCORD),
            [
                RabbitMqOutage,
                WorkerCrash,
                RabbitMqOutage,
                BotCrash,
                RabbitMqOutage,
                PostgresRestart,
                RedisOutage,
                DiscordOutage(DISCORD.outage),
                DiscordStorm(DISCORD.storm),
            ]
        );
        assert_eq!(
            schedule(1, DISCORD),
            [
                RabbitMqOutage,
                WorkerCrash,
                BotCrash,
                PostgresRestart,
                RedisOutage,
                DiscordOutage(DISCORD.outage),
                DiscordStorm(DISCORD.storm),
            ]
        );
        assert_eq!(
            DiscordStorm(DISCORD.storm).to_string(),
            "discord 429 storm 30 s"
        );
        assert!(DiscordOutage(DISCORD.outage).is_discord() && !RedisOutage.is_discord());
    }
}

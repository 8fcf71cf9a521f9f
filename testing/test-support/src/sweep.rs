//! Removing what test runs left behind on the shared servers.
//!
//! Tests drop their databases and delete their exchanges and queues when they
//! end ([`crate::TestDatabase`], [`crate::TestBroker`]); a run that is killed
//! cannot. Every name a test makes carries the time it was made
//! ([`crate::unique_name`]), so the test command can remove, before it runs,
//! whatever is older than any run still going. Redis needs nothing: every
//! key the services write expires.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use sqlx::{Connection as _, PgConnection};

/// When the name was made: the Unix time of its [`crate::unique_name`]
/// stamp, if it has one (production names such as `gamenight.events` do not).
pub fn made_at(name: &str) -> Option<u64> {
    stamp(name).and_then(|stamp| stamp[..10].parse().ok())
}

/// The `<10 digits>_<8 hex digits>` stamp in `name`, standing alone
/// between separators: what [`crate::unique_name`] adds.
pub fn stamp(name: &str) -> Option<&str> {
    const LEN: usize = 19;
    let bytes = name.as_bytes();
    (0..=bytes.len().saturating_sub(LEN)).find_map(|start| {
        let candidate = name.get(start..start + LEN)?;
        let (time, random) = candidate.split_at(10);
        let alone = |byte: Option<&u8>| byte.is_none_or(|b| !b.is_ascii_alphanumeric());
        (time.bytes().all(|b| b.is_ascii_digit())
            && random.starts_with('_')
            && random[1..].bytes().all(|b| b.is_ascii_hexdigit())
            && alone(start.checked_sub(1).and_then(|i| bytes.get(i)))
            && alone(bytes.get(start + LEN)))
        .then_some(candidate)
    })
}

/// Which leftovers to remove.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Everything a test made longer ago than this: runs still going made
    /// theirs more recently.
    OlderThan(Duration),
    /// Everything carrying this stamp, whatever its age.
    Stamp(&'a str),
}

impl Select<'_> {
    /// Whether `name` is a test's and selected.
    pub fn matches(&self, name: &str, now: SystemTime) -> bool {
        if !name.starts_with("gamenight") {
            return false;
        }
        match *self {
            Select::Stamp(wanted) => stamp(name) == Some(wanted),
            Select::OlderThan(age) => made_at(name).is_some_and(|made| {
                let now = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                now.saturating_sub(made) > age.as_secs()
            }),
        }
    }
}

/// What [`run`] removed, or why it could not look.
#[derive(Debug, Default)]
pub struct Swept {
    /// Removed, by kind (`databases`, `queues`, `exchanges`).
    pub removed: BTreeMap<&'static str, Vec<String>>,
    /// What was not looked at, and why.
    pub skipped: Vec<String>,
}

/// Removes the selected databases from `database_url`'s server, and the
/// selected queues and exchanges from `rabbitmq_url`'s, which are listed
/// with `rabbitmqctl` (AMQP cannot list them): only when that server is on
/// this machine.
///
/// Returns `Err` when PostgreSQL or RabbitMQ cannot be reached or refuses.
pub async fn run(
    database_url: &str,
    rabbitmq_url: &str,
    select: Select<'_>,
) -> anyhow::Result<Swept> {
    let now = SystemTime::now();
    let mut swept = Swept::default();

    let mut admin = PgConnection::connect(database_url).await?;
    let databases: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database")
        .fetch_all(&mut admin)
        .await?;
    for name in databases
        .into_iter()
        .filter(|name| select.matches(name, now))
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        swept.removed.entry("databases").or_default().push(name);
    }

    let uri: AMQPUri = rabbitmq_url
        .parse()
        // Not the parser's message: it quotes the URL, password and all.
        .map_err(|_| anyhow::anyhow!("RABBITMQ_URL is not an AMQP URL"))?;
    let host = uri.authority.host.as_str();
    if !["127.0.0.1", "localhost", "::1", "[::1]"].contains(&host) {
        swept.skipped.push(format!(
            "queues and exchanges: RabbitMQ at {host} is not on this machine, and only rabbitmqctl can list them"
        ));
        return Ok(swept);
    }
    let listed = list_with_rabbitmqctl("list_queues", &uri.vhost)
        .and_then(|queues| Ok((queues, list_with_rabbitmqctl("list_exchanges", &uri.vhost)?)));
    let (queues, exchanges) = match listed {
        Ok(listed) => listed,
        Err(why) => {
            swept.skipped.push(format!("queues and exchanges: {why}"));
            return Ok(swept);
        }
    };
    let queues: Vec<String> = queues
        .into_iter()
        .filter(|n| select.matches(n, now))
        .collect();
    let exchanges: Vec<String> = exchanges
        .into_iter()
        .filter(|n| select.matches(n, now))
        .collect();
    delete_on_rabbitmq(rabbitmq_url, &queues, &exchanges).await?;
    if !queues.is_empty() {
        swept.removed.insert("queues", queues);
    }
    if !exchanges.is_empty() {
        swept.removed.insert("exchanges", exchanges);
    }
    Ok(swept)
}

/// Deletes `queues`, then `exchanges`, on the server at `url`. Deleting a
/// name that does not exist is no error.
///
/// Returns `Err` when the server cannot be reached or refuses.
pub async fn delete_on_rabbitmq(
    url: &str,
    queues: &[String],
    exchanges: &[String],
) -> Result<(), lapin::Error> {
    if queues.is_empty() && exchanges.is_empty() {
        return Ok(());
    }
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await?;
    }
    connection.close(200, "test names deleted".into()).await
}

/// Names `rabbitmqctl <command> name` prints for `vhost`.
fn list_with_rabbitmqctl(command: &str, vhost: &str) -> Result<Vec<String>, String> {
    let output = Command::new("rabbitmqctl")
        .args([
            command,
            "--quiet",
            "--no-table-headers",
            "-p",
            vhost,
            "name",
        ])
        .output()
        .map_err(|err| format!("cannot run rabbitmqctl to list them: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "rabbitmqctl {command} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_is_found_wherever_the_name_puts_it() {
        assert_eq!(
            made_at("gamenight_test_1764638212_9f3a1c2b"),
            Some(1_764_638_212)
        );
        assert_eq!(
            made_at("gamenight.e2e.1764638212_9f3a1c2b.events.dlx"),
            Some(1_764_638_212)
        );
        assert_eq!(
            made_at("gamenight-test:1764638212_9f3a1c2b:"),
            Some(1_764_638_212)
        );
        for name in [
            "gamenight.events",
            "gamenight_test_1764638212_9f3a1c2",
            "gamenight_test_1764638212_9f3a1c2bz",
            "gamenight_test_x1764638212_9f3a1c2b",
            "gamenight_test_1764638212-9f3a1c2b",
        ] {
            assert_eq!(made_at(name), None, "{name}");
        }
    }

    #[test]
    fn only_test_names_of_the_selected_age_or_stamp_are_selected() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_641_812);
        let hour = Select::OlderThan(Duration::from_secs(3600));
        assert!(hour.matches("gamenight_test_1764638211_9f3a1c2b", now));
        assert!(!hour.matches("gamenight_test_1764638212_9f3a1c2b", now));
        assert!(!hour.matches("other_test_1764638211_9f3a1c2b", now));
        assert!(!hour.matches("gamenight.events", now));
        let stamp = Select::Stamp("1764641812_00000000");
        assert!(stamp.matches("gamenight.contract.1764641812_00000000.events", now));
        assert!(!stamp.matches("gamenight.contract.1764641812_00000001.events", now));
    }
}

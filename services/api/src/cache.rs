//! Cache-aside for single games in Redis.
//!
//! Reads try Redis first and fill it on a miss; every write invalidates the
//! key after its transaction commits. Redis is an optimisation, never a
//! dependency: when it fails, reads fall back to PostgreSQL and the request
//! succeeds.
//!
//! # Redis down costs nothing
//! Each call is bounded by [`TIMEOUT`], and a failure that means Redis is
//! unreachable (I/O, timeout, dropped connection) opens a breaker: from then
//! on every call skips Redis at once, without waiting on a reconnect, until a
//! background task sees Redis answer PING again (one every
//! [`PROBE_INTERVAL`]). The breaker logs once when it opens and once when it
//! closes; reads that skipped the cache are counted (`result = skipped`) and
//! marked on the request's span (`gamenight.cache.skipped`). Invalidations
//! skipped while it is open are lost: the TTL bounds how stale a game can be
//! afterwards, as it always has for a lost invalidation.
//!
//! # A read racing a write
//! A read can fetch a game from PostgreSQL just before a write commits and
//! store it just after the write invalidated the key, caching the old game
//! for the whole TTL. So an invalidation does not delete the key: it writes a
//! short-lived tombstone ([`TOMBSTONE_TTL`]), and reads fill the cache only
//! where the key is absent (`SET … NX`). The late write-back of a racing read
//! finds the tombstone and is dropped; the key is filled again by the first
//! read after the tombstone expires. A read would have to take longer than
//! the tombstone's life between its query and its write-back to slip past it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, Counter, Meter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ExistenceCheck, SetExpiry, SetOptions};
use secrecy::{ExposeSecret, SecretString};
use telemetry::spans::{Peer, cache_span, record_cache_hit, record_error};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::domain::Game;

/// Longest a cache call (connecting included) may take before the request
/// goes on without it. Redis answers in well under a millisecond; a call that
/// takes this long means Redis is in trouble, and the breaker opens.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// How often, while the breaker is open, a PING checks whether Redis is back.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long an invalidated key refuses the write-back of a read that raced
/// the write.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(5);
/// The value of a tombstone: not JSON, so never mistaken for a game.
const TOMBSTONE: &str = "-";

/// `REDIS_URL` could not be used.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is invalid: expected redis://[:password@]host:6379[/db]")]
pub struct InvalidRedisUrl;

/// `gamenight.cache.requests`, bound to each of its four results: counting a
/// read is then one atomic add, with no attribute set to resolve.
#[derive(Debug, Clone)]
struct Results {
    hit: BoundCounter<u64>,
    miss: BoundCounter<u64>,
    error: BoundCounter<u64>,
    skipped: BoundCounter<u64>,
}

impl Results {
    fn new(counter: &Counter<u64>) -> Self {
        let bind = |result: &'static str| counter.bind(&[KeyValue::new("result", result)]);
        Self {
            hit: bind("hit"),
            miss: bind("miss"),
            error: bind("error"),
            skipped: bind("skipped"),
        }
    }
}

/// The game cache.
#[derive(Clone)]
pub struct Cache {
    connection: ConnectionManager,
    peer: Peer,
    prefix: String,
    /// `None` when the cache is turned off (`CACHE_TTL_SECONDS=0`).
    ttl: Option<Duration>,
    requests: Results,
    /// Set while Redis is unreachable: every call skips it. Shared by all
    /// clones, watched (weakly) by the probe that closes it.
    open: Arc<AtomicBool>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("peer", &self.peer)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache on the Redis at `url`, keeping games for `ttl` (a zero `ttl`
    /// turns the cache off: every read goes to PostgreSQL). Connects lazily,
    /// so the API starts (degraded) while Redis is down.
    pub fn new(
        url: &SecretString,
        prefix: String,
        ttl: Duration,
        meter: &Meter,
    ) -> Result<Self, InvalidRedisUrl> {
        let peer = peer_of(url.expose_secret()).ok_or(InvalidRedisUrl)?;
        let client = redis::Client::open(url.expose_secret()).map_err(|_| InvalidRedisUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            // One attempt per (re)connect: while Redis is down the breaker,
            // not the manager's retries, keeps requests from waiting.
            .set_number_of_retries(0);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|_| InvalidRedisUrl)?;
        let requests = Results::new(
            &meter
                .u64_counter("gamenight.cache.requests")
                .with_unit("{request}")
                .with_description(
                    "Game cache reads by result: hit, miss, error, or skipped while Redis is unreachable.",
                )
                .build(),
        );
        Ok(Self {
            connection,
            peer,
            prefix,
            ttl: (!ttl.is_zero()).then_some(ttl),
            requests,
            open: Arc::new(AtomicBool::new(false)),
        })
    }

    fn key(&self, id: Uuid) -> String {
        format!("{}game:{id}", self.prefix)
    }

    fn count(&self, result: fn(&Results) -> &BoundCounter<u64>) {
        result(&self.requests).add(1);
    }

    /// Whether calls go to Redis now: the cache is on and the breaker closed.
    fn available(&self) -> bool {
        self.ttl.is_some() && !self.open.load(Ordering::Acquire)
    }

    /// The cached game, or `None` on a miss, when Redis fails, or while it
    /// is skipped.
    pub async fn get(&self, id: Uuid) -> Option<Game> {
        if !self.is_enabled() {
            return None;
        }
        if !self.available() {
            self.count(|r| &r.skipped);
            tracing::Span::current().set_attribute("gamenight.cache.skipped", true);
            return None;
        }
        let span = cache_span("GET", &self.peer);
        let mut connection = self.connection.clone();
        let result: Result<Option<String>, redis::RedisError> =
            connection.get(self.key(id)).instrument(span.clone()).await;
        let game = match result {
            Ok(Some(json)) if json != TOMBSTONE => serde_json::from_str(&json)
                // An entry from an older version: a miss. It stays until
                // its TTL, as reads only fill absent keys.
                .inspect_err(|err| tracing::warn!(error = %err, "unreadable cache entry"))
                .ok(),
            Ok(_) => None,
            Err(err) => {
                self.failed(&span, "GET", &err);
                return None;
            }
        };
        record_cache_hit(&span, game.is_some());
        self.count(if game.is_some() {
            |r| &r.hit
        } else {
            |r| &r.miss
        });
        game
    }

    /// Stores `game` for the TTL unless the key is present: a tombstone left
    /// by a write since `game` was read must win (see the module docs).
    pub async fn put(&self, game: &Game) {
        let Some(ttl) = self.ttl.filter(|_| self.available()) else {
            return;
        };
        let Ok(json) = serde_json::to_string(game) else {
            return;
        };
        let options = SetOptions::default()
            .conditional_set(ExistenceCheck::NX)
            .with_expiration(SetExpiry::EX(ttl.as_secs().max(1)));
        self.set("SET", self.key(game.id), json, options).await;
    }

    /// Invalidates game `id` after a committed change: a tombstone in place
    /// of the cached copy, so that no read that raced the change can put the
    /// old game back.
    pub async fn invalidate(&self, id: Uuid) {
        if !self.available() {
            return;
        }
        let options =
            SetOptions::default().with_expiration(SetExpiry::EX(TOMBSTONE_TTL.as_secs().max(1)));
        self.set("SET", self.key(id), TOMBSTONE.to_owned(), options)
            .await;
    }

    async fn set(&self, command: &'static str, key: String, value: String, options: SetOptions) {
        let span = cache_span(command, &self.peer);
        let mut connection = self.connection.clone();
        let result: Result<(), redis::RedisError> = connection
            .set_options(key, value, options)
            .instrument(span.clone())
            .await;
        if let Err(err) = result {
            self.failed(&span, command, &err);
        }
    }

    /// Whether Redis answers PING now; false at once while the breaker is
    /// open, and for a cache turned off.
    pub async fn is_ready(&self) -> bool {
        if !self.available() {
            return false;
        }
        let pinged = ping(&mut self.connection.clone()).await;
        pinged.inspect_err(|err| _ = self.trip(err)).is_ok()
    }

    /// Whether the cache is turned on (`CACHE_TTL_SECONDS` > 0).
    pub fn is_enabled(&self) -> bool {
        self.ttl.is_some()
    }

    fn failed(&self, span: &tracing::Span, command: &'static str, err: &redis::RedisError) {
        // The category, not the error's text: that can name the server.
        record_error(span, "redis", &Failure(err.category().to_owned()));
        self.count(|r| &r.error);
        if !self.trip(err) {
            tracing::warn!(
                error.type = err.category(),
                command,
                "cache command failed; answering from PostgreSQL"
            );
        }
    }

    /// Opens the breaker if `err` means Redis is unreachable, starting the
    /// probe that closes it. True if `err` was of that kind.
    fn trip(&self, err: &redis::RedisError) -> bool {
        if !(err.is_io_error() || err.is_unrecoverable_error()) {
            return false;
        }
        if !self.open.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error.type = err.category(),
                "Redis unreachable: reads skip the cache until it answers again"
            );
            tokio::spawn(probe(self.connection.clone(), Arc::downgrade(&self.open)));
        }
        true
    }
}

/// PINGs Redis every [`PROBE_INTERVAL`] until it answers, then closes the
/// breaker. Stops early once every clone of the cache is gone.
async fn probe(mut connection: ConnectionManager, open: Weak<AtomicBool>) {
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(open) = open.upgrade() else {
            return;
        };
        if ping(&mut connection).await.is_ok() {
            open.store(false, Ordering::Release);
            tracing::info!("Redis answers again: reads use the cache");
            return;
        }
    }
}

async fn ping(connection: &mut ConnectionManager) -> Result<(), redis::RedisError> {
    redis::cmd("PING").query_async::<String>(connection).await?;
    Ok(())
}

/// A Redis failure as recorded on a span: its category only.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
struct Failure(String);

/// Host and port of a Redis URL, without credentials.
fn peer_of(url: &str) -> Option<Peer> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return None;
    }
    Some(Peer::new(parsed.host_str()?, parsed.port().unwrap_or(6379)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_leaves_the_password_out() {
        assert_eq!(
            peer_of("redis://:s3cret@cache:6380/2"),
            Some(Peer::new("cache", 6380))
        );
        assert_eq!(peer_of("redis://cache"), Some(Peer::new("cache", 6379)));
        assert_eq!(peer_of("http://cache"), None);
    }
}

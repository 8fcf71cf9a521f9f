//! Cache-aside for single games in Redis.
//!
//! Reads try Redis first and fill it on a miss; every write deletes the key.
//! Redis is an optimisation, never a dependency: when it fails, reads fall
//! back to PostgreSQL, the failure is logged and counted, and the request
//! succeeds. The TTL bounds how stale a game can be should a delete be lost
//! while Redis was unreachable.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use telemetry::spans::{Peer, cache_span, record_cache_hit, record_error};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::Game;

/// Longest a cache call may take before the request goes on without it.
const TIMEOUT: Duration = Duration::from_millis(500);

/// `REDIS_URL` could not be used.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is invalid: expected redis://[:password@]host:6379[/db]")]
pub struct InvalidRedisUrl;

/// The game cache.
#[derive(Clone)]
pub struct Cache {
    connection: ConnectionManager,
    peer: Peer,
    prefix: String,
    ttl: Duration,
    requests: Counter<u64>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("peer", &self.peer)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache on the Redis at `url`. Connects lazily, so the API starts
    /// (degraded) while Redis is down.
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
            // Reconnect in the background; a request never waits for retries.
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|_| InvalidRedisUrl)?;
        let requests = meter
            .u64_counter("gamenight.cache.requests")
            .with_unit("{request}")
            .with_description("Game cache reads by result: hit, miss or error.")
            .build();
        Ok(Self {
            connection,
            peer,
            prefix,
            ttl,
            requests,
        })
    }

    fn key(&self, id: Uuid) -> String {
        format!("{}game:{id}", self.prefix)
    }

    fn count(&self, result: &'static str) {
        self.requests.add(1, &[KeyValue::new("result", result)]);
    }

    /// The cached game, or `None` on a miss or when Redis fails.
    pub async fn get(&self, id: Uuid) -> Option<Game> {
        let span = cache_span("GET", &self.peer);
        let mut connection = self.connection.clone();
        let key = self.key(id);
        let result: Result<Option<String>, redis::RedisError> =
            connection.get(&key).instrument(span.clone()).await;
        match result {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(game) => {
                    record_cache_hit(&span, true);
                    self.count("hit");
                    Some(game)
                }
                Err(err) => {
                    // An entry from an older version: treat as a miss, it is
                    // overwritten below.
                    tracing::warn!(error = %err, "unreadable cache entry");
                    record_cache_hit(&span, false);
                    self.count("miss");
                    None
                }
            },
            Ok(None) => {
                record_cache_hit(&span, false);
                self.count("miss");
                None
            }
            Err(err) => {
                self.failed(&span, "GET", &err);
                None
            }
        }
    }

    /// Stores `game` for the TTL. Failures are logged and counted.
    pub async fn put(&self, game: &Game) {
        let Ok(json) = serde_json::to_string(game) else {
            return;
        };
        let span = cache_span("SET", &self.peer);
        let mut connection = self.connection.clone();
        let result: Result<(), redis::RedisError> = connection
            .set_ex(self.key(game.id), json, self.ttl.as_secs().max(1))
            .instrument(span.clone())
            .await;
        if let Err(err) = result {
            self.failed(&span, "SET", &err);
        }
    }

    /// Drops the cached copy of game `id` after a change.
    pub async fn invalidate(&self, id: Uuid) {
        let span = cache_span("DEL", &self.peer);
        let mut connection = self.connection.clone();
        let result: Result<(), redis::RedisError> =
            connection.del(self.key(id)).instrument(span.clone()).await;
        if let Err(err) = result {
            self.failed(&span, "DEL", &err);
        }
    }

    /// True when Redis answers PING.
    pub async fn is_ready(&self) -> bool {
        let mut connection = self.connection.clone();
        let ping: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
        ping.is_ok()
    }

    fn failed(&self, span: &tracing::Span, command: &str, err: &redis::RedisError) {
        record_error(span, "redis", err);
        self.count("error");
        tracing::warn!(error = %err, command, "cache unavailable; answering from PostgreSQL");
    }
}

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

//! Posting no faster than Discord allows, as its answers say
//! (<https://discord.com/developers/docs/topics/rate-limits>).
//!
//! Discord publishes no fixed limits: each answer carries the state of the
//! bucket the request counted against (`X-RateLimit-Limit`, `-Remaining`,
//! `-Reset-After`, `-Bucket`), and the client is to wait before a request
//! would exceed it. `twilight-http-ratelimiting` keeps the buckets: a post
//! first takes a permit, which waits while the bucket is spent, and hands
//! the answer's headers back. A 429 nonetheless (another client of the same
//! webhook spent the bucket, or a global limit) stops every post of this
//! bot until its `Retry-After` has passed: the bot posts to one webhook
//! only, so the route's scope and the global scope are the same posts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;
use twilight_http_ratelimiting::{Endpoint, Method, Permit, RateLimitHeaders, RateLimiter};

/// How far a 429 reached, as `X-RateLimit-Scope` (or `X-RateLimit-Global`)
/// says: the `scope` of `gamenight.discord.rate_limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// This webhook's bucket: requests by this client (or another one
    /// posting to the same webhook).
    User,
    /// Every request from this client or IP.
    Global,
    /// A resource shared with others; does not count toward Cloudflare's
    /// invalid-request ban.
    Shared,
}

impl Scope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Global => "global",
            Self::Shared => "shared",
        }
    }
}

/// A 429: its scope and how long Discord asked us to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimited {
    pub(crate) scope: Scope,
    pub(crate) retry_after: Duration,
}

/// Paces the posts to one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    limiter: RateLimiter,
    endpoint: Endpoint,
    /// Until when a 429 stops every post.
    paused_until: Arc<Mutex<Instant>>,
}

impl Pacer {
    /// Paces the webhook whose id is `webhook_id`. The token stays out of
    /// the limiter, whose own logs name the path. Needs a Tokio runtime:
    /// the limiter runs as a task.
    pub(crate) fn new(webhook_id: &str) -> Self {
        Self {
            limiter: RateLimiter::default(),
            endpoint: Endpoint {
                method: Method::Post,
                path: format!("webhooks/{webhook_id}"),
            },
            paused_until: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Waits until a post may go: past a 429's pause, then for a permit of
    /// the webhook's bucket, to be completed with the answer's headers.
    pub(crate) async fn acquire(&self) -> Permit {
        loop {
            let until = *self.lock();
            if until <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(until).await;
        }
        self.limiter.acquire(self.endpoint.clone()).await
    }

    /// Hands Discord's answer (`status`, `headers`) back to the limiter,
    /// and says whether it was a 429.
    pub(crate) fn complete(
        &self,
        permit: Permit,
        status: reqwest::StatusCode,
        headers: &HeaderMap,
    ) -> Option<RateLimited> {
        permit.complete(bucket(headers));
        limited(status, headers)
    }

    /// Stops every post for `retry_after`, as a 429 asks.
    pub(crate) fn pause(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut paused = self.lock();
        *paused = (*paused).max(until);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The wait when a 429 names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A header as text, if present and readable.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The 429 an answer is, if it is one.
pub(crate) fn limited(status: reqwest::StatusCode, headers: &HeaderMap) -> Option<RateLimited> {
    (status == reqwest::StatusCode::TOO_MANY_REQUESTS).then(|| rate_limited(headers))
}

/// What a 429's headers say.
fn rate_limited(headers: &HeaderMap) -> RateLimited {
    let scope = match header(headers, RateLimitHeaders::SCOPE) {
        Some("global") => Scope::Global,
        Some("shared") => Scope::Shared,
        _ if header(headers, "x-ratelimit-global") == Some("true") => Scope::Global,
        _ => Scope::User,
    };
    let retry_after = crate::retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER);
    RateLimited { scope, retry_after }
}

/// The bucket's state, when the answer carries all of it.
fn bucket(headers: &HeaderMap) -> Option<RateLimitHeaders> {
    let number = |name| header(headers, name)?.parse::<u16>().ok();
    Some(RateLimitHeaders {
        bucket: header(headers, RateLimitHeaders::BUCKET)?
            .as_bytes()
            .to_vec(),
        limit: number(RateLimitHeaders::LIMIT)?,
        remaining: number(RateLimitHeaders::REMAINING)?,
        reset_at: std::time::Instant::now()
            + crate::seconds(headers, RateLimitHeaders::RESET_AFTER)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    reqwest::header::HeaderName::from_static(name),
                    value.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_bucket_is_read_from_discords_headers() {
        let answer = headers(&[
            ("x-ratelimit-bucket", "abcd1234"),
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.250"),
        ]);
        let bucket = bucket(&answer).unwrap();
        assert_eq!((bucket.limit, bucket.remaining), (5, 0));
        assert_eq!(bucket.bucket, b"abcd1234");
        let reset_in = bucket.reset_at - std::time::Instant::now();
        assert!(reset_in <= Duration::from_millis(1250), "{reset_in:?}");
        assert!(reset_in > Duration::from_millis(1000), "{reset_in:?}");
        // An answer without them (a 5xx from Cloudflare) says nothing.
        assert_eq!(super::bucket(&HeaderMap::new()), None);
    }

    #[test]
    fn a_429_says_its_scope_and_wait() {
        let global = headers(&[("x-ratelimit-global", "true"), ("retry-after", "2")]);
        assert_eq!(
            rate_limited(&global),
            RateLimited {
                scope: Scope::Global,
                retry_after: Duration::from_secs(2)
            }
        );
        let shared = headers(&[("x-ratelimit-scope", "shared"), ("retry-after", "0.5")]);
        assert_eq!(rate_limited(&shared).scope, Scope::Shared);
        assert_eq!(
            rate_limited(&shared).retry_after,
            Duration::from_millis(500)
        );
        let bare = rate_limited(&HeaderMap::new());
        assert_eq!(
            (bare.scope, bare.retry_after),
            (Scope::User, DEFAULT_RETRY_AFTER)
        );
        let absurd = headers(&[("retry-after", "86400")]);
        assert_eq!(rate_limited(&absurd).retry_after, crate::MAX_RETRY_AFTER);
    }

    #[tokio::test]
    async fn a_pause_stops_every_post_for_its_retry_after() {
        let pacer = Pacer::new("1");
        let permit = pacer.acquire().await;
        let answer = headers(&[("x-ratelimit-global", "true"), ("retry-after", "0.3")]);
        let limited = pacer.complete(permit, reqwest::StatusCode::TOO_MANY_REQUESTS, &answer);
        assert_eq!(limited.map(|limited| limited.scope), Some(Scope::Global));
        pacer.pause(limited.unwrap().retry_after);
        let start = Instant::now();
        let _permit = pacer.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
    }
}

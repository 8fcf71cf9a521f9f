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
//!
//! Several bots on one webhook each see only their own answers: each one's
//! `Remaining` is stale by the others' posts, and in every window one of
//! them would spend a request the others already took. After a route 429
//! the pacer therefore leaves the bucket's last request to the others for
//! [`SHARED_FOR`]: the bots then share each window without a 429, at the
//! cost of at most that one request per window.
//!
//! Several bots on one webhook each see only their own answers: each one's
//! `Remaining` is stale by the others' posts, and in every window one of
//! them would spend a request the others already took. After a route 429
//! the pacer therefore leaves the bucket's last request to the others for
//! [`SHARED_FOR`]: the bots then share each window without a 429, at the
//! cost of at most that one request per window.

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

/// How long a route 429 makes the pacer keep one request of each bucket in
/// reserve: the bucket is shared with another client (another bot on the
/// same webhook), whose posts this bot's answers did not show yet.
const SHARED_FOR: Duration = Duration::from_secs(600);

/// Paces the posts to one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    limiter: RateLimiter,
    endpoint: Endpoint,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// Until when a 429 stops every post.
    paused_until: Instant,
    /// Until when the bucket is taken to be shared: each bot then leaves
    /// its last request to the others rather than race them for it.
    shared_until: Instant,
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
            state: Arc::new(Mutex::new(State {
                paused_until: Instant::now(),
                shared_until: Instant::now(),
            })),
        }
    }

    /// Waits until a post may go: past a 429's pause, then for a permit of
    /// the webhook's bucket, to be completed with the answer's headers. A
    /// post queued for its permit when a 429 came waits out that 429 too.
    pub(crate) async fn acquire(&self) -> Permit {
        loop {
            let until = self.lock().paused_until;
            if until > Instant::now() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let permit = self.limiter.acquire(self.endpoint.clone()).await;
            if self.lock().paused_until <= Instant::now() {
                return permit;
            }
            // Paused meanwhile: the permit goes back unused.
        }
    }

    /// Hands Discord's answer (`status`, `headers`) back to the limiter,
    /// and says whether it was a 429. A route 429 the limiter did not see
    /// coming means another client spends the same bucket: for a while,
    /// the bucket's last request is left to it.
    pub(crate) fn complete(
        &self,
        permit: Permit,
        status: reqwest::StatusCode,
        headers: &HeaderMap,
    ) -> Option<RateLimited> {
        let limited = limited(status, headers);
        let mut state = self.lock();
        let now = Instant::now();
        if limited.is_some_and(|limited| limited.scope == Scope::User) {
            state.shared_until = now + SHARED_FOR;
        }
        let mut bucket = bucket(headers);
        if let Some(bucket) = bucket.as_mut().filter(|_| state.shared_until > now) {
            bucket.remaining = bucket.remaining.saturating_sub(1);
        }
        permit.complete(bucket);
        limited
    }

    /// Stops every post for `retry_after`, as a 429 asks.
    pub(crate) fn pause(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut state = self.lock();
        state.paused_until = state.paused_until.max(until);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

    #[tokio::test]
    async fn after_a_route_429_the_last_request_of_a_bucket_is_left_to_the_others() {
        let pacer = Pacer::new("1");
        let bucket = |remaining: &str| {
            headers(&[
                ("x-ratelimit-bucket", "b"),
                ("x-ratelimit-limit", "5"),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-reset-after", "1"),
            ])
        };
        let remaining = async || {
            tokio::task::yield_now().await;
            let bucket = pacer.limiter.bucket(pacer.endpoint.clone()).await;
            bucket.map(|bucket| bucket.remaining)
        };
        let ok = reqwest::StatusCode::OK;
        let permit = pacer.acquire().await;
        pacer.complete(permit, ok, &bucket("2"));
        assert_eq!(remaining().await, Some(2), "alone: every request is ours");

        let mut limited = bucket("0");
        limited.insert("x-ratelimit-scope", "user".parse().unwrap());
        let permit = pacer.acquire().await;
        let answer = pacer.complete(permit, reqwest::StatusCode::TOO_MANY_REQUESTS, &limited);
        assert_eq!(answer.map(|answer| answer.scope), Some(Scope::User));
        let permit = pacer.acquire().await;
        pacer.complete(permit, ok, &bucket("2"));
        assert_eq!(remaining().await, Some(1), "shared: one left to the others");
    }

    #[tokio::test]
    async fn a_post_queued_behind_the_one_that_met_a_429_waits_it_out_too() {
        let pacer = Pacer::new("1");
        let first = pacer.acquire().await;
        let queued = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                let _permit = pacer.acquire().await;
                Instant::now()
            }
        });
        // Queued behind the post in flight, past the (absent) pause.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = headers(&[("x-ratelimit-global", "true"), ("retry-after", "0.3")]);
        let limited = pacer.complete(first, reqwest::StatusCode::TOO_MANY_REQUESTS, &answer);
        let paused_at = Instant::now();
        pacer.pause(limited.unwrap().retry_after);
        let went = queued.await.unwrap();
        assert!(
            went - paused_at >= Duration::from_millis(300),
            "went {:?} into the pause",
            went - paused_at
        );
    }
}

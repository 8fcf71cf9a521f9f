//! A stand-in for a Discord webhook, which cannot be reached from here.
//!
//! It answers like Discord's Execute Webhook: 204 on success, or with
//! `?wait=true` 200 and the message as JSON with its snowflake `id`; 400 for
//! a body Discord rejects; 404 for an unknown webhook. It can be scripted to
//! fail ([`Reply`]), to stop listening ([`FakeDiscord::refuse_connections`]),
//! and to rate-limit as Discord does
//! (<https://discord.com/developers/docs/topics/rate-limits>):
//!
//! - a per-route bucket ([`FakeDiscord::set_rate_limit`]) whose state every
//!   answer of the API reports in `X-RateLimit-*` headers, and which answers
//!   429 with `X-RateLimit-Scope: user` once spent;
//! - a global limit across all routes ([`FakeDiscord::set_global_limit`]),
//!   answered with a 429 marked `X-RateLimit-Global: true`.
//!
//! A 429 carries `Retry-After` in whole seconds and a JSON body with the
//! exact `retry_after`. The 5xx answers stand for Cloudflare in front of the
//! API, so they carry no rate-limit headers and count against no bucket.
//! [`Stats`] counts what was answered, including the 401, 403 and 429
//! answers Cloudflare bans a client for (10,000 in 10 minutes).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The webhook id and token the fake accepts.
const WEBHOOK_ID: &str = "1234567890";
const WEBHOOK_TOKEN: &str = "fake-token-not-a-secret";

/// The opaque id Discord gives a rate-limit bucket (`X-RateLimit-Bucket`).
const BUCKET_ID: &str = "41f9cd5d28af77da04563bcb1d67fdfd";

/// The bucket size a scripted [`Reply::RateLimited`] reports when no
/// [`RouteLimit`] is set: Discord's usual 5 requests for a webhook.
const SCRIPTED_LIMIT: u32 = 5;

/// How the fake answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    /// Delivered: 204 No Content, or with `?wait=true` 200 and the message.
    Delivered,
    /// Delivered, answered only after this long: a slow Discord, or time
    /// for a test to break something while the bot waits for the answer.
    DeliveredAfter(Duration),
    /// The route's bucket is spent: 429 with `Retry-After` (these seconds,
    /// rounded up), `X-RateLimit-Scope: user`, the bucket's headers and
    /// `{"message": …, "retry_after": <seconds>, "global": false}`.
    RateLimited(f64),
    /// The global limit is hit: 429 with `Retry-After` (these seconds,
    /// rounded up), `X-RateLimit-Global: true`, `X-RateLimit-Scope: global`
    /// and a body with `"global": true`.
    GlobalRateLimited(f64),
    /// 500, from Cloudflare in front of the API.
    ServerError,
    /// 502, Cloudflare failing to reach the API.
    BadGateway,
    /// 503, the API down for maintenance or overloaded.
    ServiceUnavailable,
    /// The request is read and never answered, until the client gives up.
    Timeout,
    /// 400, as for a message Discord will never accept.
    BadRequest,
}

impl Reply {
    /// The HTTP status this reply answers (with `?wait=true` if `wait`),
    /// 0 for [`Reply::Timeout`], which answers none.
    fn status(self, wait: bool) -> u16 {
        match self {
            Self::Delivered | Self::DeliveredAfter(_) if wait => 200,
            Self::Delivered | Self::DeliveredAfter(_) => 204,
            Self::RateLimited(_) | Self::GlobalRateLimited(_) => 429,
            Self::ServerError => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::Timeout => 0,
            Self::BadRequest => 400,
        }
    }

    /// Whether the request reaches the API, where the rate limits apply;
    /// the others are answered before it (by Cloudflare, or the script).
    fn reaches_api(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::DeliveredAfter(_) | Self::BadRequest
        )
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The JSON body (`null` if it was not JSON).
    pub body: serde_json::Value,
    /// The `traceparent` header, if sent.
    pub traceparent: Option<String>,
    /// What the fake answered: the script's reply, or the 429 of a limit.
    pub reply: Reply,
    /// The HTTP status answered; 0 for a [`Reply::Timeout`].
    pub status: u16,
    /// The message id answered (`?wait=true` and delivered), as Discord's
    /// snowflake string.
    pub message_id: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A per-route limit, as Discord's rate-limit buckets: `limit` requests in
/// a fixed `window` that begins at the first request counted after the
/// previous window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimit {
    /// Requests a window admits (`X-RateLimit-Limit`).
    pub limit: u16,
    /// How long a window lasts.
    pub window: Duration,
}

/// What the fake answered so far, counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests to the webhook (an unknown webhook's 404 is not counted).
    pub requests: u64,
    /// Answered 200 or 204.
    pub delivered: u64,
    /// Answered 400.
    pub bad_requests: u64,
    /// Answered a route 429 (a spent bucket or [`Reply::RateLimited`]).
    pub rate_limited_route: u64,
    /// Answered a global 429.
    pub rate_limited_global: u64,
    /// Answered 401, 403 or 429: what Cloudflare counts toward banning a
    /// client that makes 10,000 of them in 10 minutes.
    pub invalid: u64,
    /// Answered 5xx.
    pub server_errors: u64,
    /// Never answered ([`Reply::Timeout`]).
    pub unanswered: u64,
}

impl Stats {
    /// Counts one answer of `reply` with `status`.
    fn count(&mut self, reply: Reply, status: u16) {
        self.requests += 1;
        match status {
            200 | 204 => self.delivered += 1,
            400 => self.bad_requests += 1,
            429 if matches!(reply, Reply::GlobalRateLimited(_)) => self.rate_limited_global += 1,
            429 => self.rate_limited_route += 1,
            500..=599 => self.server_errors += 1,
            0 => self.unanswered += 1,
            _ => {}
        }
        if matches!(status, 401 | 403 | 429) {
            self.invalid += 1;
        }
    }
}

/// A fixed window of `limit` requests, starting anew at the first request
/// after it ended.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    limit: u32,
    length: Duration,
    ends: Instant,
    used: u32,
}

impl Bucket {
    fn new(limit: u32, length: Duration) -> Self {
        let ends = Instant::now();
        Self {
            limit,
            length,
            ends,
            used: 0,
        }
    }

    /// Counts a request at `now` if the window has room for it; whether it
    /// had.
    fn take(&mut self, now: Instant) -> bool {
        if now >= self.ends {
            self.ends = now + self.length;
            self.used = 0;
        }
        let admitted = self.used < self.limit;
        self.used += u32::from(admitted);
        admitted
    }

    /// The headers' view of the bucket at `now`.
    fn view(&self, now: Instant) -> BucketView {
        BucketView {
            limit: self.limit,
            remaining: self.limit - self.used,
            reset_after: self.ends.saturating_duration_since(now),
        }
    }
}

/// A bucket as its `X-RateLimit-*` headers report it.
#[derive(Debug, Clone, Copy)]
struct BucketView {
    limit: u32,
    remaining: u32,
    reset_after: Duration,
}

#[derive(Debug, Default)]
struct Script {
    script: VecDeque<Reply>,
    otherwise: Option<Reply>,
    route: Option<Bucket>,
    global: Option<Bucket>,
    received: Vec<Received>,
    stats: Stats,
}

impl Script {
    /// What to answer the request arriving at `now`: the next scripted
    /// reply, unless a limit turns a request that reaches the API into a
    /// 429; and the route bucket for the headers, when there is one to
    /// report. A body that is not JSON is a [`Reply::BadRequest`] that
    /// leaves the script alone.
    fn answer(&mut self, now: Instant, malformed: bool) -> (Reply, Option<BucketView>) {
        let scripted = if malformed {
            Reply::BadRequest
        } else {
            self.script
                .pop_front()
                .or(self.otherwise)
                .unwrap_or(Reply::Delivered)
        };
        if !scripted.reaches_api() {
            let bucket = match scripted {
                Reply::RateLimited(seconds) => Some(BucketView {
                    limit: self.route.map_or(SCRIPTED_LIMIT, |route| route.limit),
                    remaining: 0,
                    reset_after: Duration::try_from_secs_f64(seconds).unwrap_or_default(),
                }),
                _ => None,
            };
            return (scripted, bucket);
        }
        if let Some(global) = &mut self.global
            && !global.take(now)
        {
            let seconds = global.view(now).reset_after.as_secs_f64();
            return (Reply::GlobalRateLimited(seconds), None);
        }
        let Some(route) = &mut self.route else {
            return (scripted, None);
        };
        let admitted = route.take(now);
        let view = route.view(now);
        let reply = if admitted {
            scripted
        } else {
            Reply::RateLimited(view.reset_after.as_secs_f64())
        };
        (reply, Some(view))
    }
}

#[derive(Debug, Clone)]
struct Shared {
    state: Arc<Mutex<Script>>,
    changes: Arc<watch::Sender<usize>>,
}

/// A running fake webhook. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeDiscord {
    addr: SocketAddr,
    shared: Shared,
    /// The server while it listens; `None` while refusing connections.
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        if let Some(server) = crate::lock(&self.server).take() {
            server.abort();
        }
    }
}

impl FakeDiscord {
    /// Starts the fake on a free port of 127.0.0.1, answering
    /// [`Reply::Delivered`] with no rate limits.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().expect("fake webhook address");
        let (changes, _) = watch::channel(0);
        let shared = Shared {
            state: Arc::new(Mutex::new(Script::default())),
            changes: Arc::new(changes),
        };
        let server = tokio::spawn(serve(listener, shared.clone()));
        Self {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        }
    }

    /// The webhook URL to configure (`DISCORD_WEBHOOK_URL`).
    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}",
            self.addr
        )
    }

    /// Answers the next requests with `replies`, in order, then as before.
    pub fn reply_next(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Answers every request not covered by [`FakeDiscord::reply_next`] with
    /// `reply` (default: [`Reply::Delivered`]): an outage until
    /// [`FakeDiscord::reset_replies`].
    pub fn reply_always(&self, reply: Reply) {
        self.lock().otherwise = Some(reply);
    }

    /// Forgets the replies scripted with [`FakeDiscord::reply_next`] and
    /// [`FakeDiscord::reply_always`]: every request is [`Reply::Delivered`]
    /// again, limits permitting.
    pub fn reset_replies(&self) {
        let mut state = self.lock();
        state.script.clear();
        state.otherwise = None;
    }

    /// Sets the webhook route's bucket (`None`, the default: no limit),
    /// starting with a fresh window. While set, every answer of the API
    /// (2xx, 400 and route 429) reports the bucket in `X-RateLimit-Limit`,
    /// `-Remaining`, `-Reset` (epoch seconds), `-Reset-After` (seconds left
    /// in the window) and `-Bucket`; a request beyond the limit is answered
    /// a route 429 and does not count against the window.
    pub fn set_rate_limit(&self, limit: Option<RouteLimit>) {
        self.lock().route = limit.map(|limit| Bucket::new(u32::from(limit.limit), limit.window));
    }

    /// Sets Discord's global limit of requests per second across all
    /// routes (`None`, the default: no limit). A request beyond it is
    /// answered a global 429 and counts against no bucket.
    pub fn set_global_limit(&self, per_second: Option<u32>) {
        self.lock().global = per_second.map(|limit| Bucket::new(limit, Duration::from_secs(1)));
    }

    /// While `refuse`, nothing listens on the fake's port, so connecting
    /// is refused, as when Discord (or the network to it) is down; open
    /// connections are closed and requests in flight dropped. Set back to
    /// `false`, the fake listens again on the same port, so
    /// [`FakeDiscord::webhook_url`] works again.
    ///
    /// # Panics
    /// When the port cannot be bound again.
    pub async fn refuse_connections(&self, refuse: bool) {
        let running = crate::lock(&self.server).take();
        if let Some(server) = running {
            server.abort();
            // Settled once the server's future, its listener and its
            // connections with it, is dropped.
            let _ = server.await;
        }
        if !refuse {
            let server = tokio::spawn(serve(listen(self.addr), self.shared.clone()));
            *crate::lock(&self.server) = Some(server);
        }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// What was answered so far, counted by kind.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Waits up to `timeout` until `count` requests have arrived.
    ///
    /// # Panics
    /// When they have not.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let mut changes = self.shared.changes.subscribe();
        let waited = tokio::time::timeout(timeout, changes.wait_for(|seen| *seen >= count)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the webhook got {} requests, expected {count}",
            self.received().len()
        );
        self.received()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        crate::lock(&self.shared.state)
    }
}

/// A listener on `addr`, which may still have connections of an earlier
/// listener closing (`SO_REUSEADDR`).
///
/// # Panics
/// When `addr` cannot be bound.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket for the fake webhook");
    socket
        .set_reuseaddr(true)
        .expect("SO_REUSEADDR on the fake webhook's socket");
    socket.bind(addr).expect("bind the fake webhook");
    socket.listen(64).expect("listen on the fake webhook")
}

/// Serves the webhook on `listener` until aborted. Its connections are
/// tasks of its own, so aborting it closes them with the listener.
async fn serve(listener: TcpListener, shared: Shared) {
    let app = axum::Router::new()
        .route("/api/webhooks/{id}/{token}", post(webhook))
        .with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: give the connections time to close.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// The query string Discord's Execute Webhook takes; only `wait` matters here.
#[derive(Debug, serde::Deserialize)]
struct WebhookQuery {
    #[serde(default)]
    wait: bool,
}

async fn webhook(
    State(shared): State<Shared>,
    Path((id, token)): Path<(String, String)>,
    Query(query): Query<WebhookQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if id != WEBHOOK_ID || token != WEBHOOK_TOKEN {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"message": "Unknown Webhook", "code": 10015})),
        )
            .into_response();
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(&body);
    let malformed = parsed.is_err();
    let body = parsed.unwrap_or_default();
    let (reply, bucket, message_id) = {
        let mut state = crate::lock(&shared.state);
        let (reply, bucket) = state.answer(Instant::now(), malformed);
        let status = reply.status(query.wait);
        // Snowflakes are 64-bit numbers sent as strings; any unique one will do.
        let message_id = (status == 200)
            .then(|| (1_300_000_000_000_000_000u64 + state.received.len() as u64).to_string());
        state.stats.count(reply, status);
        state.received.push(Received {
            body: body.clone(),
            traceparent: headers
                .get("traceparent")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            reply,
            status,
            message_id: message_id.clone(),
            at: Instant::now(),
        });
        (reply, bucket, message_id)
    };
    shared.changes.send_modify(|seen| *seen += 1);
    match reply {
        Reply::DeliveredAfter(delay) => tokio::time::sleep(delay).await,
        // Dropped with the connection when the client gives up.
        Reply::Timeout => std::future::pending::<()>().await,
        _ => {}
    }
    let mut response = respond(reply, query.wait, malformed, &body, message_id);
    if let Some(bucket) = bucket {
        bucket_headers(response.headers_mut(), bucket);
    }
    response
}

/// The response to a request with JSON `body` (`malformed` if it was not
/// JSON) answered `reply`; `message_id` when delivered with `?wait=true`.
fn respond(
    reply: Reply,
    wait: bool,
    malformed: bool,
    body: &serde_json::Value,
    message_id: Option<String>,
) -> Response {
    let status = StatusCode::from_u16(reply.status(wait)).unwrap_or(StatusCode::OK);
    match (reply, message_id) {
        // Discord answers with the message it created: its id, the channel,
        // the content and embeds as stored.
        (Reply::Delivered | Reply::DeliveredAfter(_), Some(message_id)) => {
            let mut message = serde_json::json!({
                "id": message_id,
                "type": 0,
                "channel_id": "1100000000000000000",
                "webhook_id": WEBHOOK_ID,
            });
            for field in ["content", "embeds"] {
                if let Some(value) = body.get(field) {
                    message[field] = value.clone();
                }
            }
            (status, Json(message)).into_response()
        }
        (Reply::RateLimited(seconds), _) => rate_limited(seconds, false),
        (Reply::GlobalRateLimited(seconds), _) => rate_limited(seconds, true),
        (Reply::BadRequest, _) if malformed => (
            status,
            Json(serde_json::json!({"message": "Cannot send an empty message", "code": 50006})),
        )
            .into_response(),
        (Reply::BadRequest, _) => (
            status,
            Json(serde_json::json!({"message": "Invalid Form Body", "code": 50035})),
        )
            .into_response(),
        _ => status.into_response(),
    }
}

/// Discord's 429: `Retry-After` in whole seconds (rounded up), the scope,
/// and the exact wait in the body.
fn rate_limited(seconds: f64, global: bool) -> Response {
    let retry_after = format!("{}", seconds.ceil().max(0.0) as u64);
    let scope = if global { "global" } else { "user" };
    let mut headers = vec![
        ("retry-after", retry_after),
        ("x-ratelimit-scope", scope.into()),
    ];
    if global {
        headers.push(("x-ratelimit-global", "true".into()));
    }
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "message": "You are being rate limited.",
            "retry_after": (seconds * 1000.0).round() / 1000.0,
            "global": global,
        })),
    )
        .into_response();
    insert(response.headers_mut(), headers);
    response
}

/// Reports `bucket` in Discord's `X-RateLimit-*` headers.
fn bucket_headers(headers: &mut HeaderMap, bucket: BucketView) {
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + bucket.reset_after;
    insert(
        headers,
        [
            ("x-ratelimit-limit", bucket.limit.to_string()),
            ("x-ratelimit-remaining", bucket.remaining.to_string()),
            ("x-ratelimit-reset", format!("{:.3}", reset.as_secs_f64())),
            (
                "x-ratelimit-reset-after",
                format!("{:.3}", bucket.reset_after.as_secs_f64()),
            ),
            ("x-ratelimit-bucket", BUCKET_ID.to_owned()),
        ],
    );
}

fn insert(headers: &mut HeaderMap, values: impl IntoIterator<Item = (&'static str, String)>) {
    for (name, value) in values {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

//! A stand-in for a Discord webhook, which cannot be reached from here: it
//! answers like Discord (204 on success, or with `?wait=true` 200 and the
//! message as JSON with its snowflake `id`; 429 with `Retry-After` and a JSON
//! body when rate-limiting, 404 for an unknown webhook) and can be scripted
//! to fail.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The webhook id and token the fake accepts.
const WEBHOOK_ID: &str = "1234567890";
const WEBHOOK_TOKEN: &str = "fake-token-not-a-secret";

/// How the fake answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    /// Delivered: 204 No Content, or with `?wait=true` 200 and the message.
    Delivered,
    /// Delivered, answered only after this long: a slow Discord, or time
    /// for a test to break something while the bot waits for the answer.
    DeliveredAfter(Duration),
    /// 429 with `Retry-After` (seconds) and Discord's JSON body.
    RateLimited(f64),
    /// 500.
    ServerError,
    /// 400, as for a message Discord will never accept.
    BadRequest,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The JSON body.
    pub body: serde_json::Value,
    /// The `traceparent` header, if sent.
    pub traceparent: Option<String>,
    /// What the fake answered.
    pub reply: Reply,
    /// The message id answered (`?wait=true` and delivered), as Discord's
    /// snowflake string.
    pub message_id: Option<String>,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Debug, Default)]
struct Script {
    script: VecDeque<Reply>,
    otherwise: Option<Reply>,
    received: Vec<Received>,
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
    task: JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDiscord {
    /// Starts the fake on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake webhook");
        let addr = listener.local_addr().expect("fake webhook address");
        let (changes, _) = watch::channel(0);
        let shared = Shared {
            state: Arc::new(Mutex::new(Script::default())),
            changes: Arc::new(changes),
        };
        let app = axum::Router::new()
            .route("/api/webhooks/{id}/{token}", post(webhook))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
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
    /// `reply` (default: [`Reply::Delivered`]).
    pub fn reply_always(&self, reply: Reply) {
        self.lock().otherwise = Some(reply);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
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
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"message": "Cannot send an empty message", "code": 50006})),
        )
            .into_response();
    };
    let (reply, message_id) = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = state
            .script
            .pop_front()
            .or(state.otherwise)
            .unwrap_or(Reply::Delivered);
        // Snowflakes are 64-bit numbers sent as strings; any unique one will do.
        let delivered = matches!(reply, Reply::Delivered | Reply::DeliveredAfter(_));
        let message_id = (query.wait && delivered)
            .then(|| (1_300_000_000_000_000_000u64 + state.received.len() as u64).to_string());
        state.received.push(Received {
            body: body.clone(),
            message_id: message_id.clone(),
            traceparent: headers
                .get("traceparent")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            reply,
            at: std::time::Instant::now(),
        });
        (reply, message_id)
    };
    shared.changes.send_modify(|seen| *seen += 1);
    if let Reply::DeliveredAfter(delay) = reply {
        tokio::time::sleep(delay).await;
    }
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
            (StatusCode::OK, Json(message)).into_response()
        }
        (Reply::Delivered | Reply::DeliveredAfter(_), None) => {
            StatusCode::NO_CONTENT.into_response()
        }
        (Reply::RateLimited(seconds), _) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", format!("{seconds}"))],
            Json(serde_json::json!({
                "message": "You are being rate limited.",
                "retry_after": seconds,
                "global": false
            })),
        )
            .into_response(),
        (Reply::ServerError, _) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        (Reply::BadRequest, _) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"message": "Invalid Form Body", "code": 50035})),
        )
            .into_response(),
    }
}

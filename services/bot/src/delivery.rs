//! One notification, delivered once: claimed in PostgreSQL, its game
//! fetched from the api, rendered, sent to Discord, and the delivery
//! recorded. The order of these steps is what keeps a redelivery from
//! posting twice (see the crate docs, "What \"once\" leaves open").

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use broker::consumer::{Failure, Message};
use chrono::{DateTime, Utc};
use events::{Notification, NotificationKind};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use service_runtime::CancellationToken;
use telemetry::db::DbError as _;
use tokio::time::Instant;

use crate::api::GameApi;
use crate::deliveries::{Claim, Deliveries};
use crate::discord::{Discord, Sent};
use crate::render::{self, GameStatus};

/// Reports `notification` expired at `deadline`: in the log and on the
/// span, with the trace id.
fn expired(notification: &Notification, deadline: DateTime<Utc>) -> Delivered {
    tracing::warn!(
        notification.id = %notification.notification_id,
        kind = notification.kind.as_str(),
        due_at = %notification.due_at,
        %deadline,
        "notification expired: its moment passed; not posted"
    );
    Delivered::Expired
}

/// Longest wait between attempts to record a delivery already posted.
const MAX_RECORD_BACKOFF: Duration = Duration::from_secs(5);

/// The delivery side, shared by every message.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) api: GameApi,
    pub(crate) discord: Discord,
    pub(crate) deliveries: Deliveries,
    /// First wait between attempts to record a posted delivery.
    pub(crate) record_backoff: Duration,
    /// `NOTIFICATION_MAX_AGE_MINUTES`: past its due time by more, a
    /// notification is not posted.
    pub(crate) max_age: Duration,
    pub(crate) delivered: Counter<u64>,
    pub(crate) lag: Histogram<f64>,
}

/// What became of a notification that needs no retry: the `outcome` of
/// `gamenight.notifications.delivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// Posted to Discord.
    Sent,
    /// Logged, in dry run.
    DryRun,
    /// Delivered before: acknowledged without posting again.
    Duplicate,
    /// About a game that was cancelled meanwhile: acknowledged, not posted.
    Skipped,
    /// Its moment passed before it could be posted: acknowledged, not
    /// posted late.
    Expired,
}

impl Delivered {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::DryRun => "dry_run",
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
            Self::Expired => "expired",
        }
    }
}

impl Delivery {
    /// Handles one message: delivered (or acknowledged as a duplicate or
    /// skipped) is `Ok`; otherwise the failure for the consumer to act on,
    /// with the wait a server asked for.
    pub(crate) async fn deliver(
        &self,
        message: Message,
        shutdown: &CancellationToken,
    ) -> Result<(), Failure> {
        let notification: Notification = serde_json::from_slice(&message.body)
            .map_err(|err| Failure::Permanent(format!("malformed notification: {err}")))?;
        let kind = notification.kind.as_str();
        let result = self.deliver_notification(&notification, shutdown).await;
        let outcome = match &result {
            Ok(delivered) => delivered.as_str(),
            Err(Failure::Permanent(_)) => "rejected",
            Err(_) => "retried",
        };
        let attributes = [
            KeyValue::new("kind", kind),
            KeyValue::new("outcome", outcome),
        ];
        self.delivered.add(1, &attributes);
        if let Ok(Delivered::Sent | Delivered::DryRun) = result {
            let lag = (Utc::now() - notification.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.lag.record(lag, &[KeyValue::new("kind", kind)]);
        }
        result.map(|_| ())
    }

    async fn deliver_notification(
        &self,
        notification: &Notification,
        shutdown: &CancellationToken,
    ) -> Result<Delivered, Failure> {
        let id = notification.notification_id;
        let deadline = notification.due_at + self.max_age;
        if deadline <= Utc::now() {
            return Ok(expired(notification, deadline));
        }
        // Whether it was delivered before cannot be known without the
        // database: wait for it rather than risk a second post.
        let claim = match self.deliveries.claim(id).await {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                tracing::info!(
                    notification.id = %id,
                    kind = notification.kind.as_str(),
                    "delivered before; not posted again"
                );
                return Ok(Delivered::Duplicate);
            }
            Err(err) if err.is_transient() => {
                return Err(Failure::unavailable(
                    "PostgreSQL unavailable: cannot tell whether the notification was delivered",
                ));
            }
            // Not an outage (a bug, a schema out of step): retried, then
            // dead-lettered. Nothing was posted.
            Err(err) => {
                return Err(Failure::transient(format!(
                    "cannot claim the notification: database error {}: {}",
                    err.error_type(),
                    err.describe()
                )));
            }
        };
        let game = self.api.game(notification).await?;
        if game.status == GameStatus::Cancelled && notification.kind != NotificationKind::Cancelled
        {
            tracing::info!(
                notification.id = %id,
                kind = notification.kind.as_str(),
                "the game was cancelled; not posted"
            );
            claim.release().await;
            return Ok(Delivered::Skipped);
        }
        // An announcement or a reminder is for before the game.
        let deadline = match notification.kind {
            NotificationKind::Announcement | NotificationKind::Reminder => {
                deadline.min(game.scheduled_at)
            }
            NotificationKind::PlayerJoined | NotificationKind::Cancelled => deadline,
        };
        let body = render::discord_message(notification, &game);
        let left = (deadline - Utc::now()).to_std().unwrap_or_default();
        let sent = self
            .discord
            .send(notification, &body, Instant::now() + left, shutdown)
            .await?;
        let (delivered, message_id) = match sent {
            Sent::Posted { message_id } => (Delivered::Sent, message_id),
            Sent::DryRun => (Delivered::DryRun, None),
            Sent::Expired => {
                claim.release().await;
                return Ok(expired(notification, deadline));
            }
        };
        self.record(claim, id, message_id.as_deref(), shutdown)
            .await;
        Ok(delivered)
    }

    /// Records a posted delivery. It was posted: whatever happens here, the
    /// notification is acknowledged and never posted again by this bot. A
    /// record that fails (PostgreSQL down) is retried until it succeeds or
    /// the bot shuts down.
    async fn record(
        &self,
        claim: Claim,
        id: uuid::Uuid,
        message_id: Option<&str>,
        shutdown: &CancellationToken,
    ) {
        if self.deliveries.complete(claim, message_id).await.is_ok() {
            return;
        }
        // The claim went with its connection; record the delivery anew.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.record_backoff)
            .with_max_delay(MAX_RECORD_BACKOFF)
            .with_jitter()
            .without_max_times();
        let recorded = (|| self.deliveries.record(id, message_id))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|err, wait| {
                tracing::warn!(
                    notification.id = %id,
                    error.type = %err.error_type(),
                    error = %err.describe(),
                    retry_in = ?wait,
                    "posted, but PostgreSQL cannot record it yet; retrying the record"
                );
            });
        tokio::select! {
            _ = recorded => {
                tracing::info!(notification.id = %id, "delivery recorded");
            }
            () = shutdown.cancelled() => {
                tracing::error!(
                    notification.id = %id,
                    "shutting down with a delivery posted but not recorded: \
                     if the notification is published again, it will be posted again"
                );
            }
        }
    }
}

//! Discord, as the bot posts to it: the webhook (or a dry run standing in
//! for it), whose failure an answer other than 2xx is, and the webhook
//! fault switches that answer in Discord's place.
//!
//! The webhook's URL is a credential (its path holds the token): it never
//! appears in a log, a span (`url.full` carries [`WEBHOOK_TEMPLATE`]), an
//! error or `Debug` output, and no trace context is sent to Discord.

use std::time::Duration;

use broker::consumer::Failure;
use events::Notification;
use reqwest::StatusCode;
use service_runtime::fault::Fault;
use telemetry::spans::{http_client_span, record_response, send_traced_to_third_party};

use crate::config::{Destination, Faults};
use crate::retry_after;

/// How the webhook's URL appears in spans: its path holds the token.
const WEBHOOK_TEMPLATE: &str = "/api/webhooks/{id}/{token}";
/// The host a fault switch's stand-in webhook call names in dry run.
const DRY_RUN_WEBHOOK: &str = "https://discord.com/api/webhooks/0/dry-run";

/// Where messages go.
#[derive(Clone)]
enum Webhook {
    Discord(reqwest::Url),
    DryRun,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: its path is the webhook's credential.
        match self {
            Self::Discord(_) => f.write_str("Discord(<redacted>)"),
            Self::DryRun => f.write_str("DryRun"),
        }
    }
}

/// What a message that reached its destination became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Posted {
    /// Discord took it; the id it gave the message, when its answer said.
    Discord { message_id: Option<String> },
    /// Logged, in dry run.
    DryRun,
}

/// Posts messages to the webhook, or logs them in dry run.
#[derive(Debug, Clone)]
pub(crate) struct Discord {
    client: reqwest::Client,
    webhook: Webhook,
    /// `FAULT_WEBHOOK_FAILURE_PERCENT`: answered 503 in Discord's place.
    failure: Option<Fault>,
    /// `FAULT_WEBHOOK_RATE_LIMIT_PERCENT`: answered 429 in Discord's place.
    rate_limit: Option<Fault>,
}

impl Discord {
    /// Posts to `destination` through `client`, with the webhook fault
    /// switches of `faults`.
    pub(crate) fn new(client: reqwest::Client, destination: &Destination, faults: &Faults) -> Self {
        let webhook = match destination {
            Destination::Discord(url) => {
                let mut url = secrecy::ExposeSecret::expose_secret(url).clone();
                // Discord then answers 200 with the message it created, whose
                // id goes into the delivery record.
                url.query_pairs_mut().append_pair("wait", "true");
                Webhook::Discord(url)
            }
            Destination::DryRun => {
                tracing::warn!("BOT_DRY_RUN=true: messages are logged, not sent to Discord");
                Webhook::DryRun
            }
        };
        Self {
            client,
            webhook,
            failure: faults.webhook_failure.clone(),
            rate_limit: faults.webhook_rate_limit.clone(),
        }
    }

    /// Sends `body`, the rendered `notification`: posted to the webhook, or
    /// logged in dry run.
    pub(crate) async fn send(
        &self,
        notification: &Notification,
        body: &serde_json::Value,
    ) -> Result<Posted, Failure> {
        if let Some(failure) = self.injected_failure() {
            return Err(failure);
        }
        match &self.webhook {
            Webhook::DryRun => {
                // Recorded like the real call would be, so the trace has the
                // same shape with or without a webhook.
                tracing::info_span!("discord webhook (dry run)", otel.kind = "internal").in_scope(
                    || {
                        tracing::info!(
                            kind = notification.kind.as_str(),
                            notification_id = %notification.notification_id,
                            game_id = %notification.game_id,
                            "dry run: would post to Discord"
                        );
                    },
                );
                Ok(Posted::DryRun)
            }
            Webhook::Discord(url) => {
                let message_id = self.post(url, body).await?;
                tracing::info!(
                    kind = notification.kind.as_str(),
                    "notification delivered to Discord"
                );
                Ok(Posted::Discord { message_id })
            }
        }
    }

    /// A webhook fault switch standing in for Discord's answer, in dry run
    /// too: the call is traced as if the webhook had answered, and nothing
    /// is posted. The failure then takes the path a real one does.
    fn injected_failure(&self) -> Option<Failure> {
        let fired = |fault: &Option<Fault>| fault.as_ref().filter(|f| f.fires()).cloned();
        let (fault, status, retry_after) = if let Some(fault) = fired(&self.failure) {
            (fault, StatusCode::SERVICE_UNAVAILABLE, None)
        } else if let Some(fault) = fired(&self.rate_limit) {
            (
                fault,
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(1)),
            )
        } else {
            return None;
        };
        let url = match &self.webhook {
            Webhook::Discord(url) => url.clone(),
            Webhook::DryRun => reqwest::Url::parse(DRY_RUN_WEBHOOK).ok()?,
        };
        let span = http_client_span(&reqwest::Method::POST, &url, Some(WEBHOOK_TEMPLATE));
        span.in_scope(|| fault.report(&format!("the webhook answers {status}; nothing is posted")));
        record_response(&span, status);
        Some(webhook_failure(status, retry_after))
    }

    /// Posts `body` to the webhook and classifies the answer; on success,
    /// the id Discord gave the message.
    async fn post(
        &self,
        url: &reqwest::Url,
        body: &serde_json::Value,
    ) -> Result<Option<String>, Failure> {
        let request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .build()
            .map_err(|_| Failure::Permanent("cannot build the webhook request".into()))?;
        // Errors from reqwest name the URL, which holds the token: report
        // the kind of failure only.
        let response = send_traced_to_third_party(&self.client, request, Some(WEBHOOK_TEMPLATE))
            .await
            .map_err(|err| {
                Failure::unavailable(if err.is_timeout() {
                    "webhook timed out"
                } else {
                    "webhook unreachable"
                })
            })?;
        let status = response.status();
        if status.is_success() {
            // Posted. The id only enriches the record: an answer that cannot
            // be read must not make us post again.
            let posted = response.json::<PostedMessage>().await.inspect_err(|_| {
                tracing::warn!(
                    status = status.as_u16(),
                    "Discord's answer carries no message id"
                );
            });
            return Ok(posted.ok().map(|message| message.id));
        }
        Err(webhook_failure(status, retry_after(response.headers())))
    }
}

/// The part of Discord's answer to `?wait=true` the bot keeps.
#[derive(Debug, serde::Deserialize)]
struct PostedMessage {
    /// The message's snowflake, a 64-bit number sent as a string.
    id: String,
}

/// Whose failure a webhook answer other than 2xx is.
fn webhook_failure(status: StatusCode, retry_after: Option<Duration>) -> Failure {
    match status {
        // Discord asks us to slow down, or is not there: wait.
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Failure::Unavailable {
            reason: format!("webhook answered {status}"),
            retry_after,
        },
        // Discord failed on this message: retried, up to BOT_MAX_ATTEMPTS.
        _ if status.is_server_error() => Failure::transient(format!("webhook answered {status}")),
        // Any other 4xx: Discord will never take this message.
        _ => Failure::Permanent(format!("webhook refused the message: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_throttling_or_unavailable_is_waited_out_and_a_refusal_is_final() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ] {
            assert!(
                matches!(webhook_failure(status, None), Failure::Unavailable { .. }),
                "{status}"
            );
        }
        assert!(matches!(
            webhook_failure(StatusCode::INTERNAL_SERVER_ERROR, None),
            Failure::Transient { .. }
        ));
        for status in [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND] {
            assert!(
                matches!(webhook_failure(status, None), Failure::Permanent(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn the_webhook_url_never_shows_in_debug_output() {
        let webhook = Webhook::Discord(
            "https://discord.test/api/webhooks/1/s3cret"
                .parse()
                .unwrap(),
        );
        assert_eq!(format!("{webhook:?}"), "Discord(<redacted>)");
    }
}

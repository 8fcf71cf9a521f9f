//! The api, as the bot calls it: `GET /games/{id}` as a traced client call
//! carrying `traceparent`, and whose failure an answer other than 2xx is.

use broker::consumer::Failure;
use events::Notification;
use reqwest::StatusCode;
use service_runtime::fault::Fault;
use telemetry::spans::{http_client_span, record_error, send_traced};
use tracing::Instrument;

use crate::render::GameView;
use crate::{HTTP_TIMEOUT, retry_after};

/// Fetches games from the api.
#[derive(Debug, Clone)]
pub(crate) struct GameApi {
    /// Whose timeout is [`HTTP_TIMEOUT`].
    pub(crate) client: reqwest::Client,
    pub(crate) base_url: reqwest::Url,
    /// `FAULT_API_TIMEOUT_PERCENT`: calls that get no answer on purpose.
    pub(crate) timeout: Option<Fault>,
}

impl GameApi {
    /// The game `notification` is about. A game the api does not know is
    /// the message's own failure ([`Failure::Permanent`]); an api that is
    /// unreachable, slow or overloaded is waited out ([`Failure::Unavailable`]).
    pub(crate) async fn game(&self, notification: &Notification) -> Result<GameView, Failure> {
        let url = self
            .base_url
            .join(&format!("games/{}", notification.game_id))
            .map_err(|err| Failure::Permanent(format!("cannot build the game URL: {err}")))?;
        if let Some(fault) = self.timeout.as_ref().filter(|f| f.fires()) {
            // Traced as the real call would be: a GET that gets no answer
            // within the client's timeout.
            let span = http_client_span(&reqwest::Method::GET, &url, None);
            async {
                fault.report("the call to the api times out");
                tokio::time::sleep(HTTP_TIMEOUT).await;
            }
            .instrument(span.clone())
            .await;
            let timeout = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within the timeout (fault injected)",
            );
            record_error(&span, "timeout", &timeout);
            return Err(Failure::unavailable(format!("api unreachable: {timeout}")));
        }
        let request = self
            .client
            .get(url)
            .build()
            .map_err(|err| Failure::Permanent(err.to_string()))?;
        let response = send_traced(&self.client, request, None)
            .await
            .map_err(|err| Failure::unavailable(format!("api unreachable: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|err| {
                // Without the URL: the reason is logged and put on spans.
                let err = err.without_url();
                Failure::unavailable(format!("unreadable game from the api: {err}"))
            });
        }
        Err(api_failure(status, retry_after(response.headers())))
    }
}

/// Whose failure an api answer other than 2xx is.
fn api_failure(status: StatusCode, retry_after: Option<std::time::Duration>) -> Failure {
    // The api (or a gateway in front of it) is overloaded, restarting or
    // asks us to slow down: wait.
    let wait = matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
    );
    if wait || status.is_server_error() {
        Failure::Unavailable {
            reason: format!("api answered {status}"),
            retry_after,
        }
    } else {
        // 404: the game is gone; any other 4xx: a request that will never
        // succeed. Both belong to the message.
        Failure::Permanent(format!("api answered {status} for the game"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn notification() -> Notification {
        Notification {
            notification_id: uuid::Uuid::new_v4(),
            game_id: uuid::Uuid::new_v4(),
            kind: events::NotificationKind::Announcement,
            player: None,
            due_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn an_unreachable_api_is_unavailable_not_permanent() {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let api = GameApi {
            client: reqwest::Client::new(),
            base_url: url.parse().unwrap(),
            timeout: None,
        };
        match api.game(&notification()).await {
            Err(Failure::Unavailable { reason, .. }) => {
                assert!(reason.starts_with("api unreachable"), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn an_api_that_is_overloaded_or_down_is_waited_out_honouring_retry_after() {
        let wait = Some(Duration::from_secs(2));
        for status in [
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            match api_failure(status, wait) {
                Failure::Unavailable { retry_after, .. } => {
                    assert_eq!(retry_after, wait, "{status}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_game_the_api_does_not_know_is_the_messages_own_failure() {
        for status in [StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST] {
            assert!(
                matches!(api_failure(status, None), Failure::Permanent(_)),
                "{status}"
            );
        }
    }
}

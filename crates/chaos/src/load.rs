//! The load: `POST /games` at a fixed rate, whatever the answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::report::{Outcome, Request};

/// How long one request may take before it counts as unanswered.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Game `n` is titled `chaos game n`: numbered in the order sent.
const TITLE_PREFIX: &str = "chaos game ";

/// The number of the game titled `title`.
pub(crate) fn game_number(title: &str) -> Option<usize> {
    title.strip_prefix(TITLE_PREFIX)?.parse().ok()
}

/// Counts for the progress line, updated as answers arrive.
#[derive(Debug, Default)]
pub(crate) struct Live {
    sent: AtomicUsize,
    created: AtomicUsize,
    server_errors: AtomicUsize,
    fault: Mutex<String>,
}

impl Live {
    /// Sent, created, answered 5xx.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.sent.load(Ordering::Relaxed),
            self.created.load(Ordering::Relaxed),
            self.server_errors.load(Ordering::Relaxed),
        )
    }

    /// What is being done to the system right now.
    pub(crate) fn fault(&self) -> String {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_fault(&self, text: String) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }
}

/// Sends `rate` games a second to `api_url` until `stop`, each without
/// waiting for the ones before (a slow api does not slow the load), and
/// returns every request with its outcome.
pub(crate) async fn drive(
    client: reqwest::Client,
    api_url: String,
    rate: u32,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Vec<Request> {
    let url = format!("{api_url}/games");
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    let mut requests = JoinSet::new();
    for number in 1_usize.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        live.sent.fetch_add(1, Ordering::Relaxed);
        let (client, url, live) = (client.clone(), url.clone(), live.clone());
        requests.spawn(async move {
            let title = format!("{TITLE_PREFIX}{number}");
            let sent_at = Instant::now();
            let outcome = create_game(&client, &url, &title).await;
            match outcome {
                Outcome::Created => live.created.fetch_add(1, Ordering::Relaxed),
                Outcome::Status(500..=599) => live.server_errors.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            Request {
                title,
                sent_at,
                outcome,
            }
        });
    }
    let mut done: Vec<Request> = requests.join_all().await;
    done.sort_by_key(|r| r.sent_at);
    done
}

async fn create_game(client: &reqwest::Client, url: &str, title: &str) -> Outcome {
    // Far enough ahead that its reminder never falls due during the run:
    // each game makes exactly one notification, its announcement.
    let scheduled_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let response = client
        .post(url)
        .json(&serde_json::json!({
            "title": title,
            "host": "chaos",
            "scheduled_at": scheduled_at.to_rfc3339(),
            "max_players": 4,
            "reminder_minutes": 60,
        }))
        .send()
        .await;
    match response {
        Ok(response) if response.status() == reqwest::StatusCode::CREATED => Outcome::Created,
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(_) => Outcome::NoAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_is_found_again_by_the_number_in_its_title() {
        assert_eq!(game_number(&format!("{TITLE_PREFIX}42")), Some(42));
        assert_eq!(game_number("Catan night"), None);
    }
}

//! A steady load and what became of it: `POST /games` at a fixed rate,
//! whatever the answers, and the webhook posts announcing the games: which
//! were lost, which doubled, and how long each took from create to post.
//!
//! Each game is titled `<prefix><n>`, numbered in the order sent, so that
//! its announcement can be found among the webhook's posts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use test_support::FakeDiscord;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long one request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The number of the game titled `title`, if it is one of `prefix`'s.
pub fn game_number(prefix: &str, title: &str) -> Option<usize> {
    title.strip_prefix(prefix)?.parse().ok()
}

/// Counts for a progress line, updated as answers arrive.
#[derive(Debug, Default)]
pub struct Live {
    sent: AtomicUsize,
    created: AtomicUsize,
    server_errors: AtomicUsize,
}

impl Live {
    /// Sent, created, answered 5xx.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.sent.load(Ordering::Relaxed),
            self.created.load(Ordering::Relaxed),
            self.server_errors.load(Ordering::Relaxed),
        )
    }
}

/// One `POST /games` of the load.
#[derive(Debug, Clone)]
pub struct Request {
    /// The game's title, unique in the run: what finds its webhook posts.
    pub title: String,
    /// When it was sent.
    pub sent_at: Instant,
    /// How the api answered.
    pub outcome: Outcome,
}

/// How the api answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 201: the game exists and must be announced.
    Created,
    /// Any other status.
    Status(u16),
    /// No answer: refused, reset or timed out.
    NoAnswer,
}

/// Sends `rate` games a second to `api_url`, titled `<title_prefix><n>`,
/// until `stop`, each without waiting for the ones before (a slow api does
/// not slow the load), and returns every request with its outcome in the
/// order sent.
///
/// Returns `Err` when no HTTP client can be built.
pub async fn drive(
    api_url: String,
    rate: u32,
    title_prefix: String,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Result<Vec<Request>, reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
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
        let title = format!("{title_prefix}{number}");
        requests.spawn(async move {
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
    Ok(done)
}

/// Waits until every game `requests` created has been announced, or
/// `within` has passed.
pub async fn drain(discord: &FakeDiscord, requests: &[Request], within: Duration) {
    let created: HashSet<&str> = requests
        .iter()
        .filter(|r| r.outcome == Outcome::Created)
        .map(|r| r.title.as_str())
        .collect();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let posts = posts(discord);
        let announced: HashSet<&str> = posts.iter().filter_map(|p| p.title.as_deref()).collect();
        if created.is_subset(&announced) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_game(client: &reqwest::Client, url: &str, title: &str) -> Outcome {
    // Far enough ahead that its reminder never falls due during the run:
    // each game makes exactly one notification, its announcement, at once.
    let scheduled_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let response = client
        .post(url)
        .json(&serde_json::json!({
            "title": title,
            "host": "load",
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

/// One post the webhook took (answered 2xx): a message in the channel.
#[derive(Debug, Clone)]
pub struct Post {
    /// The title of the game it announces, if it names one.
    pub title: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// The webhook's posts so far, each with the title of the game it
/// announces: the requests it answered 2xx. One it answered 5xx or 429,
/// or never answered, put no message in the channel.
pub fn posts(discord: &FakeDiscord) -> Vec<Post> {
    discord
        .received()
        .into_iter()
        .filter(|received| (200..300).contains(&received.status))
        .map(|received| Post {
            title: received.body["embeds"][0]["title"]
                .as_str()
                .map(str::to_owned),
            at: received.at,
        })
        .collect()
}

/// Percentiles of create→webhook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

impl Latency {
    /// Nearest-rank percentiles of `sorted`; `None` when it is empty.
    pub fn of_sorted(sorted: &[Duration]) -> Option<Self> {
        let max = *sorted.last()?;
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).saturating_sub(1);
            sorted[index]
        };
        Some(Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max,
        })
    }
}

/// What became of the games a load sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Requests sent.
    pub sent: usize,
    /// Answered 201.
    pub created: usize,
    /// Created and announced at least once.
    pub announced: usize,
    /// Created, never announced.
    pub lost: usize,
    /// Posts beyond the first for the same game.
    pub duplicates: usize,
    /// Posts for a game the load never got a 201 for.
    pub unexpected: usize,
    /// Answered 500.
    pub status_500: usize,
    /// Answered 500–599.
    pub status_5xx: usize,
    /// Answered anything else but 2xx.
    pub other_non_2xx: usize,
    /// Refused, reset or timed out.
    pub no_answer: usize,
    /// From each request sent to the first post announcing its game;
    /// `None` when no game was announced.
    pub latency: Option<Latency>,
}

impl Delivery {
    /// The figures of `requests`, given the webhook's `posts` (only those of
    /// these requests' games: any other counts as unexpected).
    pub fn new(requests: &[Request], posts: &[Post]) -> Self {
        let mut posts_by_title: HashMap<&str, Vec<Instant>> = HashMap::new();
        for post in posts {
            if let Some(title) = &post.title {
                posts_by_title.entry(title).or_default().push(post.at);
            }
        }
        let created: HashMap<&str, &Request> = requests
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .map(|r| (r.title.as_str(), r))
            .collect();
        let mut latencies: Vec<Duration> = created
            .values()
            .filter_map(|r| {
                let first = posts_by_title.get(r.title.as_str())?.iter().min()?;
                Some(first.saturating_duration_since(r.sent_at))
            })
            .collect();
        latencies.sort();
        let status = |keep: fn(u16) -> bool| {
            requests
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Status(code) if keep(code)))
                .count()
        };
        Self {
            sent: requests.len(),
            created: created.len(),
            announced: latencies.len(),
            lost: created.len() - latencies.len(),
            duplicates: posts_by_title.values().map(|at| at.len() - 1).sum(),
            unexpected: posts_by_title
                .iter()
                .filter(|(title, _)| !created.contains_key(*title))
                .map(|(_, at)| at.len())
                .sum(),
            status_500: status(|code| code == 500),
            status_5xx: status(|code| (500..600).contains(&code)),
            other_non_2xx: status(|code| {
                !(200..300).contains(&code) && !(500..600).contains(&code)
            }),
            no_answer: requests
                .iter()
                .filter(|r| r.outcome == Outcome::NoAnswer)
                .count(),
            latency: Latency::of_sorted(&latencies),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn request(start: Instant, title: &str, sent_ms: u64, outcome: Outcome) -> Request {
        Request {
            title: title.to_owned(),
            sent_at: start + Duration::from_millis(sent_ms),
            outcome,
        }
    }

    fn post(start: Instant, title: &str, at_ms: u64) -> Post {
        Post {
            title: Some(title.to_owned()),
            at: start + Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn a_game_is_found_again_by_the_number_in_its_title() {
        assert_eq!(game_number("load game ", "load game 42"), Some(42));
        assert_eq!(game_number("load game ", "Catan night"), None);
    }

    #[test]
    fn a_created_game_without_a_post_is_lost_and_a_second_post_is_a_duplicate() {
        let t = Instant::now();
        let requests = [
            request(t, "a", 0, Outcome::Created),
            request(t, "b", 10, Outcome::Created),
            request(t, "c", 20, Outcome::Status(500)),
            request(t, "d", 30, Outcome::Status(503)),
            request(t, "e", 40, Outcome::Status(422)),
            request(t, "f", 50, Outcome::NoAnswer),
        ];
        let posts = [post(t, "a", 100), post(t, "a", 900), post(t, "f", 300)];
        let delivery = Delivery::new(&requests, &posts);
        assert_eq!(
            (
                delivery.sent,
                delivery.created,
                delivery.announced,
                delivery.lost
            ),
            (6, 2, 1, 1)
        );
        assert_eq!((delivery.duplicates, delivery.unexpected), (1, 1));
        assert_eq!(
            (
                delivery.status_500,
                delivery.status_5xx,
                delivery.other_non_2xx,
                delivery.no_answer
            ),
            (1, 2, 1, 1)
        );
        // The first post counts for the latency, not the duplicate.
        assert_eq!(delivery.latency.map(|l| l.max), Some(100 * MS));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(|i| i * MS).collect();
        assert_eq!(
            Latency::of_sorted(&sorted),
            Some(Latency {
                p50: 50 * MS,
                p90: 90 * MS,
                p99: 99 * MS,
                max: 100 * MS
            })
        );
        assert_eq!(Latency::of_sorted(&[7 * MS]).map(|l| l.p50), Some(7 * MS));
        assert_eq!(Latency::of_sorted(&[]), None);
    }
}

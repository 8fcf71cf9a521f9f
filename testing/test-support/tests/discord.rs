//! The fake Discord webhook over real HTTP: its rate limits, scripted
//! failures, refused connections and counters, as a client sees them.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};
use test_support::{FakeDiscord, Reply, RouteLimit, Stats};

/// Posts a message to the fake's webhook.
async fn post(client: &reqwest::Client, discord: &FakeDiscord) -> Response {
    client
        .post(discord.webhook_url())
        .json(&serde_json::json!({"content": "game night"}))
        .send()
        .await
        .unwrap()
}

/// The value of `name` in `response`, which must carry it.
fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The seconds of a header such as `X-RateLimit-Reset-After`, which must
/// have three decimals.
fn seconds(response: &Response, name: &str) -> f64 {
    let value = header(response, name);
    let (_, decimals) = value.split_once('.').unwrap();
    assert_eq!(decimals.len(), 3, "{name}: {value}");
    value.parse().unwrap()
}

#[tokio::test]
async fn a_delivery_under_a_limit_reports_the_bucket() {
    let discord = FakeDiscord::start().await;
    discord.set_rate_limit(Some(RouteLimit {
        limit: 3,
        window: Duration::from_millis(500),
    }));
    let client = reqwest::Client::new();

    let first = post(&client, &discord).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&first, "x-ratelimit-limit"), "3");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "2");
    let reset_after = seconds(&first, "x-ratelimit-reset-after");
    assert!(0.0 < reset_after && reset_after <= 0.5, "{reset_after}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let reset = seconds(&first, "x-ratelimit-reset");
    assert!((reset - now.as_secs_f64()).abs() < 1.0, "{reset}");
    let bucket = header(&first, "x-ratelimit-bucket").to_owned();
    assert!(bucket.chars().all(|c| c.is_ascii_hexdigit()), "{bucket}");
    assert!(first.headers().get("retry-after").is_none());

    let second = post(&client, &discord).await;
    assert_eq!(header(&second, "x-ratelimit-remaining"), "1");
    assert_eq!(header(&second, "x-ratelimit-bucket"), bucket);
}

#[tokio::test]
async fn no_limit_no_headers() {
    let discord = FakeDiscord::start().await;
    let response = post(&reqwest::Client::new(), &discord).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn a_request_beyond_the_limit_waits_for_the_next_window() {
    let discord = FakeDiscord::start().await;
    discord.set_rate_limit(Some(RouteLimit {
        limit: 2,
        window: Duration::from_millis(300),
    }));
    let client = reqwest::Client::new();
    post(&client, &discord).await;
    post(&client, &discord).await;

    let limited = post(&client, &discord).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&limited, "retry-after"),
        "1",
        "whole seconds, rounded up"
    );
    assert_eq!(header(&limited, "x-ratelimit-scope"), "user");
    assert_eq!(header(&limited, "x-ratelimit-remaining"), "0");
    assert!(limited.headers().get("x-ratelimit-global").is_none());
    let wait = seconds(&limited, "x-ratelimit-reset-after");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(0.0 < retry_after && retry_after <= 0.3, "{retry_after}");
    assert!(
        (retry_after - wait).abs() < 0.002,
        "{retry_after} vs {wait}"
    );

    tokio::time::sleep(Duration::from_secs_f64(retry_after + 0.01)).await;
    let again = post(&client, &discord).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&again, "x-ratelimit-remaining"),
        "1",
        "a fresh window"
    );
    let window = seconds(&again, "x-ratelimit-reset-after");
    assert!(
        window > 0.25,
        "the window starts at its first request: {window}"
    );
    let statuses: Vec<u16> = discord.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 204, 429, 204]);
    assert!(matches!(discord.received()[2].reply, Reply::RateLimited(_)));
}

#[tokio::test]
async fn the_global_limit_answers_a_global_429() {
    let discord = FakeDiscord::start().await;
    discord.set_global_limit(Some(2));
    let client = reqwest::Client::new();
    post(&client, &discord).await;
    post(&client, &discord).await;

    let limited = post(&client, &discord).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "x-ratelimit-global"), "true");
    assert_eq!(header(&limited, "x-ratelimit-scope"), "global");
    assert_eq!(header(&limited, "retry-after"), "1");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["global"], true);
    assert!(body["retry_after"].as_f64().unwrap() <= 1.0);

    discord.set_global_limit(None);
    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );
    let stats = discord.stats();
    assert_eq!((stats.rate_limited_global, stats.invalid), (1, 1));
}

#[tokio::test]
async fn each_scripted_failure_answers_its_status_and_is_counted() {
    let discord = FakeDiscord::start().await;
    discord.set_rate_limit(Some(RouteLimit {
        limit: 10,
        window: Duration::from_millis(500),
    }));
    discord.reply_next([
        Reply::ServerError,
        Reply::BadGateway,
        Reply::ServiceUnavailable,
        Reply::BadRequest,
        Reply::RateLimited(0.25),
        Reply::GlobalRateLimited(1.5),
    ]);
    let client = reqwest::Client::new();
    for status in [500, 502, 503] {
        let response = post(&client, &discord).await;
        assert_eq!(response.status().as_u16(), status);
        assert!(
            response.headers().get("x-ratelimit-limit").is_none(),
            "Cloudflare's {status} reports no bucket"
        );
    }
    let bad = post(&client, &discord).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&bad, "x-ratelimit-remaining"), "9");

    let route = post(&client, &discord).await;
    assert_eq!(route.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&route, "retry-after"), "1");
    assert_eq!(header(&route, "x-ratelimit-scope"), "user");
    assert_eq!(header(&route, "x-ratelimit-reset-after"), "0.250");
    let body: serde_json::Value = route.json().await.unwrap();
    assert_eq!(
        (body["retry_after"].as_f64(), &body["global"]),
        (Some(0.25), &false.into())
    );

    let global = post(&client, &discord).await;
    assert_eq!(global.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&global, "retry-after"), "2");
    assert_eq!(header(&global, "x-ratelimit-global"), "true");

    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        discord.stats(),
        Stats {
            requests: 7,
            delivered: 1,
            bad_requests: 1,
            rate_limited_route: 1,
            rate_limited_global: 1,
            invalid: 2,
            server_errors: 3,
            unanswered: 0,
        }
    );
}

#[tokio::test]
async fn a_timeout_holds_the_request_until_the_client_gives_up() {
    let discord = FakeDiscord::start().await;
    discord.reply_next([Reply::Timeout]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(discord.webhook_url())
        .json(&serde_json::json!({"content": "game night"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );
    let received = discord.received();
    assert_eq!((received[0].reply, received[0].status), (Reply::Timeout, 0));
    assert_eq!(discord.stats().unanswered, 1);
}

#[tokio::test]
async fn an_outage_lasts_until_the_replies_are_reset() {
    let discord = FakeDiscord::start().await;
    discord.reply_always(Reply::ServiceUnavailable);
    let client = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(
            post(&client, &discord).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    discord.reset_replies();
    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn refused_connections_resume_on_the_same_url() {
    let discord = FakeDiscord::start().await;
    let url = discord.webhook_url();
    let addr = url.split('/').nth(2).unwrap().to_owned();
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );

    discord.refuse_connections(true).await;
    let refused = tokio::net::TcpStream::connect(&addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({"content": "game night"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(
        client.post(&url).json(&1).send().await.is_err(),
        "the kept-alive connection is closed too"
    );

    discord.refuse_connections(false).await;
    assert_eq!(discord.webhook_url(), url);
    assert_eq!(
        post(&client, &discord).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(discord.stats().requests, 2);
}

#[tokio::test]
async fn a_message_delivered_with_wait_is_answered_with_its_id() {
    let discord = FakeDiscord::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}?wait=true", discord.webhook_url()))
        .json(&serde_json::json!({"content": "game night"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let message: serde_json::Value = response.json().await.unwrap();
    assert_eq!(message["content"], "game night");
    let received = &discord.received()[0];
    assert_eq!(received.status, 200);
    assert_eq!(received.message_id.as_deref(), message["id"].as_str());
}

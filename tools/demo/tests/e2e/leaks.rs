//! No credential, webhook token or player name reaches anything the services
//! export or print, on the error paths too: each credential holds a marker,
//! each dependency is made unreachable in turn, and every span, log record,
//! metric and printed line is searched for the markers afterwards.

use std::path::Path;
use std::time::Duration;

use demo::{Names, Options, Printed, Stack};
use otlp_testkit::Receiver;
use otlp_testkit::proto::trace::v1::span::SpanKind;
use test_support::{FakeDiscord, TcpProxy};

use crate::helpers::Amqp;

const DATABASE_PASSWORD: &str = "marker-db-password-7f3a";
const RABBITMQ_USER: &str = "marker-amqp-user-c81d";
const RABBITMQ_PASSWORD: &str = "marker-amqp-password-52be";
const WEBHOOK_TOKEN: &str = "marker-webhook-token-9e04";
const GRAFANA_TOKEN: &str = "marker-grafana-token-d6a1";
const PLAYER: &str = "marker-player-4b7c";

/// A port nothing listens on: connections to it are refused.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until a line the services printed satisfies `found`.
async fn wait_for_line(printed: &Printed, what: &str, found: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !printed.lines().iter().any(|line| found(line)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no line shows {what} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a CLIENT span of `service` that failed with `error_type`.
async fn wait_for_failed_call(receiver: &Receiver, service: &str, error_type: &str) {
    receiver
        .wait_for_condition(&format!("a failed call from {service}"), |spans, _, _| {
            spans
                .iter()
                .find(|span| {
                    span.service_name() == service
                        && span.kind() == SpanKind::Client
                        && span.is_error()
                        && span.str_attr("error.type") == Some(error_type)
                })
                .cloned()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn no_secret_or_player_name_is_exported_or_printed_when_dependencies_fail_over_http() {
    nothing_leaks_over("http/protobuf").await;
}

#[tokio::test]
async fn no_secret_or_player_name_is_exported_or_printed_when_dependencies_fail_over_grpc() {
    nothing_leaks_over("grpc").await;
}

async fn nothing_leaks_over(protocol: &str) {
    let receiver = Receiver::start().await.unwrap();
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    let collector = TcpProxy::for_url(&endpoint).await;
    let mut names = Names::unique("leaks").await;
    let _removed = names.removed_on_drop();
    let database = TcpProxy::for_url(&names.database_url).await;
    // PostgreSQL trusts local connections: any password is accepted.
    let mut database_url = reqwest::Url::parse(&database.url(&names.database_url)).unwrap();
    database_url.set_password(Some(DATABASE_PASSWORD)).unwrap();
    names.database_url = database_url.to_string();
    // Discord down, then back, knowing no webhook with the marker's token.
    let discord = FakeDiscord::start().await;
    discord.refuse_connections(true).await;
    let mut webhook_url = reqwest::Url::parse(&discord.webhook_url()).unwrap();
    webhook_url.set_path(&format!("/api/webhooks/1234/{WEBHOOK_TOKEN}"));
    let options = Options {
        otlp_endpoint: collector.url(&endpoint),
        webhook_url: Some(webhook_url.to_string()),
        extra_env: vec![
            (
                "OTEL_EXPORTER_OTLP_HEADERS".to_owned(),
                format!("authorization=Bearer%20{GRAFANA_TOKEN}"),
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                protocol.to_owned(),
            ),
        ],
    };
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_demo")), names, &options)
        .await
        .unwrap();
    let printed = stack.printed();
    let client = reqwest::Client::new();
    let create_game = |api_url: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{api_url}/games"))
                .json(&serde_json::json!({
                    "title": "Leak night",
                    "host": "ada",
                    "scheduled_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
                    "max_players": 4,
                    "reminder_minutes": 60,
                }))
                .send()
                .await
                .unwrap()
        }
    };

    // Discord unreachable: the announcement and the join fail to post.
    let game: serde_json::Value = create_game(stack.api_url.clone())
        .await
        .json()
        .await
        .unwrap();
    let game_url = format!("{}/games/{}", stack.api_url, game["id"].as_str().unwrap());
    let joined = client
        .post(format!("{game_url}/participants"))
        .json(&serde_json::json!({ "player": PLAYER }))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    let left = client
        .delete(format!("{game_url}/participants/{PLAYER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 204);
    wait_for_failed_call(&receiver, "bot", "connect").await;

    // The collector unreachable: exports fail until it is back.
    collector.cut();
    assert_eq!(create_game(stack.api_url.clone()).await.status(), 201);
    wait_for_line(&printed, "a failed export", |line| {
        line.contains("opentelemetry") && (line.contains("WARN") || line.contains("ERROR"))
    })
    .await;
    collector.restore();

    // PostgreSQL unreachable: the api answers 503 and says why in its log.
    database.cut();
    let status = create_game(stack.api_url.clone()).await.status();
    assert_eq!(status, 503);
    wait_for_line(&printed, "the api's failed request", |line| {
        line.starts_with("api: ") && line.contains("database unavailable")
    })
    .await;
    database.restore();

    // RabbitMQ unreachable: a second api, whose broker is nowhere, takes a
    // game; its outbox relay cannot publish it.
    let rabbitmq_url = format!(
        "amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@127.0.0.1:{}/%2f",
        closed_port().await
    );
    let listening = stack
        .start_another(
            "api",
            &[
                ("RABBITMQ_URL", rabbitmq_url),
                ("API_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
                ("REDIS_URL", test_support::redis_url()),
                ("REDIS_KEY_PREFIX", stack.names.redis_prefix.clone()),
            ],
            "listening",
        )
        .await
        .unwrap();
    let lonely_api = format!("http://{}", listening["addr"].as_str().unwrap());
    assert_eq!(create_game(lonely_api).await.status(), 201);
    wait_for_line(&printed, "the relay failing to reach RabbitMQ", |line| {
        line.starts_with("api: ") && line.contains("WARN") && line.contains("outbox")
    })
    .await;

    // Discord back, refusing the unknown webhook: the posts in hand are
    // refused, and the bot takes notifications again.
    wait_for_line(&printed, "the bot pausing for Discord", |line| {
        line.starts_with("bot: ") && line.contains("Discord is unavailable")
    })
    .await;
    discord.refuse_connections(false).await;
    wait_for_line(&printed, "the bot refused by Discord", |line| {
        line.starts_with("bot: ") && line.contains("webhook refused the message")
    })
    .await;

    // The api unreachable from the bot: it is stopped, and a notification
    // for the game arrives.
    stack.terminate("api").await.unwrap();
    let notification = serde_json::json!({
        "notification_id": uuid::Uuid::new_v4(),
        "game_id": game["id"],
        "kind": "announcement",
        "player": null,
        "due_at": chrono::Utc::now(),
    });
    Amqp::connect()
        .await
        .publish(
            &stack.names.notifications_exchange,
            "notification.announcement",
            notification["notification_id"].as_str().unwrap(),
            notification.to_string().as_bytes(),
        )
        .await;
    wait_for_failed_call(&receiver, "bot", "connect").await;
    receiver
        .wait_for_condition("the bot failing to reach the api", |spans, _, _| {
            spans
                .iter()
                .find(|span| {
                    span.service_name() == "bot"
                        && span.name() == "GET"
                        && span.str_attr("error.type") == Some("connect")
                })
                .cloned()
        })
        .await
        .unwrap();

    for (name, status) in stack.stop().await.unwrap() {
        assert!(status.success(), "{name} exited with {status}");
    }

    // The markers were in use: the token went to the collector, as it should.
    assert!(
        receiver.request_headers().iter().any(|headers| headers
            .get("authorization")
            .is_some_and(|value| value == format!("Bearer {GRAFANA_TOKEN}").as_str())),
        "the collector saw the token"
    );
    let exported = format!(
        "{:?}\n{:?}\n{:?}",
        receiver.spans(),
        receiver.logs(),
        receiver.metrics()
    );
    let printed = printed.lines();
    for marker in [
        DATABASE_PASSWORD,
        RABBITMQ_USER,
        RABBITMQ_PASSWORD,
        WEBHOOK_TOKEN,
        GRAFANA_TOKEN,
        PLAYER,
    ] {
        assert!(
            !exported.contains(marker),
            "{marker} exported: {}",
            around(&exported, marker)
        );
        let leaks: Vec<&String> = printed
            .iter()
            .filter(|line| line.contains(marker))
            .collect();
        assert!(leaks.is_empty(), "{marker} printed: {leaks:#?}");
    }
}

/// The text around the first `marker` in `haystack`.
fn around(haystack: &str, marker: &str) -> String {
    let at = haystack.find(marker).unwrap_or_default();
    let start = haystack.floor_char_boundary(at.saturating_sub(300));
    let end = haystack.ceil_char_boundary((at + marker.len() + 300).min(haystack.len()));
    haystack[start..end].to_owned()
}

#[tokio::test]
async fn the_dry_run_logs_what_it_would_post_without_the_message() {
    let receiver = Receiver::start().await.unwrap();
    let options = Options {
        otlp_endpoint: receiver.http_endpoint(),
        webhook_url: None,
        extra_env: vec![],
    };
    let names = Names::unique("dryrun").await;
    let _removed = names.removed_on_drop();
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_demo")), names, &options)
        .await
        .unwrap();
    let printed = stack.printed();
    let client = reqwest::Client::new();
    let game: serde_json::Value = client
        .post(format!("{}/games", stack.api_url))
        .json(&serde_json::json!({
            "title": "Dry night",
            "host": "ada",
            "scheduled_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
            "max_players": 4,
            "reminder_minutes": 60,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let joined = client
        .post(format!(
            "{}/games/{}/participants",
            stack.api_url,
            game["id"].as_str().unwrap()
        ))
        .json(&serde_json::json!({ "player": PLAYER }))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    // The announcement and the join, both delivered dry.
    receiver
        .wait_for_condition("two dry runs", |spans, _, _| {
            let dry = spans
                .iter()
                .filter(|span| span.name() == "discord webhook (dry run)")
                .count();
            (dry == 2).then_some(())
        })
        .await
        .unwrap();
    for (name, status) in stack.stop().await.unwrap() {
        assert!(status.success(), "{name} exited with {status}");
    }

    let exported = format!("{:?}\n{:?}", receiver.spans(), receiver.logs());
    assert!(!exported.contains(PLAYER), "{}", around(&exported, PLAYER));
    let leaks: Vec<String> = printed
        .lines()
        .into_iter()
        .filter(|line| line.contains(PLAYER))
        .collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
}

//! What the api exports, span by span, through a real OTLP receiver.

use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::{AnyValueExt, Metric, Receiver, Span, Trace};
use test_support::TcpProxy;

use crate::helpers::{EventTap, Servers, game_body};
use crate::process::Api;

/// The api exporting to `receiver` quickly, on `servers`.
async fn start(receiver: &Receiver, servers: &Servers) -> Api {
    let endpoint = receiver.http_endpoint();
    Api::start(
        servers,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await
}

fn child<'t>(trace: &'t Trace, parent: &Span, name: &str) -> &'t Span {
    trace
        .child(parent, name)
        .unwrap_or_else(|| panic!("no {name:?} under {:?} in\n{trace}", parent.name()))
}

fn assert_db_span(span: &Span, operation: &str, table: Option<&str>) {
    assert_eq!(span.kind(), SpanKind::Client, "{}", span.name());
    assert_eq!(span.str_attr("db.system.name"), Some("postgresql"));
    assert_eq!(span.str_attr("db.operation.name"), Some(operation));
    assert_eq!(span.str_attr("db.collection.name"), table);
    assert_eq!(span.str_attr("server.address"), Some("127.0.0.1"));
    assert_eq!(span.int_attr("server.port"), Some(5432));
    assert!(span.str_attr("db.query.text").is_some());
}

fn points_with(metric: &Metric, key: &str, value: &str) -> u64 {
    metric
        .histogram_points()
        .iter()
        .filter(|p| {
            p.attributes.iter().any(|kv| {
                kv.key == key && kv.value.as_ref().and_then(|v| v.as_str()) == Some(value)
            })
        })
        .map(|p| p.count)
        .sum()
}

fn counter_total(metric: &Metric) -> i64 {
    use otlp_testkit::proto::metrics::v1::number_data_point::Value;
    metric
        .sum_points()
        .iter()
        .map(|p| match p.value {
            Some(Value::AsInt(v)) => v,
            _ => 0,
        })
        .sum()
}

/// The baggage a caller sends crosses the outbox (a database hop) with the
/// trace context: the published event carries both.
#[tokio::test]
async fn the_callers_baggage_crosses_the_outbox_to_the_published_event() {
    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let mut tap = EventTap::bind(&servers).await;
    let api = start(&receiver, &servers).await;
    let response = reqwest::Client::new()
        .post(format!("{}/games", api.base_url))
        .header(
            "traceparent",
            format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01"),
        )
        .header("baggage", "tenant=acme,campaign=winter%20league")
        .json(&game_body(4))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = tap.next().await;
    assert!(api.terminate().await.success());

    let traceparent = message.headers.get("traceparent").unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{CALLER_TRACE}-")),
        "{traceparent}"
    );
    let baggage = message.headers.get("baggage").map(String::as_str);
    let mut entries: Vec<&str> = baggage.unwrap_or_default().split(',').collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        ["campaign=winter%20league", "tenant=acme"],
        "baggage header: {baggage:?}"
    );
}

#[tokio::test]
async fn creating_a_game_is_one_trace_from_the_request_to_the_published_message() {
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let mut tap = EventTap::bind(&servers).await;
    let api = start(&receiver, &servers).await;
    let game = api.create_game().await;
    let message = tap.next().await;
    assert!(api.terminate().await.success());

    let server = receiver.wait_for_span("POST /games").await.unwrap();
    let producer_name = format!("send {}", servers.exchange);
    let trace = receiver
        .wait_for_condition("the producer span in the request's trace", |spans, _, _| {
            let trace: Vec<Span> = spans
                .iter()
                .filter(|s| s.trace_id() == server.trace_id())
                .cloned()
                .collect();
            trace
                .iter()
                .any(|s| s.name() == producer_name)
                .then_some(trace)
        })
        .await
        .unwrap();
    let trace = Trace { spans: trace };

    // The request.
    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(server.str_attr("http.request.method"), Some("POST"));
    assert_eq!(server.str_attr("http.route"), Some("/games"));
    assert_eq!(server.int_attr("http.response.status_code"), Some(201));
    assert_eq!(trace.roots().len(), 1, "{trace}");
    assert_eq!(trace.roots()[0].span_id(), server.span_id());

    // Its database calls, with placeholders and never values.
    let create = child(&trace, &server, "create");
    let insert = child(&trace, create, "INSERT games");
    assert_db_span(insert, "INSERT", Some("games"));
    let query = insert.str_attr("db.query.text").unwrap();
    assert!(query.contains("$1") && !query.contains("Catan"), "{query}");
    assert_db_span(
        child(&trace, create, "INSERT outbox"),
        "INSERT",
        Some("outbox"),
    );
    assert_db_span(child(&trace, create, "COMMIT"), "COMMIT", None);

    // The publish, after the commit, in the same trace.
    let producer = trace.find(&producer_name).unwrap();
    assert!(trace.descends_from(producer, &server), "{trace}");
    assert_eq!(producer.kind(), SpanKind::Producer);
    assert_eq!(producer.str_attr("messaging.system"), Some("rabbitmq"));
    assert_eq!(producer.str_attr("messaging.operation.type"), Some("send"));
    assert_eq!(
        producer.str_attr("messaging.destination.name"),
        Some(servers.exchange.as_str())
    );
    assert_eq!(
        producer.str_attr("messaging.rabbitmq.destination.routing_key"),
        Some("game.created")
    );
    assert_eq!(
        producer.str_attr("messaging.message.id"),
        message.message_id.as_deref()
    );
    assert!(
        producer.span.start_time_unix_nano
            >= child(&trace, create, "COMMIT").span.end_time_unix_nano,
        "published only after the commit"
    );

    // The message carries the producer span's context: the consumer will
    // continue this very trace.
    assert_eq!(message.body["game_id"], game.id.to_string());
    assert_eq!(
        message.headers.get("traceparent"),
        Some(&format!(
            "00-{}-{}-01",
            server.trace_id(),
            producer.span_id()
        ))
    );

    // The log line of the request carries its trace id.
    receiver
        .wait_for_log(&server.trace_id(), "game created")
        .await
        .unwrap();

    // And the metrics.
    let db = receiver
        .wait_for_metric("db.client.operation.duration")
        .await
        .unwrap();
    assert_eq!(db.unit(), "s");
    assert!(points_with(&db, "db.collection.name", "outbox") >= 1);
    let publish = receiver
        .wait_for_metric("messaging.client.operation.duration")
        .await
        .unwrap();
    assert_eq!(
        points_with(&publish, "messaging.destination.name", &servers.exchange),
        1
    );
    let created = receiver
        .wait_for_metric("gamenight.games.created")
        .await
        .unwrap();
    assert_eq!(counter_total(&created), 1);
    receiver
        .wait_for_metric("gamenight.outbox.backlog")
        .await
        .unwrap();
    receiver
        .wait_for_metric("http.server.request.duration")
        .await
        .unwrap();
}

#[tokio::test]
async fn reading_a_game_shows_a_cache_miss_then_a_hit() {
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let api = start(&receiver, &servers).await;
    let game = api.create_game().await;
    let client = reqwest::Client::new();
    let url = format!("{}/games/{}", api.base_url, game.id);
    for _ in 0..2 {
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    let joined = client
        .post(format!("{url}/participants"))
        .json(&serde_json::json!({"player": "grace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    assert!(api.terminate().await.success());

    let reads = receiver
        .wait_for_condition("two reads", |spans, _, _| {
            let reads: Vec<Span> = spans
                .iter()
                .filter(|s| s.name() == "GET /games/{id}")
                .cloned()
                .collect();
            (reads.len() == 2).then_some(reads)
        })
        .await
        .unwrap();
    let mut reads = reads;
    reads.sort_by_key(|s| s.span.start_time_unix_nano);
    let spans = receiver.spans();
    let trace_of = |span: &Span| Trace {
        spans: spans
            .iter()
            .filter(|s| s.trace_id() == span.trace_id())
            .cloned()
            .collect(),
    };

    let miss_trace = trace_of(&reads[0]);
    let lookup = child(&miss_trace, &reads[0], "GET");
    assert_eq!(lookup.kind(), SpanKind::Client);
    assert_eq!(lookup.str_attr("db.system.name"), Some("redis"));
    assert_eq!(lookup.str_attr("db.operation.name"), Some("GET"));
    assert_eq!(
        lookup.attr("cache.hit").and_then(|v| v.as_bool()),
        Some(false)
    );
    let find = child(&miss_trace, &reads[0], "find");
    assert_db_span(
        child(&miss_trace, find, "SELECT games"),
        "SELECT",
        Some("games"),
    );
    child(&miss_trace, &reads[0], "SET");

    let hit_trace = trace_of(&reads[1]);
    let lookup = child(&hit_trace, &reads[1], "GET");
    assert_eq!(
        lookup.attr("cache.hit").and_then(|v| v.as_bool()),
        Some(true)
    );
    // A hit does not touch PostgreSQL: no database span, whatever its name
    // or depth, as there was in the miss's trace.
    let postgres_spans = |trace: &Trace| {
        trace
            .spans
            .iter()
            .filter(|s| s.str_attr("db.system.name") == Some("postgresql"))
            .count()
    };
    assert!(postgres_spans(&miss_trace) > 0, "{miss_trace}");
    assert_eq!(postgres_spans(&hit_trace), 0, "{hit_trace}");

    let join = receiver
        .wait_for_span("POST /games/{id}/participants")
        .await
        .unwrap();
    let join_trace = trace_of(&join);
    // The invalidation: a tombstone in place of the cached game.
    child(&join_trace, &join, "SET");

    let cache = receiver
        .wait_for_metric("gamenight.cache.requests")
        .await
        .unwrap();
    let by_result = |result: &str| -> i64 {
        use otlp_testkit::proto::metrics::v1::number_data_point::Value;
        cache
            .sum_points()
            .iter()
            .filter(|p| {
                p.attributes.iter().any(|kv| {
                    kv.key == "result" && kv.value.as_ref().and_then(|v| v.as_str()) == Some(result)
                })
            })
            .map(|p| match p.value {
                Some(Value::AsInt(v)) => v,
                _ => 0,
            })
            .sum()
    };
    assert_eq!((by_result("miss"), by_result("hit")), (1, 1));
    let joins = receiver
        .wait_for_metric("gamenight.participants.joined")
        .await
        .unwrap();
    assert_eq!(counter_total(&joins), 1);
}

#[tokio::test]
async fn client_errors_are_not_span_errors_but_server_errors_are() {
    let receiver = Receiver::start().await.unwrap();
    let mut servers = Servers::fresh().await;
    let proxy = TcpProxy::for_url(&servers.database_url).await;
    servers.database_url = proxy.url(&servers.database_url);
    let api = start(&receiver, &servers).await;
    let client = reqwest::Client::new();

    let invalid = client
        .post(format!("{}/games", api.base_url))
        .json(&serde_json::json!({"title": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);

    proxy.cut();
    let failed = client
        .post(format!("{}/games", api.base_url))
        .json(&game_body(4))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503, "PostgreSQL away is a 503, not a bug");
    let body = failed.text().await.unwrap();
    assert!(
        !body.contains("127.0.0.1") && !body.contains("postgres"),
        "no internals: {body}"
    );
    assert!(api.terminate().await.success());

    let spans = receiver
        .wait_for_condition("both requests", |spans, _, _| {
            let posts: Vec<Span> = spans
                .iter()
                .filter(|s| s.name() == "POST /games")
                .cloned()
                .collect();
            (posts.len() == 2).then_some(posts)
        })
        .await
        .unwrap();
    let by_status = |status: i64| {
        spans
            .iter()
            .find(|s| s.int_attr("http.response.status_code") == Some(status))
            .unwrap()
    };
    assert!(!by_status(422).is_error(), "a 4xx is the client's mistake");
    let server_error = by_status(503);
    assert!(server_error.is_error());
    assert_eq!(server_error.str_attr("error.type"), Some("503"));
    receiver
        .wait_for_log(
            &server_error.trace_id(),
            "database unavailable; answered 503",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn outages_of_postgresql_and_redis_are_logged_without_servers_or_credentials() {
    const MARKER: &str = "pw-leak-marker-4c1e";
    let receiver = Receiver::start().await.unwrap();
    let mut servers = Servers::fresh().await;
    let database = TcpProxy::for_url(&servers.database_url).await;
    let redis = TcpProxy::for_url(&servers.redis_url).await;
    // The test server trusts local connections: any password is accepted.
    servers.database_url = database.url(&servers.database_url).replacen(
        "postgres@",
        &format!("postgres:{MARKER}@"),
        1,
    );
    assert!(servers.database_url.contains(MARKER));
    servers.redis_url = redis.url(&servers.redis_url);
    let api = start(&receiver, &servers).await;
    let game = api.create_game().await;
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("{}/games/{}", api.base_url, game.id))
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);

    redis.cut();
    assert_eq!(get().await.unwrap().status(), 200);
    database.cut();
    let mut bodies = Vec::new();
    for response in [
        get().await.unwrap(),
        client
            .post(format!("{}/games", api.base_url))
            .json(&game_body(4))
            .send()
            .await
            .unwrap(),
        client
            .get(format!("{}/readyz", api.base_url))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), 503);
        bodies.push(response.text().await.unwrap());
    }
    assert!(api.terminate().await.success());

    let logs = receiver
        .wait_for_condition("the outage logged", |_, _, logs| {
            let logged = |text: &str| logs.iter().any(|log| log.body_text().contains(text));
            (logged("Redis unreachable") && logged("database unavailable")).then(|| logs.to_vec())
        })
        .await
        .unwrap();
    let skipped = receiver
        .wait_for_condition("a read that skipped the cache", |spans, _, _| {
            spans
                .iter()
                .find(|s| {
                    s.name() == "GET /games/{id}"
                        && s.attr("gamenight.cache.skipped").and_then(|v| v.as_bool()) == Some(true)
                })
                .cloned()
        })
        .await
        .unwrap();
    assert!(
        receiver
            .trace(&skipped.trace_id())
            .children(&skipped)
            .iter()
            .all(|s| s.str_attr("db.system.name") != Some("redis")),
        "a skipped read sends Redis nothing"
    );
    let forbidden = [
        MARKER.to_owned(),
        format!(":{}", database.addr().port()),
        format!(":{}", redis.addr().port()),
        "postgres://".to_owned(),
        "redis://".to_owned(),
    ];
    for text in logs
        .iter()
        .map(|log| format!("{:?}", log.record))
        .chain(bodies)
    {
        for secret in &forbidden {
            assert!(!text.contains(secret.as_str()), "{secret:?} in {text}");
        }
    }
}

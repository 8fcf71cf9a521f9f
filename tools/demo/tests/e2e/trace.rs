//! The trace every user must see: one request, three services, one trace.

use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::{Span, Trace};

use crate::helpers::Running;

fn only<'t>(trace: &'t Trace, what: &str, pick: impl Fn(&Span) -> bool) -> &'t Span {
    let found: Vec<&Span> = trace.spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what} in\n{trace}");
    found[0]
}

fn assert_child(trace: &Trace, child: &Span, parent: &Span) {
    assert_eq!(
        trace.parent(child).map(Span::span_id),
        Some(parent.span_id()),
        "{:?} should be the child of {:?} in\n{trace}",
        child.name(),
        parent.name()
    );
}

#[tokio::test]
async fn creating_a_game_is_one_trace_across_api_worker_and_bot() {
    let running = Running::start(&[]).await;
    let names = running.stack.names.clone();
    let game = running.create_game(chrono::Duration::hours(3), 60).await;
    running
        .discord
        .wait_for_requests(1, std::time::Duration::from_secs(60))
        .await;
    let (receiver, discord) = running.stop().await;

    let request = receiver.wait_for_span("POST /games").await.unwrap();
    let trace = receiver.trace(&request.trace_id());
    assert_eq!(trace.roots().len(), 1, "{trace}");
    // Nothing special: with tail sampling, only the share may keep it.
    crate::sampling::assert_kept_only_by_the_share(&trace);
    assert_eq!(trace.roots()[0].span_id(), request.span_id());
    assert_eq!(request.service_name(), "api");
    assert_eq!(request.kind(), SpanKind::Server);

    // api: db spans, then the outbox publish.
    let insert = trace.find("INSERT games").unwrap();
    assert!(trace.descends_from(insert, &request));
    assert_eq!(insert.str_attr("db.system.name"), Some("postgresql"));
    let event_publish = only(&trace, "event PRODUCER", |s| {
        s.kind() == SpanKind::Producer
            && s.str_attr("messaging.rabbitmq.destination.routing_key") == Some("game.created")
    });
    assert_eq!(event_publish.service_name(), "api");
    assert!(trace.descends_from(event_publish, &request));
    assert_eq!(
        event_publish.name(),
        format!("send {}", names.events_exchange)
    );

    // worker: consumes as the producer's child, writes, publishes.
    let event_process = only(&trace, "event CONSUMER", |s| {
        s.kind() == SpanKind::Consumer && s.service_name() == "worker"
    });
    assert_child(&trace, event_process, event_publish);
    assert_eq!(event_process.str_attr("messaging.system"), Some("rabbitmq"));
    assert_eq!(
        event_process.str_attr("messaging.destination.subscription.name"),
        Some(names.worker_queue.as_str())
    );
    let notification_insert = trace
        .spans
        .iter()
        .find(|s| s.name() == "INSERT notifications")
        .unwrap();
    assert_eq!(notification_insert.service_name(), "worker");
    assert!(trace.descends_from(notification_insert, event_process));
    let notification_publish = only(&trace, "notification PRODUCER", |s| {
        s.kind() == SpanKind::Producer && s.service_name() == "worker"
    });
    assert!(trace.descends_from(notification_publish, event_process));
    assert_eq!(
        notification_publish.str_attr("messaging.rabbitmq.destination.routing_key"),
        Some("notification.announcement")
    );

    // bot: consumes as the worker producer's child, calls the api, posts.
    let notification_process = only(&trace, "notification CONSUMER", |s| {
        s.kind() == SpanKind::Consumer && s.service_name() == "bot"
    });
    assert_child(&trace, notification_process, notification_publish);
    let fetch = only(&trace, "bot→api CLIENT", |s| {
        s.kind() == SpanKind::Client && s.service_name() == "bot" && s.name() == "GET"
    });
    assert_child(&trace, fetch, notification_process);
    assert_eq!(fetch.int_attr("http.response.status_code"), Some(200));
    let game_read = only(&trace, "api GET SERVER", |s| s.name() == "GET /games/{id}");
    assert_child(&trace, game_read, fetch);
    assert_eq!(game_read.service_name(), "api");
    let cache = trace
        .children(game_read)
        .into_iter()
        .find(|s| s.str_attr("db.system.name") == Some("redis"))
        .unwrap_or_else(|| panic!("no redis span under GET /games/{{id}}\n{trace}"));
    assert_eq!(cache.kind(), SpanKind::Client);
    let webhook = only(&trace, "webhook CLIENT", |s| {
        s.kind() == SpanKind::Client && s.service_name() == "bot" && s.name() == "POST"
    });
    assert_child(&trace, webhook, notification_process);
    // `?wait=true`: Discord answers with the message it created.
    assert_eq!(webhook.int_attr("http.response.status_code"), Some(200));
    // The delivery is claimed before the post and recorded after it, in the
    // notification's trace.
    for statement in ["INSERT deliveries", "UPDATE deliveries"] {
        let span = only(&trace, statement, |s| {
            s.service_name() == "bot" && s.name() == statement
        });
        assert_child(&trace, span, notification_process);
    }
    let url = webhook.str_attr("url.full").unwrap();
    assert!(
        url.ends_with("/api/webhooks/{id}/{token}") && !url.contains("fake-token"),
        "{url}"
    );

    // The webhook got the message, and nothing of the trace: Discord is a
    // third party.
    let posted = discord.received();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].body["content"]
            .as_str()
            .unwrap()
            .contains("Catan night")
    );
    assert_eq!(posted[0].traceparent, None);
    assert_eq!(
        posted[0].body["embeds"][0]["title"], game["title"],
        "the message shows the game"
    );

    // The pipeline's metrics, from the services that own them.
    for (metric, service) in [
        ("messaging.client.operation.duration", "api"),
        ("messaging.process.duration", "worker"),
        ("gamenight.messages.processed", "worker"),
        ("gamenight.notifications.published", "worker"),
        ("gamenight.notifications.due", "worker"),
        ("gamenight.notifications.dead", "worker"),
        ("gamenight.dead_letters.depth", "worker"),
        ("gamenight.outbox.backlog", "api"),
        ("gamenight.outbox.set_aside", "api"),
        ("gamenight.notifications.delivered", "bot"),
        ("gamenight.notification.delivery_lag", "bot"),
    ] {
        receiver
            .wait_for_condition(&format!("{metric} from {service}"), |_, metrics, _| {
                metrics
                    .iter()
                    .find(|m| {
                        m.name() == metric
                            && m.resource.iter().any(|kv| {
                                kv.key == "service.name"
                                    && kv
                                        .value
                                        .as_ref()
                                        .and_then(otlp_testkit::AnyValueExt::as_str)
                                        == Some(service)
                            })
                    })
                    .cloned()
            })
            .await
            .unwrap();
    }

    // Log records from all three services carry the trace id.
    for (service, text) in [
        ("api", "game created"),
        ("worker", "event applied"),
        ("bot", "notification delivered to Discord"),
    ] {
        let log = receiver
            .wait_for_log(&request.trace_id(), text)
            .await
            .unwrap();
        assert_eq!(log.service_name(), service);
    }
}

#[tokio::test]
async fn a_reminder_starts_its_own_trace_linked_to_the_one_that_scheduled_it() {
    let running = Running::start(&[]).await;
    // Starts in 30 minutes, reminder an hour before: due at once.
    running.create_game(chrono::Duration::minutes(30), 60).await;
    running
        .discord
        .wait_for_requests(2, std::time::Duration::from_secs(60))
        .await;
    let (receiver, _) = running.stop().await;

    let request = receiver.wait_for_span("POST /games").await.unwrap();
    let reminder = receiver
        .wait_for_condition("the reminder's PRODUCER span", |spans, _, _| {
            spans
                .iter()
                .find(|s| {
                    s.kind() == SpanKind::Producer
                        && s.str_attr("messaging.rabbitmq.destination.routing_key")
                            == Some("notification.reminder")
                })
                .cloned()
        })
        .await
        .unwrap();
    assert_eq!(reminder.kind(), SpanKind::Producer);
    assert_ne!(
        reminder.trace_id(),
        request.trace_id(),
        "a reminder is a trace of its own"
    );
    assert_eq!(reminder.parent_span_id(), None);
    assert_eq!(
        reminder.linked_trace_ids(),
        [request.trace_id()],
        "linked to the request that scheduled it"
    );
    // The bot's delivery of the reminder continues the reminder's trace.
    let delivery = receiver
        .wait_for_condition("the bot's reminder delivery", |spans, _, _| {
            spans
                .iter()
                .find(|s| {
                    s.kind() == SpanKind::Consumer
                        && s.service_name() == "bot"
                        && s.trace_id() == reminder.trace_id()
                })
                .cloned()
        })
        .await
        .unwrap();
    assert_eq!(delivery.parent_span_id(), Some(reminder.span_id()));
}

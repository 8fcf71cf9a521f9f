//! Each fault switch, turned on, shows where RUNTIME_CONFIG.md says it
//! does: the span it acts in, with its status, a `fault injected` event and
//! a `fault.switch` attribute naming the switch, and the same line as a log
//! record in the trace.

use std::time::Duration;

use otlp_testkit::proto::trace::v1::span::SpanKind;
use otlp_testkit::pyroscope::PyroscopeReceiver;
use otlp_testkit::{AnyValueExt, Span};

use crate::helpers::Running;
use crate::sampling;

/// The `fault injected` event on `span` names `switch`, so does the span's
/// own `fault.switch` (what tail sampling reads), and the log record of it
/// is in the span's trace.
async fn reported(running: &Running, span: &Span, switch: &str) {
    assert_eq!(
        span.event_str_attrs("fault.switch"),
        [switch],
        "{span:?}: {:?}",
        span.event_names()
    );
    assert_eq!(span.str_attr("fault.switch"), Some(switch), "{span:?}");
    let log = running
        .receiver
        .wait_for_log(&span.trace_id(), "fault injected")
        .await
        .unwrap();
    assert_eq!(
        log.attr("fault.switch").and_then(AnyValueExt::as_str),
        Some(switch)
    );
}

/// The bot's `wait for discord` span for `reason` in `trace_id`: the trace
/// of a notification that waited shows the wait.
async fn waited(running: &Running, trace_id: &str, reason: &str) -> Span {
    running
        .receiver
        .wait_for_span_where(&format!("a {reason} wait in {trace_id}"), |s| {
            s.trace_id() == trace_id
                && s.service_name() == "bot"
                && s.name() == "wait for discord"
                && s.str_attr("gamenight.discord.wait.reason") == Some(reason)
        })
        .await
        .unwrap()
}

/// The bot's webhook call, the first to answer `status`.
async fn webhook_call(running: &Running, status: i64) -> Span {
    running
        .receiver
        .wait_for_span_where(&format!("the bot's webhook call answered {status}"), |s| {
            s.service_name() == "bot"
                && s.kind() == SpanKind::Client
                && s.name() == "POST"
                && s.int_attr("http.response.status_code") == Some(status)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failing_webhook_is_a_503_retried_and_nothing_is_posted() {
    let running = Running::start(&[
        ("FAULT_WEBHOOK_FAILURE_PERCENT", "100"),
        ("BOT_RETRY_BACKOFF_MS", "50"),
    ])
    .await;
    running.create_game(chrono::Duration::days(2), 60).await;
    let call = webhook_call(&running, 503).await;
    assert!(call.is_error());
    assert_eq!(call.str_attr("error.type"), Some("503"));
    sampling::assert_kept_by(&running.receiver.trace(&call.trace_id()), "errors");
    reported(&running, &call, "FAULT_WEBHOOK_FAILURE_PERCENT").await;
    // Retried: a second faulted call for the same notification.
    running
        .receiver
        .wait_for_condition("a retry of the webhook call", |spans, _, _| {
            (spans
                .iter()
                .filter(|s| {
                    s.service_name() == "bot"
                        && s.int_attr("http.response.status_code") == Some(503)
                })
                .count()
                >= 2)
                .then_some(())
        })
        .await
        .unwrap();
    // Three in a row open the breaker: the next tries wait for it.
    waited(&running, &call.trace_id(), "outage").await;
    let (_, discord) = running.stop().await;
    assert!(
        discord.received().is_empty(),
        "a faulted post reached Discord"
    );
}

#[tokio::test]
async fn a_rate_limited_webhook_is_a_429_waited_out() {
    let running = Running::start(&[("FAULT_WEBHOOK_RATE_LIMIT_PERCENT", "100")]).await;
    running.create_game(chrono::Duration::days(2), 60).await;
    let call = webhook_call(&running, 429).await;
    assert!(call.is_error());
    reported(&running, &call, "FAULT_WEBHOOK_RATE_LIMIT_PERCENT").await;
    let wait = waited(&running, &call.trace_id(), "rate_limit").await;
    assert!(
        wait.duration_micros() >= 900_000,
        "the Retry-After of 1 s: {} µs",
        wait.duration_micros()
    );
    running.stop().await;
}

#[tokio::test]
async fn an_api_call_timing_out_is_a_get_with_no_answer_after_the_timeout() {
    let running = Running::start(&[("FAULT_API_TIMEOUT_PERCENT", "100")]).await;
    running.create_game(chrono::Duration::days(2), 60).await;
    let call = running
        .receiver
        .wait_for_span_where("the bot's timed-out call to the api", |s| {
            s.service_name() == "bot"
                && s.kind() == SpanKind::Client
                && s.name() == "GET"
                && s.str_attr("error.type") == Some("timeout")
        })
        .await
        .unwrap();
    assert!(call.is_error());
    assert!(
        call.duration_micros() >= 10_000_000,
        "{}",
        call.duration_micros()
    );
    assert_eq!(call.int_attr("http.response.status_code"), None);
    reported(&running, &call, "FAULT_API_TIMEOUT_PERCENT").await;
    running.stop().await;
}

#[tokio::test]
async fn a_slow_query_is_a_long_database_span_under_the_request() {
    let running = Running::start(&[("FAULT_DB_DELAY_MS", "300")]).await;
    let game = running.create_game(chrono::Duration::days(2), 60).await;
    let url = running.game_url(&game);
    assert_eq!(running.client.get(&url).send().await.unwrap().status(), 200);
    let query = running
        .receiver
        .wait_for_span_where("the delayed SELECT games", |s| {
            s.name() == "SELECT games" && !s.event_str_attrs("fault.switch").is_empty()
        })
        .await
        .unwrap();
    assert!(
        query.duration_micros() >= 300_000,
        "{}",
        query.duration_micros()
    );
    assert!(!query.is_error(), "slow, not failed");
    reported(&running, &query, "FAULT_DB_DELAY_MS").await;
    let request = running
        .receiver
        .wait_for_span("GET /games/{id}")
        .await
        .unwrap();
    assert_eq!(request.trace_id(), query.trace_id());
    // Neither failed nor over a second: only the switch's mark keeps it.
    let trace = running.receiver.trace(&request.trace_id());
    assert_eq!(sampling::kept_by(&trace), ["fault-switches"], "{trace}");
    running.stop().await;
}

/// TESTING_PHASE8's walk: a slow trace, its span's own flame graph, and the
/// function that burnt the time.
#[tokio::test]
async fn a_cpu_burn_is_the_widest_frame_of_the_slow_requests_own_flame_graph() {
    let pyroscope = PyroscopeReceiver::start().await.unwrap();
    let running = Running::start(&[
        ("FAULT_CPU_BURN_PERCENT", "100"),
        ("FAULT_CPU_BURN_MS", "300"),
        ("PYROSCOPE_SERVER_ADDRESS", &pyroscope.url()),
    ])
    .await;
    // The profiler reports every 10 s, at moments this test does not know,
    // and a burn across one loses samples two ways: those taken before it
    // arrive in one push and the rest 10 s later (the wait below returns
    // the first), and those taken while the report is built are dropped
    // (pprof-rs resolves their symbols under the lock its signal handler
    // needs: the first time, in a debug build, for seconds). So the
    // request is sent right after a push has arrived, and burns between
    // two reports. The guide's reader, looking at one slow request among
    // many, has the same luck most of the time.
    let url = format!("{}/games", running.stack.api_url);
    assert_eq!(running.client.get(&url).send().await.unwrap().status(), 200);
    pyroscope
        .wait_for_pushes(pyroscope.pushes() + 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(running.client.get(&url).send().await.unwrap().status(), 200);
    // The trace: a slow request whose time is in no child span.
    let burning = |s: &Span| s.name() == "GET /games" && s.str_attr("fault.switch").is_some();
    for _ in 0..200 {
        if running
            .receiver
            .spans()
            .iter()
            .filter(|s| burning(s))
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = running
        .receiver
        .spans()
        .into_iter()
        .filter(burning)
        .max_by_key(|s| s.span.start_time_unix_nano)
        .unwrap();
    reported(&running, &request, "FAULT_CPU_BURN_PERCENT").await;
    assert!(
        request.duration_micros() >= 300_000,
        "{}",
        request.duration_micros()
    );
    // The link Grafana follows to the span's flame graph.
    let span_id = request.span_id();
    assert_eq!(
        request.str_attr("pyroscope.profile.id"),
        Some(span_id.as_str())
    );
    // The api pushes every 10 s.
    let own = pyroscope
        .wait_for_samples(
            "samples labelled with the burning request's span id",
            |s| s.labels.get("span_id") == Some(&span_id),
            Duration::from_secs(25),
        )
        .await
        .unwrap_or_else(|err| {
            let samples = pyroscope.samples();
            let burning: Vec<_> = samples.iter().filter(|s| s.has_frame("burn_cpu")).collect();
            panic!(
                "{err}: {} pushes, {} samples, {} in burn_cpu (labels {:?}), span {span_id}, rejected {:?}",
                pyroscope.pushes(),
                samples.len(),
                burning.len(),
                burning.iter().map(|s| &s.labels).collect::<Vec<_>>(),
                pyroscope.rejected(),
            )
        });
    let cpu_ms = |samples: &[&otlp_testkit::pyroscope::ProfileSample]| {
        samples.iter().map(|s| s.value).sum::<i64>() / 1_000_000
    };
    let own: Vec<_> = own.iter().collect();
    let burning: Vec<_> = own
        .iter()
        .copied()
        .filter(|s| s.has_frame("faults::burn_cpu"))
        .collect();
    assert!(
        own.iter()
            .all(|s| s.series.get("service_name").map(String::as_str) == Some("api"))
    );
    // 300 ms burnt at the default 49 Hz (about 14 samples), all but the
    // first period or two labelled.
    assert!(
        cpu_ms(&own) >= 150,
        "{} ms sampled in the span",
        cpu_ms(&own)
    );
    assert!(
        cpu_ms(&burning) * 10 >= cpu_ms(&own) * 8,
        "burn_cpu is {} of the span's {} ms",
        cpu_ms(&burning),
        cpu_ms(&own)
    );
    running.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_by_the_worker_in_the_requests_trace() {
    let running = Running::start(&[("FAULT_POISON_PERCENT", "100")]).await;
    running.create_game(chrono::Duration::days(2), 60).await;
    let request = running.receiver.wait_for_span("POST /games").await.unwrap();
    // Reported inside the request, where the event went to the outbox.
    let poisoned = running
        .receiver
        .wait_for_span_where("the api span that wrote the poison", |s| {
            s.service_name() == "api" && !s.event_str_attrs("fault.switch").is_empty()
        })
        .await
        .unwrap();
    assert_eq!(poisoned.trace_id(), request.trace_id());
    reported(&running, &poisoned, "FAULT_POISON_PERCENT").await;
    // The worker refuses it, in the same trace: an error and its reason.
    let dead_letter = running
        .receiver
        .wait_for_log(&request.trace_id(), "dead-lettering message")
        .await
        .unwrap();
    assert_eq!(dead_letter.service_name(), "worker");
    let consumer = running
        .receiver
        .wait_for_span_where("the dead-lettered CONSUMER span", |s| {
            s.trace_id() == request.trace_id() && s.str_attr("error.type") == Some("dead_lettered")
        })
        .await
        .unwrap();
    assert_eq!(consumer.kind(), SpanKind::Consumer);
    sampling::assert_kept_by(&running.receiver.trace(&request.trace_id()), "dead-letters");
    running.stop().await;
}

//! The check against stand-ins of the local backends and of Grafana
//! Cloud's: what it reports for a healthy stack, and the cause it gives for
//! each way telemetry goes missing.

#![allow(clippy::unwrap_used)]

mod support;

use check_telemetry::{Answer, Failure};
use support::{Data, StandIns, TOKEN, now_ms};

/// The report's line for `source` in the section of `signal`.
fn line<'a>(text: &'a str, signal: &str, source: &str) -> &'a str {
    let section = text
        .split("\n\n")
        .find(|section| section.starts_with(&format!("{signal} (")))
        .unwrap_or_else(|| panic!("no {signal} section in\n{text}"));
    section
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(source))
        .unwrap_or_else(|| panic!("no {source} line in\n{section}"))
}

#[tokio::test]
async fn a_healthy_local_stack_has_everything_arrived() {
    let (report, text) = StandIns::local(Data::healthy()).await.check().await;
    assert!(report.all_arrived(), "{text}");
    for service in check_telemetry::SERVICES {
        for signal in ["traces", "metrics", "logs", "profiles"] {
            assert!(line(&text, signal, service).starts_with("  ✓"), "{text}");
        }
    }
    assert_eq!(line(&text, "profiles", "api"), "  ✓ api       CPU profiles");
    assert_eq!(
        line(&text, "traces", "bot"),
        "  ✓ bot       e.g. trace 4bf92f3577b34da6a3ce929d0e0e4736 (api: POST /games)"
    );
    assert_eq!(line(&text, "logs", "worker"), "  ✓ worker    12 log lines");
    assert_eq!(
        line(&text, "metrics", "postgres"),
        "  ✓ postgres  8 of 8 series the dashboards use"
    );
    assert!(text.ends_with("Everything arrived.\n"), "{text}");
}

#[tokio::test]
async fn a_healthy_grafana_cloud_stack_is_asked_with_each_backends_instance_id() {
    let (report, text) = StandIns::cloud(Data::healthy()).await.check().await;
    assert!(report.all_arrived(), "{text}");
    assert!(line(&text, "profiles", "bot").starts_with("  ✓"), "{text}");
    assert!(!text.contains(TOKEN));
}

#[tokio::test]
async fn a_wrong_instance_id_is_named_with_its_variable() {
    let stand_ins = StandIns::cloud(Data::healthy())
        .await
        // The OTLP instance ID where Tempo's belongs: the classic mix-up.
        .set("GRAFANA_CLOUD_TEMPO_INSTANCE_ID", "123456");
    let (report, text) = stand_ins.check().await;
    assert!(!report.all_arrived());
    match report.answer("traces").unwrap() {
        Answer::Failed { failure, cause } => {
            assert_eq!(
                failure,
                &Failure::Status {
                    status: 401,
                    message: "invalid authentication credentials".to_owned()
                }
            );
            assert!(
                cause.contains("refused user 123456 (GRAFANA_CLOUD_TEMPO_INSTANCE_ID)"),
                "{cause}"
            );
            assert!(cause.contains("traces:read"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    // The other backends still answer, and all is well there.
    assert!(line(&text, "metrics", "bot").starts_with("  ✓"), "{text}");
    assert!(line(&text, "logs", "bot").starts_with("  ✓"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn a_wrong_token_is_refused_by_every_backend() {
    let (_, text) = StandIns::cloud(Data::healthy())
        .await
        .set("GRAFANA_CLOUD_API_TOKEN", "glc_an_expired_token")
        .check()
        .await;
    assert_eq!(
        text.matches("✗ 401 Unauthorized: invalid authentication credentials")
            .count(),
        4,
        "{text}"
    );
    for scope in ["traces:read", "metrics:read", "logs:read", "profiles:read"] {
        assert!(text.contains(scope), "{text}");
    }
    assert!(!text.contains("glc_an_expired_token"), "{text}");
}

#[tokio::test]
async fn credentials_missing_for_a_backend_that_wants_them_are_asked_for() {
    let (_, text) = StandIns::cloud(Data::healthy())
        .await
        .set("GRAFANA_CLOUD_LOKI_INSTANCE_ID", "")
        .check()
        .await;
    assert!(
        text.contains("Loki wants credentials: set GRAFANA_CLOUD_LOKI_INSTANCE_ID"),
        "{text}"
    );
}

#[tokio::test]
async fn a_series_the_keep_list_drops_is_named_with_its_keep_list() {
    let data = Data::healthy().without_series("pg_stat_database_deadlocks");
    let (report, text) = StandIns::local(data).await.check().await;
    assert!(!report.all_arrived());
    let postgres = line(&text, "metrics", "postgres");
    assert_eq!(
        postgres,
        "  ✗ postgres  7 of 8 series: missing pg_stat_database_deadlocks"
    );
    assert!(
        text.contains(
            "→ config.alloy's keep-list, prometheus.relabel \"postgres\", does not keep it"
        ),
        "{text}"
    );
    // Nothing else is blamed.
    assert_eq!(text.matches('✗').count(), 1, "{text}");
}

#[tokio::test]
async fn a_scraped_source_missing_alone_points_at_its_scrape() {
    let mut data = Data::healthy();
    data.series
        .retain(|labels| !labels["__name__"].starts_with("redis_"));
    let (_, text) = StandIns::local(data).await.check().await;
    assert_eq!(
        line(&text, "metrics", "redis"),
        "  ✗ redis     none of the 8 series the dashboards use"
    );
    assert!(text.contains("prometheus.scrape \"redis\" fails"), "{text}");
}

#[tokio::test]
async fn no_scraped_series_while_otlp_metrics_arrive_means_no_remote_write() {
    let mut data = Data::healthy();
    data.series.retain(|labels| {
        labels
            .get("job")
            .is_some_and(|job| job.starts_with("gamenight/"))
    });
    let (_, text) = StandIns::local(data).await.check().await;
    assert!(
        text.contains("Alloy's remote write does not reach this Prometheus"),
        "{text}"
    );
    assert!(line(&text, "metrics", "api").starts_with("  ✓"), "{text}");
    assert_eq!(
        text.matches('✗').count(),
        4,
        "one per scraped source\n{text}"
    );
}

#[tokio::test]
async fn a_service_that_sent_nothing_is_not_running() {
    let (_, text) = StandIns::local(Data::healthy().without_service("bot"))
        .await
        .check()
        .await;
    // Another application's bot has profiles in the same Pyroscope: they
    // are not this bot's.
    for signal in ["traces", "metrics", "logs", "profiles"] {
        assert!(line(&text, signal, "bot").starts_with("  ✗"), "{text}");
    }
    assert!(
        text.contains("bot sent nothing that arrived: it is not running"),
        "{text}"
    );
    assert!(line(&text, "traces", "worker").starts_with("  ✓"), "{text}");
}

#[tokio::test]
async fn a_service_with_metrics_but_no_traces_is_idle_not_down() {
    let mut data = Data::healthy();
    data.without_traces_of("worker");
    data.log_lines.remove("worker");
    let (_, text) = StandIns::local(data).await.check().await;
    assert_eq!(line(&text, "traces", "worker"), "  ✗ worker    no traces");
    assert!(
        text.contains(
            "worker runs (its metrics and profiles arrive), but no trace has a span of it"
        ),
        "{text}"
    );
    assert!(
        text.contains("worker runs (its metrics and profiles arrive), but logged nothing"),
        "{text}"
    );
}

/// With tail sampling, a quiet service may have no kept trace in the
/// window: that is not a failure, and the report says traces are sampled.
#[tokio::test]
async fn a_running_service_with_no_kept_trace_is_not_missing_when_traces_are_sampled() {
    let mut data = Data::healthy();
    data.without_traces_of("worker");
    let (report, text) = StandIns::local(data)
        .await
        .set("TRACE_SAMPLING_PERCENT", "10")
        .check()
        .await;
    assert!(report.all_arrived(), "{text}");
    assert_eq!(
        line(&text, "traces", "worker"),
        "  ✓ worker    no trace kept in 10 minutes; it runs, and its traces are sampled"
    );
    assert!(
        text.contains("Traces are sampled: Alloy keeps every trace with an error")
            && text.contains("and 10 % of the rest"),
        "{text}"
    );
    // A service that sent nothing at all is still missing.
    let (report, text) = StandIns::local(Data::healthy().without_service("bot"))
        .await
        .set("TRACE_SAMPLING_PERCENT", "10")
        .check()
        .await;
    assert!(!report.all_arrived(), "{text}");
    assert!(line(&text, "traces", "bot").starts_with("  ✗"), "{text}");
}

#[tokio::test]
async fn nothing_from_the_services_while_scrapes_arrive_points_at_alloys_otlp_export() {
    // What a wrong GRAFANA_CLOUD_OTLP_INSTANCE_ID looks like from the
    // backends: Alloy's remote write works, its OTLP export does not.
    let mut data = Data::healthy();
    for service in check_telemetry::SERVICES {
        data = data.without_service(service);
    }
    let (_, text) = StandIns::cloud(data).await.check().await;
    assert!(
        text.contains("so its OTLP export fails (GRAFANA_CLOUD_OTLP_ENDPOINT and GRAFANA_CLOUD_OTLP_INSTANCE_ID"),
        "{text}"
    );
    // Said once, not once per service and signal.
    assert!(!text.contains("sent nothing that arrived"), "{text}");
    assert!(line(&text, "metrics", "alloy").starts_with("  ✓"), "{text}");
}

#[tokio::test]
async fn a_wrong_url_and_a_stopped_backend_are_told_apart() {
    // A port that was just free: nothing listens there.
    let stopped = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let stand_ins = StandIns::cloud(Data::healthy()).await;
    // Tempo's URL without the /tempo Grafana Cloud puts it under.
    let tempo = stand_ins.env["GRAFANA_CLOUD_TEMPO_URL"]
        .trim_end_matches("/tempo")
        .to_owned();
    let (_, text) = stand_ins
        .set("GRAFANA_CLOUD_TEMPO_URL", &tempo)
        .set("GRAFANA_CLOUD_LOKI_URL", &stopped)
        .check()
        .await;
    assert!(text.contains("✗ 404 Not Found"), "{text}");
    assert!(
        text.contains(
            "GRAFANA_CLOUD_TEMPO_URL is wrong (Grafana Cloud: Tempo's URL ends in /tempo"
        ),
        "{text}"
    );
    assert!(text.contains("✗ unreachable: Connection refused"), "{text}");
    assert!(
        text.contains("The stack is not up, or GRAFANA_CLOUD_LOKI_URL is wrong"),
        "{text}"
    );
}

/// The stand-ins are only worth their answers if they refuse what the real
/// APIs refuse.
#[tokio::test]
async fn the_stand_ins_reject_malformed_queries_with_the_backends_error_bodies() {
    let stand_ins = StandIns::local(Data::healthy()).await;
    let get = |url: String| async move {
        let response = reqwest::get(url).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let tempo = &stand_ins.env["GRAFANA_CLOUD_TEMPO_URL"];
    let (status, body) = get(format!(
        "{tempo}/api/search?q=%7B%20resource.service.name%20%3D%20%7D"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("invalid TraceQL query: parse error"),
        "{body}"
    );

    let prometheus = stand_ins.env["GRAFANA_CLOUD_PROMETHEUS_URL"]
        .trim_end_matches("/api/v1/write")
        .to_owned();
    let (status, body) = get(format!(
        "{prometheus}/api/v1/series?match[]=target_info%7Bjob%3D"
    ))
    .await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errorType"], "bad_data");

    let loki = &stand_ins.env["GRAFANA_CLOUD_LOKI_URL"];
    let (status, body) = get(format!(
        "{loki}/loki/api/v1/query?query=count_over_time(%7Bservice_name%3D%22api%22%7D)"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(body.starts_with("parse error"), "{body}");
}

#[tokio::test]
async fn a_service_whose_profiles_alone_are_missing_has_profiling_off_or_failing() {
    let data = Data::healthy().without_profiles_of("worker");
    let (report, text) = StandIns::local(data).await.check().await;
    assert!(!report.all_arrived(), "{text}");
    assert_eq!(
        line(&text, "profiles", "worker"),
        "  ✗ worker    no profiles"
    );
    assert!(
        text.contains(
            "worker runs (its traces, metrics and logs arrive), but none of its profiles arrived in 10 minutes: its PYROSCOPE_SERVER_ADDRESS is unset"
        ),
        "{text}"
    );
    assert!(line(&text, "profiles", "api").starts_with("  ✓"), "{text}");
    assert_eq!(text.matches('✗').count(), 1, "{text}");
}

#[tokio::test]
async fn profiles_older_than_the_window_do_not_count() {
    let mut data = Data::healthy().without_profiles_of("api");
    data.add_profiles("api", "gamenight", check_telemetry::CPU_PROFILE_TYPE);
    data.profiles.last_mut().unwrap().1 = now_ms() - 20 * 60_000;
    let (_, text) = StandIns::local(data).await.check().await;
    assert_eq!(line(&text, "profiles", "api"), "  ✗ api       no profiles");
}

#[tokio::test]
async fn no_profiles_from_any_service_is_said_once_with_its_causes() {
    let mut data = Data::healthy();
    for service in check_telemetry::SERVICES {
        data = data.without_profiles_of(service);
    }
    let (report, text) = StandIns::local(data).await.check().await;
    assert!(!report.all_arrived(), "{text}");
    for service in check_telemetry::SERVICES {
        assert!(
            line(&text, "profiles", service).starts_with("  ✗"),
            "{text}"
        );
    }
    assert_eq!(
        text.matches("No profiles from any service, while their OTLP telemetry arrives: profiling is off (PYROSCOPE_SERVER_ADDRESS unset")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("pyroscope.write \"default\" in Alloy's UI"),
        "{text}"
    );
    assert!(!text.contains("none of its profiles arrived"), "{text}");
}

#[tokio::test]
async fn profiles_of_other_types_only_are_not_the_cpu_profiles_grafana_asks_for() {
    let mut data = Data::healthy().without_profiles_of("bot");
    data.add_profiles("bot", "gamenight", "memory:inuse_space:bytes:space:bytes");
    let (report, text) = StandIns::local(data).await.check().await;
    assert!(!report.all_arrived(), "{text}");
    assert_eq!(
        line(&text, "profiles", "bot"),
        "  ✗ bot       profiles, but none of type process_cpu:cpu:nanoseconds:cpu:nanoseconds: only memory:inuse_space:bytes:space:bytes"
    );
    assert!(
        text.contains(
            "bot runs and its profiles arrive, but not of the type Grafana's traces-to-profiles"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn profiles_arriving_while_nothing_comes_over_otlp_point_at_alloys_otlp_export() {
    let mut data = Data::healthy();
    data.traces.clear();
    data.log_lines.clear();
    data.series
        .retain(|labels| labels["__name__"] != "target_info");
    let (_, text) = StandIns::local(data).await.check().await;
    assert!(
        text.contains("Nothing from api, worker or bot over OTLP (traces, metrics, logs), while their profiles arrive: they run and reach Alloy, so Alloy's OTLP export fails"),
        "{text}"
    );
    // Said once, not per service and signal.
    assert!(!text.contains("runs (its profiles arrive)"), "{text}");
    assert!(!text.contains("in any signal"), "{text}");
    assert!(line(&text, "profiles", "api").starts_with("  ✓"), "{text}");
}

/// The Pyroscope answer replaced by `status` and `body`, in Grafana Cloud's
/// shape; the report, and its text.
async fn pyroscope_answering(status: u16, body: &str) -> (check_telemetry::Report, String) {
    let mut data = Data::healthy();
    data.pyroscope_answer = Some((status, body.to_owned()));
    StandIns::cloud(data).await.check().await
}

fn profiles_failure(report: &check_telemetry::Report) -> (&Failure, &str) {
    match report.answer("profiles").unwrap() {
        Answer::Failed { failure, cause } => (failure, cause),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pyroscope_error_statuses_are_reported_with_their_connect_message() {
    let (report, text) = pyroscope_answering(
        503,
        r#"{"code":"unavailable","message":"too many unhealthy instances in the ring"}"#,
    )
    .await;
    assert!(!report.all_arrived());
    let (failure, cause) = profiles_failure(&report);
    assert_eq!(
        failure,
        &Failure::Status {
            status: 503,
            message: "too many unhealthy instances in the ring (unavailable)".to_owned()
        }
    );
    assert!(
        cause.starts_with("Pyroscope is failing, or still starting"),
        "{cause}"
    );
    assert!(
        text.contains(
            "  ✗ 503 Service Unavailable: too many unhealthy instances in the ring (unavailable)"
        ),
        "{text}"
    );
    // The other backends still answer.
    assert!(line(&text, "traces", "api").starts_with("  ✓"), "{text}");

    let (report, _) = pyroscope_answering(
        429,
        r#"{"code":"resource_exhausted","message":"too many outstanding requests"}"#,
    )
    .await;
    let (_, cause) = profiles_failure(&report);
    assert_eq!(
        cause,
        "Pyroscope is throttling requests: try again in a minute."
    );
}

#[tokio::test]
async fn a_wrong_profiles_instance_id_is_named_with_its_variable_and_scope() {
    let (report, text) = StandIns::cloud(Data::healthy())
        .await
        // Prometheus' instance ID where Pyroscope's belongs.
        .set("GRAFANA_CLOUD_PROFILES_INSTANCE_ID", "302")
        .check()
        .await;
    let (failure, cause) = profiles_failure(&report);
    assert_eq!(
        failure,
        &Failure::Status {
            status: 401,
            message: "invalid authentication credentials".to_owned()
        }
    );
    assert!(
        cause.contains("Pyroscope refused user 302 (GRAFANA_CLOUD_PROFILES_INSTANCE_ID)"),
        "{cause}"
    );
    assert!(cause.contains("profiles:read"), "{cause}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn a_wrong_profiles_url_and_a_stopped_pyroscope_are_told_apart() {
    let stand_ins = StandIns::cloud(Data::healthy()).await;
    // A path below the host: Grafana Cloud's Profiles URL is the host alone.
    let wrong = format!("{}/pyroscope", stand_ins.env["GRAFANA_CLOUD_PROFILES_URL"]);
    let (report, _) = stand_ins
        .set("GRAFANA_CLOUD_PROFILES_URL", &wrong)
        .check()
        .await;
    let (failure, cause) = profiles_failure(&report);
    assert!(
        matches!(failure, Failure::Status { status: 404, .. }),
        "{failure:?}"
    );
    assert!(
        cause.contains("GRAFANA_CLOUD_PROFILES_URL is wrong (Grafana Cloud: Tempo's URL ends in /tempo, Loki's and Pyroscope's are their host alone"),
        "{cause}"
    );

    let stopped = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let (report, text) = StandIns::local(Data::healthy())
        .await
        .set("GRAFANA_CLOUD_PROFILES_URL", &stopped)
        .check()
        .await;
    let (failure, cause) = profiles_failure(&report);
    assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
    assert!(
        cause.starts_with("The stack is not up, or GRAFANA_CLOUD_PROFILES_URL is wrong"),
        "{cause}"
    );
    assert!(
        text.contains(&format!("profiles (Pyroscope at {stopped})")),
        "{text}"
    );
}

#[tokio::test]
async fn an_answer_that_is_not_pyroscopes_is_named() {
    // Grafana's login page, say, where Pyroscope was expected.
    let (report, _) = pyroscope_answering(200, "<!doctype html><title>Grafana</title>").await;
    let (failure, cause) = profiles_failure(&report);
    assert!(
        matches!(failure, Failure::Unexpected(text) if text.contains("<!doctype html>")),
        "{failure:?}"
    );
    assert_eq!(
        cause,
        "The answer is not Pyroscope's: does GRAFANA_CLOUD_PROFILES_URL point at Pyroscope?"
    );
    // A series without the labels asked for is not Pyroscope's answer either.
    let (report, _) = pyroscope_answering(
        200,
        r#"{"labelsSet":[{"labels":[{"name":"service_name","value":"api"}]}]}"#,
    )
    .await;
    assert!(
        matches!(profiles_failure(&report).0, Failure::Unexpected(text) if text.contains("__profile_type__")),
        "{report:?}"
    );
}

#[tokio::test]
async fn the_token_is_never_shown_even_when_pyroscope_echoes_it() {
    let (report, text) = pyroscope_answering(
        500,
        &format!(r#"{{"code":"internal","message":"bad basic auth 304:{TOKEN}"}}"#),
    )
    .await;
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(
        profiles_failure(&report).0,
        &Failure::Status {
            status: 500,
            message: "bad basic auth 304:<token> (internal)".to_owned()
        }
    );
}

/// Pyroscope's stand-in refuses what the real Connect API refuses, and
/// finds only what has profiles in the window, in milliseconds.
#[tokio::test]
async fn the_pyroscope_stand_in_answers_as_pyroscopes_connect_api() {
    let stand_ins = StandIns::local(Data::healthy()).await;
    let url = format!(
        "{}/querier.v1.QuerierService/Series",
        stand_ins.env["GRAFANA_CLOUD_PROFILES_URL"]
    );
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let now = now_ms();
    let (status, body) = post(serde_json::json!({"labelNames": ["service_name"]})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_argument");
    assert_eq!(body["message"], "missing time range in the query");

    let (status, body) = post(serde_json::json!({
        "matchers": ["{service_name=}"], "start": now - 60_000, "end": now,
    }))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_argument");

    // Seconds where milliseconds belong: a window in 1970, nothing in it.
    let (status, body) = post(serde_json::json!({
        "start": (now - 600_000) / 1000, "end": now / 1000,
    }))
    .await;
    assert_eq!((status, body), (200, serde_json::json!({})));

    // Int64 fields as strings, label names by their proto name: both are
    // protobuf JSON.
    let (status, body) = post(serde_json::json!({
        "matchers": [check_telemetry::profiles_selector()],
        "label_names": ["service_name"],
        "start": (now - 600_000).to_string(), "end": now.to_string(),
    }))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["labelsSet"].as_array().unwrap().len(), 3, "{body}");

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let text = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);
}

/// The README shows the selector the check asks Pyroscope with, for
/// readers to paste into Explore (testing/stack-tests holds the other three
/// questions to the README).
#[test]
fn the_readme_shows_the_pyroscope_selector_the_check_asks() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = format!(
        "```pyroscope\n{}\n```",
        check_telemetry::profiles_selector()
    );
    assert!(readme.contains(&block), "README.md lacks\n{block}");
    assert!(
        readme.contains(&format!(
            "profile type `{}`",
            check_telemetry::CPU_PROFILE_TYPE
        )),
        "README.md does not name the profile type"
    );
}

//! The CPU-burn fault switch in the `api` binary, through a real OTLP
//! receiver: a burning `GET /games` spends its CPU inside its SERVER span,
//! after every child span, and says so with `fault.switch`; a request the
//! switch does not pick neither burns nor says so.

use std::time::Duration;

use otlp_testkit::{AnyValueExt, Receiver, Span};

use crate::helpers::Servers;
use crate::process::Api;

const SWITCH: &str = "FAULT_CPU_BURN_PERCENT";

/// The api exporting to `receiver` quickly, with the switch at `percent`
/// burning `millis` each.
async fn start(receiver: &Receiver, servers: &Servers, percent: &str, millis: u64) -> Api {
    let endpoint = receiver.http_endpoint();
    let millis = millis.to_string();
    Api::start(
        servers,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            (SWITCH, percent),
            ("FAULT_CPU_BURN_MS", millis.as_str()),
        ],
    )
    .await
}

/// USER_HZ, the unit of /proc's clock ticks: 100 on Linux.
const TICK: Duration = Duration::from_millis(10);

/// CPU time process `pid` has spent, every thread of it (those that
/// exited too): utime + stime of /proc/<pid>/stat, in whole ticks.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name, in parentheses: state is field 3, utime 14
    // and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks = fields[11].parse::<u32>().unwrap() + fields[12].parse::<u32>().unwrap();
    TICK * ticks
}

/// Sends `count` `GET /games` one after the other and returns their SERVER
/// spans in the same order.
async fn list_games(api: &Api, receiver: &Receiver, count: usize) -> Vec<Span> {
    let client = reqwest::Client::new();
    for _ in 0..count {
        let response = client
            .get(format!("{}/games", api.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut spans = receiver
        .wait_for_condition(&format!("{count} GET /games spans"), |spans, _, _| {
            let requests: Vec<Span> = spans
                .iter()
                .filter(|s| s.name() == "GET /games")
                .cloned()
                .collect();
            (requests.len() >= count).then_some(requests)
        })
        .await
        .unwrap();
    spans.sort_by_key(|s| s.span.start_time_unix_nano);
    spans
}

/// `request` burnt: it says so in its own attribute (what tail sampling
/// reads), in its `fault injected` event and in the log record of it; and
/// it took at least `millis` more after its last child span ended, the time
/// no child span accounts for.
async fn assert_burnt(receiver: &Receiver, request: &Span, millis: u64) {
    assert_eq!(
        request.str_attr("fault.switch"),
        Some(SWITCH),
        "{request:?}"
    );
    assert_eq!(request.event_str_attrs("fault.switch"), [SWITCH]);
    assert!(!request.is_error(), "slow, not failed");
    let log = receiver
        .wait_for_log(&request.trace_id(), "fault injected")
        .await
        .unwrap();
    assert_eq!(
        log.attr("fault.switch").and_then(AnyValueExt::as_str),
        Some(SWITCH)
    );
    let trace = receiver.trace(&request.trace_id());
    let children = trace.children(request);
    assert!(
        children.iter().any(|s| s.name() == "list"),
        "the query's span: {trace}"
    );
    // Children end before their parent, so the batch that brought the
    // request brought them too.
    let last_child_end = trace
        .spans
        .iter()
        .filter(|s| s.span_id() != request.span_id())
        .map(|s| s.span.end_time_unix_nano)
        .max()
        .unwrap();
    let after_children = Duration::from_nanos(request.span.end_time_unix_nano - last_child_end);
    // CPU time of one thread never exceeds its wall time.
    assert!(
        after_children >= Duration::from_millis(millis),
        "{after_children:?} after the last child span: {trace}"
    );
}

fn assert_not_burnt(request: &Span) {
    assert_eq!(request.str_attr("fault.switch"), None, "{request:?}");
    assert!(
        request.event_str_attrs("fault.switch").is_empty(),
        "{request:?}"
    );
}

#[tokio::test]
async fn at_100_percent_every_listing_burns_its_cpu_inside_its_server_span() {
    const MILLIS: u64 = 300;
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let api = start(&receiver, &servers, "100", MILLIS).await;
    let before = cpu_time(api.pid());
    let requests = list_games(&api, &receiver, 2).await;
    // Idle again: the burning thread's CPU is all counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let spent = cpu_time(api.pid()) - before;
    // To the tick: the readings are whole ticks.
    assert!(
        spent + TICK >= Duration::from_millis(2 * MILLIS),
        "two burning requests cost the api {spent:?} of CPU"
    );
    for request in &requests {
        assert_burnt(&receiver, request, MILLIS).await;
    }
    assert!(api.terminate().await.success());
}

#[tokio::test]
async fn at_50_percent_every_second_listing_burns() {
    const MILLIS: u64 = 100;
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let api = start(&receiver, &servers, "50", MILLIS).await;
    let requests = list_games(&api, &receiver, 4).await;
    assert_not_burnt(&requests[0]);
    assert_burnt(&receiver, &requests[1], MILLIS).await;
    assert_not_burnt(&requests[2]);
    assert_burnt(&receiver, &requests[3], MILLIS).await;
    assert!(api.terminate().await.success());
}

#[tokio::test]
async fn at_0_percent_no_listing_burns() {
    let receiver = Receiver::start().await.unwrap();
    let servers = Servers::fresh().await;
    let api = start(&receiver, &servers, "0", 300).await;
    for request in list_games(&api, &receiver, 3).await {
        assert_not_burnt(&request);
    }
    assert!(api.terminate().await.success());
}

//! The tail-sampling policies of grafana-alloy/sampling.alloy, evaluated
//! against traces the services really record, the way Alloy's
//! `otelcol.processor.tail_sampling` (the collector-contrib
//! tailsamplingprocessor it wraps, v0.153) evaluates them. Each special trace
//! must be kept by the policy meant for it, and a plain one by none but the
//! share: a policy matching on an attribute or status the services never
//! emit would silently drop what it was written to keep.
//!
//! The traces come from the runs the other e2e tests make (faults.rs,
//! trace.rs); only the slow trace has a run of its own here.

use std::collections::BTreeMap;

use otlp_testkit::proto::common::v1::any_value;
use otlp_testkit::proto::common::v1::{AnyValue, KeyValue};
use otlp_testkit::proto::trace::v1::status::StatusCode;
use otlp_testkit::{Span, Trace};
use stack_tests::alloy::{self, Block, Value};
use test_support::docs::repo_file;

use crate::helpers::Running;

/// The policies of `otelcol.processor.tail_sampling "default"`.
fn policies() -> Vec<Block> {
    let blocks = alloy::parse(&repo_file("grafana-alloy/sampling.alloy")).unwrap();
    let sampler = blocks
        .into_iter()
        .find(|b| b.id() == "otelcol.processor.tail_sampling.default")
        .expect("sampling.alloy defines otelcol.processor.tail_sampling \"default\"");
    sampler
        .blocks
        .into_iter()
        .filter(|b| b.name == "policy")
        .collect()
}

fn string(block: &Block, name: &str) -> String {
    match block.attribute(name) {
        Some(Value::String(value)) => value.clone(),
        other => panic!("{}: {name} is {other:?}, not a string", block.name),
    }
}

fn strings(block: &Block, name: &str) -> Vec<String> {
    match block.attribute(name) {
        Some(Value::List(values)) => values
            .iter()
            .map(|value| match value {
                Value::String(value) => value.clone(),
                other => panic!("{}: {name} holds {other:?}", block.name),
            })
            .collect(),
        other => panic!("{}: {name} is {other:?}, not a list", block.name),
    }
}

fn flag(block: &Block, name: &str) -> bool {
    matches!(block.attribute(name), Some(Value::Bool(true)))
}

/// pcommon's `Value.Str()`: the string, or "" for a value of another type.
fn str_value(value: Option<&AnyValue>) -> Option<&str> {
    value.map(|value| match &value.value {
        Some(any_value::Value::StringValue(text)) => text.as_str(),
        _ => "",
    })
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// FNV-1a, 64 bits: Go's hash/fnv `New64a`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// probabilistic.go: `hashTraceID(salt, traceID) <= MaxUint64 * percent / 100`
/// (the salt defaults to "default-hash-seed"). The threshold is computed
/// exactly here and truncated, where Go rounds the product to 64 bits of
/// mantissa first: they differ by at most one in 2^64.
fn probabilistic(salt: &str, percent: f64, trace_id: &[u8]) -> bool {
    let salt = if salt.is_empty() {
        "default-hash-seed"
    } else {
        salt
    };
    let ratio = (percent / 100.0).max(0.0);
    let threshold = if ratio >= 1.0 {
        u64::MAX
    } else {
        // ratio = mantissa * 2^exponent exactly (an f64 below 1).
        let bits = ratio.to_bits();
        let exponent = i32::try_from((bits >> 52) & 0x7ff).unwrap();
        let (mantissa, shift) = if exponent == 0 {
            (u128::from(bits & ((1 << 52) - 1)), 1074)
        } else {
            (
                u128::from(bits & ((1 << 52) - 1) | (1 << 52)),
                1075 - exponent,
            )
        };
        let product = u128::from(u64::MAX) * mantissa;
        u64::try_from(
            product
                .checked_shr(u32::try_from(shift).unwrap())
                .unwrap_or(0),
        )
        .unwrap_or(u64::MAX)
    };
    fnv1a(&[salt.as_bytes(), trace_id]) <= threshold
}

/// Whether `policy` keeps `trace`, the environment giving `sys.env`.
fn keeps(policy: &Block, trace: &Trace, env: &dyn Fn(&str) -> String) -> bool {
    let kind = string(policy, "type");
    let config = policy
        .block(&kind)
        .unwrap_or_else(|| panic!("policy {kind} has no {kind} block"));
    let spans = &trace.spans;
    match kind.as_str() {
        // status_code.go: any span whose status is one of the codes.
        "status_code" => {
            let codes: Vec<i32> = strings(config, "status_codes")
                .iter()
                .map(|code| match code.as_str() {
                    "OK" => StatusCode::Ok as i32,
                    "ERROR" => StatusCode::Error as i32,
                    "UNSET" => StatusCode::Unset as i32,
                    other => panic!("unknown status code {other}"),
                })
                .collect();
            spans.iter().any(|span| {
                let code = span.span.status.as_ref().map_or(0, |status| status.code);
                codes.contains(&code)
            })
        }
        // latency.go: from the earliest start to the latest end over the
        // spans seen so far, in whole milliseconds, at or above the
        // threshold (no upper threshold here).
        "latency" => {
            let threshold: u64 = match config.attribute("threshold_ms") {
                Some(Value::Number(ms)) => ms.parse().unwrap(),
                other => panic!("threshold_ms is {other:?}"),
            };
            assert!(
                config.attribute("upper_threshold_ms").is_none(),
                "upper_threshold_ms is not evaluated here"
            );
            let start = spans.iter().map(|s| s.span.start_time_unix_nano).min();
            let end = spans.iter().map(|s| s.span.end_time_unix_nano).max();
            start
                .zip(end)
                .is_some_and(|(start, end)| end.saturating_sub(start) / 1_000_000 >= threshold)
        }
        // string_tag_filter.go: a resource attribute or a non-empty span
        // attribute `key` whose string value matches one of the values
        // (exactly, or a regular expression matched anywhere as Go's
        // MatchString does).
        "string_attribute" => {
            assert!(
                !flag(config, "invert_match"),
                "invert_match is not evaluated here"
            );
            let key = string(config, "key");
            let values = strings(config, "values");
            let matcher: Box<dyn Fn(&str) -> bool> = if flag(config, "enabled_regex_matching") {
                let patterns: Vec<regex::Regex> = values
                    .iter()
                    .map(|value| regex::Regex::new(value).unwrap())
                    .collect();
                Box::new(move |text: &str| patterns.iter().any(|p| p.is_match(text)))
            } else {
                Box::new(move |text: &str| values.iter().any(|v| !v.is_empty() && v == text))
            };
            spans.iter().any(|span: &Span| {
                str_value(find(&span.resource, &key)).is_some_and(&matcher)
                    || str_value(find(&span.span.attributes, &key))
                        .is_some_and(|text| !text.is_empty() && matcher(text))
            })
        }
        "probabilistic" => {
            let percent = config
                .attribute("sampling_percentage")
                .and_then(|value| value.number(env))
                .expect("sampling_percentage is a number");
            let salt = match config.attribute("hash_salt") {
                Some(Value::String(salt)) => salt.clone(),
                _ => String::new(),
            };
            probabilistic(&salt, percent, &spans[0].span.trace_id)
        }
        other => panic!("policy type {other} is not evaluated here: add it from its evaluator"),
    }
}

/// Each policy's name and whether it keeps `trace`, with `percent` as
/// TRACE_SAMPLING_PERCENT (`None`: unset, the configuration's default).
pub(crate) fn decisions(trace: &Trace, percent: Option<&str>) -> BTreeMap<String, bool> {
    let env = |name: &str| match name {
        "TRACE_SAMPLING_PERCENT" => percent.unwrap_or_default().to_owned(),
        other => panic!("sampling.alloy reads {other}, unknown to this test"),
    };
    policies()
        .iter()
        .map(|policy| (string(policy, "name"), keeps(policy, trace, &env)))
        .collect()
}

/// The policies that keep `trace`, whatever the share.
pub(crate) fn kept_by(trace: &Trace) -> Vec<String> {
    decisions(trace, Some("0"))
        .into_iter()
        .filter_map(|(name, kept)| kept.then_some(name))
        .collect()
}

/// `trace` is kept by `policy`, with the trace in the message if not.
pub(crate) fn assert_kept_by(trace: &Trace, policy: &str) {
    let kept = kept_by(trace);
    assert!(
        kept.iter().any(|name| name == policy),
        "sampling.alloy's {policy:?} policy does not keep this trace (kept by {kept:?}):\n{trace}"
    );
}

/// A trace with nothing special is kept only by the share: by none of the
/// other policies, and by the share at 100 % but not at 0 %.
pub(crate) fn assert_kept_only_by_the_share(trace: &Trace) {
    let none = decisions(trace, Some("0"));
    let all = decisions(trace, Some("100"));
    let shares: Vec<&String> = all
        .iter()
        .filter(|(name, kept)| **kept && !none[*name])
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        shares.len(),
        1,
        "exactly one policy is the share: {all:?} at 100 %, {none:?} at 0 %"
    );
    let kept: Vec<&String> = none.iter().filter(|(_, k)| **k).map(|(n, _)| n).collect();
    assert!(
        kept.is_empty(),
        "a plain trace is kept by {kept:?}, not only by a share of them:\n{trace}"
    );
}

#[test]
fn the_share_keeps_about_its_percentage_of_trace_ids() {
    // A stand-in for random trace ids: FNV-1a of a counter is evenly spread.
    let kept = (0u64..20_000)
        .filter(|n| {
            let id = [n.to_le_bytes(), (n ^ 0x5bd1_e995).to_be_bytes()].concat();
            probabilistic("", 10.0, &id)
        })
        .count();
    assert!((1_800..=2_200).contains(&kept), "{kept} of 20000 at 10 %");
    assert!(probabilistic("", 100.0, &[7; 16]));
    assert!(!probabilistic("", 0.0, &[7; 16]));
    // Go's FNV-1a of "a" (hash/fnv's test vector).
    assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
}

#[tokio::test]
async fn a_request_slower_than_the_alert_threshold_is_kept_as_slow() {
    // Above GamenightApiSlow's 1 s: the read of one game waits 1.1 s more.
    let running = Running::start(&[("FAULT_DB_DELAY_MS", "1100")]).await;
    let game = running.create_game(chrono::Duration::days(2), 60).await;
    let url = running.game_url(&game);
    assert_eq!(running.client.get(&url).send().await.unwrap().status(), 200);
    let (receiver, _) = running.stop().await;
    let request = receiver.wait_for_span("GET /games/{id}").await.unwrap();
    assert!(request.duration_micros() >= 1_100_000, "{request:?}");
    assert_kept_by(&receiver.trace(&request.trace_id()), "slow");
}

/// The span-metric series a game's whole life adds, as grafana/README.md
/// estimates them: every distinct service, span name, kind and status
/// (the connector's dimensions) the services record while a game is
/// created, listed, read, joined, left and cancelled, with its
/// notifications posted. An estimate for the README, not a check:
/// `cargo test -p demo --test e2e -- --ignored --nocapture span_metric`.
#[tokio::test]
#[ignore = "prints an estimate for grafana/README.md"]
async fn span_metric_combinations_of_a_games_life() {
    let running = Running::start(&[]).await;
    // The reminder is due at once.
    let game = running.create_game(chrono::Duration::minutes(30), 60).await;
    let url = running.game_url(&game);
    let client = &running.client;
    assert_eq!(
        client
            .get(format!("{}/games", running.stack.api_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    // Announcement and reminder posted before the game changes.
    running
        .discord
        .wait_for_requests(2, std::time::Duration::from_secs(60))
        .await;
    let join = serde_json::json!({ "player": "grace" });
    assert_eq!(
        client
            .post(format!("{url}/participants"))
            .json(&join)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        client
            .delete(format!("{url}/participants/grace"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client
            .post(format!("{url}/cancel"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Then the cancellation.
    running
        .discord
        .wait_for_requests(3, std::time::Duration::from_secs(60))
        .await;
    let (receiver, _) = running.stop().await;
    let combinations: std::collections::BTreeSet<(String, String, i32, i32)> = receiver
        .spans()
        .iter()
        .map(|s| {
            let status = s.span.status.as_ref().map_or(0, |status| status.code);
            (
                s.service_name().to_owned(),
                s.name().to_owned(),
                s.span.kind,
                status,
            )
        })
        .collect();
    for combination in &combinations {
        println!("{combination:?}");
    }
    println!(
        "{} combinations of service, span name, kind and status",
        combinations.len()
    );
}

//! Span profiles against a Pyroscope stand-in that decodes each push down to
//! the pprof samples, and the OTLP receiver for the spans.
//!
//! pprof-rs keeps one profiler per process, so these tests take turns.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otlp_testkit::pyroscope::{ProfileSample, PyroscopeReceiver};
use otlp_testkit::{Receiver, StuckServer};
use telemetry::profiling::{PROFILE_ID_ATTRIBUTE, SPAN_ID_LABEL};
use telemetry::{ProfilingConfig, Protocol, Service, Telemetry, TelemetryConfig};
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

/// One profiler at a time.
static PROFILER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples a second: more than the default 100, for more samples per test.
const SAMPLE_RATE: u32 = 250;

/// A service exporting spans to `otlp` and profiles to `pyroscope_url`.
fn telemetry(otlp: &Receiver, pyroscope_url: String) -> Telemetry {
    let mut config = TelemetryConfig::otlp(Protocol::HttpProtobuf, otlp.http_endpoint());
    config.environment = "test".to_owned();
    config.profiling = Some(ProfilingConfig {
        server_address: pyroscope_url,
        basic_auth: None,
        sample_rate: SAMPLE_RATE,
    });
    Telemetry::build_with_writer(
        Service::new("api", "1.2.3").with_namespace("gamenight"),
        &config,
        std::io::sink,
    )
    .expect("build telemetry with profiling")
}

/// Burns CPU for `time`, under a name the flame graph shows.
#[inline(never)]
fn spin_in_span(time: Duration) {
    spin(time);
}

/// Burns CPU for `time` in no span at all.
#[inline(never)]
fn spin_outside_spans(time: Duration) {
    spin(time);
}

#[inline(never)]
fn spin(time: Duration) {
    let start = Instant::now();
    let mut x = 1_u64;
    while start.elapsed() < time {
        for _ in 0..1_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

/// Runs at least `rounds` polls of `time` of CPU each in a root span named
/// `name`, sleeping a millisecond between them. With `threads` above 1 it
/// goes on until it has been polled on that many (200 rounds at most),
/// burning inside `block_in_place` until then: the runtime hands the
/// worker's core to another thread meanwhile, so it moves the task.
/// Returns the threads that polled it.
async fn busy_request(
    telemetry: &Telemetry,
    name: &'static str,
    (rounds, threads): (usize, usize),
    time: Duration,
) -> BTreeSet<String> {
    let wanted_threads = threads;
    let dispatch = telemetry.dispatch().clone();
    let span = tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("request", otel.name = name)
    });
    let threads = Arc::new(Mutex::new(BTreeSet::new()));
    let polled_on = Arc::clone(&threads);
    tokio::spawn(
        async move {
            for round in 1..=200 {
                let seen = {
                    let mut polled_on = polled_on.lock().expect("threads");
                    polled_on.insert(format!("{:?}", std::thread::current().id()));
                    polled_on.len()
                };
                if seen < wanted_threads {
                    // Hands this worker's run queue to another thread while
                    // it burns, so the next poll may well run there.
                    tokio::task::block_in_place(|| spin_in_span(time));
                } else {
                    spin_in_span(time);
                }
                if round >= rounds && seen >= wanted_threads {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        .instrument(span)
        .with_subscriber(dispatch),
    )
    .await
    .expect("the busy request");
    let threads = threads.lock().expect("threads");
    threads.clone()
}

/// CPU time of `samples`, in milliseconds.
fn cpu_ms<'a>(samples: impl IntoIterator<Item = &'a ProfileSample>) -> i64 {
    samples.into_iter().map(|sample| sample.value).sum::<i64>() / 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_of_a_busy_root_span_carry_its_id_on_every_thread_it_runs_on() {
    let _turn = PROFILER.lock().await;
    let otlp = Receiver::start().await.expect("OTLP receiver");
    let pyroscope = PyroscopeReceiver::start()
        .await
        .expect("Pyroscope stand-in");
    let telemetry = telemetry(&otlp, pyroscope.url());

    // CPU outside any span beside it, on the runtime's other thread.
    let bystander = tokio::spawn(
        async {
            for _ in 0..40 {
                spin_outside_spans(Duration::from_millis(20));
                tokio::task::yield_now().await;
            }
        }
        .with_subscriber(telemetry.dispatch().clone()),
    );
    let threads = busy_request(&telemetry, "GET /busy", (40, 2), Duration::from_millis(20)).await;
    bystander.await.unwrap();
    assert!(
        threads.len() >= 2,
        "the runtime never moved the busy request: {threads:?}"
    );
    // A quick request: under one sampling period, never labelled.
    busy_request(&telemetry, "GET /quick", (1, 1), Duration::from_micros(300)).await;
    let pushed = pyroscope.pushes();
    telemetry.shutdown().await;

    let busy = otlp
        .wait_for_span("GET /busy")
        .await
        .expect("the busy span");
    let span_id = busy.span_id();
    assert_eq!(busy.str_attr(PROFILE_ID_ATTRIBUTE), Some(span_id.as_str()));
    let quick = otlp
        .wait_for_span("GET /quick")
        .await
        .expect("the quick span");
    assert_eq!(
        quick.str_attr(PROFILE_ID_ATTRIBUTE),
        None,
        "a span with no samples links to no profile"
    );

    pyroscope
        .wait_for_pushes(pushed + 1, Duration::from_secs(10))
        .await
        .expect("the last profile, pushed after shutdown");
    assert_eq!(pyroscope.rejected(), Vec::<String>::new());
    let samples = pyroscope.samples();
    let in_span: Vec<&ProfileSample> = samples
        .iter()
        .filter(|s| s.has_frame("spin_in_span"))
        .collect();
    let labelled: Vec<&ProfileSample> = in_span
        .iter()
        .copied()
        .filter(|s| s.labels.get(SPAN_ID_LABEL) == Some(&span_id))
        .collect();
    let outside: Vec<&ProfileSample> = samples
        .iter()
        .filter(|s| s.has_frame("spin_outside_spans"))
        .collect();
    eprintln!(
        "the busy span ran on {} thread(s); {} of its {} ms sampled carry its id; {} ms sampled outside spans",
        threads.len(),
        cpu_ms(labelled.iter().copied()),
        cpu_ms(in_span.iter().copied()),
        cpu_ms(outside.iter().copied()),
    );
    assert!(
        cpu_ms(in_span.iter().copied()) >= 200,
        "at least 800 ms burnt in the span, 4 ms a sample"
    );
    // All but the first sampling period or two of the span's CPU.
    assert!(
        cpu_ms(labelled.iter().copied()) * 10 >= cpu_ms(in_span.iter().copied()) * 9,
        "most of the span's samples carry its span id"
    );
    assert!(!outside.is_empty(), "the bystander was sampled");
    assert!(
        outside
            .iter()
            .all(|s| !s.labels.contains_key(SPAN_ID_LABEL)),
        "CPU outside the span is never labelled with it"
    );
    for sample in &samples {
        for (label, value) in [
            ("service_name", "api"),
            ("service_version", "1.2.3"),
            ("service_namespace", "gamenight"),
            ("deployment_environment_name", "test"),
            ("__name__", "process_cpu"),
        ] {
            assert_eq!(
                sample.series.get(label).map(String::as_str),
                Some(value),
                "{label}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_or_down_pyroscope_changes_nothing_for_the_service_and_shutdown_stays_bounded() {
    let _turn = PROFILER.lock().await;
    let stuck = StuckServer::start().await.expect("stuck server");
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (what, url) in [("stuck", stuck.url()), ("down", down)] {
        let otlp = Receiver::start().await.expect("OTLP receiver");
        let telemetry = telemetry(&otlp, url);
        busy_request(&telemetry, "GET /busy", (10, 1), Duration::from_millis(20)).await;

        let started = Instant::now();
        telemetry.shutdown().await;
        let took = started.elapsed();
        eprintln!("{what}: shutdown took {took:?}");
        assert!(
            took <= Duration::from_secs(5),
            "{what}: shutdown took {took:?}"
        );
        // Spans still went out, and were labelled: profiling went on
        // locally whatever became of the pushes.
        let busy = otlp
            .wait_for_span("GET /busy")
            .await
            .expect("the span, exported");
        assert_eq!(
            busy.str_attr(PROFILE_ID_ATTRIBUTE),
            Some(busy.span_id().as_str()),
            "{what}"
        );
    }
}

//! Continuous CPU profiling, pushed to Pyroscope, with span profiles
//! (feature `profiling`).
//!
//! The [`pyroscope`] agent samples the stacks of every thread
//! `PYROSCOPE_SAMPLE_RATE` times per second of CPU time (pprof-rs, on
//! `SIGPROF`) and pushes them as a pprof profile to `PYROSCOPE_SERVER_ADDRESS`
//! every 10 s, labelled with the service's `service_name`, `service_version`,
//! `service_namespace` and `deployment_environment_name`.
//!
//! # Span profiles
//!
//! Grafana opens the flame graph of one span from its trace when the span
//! carries `pyroscope.profile.id` and the samples taken while it ran carry its
//! span id as the pprof label `span_id`. The agent can only label a thread:
//! its samples get the labels the thread has when they are collected, and
//! each change of a thread's labels first collects what was sampled so far,
//! about 10 µs. The span-profile layer therefore labels what matters at a
//! price a 25 µs request can pay (per request that is not labelled: a
//! thread-local check per span entry and exit, one allocation for the root
//! span, and an uncontended lock per poll of it):
//!
//! - Only a *root span*, one without a parent in this process (a request's
//!   SERVER span, a message's CONSUMER span), is labelled; everything its
//!   children do on the same thread while it is polled falls under it.
//! - The label follows the poll, not the task. While a thread polls a root
//!   span's future, that thread is labelled with the span; when the runtime
//!   moves the task to another worker thread between two polls, the next
//!   poll labels that thread. CPU spent on the span's behalf anywhere else
//!   (`spawn_blocking`, tasks spawned without the span, the connection task
//!   that reads the request) is not labelled.
//! - A span is labelled once it has run for about one sampling period
//!   (20 ms at the default 49 Hz): a span that runs for less expects less
//!   than one sample, and labelling every request would cost more than
//!   profiling itself. No thread reads a clock for this: a watchdog thread
//!   looks at the polls in progress once a period, as the profiler samples
//!   the CPU, and labels a root span once it has found it being polled at
//!   two of its looks. A span busy for less than a period is seldom found
//!   twice, and a single poll shorter than a period never is. The
//!   watchdog labels the poll it found at once; each later poll of the
//!   span is labelled as it starts and pays the label change, about 20 µs
//!   a poll. The first one or two periods of a span's CPU time are
//!   therefore never labelled.
//! - A labelled span gets `pyroscope.profile.id`, so Grafana shows the link
//!   only for spans that have a flame graph.
//!
//! - Samples are collected (stacks symbolized) at each label change and
//!   every 10 s, under a lock: a sample taken meanwhile is dropped, as
//!   pprof-rs drops any sample it cannot record at once. The first
//!   collection of a process reads the binary's symbols, which for a debug
//!   build with full debug info takes seconds: the first labelled span of
//!   such a process loses most of its samples.
//!
//! pprof-rs keeps one profiler per process: a second one fails to start
//! while the first runs.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use pyroscope::PyroscopeAgent;
use pyroscope::backend::{BackendConfig, PprofConfig, Tag, pprof_backend};
use pyroscope::pyroscope::{PyroscopeAgentBuilder, PyroscopeAgentRunning};
use tracing::{Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::ProfilingConfig;

/// The span attribute that links a span to its samples: Grafana's "Profiles
/// for this span" looks for it.
pub const PROFILE_ID_ATTRIBUTE: &str = "pyroscope.profile.id";

/// The pprof sample label holding the id of the root span a sample was
/// taken in (16 lowercase hex digits, as in the trace).
pub const SPAN_ID_LABEL: &str = "span_id";

/// The CPU profiler of this process and the state [`SpanProfiles`] shares
/// with it.
pub(crate) struct Profiler {
    shared: Arc<Shared>,
    stop_watchdog: mpsc::Sender<()>,
    watchdog: JoinHandle<()>,
}

impl fmt::Debug for Profiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profiler")
            .field("period", &self.shared.period)
            .finish_non_exhaustive()
    }
}

/// What the layer and the watchdog both use.
struct Shared {
    /// `None` once shut down: labelling is then a no-op.
    agent: Mutex<Option<PyroscopeAgent<PyroscopeAgentRunning>>>,
    /// One sampling period: how often the watchdog looks at the polls.
    period: Duration,
}

impl Profiler {
    /// Starts sampling and pushing, labelled with the service as `resource`
    /// names it.
    pub(crate) fn start(resource: &Resource, config: &ProfilingConfig) -> Result<Self, String> {
        let url = server_url(&config.server_address)?;
        let label = |key: &'static str| {
            resource
                .get(&Key::from_static_str(key))
                .map(|value| value.to_string())
                .unwrap_or_default()
        };
        let service_name = label("service.name");
        let labels = [
            ("service_version", label("service.version")),
            ("service_namespace", label("service.namespace")),
            (
                "deployment_environment_name",
                label("deployment.environment.name"),
            ),
        ];
        let backend = pprof_backend(
            PprofConfig {
                sample_rate: config.sample_rate,
            },
            BackendConfig::default(),
        );
        let mut agent = PyroscopeAgentBuilder::new(
            url,
            &service_name,
            config.sample_rate,
            "pyroscope-rs",
            env!("CARGO_PKG_VERSION"),
            backend,
        )
        .tags(
            labels
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(key, value)| (*key, value.as_str()))
                .collect(),
        );
        if let Some(auth) = &config.basic_auth {
            agent = agent.basic_auth(&auth.user, &auth.password);
        }
        let agent = agent
            .build()
            .and_then(PyroscopeAgent::start)
            .map_err(|err| format!("cannot start the CPU profiler: {err}"))?;

        let shared = Arc::new(Shared {
            agent: Mutex::new(Some(agent)),
            period: Duration::from_secs(1) / config.sample_rate,
        });
        let (stop_watchdog, stopped) = mpsc::channel();
        let watchdog = std::thread::Builder::new()
            .name("telemetry-span-profiles".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || watch_polls(&shared, &stopped)
            })
            .map_err(|err| format!("cannot start the span-profile watchdog: {err}"))?;
        Ok(Self {
            shared,
            stop_watchdog,
            watchdog,
        })
    }

    /// The `tracing` layer that labels samples with their root span. It
    /// must come after the OpenTelemetry layer, whose span context it reads.
    pub(crate) fn layer(&self) -> SpanProfiles {
        SpanProfiles {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops labelling and sampling, and pushes what was sampled since the
    /// last push. Blocks until the agent has stopped: its last push (up to
    /// the agent's 10 s timeout) and its timer's next 10 s tick, which it
    /// waits for too. The caller bounds the wait ([`crate::SHUTDOWN_DEADLINE`]),
    /// by when the last push, started at once, is normally done.
    pub(crate) fn shutdown(self) -> OTelSdkResult {
        drop(self.stop_watchdog);
        let _ = self.watchdog.join();
        let Some(agent) = lock(&self.shared.agent).take() else {
            return Ok(());
        };
        agent
            .stop()
            .map_err(|err| OTelSdkError::InternalFailure(err.to_string()))?
            .shutdown();
        Ok(())
    }
}

/// `address` as the agent wants it: an `http` or `https` URL without a
/// trailing slash (the agent appends `/push.v1.PusherService/Push`). The
/// error never repeats the address, which might hold credentials.
fn server_url(address: &str) -> Result<String, String> {
    let uri: http::Uri = address
        .parse()
        .map_err(|_| "PYROSCOPE_SERVER_ADDRESS is not a URL".to_owned())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("PYROSCOPE_SERVER_ADDRESS must start with http:// or https://".to_owned());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("PYROSCOPE_SERVER_ADDRESS must not hold credentials: \
                    set PYROSCOPE_BASIC_AUTH_USER and PYROSCOPE_BASIC_AUTH_PASSWORD"
            .to_owned());
    }
    Ok(address.trim_end_matches('/').to_owned())
}

impl Shared {
    /// Labels `thread`'s samples with `root`, from now until [`Self::unlabel`].
    fn label(&self, thread: &pyroscope::ThreadId, root: &RootSpan) {
        if let Some(agent) = lock(&self.agent).as_ref() {
            // Fails only on a poisoned lock inside the agent; the samples
            // then stay unlabelled, and nothing can be reported from inside
            // a subscriber callback.
            let _ = agent.add_thread_tag(thread.clone(), root.tag());
        }
    }

    fn unlabel(&self, thread: &pyroscope::ThreadId, root: &RootSpan) {
        if let Some(agent) = lock(&self.agent).as_ref() {
            let _ = agent.remove_thread_tag(thread.clone(), root.tag());
        }
    }
}

/// How many watchdog ticks must find a root span being polled before it is
/// labelled: two, so that a span labelled has run for about one sampling
/// period or more, and a single poll shorter than a period never is.
const SEEN_TO_LABEL: u32 = 2;

/// Once a sampling period, finds the root spans being polled and labels
/// those seen often enough, until `stop` is dropped. The watchdog samples
/// the polls as the profiler samples the CPU, so the threads themselves
/// never read a clock.
fn watch_polls(shared: &Shared, stop: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(shared.period) {
        let mut threads = lock(&THREADS);
        threads.retain(|thread| thread.strong_count() > 0);
        for thread in threads.iter().filter_map(Weak::upgrade) {
            // Held while labelling: the poll cannot end meanwhile.
            let mut poll = lock(&thread.poll);
            let Some(poll) = poll.as_mut() else { continue };
            if poll.labelled {
                continue;
            }
            let seen = poll.root.seen.fetch_add(1, Ordering::Relaxed) + 1;
            if seen >= SEEN_TO_LABEL {
                shared.label(&thread.id, &poll.root);
                poll.labelled = true;
                if seen == SEEN_TO_LABEL {
                    let span = poll.root.context.span();
                    let span_id = span.span_context().span_id().to_string();
                    span.set_attribute(KeyValue::new(PROFILE_ID_ATTRIBUTE, span_id));
                }
            }
        }
    }
}

/// A root span that is exported, as span profiles need it.
struct RootSpan {
    /// The span's OpenTelemetry context: its span id, and where to set
    /// [`PROFILE_ID_ATTRIBUTE`].
    context: Context,
    /// Watchdog ticks that found the span being polled.
    seen: AtomicU32,
}

impl RootSpan {
    fn labelled(&self) -> bool {
        self.seen.load(Ordering::Relaxed) >= SEEN_TO_LABEL
    }

    fn tag(&self) -> Tag {
        let span_id = self.context.span().span_context().span_id().to_string();
        Tag::new(SPAN_ID_LABEL.to_owned(), span_id)
    }
}

/// The span-profile state of a span, kept in its extensions: `None` for a
/// span that is not a root or is not exported.
struct Profiled(Option<Arc<RootSpan>>);

/// A poll of a root span in progress on a thread.
struct Poll {
    root: Arc<RootSpan>,
    labelled: bool,
}

/// A thread that has polled root spans: what the watchdog looks at.
struct Thread {
    id: pyroscope::ThreadId,
    poll: Mutex<Option<Poll>>,
}

/// Every thread that has polled a root span, while it lives.
static THREADS: Mutex<Vec<Weak<Thread>>> = Mutex::new(Vec::new());

thread_local! {
    static THREAD: Arc<Thread> = {
        let thread = Arc::new(Thread {
            id: pyroscope::ThreadId::pthread_self(),
            poll: Mutex::new(None),
        });
        lock(&THREADS).push(Arc::downgrade(&thread));
        thread
    };

    /// The root span this thread is polling, if any: what every span entry
    /// and exit checks first, without a lock.
    static POLLING: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

/// Labels CPU samples with the root span being polled (see the module
/// docs).
pub(crate) struct SpanProfiles {
    shared: Arc<Shared>,
}

impl SpanProfiles {
    /// The root span `id` names, if it is one that is exported.
    fn root_span<S>(
        id: &span::Id,
        ctx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> Option<Arc<RootSpan>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.span(id)?;
        if let Some(Profiled(root)) = span.extensions().get::<Profiled>() {
            return root.clone();
        }
        // First entry: the OpenTelemetry layer, which runs before this one,
        // has just made the span's context current.
        let root = (span.parent().is_none() && crate::exported(span.metadata()))
            .then(Context::current)
            .filter(|context| context.span().span_context().is_sampled())
            .map(|context| {
                Arc::new(RootSpan {
                    context,
                    seen: AtomicU32::new(0),
                })
            });
        span.extensions_mut().insert(Profiled(root.clone()));
        root
    }
}

impl<S> Layer<S> for SpanProfiles
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        // A span entered inside a root span's poll belongs to it.
        if POLLING.with(|polling| polling.get().is_some()) {
            return;
        }
        let Some(root) = Self::root_span(id, &ctx) else {
            return;
        };
        let labelled = root.labelled();
        THREAD.with(|thread| {
            if labelled {
                self.shared.label(&thread.id, &root);
            }
            *lock(&thread.poll) = Some(Poll { root, labelled });
        });
        POLLING.with(|polling| polling.set(Some(id.into_non_zero_u64())));
    }

    fn on_exit(&self, id: &span::Id, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if POLLING.with(|polling| polling.get() != Some(id.into_non_zero_u64())) {
            return;
        }
        POLLING.with(|polling| polling.set(None));
        THREAD.with(|thread| {
            let mut poll = lock(&thread.poll);
            if let Some(poll) = poll.take()
                && poll.labelled
            {
                self.shared.unlabel(&thread.id, &poll.root);
            }
        });
    }
}

/// The agent reports failed pushes through the `log` crate; this shows them
/// as `tracing` warnings with target `pyroscope`, which the console shows
/// at most once a minute like the OpenTelemetry SDK's own, and which are
/// never exported.
struct AgentLog;

impl log::Log for AgentLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
            && metadata
                .target()
                .get(.."pyroscope".len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("pyroscope"))
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            tracing::warn!(target: "pyroscope", "{}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Routes the agent's `log` records to `tracing`, unless the process already
/// has a `log` logger.
pub(crate) fn forward_agent_log() {
    if log::set_logger(&AgentLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_address_must_be_a_plain_http_url() {
        assert_eq!(
            server_url("http://alloy:4040/").as_deref(),
            Ok("http://alloy:4040")
        );
        assert_eq!(
            server_url("https://profiles-prod-001.grafana.net").as_deref(),
            Ok("https://profiles-prod-001.grafana.net")
        );
        for bad in ["alloy:4040", "ftp://alloy:4040", "not a url"] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
        let err = server_url("https://123:glc_secret@profiles.grafana.net").unwrap_err();
        assert!(err.contains("PYROSCOPE_BASIC_AUTH_USER"), "{err}");
        assert!(!err.contains("glc_secret"), "{err}");
    }

    #[test]
    fn the_agents_failures_become_rate_limited_pyroscope_warnings() {
        use tracing_subscriber::layer::SubscriberExt as _;

        let events = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Record(Arc::clone(&events)));
        tracing::subscriber::with_default(subscriber, || {
            let log = |level, target, message: &str| {
                log::Log::log(
                    &AgentLog,
                    &log::Record::builder()
                        .level(level)
                        .target(target)
                        .args(format_args!("{message}"))
                        .build(),
                );
            };
            log(
                log::Level::Error,
                "pyroscope::session",
                "Failed to send session",
            );
            log(
                log::Level::Warn,
                "Pyroscope::Session",
                "Sending Session failed 401",
            );
            log(log::Level::Info, "Pyroscope::Session", "Sending Session");
            log(log::Level::Error, "sqlx::query", "not the agent's");
        });
        assert_eq!(
            *lock(&events),
            [
                ("pyroscope".to_owned(), "Failed to send session".to_owned()),
                (
                    "pyroscope".to_owned(),
                    "Sending Session failed 401".to_owned()
                ),
            ]
        );
        assert!(crate::console::is_sdk_target("pyroscope"));
    }

    /// Records each event's target and message.
    struct Record(Arc<Mutex<Vec<(String, String)>>>);

    impl<S: Subscriber> Layer<S> for Record {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            lock(&self.0).push((event.metadata().target().to_owned(), message.0));
        }
    }
}

//! What arrived, what did not, and the likely cause, from the four
//! answers read together: a service with metrics but no traces is idle, not
//! down; scraped series missing while the services' metrics arrive mean no
//! remote write; profiles arriving while nothing comes over OTLP mean the
//! services run and reach Alloy, whose OTLP export fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::backends::Failure;
use crate::config::{Backend, Config};
use crate::{CPU_PROFILE_TYPE, SCRAPED, SERVICES, Scraped};

/// The answers of the four backends, diagnosed.
#[derive(Debug, Clone)]
pub struct Report {
    minutes: u32,
    sections: [Section; 4],
    /// Causes that span signals (nothing at all from the services).
    overall: Vec<String>,
}

#[derive(Debug, Clone)]
struct Section {
    signal: &'static str,
    backend: &'static str,
    url: String,
    answer: Answer,
}

/// One backend's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// It answered: a finding per source, and notes on the whole signal.
    Found {
        /// Per service or scraped source.
        findings: Vec<Finding>,
        /// Causes that concern every source of the signal.
        notes: Vec<String>,
    },
    /// It could not be asked.
    Failed {
        /// What happened.
        failure: Failure,
        /// Why, most likely.
        cause: String,
    },
}

/// Whether one source's telemetry arrived.
#[derive(Debug, Clone)]
pub struct Finding {
    /// A service or a scraped source.
    pub source: String,
    /// Everything looked for arrived.
    pub arrived: bool,
    /// What was found, or what is missing.
    pub detail: String,
    /// The likely cause of what is missing.
    pub cause: Option<String>,
}

/// What one backend found: each service that sent the signal, with what
/// was found of it ("e.g. trace …", "12 log lines").
pub(crate) type Found = BTreeMap<&'static str, String>;

/// What Pyroscope holds: each service that sent profiles, with their
/// profile types.
pub(crate) type ProfileTypes = BTreeMap<&'static str, BTreeSet<String>>;

/// Which services sent a signal; `None` when its backend gave no answer.
type Presence = Option<BTreeSet<&'static str>>;

impl Report {
    /// Diagnoses the answers: per signal, the services found, for metrics
    /// also the scraped series' names, for profiles their types.
    pub(crate) fn new(
        config: &Config,
        minutes: u32,
        traces: Result<Found, Failure>,
        metrics: Result<(Found, BTreeSet<String>), Failure>,
        logs: Result<Found, Failure>,
        profiles: Result<ProfileTypes, Failure>,
    ) -> Self {
        let present = |found: &Found| found.keys().copied().collect();
        let presence = Presences {
            traces: traces.as_ref().ok().map(present),
            metrics: metrics.as_ref().ok().map(|(found, _)| present(found)),
            logs: logs.as_ref().ok().map(present),
            // Profiles of any type: the service runs and reaches Alloy.
            profiles: profiles
                .as_ref()
                .ok()
                .map(|types| types.keys().copied().collect()),
        };
        let scraped_arrive = metrics.as_ref().ok().map(|(_, names)| !names.is_empty());
        let nothing_over_otlp = presence.nothing_over_otlp();
        let profiles_arrive = presence.profiles.as_ref().is_some_and(|p| !p.is_empty());
        let nothing_from_services = nothing_over_otlp && !profiles_arrive;
        let mut overall = Vec::new();
        if nothing_over_otlp && profiles_arrive {
            overall.push(format!(
                "Nothing from {} over OTLP (traces, metrics, logs), while their profiles arrive: they run and reach Alloy, so Alloy's OTLP export fails (GRAFANA_CLOUD_OTLP_ENDPOINT and GRAFANA_CLOUD_OTLP_INSTANCE_ID: the OTLP instance ID; otelcol.exporter.otlphttp.default in Alloy's UI), or the services' OTEL_EXPORTER_OTLP_ENDPOINT does not point at Alloy.",
                services_list()
            ));
        }
        if nothing_from_services {
            overall.push(match scraped_arrive {
                Some(true) => format!(
                    "Nothing from {} in any signal, while Alloy's own scrapes arrive: Alloy runs and its remote write works, so its OTLP export fails (GRAFANA_CLOUD_OTLP_ENDPOINT and GRAFANA_CLOUD_OTLP_INSTANCE_ID: the OTLP instance ID, not the Prometheus one; otelcol.exporter.otlphttp.default in Alloy's UI), or the services are not running or cannot reach Alloy (docker compose ps).",
                    services_list()
                ),
                _ => format!(
                    "Nothing from {} in any signal: the services or Alloy are not running (docker compose ps), or Alloy sends to other backends than the ones asked here (GRAFANA_CLOUD_* in .env must name one stack).",
                    services_list()
                ),
            });
        }
        let per_service = |signal: Signal, found: &Found| {
            SERVICES
                .iter()
                .map(|service| {
                    let detail = found.get(service);
                    Finding {
                        source: (*service).to_owned(),
                        arrived: detail.is_some(),
                        detail: detail.map_or_else(|| signal.facts().none.to_owned(), Clone::clone),
                        cause: (detail.is_none() && !nothing_over_otlp)
                            .then(|| presence.cause(signal, service, minutes)),
                    }
                })
                .collect::<Vec<_>>()
        };

        let traces = match traces {
            Ok(found) => {
                let mut findings = per_service(Signal::Traces, &found);
                let mut notes = Vec::new();
                if let Some(percent) = config.trace_sampling_percent {
                    // Sampled out, not missing: the service runs.
                    let runs = |service: &str| {
                        [&presence.metrics, &presence.logs]
                            .into_iter()
                            .any(|p| p.as_ref().is_some_and(|p| p.contains(service)))
                    };
                    for finding in findings
                        .iter_mut()
                        .filter(|f| !f.arrived && runs(&f.source))
                    {
                        finding.arrived = true;
                        finding.detail = format!(
                            "no trace kept in {minutes} minutes; it runs, and its traces are sampled"
                        );
                        finding.cause = None;
                    }
                    notes.push(sampling_note(percent));
                }
                Answer::Found { findings, notes }
            }
            Err(failure) => failed(Signal::Traces, &config.tempo, failure),
        };
        let metrics = match metrics {
            Ok((found, names)) => {
                let mut findings = per_service(Signal::Metrics, &found);
                findings.extend(
                    SCRAPED
                        .iter()
                        .map(|scraped| scraped_finding(scraped, &names)),
                );
                let notes = match (scraped_arrive, found.is_empty()) {
                    (Some(false), false) => vec![
                        "No scraped series at all, while the services' OTLP metrics arrive: Alloy's remote write does not reach this Prometheus. Check GRAFANA_CLOUD_PROMETHEUS_URL and GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID in Alloy's environment, and prometheus.remote_write.default in Alloy's UI (http://localhost:12345).".to_owned(),
                    ],
                    (Some(false), true) => vec![
                        "No scraped series either: Alloy is not running, or its remote write goes elsewhere (GRAFANA_CLOUD_PROMETHEUS_URL in Alloy's environment).".to_owned(),
                    ],
                    _ => Vec::new(),
                };
                Answer::Found { findings, notes }
            }
            Err(failure) => failed(Signal::Metrics, &config.prometheus, failure),
        };
        let logs = match logs {
            Ok(found) => Answer::Found {
                findings: per_service(Signal::Logs, &found),
                notes: Vec::new(),
            },
            Err(failure) => failed(Signal::Logs, &config.loki, failure),
        };
        let profiles = match profiles {
            Ok(types) => {
                // None from any service, while they send over OTLP: one
                // cause for all, said once.
                let none_at_all = types.is_empty() && !nothing_over_otlp;
                let notes = if none_at_all {
                    vec![format!(
                        "No profiles from any service, while their OTLP telemetry arrives: profiling is off (PYROSCOPE_SERVER_ADDRESS unset; compose sets it to Alloy, http://alloy:4040), or Alloy does not forward them (pyroscope.write \"default\" in Alloy's UI, http://localhost:12345; GRAFANA_CLOUD_PROFILES_URL and GRAFANA_CLOUD_PROFILES_INSTANCE_ID in Alloy's environment), or this check's GRAFANA_CLOUD_PROFILES_URL names another Pyroscope than Alloy's."
                    )]
                } else {
                    Vec::new()
                };
                let findings = SERVICES
                    .iter()
                    .map(|service| {
                        profile_finding(
                            service,
                            types.get(service),
                            (!nothing_from_services && !none_at_all)
                                .then(|| presence.cause(Signal::Profiles, service, minutes)),
                        )
                    })
                    .collect();
                Answer::Found { findings, notes }
            }
            Err(failure) => failed(Signal::Profiles, &config.pyroscope, failure),
        };
        Self {
            minutes,
            sections: [
                Section::new(Signal::Traces, &config.tempo, traces),
                Section::new(Signal::Metrics, &config.prometheus, metrics),
                Section::new(Signal::Logs, &config.loki, logs),
                Section::new(Signal::Profiles, &config.pyroscope, profiles),
            ],
            overall,
        }
    }

    /// Every backend answered, and everything looked for arrived.
    pub fn all_arrived(&self) -> bool {
        self.sections.iter().all(|section| match &section.answer {
            Answer::Found { findings, .. } => findings.iter().all(|f| f.arrived),
            Answer::Failed { .. } => false,
        })
    }

    /// The answer about `signal` (`traces`, `metrics`, `logs` or
    /// `profiles`).
    pub fn answer(&self, signal: &str) -> Option<&Answer> {
        self.sections
            .iter()
            .find(|section| section.signal == signal)
            .map(|section| &section.answer)
    }
}

/// What the report says when Alloy tail-samples traces.
fn sampling_note(percent: f64) -> String {
    format!(
        "Traces are sampled: Alloy keeps every trace with an error, slower than 1 s, dead-lettered or fault-switched, and {percent} % of the rest (TRACE_SAMPLING_PERCENT, grafana-alloy/sampling.alloy). A trace you look for may have been dropped; span metrics, the service graph, metrics and logs count everything."
    )
}

fn services_list() -> String {
    let (last, rest) = SERVICES.split_last().unwrap_or((&"", &[]));
    format!("{} or {last}", rest.join(", "))
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

/// Whether `service`'s CPU profiles arrived, given the profile types
/// Pyroscope holds of it; `cause` says why, should none arrive at all.
fn profile_finding(
    service: &str,
    types: Option<&BTreeSet<String>>,
    cause: Option<String>,
) -> Finding {
    let (arrived, detail, cause) = match types {
        Some(types) if types.contains(CPU_PROFILE_TYPE) => (true, "CPU profiles".to_owned(), None),
        Some(types) => (
            false,
            format!(
                "profiles, but none of type {CPU_PROFILE_TYPE}: only {}",
                types
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(format!(
                "{service} runs and its profiles arrive, but not of the type Grafana's traces-to-profiles and the dashboards' flame-graph links ask for: the profiler in crates/telemetry (feature profiling) sends another type than {CPU_PROFILE_TYPE}."
            )),
        ),
        None => (false, Signal::Profiles.facts().none.to_owned(), cause),
    };
    Finding {
        source: service.to_owned(),
        arrived,
        detail,
        cause,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
    Logs,
    Profiles,
}

/// How the report speaks of a signal and its backend.
struct Facts {
    name: &'static str,
    backend: &'static str,
    url_var: &'static str,
    scope: &'static str,
    none: &'static str,
}

impl Signal {
    fn facts(self) -> Facts {
        match self {
            Self::Traces => Facts {
                name: "traces",
                backend: "Tempo",
                url_var: "GRAFANA_CLOUD_TEMPO_URL",
                scope: "traces:read",
                none: "no traces",
            },
            Self::Metrics => Facts {
                name: "metrics",
                backend: "Prometheus",
                url_var: "GRAFANA_CLOUD_PROMETHEUS_URL",
                scope: "metrics:read",
                none: "no OTLP metrics",
            },
            Self::Logs => Facts {
                name: "logs",
                backend: "Loki",
                url_var: "GRAFANA_CLOUD_LOKI_URL",
                scope: "logs:read",
                none: "no log lines",
            },
            Self::Profiles => Facts {
                name: "profiles",
                backend: "Pyroscope",
                url_var: "GRAFANA_CLOUD_PROFILES_URL",
                scope: "profiles:read",
                none: "no profiles",
            },
        }
    }
}

impl Section {
    fn new(signal: Signal, backend: &Backend, answer: Answer) -> Self {
        Self {
            signal: signal.facts().name,
            backend: signal.facts().backend,
            url: backend.display_url(),
            answer,
        }
    }
}

struct Presences {
    traces: Presence,
    metrics: Presence,
    logs: Presence,
    profiles: Presence,
}

impl Presences {
    fn signals(&self) -> [(Signal, &Presence); 4] {
        [
            (Signal::Traces, &self.traces),
            (Signal::Metrics, &self.metrics),
            (Signal::Logs, &self.logs),
            (Signal::Profiles, &self.profiles),
        ]
    }

    /// Every backend of the signals that travel over OTLP (traces, metrics,
    /// logs) that answered found nothing of any service (and at least one
    /// answered). Profiles travel apart, by Pyroscope's push API.
    fn nothing_over_otlp(&self) -> bool {
        let answered: Vec<&BTreeSet<&'static str>> = self
            .signals()
            .into_iter()
            .filter(|(signal, _)| *signal != Signal::Profiles)
            .filter_map(|(_, p)| p.as_ref())
            .collect();
        !answered.is_empty() && answered.iter().all(|p| p.is_empty())
    }

    /// Why `service` sent no `signal`, read from what else it sent.
    fn cause(&self, signal: Signal, service: &str, minutes: u32) -> String {
        let sent = |p: &Presence| p.as_ref().is_some_and(|p| p.contains(service));
        let elsewhere: Vec<&str> = self
            .signals()
            .into_iter()
            .filter(|(other, p)| *other != signal && sent(p))
            .map(|(other, _)| other.facts().name)
            .collect();
        if elsewhere.is_empty() {
            return format!(
                "{service} sent nothing that arrived: it is not running, or cannot reach Alloy (docker compose ps {service}; its log says why an export fails)."
            );
        }
        let runs = format!("{service} runs (its {} arrive)", and_list(&elsewhere));
        match signal {
            Signal::Traces => format!(
                "{runs}, but no trace has a span of it: nothing reached it in {minutes} minutes (create a game, as the README's quick start does), or OTEL_TRACES_EXPORTER or OTEL_TRACES_SAMPLER drop its spans."
            ),
            Signal::Logs => format!(
                "{runs}, but logged nothing that arrived in {minutes} minutes: it was idle, or RUST_LOG or OTEL_LOGS_EXPORTER keep its records back."
            ),
            Signal::Metrics => format!(
                "{runs}, but not its metrics: OTEL_METRICS_EXPORTER is off, or OTEL_METRIC_EXPORT_INTERVAL is longer than {minutes} minutes."
            ),
            Signal::Profiles => format!(
                "{runs}, but none of its profiles arrived in {minutes} minutes: its PYROSCOPE_SERVER_ADDRESS is unset (profiling off; compose sets http://alloy:4040), or its pushes fail (its log says why)."
            ),
        }
    }
}

/// Which of a scraped source's series arrived, and why the others did not.
fn scraped_finding(scraped: &Scraped, names: &BTreeSet<String>) -> Finding {
    let missing: Vec<&str> = scraped
        .series
        .iter()
        .copied()
        .filter(|name| !names.contains(*name))
        .collect();
    let total = scraped.series.len();
    let others_arrive = names.iter().any(|name| {
        !scraped
            .prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix))
    });
    let (detail, cause) = if missing.is_empty() {
        (
            format!("{total} of {total} series the dashboards use"),
            None,
        )
    } else if missing.len() == total {
        (
            format!("none of the {total} series the dashboards use"),
            others_arrive.then(|| format!(
                "Alloy forwards its other scrapes but nothing of {source}: prometheus.scrape \"{source}\" fails (Alloy's UI, http://localhost:12345, shows why), or {file}'s keep-list, prometheus.relabel \"{keep}\", drops everything.",
                source = scraped.source,
                file = scraped.keep_list_file,
                keep = scraped.keep_list,
            )),
        )
    } else {
        (
            format!(
                "{} of {total} series: missing {}",
                total - missing.len(),
                missing.join(", ")
            ),
            Some(format!(
                "{file}'s keep-list, prometheus.relabel \"{keep}\", does not keep {it}, or the exporter has not reported {it} yet: add {it} to the rule's regex.",
                file = scraped.keep_list_file,
                keep = scraped.keep_list,
                it = if missing.len() == 1 { "it" } else { "them" },
            )),
        )
    };
    Finding {
        source: scraped.source.to_owned(),
        arrived: missing.is_empty(),
        detail,
        cause,
    }
}

/// The answer of a backend that could not be asked, with the likely cause.
fn failed(signal: Signal, backend: &Backend, failure: Failure) -> Answer {
    let name = signal.facts().backend;
    let url_var = signal.facts().url_var;
    let cause = match &failure {
        Failure::Unreachable(_) => format!(
            "The stack is not up, or {url_var} is wrong. Run natively, the check asks the local stack on the ports docker-compose.yml publishes on localhost; as the check-telemetry compose service, on the lgtm container."
        ),
        Failure::Status {
            status: 401 | 403, ..
        } => match &backend.instance_id {
            None => format!(
                "{name} wants credentials: set {} and GRAFANA_CLOUD_READ_TOKEN (grafana-alloy/SETUP_GRAFANA_CLOUD.md).",
                backend.instance_id_var
            ),
            Some(id) => format!(
                "{name} refused user {id} ({}): it is not this {name} instance's ID (each backend of a stack has its own, on its tile's Details page), or the token (GRAFANA_CLOUD_READ_TOKEN, else GRAFANA_CLOUD_API_TOKEN) is wrong, expired or lacks the {} scope.",
                backend.instance_id_var,
                signal.facts().scope
            ),
        },
        Failure::Status { status: 404, .. } => format!(
            "No {name} API at {}: {url_var} is wrong (Grafana Cloud: Tempo's URL ends in /tempo, Loki's and Pyroscope's are their host alone, and Prometheus' is the remote-write URL ending in /api/prom/push).",
            backend.display_url()
        ),
        Failure::Status {
            status: 405 | 415, ..
        } => format!(
            "{} answers, but not as {name}'s API does: does {url_var} point at {name}?",
            backend.display_url()
        ),
        Failure::Status {
            status: 400 | 422, ..
        } => format!(
            "{name} rejected the question (its message above): a {name} too old for this check's query, or a bug in the check."
        ),
        Failure::Status { status: 429, .. } => {
            format!("{name} is throttling requests: try again in a minute.")
        }
        Failure::Status { .. } => format!(
            "{name} is failing, or still starting: the local one needs a minute or two after docker compose up (docker compose ps lgtm)."
        ),
        Failure::Unexpected(_) => {
            format!("The answer is not {name}'s: does {url_var} point at {name}?")
        }
    };
    Answer::Failed { failure, cause }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(text) => write!(f, "unreachable: {text}"),
            Self::Status { status, message } => {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "{status} {reason}")?;
                if message.is_empty() {
                    Ok(())
                } else {
                    write!(f, ": {message}")
                }
            }
            Self::Unexpected(text) => write!(f, "an unexpected answer: {text}"),
        }
    }
}

const WIDTH: usize = 10;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Telemetry that arrived in the last {} minutes\n",
            self.minutes
        )?;
        let mut problems = 0;
        for section in &self.sections {
            writeln!(
                f,
                "{} ({} at {})",
                section.signal, section.backend, section.url
            )?;
            match &section.answer {
                Answer::Failed { failure, cause } => {
                    problems += 1;
                    writeln!(f, "  ✗ {failure}")?;
                    writeln!(f, "    → {cause}")?;
                }
                Answer::Found { findings, notes } => {
                    for finding in findings {
                        let mark = if finding.arrived { '✓' } else { '✗' };
                        problems += usize::from(!finding.arrived);
                        writeln!(f, "  {mark} {:<WIDTH$}{}", finding.source, finding.detail)?;
                        if let Some(cause) = &finding.cause {
                            writeln!(f, "    {:<WIDTH$}→ {cause}", "")?;
                        }
                    }
                    for note in notes {
                        writeln!(f, "    → {note}")?;
                    }
                }
            }
            writeln!(f)?;
        }
        for cause in &self.overall {
            writeln!(f, "→ {cause}\n")?;
        }
        if problems == 0 {
            writeln!(f, "Everything arrived.")
        } else {
            writeln!(
                f,
                "{problems} missing or unanswered; the → lines give the likely cause."
            )
        }
    }
}

//! The four questions, each asked of a backend's own HTTP API: Tempo's
//! search, Prometheus' (or Mimir's) series endpoint, Loki's instant query,
//! and Pyroscope's series query (its Connect API, JSON over HTTP POST).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Backend;

/// How long one question may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a backend's error body that is shown.
const MAX_BODY: usize = 300;

/// Why a backend gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP response: refused, unresolvable, timed out, TLS.
    Unreachable(String),
    /// An HTTP error status, with what the backend said (trimmed, with the
    /// token cut out should a backend ever echo it).
    Status {
        /// The status code.
        status: u16,
        /// The backend's message.
        message: String,
    },
    /// A 2xx whose body is not what the API returns.
    Unexpected(String),
}

/// Asks one backend, as its instance ID with the shared token.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    client: reqwest::Client,
    backend: Backend,
    token: Option<SecretString>,
}

impl Api {
    pub(crate) fn new(
        client: reqwest::Client,
        backend: Backend,
        token: Option<SecretString>,
    ) -> Self {
        Self {
            client,
            backend,
            token,
        }
    }

    /// A GET of `path` below the base URL, with `query`.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
            .await
    }

    /// A Connect unary call: a POST of `body` as JSON to `path` (the
    /// procedure, `/<package>.<Service>/<Method>`), answered with JSON.
    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, Failure> {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// A request for `path` below the base URL, as the instance ID with the
    /// token when the backend has an instance ID.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut url = self.backend.url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        let mut request = self.client.request(method, url);
        if let (Some(user), Some(token)) = (&self.backend.instance_id, &self.token) {
            request = request.basic_auth(user, Some(token.expose_secret()));
        }
        request
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request
            .send()
            .await
            .map_err(|err| Failure::Unreachable(self.describe(err)))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|err| Failure::Unreachable(self.describe(err)))?;
        if !status.is_success() {
            return Err(Failure::Status {
                status: status.as_u16(),
                message: self.message(&body),
            });
        }
        serde_json::from_str(&body)
            .map_err(|err| Failure::Unexpected(format!("{err} in {}", self.message(&body))))
    }

    /// What went wrong before any status: the innermost cause, the most
    /// specific ("Connection refused", "invalid peer certificate"), without
    /// the URL (shown apart).
    fn describe(&self, err: reqwest::Error) -> String {
        if err.is_timeout() {
            return format!("no answer within {} s", TIMEOUT.as_secs());
        }
        let err = err.without_url();
        let mut innermost: &dyn std::error::Error = &err;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        self.scrub(&innermost.to_string())
    }

    /// A backend's error body as one short line: Prometheus' JSON `error`,
    /// Pyroscope's Connect error (`{"code": …, "message": …}`), or the text
    /// Tempo, Loki and Grafana Cloud's gateways answer.
    fn message(&self, body: &str) -> String {
        #[derive(Deserialize)]
        struct PrometheusError {
            error: String,
        }
        #[derive(Deserialize)]
        struct ConnectError {
            code: String,
            #[serde(default)]
            message: String,
        }
        let text = serde_json::from_str::<PrometheusError>(body)
            .map(|e| e.error)
            .or_else(|_| {
                serde_json::from_str::<ConnectError>(body).map(|e| {
                    if e.message.is_empty() {
                        e.code
                    } else {
                        format!("{} ({})", e.message, e.code)
                    }
                })
            })
            .unwrap_or_else(|_| body.to_owned());
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = self.scrub(&text);
        match text.char_indices().nth(MAX_BODY) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text,
        }
    }

    /// `text` with the token and the URL's credentials cut out.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Some(token) = &self.token {
            let token = token.expose_secret();
            if !token.is_empty() {
                text = text.replace(token, "<token>");
            }
        }
        if let Some(password) = self.backend.url.password() {
            text = text.replace(password, "<password>");
        }
        text
    }
}

/// A time window ending now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) minutes: u32,
    end: u64,
}

impl Window {
    pub(crate) fn last(minutes: u32) -> Self {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Self { minutes, end }
    }

    fn start(self) -> u64 {
        self.end.saturating_sub(u64::from(self.minutes) * 60)
    }

    /// `start` and `end` in Unix milliseconds, as Pyroscope takes them.
    fn range_ms(self) -> (u64, u64) {
        (self.start() * 1000, self.end * 1000)
    }

    /// `start` and `end` in Unix seconds, as Tempo and Prometheus take them.
    fn range(self) -> [(&'static str, String); 2] {
        [
            ("start", self.start().to_string()),
            ("end", self.end.to_string()),
        ]
    }
}

/// A trace Tempo found.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundTrace {
    /// The trace's id.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// The service of its root span.
    #[serde(default)]
    pub root_service_name: String,
    /// The name of its root span.
    #[serde(default)]
    pub root_trace_name: String,
}

/// Tempo: one trace with a span of `service` in the window, if any.
pub(crate) async fn trace_of(
    tempo: &Api,
    service: &str,
    window: Window,
) -> Result<Option<FoundTrace>, Failure> {
    #[derive(Deserialize)]
    struct Search {
        #[serde(default)]
        traces: Vec<FoundTrace>,
    }
    let [start, end] = window.range();
    let search: Search = tempo
        .get(
            "/api/search",
            &[
                ("q", crate::traceql(service)),
                ("limit", "1".to_owned()),
                start,
                end,
            ],
        )
        .await?;
    Ok(search.traces.into_iter().next())
}

/// Prometheus/Mimir: the label sets of the series `selector` matches that
/// have samples in the window.
pub(crate) async fn series(
    prometheus: &Api,
    selector: &str,
    window: Window,
) -> Result<Vec<BTreeMap<String, String>>, Failure> {
    #[derive(Deserialize)]
    struct Series {
        data: Vec<BTreeMap<String, String>>,
    }
    let [start, end] = window.range();
    let series: Series = prometheus
        .get(
            "/api/v1/series",
            &[("match[]", selector.to_owned()), start, end],
        )
        .await?;
    Ok(series.data)
}

/// Loki: log lines per service in the window.
pub(crate) async fn log_lines(
    loki: &Api,
    window: Window,
) -> Result<BTreeMap<String, u64>, Failure> {
    #[derive(Deserialize)]
    struct Query {
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        result: Vec<Sample>,
    }
    #[derive(Deserialize)]
    struct Sample {
        metric: BTreeMap<String, String>,
        value: (serde_json::Value, String),
    }
    let query: Query = loki
        .get(
            "/loki/api/v1/query",
            &[("query", crate::logql(window.minutes))],
        )
        .await?;
    query
        .data
        .result
        .into_iter()
        .map(|sample| {
            let service = sample
                .metric
                .get("service_name")
                .cloned()
                .unwrap_or_default();
            let lines = sample.value.1.parse::<f64>().map_err(|_| {
                Failure::Unexpected(format!("a count of {:?} for {service}", sample.value.1))
            })?;
            // Counts are whole numbers, sent as decimal strings.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok((service, lines as u64))
        })
        .collect()
}

/// Pyroscope: the profile types (`__profile_type__`) of each service
/// ([`crate::profiles_selector`]) that has profiles in the window.
///
/// Asks `/querier.v1.QuerierService/Series` (grafana/pyroscope,
/// api/querier/v1/querier.proto, a public API): one label selector, the
/// two label names wanted, `start` and `end` in Unix milliseconds. Its
/// answer, `SeriesResponse` as Connect's protobuf JSON, lists each
/// distinct set of those labels (`labelsSet`, left out when empty).
pub(crate) async fn profile_types(
    pyroscope: &Api,
    window: Window,
) -> Result<BTreeMap<String, BTreeSet<String>>, Failure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SeriesResponse {
        #[serde(default)]
        labels_set: Vec<Labels>,
    }
    #[derive(Deserialize)]
    struct Labels {
        #[serde(default)]
        labels: Vec<LabelPair>,
    }
    #[derive(Deserialize)]
    struct LabelPair {
        name: String,
        #[serde(default)]
        value: String,
    }
    let (start, end) = window.range_ms();
    let response: SeriesResponse = pyroscope
        .post_json(
            "/querier.v1.QuerierService/Series",
            &serde_json::json!({
                "matchers": [crate::profiles_selector()],
                "labelNames": [SERVICE_NAME, PROFILE_TYPE_LABEL],
                "start": start,
                "end": end,
            }),
        )
        .await?;
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for set in response.labels_set {
        let value = |name: &str| {
            set.labels
                .iter()
                .find(|pair| pair.name == name)
                .map(|pair| pair.value.clone())
        };
        let (Some(service), Some(profile_type)) = (value(SERVICE_NAME), value(PROFILE_TYPE_LABEL))
        else {
            return Err(Failure::Unexpected(format!(
                "a series without {SERVICE_NAME} or {PROFILE_TYPE_LABEL}"
            )));
        };
        found.entry(service).or_default().insert(profile_type);
    }
    Ok(found)
}

/// Pyroscope's label for the service (`service.name`).
const SERVICE_NAME: &str = "service_name";
/// Pyroscope's label for a series' profile type,
/// `<name>:<sample type>:<unit>:<period type>:<period unit>`.
const PROFILE_TYPE_LABEL: &str = "__profile_type__";

/// The metric names among `series`.
pub(crate) fn names(series: &[BTreeMap<String, String>]) -> BTreeSet<String> {
    series
        .iter()
        .filter_map(|labels| labels.get("__name__").cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(token: &str, url: &str) -> Api {
        let backend = Backend {
            url: url.parse().unwrap_or_else(|_| unreachable!()),
            instance_id: Some("302".to_owned()),
            instance_id_var: "GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID",
        };
        Api::new(
            reqwest::Client::new(),
            backend,
            Some(SecretString::from(token)),
        )
    }

    #[test]
    fn prometheus_errors_are_shown_by_their_message() {
        let api = api("glc_x", "http://prometheus:9090");
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": 1:8: parse error: unexpected end of input"}"#;
        assert_eq!(
            api.message(body),
            r#"invalid parameter "match[]": 1:8: parse error: unexpected end of input"#
        );
        assert_eq!(
            api.message("parse error at line 1,\ncol 1: syntax error\n"),
            "parse error at line 1, col 1: syntax error"
        );
    }

    #[test]
    fn pyroscope_errors_are_shown_by_their_message_and_code() {
        let api = api("glc_x", "http://pyroscope:4040");
        assert_eq!(
            api.message(
                r#"{"code":"invalid_argument","message":"missing time range in the query"}"#
            ),
            "missing time range in the query (invalid_argument)"
        );
        assert_eq!(api.message(r#"{"code":"unavailable"}"#), "unavailable");
    }

    #[test]
    fn a_long_body_is_cut_and_the_token_never_shown() {
        let api = api("glc_secret", "https://302:hunter2@prometheus.example");
        let echoed = api.message("bad credentials glc_secret for hunter2");
        assert_eq!(echoed, "bad credentials <token> for <password>");
        let long = api.message(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_BODY + 1);
        assert!(long.ends_with('…'));
    }
}

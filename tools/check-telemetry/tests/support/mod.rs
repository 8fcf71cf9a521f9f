//! Local stand-ins for Tempo, Prometheus, Loki and Pyroscope, answering the
//! check's questions as those APIs do: Tempo's `/api/search` (TraceQL,
//! `start`, `end`), Prometheus' `/api/v1/series` (`match[]` parsed by a real
//! PromQL parser), Loki's `/loki/api/v1/query`, Pyroscope's Connect
//! `/querier.v1.QuerierService/Series` (a JSON POST; its matchers parsed as
//! Prometheus label selectors, as Pyroscope parses them), with their error
//! bodies — a plain text line from Tempo and Loki,
//! `{"status":"error","errorType":…}` from Prometheus, a Connect error
//! `{"code":…,"message":…}` from Pyroscope — and, in Grafana Cloud's shape,
//! each under its own path prefix and instance ID, refusing other
//! credentials with 401.

#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use promql_parser::parser::{self, Expr};
use regex::Regex;
use serde_json::json;

/// What the backends hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    /// (trace id, root span's service, root span's name, services with spans).
    pub traces: Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)>,
    /// Label sets of the series with samples in the window.
    pub series: Vec<BTreeMap<String, String>>,
    /// Log lines per `service_name`.
    pub log_lines: BTreeMap<&'static str, u64>,
    /// Pyroscope's series: label sets, and when (Unix ms) the last profile
    /// of each arrived.
    pub profiles: Vec<(BTreeMap<String, String>, u64)>,
    /// What Pyroscope answers instead of querying: a status and a body (a
    /// Connect error, or anything else).
    pub pyroscope_answer: Option<(u16, String)>,
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Data {
    /// What a healthy stack sends: a game's trace across the three
    /// services, their OTLP metrics and logs, and every scraped series the
    /// check looks for.
    pub(crate) fn healthy() -> Self {
        let mut data = Self {
            traces: vec![(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "api",
                "POST /games",
                vec!["api", "worker", "bot"],
            )],
            ..Self::default()
        };
        for service in check_telemetry::SERVICES {
            data.add_series("target_info", &[("job", &format!("gamenight/{service}"))]);
            data.log_lines.insert(service, 12);
            data.add_profiles(service, "gamenight", check_telemetry::CPU_PROFILE_TYPE);
        }
        // Another application's bot, profiled into the same Pyroscope.
        data.add_profiles("bot", "chess", check_telemetry::CPU_PROFILE_TYPE);
        for scraped in check_telemetry::SCRAPED {
            for name in scraped.series {
                data.add_series(
                    name,
                    &[("job", &format!("integrations/{}", scraped.source))],
                );
            }
        }
        // Series nobody looks for come along too.
        data.add_series("pg_locks_count", &[("job", "integrations/postgres")]);
        data.add_series(
            "http_server_request_duration_seconds_count",
            &[("job", "gamenight/api")],
        );
        data
    }

    /// Adds a series.
    pub(crate) fn add_series(&mut self, name: &str, labels: &[(&str, &str)]) {
        let mut set: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        set.insert("__name__".to_owned(), name.to_owned());
        self.series.push(set);
    }

    /// Adds a series of `service`'s profiles of `profile_type`, with the
    /// labels the services' profiler sets and those Pyroscope derives from
    /// the profile, its last profile a minute ago.
    pub(crate) fn add_profiles(&mut self, service: &str, namespace: &str, profile_type: &str) {
        let parts: Vec<&str> = profile_type.split(':').collect();
        let labels = [
            ("__name__", parts[0]),
            ("__type__", parts[1]),
            ("__unit__", parts[2]),
            ("__period_type__", parts[3]),
            ("__period_unit__", parts[4]),
            ("__profile_type__", profile_type),
            ("service_name", service),
            ("service_namespace", namespace),
            ("service_version", "0.1.0"),
            ("deployment_environment_name", "development"),
        ];
        self.profiles.push((
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            now_ms() - 60_000,
        ));
    }

    /// Drops `service`'s profiles (of the gamenight namespace).
    pub(crate) fn without_profiles_of(mut self, service: &str) -> Self {
        self.profiles.retain(|(labels, _)| {
            labels["service_name"] != service || labels["service_namespace"] != "gamenight"
        });
        self
    }

    /// Drops every series named `name`.
    pub(crate) fn without_series(mut self, name: &str) -> Self {
        self.series.retain(|labels| labels["__name__"] != name);
        self
    }

    /// Drops everything `service` sent.
    pub(crate) fn without_service(mut self, service: &str) -> Self {
        self.without_traces_of(service);
        self.series.retain(|labels| {
            labels.get("job").map(String::as_str) != Some(&format!("gamenight/{service}"))
        });
        self.log_lines.remove(service);
        self.without_profiles_of(service)
    }

    /// Drops `service`'s spans (and the traces it is the root of).
    pub(crate) fn without_traces_of(&mut self, service: &str) {
        self.traces.retain(|(_, root, _, _)| *root != service);
        for (_, _, _, services) in &mut self.traces {
            services.retain(|s| *s != service);
        }
    }
}

/// Where the four stand-ins listen, and the variables that point the
/// check at them.
#[derive(Debug)]
pub(crate) struct StandIns {
    /// `GRAFANA_CLOUD_*` variables for the check.
    pub(crate) env: BTreeMap<&'static str, String>,
}

/// The token the Grafana Cloud stand-ins accept.
pub(crate) const TOKEN: &str = "glc_eyJvIjoiMTIzNDU2Iiwibi-secret";

impl StandIns {
    /// The local stack: no credentials, no path prefixes.
    pub(crate) async fn local(data: Data) -> Self {
        let data = Arc::new(data);
        let tempo = serve(tempo("", None), data.clone()).await;
        let prometheus = serve(prometheus("", None), data.clone()).await;
        let loki = serve(loki("", None), data.clone()).await;
        let pyroscope = serve(pyroscope("", None), data).await;
        Self {
            env: BTreeMap::from([
                ("GRAFANA_CLOUD_TEMPO_URL", tempo),
                (
                    "GRAFANA_CLOUD_PROMETHEUS_URL",
                    format!("{prometheus}/api/v1/write"),
                ),
                ("GRAFANA_CLOUD_LOKI_URL", loki),
                ("GRAFANA_CLOUD_PROFILES_URL", pyroscope),
            ]),
        }
    }

    /// Grafana Cloud: Tempo under `/tempo`, Mimir under `/api/prom`, Loki
    /// and Pyroscope at the root, each wanting its own instance ID and
    /// [`TOKEN`]; the check is given the right IDs and Alloy's token.
    pub(crate) async fn cloud(data: Data) -> Self {
        let data = Arc::new(data);
        let tempo = serve(tempo("/tempo", Some("301")), data.clone()).await;
        let prometheus = serve(prometheus("/api/prom", Some("302")), data.clone()).await;
        let loki = serve(loki("", Some("303")), data.clone()).await;
        let pyroscope = serve(pyroscope("", Some("304")), data).await;
        Self {
            env: BTreeMap::from([
                ("GRAFANA_CLOUD_TEMPO_URL", format!("{tempo}/tempo")),
                ("GRAFANA_CLOUD_TEMPO_INSTANCE_ID", "301".to_owned()),
                (
                    "GRAFANA_CLOUD_PROMETHEUS_URL",
                    format!("{prometheus}/api/prom/push"),
                ),
                ("GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID", "302".to_owned()),
                ("GRAFANA_CLOUD_LOKI_URL", loki),
                ("GRAFANA_CLOUD_LOKI_INSTANCE_ID", "303".to_owned()),
                ("GRAFANA_CLOUD_PROFILES_URL", pyroscope),
                ("GRAFANA_CLOUD_PROFILES_INSTANCE_ID", "304".to_owned()),
                ("GRAFANA_CLOUD_API_TOKEN", TOKEN.to_owned()),
            ]),
        }
    }

    /// Changes one variable.
    pub(crate) fn set(mut self, var: &'static str, value: &str) -> Self {
        self.env.insert(var, value.to_owned());
        self
    }

    /// Runs the check over the last ten minutes; its report as printed.
    pub(crate) async fn check(&self) -> (check_telemetry::Report, String) {
        let config = check_telemetry::Config::from_vars(
            self.env.iter().map(|(var, value)| (*var, value.as_str())),
        )
        .unwrap();
        let report = check_telemetry::check(&config, 10).await;
        let text = report.to_string();
        println!("{text}");
        (report, text)
    }
}

async fn serve(router: Router<Arc<Data>>, data: Arc<Data>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router.with_state(data)).await });
    url
}

/// Grafana Cloud's gateways answer a wrong user or token with 401 and a
/// short text; the check relies on the status alone.
fn refused(headers: &HeaderMap, user: Option<&str>) -> Option<Response> {
    let user = user?;
    // The header reqwest would send for these credentials.
    let expected = reqwest::Client::new()
        .get("http://stand-in")
        .basic_auth(user, Some(TOKEN))
        .build()
        .unwrap()
        .headers()[header::AUTHORIZATION]
        .clone();
    (headers.get(header::AUTHORIZATION) != Some(&expected)).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            "invalid authentication credentials\n",
        )
            .into_response()
    })
}

fn params(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Tempo's search, as far as `{ resource.service.name = "…" }` goes; any
/// other query gets Tempo's parse error.
fn tempo(prefix: &str, user: Option<&'static str>) -> Router<Arc<Data>> {
    let search = move |State(data): State<Arc<Data>>,
                       headers: HeaderMap,
                       RawQuery(query): RawQuery| async move {
        if let Some(refused) = refused(&headers, user) {
            return refused;
        }
        let params = params(query);
        for bound in ["start", "end"] {
            if param(&params, bound).is_some_and(|v| v.parse::<u64>().is_err()) {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "invalid {bound}: strconv.ParseInt: parsing \"{}\": invalid syntax",
                        param(&params, bound).unwrap_or_default()
                    ),
                )
                    .into_response();
            }
        }
        let q = param(&params, "q").unwrap_or_default();
        let pattern = Regex::new(r#"^\{ resource\.service\.name = "([a-z]+)" \}$"#).unwrap();
        let Some(service) = pattern.captures(q).map(|c| c[1].to_owned()) else {
            return (
                StatusCode::BAD_REQUEST,
                "invalid TraceQL query: parse error at line 1, col 3: syntax error: unexpected IDENTIFIER",
            )
                .into_response();
        };
        let limit: usize = param(&params, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(20);
        let traces: Vec<_> = data
            .traces
            .iter()
            .filter(|(_, _, _, services)| services.contains(&service.as_str()))
            .take(limit)
            .map(|(id, root, name, _)| {
                json!({
                    "traceID": id,
                    "rootServiceName": root,
                    "rootTraceName": name,
                    "startTimeUnixNano": "1764622800000000000",
                    "durationMs": 48,
                })
            })
            .collect();
        axum::Json(json!({"traces": traces, "metrics": {"completedJobs": 1, "totalJobs": 1}}))
            .into_response()
    };
    Router::new().route(&format!("{prefix}/api/search"), get(search))
}

/// Prometheus' series API: each `match[]` parsed as PromQL and applied.
fn prometheus(prefix: &str, user: Option<&'static str>) -> Router<Arc<Data>> {
    let series = move |State(data): State<Arc<Data>>,
                       headers: HeaderMap,
                       RawQuery(query): RawQuery| async move {
        if let Some(refused) = refused(&headers, user) {
            return refused;
        }
        let bad_data = |error: String| {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"status": "error", "errorType": "bad_data", "error": error})),
            )
                .into_response()
        };
        let selectors: Vec<String> = params(query)
            .into_iter()
            .filter(|(k, _)| k == "match[]")
            .map(|(_, v)| v)
            .collect();
        if selectors.is_empty() {
            return bad_data("no match[] parameter provided".to_owned());
        }
        let mut found = Vec::new();
        for selector in &selectors {
            let selector = match parser::parse(selector) {
                Ok(Expr::VectorSelector(selector)) => selector,
                Ok(_) => {
                    return bad_data(format!(
                        "invalid parameter \"match[]\": {selector} is not a vector selector"
                    ));
                }
                Err(err) => return bad_data(format!("invalid parameter \"match[]\": {err}")),
            };
            found.extend(data.series.iter().filter(|labels| {
                selector
                    .name
                    .as_ref()
                    .is_none_or(|name| &labels["__name__"] == name)
                    && selector
                        .matchers
                        .matchers
                        .iter()
                        .all(|m| m.is_match(labels.get(&m.name).map_or("", String::as_str)))
            }));
        }
        axum::Json(json!({"status": "success", "data": found})).into_response()
    };
    Router::new().route(&format!("{prefix}/api/v1/series"), get(series))
}

/// Loki's instant query, as far as counting lines per `service_name` goes;
/// any other query gets Loki's parse error.
fn loki(prefix: &str, user: Option<&'static str>) -> Router<Arc<Data>> {
    let query = move |State(data): State<Arc<Data>>,
                      headers: HeaderMap,
                      RawQuery(query): RawQuery| async move {
        if let Some(refused) = refused(&headers, user) {
            return refused;
        }
        let params = params(query);
        let pattern = Regex::new(
            r#"^sum by \(service_name\) \(count_over_time\(\{service_name=~"([a-z|]+)"\}\[([0-9]+)m\]\)\)$"#,
        )
        .unwrap();
        let Some(services) = pattern
            .captures(param(&params, "query").unwrap_or_default())
            .map(|c| c[1].to_owned())
        else {
            return (
                StatusCode::BAD_REQUEST,
                "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER\n",
            )
                .into_response();
        };
        // Loki leaves out the streams with no lines.
        let result: Vec<_> = services
            .split('|')
            .filter_map(|service| {
                let lines = data.log_lines.get(service).copied().filter(|n| *n > 0)?;
                Some(json!({"metric": {"service_name": service}, "value": [1764622800.0, lines.to_string()]}))
            })
            .collect();
        axum::Json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": result, "stats": {}},
        }))
        .into_response()
    };
    Router::new().route(&format!("{prefix}/loki/api/v1/query"), get(query))
}

/// A Connect error as connect-go writes it: the status its code maps to
/// (the Connect protocol's table), and `{"code": …, "message": …}`.
fn connect_error(code: &str, message: &str) -> Response {
    let status = match code {
        "invalid_argument" => StatusCode::BAD_REQUEST,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

/// A protobuf-JSON int64: a number or a decimal string; absent is 0.
fn int64(request: &serde_json::Value, field: &str) -> Result<i64, String> {
    match &request[field] {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for int64 field {field}: {n}")),
        serde_json::Value::String(s) => s
            .parse()
            .map_err(|_| format!("invalid value for int64 field {field}: {s:?}")),
        other => Err(format!("invalid value for int64 field {field}: {other}")),
    }
}

/// A protobuf-JSON repeated string, by its JSON or its proto name; absent
/// is empty.
fn strings(
    request: &serde_json::Value,
    json_name: &str,
    proto_name: &str,
) -> Result<Vec<String>, String> {
    let value = match &request[json_name] {
        serde_json::Value::Null => &request[proto_name],
        value => value,
    };
    match value {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("invalid value for string field {json_name}: {item}"))
            })
            .collect(),
        other => Err(format!(
            "invalid value for repeated field {json_name}: {other}"
        )),
    }
}

/// Pyroscope's `/querier.v1.QuerierService/Series` as its v2 query frontend
/// answers it (grafana/pyroscope v2.2.1,
/// pkg/frontend/readpath/queryfrontend/query_series_labels.go): a Connect
/// unary call, so POST only (405 otherwise) with a JSON body (415 for
/// another content type); `start` and `end` in Unix ms, both required and
/// in order; the matchers parsed as Prometheus label selectors and all
/// applied; the label sets of the series with a profile in the window,
/// cut to `labelNames` and deduplicated; `{}` when there are none
/// (protobuf JSON leaves out an empty list).
fn pyroscope(prefix: &str, user: Option<&'static str>) -> Router<Arc<Data>> {
    let series = move |State(data): State<Arc<Data>>, headers: HeaderMap, body: Bytes| async move {
        if let Some(refused) = refused(&headers, user) {
            return refused;
        }
        if let Some((status, body)) = &data.pyroscope_answer {
            let content_type = if body.starts_with('{') {
                "application/json"
            } else {
                "text/html; charset=utf-8"
            };
            return (
                StatusCode::from_u16(*status).unwrap(),
                [(header::CONTENT_TYPE, content_type)],
                body.clone(),
            )
                .into_response();
        }
        if headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            != Some("application/json")
        {
            return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
        }
        let request: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(request @ serde_json::Value::Object(_)) => request,
            Ok(_) => return connect_error("invalid_argument", "unmarshal message: not an object"),
            Err(err) => {
                return connect_error("invalid_argument", &format!("unmarshal message: {err}"));
            }
        };
        let fields = (|| {
            Ok::<_, String>((
                strings(&request, "matchers", "matchers")?,
                strings(&request, "labelNames", "label_names")?,
                int64(&request, "start")?,
                int64(&request, "end")?,
            ))
        })();
        let (matchers, label_names, start, end) = match fields {
            Ok(fields) => fields,
            Err(err) => {
                return connect_error("invalid_argument", &format!("unmarshal message: {err}"));
            }
        };
        if start == 0 || end == 0 {
            return connect_error("invalid_argument", "missing time range in the query");
        }
        if start > end {
            return connect_error("invalid_argument", "query start time is after end time");
        }
        let mut selectors = Vec::new();
        for matcher in &matchers {
            match parser::parse(matcher) {
                Ok(Expr::VectorSelector(selector)) => selectors.push(selector),
                Ok(_) => {
                    return connect_error(
                        "invalid_argument",
                        &format!(
                            "parsing label selector: failed to parse label selector {matcher:?}: not a selector"
                        ),
                    );
                }
                Err(err) => {
                    return connect_error(
                        "invalid_argument",
                        &format!(
                            "parsing label selector: failed to parse label selector {matcher:?}: {err}"
                        ),
                    );
                }
            }
        }
        let (start, end) = (
            u64::try_from(start).unwrap_or(0),
            u64::try_from(end).unwrap_or(0),
        );
        let found: BTreeSet<Vec<(String, String)>> = data
            .profiles
            .iter()
            .filter(|(_, at)| (start..=end).contains(at))
            .map(|(labels, _)| labels)
            .filter(|labels| {
                selectors.iter().all(|selector| {
                    selector
                        .name
                        .as_ref()
                        .is_none_or(|name| labels.get("__name__") == Some(name))
                        && selector
                            .matchers
                            .matchers
                            .iter()
                            .all(|m| m.is_match(labels.get(&m.name).map_or("", String::as_str)))
                })
            })
            .map(|labels| {
                labels
                    .iter()
                    .filter(|(name, _)| label_names.is_empty() || label_names.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect()
            })
            .collect();
        if found.is_empty() {
            return axum::Json(json!({})).into_response();
        }
        let labels_set: Vec<_> = found
            .into_iter()
            .map(|labels| {
                json!({"labels": labels
                    .into_iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect::<Vec<_>>()})
            })
            .collect();
        axum::Json(json!({"labelsSet": labels_set})).into_response()
    };
    Router::new().route(
        &format!("{prefix}/querier.v1.QuerierService/Series"),
        post(series),
    )
}
